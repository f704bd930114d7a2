//! The rows of [`ExternalSource::stream`](extdata_core::ExternalSource::stream), read from
//! the server by the [`RowStream`](extdata_core::RowStream)'s own poll.
//!
//! No task reads ahead: the rows come from an [`async_stream`] generator that owns the
//! pooled connection and the driver's stream borrowing it, so the consumer's poll drives
//! the driver and the server is read only as fast as rows are taken. The generator
//! appends each driver row to a [`Sink`] and yields the sink's batches: for
//! [`rows`], batches of the rows the driver had already received (at most
//! [`STREAM_BATCH_ROWS`]; it never waits to fill one), flattened into single rows; for
//! the Arrow batches of `stream_batches` (feature `arrow`), record batches filled up to
//! their limits before they are handed out.
//!
//! Dropping the stream drops the generator with its connection still marked busy, and
//! [`Pooled`]'s `Drop` cancels the query on the server and discards the connection. A
//! stream read to its end hands its connection to [`Pooled::end_call`] (which resets the
//! session) before its last rows are handed out.

use std::time::Duration;

use extdata_core::driver::Bound;
use extdata_core::{Error, Row};
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use tokio::time::Instant;

use crate::pool::Pooled;
use crate::{Prepared, Shape, decode_row};
use sqlx::postgres::PgRow;

/// Most rows decoded per batch: the rows the driver has already received, taken in one
/// go so that the generator suspends once per batch rather than once per row.
const STREAM_BATCH_ROWS: usize = 128;

/// What a stream needs to run its query.
pub(crate) struct Query {
    pub(crate) conn: Pooled,
    pub(crate) prepared: Prepared,
    pub(crate) shape: Shape,
    /// Bound on the wait for the first row.
    pub(crate) first_deadline: Instant,
    /// Bound on the wait for each later row.
    pub(crate) timeout: Duration,
    pub(crate) connector: String,
}

/// What the reading loop appends the driver's rows to, and the batches it hands out.
pub(crate) trait Sink: Send + 'static {
    /// What the stream yields.
    type Batch: Send + 'static;
    /// Whether a batch that is not full is handed out as soon as the driver has no row
    /// ready (rather than waiting for the rows that fill it).
    const YIELD_WHEN_WAITING: bool;
    /// Appends one row; returns a batch when it is full. An error ends the stream and
    /// is yielded as it is.
    fn append(&mut self, row: &PgRow, shape: &Shape) -> Result<Option<Self::Batch>, Error>;
    /// Whether no row was appended since the last batch.
    fn is_empty(&self) -> bool;
    /// The rows appended since the last batch, as a batch; `failed`: the stream is
    /// ending with an error (a sink may then drop them).
    fn take(&mut self, failed: bool) -> Option<extdata_core::Result<Self::Batch>>;
}

/// The row stream's sink: decoded rows, handed out as soon as the driver makes us wait.
struct RowBatch {
    rows: Vec<Row>,
    /// Named in decode errors.
    connector: String,
}

impl Sink for RowBatch {
    type Batch = Vec<Row>;
    const YIELD_WHEN_WAITING: bool = true;

    fn append(&mut self, row: &PgRow, shape: &Shape) -> Result<Option<Vec<Row>>, Error> {
        let row = decode_row(row, shape).map_err(|e| e.with_connector(&self.connector))?;
        self.rows.push(row);
        Ok((self.rows.len() == STREAM_BATCH_ROWS)
            .then(|| std::mem::replace(&mut self.rows, Vec::with_capacity(STREAM_BATCH_ROWS))))
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn take(&mut self, _failed: bool) -> Option<extdata_core::Result<Vec<Row>>> {
        // The rows before an error were decoded: the consumer gets them, then the error.
        (!self.rows.is_empty()).then(|| Ok(std::mem::take(&mut self.rows)))
    }
}

/// Streams the decoded rows of `query`; the first error ends it. Sends nothing to the
/// server until first polled.
pub(crate) fn rows(query: Query) -> impl Stream<Item = extdata_core::Result<Row>> + Send {
    let sink = RowBatch {
        rows: Vec::with_capacity(STREAM_BATCH_ROWS),
        connector: query.connector.clone(),
    };
    batches(query, sink)
        .map_ok(|batch| futures::stream::iter(batch.into_iter().map(Ok)))
        .try_flatten()
}

/// How the reading of the result ended.
enum End {
    /// Every row was read.
    Done,
    /// The driver failed (a server error, or a lost connection).
    Failed(sqlx::Error),
    /// A row could not be decoded.
    BadRow(Error),
    /// No row came within the timeout.
    TimedOut,
}

/// Runs the query and yields the batches of `sink` until the result ends or fails; then
/// leaves the connection healthy in the pool, or cancels and closes it.
pub(crate) fn batches<S: Sink>(
    query: Query,
    mut sink: S,
) -> impl Stream<Item = extdata_core::Result<S::Batch>> + Send {
    let Query {
        mut conn,
        prepared,
        shape,
        first_deadline,
        timeout,
        connector,
    } = query;
    async_stream::stream! {
        conn.begin();
        let end = 'read: {
            let mut rows = prepared.query(&shape.sql).fetch(&mut conn.conn().raw);
            // Until a row arrives, the wait is bounded by the first row's deadline.
            let mut deadline = Some(first_deadline);
            loop {
                // A row already received needs no timer.
                let next = match rows.next().now_or_never() {
                    Some(next) => next,
                    None if S::YIELD_WHEN_WAITING && !sink.is_empty() => {
                        if let Some(batch) = sink.take(false) {
                            yield batch;
                        }
                        continue;
                    }
                    None => {
                        // The clock is read only when the server makes us wait.
                        let until = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                        match tokio::time::timeout_at(until, rows.next()).await {
                            Ok(next) => next,
                            Err(_) => break 'read End::TimedOut,
                        }
                    }
                };
                let full = match next {
                    Some(Ok(row)) => match sink.append(&row, &shape) {
                        Ok(full) => full,
                        Err(err) => break 'read End::BadRow(err),
                    },
                    Some(Err(e)) => break 'read End::Failed(e),
                    None => break 'read End::Done,
                };
                deadline = None;
                if let Some(batch) = full {
                    yield Ok(batch);
                }
            }
        };
        // Settle the connection before handing out the last rows, so that a consumer
        // that stops after the last row does not leave a finished query to be cancelled.
        let result = match end {
            End::Done => {
                conn.finish();
                conn.end_call();
                Ok(())
            }
            End::Failed(e) => Err(conn.failed(&connector, e)),
            End::BadRow(err) => {
                // The rest of the result is not read: dropped while busy, the connection
                // is cancelled on the server and discarded in the background.
                drop(conn);
                Err(err)
            }
            End::TimedOut => {
                conn.abort().await;
                Err(Bound::PerRow(timeout)
                    .timeout_error(&connector)
                    .context("the query was cancelled on the server"))
            }
        };
        match (sink.take(result.is_err()), result) {
            (Some(batch), Ok(())) => yield batch,
            (Some(Ok(batch)), Err(err)) => {
                yield Ok(batch);
                yield Err(err);
            }
            (_, Err(err)) => yield Err(err),
            (None, Ok(())) => {}
        }
    }
}
