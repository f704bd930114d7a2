//! [`ExternalSource`]: the interface every backend implements, and its result types.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};

use crate::config::DbKind;
use crate::error::Result;
use crate::statement::Statement;
use crate::value::{Value, ValueKind};

/// One column of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name as the server reports it.
    pub name: String,
    /// The server's type name (`int8`, `DECIMAL(65,30)`, `Nullable(String)`, …).
    pub database_type: String,
    /// The [`Value`] variant its non-NULL values decode to.
    pub value_kind: ValueKind,
    /// Whether it may hold NULL (`None`: the server does not say).
    pub nullable: Option<bool>,
}

impl Column {
    /// A column description.
    pub fn new(
        name: impl Into<String>,
        database_type: impl Into<String>,
        value_kind: ValueKind,
    ) -> Self {
        Column {
            name: name.into(),
            database_type: database_type.into(),
            value_kind,
            nullable: None,
        }
    }

    /// Sets whether the column is nullable.
    pub fn with_nullable(mut self, nullable: Option<bool>) -> Self {
        self.nullable = nullable;
        self
    }
}

/// The columns of a result, shared by all its rows.
pub type Columns = Arc<[Column]>;

/// One row: its values in column order, and the columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Columns,
    values: Vec<Value>,
}

impl Row {
    /// A row; `values` must be in the order of `columns`.
    pub fn new(columns: Columns, values: Vec<Value>) -> Self {
        debug_assert_eq!(columns.len(), values.len());
        Row { columns, values }
    }

    /// The columns.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// The values in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The value at `index`.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// The value of the column named `name` (first match, case-sensitive, then
    /// case-insensitive).
    pub fn get_by_name(&self, name: &str) -> Option<&Value> {
        let index = self
            .columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| {
                self.columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
            })?;
        self.values.get(index)
    }

    /// The row as a JSON object `{column: value}` (see [`Value::to_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.columns
                .iter()
                .zip(&self.values)
                .map(|(c, v)| (c.name.clone(), v.to_json()))
                .collect(),
        )
    }
}

/// The rows of a [`ExternalSource::query`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    /// The columns.
    pub columns: Columns,
    /// The rows, at most `max_rows`.
    pub rows: Vec<Row>,
    /// Whether more rows were available than `max_rows` allowed.
    pub truncated: bool,
}

/// Rows of [`ExternalSource::stream`], fetched as they are consumed.
///
/// The server is read only as fast as the stream is polled (back-pressure), so memory
/// does not grow with the result. Dropping the stream stops the query. An error ends the
/// stream: a stream that ends without error delivered every row.
pub struct RowStream {
    columns: Columns,
    inner: Pin<Box<dyn Stream<Item = Result<Row>> + Send>>,
}

impl RowStream {
    /// Wraps a stream of rows whose columns are known.
    pub fn new(columns: Columns, inner: impl Stream<Item = Result<Row>> + Send + 'static) -> Self {
        RowStream {
            columns,
            inner: Box::pin(inner),
        }
    }

    /// The columns.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// Reads at most `max_rows` rows into a [`ResultSet`] (stopping the query after that).
    pub async fn collect_limited(mut self, max_rows: Option<usize>) -> Result<ResultSet> {
        let mut rows = Vec::new();
        let mut truncated = false;
        while let Some(row) = self.inner.next().await {
            let row = row?;
            if max_rows.is_some_and(|max| rows.len() >= max) {
                truncated = true;
                break;
            }
            rows.push(row);
        }
        Ok(ResultSet {
            columns: self.columns,
            rows,
            truncated,
        })
    }
}

impl Stream for RowStream {
    type Item = Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

crate::debug_fields!(RowStream |stream| { columns, .. });

/// Per-call options: override the connector's query timeout, bound the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Bound on this call (default: the connector's `query_timeout`). For
    /// [`stream`](ExternalSource::stream) it bounds the wait for each row (the first
    /// included), not the whole transfer.
    pub timeout: Option<Duration>,
    /// [`query`](ExternalSource::query) returns at most this many rows and sets
    /// [`ResultSet::truncated`] when there were more (default
    /// [`QueryOptions::DEFAULT_MAX_ROWS`]).
    pub max_rows: Option<usize>,
}

impl QueryOptions {
    /// `max_rows` of [`ExternalSource::query`] when the call does not set one.
    pub const DEFAULT_MAX_ROWS: usize = 10_000;

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the row bound.
    pub fn with_max_rows(mut self, max_rows: usize) -> Self {
        self.max_rows = Some(max_rows);
        self
    }

    /// The effective timeout given the connector's default.
    pub fn timeout_or(&self, default: Duration) -> Duration {
        self.timeout.unwrap_or(default)
    }

    /// The effective row bound of `query`.
    pub fn max_rows_or_default(&self) -> usize {
        self.max_rows.unwrap_or(Self::DEFAULT_MAX_ROWS)
    }
}

/// What [`ExternalSource::ping`] learned from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The server's version string, as it reports it.
    pub version: String,
}

/// A connection to one external database, shared by all its users.
///
/// Every call is bounded by the connector's timeouts unless [`QueryOptions`] overrides
/// them; when a query timeout fires, the backend cancels the query on the server and
/// never returns a broken connection to its pool.
#[async_trait]
pub trait ExternalSource: Send + Sync + fmt::Debug {
    /// The connector's name.
    fn name(&self) -> &str;

    /// The database type.
    fn kind(&self) -> DbKind;

    /// A real round trip; returns the server's version.
    async fn ping(&self) -> Result<ServerInfo>;

    /// Runs a query and returns at most `max_rows` rows.
    async fn query(&self, statement: &Statement, options: &QueryOptions) -> Result<ResultSet> {
        let stream = self.stream(statement, options).await?;
        stream
            .collect_limited(Some(options.max_rows_or_default()))
            .await
    }

    /// Runs a query and streams its rows with their columns (for imports).
    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream>;

    /// Runs a statement that writes; returns the rows affected.
    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64>;

    /// Runs several writing statements (e.g. a segment sync's batch); returns the rows
    /// affected by each.
    ///
    /// A backend with transactions overrides this to run them in one transaction (all
    /// or none); the default runs them one after another and stops at the first error,
    /// so statements before it stay applied. [`ExternalSource::batches_are_atomic`] tells
    /// which: SQLite, PostgreSQL and MySQL/MariaDB run a batch in one transaction
    /// (bounded as a whole by the call's timeout); ClickHouse and Hive have no
    /// transactions and keep the default.
    async fn execute_batch(
        &self,
        statements: &[Statement],
        options: &QueryOptions,
    ) -> Result<Vec<u64>> {
        let mut affected = Vec::with_capacity(statements.len());
        for statement in statements {
            affected.push(self.execute(statement, options).await?);
        }
        Ok(affected)
    }

    /// Whether [`execute_batch`](ExternalSource::execute_batch) runs in one transaction.
    fn batches_are_atomic(&self) -> bool {
        false
    }

    /// The columns a query would return, without running it for its rows.
    async fn describe(&self, statement: &Statement, options: &QueryOptions) -> Result<Vec<Column>>;

    /// Closes the pool; later calls fail with [`ErrorKind::Closed`](crate::ErrorKind::Closed).
    async fn close(&self);

    /// This source as [`Any`](std::any::Any), so that a caller holding an
    /// `Arc<dyn ExternalSource>` can reach a backend's own API — e.g. the facade's
    /// `extdata::stream_batches` finds a ClickHouse source (through its instrumentation
    /// wrapper) to read Arrow batches column by column. `None` (the default): the source
    /// offers nothing beyond this trait, and such callers use its rows.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}
