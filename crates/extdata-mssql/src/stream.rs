//! `query` and `stream`: a task reads a statement's first result set from its pooled
//! connection into a bounded channel (the server is read no further ahead than that),
//! each wait bounded; a consumer that goes away gets the rest drained briefly, then
//! the request cancelled.

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::Object;
use extdata_core::driver::Bound;
use extdata_core::{Columns, Error, ErrorKind, Result, Row, RowStream, Statement};
use futures::TryStreamExt;
use tiberius::{ColumnData, ColumnType, Query, QueryItem};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::is_connection_broken;
use crate::pool::{CANCEL_WAIT, Inner, Lease};
use crate::types;

/// Rows buffered between the connection and a [`RowStream`](extdata_core::RowStream)
/// consumer: the server is read no further ahead than this (and TCP's window).
const STREAM_BUFFER_ROWS: usize = 64;

/// How long the rest of an abandoned result is read before it is cancelled instead.
const DRAIN_BUDGET: Duration = Duration::from_millis(50);

/// How a statement's rows task ended.
enum End {
    /// Every token was read: the connection is clean.
    Done,
    /// The server or the driver failed; `broken` when the connection is unusable.
    Failed { broken: bool },
    /// The consumer went away with the request still running: cancel it.
    Abandoned,
    /// The call's time ran out: cancel it and report the timeout.
    TimedOut,
}

/// Reads and drops what is left of an abandoned result for up to [`DRAIN_BUDGET`]: a
/// result that ends within it leaves the connection clean without a cancel. tiberius
/// only reads an ATTENTION acknowledgement inside the response it cancels, so a cancel
/// sent after the last packet already arrived fails and costs the connection.
async fn drain(stream: &mut tiberius::QueryStream<'_>) -> End {
    let deadline = Instant::now() + DRAIN_BUDGET;
    loop {
        match tokio::time::timeout_at(deadline, stream.try_next()).await {
            Ok(Ok(None)) => return End::Done,
            Ok(Ok(Some(_))) => {}
            Ok(Err(e)) => {
                return End::Failed {
                    broken: is_connection_broken(&e),
                };
            }
            Err(_) => return End::Abandoned,
        }
    }
}

impl Inner {
    /// Runs a statement and sends its columns, then the rows of its first result set,
    /// to the channels.
    #[allow(clippy::too_many_arguments)]
    async fn run_rows(
        self: Arc<Self>,
        mut conn: Lease,
        (sql, params): (String, Vec<ColumnData<'static>>),
        bound: Bound,
        started: Instant,
        columns_tx: oneshot::Sender<Result<Columns>>,
        rows_tx: mpsc::Sender<Result<Row>>,
    ) {
        let deadline_for_wait = |now: Instant| bound.deadline(started, now);
        let mut columns_tx = Some(columns_tx);
        let send_error = |columns_tx: &mut Option<oneshot::Sender<Result<Columns>>>, err: Error| {
            let rows_tx = rows_tx.clone();
            let columns_tx = columns_tx.take();
            async move {
                match columns_tx {
                    Some(tx) => {
                        let _ = tx.send(Err(err));
                    }
                    None => {
                        let _ = rows_tx.send(Err(err)).await;
                    }
                }
            }
        };
        let end = 'run: {
            let mut query = Query::new(sql);
            for param in params {
                query.bind(param);
            }
            let started_query =
                tokio::time::timeout_at(deadline_for_wait(Instant::now()), query.query(&mut conn))
                    .await;
            let mut stream = match started_query {
                Err(_) => break 'run End::TimedOut,
                Ok(Err(e)) => {
                    let broken = is_connection_broken(&e);
                    send_error(&mut columns_tx, self.map(e)).await;
                    break 'run End::Failed { broken };
                }
                Ok(Ok(stream)) => stream,
            };
            let described =
                tokio::time::timeout_at(deadline_for_wait(Instant::now()), stream.columns()).await;
            let (columns, mut column_types): (Columns, Vec<ColumnType>) = match described {
                Err(_) => break 'run End::TimedOut,
                Ok(Err(e)) => {
                    let broken = is_connection_broken(&e);
                    send_error(&mut columns_tx, self.map(e)).await;
                    break 'run End::Failed { broken };
                }
                Ok(Ok(None)) => (Vec::new().into(), Vec::new()),
                Ok(Ok(Some(columns))) => (
                    columns.iter().map(types::column).collect::<Vec<_>>().into(),
                    columns.iter().map(|c| c.column_type()).collect(),
                ),
            };
            if let Some(tx) = columns_tx.take()
                && tx.send(Ok(columns.clone())).is_err()
            {
                break 'run End::Abandoned;
            }
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout_at(deadline_for_wait(Instant::now()), stream.try_next()) => next,
                    _ = rows_tx.closed() => break 'run drain(&mut stream).await,
                };
                match next {
                    Err(_) => break 'run End::TimedOut,
                    Ok(Ok(None)) => break 'run End::Done,
                    Ok(Err(e)) => {
                        let broken = is_connection_broken(&e);
                        send_error(&mut columns_tx, self.map(e)).await;
                        break 'run End::Failed { broken };
                    }
                    // Later result sets (a batch of several SELECTs) are read and
                    // dropped: a RowStream has one set of columns.
                    Ok(Ok(Some(QueryItem::Metadata(meta)))) => {
                        if meta.result_index() == 0 {
                            column_types = meta.columns().iter().map(|c| c.column_type()).collect();
                        }
                    }
                    Ok(Ok(Some(QueryItem::Row(row)))) => {
                        if row.result_index() != 0 {
                            continue;
                        }
                        let decoded = row
                            .into_iter()
                            .zip(column_types.iter())
                            .map(|(data, column_type)| types::decode(*column_type, data))
                            .collect::<Result<Vec<_>>>()
                            .map(|values| Row::new(columns.clone(), values))
                            .map_err(|e| e.with_connector(self.config.name.clone()));
                        let failed = decoded.is_err();
                        if rows_tx.send(decoded).await.is_err() || failed {
                            // An error ends the stream; the rest of the result is dropped.
                            break 'run drain(&mut stream).await;
                        }
                    }
                }
            }
        };
        match end {
            End::Done => {}
            End::Failed { broken } => {
                if broken {
                    drop(Object::take(conn));
                }
            }
            End::Abandoned => self.cancel(conn, None).await,
            End::TimedOut => {
                let err = bound.timeout_error(&self.config.name);
                let (done_tx, done_rx) = oneshot::channel();
                let cancel = tokio::spawn(self.clone().cancel(conn, Some(done_tx)));
                let _ = tokio::time::timeout(CANCEL_WAIT, done_rx).await;
                send_error(&mut columns_tx, err).await;
                let _ = cancel.await;
            }
        }
    }

    /// Starts a statement whose rows are read by a task; returns its rows as a stream
    /// once the columns are known.
    pub(crate) async fn start_rows(
        self: &Arc<Self>,
        statement: &Statement,
        bound: Bound,
    ) -> Result<RowStream> {
        self.lifecycle.check_open(&self.config.name)?;
        let started = Instant::now();
        let rendered = self.render(statement)?;
        let conn = self.lease(started + bound.duration()).await?;
        let (columns_tx, columns_rx) = oneshot::channel();
        let (rows_tx, rows_rx) = mpsc::channel(STREAM_BUFFER_ROWS);
        tokio::spawn(
            self.clone()
                .run_rows(conn, rendered, bound, started, columns_tx, rows_tx),
        );
        match columns_rx.await {
            Ok(Ok(columns)) => Ok(RowStream::new(columns, receiver_stream(rows_rx))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.config.error(
                ErrorKind::Internal,
                "the statement's task ended unexpectedly",
            )),
        }
    }
}

/// The rows a [`start_rows`](Inner::start_rows) task sends, as a stream.
fn receiver_stream(
    rows: mpsc::Receiver<Result<Row>>,
) -> impl futures::Stream<Item = Result<Row>> + Send + 'static {
    futures::stream::unfold(rows, |mut rows| async move {
        rows.recv().await.map(|row| (row, rows))
    })
}
