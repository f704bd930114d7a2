//! `query` and `stream`: a blocking thread fetches a statement's rows in batches of
//! `fetch_array_size` into a bounded channel (the server is read no further ahead than
//! that), each wait bounded; a timeout breaks the call.

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::Object;
use extdata_core::driver::{Bound, timeout_error};
use extdata_core::{Column, Columns, ErrorKind, Result, Row, RowStream, Statement};
use oracle::Connection;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::call::{CallGuard, Failure, Prepared, begin_call, break_call, discard_if, end_call};
use crate::pool::{CALL_TIMEOUT_MARGIN, Inner, Manager};
use crate::types;

/// Batches of rows buffered between the fetching thread and a [`RowStream`]
/// consumer: the server is read no further ahead than this many fetch batches.
const STREAM_BUFFER_BATCHES: usize = 2;

/// A batch of decoded rows, or the error that ended the result.
type Batch = Result<Vec<Row>>;

impl Inner {
    /// Starts a statement whose rows a blocking thread fetches in batches; returns
    /// once the columns are known.
    pub(crate) async fn start_rows(
        self: &Arc<Self>,
        statement: &Statement,
        bound: Bound,
    ) -> Result<(
        Columns,
        mpsc::Receiver<Batch>,
        Arc<CallGuard>,
        Arc<Connection>,
    )> {
        self.lifecycle.check_open(&self.config.name)?;
        let started = Instant::now();
        let timeout = bound.duration();
        let prepared = self.prepare(statement)?;
        let object = self.acquire(started + timeout, timeout).await?;
        let conn = object.conn.clone();
        let guard = Arc::new(CallGuard::default());
        let (columns_tx, columns_rx) = oneshot::channel::<Result<Columns>>();
        let (rows_tx, rows_rx) = mpsc::channel::<Batch>(STREAM_BUFFER_BATCHES);
        let call_timeout = timeout + CALL_TIMEOUT_MARGIN;
        let inner = self.clone();
        let fetch_guard = guard.clone();
        tokio::task::spawn_blocking(move || {
            inner.fetch(
                object,
                prepared,
                call_timeout,
                fetch_guard,
                columns_tx,
                rows_tx,
            );
        });
        let deadline = started + timeout;
        tokio::select! {
            columns = columns_rx => match columns {
                Ok(Ok(columns)) => Ok((columns, rows_rx, guard, conn)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(self.config.error(ErrorKind::Internal, "the fetch thread ended unexpectedly")),
            },
            () = tokio::time::sleep_until(deadline) => {
                if guard.try_break() {
                    break_call(conn);
                }
                Err(timeout_error(&self.config.name, "query", timeout))
            }
        }
    }

    /// The blocking side of a stream: run, send the columns, then batches of rows
    /// until the result ends, an error, or the receiver is gone.
    fn fetch(
        &self,
        mut object: Object<Manager>,
        prepared: Prepared,
        call_timeout: Duration,
        guard: Arc<CallGuard>,
        columns_tx: oneshot::Sender<Result<Columns>>,
        rows_tx: mpsc::Sender<Batch>,
    ) {
        let read_only = self.config.read_only;
        let array_size = self.settings.fetch_array_size;
        let mut columns_tx = Some(columns_tx);
        let conn = object.conn.clone();
        let result = (|| -> std::result::Result<(), Failure> {
            conn.set_call_timeout(Some(call_timeout))?;
            let mut builder = conn.statement(&prepared.sql);
            builder.fetch_array_size(array_size);
            if let Some(rows) = self.settings.prefetch_rows {
                builder.prefetch_rows(rows);
            }
            let mut stmt = builder.build()?;
            begin_call(&conn, read_only, stmt.statement_type(), &self.config.name)?;
            let params = prepared.params();
            if !stmt.is_query() {
                stmt.execute(&params)?;
                if let Some(tx) = columns_tx.take() {
                    let _ = tx.send(Ok(Columns::from(Vec::new())));
                }
                return end_call(&conn, read_only);
            }
            let rows = stmt.query(&params)?;
            let columns: Columns = rows
                .column_info()
                .iter()
                .map(types::column)
                .collect::<Vec<Column>>()
                .into();
            let types: Vec<_> = rows
                .column_info()
                .iter()
                .map(|c| c.oracle_type().clone())
                .collect();
            if let Some(tx) = columns_tx.take()
                && tx.send(Ok(columns.clone())).is_err()
            {
                return end_call(&conn, read_only);
            }
            let mut batch = Vec::with_capacity(array_size as usize);
            for row in rows {
                let row = row?;
                let values = row
                    .sql_values()
                    .iter()
                    .zip(&types)
                    .map(|(value, oracle_type)| types::decode(value, oracle_type))
                    .collect::<Result<Vec<_>>>()
                    .map_err(|e| Failure::Ours(e.with_connector(self.config.name.clone())))?;
                batch.push(Row::new(columns.clone(), values));
                if batch.len() >= array_size as usize {
                    let full =
                        std::mem::replace(&mut batch, Vec::with_capacity(array_size as usize));
                    if rows_tx.blocking_send(Ok(full)).is_err() {
                        // The stream was dropped: stop fetching; closing the cursor
                        // leaves the connection usable.
                        return end_call(&conn, read_only);
                    }
                }
            }
            if !batch.is_empty() {
                let _ = rows_tx.blocking_send(Ok(batch));
            }
            end_call(&conn, read_only)
        })();
        if read_only && result.is_err() {
            // Leave no read-only transaction open: the next call starts its own.
            let _ = conn.rollback();
        }
        let broken = guard.finish();
        discard_if(&mut object, broken, &result);
        if let Err(failure) = result {
            let error = self.map(failure, broken);
            match columns_tx.take() {
                Some(tx) => {
                    let _ = tx.send(Err(error));
                }
                None => {
                    let _ = rows_tx.blocking_send(Err(error));
                }
            }
        }
    }
}

/// The consumer side of a stream: rows of the current batch, then the next batch,
/// each wait bounded.
struct StreamState {
    inner: Arc<Inner>,
    rows: mpsc::Receiver<Batch>,
    batch: std::vec::IntoIter<Row>,
    guard: Arc<CallGuard>,
    conn: Arc<Connection>,
    bound: Bound,
    started: Instant,
    done: bool,
}

impl StreamState {
    async fn next(&mut self) -> Option<Result<Row>> {
        if let Some(row) = self.batch.next() {
            return Some(Ok(row));
        }
        if self.done {
            return None;
        }
        let deadline = self.bound.deadline(self.started, Instant::now());
        match tokio::time::timeout_at(deadline, self.rows.recv()).await {
            Ok(Some(Ok(batch))) => {
                self.batch = batch.into_iter();
                self.batch.next().map(Ok)
            }
            Ok(Some(Err(e))) => {
                self.done = true;
                self.rows.close();
                Some(Err(e))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(_) => {
                self.done = true;
                // The fetching thread must not wait to hand over more rows.
                self.rows.close();
                if self.guard.try_break() {
                    break_call(self.conn.clone());
                }
                Some(Err(self.bound.timeout_error(&self.inner.config.name)))
            }
        }
    }
}

pub(crate) fn row_stream(
    inner: &Arc<Inner>,
    (columns, rows, guard, conn): (
        Columns,
        mpsc::Receiver<Batch>,
        Arc<CallGuard>,
        Arc<Connection>,
    ),
    bound: Bound,
    started: Instant,
) -> RowStream {
    let state = StreamState {
        inner: inner.clone(),
        rows,
        batch: Vec::new().into_iter(),
        guard,
        conn,
        bound,
        started,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        state.next().await.map(|row| (row, state))
    });
    RowStream::new(columns, stream)
}
