//! The facade's Arrow reads (feature `arrow`) against the real PostgreSQL and
//! MariaDB/MySQL servers: `extdata::stream_batches` takes their columnar path behind
//! the instrumentation, redacts bound values from its errors, and
//! `extdata::stream_batches_partitioned` reads the same rows as one unpartitioned read.

use std::sync::Arc;

use arrow_array::RecordBatch;
use extdata::arrow::{BatchLimits, BatchStream};
use extdata::{DbKind, ExternalSource, QueryOptions, Statement};
use extdata_conformance::columnar::all_batches;
use extdata_conformance::support::{TestServer, error_texts};

/// The test server of `kind` (`None`: skipped, unless the run requires it).
async fn server(kind: DbKind) -> Option<TestServer> {
    match kind {
        DbKind::Postgres => {
            TestServer::from_env("pg-test", kind, "POSTGRES", (5432, "/var/run/postgresql")).await
        }
        _ => {
            TestServer::from_env(
                "mysql-test",
                kind,
                "MYSQL",
                (3306, "/run/mysqld/mysqld.sock"),
            )
            .await
        }
    }
}

/// The instrumented source (as `extdata::connect` builds it) of the `kind` test server.
async fn connected(kind: DbKind) -> Option<Arc<dyn ExternalSource>> {
    let server = server(kind).await?;
    Some(extdata::connect(&server.tcp()).expect("connect"))
}

/// The rows of `batches` sorted, each as the text of its values, to compare results
/// read in another order.
fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| arrow_cast_display(c.as_ref()))
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| c[row].clone())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    rows.sort();
    rows
}

/// Each value of `array` as its debug text (`None` for NULL).
fn arrow_cast_display(array: &dyn arrow_array::Array) -> Vec<String> {
    (0..array.len())
        .map(|i| format!("{:?}", array.slice(i, 1)))
        .collect()
}

async fn partitioned_load_equals_the_unpartitioned_one(kind: DbKind) {
    let Some(source) = connected(kind).await else {
        return;
    };
    assert!(extdata::decodes_columnar(source.as_ref()));
    assert!(!extdata::batches_as_received(source.as_ref()));
    let sql = match kind {
        DbKind::Postgres => {
            "SELECT g AS id, md5(g::text) AS name, (g / 7.0)::numeric(12,4) AS amount \
             FROM generate_series(1, 5000) g"
        }
        _ => {
            // Recursion stops at 1000 levels by default: 1000 × 5 rows.
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000), \
             s(id) AS (SELECT (a.n - 1) * 5 + b.n FROM c a, c b WHERE b.n <= 5) \
             SELECT id, md5(id) AS name, CAST(id / 7 AS DECIMAL(12,4)) AS amount FROM s"
        }
    };
    let statement = Statement::new(sql);
    let options = QueryOptions::default();
    let limits = BatchLimits {
        rows: 700,
        ..BatchLimits::default()
    };
    let (schema, whole) = extdata::stream_batches(source.as_ref(), &statement, &options, limits)
        .await
        .expect("stream_batches")
        .collect_all()
        .await
        .expect("batches");
    let rows = source.stream(&statement, &options).await.expect("stream");
    let (_, by_rows) = BatchStream::from_rows(rows, limits)
        .collect_all()
        .await
        .expect("row batches");
    assert_eq!(whole, by_rows, "{kind:?}: columnar and row batches");
    for partitions in [1, 2, 4] {
        let (partitioned_schema, parts) = extdata::stream_batches_partitioned(
            &source, &statement, "id", partitions, &options, limits,
        )
        .await
        .expect("stream_batches_partitioned")
        .collect_all()
        .await
        .expect("partitioned batches");
        assert_eq!(
            partitioned_schema, schema,
            "{kind:?}: {partitions} partitions"
        );
        assert!(parts.iter().all(|b| b.num_rows() <= 700));
        let rows = sorted_rows(&parts);
        assert_eq!(rows.len(), 5000, "{kind:?}: {partitions} partitions");
        assert_eq!(
            rows,
            sorted_rows(&whole),
            "{kind:?}: {partitions} partitions"
        );
    }
}

async fn errors_hold_no_bound_value(kind: DbKind) {
    let Some(source) = connected(kind).await else {
        return;
    };
    const SECRET: &str = "pii-sentinel-2718@example.com";
    // The server's error quotes the value: PostgreSQL's text that is no integer, a
    // procedure's `SIGNAL` on MariaDB/MySQL (their casts only warn).
    let procedure = extdata_conformance::support::unique_name("columnar_signal");
    let sql = match kind {
        DbKind::Postgres => "SELECT CAST(:v AS int) AS n".to_owned(),
        _ => {
            let create = format!(
                "CREATE PROCEDURE {procedure}(v TEXT) SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v"
            );
            source
                .execute(&Statement::new(create), &QueryOptions::default())
                .await
                .expect("create procedure");
            format!("CALL {procedure}(:v)")
        }
    };
    let statement = Statement::new(sql).bind("v", SECRET);
    let error_of = async |source: &dyn ExternalSource| {
        let outcome = all_batches(extdata::stream_batches(
            source,
            &statement,
            &QueryOptions::default(),
            BatchLimits::default(),
        ))
        .await;
        error_texts(&outcome.expect_err("an error quoting the value")).join("\n")
    };
    // The backend's own error quotes the value (else this test would prove nothing)…
    let backend = source
        .as_any()
        .and_then(|any| any.downcast_ref::<extdata::Instrumented>())
        .expect("an instrumented source")
        .inner()
        .clone();
    let quoted = error_of(backend.as_ref()).await;
    assert!(quoted.contains("pii-sentinel"), "{kind:?}: {quoted}");
    // …and the facade's does not.
    let text = error_of(source.as_ref()).await;
    assert!(!text.contains("pii-sentinel"), "{kind:?}: {text}");
    if kind != DbKind::Postgres {
        source
            .execute(
                &Statement::new(format!("DROP PROCEDURE {procedure}")),
                &QueryOptions::default(),
            )
            .await
            .expect("drop procedure");
    }
}

#[tokio::test]
async fn postgres_partitioned_load_equals_the_unpartitioned_one() {
    partitioned_load_equals_the_unpartitioned_one(DbKind::Postgres).await;
}

#[tokio::test]
async fn postgres_errors_hold_no_bound_value() {
    errors_hold_no_bound_value(DbKind::Postgres).await;
}

#[tokio::test]
async fn mysql_partitioned_load_equals_the_unpartitioned_one() {
    partitioned_load_equals_the_unpartitioned_one(DbKind::MySql).await;
}

#[tokio::test]
async fn mysql_errors_hold_no_bound_value() {
    errors_hold_no_bound_value(DbKind::MySql).await;
}

/// On a `read_only` connector, SQL shaped to break out of the partition wrapper
/// (`SELECT * FROM (<sql>) extdata_p WHERE …`) — a `;` splicing a `DELETE` between
/// the wrapper's parentheses, a trailing `--` comment — writes nothing; and on PostgreSQL an
/// error of the partitioning's bounds query holds no bound value.
async fn partition_wrapper_cannot_write_or_leak(kind: DbKind) {
    let Some(server) = server(kind).await else {
        return;
    };
    let rw = extdata::connect(&server.tcp()).expect("connect");
    let ro = extdata::connect(&server.tcp().with_read_only(true)).expect("connect");
    let table = extdata_conformance::support::unique_name("columnar_wrap");
    let options = QueryOptions::default();
    for sql in [
        format!("CREATE TABLE {table} (id INT)"),
        format!("INSERT INTO {table} VALUES (1), (2), (3)"),
    ] {
        rw.execute(&Statement::new(sql), &options)
            .await
            .expect("setup");
    }
    let count = async || {
        rw.query(
            &Statement::new(format!("SELECT COUNT(*) AS n FROM {table}")),
            &options,
        )
        .await
        .expect("count")
        .rows[0]
            .get(0)
            .and_then(extdata::Value::as_i64)
    };
    for sql in [
        format!("SELECT 1 AS id) x; DELETE FROM {table}; SELECT * FROM (SELECT 1 AS id"),
        format!("SELECT id FROM {table}) x; DELETE FROM {table}; --"),
        format!("SELECT id FROM {table} -- ) extdata_p; DELETE FROM {table}"),
    ] {
        let outcome = all_batches(extdata::stream_batches_partitioned(
            &ro,
            &Statement::new(sql.as_str()),
            "id",
            2,
            &options,
            BatchLimits::default(),
        ))
        .await;
        assert!(outcome.is_err(), "{kind:?}: {sql}");
        assert_eq!(count().await, Some(3), "{kind:?}: {sql}");
    }
    // PostgreSQL's error of the bounds query quotes the value (MariaDB/MySQL casts only
    // warn, and a `CALL` cannot be wrapped).
    if kind == DbKind::Postgres {
        const SECRET: &str = "pii-sentinel-3141@example.com";
        let statement = Statement::new("SELECT CAST(:v AS int) AS id").bind("v", SECRET);
        let outcome = all_batches(extdata::stream_batches_partitioned(
            &ro,
            &statement,
            "id",
            2,
            &options,
            BatchLimits::default(),
        ))
        .await;
        let text = error_texts(&outcome.expect_err("an error")).join("\n");
        assert!(text.contains("<value of :v>"), "{text}");
        assert!(!text.contains("pii-sentinel"), "{text}");
    }
    rw.execute(&Statement::new(format!("DROP TABLE {table}")), &options)
        .await
        .expect("drop");
}

#[tokio::test]
async fn postgres_partition_wrapper_cannot_write_or_leak() {
    partition_wrapper_cannot_write_or_leak(DbKind::Postgres).await;
}

#[tokio::test]
async fn mysql_partition_wrapper_cannot_write_or_leak() {
    partition_wrapper_cannot_write_or_leak(DbKind::MySql).await;
}
