//! The one instrumentation layer every source is wrapped in: tracing spans and metrics,
//! so that no backend repeats them.
//!
//! Spans and metrics carry the connector, its type, the operation, the duration, the
//! rows and the error kind — never parameter values, SQL parameters or secrets. Errors
//! that leave a call (and errors inside a stream) have the call's bound values redacted
//! ([`Error::redact_parameters`]): servers quote offending values in some messages.
//!
//! Metrics (through the [`metrics`] facade; install any recorder to collect them):
//! - `extdata_calls_total{connector, type, operation, outcome}` — counter; `outcome` is
//!   `ok` or the error kind (`timeout`, `auth`, …).
//! - `extdata_call_duration_seconds{connector, type, operation}` — histogram.
//! - `extdata_rows_total{connector, type, operation}` — counter of rows returned or
//!   affected.
//!
//! A call made for an account ([`for_account`]) also has the label `account`, and its
//! span the field `account`: a connector shared by several accounts reports each
//! account's calls apart.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use extdata_core::{
    Column, DbKind, Error, ExternalSource, QueryOptions, Result, ResultSet, Row, RowStream,
    ServerInfo, Statement,
};
use futures::Stream;
use tracing::Instrument as _;

tokio::task_local! {
    /// The account the calls of the current task are made for.
    static ACCOUNT: Arc<str>;
}

/// Runs `work` for `account`: every call of an instrumented source that `work` makes
/// (in its own task) carries the account, as the `account` label of its metrics and the
/// `account` field of its span. A scope inside another replaces it for its duration.
///
/// ```
/// # async fn example(source: std::sync::Arc<dyn extdata::ExternalSource>) {
/// // Counted as `extdata_calls_total{account="42", connector=…, operation="ping", …}`.
/// let pinged = extdata::for_account("42", async { source.ping().await }).await;
/// # }
/// ```
pub fn for_account<F: Future>(account: &str, work: F) -> impl Future<Output = F::Output> + use<F> {
    ACCOUNT.scope(Arc::from(account), work)
}

/// The account the current task's calls are made for, inside [`for_account`].
pub fn current_account() -> Option<Arc<str>> {
    ACCOUNT.try_with(Arc::clone).ok()
}

/// A source wrapped with tracing spans and metrics. [`crate::connect`] returns sources
/// already wrapped; wrap your own [`ExternalSource`] with [`Instrumented::new`].
pub struct Instrumented {
    inner: Arc<dyn ExternalSource>,
}

impl Instrumented {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ExternalSource>) -> Self {
        Instrumented { inner }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &Arc<dyn ExternalSource> {
        &self.inner
    }

    /// Runs `work` (a call of the wrapped source) as `operation`: inside its span, with
    /// its error passed through `redact`, and recorded ([`CallRecord`]) with the rows
    /// `rows` counts in its value.
    async fn call<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T>>,
        redact: impl FnOnce(Error) -> Error,
        rows: impl FnOnce(&T) -> Option<u64>,
    ) -> Result<T> {
        let span = self.span(operation);
        let record = CallRecord::new(self.inner.as_ref(), operation, span.clone());
        let result = work.instrument(span).await.map_err(redact);
        match &result {
            Ok(value) => record.finish(rows(value), None),
            Err(err) => record.finish(None, Some(err)),
        }
        result
    }

    pub(crate) fn span(&self, operation: &'static str) -> tracing::Span {
        let span = tracing::info_span!(
            "extdata.call",
            account = tracing::field::Empty,
            connector = self.inner.name(),
            r#type = self.inner.kind().as_str(),
            operation,
            duration_ms = tracing::field::Empty,
            rows = tracing::field::Empty,
            error_kind = tracing::field::Empty,
        );
        if let Some(account) = current_account() {
            span.record("account", &*account);
        }
        span
    }
}

/// Records the end of one call: span fields, a log event, metrics.
pub(crate) struct CallRecord {
    /// Taken when the call starts: a stream may end (or be dropped) outside the scope.
    account: Option<Arc<str>>,
    connector: String,
    kind: DbKind,
    operation: &'static str,
    started: Instant,
    span: tracing::Span,
}

impl CallRecord {
    pub(crate) fn new(
        source: &dyn ExternalSource,
        operation: &'static str,
        span: tracing::Span,
    ) -> Self {
        CallRecord {
            account: current_account(),
            connector: source.name().to_owned(),
            kind: source.kind(),
            operation,
            started: Instant::now(),
            span,
        }
    }

    pub(crate) fn finish(&self, rows: Option<u64>, error: Option<&Error>) {
        let elapsed = self.started.elapsed();
        let millis = elapsed.as_secs_f64() * 1000.0;
        self.span.record("duration_ms", millis);
        if let Some(rows) = rows {
            self.span.record("rows", rows);
        }
        let mut labels = Vec::with_capacity(5);
        if let Some(account) = &self.account {
            labels.push(("account", account.to_string()));
        }
        labels.extend([
            ("connector", self.connector.clone()),
            ("type", self.kind.as_str().to_owned()),
            ("operation", self.operation.to_owned()),
        ]);
        let outcome = match error {
            Some(err) => {
                self.span.record("error_kind", err.kind().as_str());
                // The error's Display is safe to log: it never holds a secret.
                tracing::warn!(parent: &self.span, error_kind = err.kind().as_str(), error = %err, duration_ms = millis, "extdata call failed");
                err.kind().as_str()
            }
            None => {
                tracing::debug!(parent: &self.span, duration_ms = millis, rows, "extdata call finished");
                "ok"
            }
        };
        let mut with_outcome = labels.clone();
        with_outcome.push(("outcome", outcome.to_owned()));
        metrics::counter!("extdata_calls_total", &with_outcome).increment(1);
        metrics::histogram!("extdata_call_duration_seconds", &labels).record(elapsed.as_secs_f64());
        if let Some(rows) = rows {
            metrics::counter!("extdata_rows_total", &labels).increment(rows);
        }
    }
}

impl fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Instrumented").field(&self.inner).finish()
    }
}

#[async_trait]
impl ExternalSource for Instrumented {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> DbKind {
        self.inner.kind()
    }

    async fn ping(&self) -> Result<ServerInfo> {
        let ping = self.inner.ping();
        self.call("ping", ping, |e| e, |_| None).await
    }

    async fn query(&self, statement: &Statement, options: &QueryOptions) -> Result<ResultSet> {
        let query = self.inner.query(statement, options);
        let redact = |e: Error| e.redact_parameters(statement);
        self.call("query", query, redact, |set| Some(set.rows.len() as u64))
            .await
    }

    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream> {
        let span = self.span("stream");
        let record = CallRecord::new(self.inner.as_ref(), "stream", span.clone());
        match self.inner.stream(statement, options).instrument(span).await {
            Ok(stream) => {
                let columns = stream.columns().clone();
                Ok(RowStream::new(
                    columns,
                    Counting::new(stream, record, statement),
                ))
            }
            Err(err) => {
                let err = err.redact_parameters(statement);
                record.finish(None, Some(&err));
                Err(err)
            }
        }
    }

    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        let execute = self.inner.execute(statement, options);
        let redact = |e: Error| e.redact_parameters(statement);
        self.call("execute", execute, redact, |rows| Some(*rows))
            .await
    }

    async fn execute_batch(
        &self,
        statements: &[Statement],
        options: &QueryOptions,
    ) -> Result<Vec<u64>> {
        let batch = self.inner.execute_batch(statements, options);
        let redact = |e: Error| {
            statements
                .iter()
                .fold(e, |e, statement| e.redact_parameters(statement))
        };
        self.call("execute_batch", batch, redact, |rows| {
            Some(rows.iter().sum())
        })
        .await
    }

    fn batches_are_atomic(&self) -> bool {
        self.inner.batches_are_atomic()
    }

    async fn describe(&self, statement: &Statement, options: &QueryOptions) -> Result<Vec<Column>> {
        let describe = self.inner.describe(statement, options);
        let redact = |e: Error| e.redact_parameters(statement);
        self.call("describe", describe, redact, |_| None).await
    }

    async fn close(&self) {
        let close = async {
            self.inner.close().await;
            Ok(())
        };
        let _ = self.call("close", close, |e| e, |_| None).await;
    }

    /// `Some(self)`: [`crate::stream_batches`] instruments its call and reaches the
    /// wrapped source through [`Instrumented::inner`].
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// What a counted stream yields: something of a number of rows.
pub(crate) trait RowCount {
    /// The rows it holds.
    fn row_count(&self) -> u64;
}

impl RowCount for Row {
    fn row_count(&self) -> u64 {
        1
    }
}

/// A stream of a call's result (rows, or Arrow batches) that counts its rows, redacts
/// the bound values from an error mid-stream and records the call when it ends, fails
/// or is dropped early.
pub(crate) struct Counting<S> {
    inner: S,
    rows: u64,
    record: Option<CallRecord>,
    /// For redacting its values from an error mid-stream.
    statement: Statement,
}

impl<S> Counting<S> {
    pub(crate) fn new(inner: S, record: CallRecord, statement: &Statement) -> Counting<S> {
        Counting {
            inner,
            rows: 0,
            record: Some(record),
            statement: statement.clone(),
        }
    }
}

impl<S, T> Stream for Counting<S>
where
    S: Stream<Item = Result<T>> + Unpin,
    T: RowCount,
{
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Err(err))) => {
                Poll::Ready(Some(Err(err.redact_parameters(&this.statement))))
            }
            other => other,
        };
        match &polled {
            Poll::Ready(Some(Ok(item))) => this.rows += item.row_count(),
            Poll::Ready(Some(Err(err))) => {
                if let Some(record) = this.record.take() {
                    record.finish(Some(this.rows), Some(err));
                }
            }
            Poll::Ready(None) => {
                if let Some(record) = this.record.take() {
                    record.finish(Some(this.rows), None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for Counting<S> {
    fn drop(&mut self) {
        // Dropped before the end: the consumer stopped early, which is not an error.
        if let Some(record) = self.record.take() {
            record.finish(Some(self.rows), None);
        }
    }
}
