//! The connections of a source: sqlx's pool (kept because its lazy connect, idle
//! reaping and `after_connect` session setup fit; every acquire is still bounded and
//! explained here), a lease per call with the server's connection id, and the cancel
//! of a timed-out statement with `KILL QUERY` from another connection.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use extdata_core::driver::{Lifecycle, duration_text, pool_busy_error, timeout_error};
use extdata_core::{Dialect, Endpoint, Error, ErrorKind, Result, Statement, ValidConfig};
use futures::TryStreamExt;
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlPool};
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Connection, Row as _};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::classify::{self, Effect};
use crate::connect::{self, Flavour, Session};
use crate::error::{Stage, is_connection_broken, map_error};
use crate::types;

/// How long a connection whose query was cancelled may take to deliver the end of that
/// query before it is closed instead of reused.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

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

/// What a cancelled connection must do before it is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recover {
    /// Answer a ping (a single statement ran outside a transaction).
    Ping,
    /// Roll back the call's transaction (a batch).
    RollBack,
}

/// What a source shares with its calls and their background clean-ups.
pub(crate) struct Inner {
    pub(crate) config: ValidConfig,
    pub(crate) options: MySqlConnectOptions,
    pub(crate) session: Arc<Session>,
    pub(crate) pool: OnceLock<MySqlPool>,
    pub(crate) lifecycle: Lifecycle,
    /// Set when opening a connection failed: the next call probes the server directly
    /// (one attempt, bounded by `connect_timeout`) instead of waiting out the pool.
    pub(crate) unreachable: AtomicBool,
}

/// A pooled connection with its server-side id; on a read-only connector, inside the
/// call's `START TRANSACTION READ ONLY` (rolled back by the reset when it goes back to
/// the pool).
pub(crate) struct Lease {
    pub(crate) conn: PoolConnection<sqlx::MySql>,
    pub(crate) id: u64,
    /// The call ran a statement that may have left session state the reset does not
    /// undo: the connection is closed, not pooled.
    pub(crate) discard: bool,
}

impl Lease {
    /// Marks the connection for closing when the call ran a statement of `effect`.
    pub(crate) fn ran(&mut self, effect: Effect) {
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

impl Inner {
    /// The state of a source built from `config`. No I/O.
    pub(crate) fn new(config: ValidConfig) -> Result<Inner> {
        let options = connect::connect_options(&config)?;
        let session = Arc::new(Session::from_config(&config));
        Ok(Inner {
            config,
            options,
            session,
            pool: OnceLock::new(),
            lifecycle: Lifecycle::new(),
            unreachable: AtomicBool::new(false),
        })
    }

    pub(crate) fn pool(&self) -> &MySqlPool {
        self.pool.get_or_init(|| {
            connect::pool_options(&self.config, self.session.clone())
                .connect_lazy_with(self.options.clone())
        })
    }

    pub(crate) fn map(&self, stage: Stage, err: sqlx::Error) -> Error {
        map_error(&self.config, stage, err)
    }

    /// Checks a statement before it runs (see `classify`): a read-only connector
    /// refuses what could leave its read-only transaction with a `ReadOnly` error.
    pub(crate) fn admit(&self, statement: &Statement) -> Result<Effect> {
        classify::admit(statement, self.config.read_only)
            .map_err(|reason| self.config.error(ErrorKind::ReadOnly, reason))
    }

    /// Opens a connection outside the pool, session setup included, bounded by
    /// `connect_timeout` and `limit`. With `diagnose` (a call is failing anyway), a
    /// plain TCP connect first finds out whether the server accepts at all, so that a
    /// timeout can say which stage was stuck.
    pub(crate) async fn open_direct(
        &self,
        limit: Duration,
        diagnose: bool,
    ) -> Result<MySqlConnection> {
        // Whole milliseconds: the figure appears in messages.
        let limit = Duration::from_millis(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        let timeout = self.config.connect_timeout.min(limit);
        let started = Instant::now();
        let endpoint = &self.config.endpoint;
        let mut accepted = false;
        if diagnose && let Endpoint::Tcp { host, port } = &self.config.endpoint {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), *port));
            match tokio::time::timeout(timeout, tcp).await {
                Ok(Ok(_)) => accepted = true,
                // Refused and the like: the attempt below reports it in its own words.
                Ok(Err(_)) => {}
                Err(_) => {
                    return Err(timeout_error(
                        &self.config.name,
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
            Err(_) if accepted => Err(timeout_error(
                &self.config.name,
                &format!(
                    "connecting to {endpoint}: the server accepted TCP but did not complete \
                     the handshake and login (silent); the attempt"
                ),
                timeout,
            )),
            Err(_) => Err(timeout_error(
                &self.config.name,
                &format!("connecting to {endpoint}"),
                timeout,
            )),
        }
    }

    /// No connection could be opened within `waited`; `last` is the last attempt's error.
    pub(crate) fn unreachable_error(&self, waited: Duration, last: &Error) -> Error {
        self.config.error(
            last.kind(),
            format!(
                "no connection could be opened within {}; last attempt: {}",
                duration_text(waited),
                last.message()
            ),
        )
    }

    /// The pool gave up waiting after `waited`: say why, from a direct attempt (ending
    /// by `probe_until`) when nothing is open.
    pub(crate) async fn explain_acquire_timeout(
        &self,
        waited: Duration,
        probe_until: Instant,
    ) -> Error {
        let pool = self.pool();
        if pool.size() > 0 {
            return pool_busy_error(
                &self.config.name,
                pool.size() as usize - pool.num_idle(),
                self.config.pool.max_size as usize,
                waited,
            );
        }
        let limit = probe_until.saturating_duration_since(Instant::now());
        match self.open_direct(limit, true).await {
            Err(e) => {
                self.unreachable.store(true, Ordering::Release);
                self.unreachable_error(waited, &e)
            }
            Ok(conn) => {
                let _ = conn.close().await;
                timeout_error(
                    &self.config.name,
                    "opening a connection (the server answers again now)",
                    waited,
                )
            }
        }
    }

    /// A pooled connection, its server-side limit set for this call and its id known —
    /// one round trip, which also proves the connection alive.
    pub(crate) async fn lease(&self, deadline: Instant, guard: Duration) -> Result<Lease> {
        self.lifecycle.check_open(&self.config.name)?;
        if self.unreachable.load(Ordering::Acquire) && self.pool().size() == 0 {
            // Fail fast while the server is known to be down; on success the pool
            // connects normally below.
            let budget = self.config.pool.acquire_timeout.min(total_left(deadline));
            let conn = self
                .open_direct(budget, true)
                .await
                .map_err(|e| self.unreachable_error(budget, &e))?;
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
                Err(_) => {
                    return Err(timeout_error(
                        &self.config.name,
                        "waiting for a connection",
                        total,
                    ));
                }
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
                    return Err(timeout_error(
                        &self.config.name,
                        "preparing a connection",
                        total,
                    ));
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
    pub(crate) async fn kill_query(&self, id: u64) -> Result<()> {
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
            Err(_) => Err(timeout_error(
                &self.config.name,
                "KILL QUERY",
                self.config.connect_timeout,
            )),
        }
    }

    /// After a timeout, an abandoned stream or a dropped batch: stop the statement on
    /// the server, then reuse the connection only if it does what `recover` says
    /// within [`DRAIN_TIMEOUT`] (otherwise it is closed, which also rolls back).
    pub(crate) async fn cancel(
        self: Arc<Self>,
        mut lease: Lease,
        killed: Option<oneshot::Sender<()>>,
        recover: Recover,
    ) {
        let kill = self.kill_query(lease.id).await;
        if let Some(signal) = killed {
            let _ = signal.send(());
        }
        let clean = match kill {
            Ok(()) => {
                // The killed statement's end (or MariaDB's early SLEEP() result) is
                // still on the wire: the next command reads past it.
                let conn = &mut *lease.conn;
                let next = async {
                    match recover {
                        Recover::Ping => conn.ping().await,
                        Recover::RollBack => sqlx::raw_sql(AssertSqlSafe("ROLLBACK"))
                            .execute(conn)
                            .await
                            .map(drop),
                    }
                };
                matches!(tokio::time::timeout(DRAIN_TIMEOUT, next).await, Ok(Ok(())))
            }
            Err(e) => {
                tracing::warn!(connector = %self.config.name, error = %e, "could not cancel a timed-out call on the server; closing its connection");
                false
            }
        };
        if !clean {
            lease.conn.close_on_drop();
        }
    }

    /// Ends a call on `lease` that ran until `deadline`: its result, the connection
    /// closed after an error that broke it, or — after a timeout — the statement
    /// stopped on the server and `operation`'s timeout error.
    pub(crate) async fn settle<T>(
        self: &Arc<Self>,
        mut lease: Lease,
        result: std::result::Result<
            std::result::Result<T, sqlx::Error>,
            tokio::time::error::Elapsed,
        >,
        deadline: Instant,
        (operation, timeout): (&str, Duration),
    ) -> Result<T> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if is_connection_broken(&e) {
                    lease.conn.close_on_drop();
                }
                Err(self.map(Stage::Statement, e))
            }
            Err(_) => {
                self.cancel_and_wait(lease, deadline).await;
                Err(timeout_error(&self.config.name, operation, timeout))
            }
        }
    }

    /// Cancels in the background, waiting until at most [`KILL_WAIT`] after the call's
    /// `deadline` for `KILL QUERY` to go out, so that the caller sees the query gone
    /// when it gets the error.
    pub(crate) async fn cancel_and_wait(self: &Arc<Self>, lease: Lease, deadline: Instant) {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(self.clone().cancel(lease, Some(tx), Recover::Ping));
        let _ = tokio::time::timeout(kill_wait(deadline), rx).await;
    }

    pub(crate) fn render(&self, statement: &Statement) -> Result<(String, MySqlArguments)> {
        let rendered = statement
            .render(Dialect::MySql)
            .map_err(|e| e.with_connector(self.config.name.clone()))?;
        let args = types::bind(&rendered.params, self.session.timestamps)
            .map_err(|e| e.with_connector(self.config.name.clone()))?;
        Ok((rendered.sql, args))
    }
}
