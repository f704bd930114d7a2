//! The columnar read path against the row path (feature `arrow`): a backend's
//! `stream_batches` must give exactly the record batches of
//! `BatchStream::from_rows` over `ExternalSource::stream` — the same schema, the same
//! arrays batch for batch, or the same error after the same batches.
//!
//! ```text
//! let paths = Paths::new(&pg, |source, statement, options, limits| {
//!     Box::pin(source.stream_batches(statement, options, limits))
//! });
//! assert_eq!(paths.assert_same("SELECT 1 AS x").await, 1);
//! ```

use extdata_arrow::{BatchLimits, BatchStream, RecordBatch};
use extdata_core::{ExternalSource, QueryOptions, Result, Statement};
use futures::future::BoxFuture;

/// One-row batches: both paths cut there, so a failing row leaves the same batches.
pub const ONE_ROW: BatchLimits = BatchLimits {
    rows: 1,
    bytes: usize::MAX,
};

/// How a test reads a result column by column: the backend's `stream_batches`.
pub type Columnar<S> = for<'a> fn(
    &'a S,
    &'a Statement,
    &'a QueryOptions,
    BatchLimits,
) -> BoxFuture<'a, Result<BatchStream>>;

/// A source read both ways.
pub struct Paths<'s, S: ?Sized> {
    source: &'s S,
    columnar: Columnar<S>,
}

impl<S: ?Sized> std::fmt::Debug for Paths<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paths").finish_non_exhaustive()
    }
}

impl<'s, S: ExternalSource + ?Sized> Paths<'s, S> {
    /// `source`, read column by column with `columnar`.
    pub fn new(source: &'s S, columnar: Columnar<S>) -> Self {
        Paths { source, columnar }
    }

    /// The batches of `statement` read by the row path and by the columnar path with
    /// `limits` (an error as its text); asserts that both have the same schema. A call
    /// that fails before its first row panics.
    pub async fn both(
        &self,
        statement: &Statement,
        limits: BatchLimits,
    ) -> (
        std::result::Result<Vec<RecordBatch>, String>,
        std::result::Result<Vec<RecordBatch>, String>,
    ) {
        let options = QueryOptions::default();
        let rows = self
            .source
            .stream(statement, &options)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", statement.sql()));
        let by_rows = BatchStream::from_rows(rows, limits);
        let row_schema = by_rows.schema().clone();
        let by_rows = by_rows.collect_all().await;
        let columnar = (self.columnar)(self.source, statement, &options, limits)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", statement.sql()));
        assert_eq!(
            columnar.schema(),
            &row_schema,
            "{}: schema",
            statement.sql()
        );
        let by_columns = columnar.collect_all().await;
        (
            by_rows.map(|(_, b)| b).map_err(|e| e.to_string()),
            by_columns.map(|(_, b)| b).map_err(|e| e.to_string()),
        )
    }

    /// Asserts that `sql` reads the same on both paths, array for array, at each of
    /// `limits`; returns the number of rows.
    pub async fn assert_same_at(&self, sql: &str, limits: &[BatchLimits]) -> usize {
        let statement = Statement::new(sql);
        let mut rows = 0;
        for &limits in limits {
            let (by_rows, by_columns) = self.both(&statement, limits).await;
            let by_rows = by_rows.unwrap_or_else(|e| panic!("{sql}: rows: {e}"));
            let by_columns = by_columns.unwrap_or_else(|e| panic!("{sql}: batches: {e}"));
            assert_eq!(by_columns.len(), by_rows.len(), "{sql}: batches");
            for (i, (columns, rows)) in by_columns.iter().zip(&by_rows).enumerate() {
                for (c, field) in rows.schema().fields().iter().enumerate() {
                    assert_eq!(
                        columns.column(c).as_ref(),
                        rows.column(c).as_ref(),
                        "{sql}: batch {i}, column `{}` ({})",
                        field.name(),
                        field.data_type()
                    );
                }
                assert_eq!(columns, rows, "{sql}: batch {i}");
            }
            rows = by_rows.iter().map(RecordBatch::num_rows).sum();
        }
        rows
    }

    /// [`Paths::assert_same_at`] one row per batch and at the default limits.
    pub async fn assert_same(&self, sql: &str) -> usize {
        self.assert_same_at(sql, &[ONE_ROW, BatchLimits::default()])
            .await
    }

    /// Asserts that `sql` fails the same way on both paths, after the same one-row
    /// batches; returns the error's text.
    pub async fn assert_same_error(&self, sql: &str) -> String {
        let (by_rows, by_columns) = self.both(&Statement::new(sql), ONE_ROW).await;
        let error = by_rows.expect_err(sql);
        assert_eq!(by_columns.expect_err(sql), error, "{sql}");
        error
    }
}
