//! The pool of HiveServer2 sessions (one TCP connection each): deadpool's, with a
//! [`Manager`] that opens sessions and checks an idle one with a real round trip
//! (`GetInfo`) before it is handed out again.
//!
//! A session handed back after a failed call, or after a statement that may have
//! changed it ([`Session::reusable`]), is taken out of the pool and dropped: over the
//! binary transport closing its socket makes the server close the session and its
//! operations; over HTTP, where a session outlives its connection, dropping it sends
//! `CloseSession` from a spawned task (see [`Session`]).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult, Timeouts};
use extdata_core::driver::{closed_error, duration_text, pool_build_error, timeout_error};
use extdata_core::{Error, ErrorKind, PoolSettings, Result};
use hive::service::rpc::thrift::TGetInfoType;
use tokio::time::Instant;

use crate::connect::Settings;
use crate::session::Session;

/// Sessions idle at least this long are checked with a round trip before reuse.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);
/// How long past the acquire budget `acquire` waits for a session being opened to
/// report its own timeout.
const OPEN_GRACE: Duration = Duration::from_millis(100);

tokio::task_local! {
    /// What is left of the acquire budget of the call whose `get` is opening a session:
    /// [`Manager::create`] runs in the caller's task and opens within it, so that its
    /// error says which stage was stuck when the budget ran out.
    static ACQUIRE_LEFT: Duration;
}

/// Opens sessions and checks them before reuse.
struct Manager {
    settings: Arc<Settings>,
    limits: PoolSettings,
}

impl managed::Manager for Manager {
    type Type = Session;
    type Error = Error;

    async fn create(&self) -> Result<Session> {
        let left = ACQUIRE_LEFT
            .try_with(|left| *left)
            .unwrap_or(self.settings.connect_timeout);
        // Boxed: opening a session is a large future, and it would otherwise sit inside
        // every caller's future (deadpool's `get` and the call around it).
        Box::pin(Session::open(&self.settings, left)).await
    }

    async fn recycle(&self, session: &mut Session, metrics: &Metrics) -> RecycleResult<Error> {
        if let Some(why) = self.expired(session, metrics) {
            return Err(RecycleError::message(why));
        }
        if session.last_used.elapsed() >= CHECK_AFTER_IDLE {
            let budget = self.settings.connect_timeout;
            let deadline = Instant::now() + budget;
            // Boxed for the same reason as in `create`.
            if let Err(e) =
                Box::pin(session.info(TGetInfoType::CLI_SERVER_NAME, deadline, budget)).await
            {
                tracing::debug!(connector = %self.settings.name, "dropping a dead idle session");
                return Err(RecycleError::Backend(e));
            }
        }
        Ok(())
    }
}

impl Manager {
    /// Which of the pool's lifetimes `session` has outlived, if any.
    fn expired(&self, session: &Session, metrics: &Metrics) -> Option<&'static str> {
        self.limits
            .retired(metrics.age(), session.last_used.elapsed())
    }
}

pub(crate) struct Pool {
    pool: managed::Pool<Manager>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("Pool")
            .field("max_size", &status.max_size)
            .field("idle", &status.available)
            .finish_non_exhaustive()
    }
}

/// A session on loan; it goes back to the pool when dropped (unless broken, or no longer
/// reusable because its call may have changed the session).
pub(crate) struct Lease {
    session: Option<Object<Manager>>,
}

impl Deref for Lease {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a lease holds its session until dropped")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("a lease holds its session until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        // Back to the pool only while the pool is open and the session within its
        // lifetimes (one look at the pool).
        let keep = Object::pool(&session).is_some_and(|pool| {
            !pool.is_closed()
                && pool
                    .manager()
                    .expired(&session, Object::metrics(&session))
                    .is_none()
        });
        if session.broken || !session.reusable || !keep {
            drop(Object::take(session));
        }
    }
}

impl Pool {
    /// The pool; builds no session until first use.
    pub(crate) fn new(settings: Settings, limits: PoolSettings) -> Result<Pool> {
        let name = settings.name.clone();
        let recycle = settings.connect_timeout;
        let pool = managed::Pool::builder(Manager {
            limits: limits.clone(),
            settings: Arc::new(settings),
        })
        .max_size(limits.max_size.max(1) as usize)
        .runtime(deadpool::Runtime::Tokio1)
        // `create` is bounded by the acquire budget it is given; see `acquire`.
        .create_timeout(None)
        .recycle_timeout(Some(recycle))
        .build()
        .map_err(|e| pool_build_error(&name, e))?;
        Ok(Pool { pool })
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.pool.manager().settings
    }

    /// `Ok` until [`close`](Pool::close); then the connector's `Closed` error.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.pool.is_closed() {
            Err(closed_error(&self.settings().name))
        } else {
            Ok(())
        }
    }

    /// A healthy session: an idle one that passes its check, or a new one opened within
    /// what is left of the acquire budget (`pool.acquire_timeout`, or the call's
    /// deadline when sooner), so that the call fails in time even when the server
    /// accepts TCP and then stays silent.
    pub(crate) async fn acquire(&self, deadline: Instant) -> Result<Lease> {
        self.check_open()?;
        let settings = self.settings();
        let wait = self.pool.manager().limits.acquire_timeout;
        let started = Instant::now();
        let until = deadline.min(started + wait);
        let left = until.saturating_duration_since(started);
        let timeouts = Timeouts {
            wait: Some(left),
            create: None,
            recycle: Some(settings.connect_timeout),
        };
        let outcome = ACQUIRE_LEFT
            // The grace lets a session that is being opened report its own, more
            // precise timeout (it is bounded by `left` itself).
            .scope(
                left,
                tokio::time::timeout_at(
                    until + OPEN_GRACE,
                    Box::pin(self.pool.timeout_get(&timeouts)),
                ),
            )
            .await;
        match outcome {
            Ok(Ok(session)) => Ok(Lease {
                session: Some(session),
            }),
            Ok(Err(PoolError::Backend(e))) => Err(self.budget_note(e, left, until < deadline)),
            Ok(Err(PoolError::Closed)) => Err(closed_error(&settings.name)),
            Ok(Err(PoolError::Timeout(managed::TimeoutType::Wait))) | Err(_) => Err(timeout_error(
                &settings.name,
                "waiting for a free session in the pool",
                wait.min(settings.query_timeout),
            )),
            Ok(Err(other)) => Err(Error::new(
                ErrorKind::Internal,
                format!("the session pool failed: {other}"),
            )
            .with_connector(settings.name.clone())),
        }
    }

    /// A timeout of opening a session cut short by the acquire budget, said as such.
    fn budget_note(&self, e: Error, left: Duration, by_acquire_timeout: bool) -> Error {
        let settings = self.settings();
        if e.kind() != ErrorKind::Timeout || left >= settings.connect_timeout {
            return e;
        }
        let why = if by_acquire_timeout {
            "acquire_timeout"
        } else {
            "the call's timeout"
        };
        Error::new(
            ErrorKind::Timeout,
            format!(
                "no session could be opened within {} ({why}); last attempt: {}",
                duration_text(left),
                e.message()
            ),
        )
        .with_connector(settings.name.clone())
    }

    /// Refuses new work and closes the idle sessions on the server.
    pub(crate) async fn close(&self) {
        let idle = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        let budget = self.settings().connect_timeout.min(Duration::from_secs(5));
        futures::future::join_all(idle.into_iter().map(|s| s.close(budget))).await;
    }
}
