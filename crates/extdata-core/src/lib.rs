#![doc = include_str!("../README.md")]

mod config;
mod debug;
pub mod driver;
mod error;
mod source;
mod statement;
#[cfg(feature = "rustls")]
mod tls;
mod validate;
mod value;

pub use config::{
    ConnectorConfig, DbKind, DsnOptions, PoolConfig, Protocol, Scalar, SecretPolicy, SecretSource,
    SslConfig, expose,
};
pub use driver::closed_error;
pub use error::{BoxError, Error, ErrorKind, Result, tls_hint, with_tls_hint};
pub use source::{
    Column, Columns, ExternalSource, QueryOptions, ResultSet, Row, RowStream, ServerInfo,
};
pub use statement::{Dialect, HiveToken, HiveTokenKind, RenderedStatement, Statement};
#[cfg(feature = "rustls")]
pub use tls::rustls_client_config;
pub use validate::{
    BackendSpec, DEFAULT_CONNECT_TIMEOUT, DEFAULT_QUERY_TIMEOUT, Endpoint, OptionCheck, OptionSpec,
    Options, PoolSettings, Problem, Problems, Support, TlsSettings, TlsVerify, ValidConfig,
    closest_match, did_you_mean, edit_distance, parse_bool, parse_duration, unknown_name,
};
pub use value::{Decimal, Interval, Value, ValueKind};

/// Re-exported for implementing [`ExternalSource`].
pub use async_trait::async_trait;
/// Re-exported so that backends and users name the same secret type.
pub use secrecy::{ExposeSecret, SecretString};
