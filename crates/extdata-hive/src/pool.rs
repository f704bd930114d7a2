//! A small pool of HiveServer2 sessions (one TCP connection each).
//!
//! A session handed back after a failed call is dropped (closing its socket makes the
//! server close the session and its operations). A session that sat idle is checked
//! with a real round trip (`GetInfo`) before it is handed out again.

use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use extdata_core::{PoolSettings, Result, closed_error};
use hive::service::rpc::thrift::TGetInfoType;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::connect::{Session, Settings};

/// Sessions idle at least this long are checked with a round trip before reuse.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    limits: PoolSettings,
    idle: Mutex<VecDeque<Session>>,
    permits: Arc<Semaphore>,
    closed: AtomicBool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("max_size", &self.inner.limits.max_size)
            .field(
                "idle",
                &self.inner.idle.lock().map(|i| i.len()).unwrap_or(0),
            )
            .finish_non_exhaustive()
    }
}

/// A session on loan; it goes back to the pool when dropped (unless broken, or no longer
/// reusable because its call may have changed the session).
pub(crate) struct Lease {
    session: Option<Session>,
    inner: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
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
        if let Some(session) = self.session.take()
            && !session.broken
            && session.reusable
            && !self.inner.closed.load(Ordering::Acquire)
            && !self.inner.expired(&session)
            && let Ok(mut idle) = self.inner.idle.lock()
        {
            idle.push_back(session);
        }
    }
}

impl Inner {
    fn expired(&self, session: &Session) -> bool {
        let now = Instant::now();
        self.limits
            .max_lifetime
            .is_some_and(|max| now.duration_since(session.created) >= max)
            || self
                .limits
                .idle_timeout
                .is_some_and(|max| now.duration_since(session.last_used) >= max)
    }
}

impl Pool {
    pub(crate) fn new(settings: Settings, limits: PoolSettings) -> Pool {
        let permits = Arc::new(Semaphore::new(limits.max_size.max(1) as usize));
        Pool {
            inner: Arc::new(Inner {
                settings,
                limits,
                idle: Mutex::new(VecDeque::new()),
                permits,
                closed: AtomicBool::new(false),
            }),
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// A healthy session: an idle one that passes its check, or a new one.
    pub(crate) async fn acquire(&self, deadline: tokio::time::Instant) -> Result<Lease> {
        let settings = &self.inner.settings;
        if self.is_closed() {
            return Err(closed_error(&settings.name));
        }
        let wait = self.inner.limits.acquire_timeout;
        let started = tokio::time::Instant::now();
        let until = deadline.min(started + wait);
        let permit = match tokio::time::timeout_at(
            until,
            self.inner.permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(closed_error(&settings.name)),
            Err(_) => {
                return Err(extdata_core::Error::timeout(
                    "waiting for a free session in the pool",
                    wait.min(settings.query_timeout),
                )
                .with_connector(settings.name.clone()));
            }
        };
        loop {
            let candidate = self
                .inner
                .idle
                .lock()
                .ok()
                .and_then(|mut idle| idle.pop_front());
            let Some(mut session) = candidate else { break };
            if self.inner.expired(&session) {
                tokio::spawn(session.close(Duration::from_secs(2)));
                continue;
            }
            if session.last_used.elapsed() >= CHECK_AFTER_IDLE {
                let budget = settings.connect_timeout;
                let check_deadline = tokio::time::Instant::now() + budget;
                if session
                    .info(TGetInfoType::CLI_SERVER_NAME, check_deadline, budget)
                    .await
                    .is_err()
                {
                    tracing::debug!(connector = %settings.name, "dropping a dead idle session");
                    continue;
                }
            }
            return Ok(Lease {
                session: Some(session),
                inner: self.inner.clone(),
                _permit: permit,
            });
        }
        // Opening a session shares the acquire budget: the call fails within
        // acquire_timeout even when the server accepts TCP and then stays silent.
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let session = Session::open(settings, left).await.map_err(|e| {
            if e.kind() == extdata_core::ErrorKind::Timeout && left < settings.connect_timeout {
                let why = if until < deadline {
                    "acquire_timeout"
                } else {
                    "the call's timeout"
                };
                extdata_core::Error::new(
                    extdata_core::ErrorKind::Timeout,
                    format!(
                        "no session could be opened within {}ms ({why}); last attempt: {}",
                        (until - started).as_millis(),
                        e.message()
                    ),
                )
                .with_connector(settings.name.clone())
            } else {
                e
            }
        })?;
        Ok(Lease {
            session: Some(session),
            inner: self.inner.clone(),
            _permit: permit,
        })
    }

    /// Refuses new work and closes the idle sessions on the server.
    pub(crate) async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.permits.close();
        let idle: Vec<Session> = self
            .inner
            .idle
            .lock()
            .map(|mut idle| idle.drain(..).collect())
            .unwrap_or_default();
        let budget = self
            .inner
            .settings
            .connect_timeout
            .min(Duration::from_secs(5));
        futures::future::join_all(idle.into_iter().map(|s| s.close(budget))).await;
    }
}
