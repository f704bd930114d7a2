//! The pool of a source: sqlx's (its lazy connect, `after_connect` setup and idle
//! reaping fit an embedded database), opened on first use after one connection alone
//! set the file up; for `:memory:` a keeper connection holds the database while the
//! pool has none open.

use std::time::{Duration, Instant};

use extdata_core::driver::timeout_error;
use extdata_core::{Error, Result};
use sqlx::sqlite::SqliteConnection;
use sqlx::{ConnectOptions, Connection, SqlitePool};
use tokio::sync::Mutex;

use crate::{SqliteSource, error, run};

/// The pool and, for `:memory:`, its keeper.
pub(crate) struct Pools {
    pool: SqlitePool,
    /// For `:memory:`: a connection outside the pool that keeps the database alive while
    /// the pool has no connection open (the last one closing would drop every table).
    keeper: Mutex<Option<SqliteConnection>>,
}

impl SqliteSource {
    /// The pool, created on first use.
    async fn pool(&self, operation: &'static str, timeout: Duration) -> Result<&SqlitePool> {
        self.check_open()?;
        let pools = self
            .pools
            .get_or_try_init(|| async {
                let first = self.open_first(operation, timeout).await?;
                let keeper = if self.settings.memory {
                    Some(first)
                } else {
                    // Only there to set the file up; the pool opens its own.
                    let _ = first.close().await;
                    None
                };
                let pool = self
                    .settings
                    .pool
                    .clone()
                    .connect_lazy_with(self.settings.connect.clone());
                Ok::<_, Error>(Pools {
                    pool,
                    keeper: Mutex::new(keeper),
                })
            })
            .await?;
        Ok(&pools.pool)
    }

    /// Opens the database once before the pool does, with the settings that must not be
    /// applied by several connections at once (the switch to WAL).
    ///
    /// A journal-mode change into or out of WAL reads the file header and then writes it;
    /// SQLite does not wait for a read to become a write while another connection holds
    /// the write lock (it could deadlock), so pooled connections switching at once, or a
    /// switch while another program writes, fail at once with `SQLITE_BUSY`. One
    /// connection switches, retrying for up to the busy timeout.
    async fn open_first(
        &self,
        operation: &'static str,
        timeout: Duration,
    ) -> Result<SqliteConnection> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let opened = tokio::time::timeout(self.connect_timeout, self.settings.setup.connect())
                .await
                .map_err(|_| {
                    timeout_error(&self.name, "opening the database", self.connect_timeout)
                })?;
            match opened {
                Ok(conn) => return Ok(conn),
                Err(e)
                    if error::is_lock_conflict(&e)
                        && started.elapsed() + pause < self.settings.busy_timeout =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(error::map_error(
                        e,
                        self.shared.context(operation, timeout, started),
                    ));
                }
            }
        }
    }

    /// A pooled connection; with `discard`, it is closed when the call ends instead of
    /// going back to the pool (see [`Prepared::discard_connection`]).
    pub(crate) async fn connection(
        &self,
        operation: &'static str,
        timeout: Duration,
        deadline: Instant,
        discard: bool,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        let pool =
            match tokio::time::timeout_at(deadline.into(), self.pool(operation, timeout)).await {
                Ok(pool) => pool?,
                Err(_) => {
                    return Err(timeout_error(&self.name, operation, timeout)
                        .context("opening the database"));
                }
            };
        let mut conn = run::acquire(pool, &self.shared, operation, timeout, deadline).await?;
        if discard {
            conn.close_on_drop();
        }
        Ok(conn)
    }

    /// Closes the pool, waiting at most for the longest call to stop, and the keeper.
    pub(crate) async fn close_pool(&self) {
        if let Some(pools) = self.pools.get() {
            // Running statements see the source closed and stop; streams waiting on a
            // consumer are woken by the close signal. The bound only guards against a
            // stuck lock wait.
            let _ =
                tokio::time::timeout(self.query_timeout.max(run::GRACE), pools.pool.close()).await;
            if let Some(keeper) = pools.keeper.lock().await.take() {
                let _ = keeper.close().await;
            }
        }
    }
}
