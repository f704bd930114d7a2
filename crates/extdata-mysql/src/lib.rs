#![doc = include_str!("../README.md")]

#[cfg(feature = "arrow")]
mod arrow;
mod batch;
mod classify;
mod connect;
mod error;
mod pool;
mod stream;
mod types;

use std::fmt;
use std::sync::Arc;

use extdata_core::driver::{Bound, check_kind, ensure_crypto_provider};
use extdata_core::{
    BackendSpec, Column, DbKind, Dialect, ExternalSource, QueryOptions, Result, ResultSet,
    RowStream, ServerInfo, Statement, Support, ValidConfig, async_trait,
};
use sqlx::{AssertSqlSafe, Executor, SqlSafeStr, Statement as _};
use tokio::time::Instant;

use crate::pool::Inner;

/// The rules of the MySQL / MariaDB backend, used by validation.
pub const SPEC: BackendSpec = BackendSpec {
    udp: Support::No(
        "MySQL and MariaDB are reached over TCP or a unix socket; they do not speak UDP",
    ),
    options: connect::OPTIONS,
    check: Some(connect::check),
    warn: Some(connect::warn),
    ..BackendSpec::server(DbKind::MySql, 3306)
};

/// A MySQL or MariaDB database reached through a sqlx pool.
///
/// [`build`](MySqlSource::build) does no I/O: the pool is created on first use.
/// Every call is bounded by its timeout; when it fires, the statement is stopped on the
/// server with `KILL QUERY` from another connection, and the pooled connection is
/// reused only once it answers again (otherwise it is closed).
#[derive(Clone)]
pub struct MySqlSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for MySqlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.inner.config;
        f.debug_struct("MySqlSource")
            .field("name", &config.name)
            .field("kind", &config.kind)
            .field("endpoint", &config.endpoint.to_string())
            .field("database", &config.database)
            .field("username", &config.username)
            .field("tls", &config.tls.as_ref().map(|t| t.verify))
            .field("read_only", &config.read_only)
            .finish_non_exhaustive()
    }
}

impl MySqlSource {
    /// Builds a source from a validated config. No I/O, no runtime needed.
    pub fn build(config: ValidConfig) -> Result<Self> {
        ensure_crypto_provider();
        check_kind(&config, DbKind::MySql)?;
        Ok(MySqlSource {
            inner: Arc::new(Inner::new(config)?),
        })
    }

    /// The validated config this source was built from.
    pub fn config(&self) -> &ValidConfig {
        &self.inner.config
    }
}

#[async_trait]
impl ExternalSource for MySqlSource {
    fn name(&self) -> &str {
        &self.inner.config.name
    }

    fn kind(&self) -> DbKind {
        DbKind::MySql
    }

    async fn ping(&self) -> Result<ServerInfo> {
        let inner = &self.inner;
        let timeout = inner.config.query_timeout;
        let lease = inner
            .lease(
                Instant::now() + timeout,
                inner.session.guard_for(Some(timeout)),
            )
            .await?;
        drop(lease);
        let version = inner.session.version.get().cloned().unwrap_or_default();
        Ok(ServerInfo { version })
    }

    async fn query(&self, statement: &Statement, options: &QueryOptions) -> Result<ResultSet> {
        let timeout = options.timeout_or(self.inner.config.query_timeout);
        let stream = self
            .inner
            .start_rows(statement, Bound::Total(timeout))
            .await?;
        stream
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
        let deadline = Instant::now() + timeout;
        let effect = inner.admit(statement)?;
        let (sql, args) = inner.render(statement)?;
        let mut lease = inner
            .lease(deadline, inner.session.guard_for(Some(timeout)))
            .await?;
        lease.ran(effect);
        let result = tokio::time::timeout_at(
            deadline,
            sqlx::query_with(AssertSqlSafe(sql), args).execute(&mut *lease.conn),
        )
        .await;
        let done = inner
            .settle(lease, result, deadline, ("statement", timeout))
            .await?;
        Ok(done.rows_affected())
    }

    /// One transaction on one connection: all statements apply or none does. The
    /// call's timeout bounds the whole batch; when it fires, the running statement is
    /// stopped with `KILL QUERY` and the transaction rolled back (or the connection
    /// closed). Statements that commit implicitly (DDL) end the transaction early.
    async fn execute_batch(
        &self,
        statements: &[Statement],
        options: &QueryOptions,
    ) -> Result<Vec<u64>> {
        self.inner.run_batch(statements, options).await
    }

    fn batches_are_atomic(&self) -> bool {
        true
    }

    async fn describe(&self, statement: &Statement, options: &QueryOptions) -> Result<Vec<Column>> {
        let inner = &self.inner;
        inner.lifecycle.check_open(&inner.config.name)?;
        let timeout = options.timeout_or(inner.config.query_timeout);
        let deadline = Instant::now() + timeout;
        // Prepared, never run: nothing to discard afterwards, but a read-only connector
        // refuses the same statements here as everywhere.
        inner.admit(statement)?;
        // Parameters only need to exist.
        let rendered = statement
            .render(Dialect::MySql)
            .map_err(|e| e.with_connector(inner.config.name.clone()))?;
        let mut lease = inner
            .lease(deadline, inner.session.guard_for(Some(timeout)))
            .await?;
        let timestamps = inner.session.timestamps;
        let result = tokio::time::timeout_at(deadline, async {
            let prepared = lease
                .conn
                .prepare(AssertSqlSafe(rendered.sql).into_sql_str())
                .await?;
            Ok::<_, sqlx::Error>(
                prepared
                    .columns()
                    .iter()
                    .map(|c| types::column(c, timestamps))
                    .collect(),
            )
        })
        .await;
        inner
            .settle(lease, result, deadline, ("describe", timeout))
            .await
    }

    async fn close(&self) {
        self.inner.lifecycle.close();
        if let Some(pool) = self.inner.pool.get() {
            pool.close().await;
        }
    }

    /// `Some(self)`: the facade reaches `MySqlSource::stream_batches` (feature `arrow`)
    /// through it.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
