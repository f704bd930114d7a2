#![doc = include_str!("../README.md")]

mod batch;
mod connect;
mod error;
mod guard;
mod pool;
mod run;
mod stream;
mod types;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use extdata_core::driver::{Lifecycle, check_kind, timeout_error};
use extdata_core::{
    BackendSpec, Column, DbKind, Dialect, Error, ErrorKind, ExternalSource, QueryOptions, Result,
    ResultSet, RowStream, ServerInfo, Statement, Support, ValidConfig, async_trait,
};
use futures::FutureExt;
use tokio::sync::{OnceCell, watch};

use crate::connect::Settings;
use crate::pool::Pools;
use crate::run::{Call, Shared};

/// The rules of SQLite connectors, for
/// [`ConnectorConfig::validate_with`](extdata_core::ConnectorConfig::validate_with).
///
/// SQLite is embedded: no host, port, TLS, unix socket or UDP. `database` is a file path
/// or `:memory:`. The known options are listed in the crate's README.
pub const SPEC: BackendSpec = BackendSpec {
    tls: Support::No(
        "SQLite is an embedded database: it runs inside this process and has no network \
         connection to encrypt",
    ),
    unix: Support::No("SQLite is an embedded database: it opens a file, not a socket"),
    udp: Support::No("SQLite is an embedded database: it opens a file, not a network address"),
    options: connect::OPTIONS,
    check: Some(connect::check),
    warn: Some(connect::warn),
    ..BackendSpec::embedded(DbKind::Sqlite, "SQLite is an embedded database")
};

/// A SQLite database (a file or `:memory:`) reached through a pool of sqlx connections.
///
/// Built without I/O by [`SqliteSource::build`]; the pool opens on first use. Every call
/// is bounded by its timeout: a statement that runs too long is interrupted inside SQLite
/// and its connection is reused (or discarded when it cannot be stopped, e.g. while it
/// waits for another connection's lock).
pub struct SqliteSource {
    name: String,
    query_timeout: Duration,
    connect_timeout: Duration,
    read_only: bool,
    settings: Settings,
    pools: OnceCell<Pools>,
    shared: Shared,
    close_signal: watch::Sender<bool>,
}

impl SqliteSource {
    /// Builds a source from a configuration validated with [`SPEC`]. Does no I/O and
    /// needs no async runtime.
    pub fn build(config: ValidConfig) -> Result<Self> {
        check_kind(&config, DbKind::Sqlite)?;
        // `ValidConfig` can be built by hand: keep the checks that protect the file name.
        let mut problems = Vec::new();
        connect::check(&config, &mut problems);
        if let Some((field, message)) = problems.into_iter().next() {
            return Err(config.error(ErrorKind::Config, format!("{field}: {message}")));
        }
        let settings = Settings::from_config(&config);
        let (close_signal, close_receiver) = watch::channel(false);
        Ok(SqliteSource {
            shared: Shared {
                connector: config.name.as_str().into(),
                database: settings.display.as_str().into(),
                on_missing: settings.on_missing,
                busy_timeout: settings.busy_timeout,
                lifecycle: Arc::new(Lifecycle::new()),
                close_signal: close_receiver,
            },
            name: config.name,
            query_timeout: config.query_timeout,
            connect_timeout: config.connect_timeout,
            read_only: config.read_only,
            settings,
            pools: OnceCell::new(),
            close_signal,
        })
    }

    /// The database file, or `:memory:`.
    pub fn database(&self) -> &str {
        &self.settings.display
    }

    fn check_open(&self) -> Result<()> {
        self.shared.lifecycle.check_open(&self.name)
    }

    /// Prepares `statement` and takes a connection for it within the call's timeout.
    async fn begin(
        &self,
        statement: &Statement,
        options: &QueryOptions,
        operation: &'static str,
    ) -> Result<(sqlx::pool::PoolConnection<sqlx::Sqlite>, Call)> {
        let Prepared {
            sql,
            args,
            discard_connection,
        } = self.prepare(statement)?;
        let timeout = options.timeout_or(self.query_timeout);
        let deadline = Instant::now() + timeout;
        let conn = self
            .connection(operation, timeout, deadline, discard_connection)
            .await?;
        Ok((
            conn,
            Call {
                sql,
                args,
                timeout,
                deadline,
            },
        ))
    }

    /// Renders `statement` for SQLite, checks it (see `guard`) and binds its values.
    fn prepare(&self, statement: &Statement) -> Result<Prepared> {
        let rendered = statement
            .render(Dialect::Sqlite)
            .map_err(|e| e.with_connector(&self.name))?;
        let checked = guard::check(&rendered.sql).map_err(|e| e.with_connector(&self.name))?;
        let names = statement.placeholder_names(Dialect::Sqlite);
        let args = types::bind_parameters(rendered.params, &names)
            .map_err(|e| e.with_connector(&self.name))?;
        Ok(Prepared {
            sql: rendered.sql,
            args,
            discard_connection: checked.pragma,
        })
    }
}

/// A statement rendered, checked and bound, ready to run.
struct Prepared {
    sql: String,
    args: sqlx::sqlite::SqliteArguments,
    /// The statement is a `PRAGMA`: SQLite applies a pragma while it prepares it, so its
    /// connection is closed after the call rather than handed to the next one, whatever
    /// the pragma did (the guard refuses those that set; this holds if one slipped by).
    discard_connection: bool,
}

impl fmt::Debug for SqliteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSource")
            .field("name", &self.name)
            .field("kind", &DbKind::Sqlite)
            .field("database", &self.settings.display)
            .field("read_only", &self.read_only)
            .field("closed", &self.shared.lifecycle.is_closed())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ExternalSource for SqliteSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> DbKind {
        DbKind::Sqlite
    }

    async fn ping(&self) -> Result<ServerInfo> {
        let timeout = self.query_timeout;
        let deadline = Instant::now() + timeout;
        let conn = self.connection("ping", timeout, deadline, false).await?;
        let version = run::bounded(conn, &self.shared, "ping", timeout, deadline, |conn| {
            sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
                .fetch_one(conn)
                .boxed()
        })
        .await?;
        Ok(ServerInfo { version })
    }

    async fn query(&self, statement: &Statement, options: &QueryOptions) -> Result<ResultSet> {
        // The whole call, not only each row, is bounded: `query` serves lookups that must
        // answer in time. Dropping the stream at the deadline interrupts the statement.
        let timeout = options.timeout_or(self.query_timeout);
        let deadline = Instant::now() + timeout;
        let collected = tokio::time::timeout_at(deadline.into(), async {
            self.stream(statement, options)
                .await?
                .collect_limited(Some(options.max_rows_or_default()))
                .await
        })
        .await;
        match collected {
            Ok(result) => result,
            Err(_) => {
                self.check_open()?;
                Err(timeout_error(&self.name, "query", timeout))
            }
        }
    }

    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream> {
        let (conn, call) = self.begin(statement, options, "stream").await?;
        stream::stream(conn, self.shared.clone(), call).await
    }

    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        let (conn, call) = self.begin(statement, options, "execute").await?;
        let Call {
            sql,
            args,
            timeout,
            deadline,
        } = call;
        let may_open_transaction = run::may_open_transaction(&sql);
        let (affected, left_open) =
            run::bounded(conn, &self.shared, "execute", timeout, deadline, |conn| {
                async move {
                    let done = match sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                        .execute(&mut *conn)
                        .await
                    {
                        Ok(done) => done,
                        Err(e) => {
                            // Whatever failed, no transaction may stay open on the pooled
                            // connection. The statement's own error is the one to report.
                            if may_open_transaction {
                                let _ = run::roll_back_open_transaction(conn).await;
                            }
                            return Err(e);
                        }
                    };
                    let left_open =
                        may_open_transaction && run::roll_back_open_transaction(conn).await?;
                    Ok((done.rows_affected(), left_open))
                }
                .boxed()
            })
            .await?;
        if left_open {
            // The next call may run on another connection: a transaction cannot span calls.
            return Err(Error::new(
                ErrorKind::Query,
                "execute: the statement left a transaction open; it was rolled back (a \
                 transaction cannot span calls, and a call runs one statement: use \
                 execute_batch for statements that must apply together)",
            )
            .with_connector(&self.name));
        }
        Ok(affected)
    }

    async fn execute_batch(
        &self,
        statements: &[Statement],
        options: &QueryOptions,
    ) -> Result<Vec<u64>> {
        self.run_batch(statements, options).await
    }

    /// SQLite runs a batch in one transaction (`BEGIN IMMEDIATE` … `COMMIT`).
    fn batches_are_atomic(&self) -> bool {
        true
    }

    async fn describe(&self, statement: &Statement, options: &QueryOptions) -> Result<Vec<Column>> {
        // Parameters are not bound to prepare; rendering still checks they all have values.
        let (conn, call) = self.begin(statement, options, "describe").await?;
        let (sql, timeout, deadline) = (call.sql, call.timeout, call.deadline);
        run::bounded(conn, &self.shared, "describe", timeout, deadline, |conn| {
            run::describe(conn, sql).boxed()
        })
        .await
    }

    async fn close(&self) {
        self.shared.lifecycle.close();
        let _ = self.close_signal.send(true);
        self.close_pool().await;
    }
}
