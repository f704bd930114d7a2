//! Reading results: a whole small result ([`read_all`]), and a stream that decodes
//! Native blocks into rows a chunk at a time with back-pressure ([`ChunkedRows`]); a
//! [`KillGuard`] sends `KILL QUERY` for a query whose reader stopped early.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use chrono_tz::Tz;
use clickhouse::Client;
use clickhouse::native::{Block, DataTypeNode};
use clickhouse::query::NativeCursor;
use extdata_core::{Column, Columns, Error, Result, Row, Statement, Value};
use futures::Stream;
use tokio::time::Instant;

use crate::types::{self, ServerFeatures};
use crate::{error, parse_json, redactor_of};

/// An error while reading a result: from the driver, or from our decoding.
pub(crate) enum ReadError {
    Driver(clickhouse::error::Error),
    Decode(Error),
}

/// Reads a whole (small) result as rows of values.
pub(crate) async fn read_all(
    mut cursor: NativeCursor,
    zone: Tz,
) -> std::result::Result<Vec<Vec<Value>>, ReadError> {
    let mut rows = Vec::new();
    while let Some(block) = quiet(cursor.next()).await.map_err(ReadError::Driver)? {
        let width = block.columns().len();
        let mut readers = column_readers(&block, width, &[]).map_err(ReadError::Decode)?;
        types::with_server_zone(zone, || {
            for _ in 0..block.num_rows() {
                rows.push(next_values(&mut readers)?);
            }
            Ok(())
        })
        .map_err(ReadError::Decode)?;
    }
    Ok(rows)
}

pub(crate) fn block_columns(block: &Block) -> Columns {
    block
        .columns()
        .iter()
        .map(|column| {
            let (kind, nullable) = types::value_kind(column.data_type());
            Column::new(
                String::from_utf8_lossy(column.name_bytes()).into_owned(),
                column.data_type().to_string(),
                kind,
            )
            .with_nullable(Some(nullable))
        })
        .collect::<Vec<_>>()
        .into()
}

/// By column of `header`, the type `described` (the result's `DESCRIBE`) gives a
/// `DateTime` column that the header names without its zone, when it has one: a Native
/// answer over HTTP names a top-level `DateTime('Zone')` as plain `DateTime` (the
/// server's compatibility with clients before protocol revision 54337; a client can
/// only raise the revision with `client_protocol_version`, which also changes the block
/// layout and which the clickhouse crate refuses). Empty when no column is such, or
/// `described` does not match the header.
pub(crate) fn zoned_types(header: &Block, described: &[Column]) -> Vec<Option<DataTypeNode>> {
    let columns = header.columns();
    if columns.len() != described.len() {
        return Vec::new();
    }
    let zoned: Vec<Option<DataTypeNode>> = columns
        .iter()
        .zip(described)
        .map(|(column, described)| {
            if !matches!(column.data_type(), DataTypeNode::DateTime(None))
                || column.name_bytes() != described.name.as_bytes()
            {
                return None;
            }
            DataTypeNode::new(&described.database_type)
                .ok()
                .filter(|t| matches!(t, DataTypeNode::DateTime(Some(_))))
        })
        .collect();
    if zoned.iter().any(Option::is_some) {
        zoned
    } else {
        Vec::new()
    }
}

/// How many statements [`ZonedStatements`] remembers before it starts over.
const ZONED_STATEMENTS: usize = 4096;

/// The statements (by a hash of their SQL text) whose result had a `DateTime` column
/// named without its zone (see [`zoned_types`]), so that their next call asks for the
/// result's `DESCRIBE` while the query runs instead of after its first block. Only the
/// timing depends on it: a statement it does not know (or a hash collision) is
/// described after its first block, as on its first call, and every description is
/// fresh, so a column whose zone changed is read with its new zone. Bounded: past
/// [`ZONED_STATEMENTS`] entries it starts over.
#[derive(Debug, Default)]
pub(crate) struct ZonedStatements(Mutex<HashSet<u64>>);

impl ZonedStatements {
    fn key(sql: &str) -> u64 {
        let mut hasher = DefaultHasher::new();
        sql.hash(&mut hasher);
        hasher.finish()
    }

    fn set(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `sql`'s result had a `DateTime` column named without its zone.
    pub(crate) fn contains(&self, sql: &str) -> bool {
        self.set().contains(&Self::key(sql))
    }

    /// Remembers that `sql`'s result had such a column.
    pub(crate) fn insert(&self, sql: &str) {
        let mut set = self.set();
        if set.len() >= ZONED_STATEMENTS {
            set.clear();
        }
        set.insert(Self::key(sql));
    }

    /// Forgets `sql` (its result has no such column any more).
    pub(crate) fn remove(&self, sql: &str) {
        self.set().remove(&Self::key(sql));
    }
}

/// Whether `header` has a `DateTime` column named without a zone (which may have one:
/// see [`zoned_types`]).
pub(crate) fn has_plain_datetime(header: &Block) -> bool {
    header
        .columns()
        .iter()
        .any(|column| matches!(column.data_type(), DataTypeNode::DateTime(None)))
}

/// One reader per column of `block`, each at the block's first row; `width`: the number
/// of columns the result has (every block must have it); `zoned`: by column, the type
/// with its zone of a `DateTime` column whose header named it without (see
/// [`zoned_types`]).
pub(crate) fn column_readers<'a>(
    block: &'a Block,
    width: usize,
    zoned: &'a [Option<DataTypeNode>],
) -> Result<Vec<types::ColumnReader<'a>>> {
    if block.columns().len() != width {
        return Err(Error::decode(format!(
            "a block has {} columns, the first had {width}",
            block.columns().len(),
        )));
    }
    block
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| types::ColumnReader::new(column, zoned.get(i).and_then(Option::as_ref)))
        .collect()
}

/// The next row's values, one from each column's reader.
#[inline]
pub(crate) fn next_values(readers: &mut [types::ColumnReader<'_>]) -> Result<Vec<Value>> {
    let mut values = Vec::with_capacity(readers.len());
    for reader in readers {
        values.push(reader.next_value()?);
    }
    Ok(values)
}

/// Rows decoded per step of a stream: a block (65,536 rows by default) is decoded this
/// many rows at a time, straight into rows, so a stream holds one block's Native bytes
/// and at most this many decoded rows, and its buffers are reused from chunk to chunk.
pub(crate) const CHUNK_ROWS: usize = 1024;

/// How long a call may wait for its `KILL QUERY` after its own deadline passed: the
/// whole call ends within its timeout plus this.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(1);

/// Kept free at the end of [`KILL_WAIT`] for returning the error to the caller.
pub(crate) const KILL_WAIT_MARGIN: Duration = Duration::from_millis(50);

/// Until when a call whose `deadline` passed waits for its `KILL QUERY`.
pub(crate) fn kill_deadline(deadline: Instant) -> Instant {
    deadline + KILL_WAIT - KILL_WAIT_MARGIN
}

/// Asks the server to stop `query_id`, waiting until `until` at most for its answer;
/// a slower answer is waited for in the background (for [`KILL_WAIT`] at most), so
/// the caller's bound holds however long the request took to set up.
pub(crate) async fn kill_query(client: &Client, query_id: &str, until: Instant) {
    let sql = format!(
        "KILL QUERY WHERE query_id = {} ASYNC",
        types::quote_string(query_id)
    );
    let kill = quiet(
        client
            .query_raw(&sql)
            .with_setting("max_execution_time", "5")
            .execute(),
    );
    let query_id = query_id.to_owned();
    let task = tokio::spawn(async move {
        match tokio::time::timeout(KILL_WAIT, kill).await {
            Ok(Ok(())) => tracing::debug!(query_id, "killed query after a timeout"),
            Ok(Err(e)) => tracing::warn!(query_id, error = %e, "KILL QUERY failed"),
            Err(_) => tracing::warn!(query_id, "KILL QUERY did not answer within 1 s"),
        }
    });
    // Dropping the handle leaves the task running.
    let _ = tokio::time::timeout_at(until, task).await;
}

/// Runs `f` with tracing switched off: the clickhouse crate logs its errors at debug
/// level with the server's text, which quotes the query and values bound into it.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    tracing::dispatcher::with_default(&tracing::Dispatch::none(), f)
}

/// Awaits `future` (the clickhouse crate's work) with tracing switched off in every poll
/// (see [`quietly`]).
pub(crate) async fn quiet<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| quietly(|| future.as_mut().poll(cx))).await
}

/// Stops the query on the server when a stream is given up before its end.
pub(crate) struct KillGuard {
    pub(crate) client: Client,
    pub(crate) query_id: String,
    pub(crate) armed: bool,
}

impl KillGuard {
    pub(crate) async fn kill(&mut self) {
        if std::mem::take(&mut self.armed) {
            // The wait that ended the stream ran out (or failed) just now.
            kill_query(&self.client, &self.query_id, kill_deadline(Instant::now())).await;
        }
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if self.armed
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let client = self.client.clone();
            let query_id = std::mem::take(&mut self.query_id);
            runtime.spawn(async move {
                kill_query(&client, &query_id, kill_deadline(Instant::now())).await;
            });
        }
    }
}

/// What a stream's producer hands to its consumer: the rows of the last decoded chunk,
/// or the error that ended the stream.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) rows: VecDeque<Row>,
    pub(crate) error: Option<Error>,
}

pub(crate) type SharedSlot = Arc<Mutex<Slot>>;

pub(crate) fn lock(slot: &SharedSlot) -> MutexGuard<'_, Slot> {
    // The lock is never held across a panic that matters: a poisoned slot is still a
    // consistent queue of rows.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads blocks and decodes them chunk by chunk into the slot. It runs as an `async`
/// block, so it can keep each block and the column readers that borrow it across the
/// points where it hands a chunk over.
pub(crate) struct Producer {
    pub(crate) cursor: NativeCursor,
    pub(crate) columns: Columns,
    pub(crate) zone: Tz,
    pub(crate) timeout: Duration,
    pub(crate) guard: KillGuard,
    pub(crate) connector: String,
    pub(crate) password: Option<String>,
    /// The call's statement when it binds values, to keep them out of an error.
    pub(crate) statement: Option<Statement>,
    pub(crate) features: ServerFeatures,
    pub(crate) server_parameters: bool,
    /// The columns read as the text of a `JSON` column.
    pub(crate) json_columns: Vec<usize>,
    /// By column, the zoned type of a `DateTime` column the header names without its
    /// zone ([`zoned_types`]).
    pub(crate) zoned: Vec<Option<DataTypeNode>>,
}

impl Producer {
    pub(crate) async fn run(mut self, first: Block, slot: SharedSlot) {
        if let Err(error) = self.produce(first, &slot).await {
            lock(&slot).error = Some(self.failed(error));
        }
    }

    /// `error`, which ended the stream, as its reader gets it: with the connector's
    /// name, without the values bound into the statement.
    pub(crate) fn failed(&self, error: Error) -> Error {
        let error = error.with_connector(self.connector.clone());
        let redactor = self.statement.as_ref().and_then(|statement| {
            redactor_of(statement, Some(self.features), self.server_parameters)
        });
        match redactor {
            Some(redactor) => redactor.error(error),
            None => error,
        }
    }

    pub(crate) async fn produce(&mut self, first: Block, slot: &SharedSlot) -> Result<()> {
        let mut next = Some(first);
        while let Some(block) = next.take() {
            let decoded = Self::decode_block(
                &self.columns,
                &self.json_columns,
                &self.zoned,
                self.zone,
                &block,
                slot,
            )
            .await;
            if let Err(e) = decoded {
                self.guard.kill().await;
                return Err(e);
            }
            next = self.next_block().await?;
        }
        Ok(())
    }

    /// Hands `block` over [`CHUNK_ROWS`] rows at a time, waiting for the consumer to
    /// take each chunk before decoding the next; the `json` columns (read as their
    /// text) become `Value::Json`, the `zoned` ones are read with their zone.
    /// (An associated function: the cursor is not `Sync`, so the future may not hold
    /// `&self` across the hand-over points.)
    pub(crate) async fn decode_block(
        columns: &Columns,
        json: &[usize],
        zoned: &[Option<DataTypeNode>],
        zone: Tz,
        block: &Block,
        slot: &SharedSlot,
    ) -> Result<()> {
        let mut readers = column_readers(block, columns.len(), zoned)?;
        let mut left = block.num_rows();
        while left > 0 {
            let n = left.min(CHUNK_ROWS);
            left -= n;
            {
                let mut slot = lock(slot);
                types::with_server_zone(zone, || {
                    for _ in 0..n {
                        let mut values = next_values(&mut readers)?;
                        for &i in json {
                            if let Some(value) = values.get_mut(i) {
                                parse_json(value)?;
                            }
                        }
                        slot.rows.push_back(Row::new(columns.clone(), values));
                    }
                    Ok::<_, Error>(())
                })?;
            }
            HandOver::default().await;
        }
        Ok(())
    }

    pub(crate) async fn next_block(&mut self) -> Result<Option<Block>> {
        match tokio::time::timeout(self.timeout, quiet(self.cursor.next())).await {
            Err(_) => {
                self.guard.kill().await;
                Err(Error::timeout("reading the next row", self.timeout))
            }
            Ok(Err(e)) => {
                // The server may still be running it (a broken stream); stopping a query
                // that already ended is harmless.
                self.guard.kill().await;
                Err(error::map_error(
                    e,
                    "reading the result",
                    self.password.as_deref(),
                ))
            }
            Ok(Ok(None)) => {
                self.guard.armed = false;
                Ok(None)
            }
            Ok(Ok(Some(block))) => Ok(Some(block)),
        }
    }
}

/// Pending once, without asking to be woken: the producer's way to hand a chunk over.
/// Its consumer polls it again when it has taken every row of the chunk.
#[derive(Default)]
pub(crate) struct HandOver(bool);

impl Future for HandOver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The rows of a stream: drives the producer (in the consumer's own task, so a chunk
/// costs no wake-up) whenever its chunk is used up.
pub(crate) struct ChunkedRows {
    pub(crate) producer: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    pub(crate) slot: SharedSlot,
    pub(crate) rows: VecDeque<Row>,
    pub(crate) error: Option<Error>,
}

impl ChunkedRows {
    pub(crate) fn new(producer: Producer, first: Block) -> Self {
        let slot = SharedSlot::default();
        ChunkedRows {
            producer: Some(Box::pin(producer.run(first, slot.clone()))),
            slot,
            rows: VecDeque::with_capacity(CHUNK_ROWS),
            error: None,
        }
    }

    /// Ready when there is a row or an error to return, or the rows have ended.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if !self.rows.is_empty() || self.error.is_some() {
                return Poll::Ready(());
            }
            {
                let mut slot = lock(&self.slot);
                if !slot.rows.is_empty() {
                    // Our empty queue goes back to be filled: no allocation per chunk.
                    std::mem::swap(&mut slot.rows, &mut self.rows);
                    continue;
                }
                if let Some(error) = slot.error.take() {
                    self.error = Some(error);
                    self.producer = None;
                    continue;
                }
            }
            let Some(producer) = self.producer.as_mut() else {
                return Poll::Ready(());
            };
            match producer.as_mut().poll(cx) {
                Poll::Ready(()) => self.producer = None,
                Poll::Pending => {
                    let slot = lock(&self.slot);
                    if slot.rows.is_empty() && slot.error.is_none() {
                        // Waiting for the server: the cursor registered our waker.
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// Decodes the first chunk, so that a first block that cannot be decoded fails
    /// `stream` itself.
    pub(crate) async fn first_chunk(mut self) -> Result<Self> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await;
        match self.error.take() {
            Some(error) if self.rows.is_empty() => Err(error),
            error => {
                self.error = error;
                Ok(self)
            }
        }
    }
}

impl Stream for ChunkedRows {
    type Item = Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Row>>> {
        let this = &mut *self;
        ready!(this.poll_fill(cx));
        Poll::Ready(match this.rows.pop_front() {
            Some(row) => Some(Ok(row)),
            None => this.error.take().map(Err),
        })
    }
}
