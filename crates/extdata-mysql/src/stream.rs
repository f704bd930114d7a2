//! `query` and `stream`: a statement's rows read straight from its pooled connection
//! (no task in between), each wait bounded; a stream dropped before its end stops the
//! statement on the server in the background.

use std::sync::Arc;

use extdata_core::driver::Bound;
use extdata_core::{Column, Columns, Error, ErrorKind, Result, Row, RowStream, Statement};
use futures::{FutureExt, StreamExt};
use sqlx::mysql::MySqlArguments;
use sqlx::{AssertSqlSafe, Executor, Row as _, SqlSafeStr, Statement as _};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{Stage, is_connection_broken};
use crate::pool::{Inner, Lease, Recover, kill_wait};
use crate::types;

impl Inner {
    /// Starts a statement and returns its rows as a stream that reads the connection
    /// itself (no task in between); returns once the columns are known (the first row
    /// arrived, or the result is empty).
    pub(crate) async fn start_rows(
        self: &Arc<Self>,
        statement: &Statement,
        bound: Bound,
    ) -> Result<RowStream> {
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
        let mut items = Box::pin(read_rows(reading, (sql, args), bound, started));
        let columns = match items.next().await {
            Some(Ok(Read::Columns(columns))) => columns,
            Some(Err(e)) => return Err(e),
            Some(Ok(Read::Row(_))) | None => {
                return Err(self.config.error(
                    ErrorKind::Internal,
                    "the statement's rows ended before its columns",
                ));
            }
        };
        let rows = items.filter_map(|item| {
            std::future::ready(match item {
                Ok(Read::Row(row)) => Some(Ok(row)),
                Ok(Read::Columns(_)) => None,
                Err(e) => Some(Err(e)),
            })
        });
        Ok(RowStream::new(columns, rows))
    }
}

/// What [`read_rows`] yields: the columns once, first, then the rows.
enum Read {
    Columns(Columns),
    Row(Row),
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

/// Runs a statement and yields its columns, then its rows. The first error ends it.
fn read_rows(
    mut reading: Reading,
    (sql, args): (String, MySqlArguments),
    bound: Bound,
    started: Instant,
) -> impl futures::Stream<Item = Result<Read>> + Send + 'static {
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
                        yield Ok(Read::Columns(cols.clone()));
                        columns.insert((cols, types::RowDecoder::new(row.columns(), timestamps)))
                    }
                };
                match decoder.decode_row(&row) {
                    Ok(values) => yield Ok(Read::Row(Row::new(cols.clone(), values))),
                    Err(e) => break 'run End::Stopped(e.with_connector(inner.config.name.clone())),
                }
            }
        };
        match end {
            End::Done => {
                // The result was read to its end: the connection goes back to the pool.
                drop(reading.lease.take());
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
