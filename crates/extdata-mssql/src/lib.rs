#![doc = include_str!("../README.md")]

mod browser;
mod connect;
mod error;
mod pool;
mod read_only;
mod stream;
mod types;

use std::fmt;
use std::sync::Arc;

use extdata_core::driver::{Bound, check_kind};
use extdata_core::{
    BackendSpec, Column, DbKind, ExternalSource, QueryOptions, Result, ResultSet, RowStream,
    ServerInfo, Statement, Support, ValidConfig, async_trait,
};
use tiberius::Query;

use crate::pool::Inner;

/// SQL Server's TCP port when the form leaves it empty.
pub const DEFAULT_PORT: u16 = 1433;

/// The rules of the SQL Server backend, used by validation.
pub const SPEC: BackendSpec = BackendSpec {
    unix: Support::No(connect::UNIX_REASON),
    udp: Support::Yes,
    options: connect::OPTIONS,
    check: Some(connect::check),
    warn: Some(connect::warn),
    ..BackendSpec::server(DbKind::MsSql, DEFAULT_PORT)
};

/// A Microsoft SQL Server database reached through tiberius, pooled with deadpool.
///
/// [`build`](MsSqlSource::build) does no I/O: the pool is created on first use. Every
/// call is bounded by its timeout; when it fires, the request is cancelled on the server
/// with a TDS ATTENTION and the connection is reused only if the server acknowledges it
/// (otherwise it is taken out of the pool and closed).
#[derive(Clone)]
pub struct MsSqlSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for MsSqlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.inner.config;
        f.debug_struct("MsSqlSource")
            .field("name", &config.name)
            .field("kind", &config.kind)
            .field("endpoint", &self.inner.settings.endpoint_text())
            .field("database", &config.database)
            .field("username", &config.username)
            .field("encryption", &self.inner.settings.encryption)
            .field("read_only", &config.read_only)
            .finish_non_exhaustive()
    }
}

impl MsSqlSource {
    /// Builds a source from a validated config. No I/O, no runtime needed.
    pub fn build(config: ValidConfig) -> Result<Self> {
        check_kind(&config, DbKind::MsSql)?;
        Ok(MsSqlSource {
            inner: Arc::new(Inner::new(config)?),
        })
    }

    /// The validated config this source was built from.
    pub fn config(&self) -> &ValidConfig {
        &self.inner.config
    }
}

/// The `sp_describe_first_result_set` call of `describe`. `@params` is sent only when
/// the statement has parameters: a strict TDS server (Babelfish) refuses a NULL-typed
/// `@params` with error 8009.
fn describe_call(has_params: bool) -> &'static str {
    if has_params {
        "EXEC sp_describe_first_result_set @tsql = @P1, @params = @P2, @browse_information_mode = 0"
    } else {
        "EXEC sp_describe_first_result_set @tsql = @P1, @browse_information_mode = 0"
    }
}

#[async_trait]
impl ExternalSource for MsSqlSource {
    fn name(&self) -> &str {
        &self.inner.config.name
    }

    fn kind(&self) -> DbKind {
        DbKind::MsSql
    }

    async fn ping(&self) -> Result<ServerInfo> {
        let inner = &self.inner;
        inner.lifecycle.check_open(&inner.config.name)?;
        let version = inner
            .with_connection(inner.config.query_timeout, "ping", |conn| {
                Box::pin(async move {
                    let row = conn
                        .simple_query("SELECT @@VERSION")
                        .await?
                        .into_row()
                        .await?;
                    Ok(row
                        .and_then(|r| r.get::<&str, _>(0).map(str::to_owned))
                        .unwrap_or_default())
                })
            })
            .await?;
        // `@@VERSION` is several lines (build, copyright, OS); the first says it all.
        let first_line = version.lines().next().unwrap_or_default().trim().to_owned();
        Ok(ServerInfo {
            version: first_line,
        })
    }

    async fn query(&self, statement: &Statement, options: &QueryOptions) -> Result<ResultSet> {
        let timeout = options.timeout_or(self.inner.config.query_timeout);
        self.inner
            .start_rows(statement, Bound::Total(timeout))
            .await?
            .collect_limited(Some(options.max_rows_or_default()))
            .await
    }

    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream> {
        let timeout = options.timeout_or(self.inner.config.query_timeout);
        self.inner
            .start_rows(statement, Bound::PerRow(timeout))
            .await
    }

    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        let inner = &self.inner;
        inner.lifecycle.check_open(&inner.config.name)?;
        let timeout = options.timeout_or(inner.config.query_timeout);
        let (sql, params) = inner.render(statement)?;
        inner
            .with_connection(timeout, "statement", move |conn| {
                Box::pin(async move {
                    let mut query = Query::new(sql);
                    for param in params {
                        query.bind(param);
                    }
                    Ok(query.execute(conn).await?.total())
                })
            })
            .await
    }

    async fn describe(&self, statement: &Statement, options: &QueryOptions) -> Result<Vec<Column>> {
        let inner = &self.inner;
        inner.lifecycle.check_open(&inner.config.name)?;
        let timeout = options.timeout_or(inner.config.query_timeout);
        // The statement is only compiled by the server, never run; its parameters are
        // declared with the types they would be bound as.
        let (sql, params) = inner.render(statement)?;
        let declarations = params
            .iter()
            .enumerate()
            .map(|(i, p)| format!("@P{} {}", i + 1, types::declared_type(p)))
            .collect::<Vec<_>>()
            .join(", ");
        inner
            .with_connection(timeout, "describe", move |conn| {
                Box::pin(async move {
                    let mut query = Query::new(describe_call(!declarations.is_empty()));
                    query.bind(sql);
                    if !declarations.is_empty() {
                        query.bind(declarations);
                    }
                    let rows = query.query(conn).await?.into_first_result().await?;
                    let mut columns = Vec::with_capacity(rows.len());
                    for row in rows {
                        if row.try_get::<bool, _>("is_hidden")?.unwrap_or(false) {
                            continue;
                        }
                        let name = row.try_get::<&str, _>("name")?.unwrap_or_default();
                        let type_name = row
                            .try_get::<&str, _>("system_type_name")?
                            .unwrap_or_default();
                        let nullable = row.try_get::<bool, _>("is_nullable")?;
                        columns.push(
                            Column::new(name, type_name, types::kind_of_type_name(type_name))
                                .with_nullable(nullable),
                        );
                    }
                    Ok(columns)
                })
            })
            .await
    }

    async fn close(&self) {
        self.inner.lifecycle.close();
        if let Some(pool) = self.inner.pool.get() {
            pool.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use extdata_core::{ConnectorConfig, Error, ErrorKind, SecretSource};

    fn config() -> ConnectorConfig {
        ConnectorConfig::new("crm", DbKind::MsSql)
            .with_host("sql.example")
            .with_username("reader")
            .with_password(SecretSource::literal("Very-Secret-Pw-9"))
    }

    #[test]
    fn build_needs_no_runtime_and_debug_hides_the_password() {
        // Not inside a tokio runtime: build must not touch the network or spawn.
        let source = MsSqlSource::build(config().validate_with(Some(&SPEC)).unwrap()).unwrap();
        let debug = format!("{source:?}");
        assert!(debug.contains("sql.example:1433"), "{debug}");
        assert!(!debug.contains("Very-Secret-Pw-9"), "{debug}");
        assert_eq!(source.name(), "crm");
        assert_eq!(source.kind(), DbKind::MsSql);
        assert!(
            source.inner.pool.get().is_none(),
            "the pool is created on first use"
        );
    }

    #[test]
    fn build_refuses_a_config_of_another_kind() {
        let mut valid = config().validate_with(Some(&SPEC)).unwrap();
        valid.kind = DbKind::Postgres;
        let err = MsSqlSource::build(valid).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
    }

    #[tokio::test]
    async fn calls_after_close_are_closed_errors_without_io() {
        let source = MsSqlSource::build(config().validate_with(Some(&SPEC)).unwrap()).unwrap();
        source.close().await;
        let statement = Statement::new("SELECT 1");
        let options = QueryOptions::default();
        let kind = |error: Option<Error>| error.map(|e| e.kind());
        for (call, outcome) in [
            ("ping", kind(source.ping().await.err())),
            (
                "query",
                kind(source.query(&statement, &options).await.err()),
            ),
            (
                "execute",
                kind(source.execute(&statement, &options).await.err()),
            ),
            (
                "describe",
                kind(source.describe(&statement, &options).await.err()),
            ),
        ] {
            assert_eq!(outcome, Some(ErrorKind::Closed), "{call}");
        }
        assert!(source.stream(&statement, &options).await.is_err());
    }

    #[test]
    fn describe_sends_params_only_when_the_statement_has_some() {
        assert!(!describe_call(false).contains("@params"));
        assert!(!describe_call(false).contains("@P2"));
        assert!(describe_call(true).contains("@params = @P2"));
        for has_params in [false, true] {
            assert!(
                describe_call(has_params)
                    .starts_with("EXEC sp_describe_first_result_set @tsql = @P1"),
            );
        }
    }

    /// A read-only connector refuses a write in every call before it reaches a server
    /// (`sql.example` is never contacted: the check comes first).
    #[tokio::test]
    async fn read_only_refuses_writes_in_every_call_before_any_io() {
        let valid = config()
            .with_read_only(true)
            .validate_with(Some(&SPEC))
            .unwrap();
        let source = MsSqlSource::build(valid).unwrap();
        let options = QueryOptions::default();
        let write =
            Statement::new("SELECT 1; COMMIT; DELETE FROM customers WHERE id = :id").bind("id", 1);
        let errors = [
            source.query(&write, &options).await.unwrap_err(),
            source.execute(&write, &options).await.unwrap_err(),
            source.describe(&write, &options).await.unwrap_err(),
            source.stream(&write, &options).await.err().unwrap(),
        ];
        for error in errors {
            assert_eq!(error.kind(), ErrorKind::ReadOnly, "{error}");
            assert!(error.to_string().contains("COMMIT"), "{error}");
        }
        assert!(
            source.inner.pool.get().is_none(),
            "no connection was opened"
        );
    }
}
