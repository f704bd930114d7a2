//! Running statements on pooled connections: interrupting them on time, and streaming
//! their rows with back-pressure.
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

use extdata_core::{
    Column, Columns, Error, ErrorKind, Result, Row, RowStream, Value, closed_error,
};
use futures::{FutureExt, StreamExt};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteColumn, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, Column as _, Executor, Row as _, SqlSafeStr, Sqlite, Statement as _};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{self, Context};
use crate::types::{self, Declared};

/// VM instructions between two progress-handler calls: the handler is an atomic load and
/// a clock read, so checking often costs little and stops a statement within microseconds.
const PROGRESS_STEPS: i32 = 1_000;

/// How long a call waits, after its deadline, for the interrupted statement to end before
/// it discards the connection.
pub(crate) const GRACE: Duration = Duration::from_millis(500);

/// Batches (of at most [`BATCH_ROWS`] rows or about [`BATCH_BYTES`]) a stream holds
/// between the reading task and the consumer. With sqlx's own row buffer (see
/// `connect.rs`) this bounds a stream's memory whatever the result's size.
pub(crate) const STREAM_CAPACITY: usize = 4;

/// What a call shares with the task and the progress handler that run it.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) connector: Arc<str>,
    pub(crate) database: Arc<str>,
    /// How long SQLite waits for another connection's lock (`busy_timeout`).
    pub(crate) busy_timeout: Duration,
    /// Set by `close()`: interrupts every running statement.
    pub(crate) closing: Arc<AtomicBool>,
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
            closing: self.closing.load(Ordering::Acquire),
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
        error::map(error, self.context(operation, timeout, started))
    }

    pub(crate) fn timeout(&self, operation: &'static str, timeout: Duration) -> Error {
        if self.closing.load(Ordering::Acquire) {
            return closed_error(&self.connector);
        }
        Error::timeout(operation, timeout).with_connector(&*self.connector)
    }
}

/// Installs the progress handler of one call on `conn`.
async fn arm(
    conn: &mut SqliteConnection,
    cancel: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    deadline: Option<Instant>,
) -> std::result::Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    handle.set_progress_handler(PROGRESS_STEPS, move || {
        let stop = cancel.load(Ordering::Relaxed)
            || closing.load(Ordering::Relaxed)
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
        let closing = Arc::clone(&shared.closing);
        finish_by(
            async move {
                arm(conn, cancel_flag, closing, Some(deadline)).await?;
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

/// A message from the reading task to the consumer.
enum Message {
    /// The next rows (never empty).
    Rows(Vec<Row>),
    Failed(Error),
    /// Every row was sent.
    Done,
}

/// One stream call's inputs.
pub(crate) struct StreamCall {
    pub(crate) sql: String,
    pub(crate) args: SqliteArguments,
    pub(crate) timeout: Duration,
    pub(crate) deadline: Instant,
}

/// Starts reading `call` on `conn` in a task and returns once the columns are known (the
/// first row arrived or the result is empty).
pub(crate) async fn stream(
    conn: PoolConnection<Sqlite>,
    shared: Shared,
    call: StreamCall,
) -> Result<RowStream> {
    let cancel = Arc::new(AtomicBool::new(false));
    let (header_tx, header_rx) = oneshot::channel();
    let (row_tx, row_rx) = mpsc::channel(STREAM_CAPACITY);
    let timeout = call.timeout;
    let deadline = call.deadline;
    tokio::spawn(read_rows(
        conn,
        shared.clone(),
        call,
        Arc::clone(&cancel),
        header_tx,
        row_tx,
    ));
    let columns = match tokio::time::timeout_at(deadline.into(), header_rx).await {
        Ok(Ok(Ok(columns))) => columns,
        Ok(Ok(Err(e))) => return Err(e),
        Ok(Err(_)) => {
            return Err(
                Error::new(ErrorKind::Internal, "stream: the reading task stopped")
                    .with_connector(&*shared.connector),
            );
        }
        Err(_) => {
            cancel.store(true, Ordering::Release);
            return Err(shared
                .timeout("stream", timeout)
                .context("waiting for the first row"));
        }
    };
    let reader = Reader {
        messages: row_rx,
        buffered: Vec::new().into_iter(),
        timeout,
        cancel: CancelOnDrop(cancel),
        shared,
        finished: false,
    };
    Ok(RowStream::new(
        columns,
        futures::stream::unfold(reader, Reader::next),
    ))
}

/// The consumer's end of a stream.
struct Reader {
    messages: mpsc::Receiver<Message>,
    /// The rest of the last batch received.
    buffered: std::vec::IntoIter<Row>,
    timeout: Duration,
    cancel: CancelOnDrop,
    shared: Shared,
    finished: bool,
}

impl Reader {
    async fn next(mut self) -> Option<(Result<Row>, Self)> {
        loop {
            if let Some(row) = self.buffered.next() {
                return Some((Ok(row), self));
            }
            if self.finished {
                return None;
            }
            let error = match tokio::time::timeout(self.timeout, self.messages.recv()).await {
                Ok(Some(Message::Rows(rows))) => {
                    self.buffered = rows.into_iter();
                    continue;
                }
                Ok(Some(Message::Done)) => {
                    self.finished = true;
                    continue;
                }
                Ok(Some(Message::Failed(e))) => e,
                // The task ended without `Done`: never let that look like the end of the rows.
                Ok(None) if self.shared.closing.load(Ordering::Acquire) => {
                    closed_error(&self.shared.connector)
                }
                Ok(None) => Error::new(
                    ErrorKind::Internal,
                    "stream: the reading task stopped before the last row",
                )
                .with_connector(&*self.shared.connector),
                Err(_) => {
                    self.cancel.0.store(true, Ordering::Release);
                    self.shared
                        .timeout("stream", self.timeout)
                        .context("waiting for the next row")
                }
            };
            self.finished = true;
            return Some((Err(error), self));
        }
    }
}

/// Interrupts the statement when the consumer drops the stream.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// How the reading task's loop ended.
enum End {
    /// The statement ended (every row read, or SQLite failed it): the connection is idle.
    Finished,
    /// The consumer went away, the source closes, or a row could not be decoded: the
    /// statement may still be running and is interrupted.
    Cancelled,
}

/// What the columns need to be described and the rows decoded.
struct Plan {
    names: Vec<String>,
    declared: Vec<Option<String>>,
    plans: Vec<Declared>,
}

async fn read_rows(
    mut conn: PoolConnection<Sqlite>,
    shared: Shared,
    call: StreamCall,
    cancel: Arc<AtomicBool>,
    mut header: oneshot::Sender<Result<Columns>>,
    messages: mpsc::Sender<Message>,
) {
    let started = Instant::now();
    let mut close_signal = shared.close_signal.clone();
    let may_open = may_open_transaction(&call.sql);
    let end = {
        let conn: &mut SqliteConnection = &mut conn;
        let prepared = async {
            arm(conn, Arc::clone(&cancel), Arc::clone(&shared.closing), None).await?;
            let statement = conn
                .prepare(AssertSqlSafe(call.sql.clone()).into_sql_str())
                .await?;
            let columns = statement.columns().to_vec();
            let declared = declared_types(conn, &columns).await?;
            Ok::<_, sqlx::Error>(Plan {
                names: columns.iter().map(|c| c.name().to_owned()).collect(),
                plans: declared
                    .iter()
                    .map(|d| d.as_deref().map_or(Declared::Dynamic, Declared::parse))
                    .collect(),
                declared,
            })
        };
        let prepared = tokio::select! {
            biased;
            () = header.closed() => None,
            prepared = prepared => Some(prepared),
        };
        match prepared {
            None => End::Cancelled,
            Some(Err(e)) => {
                let _ = header.send(Err(shared.map(e, "stream", call.timeout, started)));
                End::Finished
            }
            Some(Ok(plan)) => {
                let mut fetched = conn.fetch(sqlx::query_with(AssertSqlSafe(call.sql), call.args));
                let first = tokio::select! {
                    biased;
                    () = header.closed() => None,
                    first = fetched.next() => Some(first),
                };
                match first {
                    None => End::Cancelled,
                    Some(Some(Err(e))) => {
                        let _ = header.send(Err(shared.map(e, "stream", call.timeout, started)));
                        End::Finished
                    }
                    Some(None) => {
                        let columns: Columns = plan
                            .names
                            .iter()
                            .zip(&plan.declared)
                            .map(|(n, d)| types::describe_column(n, d.as_deref(), None))
                            .collect();
                        let _ = header.send(Ok(columns));
                        let _ = messages.send(Message::Done).await;
                        End::Finished
                    }
                    Some(Some(Ok(row))) => match decode_first(&row, &plan) {
                        Err(message) => {
                            let _ = header.send(Err(decode_error(&shared, message)));
                            End::Cancelled
                        }
                        Ok((columns, values)) => {
                            let first = Row::new(Arc::clone(&columns), values);
                            if header.send(Ok(Arc::clone(&columns))).is_err() {
                                End::Cancelled
                            } else {
                                let mut forwarder = Forwarder {
                                    messages: &messages,
                                    close_signal: &mut close_signal,
                                    columns: &columns,
                                    plans: &plan.plans,
                                    shared: &shared,
                                    timeout: call.timeout,
                                };
                                forwarder.run(&mut fetched, first).await
                            }
                        }
                    },
                }
            }
        }
    };
    if let End::Finished = end
        && may_open
        && matches!(roll_back_open_transaction(&mut conn).await, Ok(true))
    {
        tracing::warn!(
            connector = %shared.connector,
            "a streamed statement left a transaction open; it was rolled back"
        );
    }
    if let End::Cancelled = end {
        cancel.store(true, Ordering::Release);
        // sqlx pings a returned connection, which waits for the interrupted statement; a
        // statement that does not stop (a lock wait) costs the connection, not the pool.
        let quiet = tokio::time::timeout(GRACE, sqlx::Connection::ping(&mut *conn)).await;
        if !matches!(quiet, Ok(Ok(()))) {
            drop(conn.detach());
        }
    }
}

/// Rows per message: batching saves a channel hand-over per row.
const BATCH_ROWS: usize = 64;
/// A batch also ends at about this many bytes of text and blobs, to bound memory with
/// wide rows.
const BATCH_BYTES: usize = 256 * 1024;

/// Reads the rows after the first and sends them in batches.
struct Forwarder<'a> {
    messages: &'a mpsc::Sender<Message>,
    close_signal: &'a mut watch::Receiver<bool>,
    columns: &'a Columns,
    plans: &'a [Declared],
    shared: &'a Shared,
    timeout: Duration,
}

impl Forwarder<'_> {
    async fn run(
        &mut self,
        fetched: &mut (impl futures::Stream<Item = std::result::Result<SqliteRow, sqlx::Error>> + Unpin),
        first: Row,
    ) -> End {
        let mut bytes = approximate_size(first.values());
        let mut batch = vec![first];
        loop {
            // Bounds how long a failed row waited (per batch: a clock read per row costs).
            let batch_started = Instant::now();
            // Take what is ready without waiting once the batch has a row: the consumer
            // gets rows as soon as there are any.
            let mut last: Option<(Message, End)> = None;
            while batch.len() < BATCH_ROWS && bytes < BATCH_BYTES {
                let next = if batch.is_empty() {
                    tokio::select! {
                        biased;
                        () = self.messages.closed() => return End::Cancelled,
                        _ = self.close_signal.wait_for(|closing| *closing) => return End::Cancelled,
                        next = fetched.next() => next,
                    }
                } else {
                    match fetched.next().now_or_never() {
                        Some(next) => next,
                        None => break,
                    }
                };
                match next {
                    None => {
                        last = Some((Message::Done, End::Finished));
                        break;
                    }
                    Some(Err(e)) => {
                        let error = self.shared.map(e, "stream", self.timeout, batch_started);
                        last = Some((Message::Failed(error), End::Finished));
                        break;
                    }
                    Some(Ok(row)) => match decode_row(&row, self.plans, self.columns) {
                        Ok(values) => {
                            bytes += approximate_size(&values);
                            batch.push(Row::new(Arc::clone(self.columns), values));
                        }
                        Err(message) => {
                            let error = decode_error(self.shared, message);
                            last = Some((Message::Failed(error), End::Cancelled));
                            break;
                        }
                    },
                }
            }
            if !batch.is_empty() {
                let rows = Message::Rows(std::mem::take(&mut batch));
                bytes = 0;
                if !send(self.messages, rows, self.close_signal).await {
                    return End::Cancelled;
                }
            }
            if let Some((message, end)) = last {
                if !send(self.messages, message, self.close_signal).await {
                    return End::Cancelled;
                }
                return end;
            }
        }
    }
}

/// Bytes a row's values hold, roughly (text and blobs count; the rest is small).
fn approximate_size(values: &[Value]) -> usize {
    values
        .iter()
        .map(|v| match v {
            Value::Text(s) => s.len(),
            Value::Bytes(b) => b.len(),
            _ => 16,
        })
        .sum()
}

/// Sends `message` unless the consumer went away or the source closes.
async fn send(
    rows: &mpsc::Sender<Message>,
    message: Message,
    close_signal: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        sent = rows.send(message) => sent.is_ok(),
        _ = close_signal.wait_for(|closing| *closing) => false,
    }
}

fn decode_error(shared: &Shared, message: String) -> Error {
    Error::new(ErrorKind::Decode, format!("stream: {message}")).with_connector(&*shared.connector)
}

/// Decodes the first row and describes the columns with its storage classes.
fn decode_first(
    row: &SqliteRow,
    plan: &Plan,
) -> std::result::Result<(Columns, Vec<Value>), String> {
    let (names, declared, plans) = (&plan.names, &plan.declared, &plan.plans);
    let mut values = Vec::with_capacity(plans.len());
    let mut columns = Vec::with_capacity(plans.len());
    for (index, plan) in plans.iter().enumerate() {
        let raw = row.try_get_raw(index).map_err(|e| e.to_string())?;
        let (value, class) =
            types::decode(*plan, raw).map_err(|why| format!("column `{}`: {why}", names[index]))?;
        columns.push(types::describe_column(
            &names[index],
            declared[index].as_deref(),
            Some((class, value.kind())),
        ));
        values.push(value);
    }
    Ok((columns.into(), values))
}

fn decode_row(
    row: &SqliteRow,
    plans: &[Declared],
    columns: &Columns,
) -> std::result::Result<Vec<Value>, String> {
    plans
        .iter()
        .zip(columns.iter())
        .enumerate()
        .map(|(index, (plan, column))| {
            let raw = row.try_get_raw(index).map_err(|e| e.to_string())?;
            types::decode(*plan, raw)
                .map(|(value, _)| value)
                .map_err(|why| format!("column `{}`: {why}", column.name))
        })
        .collect()
}
