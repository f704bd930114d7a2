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

/// The batches of a `stream_batches` call: the error of the call, or of any batch.
pub async fn all_batches(
    call: impl std::future::Future<Output = Result<BatchStream>>,
) -> Result<Vec<RecordBatch>> {
    call.await?.collect_all().await.map(|(_, batches)| batches)
}

/// The number of rows of each batch.
pub fn batch_sizes(batches: &[RecordBatch]) -> Vec<usize> {
    batches.iter().map(RecordBatch::num_rows).collect()
}

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

    /// The columnar read of `statement` (see [`all_batches`]).
    pub async fn columnar(
        &self,
        statement: &Statement,
        options: &QueryOptions,
        limits: BatchLimits,
    ) -> Result<Vec<RecordBatch>> {
        all_batches((self.columnar)(self.source, statement, options, limits)).await
    }

    /// The row counts of the columnar batches of `sql` at `limits`; panics on an error.
    pub async fn sizes(&self, sql: &str, limits: BatchLimits) -> Vec<usize> {
        let batches = self
            .columnar(&Statement::new(sql), &QueryOptions::default(), limits)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        batch_sizes(&batches)
    }

    /// Asserts how batches are cut, on both paths alike: `ten_rows` — 10 rows of an
    /// integer column of 4 or 8 bytes and a text column of 92 bytes, 100 to 104 bytes a
    /// row — at 4 rows a batch is `[4, 4, 2]` and at 250 bytes `[3, 3, 3, 1]` (a batch
    /// ends with the row that reaches the limit); `empty`, a result of no rows, has no
    /// batch at all.
    pub async fn assert_cut_at_the_limits(&self, ten_rows: &str, empty: &str) {
        let cases = [
            (4, usize::MAX, vec![4, 4, 2]),
            (1000, 250, vec![3, 3, 3, 1]),
        ];
        for (rows, bytes, expected) in cases {
            let limits = BatchLimits { rows, bytes };
            let (by_rows, by_columns) = self.both(&Statement::new(ten_rows), limits).await;
            let by_columns = by_columns.unwrap_or_else(|e| panic!("{ten_rows}: {e}"));
            assert_eq!(batch_sizes(&by_columns), expected, "{limits:?}");
            assert_eq!(Ok(by_columns), by_rows, "{limits:?}");
        }
        let (by_rows, by_columns) = self
            .both(&Statement::new(empty), BatchLimits::default())
            .await;
        assert_eq!(by_columns, Ok(Vec::new()), "{empty}");
        assert_eq!(by_rows, Ok(Vec::new()), "{empty}");
    }

    /// Asserts that a hostile result stays within the limits of 1,000 rows and 1 MiB a
    /// batch: `three_large` — 3 rows of a cell larger than 1 MiB each — comes one row a
    /// batch, and `tiny` — 2,500 rows of one NULL — in batches of 1,000.
    pub async fn assert_large_and_tiny_rows_bounded(&self, three_large: &str, tiny: &str) {
        let limits = BatchLimits {
            rows: 1000,
            bytes: 1 << 20,
        };
        assert_eq!(self.sizes(three_large, limits).await, [1, 1, 1]);
        assert_eq!(self.sizes(tiny, limits).await, [1000, 1000, 500]);
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
