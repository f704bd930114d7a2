//! What a PostgreSQL driver with pipelining would make of extdata's per-call session
//! isolation: the W3 point query through a pool of tokio-postgres clients, raw and with
//! the same `BEGIN READ ONLY` and session reset that `extdata-postgres` sends around each
//! call (its `session.rs`), either one round trip after another or pipelined (sent
//! together, before the first answer is read).
//!
//! sqlx, which `extdata-postgres` is built on, cannot pipeline; tokio-postgres sends
//! each request when its future is first polled, so polling the requests of a call in
//! order before awaiting any of them writes them back to back. The statements and the
//! check are `extdata-postgres`'s own (its `session_for_bench`): this measures a
//! possible design with the same SQL, not a second implementation of the reset.

use std::sync::{Arc, Mutex};

use futures::future::maybe_done;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::SimpleQueryMessage;

use extdata::postgres::session_for_bench as session;

use crate::backend::Server;
use crate::stream::{self, tokio_postgres_payload};

/// The connector's settings after connecting, as `extdata-postgres` applies them for
/// the bench connector (query timeout 600 s plus its 1 s margin).
const STATEMENT_TIMEOUT_MS: u64 = 601_000;

/// How a call runs on its tokio-postgres connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The query alone: the raw driver.
    Raw,
    /// A writable connector's call: the query, then the full reset in the background,
    /// as `extdata-postgres` does it today (one more round trip, not waited for).
    Reset,
    /// The same, with the reset sent right behind the query.
    ResetPipelined,
    /// A `read_only` connector's call: `BEGIN READ ONLY` (awaited), the query, then the
    /// rollback-and-check reset in the background, as `extdata-postgres` does it today.
    ReadOnly,
    /// The same three requests sent back to back; the caller waits for the first two.
    ReadOnlyPipelined,
}

impl Mode {
    /// The `--clients` name of each mode.
    pub(crate) fn parse(name: &str) -> Option<Mode> {
        Some(match name {
            "tokio-postgres" => Mode::Raw,
            "tp-reset" => Mode::Reset,
            "tp-reset-pipelined" => Mode::ResetPipelined,
            "tp-ro" => Mode::ReadOnly,
            "tp-ro-pipelined" => Mode::ReadOnlyPipelined,
            _ => return None,
        })
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::Raw => "tokio-postgres",
            Mode::Reset => "tp + reset",
            Mode::ResetPipelined => "tp + reset, pipelined",
            Mode::ReadOnly => "tp read-only + reset",
            Mode::ReadOnlyPipelined => "tp read-only + reset, pipelined",
        }
    }

    fn read_only(self) -> bool {
        matches!(self, Mode::ReadOnly | Mode::ReadOnlyPipelined)
    }
}

/// `extdata-postgres`'s start of a read-only call.
fn begin_read_only() -> String {
    session::begin_read_only(STATEMENT_TIMEOUT_MS)
}

/// `extdata-postgres`'s reset after a call: `Reset::RolledBack` for a read-only call,
/// `Reset::Full { read_only: false }` (with the connector's one setting) otherwise.
fn reset_sql(read_only: bool) -> String {
    if read_only {
        session::reset_sql(session::Reset::RolledBack, &[])
    } else {
        session::reset_sql(
            session::Reset::Full { read_only: false },
            &[("statement_timeout", STATEMENT_TIMEOUT_MS.to_string())],
        )
    }
}

/// Whether the reset's answer, read as `extdata-postgres` reads it, is the clean one: no
/// transaction left open, no statement prepared by SQL.
fn reset_is_clean(messages: &[SimpleQueryMessage]) -> bool {
    let check = messages.iter().rev().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).and_then(session::Check::parse),
        _ => None,
    });
    check.is_some_and(|check| check.outside_transaction && check.prepared_by_sql == 0)
}

struct Conn {
    client: tokio_postgres::Client,
    lookup: tokio_postgres::Statement,
}

/// A fixed set of connections and a semaphore of as many permits: the simplest pool
/// (deadpool's unmanaged pool does the same).
pub(crate) struct Pool {
    mode: Mode,
    permits: Arc<Semaphore>,
    /// Shared with the futures of a call until the last of them ends; tokio-postgres's
    /// `Client` takes requests from several at once (that is the pipelining).
    idle: Mutex<Vec<Arc<Conn>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("mode", &self.mode).finish()
    }
}

impl Pool {
    /// `size` connections to `server`, each with `sql` (`$1` the id) prepared and, for
    /// the isolated modes, the session settings `extdata-postgres` applies.
    pub(crate) async fn connect(
        server: &Server,
        mode: Mode,
        size: usize,
        sql: &str,
    ) -> Result<Arc<Pool>, String> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            let client = stream::tokio_postgres_connect(server).await?;
            if mode != Mode::Raw {
                let mut settings = format!(
                    "SELECT pg_catalog.set_config('statement_timeout', '{STATEMENT_TIMEOUT_MS}', false)"
                );
                if mode.read_only() {
                    settings.push_str(
                        ", pg_catalog.set_config('default_transaction_read_only', 'on', false)",
                    );
                }
                client
                    .batch_execute(&settings)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let lookup = client.prepare(sql).await.map_err(|e| e.to_string())?;
            idle.push(Arc::new(Conn { client, lookup }));
        }
        Ok(Arc::new(Pool {
            mode,
            permits: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(idle),
        }))
    }

    pub(crate) fn label(&self) -> &'static str {
        self.mode.label()
    }

    async fn take(self: &Arc<Pool>) -> Result<(Arc<Conn>, OwnedSemaphorePermit), String> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let conn = self
            .idle
            .lock()
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or("a permit without a connection")?;
        Ok((conn, permit))
    }

    fn give_back(&self, conn: Arc<Conn>, permit: OwnedSemaphorePermit) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        drop(permit);
    }

    /// One lookup of `id`; checks that exactly that row came back. The reset of the
    /// isolated modes finishes in a background task that then returns the connection
    /// (a failed reset ends the process: it would mean this sends the isolation wrongly).
    pub(crate) async fn lookup(self: &Arc<Pool>, id: i32) -> Result<(), String> {
        let (conn, permit) = self.take().await?;
        let mode = self.mode;
        let row = match mode {
            Mode::Raw => {
                let row = conn.client.query_one(&conn.lookup, &[&id]).await;
                self.give_back(conn, permit);
                row
            }
            Mode::Reset | Mode::ReadOnly => {
                if mode == Mode::ReadOnly {
                    conn.client
                        .batch_execute(&begin_read_only())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let row = conn.client.query_one(&conn.lookup, &[&id]).await;
                // Sent now, finished in the background.
                send_then_spawn(self.reset(conn, permit)).await;
                row
            }
            Mode::ResetPipelined | Mode::ReadOnlyPipelined => {
                let begin = begin_read_only();
                let mut begin = Box::pin(maybe_done({
                    let conn = conn.clone();
                    async move {
                        if mode == Mode::ReadOnlyPipelined {
                            conn.client.batch_execute(&begin).await
                        } else {
                            Ok(())
                        }
                    }
                }));
                let mut query = Box::pin(maybe_done({
                    let conn = conn.clone();
                    async move { conn.client.query_one(&conn.lookup, &[&id]).await }
                }));
                // Each first poll sends its request, in this order.
                let _ = futures::poll!(begin.as_mut());
                let _ = futures::poll!(query.as_mut());
                send_then_spawn(self.reset(conn, permit)).await;
                begin.as_mut().await;
                query.as_mut().await;
                let begun = begin.as_mut().take_output().ok_or("no answer to BEGIN")?;
                begun.map_err(|e| e.to_string())?;
                query
                    .as_mut()
                    .take_output()
                    .ok_or("no answer to the query")?
            }
        };
        let row = row.map_err(|e| e.to_string())?;
        match row.try_get::<_, i32>(0) {
            Ok(got) if got == id => {}
            other => return Err(format!("id {id}: got {other:?}")),
        }
        tokio_postgres_payload(&row).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The reset of `conn` after its call; gives the connection back when it is clean.
    fn reset(
        self: &Arc<Pool>,
        conn: Arc<Conn>,
        permit: OwnedSemaphorePermit,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let pool = self.clone();
        let sql = reset_sql(self.mode.read_only());
        Box::pin(async move {
            let answer = conn.client.simple_query(&sql).await;
            let why = match answer {
                Ok(messages) if reset_is_clean(&messages) => {
                    return pool.give_back(conn, permit);
                }
                Ok(_) => "the reset found the session changed".to_owned(),
                Err(e) => format!("the reset failed: {e}"),
            };
            eprintln!("{why}");
            std::process::exit(1);
        })
    }
}

/// Polls `future` once, which sends its request, then leaves the rest to a task.
async fn send_then_spawn(future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) {
    let mut future = Box::pin(maybe_done(future));
    let _ = futures::poll!(future.as_mut());
    tokio::spawn(future);
}
