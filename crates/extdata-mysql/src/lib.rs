#![doc = include_str!("../README.md")]

mod batch;
mod classify;
mod connect;
mod error;
mod types;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use extdata_core::{
    BackendSpec, Column, Columns, DbKind, Dialect, Endpoint, Error, ErrorKind, ExternalSource,
    QueryOptions, Result, ResultSet, Row, RowStream, ServerInfo, Statement, Support, ValidConfig,
    async_trait, closed_error,
};
use futures::{FutureExt, StreamExt, TryStreamExt};
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlPool};
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Connection, Executor, Row as _, SqlSafeStr, Statement as _};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::classify::Effect;
use crate::connect::{Flavour, Session};
use crate::error::{Stage, is_connection_broken, map_error};

/// The rules of the MySQL / MariaDB backend, used by validation.
pub const SPEC: BackendSpec = BackendSpec {
    kind: DbKind::MySql,
    default_port: Some(3306),
    needs_host: true,
    needs_database: false,
    tls: Support::Yes,
    unix: Support::Yes,
    udp: Support::No(
        "MySQL and MariaDB are reached over TCP or a unix socket; they do not speak UDP",
    ),
    options: connect::OPTIONS,
    option_prefixes: &[],
    check: Some(connect::check),
    warn: Some(connect::warn),
};

/// How long a connection whose query was cancelled may take to deliver the end of that
/// query before it is closed instead of reused.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a timed-out call waits for `KILL QUERY` to be sent before returning (the
/// rest of the clean-up carries on in the background), counted from the call's
/// deadline: the whole call ends within its timeout plus this.
const KILL_WAIT: Duration = Duration::from_secs(1);

/// When nothing is open, the pool's own connect attempts stop this long before the
/// acquire budget ends, leaving a direct attempt time to find out why.
const PROBE_RESERVE: Duration = Duration::from_millis(200);

/// How far past the acquire budget that direct attempt may run.
const PROBE_GRACE: Duration = Duration::from_millis(100);

/// The time left until `deadline`.
fn total_left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Kept free at the end of [`KILL_WAIT`] for returning the error to the caller.
const KILL_WAIT_MARGIN: Duration = Duration::from_millis(50);

/// How long a call whose `deadline` passed may still wait for its `KILL QUERY`, so that
/// it returns within `deadline + KILL_WAIT` however long the cancel took to set up.
pub(crate) fn kill_wait(deadline: Instant) -> Duration {
    (deadline + KILL_WAIT)
        .saturating_duration_since(Instant::now())
        .saturating_sub(KILL_WAIT_MARGIN)
}

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

struct Inner {
    config: ValidConfig,
    options: MySqlConnectOptions,
    session: Arc<Session>,
    pool: OnceLock<MySqlPool>,
    closed: AtomicBool,
    /// Set when opening a connection failed: the next call probes the server directly
    /// (one attempt, bounded by `connect_timeout`) instead of waiting out the pool.
    unreachable: AtomicBool,
}

impl fmt::Debug for MySqlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.inner.config;
        f.debug_struct("MySqlSource")
            .field("name", &config.name)
            .field("kind", &config.kind)
            .field("endpoint", &connect::endpoint_text(config))
            .field("database", &config.database)
            .field("username", &config.username)
            .field("tls", &config.tls.as_ref().map(|t| t.verify))
            .field("read_only", &config.read_only)
            .finish_non_exhaustive()
    }
}

/// A pooled connection with its server-side id; on a read-only connector, inside the
/// call's `START TRANSACTION READ ONLY` (rolled back by the reset when it goes back to
/// the pool).
struct Lease {
    conn: PoolConnection<sqlx::MySql>,
    id: u64,
    /// The call ran a statement that may have left session state the reset does not
    /// undo: the connection is closed, not pooled.
    discard: bool,
}

impl Lease {
    /// Marks the connection for closing when the call ran a statement of `effect`.
    fn ran(&mut self, effect: Effect) {
        if effect == Effect::Session {
            self.discard = true;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.discard {
            self.conn.close_on_drop();
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

impl MySqlSource {
    /// Builds a source from a validated config. No I/O, no runtime needed.
    pub fn build(config: ValidConfig) -> Result<Self> {
        connect::ensure_crypto_provider();
        if config.kind != DbKind::MySql {
            return Err(config.error(
                ErrorKind::Config,
                format!("is a `{}` connector, not mysql", config.kind),
            ));
        }
        let options = connect::connect_options(&config)?;
        let session = Arc::new(Session::from_config(&config));
        Ok(MySqlSource {
            inner: Arc::new(Inner {
                config,
                options,
                session,
                pool: OnceLock::new(),
                closed: AtomicBool::new(false),
                unreachable: AtomicBool::new(false),
            }),
        })
    }

    /// The validated config this source was built from.
    pub fn config(&self) -> &ValidConfig {
        &self.inner.config
    }
}

impl Inner {
    fn pool(&self) -> &MySqlPool {
        self.pool.get_or_init(|| {
            connect::pool_options(&self.config, self.session.clone())
                .connect_lazy_with(self.options.clone())
        })
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

    fn map(&self, stage: Stage, err: sqlx::Error) -> Error {
        map_error(&self.config, stage, err)
    }

    /// Checks a statement before it runs (see `classify`): a read-only connector
    /// refuses what could leave its read-only transaction with a `ReadOnly` error.
    fn admit(&self, statement: &Statement) -> Result<Effect> {
        classify::admit(statement, self.config.read_only)
            .map_err(|reason| self.config.error(ErrorKind::ReadOnly, reason))
    }

    /// Opens a connection outside the pool, session setup included, bounded by
    /// `connect_timeout` and `limit`. With `diagnose` (a call is failing anyway), a
    /// plain TCP connect first finds out whether the server accepts at all, so that a
    /// timeout can say which stage was stuck.
    async fn open_direct(&self, limit: Duration, diagnose: bool) -> Result<MySqlConnection> {
        // Whole milliseconds: the figure appears in messages.
        let limit = Duration::from_millis(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        let timeout = self.config.connect_timeout.min(limit);
        let started = Instant::now();
        let endpoint = connect::endpoint_text(&self.config);
        let mut accepted = false;
        if diagnose && let Endpoint::Tcp { host, port } = &self.config.endpoint {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), *port));
            match tokio::time::timeout(timeout, tcp).await {
                Ok(Ok(_)) => accepted = true,
                // Refused and the like: the attempt below reports it in its own words.
                Ok(Err(_)) => {}
                Err(_) => {
                    return Err(self.timeout_error(
                        &format!("TCP connect to {endpoint} (no answer to SYN)"),
                        timeout,
                    ));
                }
            }
        }
        let left = timeout.saturating_sub(started.elapsed());
        let attempt = async {
            let mut conn = MySqlConnection::connect_with(&self.options).await?;
            if let Err(e) = self.session.setup(&mut conn).await {
                let _ = conn.close_hard().await;
                return Err(e);
            }
            Ok(conn)
        };
        match tokio::time::timeout(left, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.map(Stage::Connect, e)),
            Err(_) if accepted => Err(self.timeout_error(
                &format!(
                    "connecting to {endpoint}: the server accepted TCP but did not complete \
                     the handshake and login (silent); the attempt"
                ),
                timeout,
            )),
            Err(_) => Err(self.timeout_error(&format!("connecting to {endpoint}"), timeout)),
        }
    }

    /// The pool gave up waiting after `waited`: say why, from a direct attempt (ending
    /// by `probe_until`) when nothing is open.
    async fn explain_acquire_timeout(&self, waited: Duration, probe_until: Instant) -> Error {
        let pool = self.pool();
        if pool.size() > 0 {
            return self.timeout_error(
                &format!(
                    "waiting for a free connection ({} of {} in use)",
                    pool.size() as usize - pool.num_idle(),
                    self.config.pool.max_size
                ),
                waited,
            );
        }
        let limit = probe_until.saturating_duration_since(Instant::now());
        match self.open_direct(limit, true).await {
            Err(e) => {
                self.unreachable.store(true, Ordering::Release);
                let kind = e.kind();
                Error::new(
                    kind,
                    format!(
                        "no connection could be opened within {}; last attempt: {}",
                        humantime_like(waited),
                        e.message()
                    ),
                )
                .with_connector(self.config.name.clone())
            }
            Ok(conn) => {
                let _ = conn.close().await;
                self.timeout_error(
                    "opening a connection (the server answers again now)",
                    waited,
                )
            }
        }
    }

    /// A pooled connection, its server-side limit set for this call and its id known —
    /// one round trip, which also proves the connection alive.
    async fn lease(&self, deadline: Instant, guard: Duration) -> Result<Lease> {
        self.check_open()?;
        if self.unreachable.load(Ordering::Acquire) && self.pool().size() == 0 {
            // Fail fast while the server is known to be down; on success the pool
            // connects normally below.
            let budget = self.config.pool.acquire_timeout.min(total_left(deadline));
            let conn = self.open_direct(budget, true).await.map_err(|e| {
                let kind = e.kind();
                Error::new(
                    kind,
                    format!(
                        "no connection could be opened within {}; last attempt: {}",
                        humantime_like(budget),
                        e.message()
                    ),
                )
                .with_connector(self.config.name.clone())
            })?;
            let _ = conn.close().await;
            self.unreachable.store(false, Ordering::Release);
        }
        let pool = self.pool();
        let flavour = self
            .session
            .flavour
            .get()
            .copied()
            .unwrap_or(Flavour::MariaDb);
        let total = deadline.saturating_duration_since(Instant::now());
        // One budget for the whole acquire, connecting included (sqlx bounds its
        // connect attempts by the pool's acquire timeout only).
        let acquire_started = Instant::now();
        let acquire_end = deadline.min(acquire_started + self.config.pool.acquire_timeout);
        // A stale idle connection is closed and replaced; at most one per pool slot.
        for _ in 0..=self.config.pool.max_size {
            // With nothing open, waiting means connecting: stop early enough that a
            // direct attempt can still say why within the budget.
            let connecting = pool.size() == 0 && acquire_end < deadline;
            let wait_until = if connecting {
                acquire_end - PROBE_RESERVE.min(acquire_end - acquire_started)
            } else {
                acquire_end.max(Instant::now())
            };
            let acquired = tokio::time::timeout_at(wait_until, pool.acquire()).await;
            let mut conn = match acquired {
                Err(_) if connecting => {
                    let waited = acquire_end.saturating_duration_since(acquire_started);
                    return Err(self
                        .explain_acquire_timeout(waited, acquire_end + PROBE_GRACE)
                        .await);
                }
                Err(_) if acquire_end < deadline => {
                    return Err(self
                        .explain_acquire_timeout(
                            acquire_end.saturating_duration_since(acquire_started),
                            acquire_end + PROBE_GRACE,
                        )
                        .await);
                }
                Err(_) => return Err(self.timeout_error("waiting for a connection", total)),
                Ok(Err(sqlx::Error::PoolTimedOut)) => {
                    return Err(self
                        .explain_acquire_timeout(
                            self.config.pool.acquire_timeout,
                            Instant::now() + PROBE_GRACE,
                        )
                        .await);
                }
                Ok(Err(e)) => {
                    let err = self.map(Stage::Connect, e);
                    if matches!(err.kind(), ErrorKind::Connect | ErrorKind::Tls) {
                        self.unreachable.store(true, Ordering::Release);
                    }
                    return Err(err);
                }
                Ok(Ok(conn)) => conn,
            };
            self.unreachable.store(false, Ordering::Release);
            // The flavour is known once the first connection is set up.
            let flavour = self.session.flavour.get().copied().unwrap_or(flavour);
            // A read-only call runs in a read-only transaction that the reset rolls back.
            let begin = if self.session.read_only {
                "START TRANSACTION READ ONLY; "
            } else {
                ""
            };
            let sql = format!(
                "{}; {begin}SELECT CONNECTION_ID()",
                flavour.guard_sql(guard)
            );
            let prepared = tokio::time::timeout_at(deadline, async {
                let mut id = None;
                let mut results = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_many(&mut *conn);
                while let Some(item) = results.try_next().await? {
                    if let sqlx::Either::Right(row) = item {
                        id = Some(row.try_get::<u64, _>(0)?);
                    }
                }
                Ok::<_, sqlx::Error>(id)
            })
            .await;
            match prepared {
                Ok(Ok(Some(id))) => {
                    return Ok(Lease {
                        conn,
                        id,
                        discard: false,
                    });
                }
                Ok(Ok(None)) => {
                    conn.close_on_drop();
                    return Err(self.config.error(
                        ErrorKind::Internal,
                        "the server did not return CONNECTION_ID()",
                    ));
                }
                Ok(Err(e)) if is_connection_broken(&e) => {
                    tracing::debug!(connector = %self.config.name, "discarding a stale pooled connection");
                    conn.close_on_drop();
                    continue;
                }
                Ok(Err(e)) => {
                    conn.close_on_drop();
                    return Err(self.map(Stage::Statement, e));
                }
                Err(_) => {
                    conn.close_on_drop();
                    return Err(self.timeout_error("preparing a connection", total));
                }
            }
        }
        Err(self.config.error(
            ErrorKind::Connect,
            "every pooled connection was found broken; the server may have restarted",
        ))
    }

    /// Runs `KILL QUERY <id>` from another connection: an idle pooled one if there is
    /// one, else a new direct one.
    async fn kill_query(&self, id: u64) -> Result<()> {
        let sql = format!("KILL QUERY {id}");
        if let Some(mut helper) = self.pool().try_acquire() {
            let done = tokio::time::timeout(
                self.config.connect_timeout,
                sqlx::raw_sql(AssertSqlSafe(sql.clone())).execute(&mut *helper),
            )
            .await;
            match done {
                Ok(Ok(_)) => return Ok(()),
                // Already finished (unknown thread) counts as done.
                Ok(Err(sqlx::Error::Database(e)))
                    if e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .is_some_and(|e| e.number() == 1094) =>
                {
                    return Ok(());
                }
                _ => helper.close_on_drop(),
            }
        }
        let mut conn = self.open_direct(self.config.connect_timeout, false).await?;
        let result = tokio::time::timeout(
            self.config.connect_timeout,
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn),
        )
        .await;
        let _ = conn.close().await;
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.map(Stage::Statement, e)),
            Err(_) => Err(self.timeout_error("KILL QUERY", self.config.connect_timeout)),
        }
    }

    /// After a timeout or an abandoned stream: stop the statement on the server, then
    /// reuse the connection only if it answers a ping within [`DRAIN_TIMEOUT`].
    async fn cancel(self: Arc<Self>, mut lease: Lease, killed: Option<oneshot::Sender<()>>) {
        let kill = self.kill_query(lease.id).await;
        if let Some(signal) = killed {
            let _ = signal.send(());
        }
        let healthy = match kill {
            Ok(()) => {
                // The killed statement's error (or MariaDB's early SLEEP() result) is
                // still on the wire: ping reads past it.
                matches!(
                    tokio::time::timeout(DRAIN_TIMEOUT, lease.conn.ping()).await,
                    Ok(Ok(()))
                )
            }
            Err(e) => {
                tracing::warn!(connector = %self.config.name, error = %e, "could not cancel a timed-out statement on the server; closing its connection");
                false
            }
        };
        if !healthy {
            lease.conn.close_on_drop();
        }
    }

    /// Cancels in the background, waiting until at most [`KILL_WAIT`] after the call's
    /// `deadline` for `KILL QUERY` to go out, so that the caller sees the query gone
    /// when it gets the error.
    async fn cancel_and_wait(self: &Arc<Self>, lease: Lease, deadline: Instant) {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(self.clone().cancel(lease, Some(tx)));
        let _ = tokio::time::timeout(kill_wait(deadline), rx).await;
    }

    fn render(&self, statement: &Statement) -> Result<(String, MySqlArguments)> {
        let rendered = statement
            .render(Dialect::MySql)
            .map_err(|e| e.with_connector(self.config.name.clone()))?;
        let args = types::bind(&rendered.params, self.session.timestamps)
            .map_err(|e| e.with_connector(self.config.name.clone()))?;
        Ok((rendered.sql, args))
    }

    /// Starts a statement and returns its rows as a stream that reads the connection
    /// itself (no task in between); returns once the columns are known (the first row
    /// arrived, or the result is empty).
    async fn start_rows(
        self: &Arc<Self>,
        statement: &Statement,
        bound: Bound,
    ) -> Result<RowStream> {
        self.check_open()?;
        let started = Instant::now();
        let effect = self.admit(statement)?;
        let (sql, args) = self.render(statement)?;
        let guard = match bound {
            Bound::Total(d) => self.session.guard_for(Some(d)),
            Bound::PerRow(_) => self.session.guard_for(None),
        };
        let mut lease = self.lease(started + bound.duration(), guard).await?;
        lease.ran(effect);
        let reading = Reading {
            inner: self.clone(),
            lease: Some(lease),
            runtime: tokio::runtime::Handle::current(),
        };
        let mut items = Box::pin(read_rows(reading, (sql, args), bound, started));
        let columns = match items.next().await {
            Some(Ok(Read::Columns(columns))) => columns,
            Some(Err(e)) => return Err(e),
            Some(Ok(Read::Row(_))) | None => {
                return Err(self.config.error(
                    ErrorKind::Internal,
                    "the statement's rows ended before its columns",
                ));
            }
        };
        let rows = items.filter_map(|item| {
            std::future::ready(match item {
                Ok(Read::Row(row)) => Some(Ok(row)),
                Ok(Read::Columns(_)) => None,
                Err(e) => Some(Err(e)),
            })
        });
        Ok(RowStream::new(columns, rows))
    }
}

/// What [`read_rows`] yields: the columns once, first, then the rows.
enum Read {
    Columns(Columns),
    Row(Row),
}

/// The connection of a statement being read. Dropped before the result ended (the
/// consumer dropped its stream), it stops the statement on the server in the
/// background and pools the connection only once it answers again.
struct Reading {
    inner: Arc<Inner>,
    lease: Option<Lease>,
    runtime: tokio::runtime::Handle,
}

impl Drop for Reading {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.runtime.spawn(self.inner.clone().cancel(lease, None));
        }
    }
}

/// Runs a statement and yields its columns, then its rows. The first error ends it.
fn read_rows(
    mut reading: Reading,
    (sql, args): (String, MySqlArguments),
    bound: Bound,
    started: Instant,
) -> impl futures::Stream<Item = Result<Read>> + Send + 'static {
    enum End {
        Done,
        Failed { broken: bool, error: Error },
        Stopped(Error),
        TimedOut,
    }
    async_stream::stream! {
        let inner = reading.inner.clone();
        let timestamps = inner.session.timestamps;
        let deadline_for_wait = |now: Instant| match bound {
            Bound::Total(d) => started + d,
            Bound::PerRow(d) => now + d,
        };
        let end = 'run: {
            let Some(lease) = reading.lease.as_mut() else {
                break 'run End::Done;
            };
            // Columns even for an empty result: prepare (cached per connection, so the
            // query below does not prepare again).
            let prepared = tokio::time::timeout_at(
                deadline_for_wait(Instant::now()),
                lease.conn.prepare(AssertSqlSafe(sql.clone()).into_sql_str()),
            )
            .await;
            let prepared_columns: Columns = match prepared {
                Err(_) => break 'run End::TimedOut,
                Ok(Err(e)) => {
                    break 'run End::Failed {
                        broken: is_connection_broken(&e),
                        error: inner.map(Stage::Statement, e),
                    };
                }
                Ok(Ok(statement)) => statement
                    .columns()
                    .iter()
                    .map(|c| types::column(c, timestamps))
                    .collect::<Vec<Column>>()
                    .into(),
            };
            let mut rows = sqlx::query_with(AssertSqlSafe(sql), args).fetch(&mut *lease.conn);
            let mut columns: Option<(Columns, types::RowDecoder)> = None;
            loop {
                // A row already received needs no timer.
                let next = match rows.next().now_or_never() {
                    Some(next) => next,
                    None => match tokio::time::timeout_at(
                        deadline_for_wait(Instant::now()),
                        rows.next(),
                    )
                    .await
                    {
                        Ok(next) => next,
                        Err(_) => break 'run End::TimedOut,
                    },
                };
                let row = match next {
                    None => {
                        if columns.is_none() {
                            yield Ok(Read::Columns(prepared_columns));
                        }
                        break 'run End::Done;
                    }
                    Some(Err(e)) => {
                        break 'run End::Failed {
                            broken: is_connection_broken(&e),
                            error: inner.map(Stage::Statement, e),
                        };
                    }
                    Some(Ok(row)) => row,
                };
                let (cols, decoder) = match &mut columns {
                    Some(known) => known,
                    None => {
                        // The executed statement's metadata is exact (`SELECT ?` has its
                        // type only once the value is bound).
                        let cols: Columns = row
                            .columns()
                            .iter()
                            .map(|c| types::column(c, timestamps))
                            .collect::<Vec<Column>>()
                            .into();
                        yield Ok(Read::Columns(cols.clone()));
                        columns.insert((cols, types::RowDecoder::new(row.columns(), timestamps)))
                    }
                };
                match decoder.decode_row(&row) {
                    Ok(values) => yield Ok(Read::Row(Row::new(cols.clone(), values))),
                    Err(e) => break 'run End::Stopped(e.with_connector(inner.config.name.clone())),
                }
            }
        };
        match end {
            End::Done => {
                // The result was read to its end: the connection goes back to the pool.
                drop(reading.lease.take());
            }
            End::Failed { broken, error } => {
                if let Some(mut lease) = reading.lease.take()
                    && broken
                {
                    lease.conn.close_on_drop();
                }
                yield Err(error);
            }
            End::Stopped(error) => {
                // An error ends the stream; the rest of the result is stopped.
                if let Some(lease) = reading.lease.take() {
                    reading.runtime.spawn(inner.clone().cancel(lease, None));
                }
                yield Err(error);
            }
            End::TimedOut => {
                let (what, timeout, deadline) = match bound {
                    Bound::Total(d) => ("query", d, started + d),
                    // The wait that just ran out ended now.
                    Bound::PerRow(d) => ("waiting for the next row", d, Instant::now()),
                };
                if let Some(lease) = reading.lease.take() {
                    let (killed_tx, killed_rx) = oneshot::channel();
                    reading.runtime.spawn(inner.clone().cancel(lease, Some(killed_tx)));
                    let _ = tokio::time::timeout(kill_wait(deadline), killed_rx).await;
                }
                yield Err(inner.timeout_error(what, timeout));
            }
        }
    }
}

/// `1s`, `1m 30s`: durations in messages.
fn humantime_like(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{secs:.3}s")
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
        inner.check_open()?;
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
        match result {
            Ok(Ok(done)) => Ok(done.rows_affected()),
            Ok(Err(e)) => {
                if is_connection_broken(&e) {
                    lease.conn.close_on_drop();
                }
                Err(inner.map(Stage::Statement, e))
            }
            Err(_) => {
                inner.cancel_and_wait(lease, deadline).await;
                Err(inner.timeout_error("statement", timeout))
            }
        }
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
        inner.check_open()?;
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
        match result {
            Ok(Ok(columns)) => Ok(columns),
            Ok(Err(e)) => {
                if is_connection_broken(&e) {
                    lease.conn.close_on_drop();
                }
                Err(inner.map(Stage::Statement, e))
            }
            Err(_) => {
                inner.cancel_and_wait(lease, deadline).await;
                Err(inner.timeout_error("describe", timeout))
            }
        }
    }

    async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        if let Some(pool) = self.inner.pool.get() {
            pool.close().await;
        }
    }
}
