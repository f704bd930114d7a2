//! Running statements on pooled connections on time: interrupting them at their deadline
//! (streaming their rows is in `stream.rs`).
//!
//! sqlx has no cancel call for SQLite, so every call installs a progress handler on its
//! connection before it runs anything: SQLite calls it every few thousand VM steps and
//! interrupts the statement (`SQLITE_INTERRUPT`) as soon as it returns `false` — when the
//! call's deadline passed, its cancel flag was set (timer, dropped call or stream) or the source
//! is closing. Lock waits (`busy_timeout`) do not run the VM; a call that is still stuck a
//! short grace after its deadline gives up and discards the connection instead of
//! returning it busy to the pool.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use extdata_core::driver::{Lifecycle, closed_error, timeout_error};
use extdata_core::{Column, Error, Result};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteColumn, SqliteConnection};
use sqlx::{AssertSqlSafe, Column as _, Executor, SqlSafeStr, Sqlite, Statement as _};
use tokio::sync::watch;

use crate::connect::OnMissing;
use crate::error::{self, Context};
use crate::types;

/// VM instructions between two progress-handler calls: the handler is an atomic load and
/// a clock read, so checking often costs little and stops a statement within microseconds.
const PROGRESS_STEPS: i32 = 1_000;

/// How long a call waits, after its deadline, for the interrupted statement to end before
/// it discards the connection.
pub(crate) const GRACE: Duration = Duration::from_millis(500);

/// One call's inputs: its statement rendered, checked and bound, its timeout and
/// deadline.
pub(crate) struct Call {
    pub(crate) sql: String,
    pub(crate) args: SqliteArguments,
    pub(crate) timeout: Duration,
    pub(crate) deadline: Instant,
}

/// What a call shares with the task and the progress handler that run it.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) connector: Arc<str>,
    pub(crate) database: Arc<str>,
    /// What opening the file does when it does not exist (for the error's words).
    pub(crate) on_missing: OnMissing,
    /// How long SQLite waits for another connection's lock (`busy_timeout`).
    pub(crate) busy_timeout: Duration,
    /// Closed by `close()`: interrupts every running statement.
    pub(crate) lifecycle: Arc<Lifecycle>,
    /// Wakes streams blocked on a slow consumer when the source closes.
    pub(crate) close_signal: watch::Receiver<bool>,
}

impl Shared {
    /// What `error::map` needs to word and classify an error of a call that began at
    /// `started`.
    pub(crate) fn context(
        &self,
        operation: &'static str,
        timeout: Duration,
        started: Instant,
    ) -> Context<'_> {
        Context {
            connector: &self.connector,
            operation,
            timeout,
            database: &self.database,
            on_missing: self.on_missing,
            closing: self.lifecycle.is_closed(),
            waited: started.elapsed(),
            busy_timeout: self.busy_timeout,
        }
    }

    pub(crate) fn map(
        &self,
        error: sqlx::Error,
        operation: &'static str,
        timeout: Duration,
        started: Instant,
    ) -> Error {
        error::map_error(error, self.context(operation, timeout, started))
    }

    pub(crate) fn timeout(&self, operation: &'static str, timeout: Duration) -> Error {
        if self.lifecycle.is_closed() {
            return closed_error(&self.connector);
        }
        timeout_error(&self.connector, operation, timeout)
    }
}

/// Installs the progress handler of one call on `conn`.
pub(crate) async fn arm(
    conn: &mut SqliteConnection,
    cancel: Arc<AtomicBool>,
    lifecycle: Arc<Lifecycle>,
    deadline: Option<Instant>,
) -> std::result::Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    handle.set_progress_handler(PROGRESS_STEPS, move || {
        let stop = cancel.load(Ordering::Relaxed)
            || lifecycle.is_closed()
            || deadline.is_some_and(|d| Instant::now() >= d);
        !stop
    });
    Ok(())
}

enum Outcome<T> {
    Done(T),
    /// The deadline passed and the work did not end within [`GRACE`] after the interrupt.
    Abandoned,
}

/// Runs `work` until `deadline`; then sets `cancel` (the progress handler interrupts the
/// statement) and waits at most [`GRACE`] for it to end.
async fn finish_by<F: Future>(
    work: F,
    deadline: Instant,
    cancel: &AtomicBool,
) -> Outcome<F::Output> {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        output = &mut work => return Outcome::Done(output),
        () = tokio::time::sleep_until(deadline.into()) => {}
    }
    cancel.store(true, Ordering::Release);
    match tokio::time::timeout(GRACE, work).await {
        Ok(output) => Outcome::Done(output),
        Err(_) => Outcome::Abandoned,
    }
}

/// Waits for a pooled connection until `deadline`.
pub(crate) async fn acquire(
    pool: &sqlx::SqlitePool,
    shared: &Shared,
    operation: &'static str,
    timeout: Duration,
    deadline: Instant,
) -> Result<PoolConnection<Sqlite>> {
    let started = Instant::now();
    match tokio::time::timeout_at(deadline.into(), pool.acquire()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(shared.map(e, operation, timeout, started)),
        Err(_) => Err(shared
            .timeout(operation, timeout)
            .context("waiting for a free SQLite connection")),
    }
}

/// Runs `work` on `conn` bounded by `timeout` (from `started`), interrupting it on time.
pub(crate) async fn bounded<T, W>(
    mut conn: PoolConnection<Sqlite>,
    shared: &Shared,
    operation: &'static str,
    timeout: Duration,
    deadline: Instant,
    work: W,
) -> Result<T>
where
    W: for<'c> FnOnce(
        &'c mut SqliteConnection,
    ) -> futures::future::BoxFuture<'c, std::result::Result<T, sqlx::Error>>,
{
    let started = Instant::now();
    let cancel = Arc::new(AtomicBool::new(false));
    // A call dropped mid-way (its caller gave up) interrupts its statement at once, so
    // the connection is free again for the next call instead of busy until the deadline.
    let mut dropped = InterruptOnDrop(Some(Arc::clone(&cancel)));
    let outcome = {
        let conn: &mut SqliteConnection = &mut conn;
        let cancel_flag = Arc::clone(&cancel);
        let lifecycle = Arc::clone(&shared.lifecycle);
        finish_by(
            async move {
                arm(conn, cancel_flag, lifecycle, Some(deadline)).await?;
                work(conn).await
            },
            deadline,
            &cancel,
        )
        .await
    };
    dropped.disarm();
    match outcome {
        Outcome::Done(Ok(value)) => Ok(value),
        Outcome::Done(Err(e)) => Err(shared.map(e, operation, timeout, started)),
        Outcome::Abandoned => {
            // Still waiting on a lock (the VM is not running, so the handler is not
            // called): do not hand a busy connection to the next caller.
            drop(conn.detach());
            Err(shared
                .timeout(operation, timeout)
                .context("the statement did not stop in time; its connection was discarded"))
        }
    }
}

/// Sets a call's cancel flag when the call is dropped before it ended, so that the
/// progress handler interrupts the statement it left running.
struct InterruptOnDrop(Option<Arc<AtomicBool>>);

impl InterruptOnDrop {
    /// The call ended: nothing to interrupt.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = &self.0 {
            cancel.store(true, Ordering::Release);
        }
    }
}

/// The declared type of each column (`None`: an expression), read from the schema of
/// the table each column comes from.
pub(crate) async fn declared_types(
    conn: &mut SqliteConnection,
    columns: &[SqliteColumn],
) -> std::result::Result<Vec<Option<String>>, sqlx::Error> {
    // (table as sqlx reports it, its columns' (name, declared type))
    let mut tables: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut declared = Vec::with_capacity(columns.len());
    for column in columns {
        let origin = column.origin();
        let Some(origin) = origin.table_column() else {
            declared.push(None);
            continue;
        };
        let index = match tables.iter().position(|(t, _)| **t == *origin.table) {
            Some(index) => index,
            None => {
                let schema = table_schema(conn, &origin.table).await?;
                tables.push((origin.table.to_string(), schema));
                tables.len() - 1
            }
        };
        let found = tables[index]
            .1
            .iter()
            .find(|(name, _)| *name == *origin.name)
            .map(|(_, ty)| ty.clone());
        declared.push(found);
    }
    Ok(declared)
}

/// `(column, declared type)` of a table; sqlx names a table outside `main` as
/// `schema.table`.
async fn table_schema(
    conn: &mut SqliteConnection,
    table: &str,
) -> std::result::Result<Vec<(String, String)>, sqlx::Error> {
    const SQL: &str = "SELECT name, type FROM pragma_table_xinfo(?1, ?2)";
    let mut attempts = vec![("main", table)];
    if let Some((schema, name)) = table.split_once('.') {
        attempts.insert(0, (schema, name));
    }
    for (schema, name) in attempts {
        let rows: Vec<(String, String)> = sqlx::query_as(SQL)
            .bind(name)
            .bind(schema)
            .fetch_all(&mut *conn)
            .await?;
        if !rows.is_empty() {
            return Ok(rows);
        }
    }
    Ok(Vec::new())
}

/// Whether `sql` might start a transaction that outlives it (`BEGIN`, `SAVEPOINT`). A
/// cheap over-approximation: a match only costs a check after the call.
pub(crate) fn may_open_transaction(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.contains("begin") || lower.contains("savepoint")
}

/// Rolls back a transaction the last statement left open on `conn`; returns whether
/// there was one. sqlx does not expose `sqlite3_get_autocommit`, so this asks SQLite by
/// trying to start one.
pub(crate) async fn roll_back_open_transaction(
    conn: &mut SqliteConnection,
) -> std::result::Result<bool, sqlx::Error> {
    let open = match conn.execute("BEGIN").await {
        Ok(_) => false,
        Err(sqlx::Error::Database(e)) if e.message().contains("within a transaction") => true,
        Err(e) => return Err(e),
    };
    conn.execute("ROLLBACK").await?;
    Ok(open)
}

/// Prepares `sql` (without running it) and describes its columns.
pub(crate) async fn describe(
    conn: &mut SqliteConnection,
    sql: String,
) -> std::result::Result<Vec<Column>, sqlx::Error> {
    let statement = conn.prepare(AssertSqlSafe(sql).into_sql_str()).await?;
    let columns = statement.columns().to_vec();
    let declared = declared_types(conn, &columns).await?;
    Ok(columns
        .iter()
        .zip(&declared)
        .map(|(c, d)| types::describe_column(c.name(), d.as_deref(), None))
        .collect())
}
