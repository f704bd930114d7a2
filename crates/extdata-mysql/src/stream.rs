//! `query` and `stream`: a statement's rows read straight from its pooled connection
//! (no task in between), each wait bounded; a stream dropped before its end stops the
//! statement on the server in the background.
//!
//! The reading loop ([`read_rows`]) appends each driver row to a [`Sink`]: decoded
//! [`Row`]s for `stream` (each handed out at once), or the Arrow column builders of
//! `stream_batches` (feature `arrow`, batches handed out when full).

use std::sync::Arc;

use extdata_core::driver::Bound;
use extdata_core::{Column, Columns, Error, ErrorKind, Result, Row, RowStream, Statement};
use futures::{FutureExt, StreamExt};
use sqlx::mysql::{MySqlArguments, MySqlRow};
use sqlx::{AssertSqlSafe, Executor, Row as _, SqlSafeStr, Statement as _};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{Stage, is_connection_broken};
use crate::pool::{Inner, Lease, Recover, kill_wait};
use crate::types;

/// What the reading loop appends the driver's rows to, and what it hands out.
pub(crate) trait Sink: Send + 'static {
    /// What the stream yields.
    type Item: Send + 'static;
    /// The result's columns are known: called once, before the first row.
    fn start(&mut self, columns: &Columns);
    /// Appends one row (`decoder`: the row path's decoder of this result); returns an
    /// item when one is ready. An error ends the stream as it is.
    fn append(
        &mut self,
        row: &MySqlRow,
        columns: &Columns,
        decoder: &mut types::RowDecoder,
    ) -> Result<Option<Self::Item>>;
    /// What is left once the result was read to its end.
    fn finish(&mut self) -> Option<Result<Self::Item>>;
}

/// The row stream's sink: each row decoded and handed out at once.
struct Rows {
    /// Named in decode errors.
    connector: String,
}

impl Sink for Rows {
    type Item = Row;

    fn start(&mut self, _columns: &Columns) {}

    fn append(
        &mut self,
        row: &MySqlRow,
        columns: &Columns,
        decoder: &mut types::RowDecoder,
    ) -> Result<Option<Row>> {
        decoder
            .decode_row(row)
            .map(|values| Some(Row::new(columns.clone(), values)))
            .map_err(|e| e.with_connector(self.connector.clone()))
    }

    fn finish(&mut self) -> Option<Result<Row>> {
        None
    }
}

impl Inner {
    /// Starts a statement and returns its rows as a stream that reads the connection
    /// itself (no task in between); returns once the columns are known (the first row
    /// arrived, or the result is empty).
    pub(crate) async fn start_rows(
        self: &Arc<Self>,
        statement: &Statement,
        bound: Bound,
    ) -> Result<RowStream> {
        let rows = Rows {
            connector: self.config.name.clone(),
        };
        let (columns, rows) = self.start(statement, bound, rows).await?;
        Ok(RowStream::new(columns, rows))
    }

    /// Starts a statement whose rows go to `sink`; returns the result's columns and the
    /// sink's items, once the columns are known.
    pub(crate) async fn start<S: Sink>(
        self: &Arc<Self>,
        statement: &Statement,
        bound: Bound,
        sink: S,
    ) -> Result<(
        Columns,
        impl futures::Stream<Item = Result<S::Item>> + Send + 'static,
    )> {
        self.lifecycle.check_open(&self.config.name)?;
        let started = Instant::now();
        let effect = self.admit(statement)?;
        let (sql, args) = self.render(statement)?;
        let guard = match bound {
            Bound::Total(d) => self.session.guard_for(Some(d)),
            Bound::PerRow(_) => self.session.guard_for(None),
        };
        let mut lease = self.lease(started + bound.duration(), guard).await?;
        lease.ran(effect);
        let reading = Reading {
            inner: self.clone(),
            lease: Some(lease),
            runtime: tokio::runtime::Handle::current(),
        };
        let mut items = Box::pin(read_rows(reading, (sql, args), bound, started, sink));
        let columns = match items.next().await {
            Some(Ok(Read::Columns(columns))) => columns,
            Some(Err(e)) => return Err(e),
            Some(Ok(Read::Item(_))) | None => {
                return Err(self.config.error(
                    ErrorKind::Internal,
                    "the statement's rows ended before its columns",
                ));
            }
        };
        let rows = items.filter_map(|item| {
            std::future::ready(match item {
                Ok(Read::Item(item)) => Some(Ok(item)),
                Ok(Read::Columns(_)) => None,
                Err(e) => Some(Err(e)),
            })
        });
        Ok((columns, rows))
    }
}

/// What [`read_rows`] yields: the columns once, first, then the sink's items.
enum Read<T> {
    Columns(Columns),
    Item(T),
}

/// The connection of a statement being read. Dropped before the result ended (the
/// consumer dropped its stream), it stops the statement on the server in the
/// background and pools the connection only once it answers again.
struct Reading {
    inner: Arc<Inner>,
    lease: Option<Lease>,
    runtime: tokio::runtime::Handle,
}

impl Drop for Reading {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.runtime
                .spawn(self.inner.clone().cancel(lease, None, Recover::Ping));
        }
    }
}

/// Runs a statement and yields its columns, then the items of `sink` its rows make.
/// The first error ends it.
fn read_rows<S: Sink>(
    mut reading: Reading,
    (sql, args): (String, MySqlArguments),
    bound: Bound,
    started: Instant,
    mut sink: S,
) -> impl futures::Stream<Item = Result<Read<S::Item>>> + Send + 'static {
    enum End {
        Done,
        Failed { broken: bool, error: Error },
        Stopped(Error),
        TimedOut,
    }
    async_stream::stream! {
        let inner = reading.inner.clone();
        let timestamps = inner.session.timestamps;
        let deadline_for_wait = |now: Instant| bound.deadline(started, now);
        let end = 'run: {
            let Some(lease) = reading.lease.as_mut() else {
                break 'run End::Done;
            };
            // Columns even for an empty result: prepare (cached per connection, so the
            // query below does not prepare again).
            let prepared = tokio::time::timeout_at(
                deadline_for_wait(Instant::now()),
                lease.conn.prepare(AssertSqlSafe(sql.clone()).into_sql_str()),
            )
            .await;
            let prepared_columns: Columns = match prepared {
                Err(_) => break 'run End::TimedOut,
                Ok(Err(e)) => {
                    break 'run End::Failed {
                        broken: is_connection_broken(&e),
                        error: inner.map(Stage::Statement, e),
                    };
                }
                Ok(Ok(statement)) => statement
                    .columns()
                    .iter()
                    .map(|c| types::column(c, timestamps))
                    .collect::<Vec<Column>>()
                    .into(),
            };
            let mut rows = sqlx::query_with(AssertSqlSafe(sql), args).fetch(&mut *lease.conn);
            let mut columns: Option<(Columns, types::RowDecoder)> = None;
            loop {
                // A row already received needs no timer.
                let next = match rows.next().now_or_never() {
                    Some(next) => next,
                    None => match tokio::time::timeout_at(
                        deadline_for_wait(Instant::now()),
                        rows.next(),
                    )
                    .await
                    {
                        Ok(next) => next,
                        Err(_) => break 'run End::TimedOut,
                    },
                };
                let row = match next {
                    None => {
                        if columns.is_none() {
                            sink.start(&prepared_columns);
                            yield Ok(Read::Columns(prepared_columns));
                        }
                        break 'run End::Done;
                    }
                    Some(Err(e)) => {
                        break 'run End::Failed {
                            broken: is_connection_broken(&e),
                            error: inner.map(Stage::Statement, e),
                        };
                    }
                    Some(Ok(row)) => row,
                };
                let (cols, decoder) = match &mut columns {
                    Some(known) => known,
                    None => {
                        // The executed statement's metadata is exact (`SELECT ?` has its
                        // type only once the value is bound).
                        let cols: Columns = row
                            .columns()
                            .iter()
                            .map(|c| types::column(c, timestamps))
                            .collect::<Vec<Column>>()
                            .into();
                        sink.start(&cols);
                        yield Ok(Read::Columns(cols.clone()));
                        columns.insert((cols, types::RowDecoder::new(row.columns(), timestamps)))
                    }
                };
                match sink.append(&row, cols, decoder) {
                    Ok(Some(item)) => yield Ok(Read::Item(item)),
                    Ok(None) => {}
                    Err(e) => break 'run End::Stopped(e),
                }
            }
        };
        match end {
            End::Done => {
                // The result was read to its end: the connection goes back to the pool
                // before the last items are handed out.
                drop(reading.lease.take());
                if let Some(item) = sink.finish() {
                    yield item.map(Read::Item);
                }
            }
            End::Failed { broken, error } => {
                if let Some(mut lease) = reading.lease.take()
                    && broken
                {
                    lease.conn.close_on_drop();
                }
                yield Err(error);
            }
            End::Stopped(error) => {
                // An error ends the stream; the rest of the result is stopped.
                if let Some(lease) = reading.lease.take() {
                    reading.runtime.spawn(inner.clone().cancel(lease, None, Recover::Ping));
                }
                yield Err(error);
            }
            End::TimedOut => {
                // A per-row wait that just ran out ended now.
                let deadline = bound.deadline(started, Instant::now());
                if let Some(lease) = reading.lease.take() {
                    let (killed_tx, killed_rx) = oneshot::channel();
                    reading
                        .runtime
                        .spawn(inner.clone().cancel(lease, Some(killed_tx), Recover::Ping));
                    let _ = tokio::time::timeout(kill_wait(deadline), killed_rx).await;
                }
                yield Err(bound.timeout_error(&inner.config.name));
            }
        }
    }
}
