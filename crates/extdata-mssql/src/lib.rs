#![doc = include_str!("../README.md")]

mod connect;
mod error;
mod read_only;
mod types;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use extdata_core::{
    BackendSpec, Column, Columns, DbKind, Error, ErrorKind, ExternalSource, QueryOptions, Result,
    ResultSet, Row, RowStream, ServerInfo, Statement, Support, ValidConfig, async_trait,
    closed_error,
};
use futures::TryStreamExt;
use tiberius::{ColumnData, ColumnType, Query, QueryItem};
use tokio::sync::{OnceCell, mpsc, oneshot};
use tokio::time::Instant;

use crate::connect::{Connection, Settings, TlsFiles};
use crate::error::{Stage, is_connection_broken, map_error};

/// SQL Server's TCP port when the form leaves it empty.
pub const DEFAULT_PORT: u16 = 1433;

/// The rules of the SQL Server backend, used by validation.
pub const SPEC: BackendSpec = BackendSpec {
    kind: DbKind::MsSql,
    default_port: Some(DEFAULT_PORT),
    needs_host: true,
    needs_database: false,
    tls: Support::Yes,
    unix: Support::No(connect::UNIX_REASON),
    udp: Support::Yes,
    options: connect::OPTIONS,
    option_prefixes: &[],
    check: Some(connect::check),
    warn: Some(connect::warn),
};

/// Rows buffered between the connection and a [`RowStream`] consumer: the server is
/// read no further ahead than this (and TCP's window).
const STREAM_BUFFER_ROWS: usize = 64;

/// How long a timed-out call waits for the server to acknowledge the ATTENTION (the
/// cancel) before returning; the rest of the clean-up carries on in the background.
const CANCEL_WAIT: Duration = Duration::from_secs(1);

/// How long the rest of an abandoned result is read before it is cancelled instead.
const DRAIN_BUDGET: Duration = Duration::from_millis(50);

/// How long the server may take to acknowledge an ATTENTION before the connection is
/// closed instead of reused.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

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

struct Inner {
    config: ValidConfig,
    settings: Settings,
    pool: OnceCell<Pool>,
    closed: AtomicBool,
}

type Pool = managed::Pool<ConnectionManager>;
type Lease = Object<ConnectionManager>;

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

/// Opens connections and checks them before reuse.
struct ConnectionManager {
    config: ValidConfig,
    settings: Settings,
    /// Client certificate and key files, when the config has an identity.
    files: Option<TlsFiles>,
}

impl fmt::Debug for ConnectionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionManager")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl managed::Manager for ConnectionManager {
    type Type = Connection;
    type Error = Error;

    async fn create(&self) -> Result<Connection> {
        connect::open(&self.config, &self.settings, self.files.as_ref()).await
    }

    /// Reuses a connection only if it is within the pool's lifetimes and answers
    /// `SELECT 1` with 1 (an idle connection may have been closed by the server or a
    /// firewall; one whose cancel went wrong may be out of step).
    async fn recycle(&self, conn: &mut Connection, metrics: &Metrics) -> RecycleResult<Error> {
        let pool = &self.config.pool;
        if pool.max_lifetime.is_some_and(|limit| metrics.age() > limit) {
            return Err(RecycleError::message("older than pool.max_lifetime"));
        }
        if pool
            .idle_timeout
            .is_some_and(|limit| metrics.last_used() > limit)
        {
            return Err(RecycleError::message("idle longer than pool.idle_timeout"));
        }
        let answer = async {
            let row = conn.simple_query("SELECT 1").await?.into_row().await?;
            Ok::<_, tiberius::error::Error>(row.and_then(|r| r.get::<i32, _>(0)))
        }
        .await;
        match answer {
            Ok(Some(1)) => Ok(()),
            Ok(_) => Err(RecycleError::message(
                "the connection did not answer SELECT 1",
            )),
            Err(e) => Err(RecycleError::Backend(map_error(
                &self.config,
                &self.settings,
                Stage::Statement,
                e,
            ))),
        }
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

/// How a statement's rows task ended.
enum End {
    /// Every token was read: the connection is clean.
    Done,
    /// The server or the driver failed; `broken` when the connection is unusable.
    Failed { broken: bool },
    /// The consumer went away with the request still running: cancel it.
    Abandoned,
    /// The call's time ran out: cancel it and report the timeout.
    TimedOut,
}

/// Reads and drops what is left of an abandoned result for up to [`DRAIN_BUDGET`]: a
/// result that ends within it leaves the connection clean without a cancel. tiberius
/// only reads an ATTENTION acknowledgement inside the response it cancels, so a cancel
/// sent after the last packet already arrived fails and costs the connection.
async fn drain(stream: &mut tiberius::QueryStream<'_>) -> End {
    let deadline = Instant::now() + DRAIN_BUDGET;
    loop {
        match tokio::time::timeout_at(deadline, stream.try_next()).await {
            Ok(Ok(None)) => return End::Done,
            Ok(Ok(Some(_))) => {}
            Ok(Err(e)) => {
                return End::Failed {
                    broken: is_connection_broken(&e),
                };
            }
            Err(_) => return End::Abandoned,
        }
    }
}

/// How a call bounds its time.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// The whole call (query, execute, describe, ping).
    Total(Duration),
    /// Each wait for a row of a stream.
    PerRow(Duration),
}

impl Bound {
    fn duration(self) -> Duration {
        match self {
            Bound::Total(d) | Bound::PerRow(d) => d,
        }
    }
}

impl MsSqlSource {
    /// Builds a source from a validated config. No I/O, no runtime needed.
    pub fn build(config: ValidConfig) -> Result<Self> {
        if config.kind != DbKind::MsSql {
            return Err(config.error(
                ErrorKind::Config,
                format!("is a `{}` connector, not mssql", config.kind),
            ));
        }
        let settings = Settings::from_config(&config)?;
        Ok(MsSqlSource {
            inner: Arc::new(Inner {
                config,
                settings,
                pool: OnceCell::new(),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The validated config this source was built from.
    pub fn config(&self) -> &ValidConfig {
        &self.inner.config
    }
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(closed_error(&self.config.name))
        } else {
            Ok(())
        }
    }

    fn timeout_error(&self, operation: &str, after: Duration) -> Error {
        Error::timeout(operation, after).with_connector(self.config.name.clone())
    }

    fn map(&self, err: tiberius::error::Error) -> Error {
        map_error(&self.config, &self.settings, Stage::Statement, err)
    }

    /// The pool, created on first use (writing the client certificate files, if any,
    /// and opening `pool.min_idle` connections in the background).
    async fn pool(&self) -> Result<&Pool> {
        self.pool
            .get_or_try_init(|| async {
                let files = match &self.settings.client_identity {
                    Some((cert, key)) => Some(TlsFiles::write(cert, key).map_err(|e| {
                        self.config.error(
                            ErrorKind::Tls,
                            format!("cannot write the client certificate for tiberius: {e}"),
                        )
                    })?),
                    None => None,
                };
                let manager = ConnectionManager {
                    config: self.config.clone(),
                    settings: self.settings.clone(),
                    files,
                };
                let settings = &self.config.pool;
                let pool = Pool::builder(manager)
                    .max_size(settings.max_size as usize)
                    .runtime(deadpool::Runtime::Tokio1)
                    .wait_timeout(Some(settings.acquire_timeout))
                    // `create` bounds itself by connect_timeout with a better message.
                    .create_timeout(None)
                    .recycle_timeout(Some(self.config.connect_timeout))
                    .build()
                    .map_err(|e| {
                        self.config
                            .error(ErrorKind::Internal, format!("cannot build the pool: {e}"))
                    })?;
                if settings.min_idle > 0 {
                    let warm = pool.clone();
                    let count = settings.min_idle;
                    tokio::spawn(async move {
                        let mut held = Vec::new();
                        for _ in 0..count {
                            match warm.get().await {
                                Ok(conn) => held.push(conn),
                                Err(_) => break,
                            }
                        }
                    });
                }
                Ok(pool)
            })
            .await
    }

    /// A pooled connection (checked by `recycle` when reused), by `deadline`.
    async fn lease(&self, deadline: Instant) -> Result<Lease> {
        self.check_open()?;
        let pool = self.pool().await?;
        let total = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(PoolError::Backend(e))) => Err(e),
            Ok(Err(PoolError::Timeout(_))) => {
                let status = pool.status();
                Err(self.timeout_error(
                    &format!(
                        "waiting for a free connection ({} of {} in use)",
                        status.size.saturating_sub(status.available),
                        status.max_size
                    ),
                    self.config.pool.acquire_timeout,
                ))
            }
            Ok(Err(PoolError::Closed)) => Err(closed_error(&self.config.name)),
            Ok(Err(other)) => Err(self.config.error(
                ErrorKind::Internal,
                format!("the connection pool failed: {other}"),
            )),
            Err(_) => Err(self.timeout_error("waiting for a connection", total)),
        }
    }

    /// After a timeout or an abandoned stream: cancel the request on the server with a
    /// TDS ATTENTION. The connection goes back to the pool only when the server
    /// acknowledged it within [`CANCEL_TIMEOUT`]; otherwise it is taken out and closed.
    async fn cancel(self: Arc<Self>, mut conn: Lease, done: Option<oneshot::Sender<()>>) {
        let result = tokio::time::timeout(CANCEL_TIMEOUT, conn.cancel_query()).await;
        if let Some(done) = done {
            let _ = done.send(());
        }
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(connector = %self.config.name, error = %self.map(e), "cancelling a request failed; closing its connection");
                drop(Object::take(conn));
            }
            Err(_) => {
                tracing::warn!(connector = %self.config.name, "the server did not acknowledge the cancel in time; closing its connection");
                drop(Object::take(conn));
            }
        }
    }

    /// Cancels in the background, waiting at most [`CANCEL_WAIT`] for the server's
    /// acknowledgement, so that the caller sees the request gone when it gets the error.
    async fn cancel_and_wait(self: &Arc<Self>, conn: Lease) {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(self.clone().cancel(conn, Some(tx)));
        let _ = tokio::time::timeout(CANCEL_WAIT, rx).await;
    }

    /// The SQL and parameters to send; on a read-only connector only after the strict
    /// check of [`read_only`] passed.
    fn render(&self, statement: &Statement) -> Result<(String, Vec<ColumnData<'static>>)> {
        let (sql, params) =
            types::render(statement).map_err(|e| e.with_connector(self.config.name.clone()))?;
        if self.config.read_only
            && let Some(why) = read_only::refusal(&sql)
        {
            return Err(self.config.error(ErrorKind::ReadOnly, why));
        }
        Ok((sql, params))
    }

    /// Runs a statement and sends its columns, then the rows of its first result set,
    /// to the channels.
    #[allow(clippy::too_many_arguments)]
    async fn run_rows(
        self: Arc<Self>,
        mut conn: Lease,
        (sql, params): (String, Vec<ColumnData<'static>>),
        bound: Bound,
        started: Instant,
        columns_tx: oneshot::Sender<Result<Columns>>,
        rows_tx: mpsc::Sender<Result<Row>>,
    ) {
        let deadline_for_wait = |now: Instant| match bound {
            Bound::Total(d) => started + d,
            Bound::PerRow(d) => now + d,
        };
        let mut columns_tx = Some(columns_tx);
        let send_error = |columns_tx: &mut Option<oneshot::Sender<Result<Columns>>>, err: Error| {
            let rows_tx = rows_tx.clone();
            let columns_tx = columns_tx.take();
            async move {
                match columns_tx {
                    Some(tx) => {
                        let _ = tx.send(Err(err));
                    }
                    None => {
                        let _ = rows_tx.send(Err(err)).await;
                    }
                }
            }
        };
        let end = 'run: {
            let mut query = Query::new(sql);
            for param in params {
                query.bind(param);
            }
            let started_query =
                tokio::time::timeout_at(deadline_for_wait(Instant::now()), query.query(&mut conn))
                    .await;
            let mut stream = match started_query {
                Err(_) => break 'run End::TimedOut,
                Ok(Err(e)) => {
                    let broken = is_connection_broken(&e);
                    send_error(&mut columns_tx, self.map(e)).await;
                    break 'run End::Failed { broken };
                }
                Ok(Ok(stream)) => stream,
            };
            let described =
                tokio::time::timeout_at(deadline_for_wait(Instant::now()), stream.columns()).await;
            let (columns, mut column_types): (Columns, Vec<ColumnType>) = match described {
                Err(_) => break 'run End::TimedOut,
                Ok(Err(e)) => {
                    let broken = is_connection_broken(&e);
                    send_error(&mut columns_tx, self.map(e)).await;
                    break 'run End::Failed { broken };
                }
                Ok(Ok(None)) => (Vec::new().into(), Vec::new()),
                Ok(Ok(Some(columns))) => (
                    columns.iter().map(types::column).collect::<Vec<_>>().into(),
                    columns.iter().map(|c| c.column_type()).collect(),
                ),
            };
            if let Some(tx) = columns_tx.take()
                && tx.send(Ok(columns.clone())).is_err()
            {
                break 'run End::Abandoned;
            }
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout_at(deadline_for_wait(Instant::now()), stream.try_next()) => next,
                    _ = rows_tx.closed() => break 'run drain(&mut stream).await,
                };
                match next {
                    Err(_) => break 'run End::TimedOut,
                    Ok(Ok(None)) => break 'run End::Done,
                    Ok(Err(e)) => {
                        let broken = is_connection_broken(&e);
                        send_error(&mut columns_tx, self.map(e)).await;
                        break 'run End::Failed { broken };
                    }
                    // Later result sets (a batch of several SELECTs) are read and
                    // dropped: a RowStream has one set of columns.
                    Ok(Ok(Some(QueryItem::Metadata(meta)))) => {
                        if meta.result_index() == 0 {
                            column_types = meta.columns().iter().map(|c| c.column_type()).collect();
                        }
                    }
                    Ok(Ok(Some(QueryItem::Row(row)))) => {
                        if row.result_index() != 0 {
                            continue;
                        }
                        let decoded = row
                            .into_iter()
                            .zip(column_types.iter())
                            .map(|(data, column_type)| types::decode(*column_type, data))
                            .collect::<Result<Vec<_>>>()
                            .map(|values| Row::new(columns.clone(), values))
                            .map_err(|e| e.with_connector(self.config.name.clone()));
                        let failed = decoded.is_err();
                        if rows_tx.send(decoded).await.is_err() || failed {
                            // An error ends the stream; the rest of the result is dropped.
                            break 'run drain(&mut stream).await;
                        }
                    }
                }
            }
        };
        match end {
            End::Done => {}
            End::Failed { broken } => {
                if broken {
                    drop(Object::take(conn));
                }
            }
            End::Abandoned => self.cancel(conn, None).await,
            End::TimedOut => {
                let what = match bound {
                    Bound::Total(_) => "query",
                    Bound::PerRow(_) => "waiting for the next row",
                };
                let err = self.timeout_error(what, bound.duration());
                let (done_tx, done_rx) = oneshot::channel();
                let cancel = tokio::spawn(self.clone().cancel(conn, Some(done_tx)));
                let _ = tokio::time::timeout(CANCEL_WAIT, done_rx).await;
                send_error(&mut columns_tx, err).await;
                let _ = cancel.await;
            }
        }
    }

    /// Starts a statement whose rows are read by a task; returns once the columns are
    /// known.
    async fn start_rows(
        self: &Arc<Self>,
        statement: &Statement,
        bound: Bound,
    ) -> Result<(Columns, mpsc::Receiver<Result<Row>>)> {
        self.check_open()?;
        let started = Instant::now();
        let rendered = self.render(statement)?;
        let conn = self.lease(started + bound.duration()).await?;
        let (columns_tx, columns_rx) = oneshot::channel();
        let (rows_tx, rows_rx) = mpsc::channel(STREAM_BUFFER_ROWS);
        tokio::spawn(
            self.clone()
                .run_rows(conn, rendered, bound, started, columns_tx, rows_tx),
        );
        match columns_rx.await {
            Ok(Ok(columns)) => Ok((columns, rows_rx)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.config.error(
                ErrorKind::Internal,
                "the statement's task ended unexpectedly",
            )),
        }
    }

    /// Runs `work` on a pooled connection within `timeout`; on timeout the request is
    /// cancelled on the server and the connection reused only if that worked.
    async fn with_connection<T, F>(
        self: &Arc<Self>,
        timeout: Duration,
        operation: &str,
        work: F,
    ) -> Result<T>
    where
        F: for<'c> FnOnce(
            &'c mut Connection,
        )
            -> futures::future::BoxFuture<'c, Result<T, tiberius::error::Error>>,
    {
        let deadline = Instant::now() + timeout;
        let mut conn = self.lease(deadline).await?;
        let result = tokio::time::timeout_at(deadline, work(&mut conn)).await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if is_connection_broken(&e) {
                    drop(Object::take(conn));
                }
                Err(self.map(e))
            }
            Err(_) => {
                self.cancel_and_wait(conn).await;
                Err(self.timeout_error(operation, timeout))
            }
        }
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
        inner.check_open()?;
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
        let (columns, rows) = self
            .inner
            .start_rows(statement, Bound::Total(timeout))
            .await?;
        RowStream::new(columns, receiver_stream(rows))
            .collect_limited(Some(options.max_rows_or_default()))
            .await
    }

    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream> {
        let timeout = options.timeout_or(self.inner.config.query_timeout);
        let (columns, rows) = self
            .inner
            .start_rows(statement, Bound::PerRow(timeout))
            .await?;
        Ok(RowStream::new(columns, receiver_stream(rows)))
    }

    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        let inner = &self.inner;
        inner.check_open()?;
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
        inner.check_open()?;
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
        self.inner.closed.store(true, Ordering::Release);
        if let Some(pool) = self.inner.pool.get() {
            pool.close();
        }
    }
}

fn receiver_stream(
    rows: mpsc::Receiver<Result<Row>>,
) -> impl futures::Stream<Item = Result<Row>> + Send + 'static {
    futures::stream::unfold(rows, |mut rows| async move {
        rows.recv().await.map(|row| (row, rows))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use extdata_core::{ConnectorConfig, SecretSource};

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
        assert_eq!(source.ping().await.unwrap_err().kind(), ErrorKind::Closed);
        assert_eq!(
            source.query(&statement, &options).await.unwrap_err().kind(),
            ErrorKind::Closed
        );
        assert_eq!(
            source
                .execute(&statement, &options)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::Closed
        );
        assert_eq!(
            source
                .describe(&statement, &options)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::Closed
        );
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
