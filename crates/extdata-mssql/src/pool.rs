//! The connections of a source: deadpool with a [`ConnectionManager`] (opens a
//! connection, checks it with `SELECT 1` before reuse), a lease per call, and the
//! cancel of a timed-out request: a TDS ATTENTION, then — when the server does not
//! acknowledge it in time — the connection closed and its session ended with `KILL`
//! from a fresh connection.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use extdata_core::driver::{
    Lifecycle, pool_build_error, pool_busy_error, pool_get_error, timeout_error,
};
use extdata_core::{Error, ErrorKind, Result, Statement, ValidConfig};
use tiberius::{ColumnData, Query};
use tokio::sync::{OnceCell, oneshot};
use tokio::time::Instant;

use crate::connect::{self, Connection, Settings, TlsFiles};
use crate::error::{Stage, is_connection_broken, map_error};
use crate::{read_only, types};

/// How long a timed-out call waits for the server to acknowledge the ATTENTION (the
/// cancel) before returning; the rest of the clean-up carries on in the background.
pub(crate) const CANCEL_WAIT: Duration = Duration::from_secs(1);

/// How long the server may take to acknowledge an ATTENTION before the connection is
/// closed instead of reused (and its session ended with `KILL`). SQL Server answers in
/// milliseconds; a server that answers only when the statement ends is not waited for.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// What a source shares with its calls and their background clean-ups.
pub(crate) struct Inner {
    pub(crate) config: ValidConfig,
    pub(crate) settings: Settings,
    pub(crate) pool: OnceCell<Pool>,
    pub(crate) lifecycle: Lifecycle,
}

pub(crate) type Pool = managed::Pool<ConnectionManager>;
pub(crate) type Lease = Object<ConnectionManager>;

/// A pooled connection: tiberius' client and the server session it is.
pub(crate) struct Pooled {
    client: Connection,
    /// `None` when the server would not say; a failed cancel then only closes it.
    session: Option<SessionId>,
}

impl Deref for Pooled {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.client
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.client
    }
}

/// A server session: `@@SPID` and its login time. A session id is given to a new
/// session once the old one ended; the login time keeps `KILL` from hitting that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionId {
    pub(crate) spid: i32,
    /// `login_time` in ISO 8601 (style 126), as the server printed it.
    pub(crate) login_time: String,
}

impl SessionId {
    /// Which session this connection is.
    const QUERY: &str = "SELECT CAST(@@SPID AS int), CONVERT(varchar(23), login_time, 126) \
                         FROM sys.dm_exec_sessions WHERE session_id = @@SPID";

    /// Asks the server which session `conn` is; `None` when it does not say.
    async fn of(
        conn: &mut Connection,
    ) -> std::result::Result<Option<SessionId>, tiberius::error::Error> {
        let Some(row) = conn.simple_query(Self::QUERY).await?.into_row().await? else {
            return Ok(None);
        };
        let spid = row.try_get::<i32, _>(0)?;
        let login_time = row.try_get::<&str, _>(1)?;
        Ok(spid.zip(login_time).map(|(spid, login_time)| SessionId {
            spid,
            login_time: login_time.to_owned(),
        }))
    }

    /// `KILL <spid>` if that session is still the one that logged in at `login_time`
    /// (bound as `@P1`); a session that already ended is left alone.
    pub(crate) fn kill_sql(&self) -> String {
        format!(
            "IF EXISTS (SELECT 1 FROM sys.dm_exec_sessions WHERE session_id = {spid} \
             AND CONVERT(varchar(23), login_time, 126) = @P1) KILL {spid}",
            spid = self.spid
        )
    }
}

/// Opens connections and checks them before reuse.
pub(crate) struct ConnectionManager {
    config: ValidConfig,
    settings: Settings,
    /// Client certificate and key files, when the config has an identity.
    files: Option<TlsFiles>,
}

extdata_core::debug_fields!(ConnectionManager |manager| { settings, .. });

impl ConnectionManager {
    fn map(&self, stage: Stage, err: tiberius::error::Error) -> Error {
        map_error(&self.config, &self.settings.endpoint_text(), stage, err)
    }

    /// Ends `session` from a fresh connection (outside the pool), if it still exists.
    async fn kill(&self, session: &SessionId) -> Result<()> {
        let mut conn = connect::open(&self.config, &self.settings, self.files.as_ref()).await?;
        let mut query = Query::new(session.kill_sql());
        query.bind(session.login_time.clone());
        let killed = tokio::time::timeout(self.config.connect_timeout, async {
            query.execute(&mut conn).await?;
            conn.close().await
        })
        .await;
        match killed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.map(Stage::Statement, e)),
            Err(_) => Err(timeout_error(
                &self.config.name,
                &format!("KILL {}", session.spid),
                self.config.connect_timeout,
            )),
        }
    }
}

impl managed::Manager for ConnectionManager {
    type Type = Pooled;
    type Error = Error;

    /// Opens a connection and asks which session it is (for `KILL`, should a cancel
    /// fail).
    async fn create(&self) -> Result<Pooled> {
        let mut client = connect::open(&self.config, &self.settings, self.files.as_ref()).await?;
        let session = match SessionId::of(&mut client).await {
            Ok(session) => session,
            Err(e) if is_connection_broken(&e) => return Err(self.map(Stage::Connect, e)),
            Err(e) => {
                tracing::debug!(connector = %self.config.name, error = %self.map(Stage::Connect, e), "the server did not say which session a connection is; a failed cancel will only close it");
                None
            }
        };
        Ok(Pooled { client, session })
    }

    /// Reuses a connection only if it is within the pool's lifetimes and answers
    /// `SELECT 1` with 1 (an idle connection may have been closed by the server or a
    /// firewall; one whose cancel went wrong may be out of step).
    async fn recycle(&self, conn: &mut Pooled, metrics: &Metrics) -> RecycleResult<Error> {
        if let Some(why) = self.config.pool.retired(metrics.age(), metrics.last_used()) {
            return Err(RecycleError::message(why));
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
            Err(e) => Err(RecycleError::Backend(self.map(Stage::Statement, e))),
        }
    }
}

impl Inner {
    /// The state of a source built from `config`. No I/O.
    pub(crate) fn new(config: ValidConfig) -> Result<Inner> {
        let settings = Settings::from_config(&config)?;
        Ok(Inner {
            config,
            settings,
            pool: OnceCell::new(),
            lifecycle: Lifecycle::new(),
        })
    }

    pub(crate) fn map(&self, err: tiberius::error::Error) -> Error {
        map_error(
            &self.config,
            &self.settings.endpoint_text(),
            Stage::Statement,
            err,
        )
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
                    .map_err(|e| pool_build_error(&self.config.name, e))?;
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
    pub(crate) async fn lease(&self, deadline: Instant) -> Result<Lease> {
        self.lifecycle.check_open(&self.config.name)?;
        let pool = self.pool().await?;
        let total = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(pool_get_error(&self.config.name, e, |_| {
                let status = pool.status();
                Some(pool_busy_error(
                    &self.config.name,
                    status.size.saturating_sub(status.available),
                    status.max_size,
                    self.config.pool.acquire_timeout,
                ))
            })),
            Err(_) => Err(timeout_error(
                &self.config.name,
                "waiting for a connection",
                total,
            )),
        }
    }

    /// After a timeout or an abandoned stream: cancel the request on the server with a
    /// TDS ATTENTION. The connection goes back to the pool only when the server
    /// acknowledged it within [`CANCEL_TIMEOUT`]. Otherwise it is taken out and closed,
    /// and its session is ended with `KILL` from a fresh connection: a server that
    /// acknowledges an ATTENTION only once the statement finished (Babelfish) keeps
    /// running it after the connection is gone.
    pub(crate) async fn cancel(
        self: Arc<Self>,
        mut conn: Lease,
        done: Option<oneshot::Sender<()>>,
    ) {
        let result = tokio::time::timeout(CANCEL_TIMEOUT, conn.cancel_query()).await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("cancelling a request failed: {}", self.map(e))),
            Err(_) => Some("the server did not acknowledge the cancel in time".to_owned()),
        };
        if let Some(failure) = failure {
            let session = Object::take(conn).session;
            match (session, self.pool.get()) {
                (Some(session), Some(pool)) => {
                    let killed = pool.manager().kill(&session).await;
                    match killed {
                        Ok(()) => {
                            tracing::warn!(connector = %self.config.name, spid = session.spid, "{failure}; closed its connection and ended its session with KILL")
                        }
                        Err(e) => {
                            tracing::warn!(connector = %self.config.name, spid = session.spid, error = %e, "{failure}; closed its connection, but KILL failed: the request may still run on the server")
                        }
                    }
                }
                _ => {
                    tracing::warn!(connector = %self.config.name, "{failure}; closed its connection (its session is not known: the request may still run on the server)")
                }
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    /// Cancels in the background, waiting at most [`CANCEL_WAIT`] for the server's
    /// acknowledgement, so that the caller sees the request gone when it gets the error.
    pub(crate) async fn cancel_and_wait(self: &Arc<Self>, conn: Lease) {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(self.clone().cancel(conn, Some(tx)));
        let _ = tokio::time::timeout(CANCEL_WAIT, rx).await;
    }

    /// The SQL and parameters to send; on a read-only connector only after the strict
    /// check of [`read_only`] passed.
    pub(crate) fn render(
        &self,
        statement: &Statement,
    ) -> Result<(String, Vec<ColumnData<'static>>)> {
        let (sql, params) =
            types::render(statement).map_err(|e| e.with_connector(self.config.name.clone()))?;
        if self.config.read_only
            && let Some(why) = read_only::refusal(&sql)
        {
            return Err(self.config.error(ErrorKind::ReadOnly, why));
        }
        Ok((sql, params))
    }

    /// Runs `work` on a pooled connection within `timeout`; on timeout the request is
    /// cancelled on the server and the connection reused only if that worked.
    pub(crate) async fn with_connection<T, F>(
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
                Err(timeout_error(&self.config.name, operation, timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_ends_only_the_session_that_logged_in_then() {
        let session = SessionId {
            spid: 57,
            login_time: "2026-12-02T07:55:01.123".into(),
        };
        let sql = session.kill_sql();
        assert!(sql.ends_with(") KILL 57"), "{sql}");
        assert!(sql.contains("WHERE session_id = 57"), "{sql}");
        assert!(
            sql.contains("CONVERT(varchar(23), login_time, 126) = @P1"),
            "the login time is bound, not spliced: {sql}"
        );
        assert!(SessionId::QUERY.contains("@@SPID"));
    }
}
