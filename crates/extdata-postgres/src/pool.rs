//! The connection pool: each connection is kept together with its backend process id,
//! so that a query that runs past its timeout can be cancelled on the server.
//!
//! sqlx's own `Pool` gives no way to attach data to a pooled connection (and retries a
//! refused connection until the acquire timeout, hiding the reason), so this small pool
//! holds `PgConnection`s itself: a semaphore bounds the connections in use, idle ones are
//! reused newest first, expired ones (idle timeout, max lifetime) are closed by a reaper
//! task, and a connection whose call did not end cleanly is cancelled and discarded,
//! never handed out again.
//!
//! A connection that ran SQL of a call goes back to the pool only after
//! [`Pooled::end_call`] reset its session (see [`crate::session`]), in the background
//! and still holding its slot; one dropped without that is closed.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use extdata_core::{Error, ErrorKind, PoolSettings, Result, closed_error};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{Phase, convert};
use crate::session::{self, Check};

/// Idle connections older than this are pinged before they are handed out (a server
/// restart or a dropped NAT mapping would otherwise fail the next call).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);
/// How long a timed-out call waits for its cancel request before returning.
const ABORT_WAIT: Duration = Duration::from_millis(500);
/// Bound on the cancel request itself.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// One open connection and what we know about its server session.
pub(crate) struct Conn {
    pub(crate) raw: PgConnection,
    /// `pg_backend_pid()` of the session.
    pub(crate) pid: i32,
    /// The session's current `statement_timeout` in ms (0: none).
    pub(crate) statement_timeout_ms: u64,
    created: Instant,
}

struct Idle {
    conn: Conn,
    since: Instant,
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

pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: String,
    options: PgConnectOptions,
    session: Vec<(&'static str, String)>,
    statement_timeout_ms: u64,
    read_only: bool,
    settings: PoolSettings,
    connect_timeout: Duration,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    open: AtomicU32,
    /// Connections whose session is being reset after a call (each holds its permit).
    resetting: AtomicU32,
    closed: AtomicBool,
    last_connect_error: Mutex<Option<String>>,
    canceller: tokio::sync::Mutex<Option<PgConnection>>,
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

impl Pool {
    /// Creates the pool and its reaper task; must run inside a tokio runtime.
    pub(crate) fn new(config: PoolConfig) -> Pool {
        let inner = Arc::new(Inner {
            permits: Arc::new(Semaphore::new(config.settings.max_size as usize)),
            connector: config.connector,
            options: config.options,
            session: config.session,
            statement_timeout_ms: config.statement_timeout_ms,
            read_only: config.read_only,
            settings: config.settings,
            connect_timeout: config.connect_timeout,
            idle: Mutex::new(Vec::new()),
            open: AtomicU32::new(0),
            resetting: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            last_connect_error: Mutex::new(None),
            canceller: tokio::sync::Mutex::new(None),
        });
        tokio::spawn(reaper(Arc::downgrade(&inner)));
        inner.fill_min_idle();
        Pool { inner }
    }

    /// A connection, waiting at most the pool's acquire timeout for a free one and at
    /// most the connect timeout for a new one, and never past `deadline`.
    pub(crate) async fn acquire(&self, deadline: Instant) -> Result<Pooled> {
        self.inner.clone().acquire(deadline).await
    }

    pub(crate) fn state(&self) -> PoolState {
        let inner = &self.inner;
        let max_size = inner.settings.max_size;
        PoolState {
            open: inner.open.load(Ordering::SeqCst),
            idle: inner.lock_idle().len() as u32,
            in_use: max_size
                .saturating_sub(inner.permits.available_permits() as u32)
                .saturating_sub(inner.resetting.load(Ordering::SeqCst)),
            resetting: inner.resetting.load(Ordering::SeqCst),
            max_size,
        }
    }

    pub(crate) async fn close(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        inner.permits.close();
        let idle: Vec<Idle> = std::mem::take(&mut *inner.lock_idle());
        for entry in idle {
            inner.open.fetch_sub(1, Ordering::SeqCst);
            // A polite Terminate; a server that does not answer is not waited for.
            let _ = tokio::time::timeout(Duration::from_secs(1), entry.conn.raw.close()).await;
        }
        if let Some(canceller) = inner.canceller.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), canceller.close()).await;
        }
    }
}

impl Inner {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::new(kind, message).with_connector(self.connector.clone())
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

    fn expired(&self, conn: &Conn, idle_since: Option<Instant>) -> bool {
        let now = Instant::now();
        self.settings
            .max_lifetime
            .is_some_and(|max| now.duration_since(conn.created) >= max)
            || idle_since
                .zip(self.settings.idle_timeout)
                .is_some_and(|(since, max)| now.duration_since(since) >= max)
    }

    async fn acquire(self: Arc<Self>, deadline: Instant) -> Result<Pooled> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(closed_error(&self.connector));
        }
        // One budget for the whole acquire: waiting for a free slot and opening a new
        // connection together end at `acquire_timeout` (or the call's deadline).
        let started = Instant::now();
        let budget_end = deadline.min(started + self.settings.acquire_timeout);
        let wait = budget_end.saturating_duration_since(started);
        let permit = match tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(closed_error(&self.connector)),
            Err(_) => {
                return Err(self.error(
                    ErrorKind::Timeout,
                    format!(
                        "no PostgreSQL connection became free within {} (all {} are in use){}",
                        humanize(wait),
                        self.settings.max_size,
                        self.last_error_note()
                    ),
                ));
            }
        };
        loop {
            let Some(idle) = self.lock_idle().pop() else {
                break;
            };
            if self.expired(&idle.conn, Some(idle.since)) {
                self.forget(idle.conn);
                continue;
            }
            let mut conn = idle.conn;
            if idle.since.elapsed() >= PING_IF_IDLE_FOR {
                let left = deadline.saturating_duration_since(Instant::now());
                let alive = matches!(
                    tokio::time::timeout(left.min(self.connect_timeout), conn.raw.ping()).await,
                    Ok(Ok(()))
                );
                if !alive {
                    self.forget(conn);
                    continue;
                }
            }
            return Ok(Pooled::new(conn, permit, self));
        }
        let left = budget_end.saturating_duration_since(Instant::now());
        let wait = self.connect_timeout.min(left);
        match tokio::time::timeout(wait, self.open_connection()).await {
            Ok(Ok(conn)) => {
                self.open.fetch_add(1, Ordering::SeqCst);
                *self
                    .last_connect_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                Ok(Pooled::new(conn, permit, self))
            }
            Ok(Err(err)) => {
                *self
                    .last_connect_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(err.message().to_owned());
                Err(err)
            }
            Err(_) => {
                let message = if wait >= self.connect_timeout {
                    format!(
                        "connecting to PostgreSQL timed out after {} (connect_timeout): \
                         the server did not complete the TCP, TLS and startup exchange",
                        humanize(wait)
                    )
                } else {
                    let why = if budget_end < deadline {
                        "acquire_timeout"
                    } else {
                        "the call's timeout"
                    };
                    format!(
                        "no PostgreSQL connection within {} ({why}): the connection attempt \
                         timed out, the server did not complete the TCP, TLS and startup \
                         exchange (down, overloaded or a silent network path)",
                        humanize(budget_end.saturating_duration_since(started)),
                    )
                };
                *self
                    .last_connect_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
                Err(self.error(ErrorKind::Timeout, message))
            }
        }
    }

    /// TCP + TLS + authentication, then the session settings and the backend pid in
    /// one statement.
    async fn open_connection(&self) -> Result<Conn> {
        let mut raw = self
            .options
            .connect()
            .await
            .map_err(|e| convert(&self.connector, Phase::Connect, e))?;
        let mut sql = String::from("SELECT pg_backend_pid()");
        for i in 0..self.session.len() {
            sql.push_str(&format!(
                ", set_config(${}, ${}, false)",
                2 * i + 1,
                2 * i + 2
            ));
        }
        let mut query = sqlx::query_scalar::<_, i32>(AssertSqlSafe(sql)).persistent(false);
        for (name, value) in &self.session {
            query = query.bind(*name).bind(value.as_str());
        }
        let pid = query.fetch_one(&mut raw).await.map_err(|e| {
            convert(&self.connector, Phase::Connect, e).context("setting up the session")
        })?;
        Ok(Conn {
            raw,
            pid,
            statement_timeout_ms: self.statement_timeout_ms,
            created: Instant::now(),
        })
    }

    /// Drops an open connection (closing the socket ends the server session).
    fn forget(&self, conn: Conn) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        drop(conn);
    }

    fn release(self: &Arc<Self>, conn: Conn) {
        if self.closed.load(Ordering::SeqCst)
            || self.expired(&conn, None)
            // A transaction left open (an `execute("BEGIN")`) must not leak into the
            // next call; closing the connection rolls it back.
            || conn.raw.is_in_transaction()
        {
            self.forget(conn);
            self.fill_min_idle();
            return;
        }
        self.lock_idle().push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Puts the session of `conn` back to the connector's defaults in one round trip
    /// (see [`session::reset_sql`]); when the check shows prepared statements that sqlx
    /// does not know of, or sqlx's ones gone, drops them all and empties sqlx's cache.
    async fn reset(&self, conn: &mut Conn) -> std::result::Result<(), ResetFailure> {
        let sql = session::reset_sql(self.read_only, &self.session, session::fresh_seed());
        let rows = sqlx::raw_sql(AssertSqlSafe(sql))
            .fetch_all(&mut conn.raw)
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(db))
                if self.read_only
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
        conn.statement_timeout_ms = self.statement_timeout_ms;
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

    /// Opens connections in the background until `min_idle` are open.
    fn fill_min_idle(self: &Arc<Self>) {
        if self.settings.min_idle == 0 || self.closed.load(Ordering::SeqCst) {
            return;
        }
        if self.open.load(Ordering::SeqCst) >= self.settings.min_idle {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        handle.spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                if inner.closed.load(Ordering::SeqCst)
                    || inner.open.load(Ordering::SeqCst) >= inner.settings.min_idle
                {
                    return;
                }
                let Ok(permit) = inner.permits.clone().try_acquire_owned() else {
                    return;
                };
                match tokio::time::timeout(inner.connect_timeout, inner.open_connection()).await {
                    Ok(Ok(conn)) => {
                        inner.open.fetch_add(1, Ordering::SeqCst);
                        inner.release(conn);
                        drop(permit);
                    }
                    _ => return,
                }
            }
        });
    }

    fn reap(self: &Arc<Self>) {
        let mut expired = Vec::new();
        {
            let mut idle = self.lock_idle();
            let mut keep = Vec::with_capacity(idle.len());
            for entry in idle.drain(..) {
                if self.expired(&entry.conn, Some(entry.since)) {
                    expired.push(entry.conn);
                } else {
                    keep.push(entry);
                }
            }
            *idle = keep;
        }
        for conn in expired {
            self.forget(conn);
        }
        self.fill_min_idle();
    }

    /// Asks the server to cancel whatever session `pid` is running, from a separate
    /// connection kept for this purpose (outside the pool, so that a full pool can
    /// still cancel).
    async fn cancel(&self, pid: i32) -> Result<bool> {
        let mut canceller = self.canceller.lock().await;
        let mut last_error = None;
        for _ in 0..2 {
            if canceller.is_none() {
                match tokio::time::timeout(self.connect_timeout, self.options.connect()).await {
                    Ok(Ok(conn)) => *canceller = Some(conn),
                    Ok(Err(e)) => {
                        last_error = Some(convert(&self.connector, Phase::Connect, e));
                        continue;
                    }
                    Err(_) => {
                        last_error = Some(self.error(
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
                Ok(Err(e)) => last_error = Some(convert(&self.connector, Phase::Query, e)),
                Err(_) => {
                    last_error =
                        Some(self.error(ErrorKind::Timeout, "the cancel request timed out"))
                }
            }
            // Whatever went wrong, a new connection gets the second try.
            *canceller = None;
        }
        Err(last_error.unwrap_or_else(|| self.error(ErrorKind::Internal, "cancel failed")))
    }
}

async fn reaper(weak: Weak<Inner>) {
    let period = {
        let Some(inner) = weak.upgrade() else { return };
        [inner.settings.idle_timeout, inner.settings.max_lifetime]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::from_secs(30), |d| d / 2)
            .clamp(Duration::from_millis(200), Duration::from_secs(30))
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        inner.reap();
    }
}

/// `1s`, `1.500s` or `300ms`: whole milliseconds, for messages.
fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

/// A connection handed out to one call. Dropped normally it goes back to the pool;
/// dropped while [`busy`](Pooled::begin) (the call's future was dropped mid-query) it
/// is cancelled on the server and discarded.
pub(crate) struct Pooled {
    conn: Option<Conn>,
    busy: bool,
    /// SQL of a call ran since the session was last reset: the connection goes back to
    /// the pool only through [`Pooled::end_call`].
    dirty: bool,
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<Inner>,
}

impl Pooled {
    fn new(conn: Conn, permit: OwnedSemaphorePermit, pool: Arc<Inner>) -> Self {
        Pooled {
            conn: Some(conn),
            busy: false,
            dirty: false,
            permit: Some(permit),
            pool,
        }
    }

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
        let read_only = self.pool.read_only;
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
        let pool = self.pool.clone();
        pool.resetting.fetch_add(1, Ordering::SeqCst);
        handle.spawn(async move {
            self.reset_session().await;
            // Back in the pool (or closed) and its permit released before it stops
            // counting as resetting, so that it is never counted as neither.
            drop(self);
            pool.resetting.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// The reset of [`Pooled::end_call`]; leaves the connection ready to go back to the
    /// pool, or closes it (with a warning that says why, without any SQL).
    async fn reset_session(&mut self) {
        if self.conn.is_none() {
            return;
        }
        let pool = self.pool.clone();
        let outcome = tokio::time::timeout(pool.connect_timeout, pool.reset(self.conn())).await;
        let why = match outcome {
            Ok(Ok(())) => {
                self.busy = false;
                self.dirty = false;
                return;
            }
            Ok(Err(ResetFailure::Transaction)) if pool.read_only => {
                "a statement ended the read-only transaction of its call (COMMIT, ROLLBACK, \
                 END, ABORT and PREPARE TRANSACTION are not supported)"
                    .to_owned()
            }
            Ok(Err(ResetFailure::Transaction)) => "a statement left a transaction open".to_owned(),
            Ok(Err(ResetFailure::Failed(e))) => format!(
                "the session reset failed: {}",
                convert(&pool.connector, Phase::Query, e)
            ),
            Ok(Err(ResetFailure::Unexpected)) => {
                "the session reset gave an unexpected answer".to_owned()
            }
            Err(_) => {
                if let Some(conn) = self.conn.as_ref() {
                    // The connection is closed below either way.
                    let _ = pool.cancel(conn.pid).await;
                }
                "the session reset timed out".to_owned()
            }
        };
        tracing::warn!(
            connector = %pool.connector,
            "{why}; closing the PostgreSQL connection instead of reusing it"
        );
        if let Some(conn) = self.conn.take() {
            pool.forget(conn);
            pool.fill_min_idle();
        }
    }

    /// The query on this connection ran out of time (or its reader went away): cancel
    /// it on the server, then close the connection. Waits (at most [`ABORT_WAIT`])
    /// until the cancel request was delivered, so that normally the server has stopped
    /// the query when this returns; a slow cancel finishes in the background, still
    /// holding this connection's pool slot.
    pub(crate) async fn abort(mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let pool = self.pool.clone();
        let permit = self.permit.take();
        let task = tokio::spawn(async move {
            if let Err(e) = pool.cancel(conn.pid).await {
                tracing::warn!(
                    connector = %pool.connector,
                    pid = conn.pid,
                    error = %e,
                    "could not cancel a timed-out PostgreSQL query; closing its connection"
                );
            }
            pool.forget(conn);
            drop(permit);
            pool.fill_min_idle();
        });
        let _ = tokio::time::timeout(ABORT_WAIT, task).await;
    }

    /// Closes the connection without returning it to the pool (e.g. after an I/O error).
    pub(crate) fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.forget(conn);
            self.pool.fill_min_idle();
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !self.busy {
            if self.dirty {
                // Never reset: its session may hold anything the call left there.
                self.pool.forget(conn);
                self.pool.fill_min_idle();
            } else {
                self.pool.release(conn);
            }
            return;
        }
        // Dropped mid-query: cancel in the background, holding the permit until done
        // so that the pool never has more sessions than max_size.
        let pool = self.pool.clone();
        let permit = self.permit.take();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let _ = pool.cancel(conn.pid).await;
                    pool.forget(conn);
                    drop(permit);
                    pool.fill_min_idle();
                });
            }
            Err(_) => pool.forget(conn),
        }
    }
}
