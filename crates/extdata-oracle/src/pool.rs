//! The connections of a source: deadpool with a [`Manager`] that opens a connection
//! (and its session) on a blocking thread and checks it with a real ping before reuse;
//! a connection whose call was broken or lost is marked and closed, never pooled.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool::managed::{Metrics, Object, Pool, RecycleError, RecycleResult, TimeoutType};
use extdata_core::driver::{
    Lifecycle, pool_build_error, pool_busy_error, pool_get_error, timeout_error,
};
use extdata_core::{Error, ErrorKind, Result, ValidConfig};
use tokio::time::Instant;

use crate::connect::{self, Settings, endpoint_text};
use crate::error::{Stage, map_error};

/// How much later than the connector's own timer ODPI-C's call timeout fires: our
/// timer breaks the call first; the call timeout is the backstop if it cannot.
pub(crate) const CALL_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// What a source shares with its calls and their blocking threads.
pub(crate) struct Inner {
    pub(crate) config: ValidConfig,
    pub(crate) settings: Settings,
    pub(crate) pool: OnceLock<Pool<Manager>>,
    pub(crate) lifecycle: Lifecycle,
}

/// A pooled connection. Shared with the thread that may break its current call.
pub(crate) struct PooledConnection {
    pub(crate) conn: Arc<oracle::Connection>,
    /// Set when the connection must not be reused (timed out, lost).
    pub(crate) broken: bool,
}

impl std::fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConnection")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Opens Oracle connections on blocking threads and checks them with a real ping
/// before reuse.
pub(crate) struct Manager {
    pub(crate) config: ValidConfig,
    pub(crate) settings: Settings,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("connector", &self.config.name)
            .field("endpoint", &endpoint_text(&self.config))
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Opens one connection and sets up its session (blocking).
    pub(crate) fn open(
        config: &ValidConfig,
        settings: &Settings,
    ) -> Result<oracle::Connection, Error> {
        let username = config.username.clone().unwrap_or_default();
        let password = config.password_text().unwrap_or_default().to_owned();
        let mut connector =
            oracle::Connector::new(username, password, settings.connect_string.as_str());
        if config.username.is_none() {
            connector.external_auth(true);
        }
        connector.driver_name(concat!("extdata : ", env!("CARGO_PKG_VERSION")));
        if let Some(edition) = &settings.edition {
            connector.edition(edition.as_str());
        }
        if let Some(size) = settings.stmt_cache_size {
            connector.stmt_cache_size(size);
        }
        let mut conn = connector
            .connect()
            .map_err(|e| map_error(config, Stage::Connect, &e, false))?;
        // Read-only calls run inside SET TRANSACTION READ ONLY, which an autocommit
        // would end at once; read-write calls commit with their statement.
        conn.set_autocommit(!config.read_only);
        let setup = (|| {
            conn.set_call_timeout(Some(config.connect_timeout))?;
            conn.set_module(&settings.module)?;
            // TIMESTAMP WITH LOCAL TIME ZONE values come back in the session zone:
            // UTC makes them exact instants.
            conn.execute("ALTER SESSION SET TIME_ZONE = '+00:00'", &[])?;
            conn.set_call_timeout(None)
        })();
        if let Err(e) = setup {
            let _ = conn.close();
            return Err(map_error(config, Stage::Connect, &e, false));
        }
        Ok(conn)
    }
}

impl deadpool::managed::Manager for Manager {
    type Type = PooledConnection;
    type Error = Error;

    async fn create(&self) -> Result<PooledConnection, Error> {
        let config = self.config.clone();
        let settings = self.settings.clone();
        let opened = tokio::task::spawn_blocking(move || Manager::open(&config, &settings))
            .await
            .map_err(|e| {
                self.config.error(
                    ErrorKind::Internal,
                    format!("the connect thread failed: {e}"),
                )
            })??;
        Ok(PooledConnection {
            conn: Arc::new(opened),
            broken: false,
        })
    }

    async fn recycle(&self, obj: &mut PooledConnection, metrics: &Metrics) -> RecycleResult<Error> {
        if obj.broken {
            return Err(RecycleError::message("the connection was marked broken"));
        }
        if let Some(why) = self.config.pool.retired(metrics.age(), metrics.last_used()) {
            return Err(RecycleError::message(why));
        }
        let conn = obj.conn.clone();
        let bound = self.config.connect_timeout;
        let pinged = tokio::task::spawn_blocking(move || {
            conn.set_call_timeout(Some(bound))?;
            conn.ping()?;
            conn.set_call_timeout(None)
        })
        .await;
        match pinged {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                obj.broken = true;
                Err(RecycleError::Backend(map_error(
                    &self.config,
                    Stage::Connect,
                    &e,
                    false,
                )))
            }
            Err(_) => {
                obj.broken = true;
                Err(RecycleError::message("the ping thread failed"))
            }
        }
    }
}

impl Inner {
    /// The state of a source built from `config`. No I/O, no client library loaded.
    pub(crate) fn new(config: ValidConfig) -> Inner {
        let settings = Settings::from_config(&config);
        Inner {
            config,
            settings,
            pool: OnceLock::new(),
            lifecycle: Lifecycle::new(),
        }
    }

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
            .map_err(|e| pool_build_error(&self.config.name, e))?;
        Ok(self.pool.get_or_init(|| pool))
    }

    /// A pooled connection, waiting at most until `deadline`.
    pub(crate) async fn acquire(
        &self,
        deadline: Instant,
        total: Duration,
    ) -> Result<Object<Manager>> {
        self.lifecycle.check_open(&self.config.name)?;
        let pool = self.pool()?;
        match tokio::time::timeout_at(deadline, pool.get()).await {
            Err(_) => Err(timeout_error(
                &self.config.name,
                "waiting for a connection",
                total,
            )),
            Ok(Ok(object)) => Ok(object),
            Ok(Err(e)) => Err(pool_get_error(&self.config.name, e, |timeout| {
                let status = pool.status();
                Some(match timeout {
                    TimeoutType::Wait => pool_busy_error(
                        &self.config.name,
                        status.size.saturating_sub(status.available),
                        status.max_size,
                        self.config.pool.acquire_timeout,
                    ),
                    TimeoutType::Create | TimeoutType::Recycle => timeout_error(
                        &self.config.name,
                        &format!("connecting to {}", connect::endpoint_text(&self.config)),
                        self.config.connect_timeout,
                    ),
                })
            })),
        }
    }
}
