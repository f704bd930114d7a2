//! `stream` (and `query` through it): a task reads a statement's rows on its pooled
//! connection and hands them over in batches through a bounded channel (back-pressure);
//! dropping the stream, its timeout, or closing the source interrupts the statement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use extdata_core::driver::closed_error;
use extdata_core::{Columns, Error, ErrorKind, Result, Row, RowStream, Value};
use futures::{FutureExt, StreamExt};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, Column as _, Executor, Row as _, SqlSafeStr, Sqlite, Statement as _};
use tokio::sync::{mpsc, oneshot, watch};

use crate::run::{
    Call, GRACE, Shared, arm, declared_types, may_open_transaction, roll_back_open_transaction,
};
use crate::types::{self, Declared};

/// Batches (of at most [`BATCH_ROWS`] rows or about [`BATCH_BYTES`]) a stream holds
/// between the reading task and the consumer. With sqlx's own row buffer (see
/// `connect.rs`) this bounds a stream's memory whatever the result's size.
pub(crate) const STREAM_CAPACITY: usize = 4;

/// A message from the reading task to the consumer.
enum Message {
    /// The next rows (never empty).
    Rows(Vec<Row>),
    Failed(Error),
    /// Every row was sent.
    Done,
}

/// Starts reading `call` on `conn` in a task and returns once the columns are known (the
/// first row arrived or the result is empty).
pub(crate) async fn stream(
    conn: PoolConnection<Sqlite>,
    shared: Shared,
    call: Call,
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
                Ok(None) if self.shared.lifecycle.is_closed() => {
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
    call: Call,
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
            arm(
                conn,
                Arc::clone(&cancel),
                Arc::clone(&shared.lifecycle),
                None,
            )
            .await?;
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
