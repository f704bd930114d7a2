#![doc = include_str!("../README.md")]

mod call;
mod connect;
mod error;
mod pool;
mod stream;
mod types;

use std::fmt;
use std::sync::Arc;

use extdata_core::driver::{Bound, check_kind};
use extdata_core::{
    BackendSpec, Column, DbKind, ExternalSource, QueryOptions, Result, RowStream, ServerInfo,
    Statement, Support, ValidConfig, async_trait,
};
use tokio::time::Instant;

use crate::call::{begin_call, end_call};
use crate::error::{Code, code_of};
use crate::pool::Inner;
use crate::stream::row_stream;

/// The rules of the Oracle backend, used by validation.
// The service may come from options.service_name, options.sid or options.connect_string
// instead of `database`: `connect::check` requires one of them.
pub const SPEC: BackendSpec = BackendSpec {
    udp: Support::No("Oracle Net runs over TCP, TCPS or IPC; it does not speak UDP"),
    options: connect::OPTIONS,
    check: Some(connect::check),
    warn: Some(connect::warn),
    ..BackendSpec::server(DbKind::Oracle, 1521)
};

/// An Oracle database reached through ODPI-C (the `oracle` crate) and a deadpool pool.
///
/// [`build`](OracleSource::build) does no I/O and loads no library: the pool, and
/// with it Oracle's client library, is set up on first use. Every call runs on a
/// blocking thread; when its timeout fires the call is broken on the server
/// (`OCIBreak`) and its connection is closed instead of pooled.
#[derive(Clone)]
pub struct OracleSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for OracleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.inner.config;
        f.debug_struct("OracleSource")
            .field("name", &config.name)
            .field("kind", &config.kind)
            .field("endpoint", &connect::endpoint_text(config))
            .field("username", &config.username)
            .field("tls", &config.tls.as_ref().map(|t| t.verify))
            .field("read_only", &config.read_only)
            .finish_non_exhaustive()
    }
}

impl OracleSource {
    /// Builds a source from a validated config. No I/O, no runtime needed, and the
    /// Oracle client library is not loaded yet.
    pub fn build(config: ValidConfig) -> Result<Self> {
        check_kind(&config, DbKind::Oracle)?;
        Ok(OracleSource {
            inner: Arc::new(Inner::new(config)),
        })
    }

    /// The validated config this source was built from.
    pub fn config(&self) -> &ValidConfig {
        &self.inner.config
    }
}

#[async_trait]
impl ExternalSource for OracleSource {
    fn name(&self) -> &str {
        &self.inner.config.name
    }

    fn kind(&self) -> DbKind {
        DbKind::Oracle
    }

    async fn ping(&self) -> Result<ServerInfo> {
        let inner = &self.inner;
        inner.lifecycle.check_open(&inner.config.name)?;
        let version = inner
            .run("ping", inner.config.query_timeout, |conn| {
                conn.ping()?;
                let (version, _banner) = conn.server_version()?;
                Ok(version.to_string())
            })
            .await?;
        Ok(ServerInfo { version })
    }

    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream> {
        let bound = Bound::PerRow(options.timeout_or(self.inner.config.query_timeout));
        let started = Instant::now();
        let parts = self.inner.start_rows(statement, bound).await?;
        Ok(row_stream(&self.inner, parts, bound, started))
    }

    async fn query(
        &self,
        statement: &Statement,
        options: &QueryOptions,
    ) -> Result<extdata_core::ResultSet> {
        let bound = Bound::Total(options.timeout_or(self.inner.config.query_timeout));
        let started = Instant::now();
        let parts = self.inner.start_rows(statement, bound).await?;
        row_stream(&self.inner, parts, bound, started)
            .collect_limited(Some(options.max_rows_or_default()))
            .await
    }

    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        let inner = &self.inner;
        inner.lifecycle.check_open(&inner.config.name)?;
        let timeout = options.timeout_or(inner.config.query_timeout);
        let prepared = inner.prepare(statement)?;
        let read_only = inner.config.read_only;
        let name = inner.config.name.clone();
        inner
            .run("statement", timeout, move |conn| {
                let mut stmt = conn.statement(&prepared.sql).build()?;
                begin_call(conn, read_only, stmt.statement_type(), &name)?;
                let outcome = stmt.execute(&prepared.params()).and_then(|()| {
                    if stmt.is_dml() {
                        stmt.row_count()
                    } else {
                        Ok(0)
                    }
                });
                let ended = end_call(conn, read_only);
                let affected = outcome?;
                ended?;
                Ok(affected)
            })
            .await
    }

    async fn describe(&self, statement: &Statement, options: &QueryOptions) -> Result<Vec<Column>> {
        let inner = &self.inner;
        inner.lifecycle.check_open(&inner.config.name)?;
        let timeout = options.timeout_or(inner.config.query_timeout);
        let prepared = inner.prepare(statement)?;
        inner
            .run("describe", timeout, move |conn| {
                let stmt = conn.statement(&prepared.sql).build()?;
                if !stmt.is_query() {
                    return Ok(Vec::new());
                }
                drop(stmt);
                // The query as an inline view that yields no row: the server plans
                // it and reports its columns without producing its rows. Newlines
                // keep a trailing `--` comment from swallowing the `)`.
                let wrapped = format!("SELECT * FROM (\n{}\n) WHERE 1 = 0", prepared.sql);
                let params = prepared.params();
                let mut stmt = conn.statement(&wrapped).build()?;
                let described = match stmt.query(&params) {
                    Ok(rows) => Ok(rows.column_info().iter().map(types::column).collect()),
                    Err(e) => Err(e),
                };
                match described {
                    Ok(columns) => Ok(columns),
                    // ORA-00918: duplicate column names cannot be selected from an
                    // inline view; run the query itself and read only its columns.
                    Err(e) if code_of(&e) == Code::Ora(918) => {
                        let mut stmt = conn.statement(&prepared.sql).prefetch_rows(0).build()?;
                        let rows = stmt.query(&params)?;
                        Ok(rows.column_info().iter().map(types::column).collect())
                    }
                    Err(e) => Err(e.into()),
                }
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

    #[test]
    fn spec_refuses_udp_and_defaults_to_1521() {
        assert_eq!(SPEC.default_port, Some(1521));
        assert!(matches!(SPEC.udp, Support::No(_)));
        assert!(matches!(SPEC.unix, Support::Yes));
    }
}
