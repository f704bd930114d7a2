//! The rows of [`ExternalSource::stream`](extdata_core::ExternalSource::stream), read from
//! the server by the [`RowStream`](extdata_core::RowStream)'s own poll.
//!
//! No task reads ahead: the consumer's poll drives the driver's stream, so nothing is
//! handed between threads and the server is read only as fast as rows are taken. The
//! driver's stream borrows the pooled connection, so both live in one future (the
//! *body*) that suspends after each batch of decoded rows; [`Rows`] polls it and hands
//! the batch out row by row. A batch holds only rows the driver had already received
//! (at most [`STREAM_BATCH_ROWS`]): the body never waits to fill one.
//!
//! Dropping the stream drops the body with its connection still marked busy, and
//! [`Pooled`]'s `Drop` cancels the query on the server and discards the connection.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use extdata_core::{Error, Row};
use futures::Stream;
use futures::stream::BoxStream;
use sqlx::postgres::PgRow;
use tokio::time::{Instant, Sleep};

use crate::error::{Phase, convert};
use crate::pool::Pooled;
use crate::{Prepared, Shape, decode_row};

/// Most rows decoded per turn of the body: the rows the driver has already received,
/// taken in one go so that the body suspends (and the slot is locked) once per batch
/// rather than once per row.
const STREAM_BATCH_ROWS: usize = 128;

type Slot = Arc<Mutex<Option<Vec<Row>>>>;

type Body = Pin<Box<dyn Future<Output = extdata_core::Result<()>> + Send>>;

/// Decoded rows of one query, read as they are polled.
pub(crate) struct Rows {
    ready: std::vec::IntoIter<Row>,
    slot: Slot,
    /// `None` once the body has ended (the connection is back in the pool or closed).
    body: Option<Body>,
}

/// What the body of a stream needs to run its query.
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

impl Rows {
    /// Streams the rows of `query`. Sends nothing to the server until first polled.
    pub(crate) fn new(query: Query) -> Rows {
        let slot: Slot = Arc::new(Mutex::new(None));
        let out = Out { slot: slot.clone() };
        Rows {
            ready: Vec::new().into_iter(),
            slot,
            body: Some(Box::pin(read(query, out))),
        }
    }

    fn take_batch(&self) -> Option<Vec<Row>> {
        // Only this stream and its own body touch the slot, never at the same time.
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Stream for Rows {
    type Item = extdata_core::Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(row) = self.ready.next() {
                return Poll::Ready(Some(Ok(row)));
            }
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(None);
            };
            match body.as_mut().poll(cx) {
                Poll::Pending => match self.take_batch() {
                    Some(batch) => self.ready = batch.into_iter(),
                    // The body waits for the server and has registered the waker.
                    None => return Poll::Pending,
                },
                Poll::Ready(result) => {
                    // Ending the body releases the connection now, not when the stream
                    // is dropped. Its last rows were handed over before it returned.
                    self.body = None;
                    if let Err(err) = result {
                        return Poll::Ready(Some(Err(err)));
                    }
                }
            }
        }
    }
}

/// The body's side of the slot.
struct Out {
    slot: Slot,
}

impl Out {
    /// Hands `batch` to [`Rows`] and suspends the body until the next poll after the
    /// batch was consumed.
    async fn send(&self, batch: Vec<Row>) {
        if batch.is_empty() {
            return;
        }
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(batch);
        // Pending without a wake-up is right here: `Rows` takes the batch as soon as
        // the body returns Pending and polls the body again only when it is empty.
        let mut suspended = false;
        poll_fn(|_| {
            if suspended {
                Poll::Ready(())
            } else {
                suspended = true;
                Poll::Pending
            }
        })
        .await;
    }
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

/// Runs the query and sends its decoded rows, batch by batch, until the result ends
/// or fails; then leaves the connection healthy in the pool, or cancels and closes it.
async fn read(query: Query, out: Out) -> extdata_core::Result<()> {
    let Query {
        mut conn,
        prepared,
        shape,
        first_deadline,
        timeout,
        connector,
    } = query;
    conn.begin();
    let mut batch = Vec::with_capacity(STREAM_BATCH_ROWS);
    let end = {
        let mut rows = prepared.query(&shape.sql).fetch(&mut conn.conn().raw);
        let mut idle = pin!(tokio::time::sleep_until(first_deadline));
        let mut waiting = true;
        loop {
            let end = poll_fn(|cx| {
                gather(
                    cx,
                    &mut rows,
                    &shape,
                    &mut batch,
                    idle.as_mut(),
                    &mut waiting,
                    timeout,
                )
            })
            .await;
            if let Some(end) = end {
                break end;
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(STREAM_BATCH_ROWS));
            out.send(full).await;
        }
    };
    // Settle the connection before handing out the last rows, so that a consumer that
    // stops after the last row does not leave a finished query to be cancelled.
    let result = match end {
        End::Done => {
            conn.finish();
            drop(conn);
            Ok(())
        }
        End::Failed(e) => {
            let lost = matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_));
            let err = convert(&connector, Phase::Query, e);
            if lost {
                conn.discard();
            } else {
                // A server error leaves the connection in sync (sqlx reads up to the
                // next ReadyForQuery before its next use).
                conn.finish();
                drop(conn);
            }
            Err(err)
        }
        End::BadRow(err) => {
            // The rest of the result is not read: dropped while busy, the connection
            // is cancelled on the server and discarded in the background.
            drop(conn);
            Err(err.with_connector(&connector))
        }
        End::TimedOut => {
            conn.abort().await;
            Err(Error::timeout("waiting for the next row", timeout)
                .context("the query was cancelled on the server")
                .with_connector(&connector))
        }
    };
    out.send(batch).await;
    result
}

/// Decodes the rows the driver has ready into `batch`, waiting (at most until the
/// `idle` timer) only while the batch is empty. `Ready(None)`: a batch to send;
/// `Ready(Some(end))`: the result ended (`batch` may still hold rows).
fn gather(
    cx: &mut Context<'_>,
    rows: &mut BoxStream<'_, Result<PgRow, sqlx::Error>>,
    shape: &Shape,
    batch: &mut Vec<Row>,
    mut idle: Pin<&mut Sleep>,
    waiting: &mut bool,
    timeout: Duration,
) -> Poll<Option<End>> {
    while batch.len() < STREAM_BATCH_ROWS {
        match rows.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(row))) => {
                *waiting = false;
                match decode_row(&row, shape) {
                    Ok(row) => batch.push(row),
                    Err(err) => return Poll::Ready(Some(End::BadRow(err))),
                }
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(End::Failed(e))),
            Poll::Ready(None) => return Poll::Ready(Some(End::Done)),
            Poll::Pending if !batch.is_empty() => return Poll::Ready(None),
            Poll::Pending => {
                // The clock is read only when the server makes us wait, not per row.
                if !*waiting {
                    idle.as_mut().reset(Instant::now() + timeout);
                    *waiting = true;
                }
                return match idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(End::TimedOut)),
                    Poll::Pending => Poll::Pending,
                };
            }
        }
    }
    Poll::Ready(None)
}
