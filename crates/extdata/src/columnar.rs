//! Results as Arrow batches (feature `arrow`): [`stream_batches`] reads a ClickHouse,
//! PostgreSQL or MySQL/MariaDB source through its own columnar path
//! (`ClickHouseSource::stream_batches`, `PostgresSource::stream_batches`,
//! `MySqlSource::stream_batches`: wire values decoded straight into Arrow arrays) and
//! every other source through its rows (`ExternalSource::stream` gathered by
//! `extdata_arrow::BatchStream::from_rows`); the schema and values are the same either
//! way.

use extdata_arrow::{BatchLimits, BatchStream};
use extdata_core::{ExternalSource, QueryOptions, Result, Statement};
use tracing::Instrument as _;

use crate::instrument::{CallRecord, Counting, Instrumented, RowCount};

/// Runs `statement` on `source` and streams its result as Arrow record batches of at
/// most `limits.rows` rows (and about `limits.bytes` bytes), one batch in memory at a
/// time.
///
/// A ClickHouse source (feature `clickhouse`) decodes its Native blocks straight into
/// Arrow arrays, a PostgreSQL (feature `postgres`) or MySQL/MariaDB (feature `mysql`)
/// source its wire values, also behind the instrumentation of [`crate::connect`] and
/// [`crate::Registry`] (see [`decodes_columnar`]); any other source's rows are gathered
/// into batches. The schema is
/// `extdata_arrow::schema` of the result's columns, the values are those of the row path,
/// and timeouts, server-side cancel and `read_only` hold as for
/// [`ExternalSource::stream`]. An instrumented source records the call as operation
/// `stream_batches` (its rows counted as the batches arrive) and redacts the bound values
/// from its errors.
///
/// ```no_run
/// # async fn demo(source: std::sync::Arc<dyn extdata::ExternalSource>) -> extdata::Result<()> {
/// use futures::StreamExt as _;
/// let statement = extdata::Statement::new("SELECT * FROM orders");
/// let mut batches = extdata::stream_batches(
///     source.as_ref(),
///     &statement,
///     &extdata::QueryOptions::default(),
///     extdata_arrow::BatchLimits::default(),
/// )
/// .await?;
/// while let Some(batch) = batches.next().await {
///     println!("{} rows", batch?.num_rows());
/// }
/// # Ok(()) }
/// ```
pub async fn stream_batches(
    source: &dyn ExternalSource,
    statement: &Statement,
    options: &QueryOptions,
    limits: BatchLimits,
) -> Result<BatchStream> {
    let any = source.as_any();
    if let Some(instrumented) = any.and_then(|any| any.downcast_ref::<Instrumented>()) {
        return instrumented_batches(instrumented, statement, options, limits).await;
    }
    #[cfg(feature = "clickhouse")]
    if let Some(clickhouse) =
        any.and_then(|any| any.downcast_ref::<extdata_clickhouse::ClickHouseSource>())
    {
        return clickhouse.stream_batches(statement, options, limits).await;
    }
    #[cfg(feature = "postgres")]
    if let Some(postgres) =
        any.and_then(|any| any.downcast_ref::<extdata_postgres::PostgresSource>())
    {
        return postgres.stream_batches(statement, options, limits).await;
    }
    #[cfg(feature = "mysql")]
    if let Some(mysql) = any.and_then(|any| any.downcast_ref::<extdata_mysql::MySqlSource>()) {
        return mysql.stream_batches(statement, options, limits).await;
    }
    let rows = source.stream(statement, options).await?;
    Ok(BatchStream::from_rows(rows, limits))
}

/// Whether [`stream_batches`] decodes `source`'s wire format straight into Arrow arrays
/// (a ClickHouse, PostgreSQL or MySQL/MariaDB source whose feature is on, also behind
/// the instrumentation) rather than gathering its rows into batches.
pub fn decodes_columnar(source: &dyn ExternalSource) -> bool {
    let Some(any) = source.as_any() else {
        return false;
    };
    if let Some(instrumented) = any.downcast_ref::<Instrumented>() {
        return decodes_columnar(instrumented.inner().as_ref());
    }
    #[cfg(feature = "clickhouse")]
    if any.is::<extdata_clickhouse::ClickHouseSource>() {
        return true;
    }
    #[cfg(feature = "postgres")]
    if any.is::<extdata_postgres::PostgresSource>() {
        return true;
    }
    #[cfg(feature = "mysql")]
    if any.is::<extdata_mysql::MySqlSource>() {
        return true;
    }
    false
}

/// Whether [`stream_batches`] hands out what the server sent as soon as it arrives (a
/// ClickHouse source, also behind the instrumentation: a batch never waits for the next
/// Native block). Every other source's batches, columnar or gathered from rows, wait
/// until they are full or the result ends; a caller that must show the rows of a slow
/// result as they come (e.g. writing a short batch whenever the server makes it wait)
/// reads those sources' rows instead.
pub fn batches_as_received(source: &dyn ExternalSource) -> bool {
    let Some(any) = source.as_any() else {
        return false;
    };
    if let Some(instrumented) = any.downcast_ref::<Instrumented>() {
        return batches_as_received(instrumented.inner().as_ref());
    }
    #[cfg(feature = "clickhouse")]
    if any.is::<extdata_clickhouse::ClickHouseSource>() {
        return true;
    }
    false
}

/// [`stream_batches`] of the wrapped source, inside the call's span, recorded when the
/// batches end (or are dropped), with bound values redacted from errors.
async fn instrumented_batches(
    source: &Instrumented,
    statement: &Statement,
    options: &QueryOptions,
    limits: BatchLimits,
) -> Result<BatchStream> {
    let inner = source.inner().as_ref();
    let span = source.span("stream_batches");
    let record = CallRecord::new(inner, "stream_batches", span.clone());
    // Boxed: the call recurses into the wrapped source.
    let call = Box::pin(stream_batches(inner, statement, options, limits));
    match call.instrument(span).await {
        Ok(batches) => {
            let columns = batches.columns().clone();
            Ok(BatchStream::new(
                columns,
                Counting::new(batches, record, statement),
            ))
        }
        Err(err) => {
            let err = err.redact_parameters(statement);
            record.finish(None, Some(&err));
            Err(err)
        }
    }
}

impl RowCount for arrow_array::RecordBatch {
    fn row_count(&self) -> u64 {
        self.num_rows() as u64
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use extdata_core::{ConnectorConfig, DbKind};
    use futures::StreamExt as _;

    /// A ClickHouse source decodes columnar, also behind the instrumentation (no I/O).
    #[cfg(feature = "clickhouse")]
    #[test]
    fn clickhouse_sources_decode_columnar() {
        let config = ConnectorConfig::new("ch", DbKind::ClickHouse).with_host("127.0.0.1");
        let source = crate::connect(&config).unwrap();
        assert!(decodes_columnar(source.as_ref()));
    }

    /// A source that is not a ClickHouse one reads through its rows: the batches are the
    /// row path's, also behind the instrumentation.
    #[tokio::test]
    async fn other_sources_read_batches_through_their_rows() {
        let config = ConnectorConfig::new("local", DbKind::Sqlite).with_database(":memory:");
        let source = crate::connect(&config).unwrap();
        let statement = Statement::new(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) \
             SELECT x, 'n' || x AS name FROM c",
        );
        let limits = BatchLimits {
            rows: 4,
            ..BatchLimits::default()
        };
        let options = QueryOptions::default();
        let batches = stream_batches(source.as_ref(), &statement, &options, limits)
            .await
            .unwrap();
        let schema = batches.schema().clone();
        let sizes: Vec<usize> = batches
            .map(|batch| batch.unwrap().num_rows())
            .collect()
            .await;
        assert_eq!(sizes, [4, 4, 2]);
        let rows = source.stream(&statement, &options).await.unwrap();
        let (expected, _) = BatchStream::from_rows(rows, limits)
            .collect_all()
            .await
            .unwrap();
        assert_eq!(schema, expected);
        assert!(source.as_any().is_some_and(|any| any.is::<Instrumented>()));
    }
}
