#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "arrow")]
mod columnar;
mod factory;
mod instrument;
mod partition;
mod registry;

pub use extdata_core::*;
pub use factory::{
    connect, connect_valid, connect_with_policy, not_compiled_in, spec, validate,
    validate_with_policy,
};
pub use instrument::{Instrumented, current_account, for_account};
pub use partition::stream_partitioned;
pub use registry::{ConfigDocument, ConfigTable, REGISTRY_SECTIONS, Registry};

#[cfg(feature = "arrow")]
#[cfg_attr(docsrs, doc(cfg(feature = "arrow")))]
pub use columnar::{batches_as_received, decodes_columnar, stream_batches};
#[cfg(feature = "arrow")]
#[cfg_attr(docsrs, doc(cfg(feature = "arrow")))]
pub use partition::stream_batches_partitioned;

/// Arrow record batches from results (feature `arrow`): [`stream_batches`]'s
/// `BatchLimits` and `BatchStream`, the schema mapping and the IPC/Parquet writers.
#[cfg(feature = "arrow")]
#[cfg_attr(docsrs, doc(cfg(feature = "arrow")))]
pub use extdata_arrow as arrow;

/// The SQLite backend (feature `sqlite`).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use extdata_sqlite as sqlite;

/// The PostgreSQL backend (feature `postgres`).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use extdata_postgres as postgres;

/// The MySQL/MariaDB backend (feature `mysql`).
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use extdata_mysql as mysql;

/// The ClickHouse backend (feature `clickhouse`).
#[cfg(feature = "clickhouse")]
#[cfg_attr(docsrs, doc(cfg(feature = "clickhouse")))]
pub use extdata_clickhouse as clickhouse;

/// The Hive backend (feature `hive`): HiveServer2 over Thrift.
#[cfg(feature = "hive")]
#[cfg_attr(docsrs, doc(cfg(feature = "hive")))]
pub use extdata_hive as hive;

/// The Oracle backend (feature `oracle`, opt-in): ODPI-C, needs Oracle Instant Client
/// at run time.
#[cfg(feature = "oracle")]
#[cfg_attr(docsrs, doc(cfg(feature = "oracle")))]
pub use extdata_oracle as oracle;

/// The Microsoft SQL Server backend (feature `mssql`, opt-in): tiberius pooled with
/// deadpool.
#[cfg(feature = "mssql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mssql")))]
pub use extdata_mssql as mssql;
