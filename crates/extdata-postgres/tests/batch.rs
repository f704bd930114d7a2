//! `execute_batch` against a real server: one transaction per batch — all statements
//! apply or none does, a timeout rolls back and cancels on the server, and the pool's
//! connection is never left inside a transaction.

mod support;

use std::time::{Duration, Instant};

use extdata_conformance::support::unique_name;
use extdata_core::{ErrorKind, ExternalSource, PoolConfig, QueryOptions, Scalar, Statement, Value};
use extdata_postgres::PostgresSource;

use support::{TestServer, scalar, source, time_until_gone};

/// A source whose pool has one connection, so every call reuses the batch's.
fn single_connection(server: &TestServer) -> PostgresSource {
    source(server.tcp().with_pool(PoolConfig {
        max_size: Some(Scalar::Int(1)),
        acquire_timeout: Some("5s".into()),
        ..Default::default()
    }))
}

async fn create_table(pg: &PostgresSource) -> String {
    let table = unique_name("batch");
    pg.execute(
        &Statement::new(format!(
            "CREATE TABLE {table} (id int8 PRIMARY KEY, v text)"
        )),
        &QueryOptions::default(),
    )
    .await
    .expect("create table");
    table
}

async fn drop_table(pg: &PostgresSource, table: &str) {
    pg.execute(
        &Statement::new(format!("DROP TABLE {table}")),
        &QueryOptions::default(),
    )
    .await
    .expect("drop table");
}

fn insert(table: &str, id: i64) -> Statement {
    Statement::new(format!("INSERT INTO {table} (id, v) VALUES (:id, :v)"))
        .bind("id", id)
        .bind("v", format!("v{id}"))
}

async fn count(pg: &PostgresSource, table: &str) -> Value {
    scalar(pg, format!("SELECT count(*) FROM {table}").as_str()).await
}

/// The single pooled connection is out of any transaction: a write through it is
/// visible at once from another session.
async fn assert_autocommits(pg: &PostgresSource, observer: &PostgresSource, table: &str, id: i64) {
    assert_eq!(
        scalar(pg, "SELECT 1").await,
        Value::I32(1),
        "the pool serves"
    );
    let affected = pg
        .execute(&insert(table, id), &QueryOptions::default())
        .await
        .expect("insert after the batch");
    assert_eq!(affected, 1);
    let seen = scalar(
        observer,
        Statement::new(format!("SELECT count(*) FROM {table} WHERE id = :id")).bind("id", id),
    )
    .await;
    assert_eq!(
        seen,
        Value::I64(1),
        "a write after the batch must commit on its own (the connection was left in a transaction)"
    );
}

#[tokio::test]
async fn batch_commits_every_statement_and_returns_their_counts() {
    let server = server!();
    let pg = single_connection(&server);
    let observer = source(server.tcp());
    assert!(pg.batches_are_atomic());
    let table = create_table(&observer).await;
    let affected = pg
        .execute_batch(
            &[
                insert(&table, 1),
                insert(&table, 2),
                Statement::new(format!("UPDATE {table} SET v = :v WHERE id > :min"))
                    .bind("v", "updated")
                    .bind("min", 0_i64),
            ],
            &QueryOptions::default(),
        )
        .await
        .expect("batch");
    assert_eq!(affected, vec![1, 1, 2]);
    assert_eq!(count(&observer, &table).await, Value::I64(2));
    assert_eq!(
        scalar(
            &observer,
            format!("SELECT count(*) FROM {table} WHERE v = 'updated'").as_str()
        )
        .await,
        Value::I64(2)
    );
    assert_eq!(
        pg.execute_batch(&[], &QueryOptions::default())
            .await
            .expect("empty batch"),
        Vec::<u64>::new()
    );
    assert_autocommits(&pg, &observer, &table, 10).await;
    drop_table(&observer, &table).await;
}

#[tokio::test]
async fn a_failing_third_statement_leaves_no_row() {
    let server = server!();
    let pg = single_connection(&server);
    let observer = source(server.tcp());
    let table = create_table(&observer).await;
    // The third insert repeats the first key: a unique violation.
    let err = pg
        .execute_batch(
            &[insert(&table, 1), insert(&table, 2), insert(&table, 1)],
            &QueryOptions::default(),
        )
        .await
        .expect_err("the duplicate key must fail the batch");
    assert_eq!(err.kind(), ErrorKind::Query, "{err}");
    assert_eq!(err.sql_state(), Some("23505"), "{err}");
    assert!(
        err.to_string().contains("statement 3 of 3"),
        "the error says which statement failed: {err}"
    );
    assert_eq!(count(&observer, &table).await, Value::I64(0), "rolled back");
    assert_autocommits(&pg, &observer, &table, 10).await;
    drop_table(&observer, &table).await;
}

#[tokio::test]
async fn a_timed_out_batch_is_cancelled_on_the_server_and_leaves_no_row() {
    let server = server!();
    let pg = single_connection(&server);
    let observer = source(server.tcp());
    let table = create_table(&observer).await;
    let marker = format!("SELECT pg_sleep(30) /* batch {} */", std::process::id());
    for round in 0..3 {
        let started = Instant::now();
        let err = pg
            .execute_batch(
                &[
                    insert(&table, 1),
                    Statement::new(marker.clone()),
                    insert(&table, 2),
                ],
                &QueryOptions::default().with_timeout(Duration::from_secs(1)),
            )
            .await
            .expect_err("the batch must time out");
        let elapsed = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Timeout, "round {round}: {err}");
        assert!(
            elapsed < Duration::from_secs(2),
            "round {round}: {elapsed:?}"
        );
        let gone = time_until_gone(&observer, &marker, Duration::from_secs(5))
            .await
            .expect("the sleep still runs on the server 5 s after the timeout");
        eprintln!("round {round}: timeout after {elapsed:?}; sleep gone after {gone:?}");
        assert_eq!(count(&observer, &table).await, Value::I64(0), "rolled back");
    }
    assert_autocommits(&pg, &observer, &table, 10).await;
    let state = pg.pool_state().expect("pool in use");
    assert_eq!(state.in_use, 0, "{state:?}");
    assert!(state.open <= 1, "{state:?}");
    drop_table(&observer, &table).await;
}

#[tokio::test]
async fn a_dropped_batch_call_is_cancelled_not_pooled_inside_its_transaction() {
    let server = server!();
    let pg = single_connection(&server);
    let observer = source(server.tcp());
    let table = create_table(&observer).await;
    let marker = format!("SELECT pg_sleep(30) /* dropped {} */", std::process::id());
    let statements = [
        insert(&table, 1),
        Statement::new(marker.clone()),
        insert(&table, 2),
    ];
    // The caller gives up long before the call's own timeout.
    let options = QueryOptions::default();
    let call = pg.execute_batch(&statements, &options);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), call)
            .await
            .is_err()
    );
    let gone = time_until_gone(&observer, &marker, Duration::from_secs(5))
        .await
        .expect("the sleep still runs on the server 5 s after the call was dropped");
    eprintln!("dropped call: sleep gone after {gone:?}");
    assert_eq!(count(&observer, &table).await, Value::I64(0), "rolled back");
    assert_autocommits(&pg, &observer, &table, 10).await;
    drop_table(&observer, &table).await;
}

#[tokio::test]
async fn transaction_control_inside_a_batch_is_refused_before_anything_runs() {
    let server = server!();
    let pg = single_connection(&server);
    let observer = source(server.tcp());
    let table = create_table(&observer).await;
    for control in ["COMMIT", "/* c */ end", "-- x\nRollback", "BEGIN", "abort"] {
        let err = pg
            .execute_batch(
                &[
                    insert(&table, 1),
                    Statement::new(control),
                    insert(&table, 2),
                ],
                &QueryOptions::default(),
            )
            .await
            .expect_err(control);
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{control}: {err}");
        assert!(err.to_string().contains("statement 2"), "{control}: {err}");
    }
    assert_eq!(count(&observer, &table).await, Value::I64(0));
    assert_autocommits(&pg, &observer, &table, 10).await;
    drop_table(&observer, &table).await;
}

#[tokio::test]
async fn a_read_only_connector_refuses_a_writing_batch() {
    let server = server!();
    let observer = source(server.tcp());
    let table = create_table(&observer).await;
    let pg = source(server.tcp().with_read_only(true));
    let err = pg
        .execute_batch(&[insert(&table, 1)], &QueryOptions::default())
        .await
        .expect_err("read-only");
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
    assert_eq!(count(&observer, &table).await, Value::I64(0));
    drop_table(&observer, &table).await;
}
