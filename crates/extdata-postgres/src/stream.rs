//! The rows of [`ExternalSource::stream`](extdata_core::ExternalSource::stream), read from
//! the server by the [`RowStream`](extdata_core::RowStream)'s own poll.
//!
//! No task reads ahead: the rows come from an [`async_stream`] generator that owns the
//! pooled connection and the driver's stream borrowing it, so the consumer's poll drives
//! the driver and the server is read only as fast as rows are taken. The generator
//! yields batches of the rows the driver had already received (at most
//! [`STREAM_BATCH_ROWS`]; it never waits to fill one), flattened into single rows.
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

/// Streams the decoded rows of `query`; the first error ends it. Sends nothing to the
/// server until first polled.
pub(crate) fn rows(query: Query) -> impl Stream<Item = extdata_core::Result<Row>> + Send {
    batches(query)
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

/// Runs the query and yields its decoded rows batch by batch until the result ends or
/// fails; then leaves the connection healthy in the pool, or cancels and closes it.
fn batches(query: Query) -> impl Stream<Item = extdata_core::Result<Vec<Row>>> + Send {
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
        let mut batch = Vec::with_capacity(STREAM_BATCH_ROWS);
        let end = 'read: {
            let mut rows = prepared.query(&shape.sql).fetch(&mut conn.conn().raw);
            // Until a row arrives, the wait is bounded by the first row's deadline.
            let mut deadline = Some(first_deadline);
            loop {
                // A row already received needs no timer.
                let next = match rows.next().now_or_never() {
                    Some(next) => next,
                    None if !batch.is_empty() => {
                        yield Ok(std::mem::replace(
                            &mut batch,
                            Vec::with_capacity(STREAM_BATCH_ROWS),
                        ));
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
                match next {
                    Some(Ok(row)) => match decode_row(&row, &shape) {
                        Ok(row) => batch.push(row),
                        Err(err) => break 'read End::BadRow(err),
                    },
                    Some(Err(e)) => break 'read End::Failed(e),
                    None => break 'read End::Done,
                }
                deadline = None;
                if batch.len() == STREAM_BATCH_ROWS {
                    yield Ok(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(STREAM_BATCH_ROWS),
                    ));
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
                Err(err.with_connector(&connector))
            }
            End::TimedOut => {
                conn.abort().await;
                Err(Bound::PerRow(timeout)
                    .timeout_error(&connector)
                    .context("the query was cancelled on the server"))
            }
        };
        if !batch.is_empty() {
            yield Ok(batch);
        }
        if let Err(err) = result {
            yield Err(err);
        }
    }
}
