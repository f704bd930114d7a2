//! Partitioned parallel reads: one query split on an integer column into ranges, read
//! concurrently on pooled connections and merged into one [`RowStream`].

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use extdata_core::{
    Error, ErrorKind, ExternalSource, QueryOptions, Result, RowStream, Statement, Value,
};

/// Parameter names of the range bounds (chosen not to collide with a caller's).
const LOW: &str = "extdata_partition_low";
const HIGH: &str = "extdata_partition_high";

/// Reads `statement` as `partitions` concurrent range queries on `column` and merges
/// their rows (in no particular order across partitions).
///
/// `column` must be an integer column of the result, named by a plain identifier
/// (letters, digits, `_`). Its `MIN` and `MAX` are read first; the range between them
/// is cut into `partitions` equal parts, each read with
/// `SELECT * FROM (<statement>) extdata_p WHERE <range>` on its own pooled connection.
/// The first range also takes the rows whose `column` is NULL and the last one has no
/// upper bound, so every row of the result is read exactly once even when rows arrive
/// between the bounds query and the reads. With one partition, or when the result is
/// empty, the statement runs as it is.
///
/// The source's pool should hold at least `partitions` connections: partitions that
/// find no free connection start when an earlier one finishes. The first error ends the
/// stream, and dropping the stream stops every partition's query.
///
/// ```no_run
/// # async fn demo(source: std::sync::Arc<dyn extdata::ExternalSource>) -> extdata::Result<()> {
/// use futures::StreamExt;
/// let statement = extdata::Statement::new("SELECT id, email FROM customers");
/// let mut rows = extdata::stream_partitioned(
///     &source, &statement, "id", 4, &extdata::QueryOptions::default(),
/// ).await?;
/// while let Some(row) = rows.next().await {
///     let row = row?;
/// }
/// # Ok(()) }
/// ```
pub async fn stream_partitioned(
    source: &Arc<dyn ExternalSource>,
    statement: &Statement,
    column: &str,
    partitions: usize,
    options: &QueryOptions,
) -> Result<RowStream> {
    let Some(statements) =
        partition_statements(source.as_ref(), statement, column, partitions, options).await?
    else {
        return source.stream(statement, options).await;
    };
    // The first partition opens now: its columns are the result's, and a statement the
    // server refuses fails here rather than mid-stream.
    let mut statements = statements.into_iter();
    let first = match statements.next() {
        Some(first) => source.stream(&first, options).await?,
        None => return source.stream(statement, options).await,
    };
    let columns = first.columns().clone();
    let options = *options;
    let rest = statements.map(move |partition| {
        let source = Arc::clone(source);
        futures::stream::once(async move { source.stream(&partition, &options).await })
            .try_flatten()
            .boxed()
    });
    Ok(RowStream::new(
        columns,
        merge(first.boxed(), rest.collect()),
    ))
}

/// As [`stream_partitioned`], into Arrow record batches: each partition is read with
/// [`crate::stream_batches`] (columnar where the source decodes columnar) and the
/// partitions' batches are merged as they come (in no particular order across
/// partitions). The same splitting, the same rules: with one partition, or when the
/// result is empty, the statement runs as it is; the first error ends the stream;
/// dropping it stops every partition's query. Each partition holds one batch of at most
/// `limits` in memory at a time.
#[cfg(feature = "arrow")]
pub async fn stream_batches_partitioned(
    source: &Arc<dyn ExternalSource>,
    statement: &Statement,
    column: &str,
    partitions: usize,
    options: &QueryOptions,
    limits: extdata_arrow::BatchLimits,
) -> Result<extdata_arrow::BatchStream> {
    let Some(statements) =
        partition_statements(source.as_ref(), statement, column, partitions, options).await?
    else {
        return crate::stream_batches(source.as_ref(), statement, options, limits).await;
    };
    let mut statements = statements.into_iter();
    let first = match statements.next() {
        Some(first) => crate::stream_batches(source.as_ref(), &first, options, limits).await?,
        None => return crate::stream_batches(source.as_ref(), statement, options, limits).await,
    };
    let columns = first.columns().clone();
    let options = *options;
    let rest = statements.map(move |partition| {
        let source = Arc::clone(source);
        futures::stream::once(async move {
            crate::stream_batches(source.as_ref(), &partition, &options, limits).await
        })
        .try_flatten()
        .boxed()
    });
    Ok(extdata_arrow::BatchStream::new(
        columns,
        merge(first.boxed(), rest.collect()),
    ))
}

/// The statements of the partitions of `statement` on `column` (see
/// [`stream_partitioned`]), or `None` when it must run as it is (one partition, an empty
/// result, only NULLs in the column).
async fn partition_statements(
    source: &dyn ExternalSource,
    statement: &Statement,
    column: &str,
    partitions: usize,
    options: &QueryOptions,
) -> Result<Option<Vec<Statement>>> {
    if !is_plain_identifier(column) {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "partition column `{column}` must be a plain column name (letters, digits, `_`)"
            ),
        )
        .with_connector(source.name()));
    }
    if partitions <= 1 {
        return Ok(None);
    }
    let inner = statement
        .sql()
        .trim_end()
        .trim_end_matches(';')
        .trim_end()
        .to_owned();
    let bounds = with_params(
        format!("SELECT MIN({column}), MAX({column}) FROM ({inner}) extdata_p"),
        statement,
    );
    let result = source.query(&bounds, options).await?;
    let row = result.rows.first();
    let low = row.and_then(|r| r.get(0)).map_or(Ok(None), integer);
    let high = row.and_then(|r| r.get(1)).map_or(Ok(None), integer);
    let (low, high) = match (low, high) {
        (Ok(Some(low)), Ok(Some(high))) => (low, high),
        // No rows, or only NULLs in the column: nothing to split.
        (Ok(None), _) | (_, Ok(None)) => return Ok(None),
        (Err(kind), _) | (_, Err(kind)) => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("partition column `{column}` must hold integers, not {kind}"),
            )
            .with_connector(source.name()));
        }
    };
    let cuts = split(low, high, partitions);
    let mut statements = Vec::with_capacity(cuts.len() + 1);
    let last = cuts.len();
    for index in 0..=last {
        let (condition, lower, upper) = match index {
            0 => (
                format!("({column} < :{HIGH} OR {column} IS NULL)"),
                None,
                cuts.first(),
            ),
            i if i == last => (format!("{column} >= :{LOW}"), cuts.last(), None),
            i => (
                format!("{column} >= :{LOW} AND {column} < :{HIGH}"),
                cuts.get(i - 1),
                cuts.get(i),
            ),
        };
        let mut partition = with_params(
            format!("SELECT * FROM ({inner}) extdata_p WHERE {condition}"),
            statement,
        );
        if let Some(&lower) = lower {
            partition.set(LOW, lower);
        }
        if let Some(&upper) = upper {
            partition.set(HIGH, upper);
        }
        statements.push(partition);
    }
    Ok(Some(statements))
}

/// The items of the first partition (already open) and of the `rest` (each opening when
/// first polled, so that a partition waiting for a connection does not hold up those
/// already reading), as they come; the first error ends the stream (dropping the other
/// partitions stops their queries).
fn merge<T: Send + 'static>(
    first: BoxStream<'static, Result<T>>,
    rest: Vec<BoxStream<'static, Result<T>>>,
) -> impl futures::Stream<Item = Result<T>> + Send {
    futures::stream::select_all(std::iter::once(first).chain(rest)).scan(false, |failed, item| {
        let next = if *failed {
            None
        } else {
            *failed = item.is_err();
            Some(item)
        };
        std::future::ready(next)
    })
}

/// A statement with `sql` and the parameters of `original`.
fn with_params(sql: String, original: &Statement) -> Statement {
    let mut statement = Statement::new(sql);
    for (name, value) in original.params() {
        statement.set(name.clone(), value.clone());
    }
    statement
}

fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An integer bound; `Ok(None)` for NULL, `Err(kind)` for a value that is no integer.
fn integer(value: &Value) -> std::result::Result<Option<i64>, String> {
    let not_integer = || value.kind().to_string();
    match value {
        Value::Null => Ok(None),
        Value::I8(v) => Ok(Some((*v).into())),
        Value::I16(v) => Ok(Some((*v).into())),
        Value::I32(v) => Ok(Some((*v).into())),
        Value::I64(v) => Ok(Some(*v)),
        Value::U8(v) => Ok(Some((*v).into())),
        Value::U16(v) => Ok(Some((*v).into())),
        Value::U32(v) => Ok(Some((*v).into())),
        Value::U64(v) => i64::try_from(*v).map(Some).map_err(|_| not_integer()),
        // Some servers return MIN/MAX of an integer as a decimal or as text.
        Value::Decimal(d) => d.as_str().parse().map(Some).map_err(|_| not_integer()),
        Value::Text(t) => t.trim().parse().map(Some).map_err(|_| not_integer()),
        _ => Err(not_integer()),
    }
}

/// The `partitions - 1` cut points that divide `low..=high` into equal ranges (fewer
/// when the range holds fewer values than partitions).
fn split(low: i64, high: i64, partitions: usize) -> Vec<i64> {
    let span = i128::from(high) - i128::from(low) + 1;
    let parts = (partitions as i128).min(span.max(1));
    (1..parts)
        .map(|k| (i128::from(low) + span * k / parts) as i64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cuts_equal_ranges() {
        assert_eq!(split(1, 100, 4), vec![26, 51, 76]);
        assert_eq!(split(1, 2, 4), vec![2]);
        assert_eq!(split(5, 5, 4), Vec::<i64>::new());
        assert_eq!(split(i64::MIN, i64::MAX, 2), vec![0]);
    }

    #[test]
    fn only_plain_identifiers_are_accepted() {
        assert!(is_plain_identifier("customer_id"));
        assert!(is_plain_identifier("_x1"));
        assert!(!is_plain_identifier("1x"));
        assert!(!is_plain_identifier("id; DROP TABLE t"));
        assert!(!is_plain_identifier(""));
    }

    #[test]
    fn bounds_read_integers_from_any_width() {
        assert_eq!(integer(&Value::I32(-3)), Ok(Some(-3)));
        assert_eq!(integer(&Value::Text(" 42 ".into())), Ok(Some(42)));
        assert_eq!(integer(&Value::Null), Ok(None));
        assert!(integer(&Value::F64(1.5)).is_err());
        assert!(integer(&Value::U64(u64::MAX)).is_err());
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partitions_read_every_row_once_including_nulls() {
        use extdata_core::{ConnectorConfig, DbKind, PoolConfig, Scalar};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.db");
        let config = ConnectorConfig::new("parts", DbKind::Sqlite)
            .with_database(path.to_string_lossy().into_owned())
            .with_options("mode=rwc")
            .with_pool(PoolConfig {
                max_size: Some(Scalar::Int(2)),
                ..PoolConfig::default()
            });
        let source = crate::connect(&config).expect("connect");
        let options = QueryOptions::default();
        source
            .execute(
                &Statement::new("CREATE TABLE t (id INTEGER, v TEXT)"),
                &options,
            )
            .await
            .expect("create");
        source
            .execute(
                &Statement::new(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
                     INSERT INTO t SELECT i, 'v' || i FROM n",
                ),
                &options,
            )
            .await
            .expect("fill");
        source
            .execute(
                &Statement::new("INSERT INTO t VALUES (NULL, 'a'), (NULL, 'b')"),
                &options,
            )
            .await
            .expect("nulls");
        let statement = Statement::new("SELECT id, v FROM t WHERE v <> :skip;").bind("skip", "v7");
        // More partitions than the pool has connections: the later ones wait their turn.
        for partitions in [1, 2, 4, 5000] {
            let rows: Vec<_> = stream_partitioned(&source, &statement, "id", partitions, &options)
                .await
                .expect("stream")
                .try_collect()
                .await
                .expect("rows");
            let mut ids: Vec<Option<i64>> = rows
                .iter()
                .map(|r| r.get(0).and_then(Value::as_i64))
                .collect();
            ids.sort();
            let mut expected: Vec<Option<i64>> = vec![None, None];
            expected.extend((1..=1000).filter(|i| *i != 7).map(Some));
            assert_eq!(ids, expected, "{partitions} partitions");
        }
        let err = stream_partitioned(&source, &statement, "v", 2, &options)
            .await
            .expect_err("text column");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        let err = stream_partitioned(&source, &statement, "id) OR (1=1", 2, &options)
            .await
            .expect_err("not an identifier");
        assert_eq!(err.kind(), ErrorKind::Config);
    }
}
