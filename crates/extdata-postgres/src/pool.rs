//! The connection pool: deadpool's, with a [`Manager`] whose pooled object is a
//! [`Conn`] — the sqlx connection together with its backend process id, so that a query
//! that runs past its timeout can be cancelled on the server.
//!
//! deadpool bounds the connections (`pool.max_size`), hands idle ones out newest first
//! and checks each one before reuse in [`Manager::recycle`] (lifetimes, and a ping after
//! [`PING_IF_IDLE_FOR`] idle). sqlx's own `Pool` is not used because it gives no way to
//! keep data with a pooled connection and retries a refused connection until the acquire
//! timeout, hiding the reason. What deadpool leaves to its user is here: a reaper closes
//! expired idle connections and keeps `pool.min_idle` open, and a connection whose call
//! did not end cleanly is cancelled on the server and taken out of the pool, never
//! handed out again.
//!
//! A connection that ran SQL of a call goes back to the pool only after
//! [`Pooled::end_call`] reset its session (see [`crate::session`]), in the background
//! and still holding its pool slot; one dropped without that is closed.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult, Timeouts};
use extdata_core::driver::{duration_text, pool_build_error, pool_get_error};
use extdata_core::{Error, ErrorKind, PoolSettings, Result, closed_error};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row as _};
use tokio::time::Instant;

use crate::error::{Phase, map_error};
use crate::session::{self, Check, Reset};

/// Idle connections older than this are pinged before they are handed out (a server
/// restart or a dropped NAT mapping would otherwise fail the next call).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);
/// How long a timed-out call waits for its cancel request before returning.
const ABORT_WAIT: Duration = Duration::from_millis(500);
/// Bound on the cancel request itself.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// One open connection and what we know about its server session: the pooled object.
pub(crate) struct Conn {
    pub(crate) raw: PgConnection,
    /// `pg_backend_pid()` of the session.
    pub(crate) pid: i32,
    /// The session's current `statement_timeout` in ms (0: none).
    pub(crate) statement_timeout_ms: u64,
    /// When the connection last went back to the pool (or was opened).
    idle_since: Instant,
}

/// A snapshot of the pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Open connections (idle + in use), not counting the one used to cancel queries.
    pub open: u32,
    /// Open connections waiting to be used.
    pub idle: u32,
    /// Connections handed out to calls right now.
    pub in_use: u32,
    /// Connections whose session is being reset after a call, before they are idle
    /// again (they count towards `max_size`).
    pub resetting: u32,
    /// The most connections that may be in use at once.
    pub max_size: u32,
}

pub(crate) struct PoolConfig {
    pub(crate) connector: String,
    pub(crate) options: PgConnectOptions,
    pub(crate) session: Vec<(&'static str, String)>,
    pub(crate) statement_timeout_ms: u64,
    /// Every call runs in a read-only transaction that is rolled back.
    pub(crate) read_only: bool,
    pub(crate) settings: PoolSettings,
    pub(crate) connect_timeout: Duration,
}

/// Opens connections (with the connector's session settings) and checks them before
/// reuse.
struct Manager {
    config: PoolConfig,
    /// Why the last connection attempt failed, for the message of a pool that is full
    /// of nothing (every attempt failing).
    last_connect_error: Mutex<Option<String>>,
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = Error;

    /// TCP + TLS + authentication, then the session settings and the backend pid in
    /// one statement, within `connect_timeout`.
    async fn create(&self) -> Result<Conn> {
        let timeout = self.config.connect_timeout;
        let outcome = match tokio::time::timeout(timeout, self.open_connection()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.error(
                ErrorKind::Timeout,
                format!(
                    "connecting to PostgreSQL timed out after {} (connect_timeout): the \
                     server did not complete the TCP, TLS and startup exchange",
                    duration_text(timeout)
                ),
            )),
        };
        self.remember(outcome.as_ref().err().map(|e| e.message().to_owned()));
        outcome
    }

    /// Reuses a connection only within the pool's lifetimes, and after a ping when it
    /// was idle for [`PING_IF_IDLE_FOR`].
    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<Error> {
        if let Some(why) = self.expired(conn, metrics) {
            return Err(RecycleError::message(why));
        }
        if conn.idle_since.elapsed() >= PING_IF_IDLE_FOR {
            conn.raw.ping().await.map_err(|e| {
                RecycleError::Backend(map_error(&self.config.connector, Phase::Query, e))
            })?;
        }
        Ok(())
    }
}

/// Why a session could not be reset.
enum ResetFailure {
    /// The call's statement ended the transaction the call ran in (read-only), or left
    /// one open (writable).
    Transaction,
    /// The reset itself failed (a lost connection, or a server error).
    Failed(sqlx::Error),
    /// The reset answered something other than its check row.
    Unexpected,
}

impl Manager {
    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::new(kind, message).with_connector(self.config.connector.clone())
    }

    fn remember(&self, last_error: Option<String>) {
        *self
            .last_connect_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = last_error;
    }

    fn last_error_note(&self) -> String {
        match &*self
            .last_connect_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            Some(last) => format!("; the last connection attempt failed: {last}"),
            None => String::new(),
        }
    }

    /// Which of the pool's lifetimes `conn` has outlived, if any.
    fn expired(&self, conn: &Conn, metrics: &Metrics) -> Option<&'static str> {
        self.config
            .settings
            .retired(metrics.age(), conn.idle_since.elapsed())
    }

    async fn open_connection(&self) -> Result<Conn> {
        let config = &self.config;
        let mut raw = config
            .options
            .connect()
            .await
            .map_err(|e| map_error(&config.connector, Phase::Connect, e))?;
        let mut sql = String::from("SELECT pg_backend_pid()");
        for i in 0..config.session.len() {
            sql.push_str(&format!(
                ", set_config(${}, ${}, false)",
                2 * i + 1,
                2 * i + 2
            ));
        }
        let mut query = sqlx::query_scalar::<_, i32>(AssertSqlSafe(sql)).persistent(false);
        for (name, value) in &config.session {
            query = query.bind(*name).bind(value.as_str());
        }
        let pid = query.fetch_one(&mut raw).await.map_err(|e| {
            map_error(&config.connector, Phase::Connect, e).context("setting up the session")
        })?;
        Ok(Conn {
            raw,
            pid,
            statement_timeout_ms: config.statement_timeout_ms,
            idle_since: Instant::now(),
        })
    }

    /// Puts the session of `conn` back to the connector's defaults in one round trip
    /// (see [`session::reset_sql`]); when the check shows prepared statements that sqlx
    /// does not know of, or sqlx's ones gone, drops them all and empties sqlx's cache.
    async fn reset(&self, conn: &mut Conn, reset: Reset) -> std::result::Result<(), ResetFailure> {
        let config = &self.config;
        let sql = session::reset_sql(reset, &config.session);
        let rows = sqlx::raw_sql(AssertSqlSafe(sql))
            .fetch_all(&mut conn.raw)
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(db))
                if config.read_only
                    && db.code().as_deref() == Some(session::NO_ACTIVE_TRANSACTION) =>
            {
                return Err(ResetFailure::Transaction);
            }
            Err(e) => return Err(ResetFailure::Failed(e)),
        };
        let check = rows
            .last()
            .and_then(|row| row.try_get::<String, _>(0).ok())
            .and_then(|text| Check::parse(&text))
            .ok_or(ResetFailure::Unexpected)?;
        if !check.outside_transaction {
            return Err(ResetFailure::Transaction);
        }
        conn.statement_timeout_ms = config.statement_timeout_ms;
        if check.statements_tampered(conn.raw.cached_statements_size()) {
            // `DEALLOCATE ALL` also drops sqlx's statements: sqlx must forget them too
            // (closing a statement that no longer exists is not an error).
            sqlx::raw_sql("DEALLOCATE ALL")
                .execute(&mut conn.raw)
                .await
                .map_err(ResetFailure::Failed)?;
            conn.raw
                .clear_cached_statements()
                .await
                .map_err(ResetFailure::Failed)?;
        }
        Ok(())
    }
}

type DeadPool = managed::Pool<Manager>;
type Lease = Object<Manager>;

pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    pool: DeadPool,
    /// Connections whose session is being reset after a call (each holds its slot).
    resetting: AtomicU32,
    /// A task is opening connections up to `pool.min_idle`.
    filling: AtomicBool,
    /// The connection that sends cancel requests, outside the pool so that a full pool
    /// can still cancel.
    canceller: tokio::sync::Mutex<Option<PgConnection>>,
}

impl Pool {
    /// Creates the pool and its reaper task; must run inside a tokio runtime.
    pub(crate) fn new(config: PoolConfig) -> Result<Pool> {
        let max_size = config.settings.max_size as usize;
        let connect_timeout = config.connect_timeout;
        let connector = config.connector.clone();
        let manager = Manager {
            config,
            last_connect_error: Mutex::new(None),
        };
        let pool = DeadPool::builder(manager)
            .max_size(max_size)
            .runtime(deadpool::Runtime::Tokio1)
            .queue_mode(managed::QueueMode::Lifo)
            // `create` bounds itself by connect_timeout with a better message; waits are
            // bounded per call by `acquire`.
            .create_timeout(None)
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| pool_build_error(&connector, e))?;
        let shared = Arc::new(Shared {
            pool,
            resetting: AtomicU32::new(0),
            filling: AtomicBool::new(false),
            canceller: tokio::sync::Mutex::new(None),
        });
        tokio::spawn(reaper(Arc::downgrade(&shared)));
        shared.fill_min_idle();
        Ok(Pool { shared })
    }

    /// A connection, waiting at most the pool's acquire timeout for a free one and at
    /// most the connect timeout for a new one, and never past `deadline`.
    pub(crate) async fn acquire(&self, deadline: Instant) -> Result<Pooled> {
        let lease = self.shared.acquire(deadline).await?;
        Ok(Pooled {
            conn: Some(lease),
            busy: false,
            dirty: false,
            several: false,
            shared: self.shared.clone(),
        })
    }

    pub(crate) fn state(&self) -> PoolState {
        let shared = &self.shared;
        let status = shared.pool.status();
        let resetting = shared.resetting.load(Ordering::SeqCst);
        PoolState {
            open: status.size as u32,
            idle: status.available as u32,
            in_use: (status.size.saturating_sub(status.available) as u32).saturating_sub(resetting),
            resetting,
            max_size: shared.config().settings.max_size,
        }
    }

    pub(crate) async fn close(&self) {
        let shared = &self.shared;
        let idle = shared.pool.retain(|_, _| false).removed;
        shared.pool.close();
        for conn in idle {
            // A polite Terminate; a server that does not answer is not waited for.
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.raw.close()).await;
        }
        if let Some(canceller) = shared.canceller.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), canceller.close()).await;
        }
    }
}

impl Shared {
    fn manager(&self) -> &Manager {
        self.pool.manager()
    }

    fn config(&self) -> &PoolConfig {
        &self.manager().config
    }

    fn connector(&self) -> &str {
        &self.config().connector
    }

    async fn acquire(&self, deadline: Instant) -> Result<Lease> {
        if self.pool.is_closed() {
            return Err(closed_error(self.connector()));
        }
        let config = self.config();
        // One budget for the whole acquire: waiting for a free slot and opening a new
        // connection together end at `acquire_timeout` (or the call's deadline).
        let started = Instant::now();
        let budget_end = deadline.min(started + config.settings.acquire_timeout);
        let wait = budget_end.saturating_duration_since(started);
        let timeouts = Timeouts {
            wait: Some(wait),
            create: None,
            recycle: Some(config.connect_timeout),
        };
        match tokio::time::timeout_at(budget_end, self.pool.timeout_get(&timeouts)).await {
            Ok(Ok(lease)) => Ok(lease),
            Ok(Err(e)) => Err(pool_get_error(self.connector(), e, |timeout| {
                matches!(timeout, managed::TimeoutType::Wait).then(|| {
                    self.manager().error(
                        ErrorKind::Timeout,
                        format!(
                            "no PostgreSQL connection became free within {} (all {} are in use){}",
                            duration_text(wait),
                            config.settings.max_size,
                            self.manager().last_error_note()
                        ),
                    )
                })
            })),
            Err(_) => {
                let why = if budget_end < deadline {
                    "acquire_timeout"
                } else {
                    "the call's timeout"
                };
                let message = format!(
                    "no PostgreSQL connection within {} ({why}): the connection attempt timed \
                     out, the server did not complete the TCP, TLS and startup exchange \
                     (down, overloaded or a silent network path)",
                    duration_text(wait),
                );
                self.manager().remember(Some(message.clone()));
                Err(self.manager().error(ErrorKind::Timeout, message))
            }
        }
    }

    /// Takes `lease` out of the pool and closes it (closing the socket ends the server
    /// session), then tops the pool up to `min_idle`.
    fn forget(self: &Arc<Self>, lease: Lease) {
        drop(Object::take(lease));
        self.fill_min_idle();
    }

    /// Opens connections in the background until `min_idle` are open.
    fn fill_min_idle(self: &Arc<Self>) {
        let min_idle = self.config().settings.min_idle as usize;
        if min_idle == 0 || self.pool.is_closed() || self.pool.status().size >= min_idle {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.filling.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        handle.spawn(async move {
            let Some(shared) = weak.upgrade() else { return };
            // Holding what it gets until the end makes each `get` open a new connection
            // rather than reuse the one just returned; dropped, they are idle.
            let mut held = Vec::new();
            let no_wait = Timeouts {
                wait: Some(Duration::ZERO),
                create: None,
                recycle: Some(shared.config().connect_timeout),
            };
            while held.len() < min_idle {
                match shared.pool.timeout_get(&no_wait).await {
                    Ok(lease) => held.push(lease),
                    Err(_) => break,
                }
            }
            drop(held);
            shared.filling.store(false, Ordering::SeqCst);
        });
    }

    fn reap(self: &Arc<Self>) {
        let manager = self.manager();
        // Dropped, the removed connections close their sockets.
        drop(
            self.pool
                .retain(|conn, metrics| manager.expired(conn, &metrics).is_none()),
        );
        self.fill_min_idle();
    }

    /// Asks the server to cancel whatever session `pid` is running, from a separate
    /// connection kept for this purpose (outside the pool, so that a full pool can
    /// still cancel).
    async fn cancel(&self, pid: i32) -> Result<bool> {
        let config = self.config();
        let mut canceller = self.canceller.lock().await;
        let mut last_error = None;
        for _ in 0..2 {
            if canceller.is_none() {
                match tokio::time::timeout(config.connect_timeout, config.options.connect()).await {
                    Ok(Ok(conn)) => *canceller = Some(conn),
                    Ok(Err(e)) => {
                        last_error = Some(map_error(&config.connector, Phase::Connect, e));
                        continue;
                    }
                    Err(_) => {
                        last_error = Some(self.manager().error(
                            ErrorKind::Timeout,
                            "connecting to PostgreSQL to cancel a query timed out",
                        ));
                        continue;
                    }
                }
            }
            let Some(conn) = canceller.as_mut() else {
                continue;
            };
            let request = sqlx::query_scalar::<_, bool>("SELECT pg_cancel_backend($1)")
                .bind(pid)
                .fetch_one(conn);
            match tokio::time::timeout(CANCEL_TIMEOUT, request).await {
                Ok(Ok(sent)) => return Ok(sent),
                Ok(Err(e)) => last_error = Some(map_error(&config.connector, Phase::Query, e)),
                Err(_) => {
                    last_error = Some(
                        self.manager()
                            .error(ErrorKind::Timeout, "the cancel request timed out"),
                    )
                }
            }
            // Whatever went wrong, a new connection gets the second try.
            *canceller = None;
        }
        Err(last_error
            .unwrap_or_else(|| self.manager().error(ErrorKind::Internal, "cancel failed")))
    }

    /// Cancels what `lease` runs on the server, then closes it; the lease keeps its
    /// pool slot until then, so that the pool never has more sessions than `max_size`.
    async fn cancel_and_forget(self: Arc<Self>, lease: Lease) {
        if let Err(e) = self.cancel(lease.pid).await {
            tracing::warn!(
                connector = %self.connector(),
                pid = lease.pid,
                error = %e,
                "could not cancel a timed-out PostgreSQL query; closing its connection"
            );
        }
        self.forget(lease);
    }
}

async fn reaper(weak: Weak<Shared>) {
    let period = {
        let Some(shared) = weak.upgrade() else { return };
        let settings = &shared.config().settings;
        [settings.idle_timeout, settings.max_lifetime]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::from_secs(30), |d| d / 2)
            .clamp(Duration::from_millis(200), Duration::from_secs(30))
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(shared) = weak.upgrade() else { return };
        if shared.pool.is_closed() {
            return;
        }
        shared.reap();
    }
}

/// A connection handed out to one call. Dropped normally it goes back to the pool;
/// dropped while [`busy`](Pooled::begin) (the call's future was dropped mid-query) it
/// is cancelled on the server and discarded.
pub(crate) struct Pooled {
    conn: Option<Lease>,
    busy: bool,
    /// SQL of a call ran since the session was last reset: the connection goes back to
    /// the pool only through [`Pooled::end_call`].
    dirty: bool,
    /// The call ran several statements ([`Pooled::several_statements`]).
    several: bool,
    shared: Arc<Shared>,
}

impl Pooled {
    /// The connection. Only `None` after `abort`/`discard`, which consume `self`.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a Pooled connection is present until it is consumed")
    }

    /// Marks the start of a server round trip that must finish or be cancelled.
    pub(crate) fn begin(&mut self) {
        self.busy = true;
    }

    /// Marks that the round trip finished and the connection is in sync again.
    pub(crate) fn finish(&mut self) {
        self.busy = false;
    }

    /// Starts a call that runs SQL of an account, with `statement_timeout_ms` as the
    /// server-side guard: on a `read_only` connector opens the call's read-only
    /// transaction (one round trip); otherwise sets the guard when it differs. From now
    /// on the connection is returned to the pool only through [`Pooled::end_call`].
    pub(crate) async fn start_call(
        &mut self,
        statement_timeout_ms: u64,
    ) -> std::result::Result<(), sqlx::Error> {
        self.dirty = true;
        let read_only = self.shared.config().read_only;
        let conn = self.conn();
        if read_only {
            sqlx::raw_sql(AssertSqlSafe(session::begin_read_only(
                statement_timeout_ms,
            )))
            .execute(&mut conn.raw)
            .await?;
        } else if conn.statement_timeout_ms != statement_timeout_ms {
            sqlx::query("SELECT set_config('statement_timeout', $1, false)")
                .bind(statement_timeout_ms.to_string())
                .execute(&mut conn.raw)
                .await?;
            conn.statement_timeout_ms = statement_timeout_ms;
        }
        Ok(())
    }

    /// Marks a call that runs several statements of an account (a batch): its session
    /// gets the full reset even on a `read_only` connector (see [`Reset`]).
    pub(crate) fn several_statements(&mut self) {
        self.several = true;
    }

    /// Ends a call started with [`Pooled::start_call`]: in a background task that keeps
    /// this connection's pool slot, rolls back its read-only transaction and resets the
    /// session, then returns the connection to the pool — or closes it when the reset
    /// fails, times out (`connect_timeout`), or finds that the call's statement ended the
    /// read-only transaction (or left a transaction open). The caller does not wait
    /// for the reset round trip; the next call that needs this connection does.
    pub(crate) fn end_call(mut self) {
        if !self.dirty || self.conn.is_none() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to reset on: dropped dirty, the connection is closed.
            return;
        };
        // Dropped during the reset (the runtime shuts down), the connection is
        // cancelled and closed.
        self.busy = true;
        let shared = self.shared.clone();
        shared.resetting.fetch_add(1, Ordering::SeqCst);
        handle.spawn(async move {
            self.reset_session().await;
            // Back in the pool (or closed) and its slot released before it stops
            // counting as resetting, so that it is never counted as neither.
            drop(self);
            shared.resetting.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// The reset of [`Pooled::end_call`]; leaves the connection ready to go back to the
    /// pool, or closes it (with a warning that says why, without any SQL).
    async fn reset_session(&mut self) {
        let shared = self.shared.clone();
        let manager = shared.manager();
        let Some(lease) = self.conn.as_mut() else {
            return;
        };
        let read_only = manager.config.read_only;
        let reset = if read_only && !self.several {
            Reset::RolledBack
        } else {
            Reset::Full { read_only }
        };
        let outcome = tokio::time::timeout(
            manager.config.connect_timeout,
            manager.reset(&mut *lease, reset),
        )
        .await;
        let why = match outcome {
            Ok(Ok(())) => {
                self.busy = false;
                self.dirty = false;
                self.several = false;
                return;
            }
            Ok(Err(ResetFailure::Transaction)) if manager.config.read_only => {
                "a statement ended the read-only transaction of its call (COMMIT, ROLLBACK, \
                 END, ABORT and PREPARE TRANSACTION are not supported)"
                    .to_owned()
            }
            Ok(Err(ResetFailure::Transaction)) => "a statement left a transaction open".to_owned(),
            Ok(Err(ResetFailure::Failed(e))) => format!(
                "the session reset failed: {}",
                map_error(&manager.config.connector, Phase::Query, e)
            ),
            Ok(Err(ResetFailure::Unexpected)) => {
                "the session reset gave an unexpected answer".to_owned()
            }
            Err(_) => {
                // The connection is closed below either way.
                let _ = shared.cancel(lease.pid).await;
                "the session reset timed out".to_owned()
            }
        };
        tracing::warn!(
            connector = %manager.config.connector,
            "{why}; closing the PostgreSQL connection instead of reusing it"
        );
        if let Some(lease) = self.conn.take() {
            shared.forget(lease);
        }
    }

    /// The query on this connection ran out of time (or its reader went away): cancel
    /// it on the server, then close the connection. Waits (at most [`ABORT_WAIT`])
    /// until the cancel request was delivered, so that normally the server has stopped
    /// the query when this returns; a slow cancel finishes in the background, still
    /// holding this connection's pool slot.
    pub(crate) async fn abort(mut self) {
        let Some(lease) = self.conn.take() else {
            return;
        };
        let task = tokio::spawn(self.shared.clone().cancel_and_forget(lease));
        let _ = tokio::time::timeout(ABORT_WAIT, task).await;
    }

    /// Closes the connection without returning it to the pool (e.g. after an I/O error).
    pub(crate) fn discard(mut self) {
        if let Some(lease) = self.conn.take() {
            self.shared.forget(lease);
        }
    }

    /// The call's statement failed with `error`, reported as the error of `connector`:
    /// a lost connection (I/O, protocol) is closed; after a server error, which leaves
    /// the connection in sync (sqlx reads up to the next ReadyForQuery before its next
    /// use), the call is ended ([`Pooled::end_call`]). The statement's own error is the
    /// one to report, whatever the reset finds.
    pub(crate) fn failed(mut self, connector: &str, error: sqlx::Error) -> Error {
        let lost = matches!(error, sqlx::Error::Io(_) | sqlx::Error::Protocol(_));
        let mapped = map_error(connector, Phase::Query, error);
        if lost {
            self.discard();
        } else {
            self.finish();
            self.end_call();
        }
        mapped
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(mut lease) = self.conn.take() else {
            return;
        };
        if !self.busy {
            let shared = &self.shared;
            if self.dirty
                // Never reset: its session may hold anything the call left there.
                || shared.pool.is_closed()
                // A transaction left open (an `execute("BEGIN")`) must not leak into
                // the next call; closing the connection rolls it back.
                || lease.raw.is_in_transaction()
                || shared.manager().expired(&lease, Object::metrics(&lease)).is_some()
            {
                shared.forget(lease);
            } else {
                lease.idle_since = Instant::now();
                drop(lease);
            }
            return;
        }
        // Dropped mid-query: cancel in the background, holding the slot until done so
        // that the pool never has more sessions than max_size.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(self.shared.clone().cancel_and_forget(lease));
            }
            Err(_) => self.shared.forget(lease),
        }
    }
}
