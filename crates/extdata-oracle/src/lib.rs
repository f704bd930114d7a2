#![doc = include_str!("../README.md")]

mod connect;
mod error;
mod types;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use deadpool::managed::{Object, Pool, PoolError, TimeoutType};
use extdata_core::{
    BackendSpec, Column, Columns, DbKind, Dialect, Error, ErrorKind, ExternalSource, QueryOptions,
    Result, Row, RowStream, ServerInfo, Statement, Support, ValidConfig, async_trait, closed_error,
};
use oracle::sql_type::ToSql;
use oracle::{Connection, StatementType};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::connect::{Manager, Settings};
use crate::error::{Code, Stage, code_of, is_fatal, map_error};
use crate::types::Bind;

/// The rules of the Oracle backend, used by validation.
pub const SPEC: BackendSpec = BackendSpec {
    kind: DbKind::Oracle,
    default_port: Some(1521),
    needs_host: true,
    // The service may come from options.service_name, options.sid or
    // options.connect_string instead; `connect::check` requires one of them.
    needs_database: false,
    tls: Support::Yes,
    unix: Support::Yes,
    udp: Support::No("Oracle Net runs over TCP, TCPS or IPC; it does not speak UDP"),
    options: connect::OPTIONS,
    option_prefixes: &[],
    check: Some(connect::check),
    warn: Some(connect::warn),
};

/// Batches of rows buffered between the fetching thread and a [`RowStream`]
/// consumer: the server is read no further ahead than this many fetch batches.
const STREAM_BUFFER_BATCHES: usize = 2;

/// How much later than the connector's own timer ODPI-C's call timeout fires: our
/// timer breaks the call first; the call timeout is the backstop if it cannot.
const CALL_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// How long a timed-out call waits for the broken statement to end before returning
/// (its connection is discarded either way).
const BREAK_WAIT: Duration = Duration::from_secs(2);

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

struct Inner {
    config: ValidConfig,
    settings: Settings,
    pool: OnceLock<Pool<Manager>>,
    closed: AtomicBool,
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
        if config.kind != DbKind::Oracle {
            return Err(config.error(
                ErrorKind::Config,
                format!("is a `{}` connector, not oracle", config.kind),
            ));
        }
        let settings = Settings::from_config(&config);
        Ok(OracleSource {
            inner: Arc::new(Inner {
                config,
                settings,
                pool: OnceLock::new(),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The validated config this source was built from.
    pub fn config(&self) -> &ValidConfig {
        &self.inner.config
    }
}

/// Whether a call was broken by the connector's timer, shared by the timer and the
/// thread running the call so that exactly one of them decides.
#[derive(Debug, Default)]
struct CallGuard {
    phase: Mutex<Phase>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Running,
    Done,
    Broken,
}

impl CallGuard {
    /// The timer fired: returns `true` when the call is still running and must be
    /// broken (it is then marked so, and its connection will be discarded).
    fn try_break(&self) -> bool {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        if *phase == Phase::Running {
            *phase = Phase::Broken;
            true
        } else {
            false
        }
    }

    /// The call ended: returns `true` when the timer broke it.
    fn finish(&self) -> bool {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        if *phase == Phase::Running {
            *phase = Phase::Done;
        }
        *phase == Phase::Broken
    }

    fn was_broken(&self) -> bool {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) == Phase::Broken
    }
}

/// Breaks the running call of `conn` from another blocking thread.
fn break_call(conn: Arc<Connection>) {
    tokio::task::spawn_blocking(move || {
        if let Err(e) = conn.break_execution() {
            tracing::debug!(error = %e, "break_execution failed; the call timeout will stop the call");
        }
    });
}

/// How a call bounds its time.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// The whole call (query, execute, describe, ping).
    Total(Duration),
    /// Each wait for a batch of a stream.
    PerRow(Duration),
}

impl Bound {
    fn duration(self) -> Duration {
        match self {
            Bound::Total(d) | Bound::PerRow(d) => d,
        }
    }
}

/// A statement ready to run on a blocking thread.
struct Prepared {
    sql: String,
    binds: Vec<Bind>,
}

impl Prepared {
    fn params(&self) -> Vec<&dyn ToSql> {
        self.binds.iter().map(|b| b as &dyn ToSql).collect()
    }
}

/// What a blocking call failed with.
enum Failure {
    Oracle(oracle::Error),
    Ours(Error),
}

impl From<oracle::Error> for Failure {
    fn from(e: oracle::Error) -> Self {
        Failure::Oracle(e)
    }
}

impl Inner {
    fn pool(&self) -> Result<&Pool<Manager>> {
        if let Some(pool) = self.pool.get() {
            return Ok(pool);
        }
        let settings = &self.config.pool;
        let manager = Manager {
            config: self.config.clone(),
            settings: self.settings.clone(),
        };
        let pool = Pool::builder(manager)
            .max_size(settings.max_size.max(1) as usize)
            .wait_timeout(Some(settings.acquire_timeout))
            // Oracle Net's own CONNECT_TIMEOUT (in the connect string) acts first.
            .create_timeout(Some(self.config.connect_timeout + CALL_TIMEOUT_MARGIN))
            .recycle_timeout(Some(self.config.connect_timeout + CALL_TIMEOUT_MARGIN))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| {
                self.config
                    .error(ErrorKind::Internal, format!("cannot build the pool: {e}"))
            })?;
        Ok(self.pool.get_or_init(|| pool))
    }

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

    fn prepare(&self, statement: &Statement) -> Result<Prepared> {
        let rendered = statement
            .render(Dialect::Oracle)
            .map_err(|e| e.with_connector(self.config.name.clone()))?;
        let binds = rendered
            .params
            .iter()
            .map(types::bind)
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.with_connector(self.config.name.clone()))?;
        Ok(Prepared {
            sql: rendered.sql,
            binds,
        })
    }

    /// A pooled connection, waiting at most until `deadline`.
    async fn acquire(&self, deadline: Instant, total: Duration) -> Result<Object<Manager>> {
        self.check_open()?;
        let pool = self.pool()?;
        match tokio::time::timeout_at(deadline, pool.get()).await {
            Err(_) => Err(self.timeout_error("waiting for a connection", total)),
            Ok(Ok(object)) => Ok(object),
            Ok(Err(PoolError::Backend(e))) => Err(e),
            Ok(Err(PoolError::Timeout(TimeoutType::Wait))) => {
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
            Ok(Err(PoolError::Timeout(_))) => Err(self.timeout_error(
                &format!("connecting to {}", connect::endpoint_text(&self.config)),
                self.config.connect_timeout,
            )),
            Ok(Err(PoolError::Closed)) => Err(closed_error(&self.config.name)),
            Ok(Err(e)) => Err(self
                .config
                .error(ErrorKind::Internal, format!("the pool failed: {e}"))),
        }
    }

    fn map(&self, failure: Failure, broken_by_us: bool) -> Error {
        match failure {
            Failure::Ours(e) => e,
            Failure::Oracle(e) => map_error(&self.config, Stage::Statement, &e, broken_by_us),
        }
    }

    /// Runs `work` on a blocking thread with a pooled connection, bounded by
    /// `timeout`: when it fires the call is broken and its connection discarded.
    async fn run<T, F>(&self, operation: &str, timeout: Duration, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> std::result::Result<T, Failure> + Send + 'static,
    {
        let started = Instant::now();
        let deadline = started + timeout;
        let object = self.acquire(deadline, timeout).await?;
        let conn = object.conn.clone();
        let guard = Arc::new(CallGuard::default());
        let call_guard = guard.clone();
        let call_timeout = deadline.saturating_duration_since(Instant::now()) + CALL_TIMEOUT_MARGIN;
        let mut handle = tokio::task::spawn_blocking(move || {
            let mut object = object;
            let result = object
                .conn
                .set_call_timeout(Some(call_timeout))
                .map_err(Failure::from)
                .and_then(|()| work(&object.conn));
            let broken = call_guard.finish();
            discard_if(&mut object, broken, &result);
            result
        });
        let joined = tokio::select! {
            joined = &mut handle => joined,
            () = tokio::time::sleep_until(deadline) => {
                if guard.try_break() {
                    break_call(conn);
                    // Wait a little for the broken call to end, so that the caller
                    // sees the statement gone when it gets the error.
                    let _ = tokio::time::timeout(BREAK_WAIT, &mut handle).await;
                    return Err(self.timeout_error(operation, timeout));
                }
                // It finished just now: take its result.
                handle.await
            }
        };
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(failure)) => Err(self.map(failure, guard.was_broken())),
            Err(e) => Err(self.config.error(
                ErrorKind::Internal,
                format!("the {operation} thread failed: {e}"),
            )),
        }
    }
}

/// Closes the connection instead of pooling it after a break, a timeout or a lost
/// connection.
fn discard_if<T>(
    object: &mut Object<Manager>,
    broken_by_us: bool,
    result: &std::result::Result<T, Failure>,
) {
    let fatal = match result {
        Err(Failure::Oracle(e)) => is_fatal(code_of(e)),
        _ => false,
    };
    if broken_by_us || fatal {
        object.broken = true;
    }
}

/// `SET TRANSACTION READ ONLY` for a read-only connector, after refusing what a
/// read-only transaction does not stop (DDL commits first; PL/SQL may commit).
fn begin_call(
    conn: &Connection,
    read_only: bool,
    statement_type: StatementType,
    connector: &str,
) -> std::result::Result<(), Failure> {
    if !read_only {
        return Ok(());
    }
    match statement_type {
        StatementType::Create
        | StatementType::Alter
        | StatementType::Drop
        | StatementType::Begin
        | StatementType::Declare
        | StatementType::Call
        | StatementType::Commit
        | StatementType::Unknown => {
            return Err(Failure::Ours(
                Error::new(
                    ErrorKind::ReadOnly,
                    format!(
                        "the connector is read-only: {} statements are refused (they could commit past a read-only transaction)",
                        statement_kind(statement_type)
                    ),
                )
                .with_connector(connector.to_owned()),
            ));
        }
        _ => {}
    }
    conn.execute("SET TRANSACTION READ ONLY", &[])?;
    Ok(())
}

fn statement_kind(statement_type: StatementType) -> &'static str {
    match statement_type {
        StatementType::Create | StatementType::Alter | StatementType::Drop => "DDL",
        StatementType::Begin | StatementType::Declare => "PL/SQL",
        StatementType::Call => "CALL",
        StatementType::Commit => "COMMIT",
        _ => "unrecognised",
    }
}

/// Ends the read-only transaction of a read-only connector (nothing to keep).
fn end_call(conn: &Connection, read_only: bool) -> std::result::Result<(), Failure> {
    if read_only {
        conn.rollback()?;
    }
    Ok(())
}

/// A batch of decoded rows, or the error that ended the result.
type Batch = Result<Vec<Row>>;

impl Inner {
    /// Starts a statement whose rows a blocking thread fetches in batches; returns
    /// once the columns are known.
    async fn start_rows(
        self: &Arc<Self>,
        statement: &Statement,
        bound: Bound,
    ) -> Result<(
        Columns,
        mpsc::Receiver<Batch>,
        Arc<CallGuard>,
        Arc<Connection>,
    )> {
        self.check_open()?;
        let started = Instant::now();
        let timeout = bound.duration();
        let prepared = self.prepare(statement)?;
        let object = self.acquire(started + timeout, timeout).await?;
        let conn = object.conn.clone();
        let guard = Arc::new(CallGuard::default());
        let (columns_tx, columns_rx) = oneshot::channel::<Result<Columns>>();
        let (rows_tx, rows_rx) = mpsc::channel::<Batch>(STREAM_BUFFER_BATCHES);
        let call_timeout = timeout + CALL_TIMEOUT_MARGIN;
        let inner = self.clone();
        let fetch_guard = guard.clone();
        tokio::task::spawn_blocking(move || {
            inner.fetch(
                object,
                prepared,
                call_timeout,
                fetch_guard,
                columns_tx,
                rows_tx,
            );
        });
        let deadline = started + timeout;
        tokio::select! {
            columns = columns_rx => match columns {
                Ok(Ok(columns)) => Ok((columns, rows_rx, guard, conn)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(self.config.error(ErrorKind::Internal, "the fetch thread ended unexpectedly")),
            },
            () = tokio::time::sleep_until(deadline) => {
                if guard.try_break() {
                    break_call(conn);
                }
                Err(self.timeout_error("query", timeout))
            }
        }
    }

    /// The blocking side of a stream: run, send the columns, then batches of rows
    /// until the result ends, an error, or the receiver is gone.
    fn fetch(
        &self,
        mut object: Object<Manager>,
        prepared: Prepared,
        call_timeout: Duration,
        guard: Arc<CallGuard>,
        columns_tx: oneshot::Sender<Result<Columns>>,
        rows_tx: mpsc::Sender<Batch>,
    ) {
        let read_only = self.config.read_only;
        let array_size = self.settings.fetch_array_size;
        let mut columns_tx = Some(columns_tx);
        let conn = object.conn.clone();
        let result = (|| -> std::result::Result<(), Failure> {
            conn.set_call_timeout(Some(call_timeout))?;
            let mut builder = conn.statement(&prepared.sql);
            builder.fetch_array_size(array_size);
            if let Some(rows) = self.settings.prefetch_rows {
                builder.prefetch_rows(rows);
            }
            let mut stmt = builder.build()?;
            begin_call(&conn, read_only, stmt.statement_type(), &self.config.name)?;
            let params = prepared.params();
            if !stmt.is_query() {
                stmt.execute(&params)?;
                if let Some(tx) = columns_tx.take() {
                    let _ = tx.send(Ok(Columns::from(Vec::new())));
                }
                return end_call(&conn, read_only);
            }
            let rows = stmt.query(&params)?;
            let columns: Columns = rows
                .column_info()
                .iter()
                .map(types::column)
                .collect::<Vec<Column>>()
                .into();
            let types: Vec<_> = rows
                .column_info()
                .iter()
                .map(|c| c.oracle_type().clone())
                .collect();
            if let Some(tx) = columns_tx.take()
                && tx.send(Ok(columns.clone())).is_err()
            {
                return end_call(&conn, read_only);
            }
            let mut batch = Vec::with_capacity(array_size as usize);
            for row in rows {
                let row = row?;
                let values = row
                    .sql_values()
                    .iter()
                    .zip(&types)
                    .map(|(value, oracle_type)| types::decode(value, oracle_type))
                    .collect::<Result<Vec<_>>>()
                    .map_err(|e| Failure::Ours(e.with_connector(self.config.name.clone())))?;
                batch.push(Row::new(columns.clone(), values));
                if batch.len() >= array_size as usize {
                    let full =
                        std::mem::replace(&mut batch, Vec::with_capacity(array_size as usize));
                    if rows_tx.blocking_send(Ok(full)).is_err() {
                        // The stream was dropped: stop fetching; closing the cursor
                        // leaves the connection usable.
                        return end_call(&conn, read_only);
                    }
                }
            }
            if !batch.is_empty() {
                let _ = rows_tx.blocking_send(Ok(batch));
            }
            end_call(&conn, read_only)
        })();
        if read_only && result.is_err() {
            // Leave no read-only transaction open: the next call starts its own.
            let _ = conn.rollback();
        }
        let broken = guard.finish();
        discard_if(&mut object, broken, &result);
        if let Err(failure) = result {
            let error = self.map(failure, broken);
            match columns_tx.take() {
                Some(tx) => {
                    let _ = tx.send(Err(error));
                }
                None => {
                    let _ = rows_tx.blocking_send(Err(error));
                }
            }
        }
    }
}

/// The consumer side of a stream: rows of the current batch, then the next batch,
/// each wait bounded.
struct StreamState {
    inner: Arc<Inner>,
    rows: mpsc::Receiver<Batch>,
    batch: std::vec::IntoIter<Row>,
    guard: Arc<CallGuard>,
    conn: Arc<Connection>,
    bound: Bound,
    deadline: Instant,
    done: bool,
}

impl StreamState {
    async fn next(&mut self) -> Option<Result<Row>> {
        if let Some(row) = self.batch.next() {
            return Some(Ok(row));
        }
        if self.done {
            return None;
        }
        let deadline = match self.bound {
            Bound::Total(_) => self.deadline,
            Bound::PerRow(d) => Instant::now() + d,
        };
        match tokio::time::timeout_at(deadline, self.rows.recv()).await {
            Ok(Some(Ok(batch))) => {
                self.batch = batch.into_iter();
                self.batch.next().map(Ok)
            }
            Ok(Some(Err(e))) => {
                self.done = true;
                self.rows.close();
                Some(Err(e))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(_) => {
                self.done = true;
                // The fetching thread must not wait to hand over more rows.
                self.rows.close();
                if self.guard.try_break() {
                    break_call(self.conn.clone());
                }
                let what = match self.bound {
                    Bound::Total(_) => "query",
                    Bound::PerRow(_) => "waiting for the next row",
                };
                Some(Err(self.inner.timeout_error(what, self.bound.duration())))
            }
        }
    }
}

fn row_stream(
    inner: &Arc<Inner>,
    (columns, rows, guard, conn): (
        Columns,
        mpsc::Receiver<Batch>,
        Arc<CallGuard>,
        Arc<Connection>,
    ),
    bound: Bound,
    started: Instant,
) -> RowStream {
    let state = StreamState {
        inner: inner.clone(),
        rows,
        batch: Vec::new().into_iter(),
        guard,
        conn,
        bound,
        deadline: started + bound.duration(),
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        state.next().await.map(|row| (row, state))
    });
    RowStream::new(columns, stream)
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
        inner.check_open()?;
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
        inner.check_open()?;
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
        inner.check_open()?;
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
        self.inner.closed.store(true, Ordering::Release);
        if let Some(pool) = self.inner.pool.get() {
            pool.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_guard_breaks_only_a_running_call() {
        let guard = CallGuard::default();
        assert!(guard.try_break());
        assert!(!guard.try_break(), "a call is broken once");
        assert!(guard.finish(), "the call learns it was broken");

        let guard = CallGuard::default();
        assert!(!guard.finish());
        assert!(!guard.try_break(), "a finished call is not broken");
        assert!(!guard.was_broken());
    }

    #[test]
    fn spec_refuses_udp_and_defaults_to_1521() {
        assert_eq!(SPEC.default_port, Some(1521));
        assert!(matches!(SPEC.udp, Support::No(_)));
        assert!(matches!(SPEC.unix, Support::Yes));
    }
}
