//! Picks the backend for a connector's type.

use std::sync::Arc;

use extdata_core::{
    BackendSpec, ConnectorConfig, DbKind, Error, ExternalSource, Problems, Result, SecretPolicy,
    ValidConfig,
};

use crate::instrument::Instrumented;

/// Every backend once: its cargo feature, its type, its crate and its source type.
/// [`spec`] and `build_backend` are written from this list.
macro_rules! backends {
    ($then:ident) => {
        $then! {
            "sqlite" Sqlite extdata_sqlite SqliteSource,
            "postgres" Postgres extdata_postgres PostgresSource,
            "mysql" MySql extdata_mysql MySqlSource,
            "clickhouse" ClickHouse extdata_clickhouse ClickHouseSource,
            "hive" Hive extdata_hive HiveSource,
            "oracle" Oracle extdata_oracle OracleSource,
            "mssql" MsSql extdata_mssql MsSqlSource,
        }
    };
}

macro_rules! spec_and_build {
    ($($feature:literal $kind:ident $krate:ident $source:ident,)*) => {
        /// The validation rules of `kind`'s backend, or `None` when its cargo feature is
        /// off.
        pub fn spec(kind: DbKind) -> Option<&'static BackendSpec> {
            match kind {
                $(
                    #[cfg(feature = $feature)]
                    DbKind::$kind => Some(&$krate::SPEC),
                )*
                _ => None,
            }
        }

        fn build_backend(config: ValidConfig) -> Result<Arc<dyn ExternalSource>> {
            match config.kind {
                $(
                    #[cfg(feature = $feature)]
                    DbKind::$kind => Ok(Arc::new($krate::$source::build(config)?)),
                )*
                kind => Err(not_compiled_in(kind).with_connector(config.name)),
            }
        }
    };
}

backends!(spec_and_build);

/// Validates a connector with its backend's rules, returning every problem at once.
///
/// A type whose backend is compiled out is reported on the `type` field, naming the
/// cargo feature that enables it.
///
/// Secrets are read under [`SecretPolicy::deny_all`] (literals only); see
/// [`validate_with_policy`].
pub fn validate(config: &ConnectorConfig) -> std::result::Result<ValidConfig, Problems> {
    validate_with_policy(config, &SecretPolicy::deny_all())
}

/// Like [`validate`], reading the files and environment variables the connector names
/// only as far as `policy` grants them.
pub fn validate_with_policy(
    config: &ConnectorConfig,
    policy: &SecretPolicy,
) -> std::result::Result<ValidConfig, Problems> {
    let kind = config.kind.parse::<DbKind>().ok();
    config.validate_with_policy(kind.and_then(spec), policy)
}

/// Builds a source for a connector: validates it, picks the backend by type and wraps it
/// in the instrumentation layer (tracing spans and metrics).
///
/// No I/O happens here: pools connect on first use, so this is cheap and works outside
/// an async runtime. Secrets are read under [`SecretPolicy::deny_all`] (literals only);
/// see [`connect_with_policy`].
///
/// ```
/// use extdata::{ConnectorConfig, DbKind};
/// let config = ConnectorConfig::new("local", DbKind::Sqlite).with_database(":memory:");
/// let source = extdata::connect(&config).unwrap();
/// assert_eq!(source.name(), "local");
/// ```
pub fn connect(config: &ConnectorConfig) -> Result<Arc<dyn ExternalSource>> {
    connect_with_policy(config, &SecretPolicy::deny_all())
}

/// Like [`connect`], reading the files and environment variables the connector names
/// only as far as `policy` grants them.
pub fn connect_with_policy(
    config: &ConnectorConfig,
    policy: &SecretPolicy,
) -> Result<Arc<dyn ExternalSource>> {
    if let Ok(kind) = config.kind.parse::<DbKind>()
        && spec(kind).is_none()
    {
        return Err(not_compiled_in(kind).with_connector(config.name.clone()));
    }
    let valid = validate_with_policy(config, policy).map_err(Error::from)?;
    connect_valid(valid)
}

/// Builds a source from an already validated connector.
pub fn connect_valid(config: ValidConfig) -> Result<Arc<dyn ExternalSource>> {
    Ok(Arc::new(Instrumented::new(build_backend(config)?)))
}

/// The error for a type whose backend's cargo feature is off.
pub fn not_compiled_in(kind: DbKind) -> Error {
    Error::unsupported(format!(
        "the `{kind}` backend is not compiled in; enable the cargo feature `{}` of `extdata`",
        kind.feature()
    ))
}
