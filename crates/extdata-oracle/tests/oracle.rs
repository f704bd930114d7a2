//! The Oracle backend against a real server (named by
//! `EXTDATA_TEST_ORACLE_{HOST,PORT,DATABASE,USER,PASSWORD}`): errors and their kinds,
//! break on timeout, read-only calls, describe, streaming in batches.

mod support;

use std::time::{Duration, Instant};

use extdata_conformance::support::{Call, call_error, expect_kind, int_of, timed_out};
use extdata_core::{ErrorKind, ExternalSource, QueryOptions, Statement, Value};
use futures::StreamExt;

macro_rules! server {
    ($test:literal) => {
        match support::server($test) {
            Some(server) => server,
            None => return,
        }
    };
}

fn source(config: extdata_core::ConnectorConfig) -> std::sync::Arc<dyn ExternalSource> {
    support::build(&config).expect("valid config")
}

/// `SELECT 1 AS n FROM dual` on `ora` returns the one row `1`.
async fn assert_selects_one(ora: &dyn ExternalSource, what: &str) {
    let rows = ora
        .query(
            &Statement::new("SELECT 1 AS n FROM dual"),
            &QueryOptions::default(),
        )
        .await
        .expect(what);
    assert_eq!(rows.rows.len(), 1, "{what}");
    assert_eq!(rows.rows[0].get(0).and_then(int_of), Some(1), "{what}");
}

#[tokio::test]
async fn server_errors_have_their_kinds() {
    let server = server!("server_errors_have_their_kinds");
    let ora = source(server.config("ora-errors"));
    let missing = call_error(
        ora.as_ref(),
        Call::Query,
        "SELECT * FROM extdata_no_such_table",
        ErrorKind::Query,
    )
    .await;
    assert_eq!(missing.sql_state(), Some("ORA-00942"));
    call_error(
        ora.as_ref(),
        Call::Execute,
        "SELEKT 1 FROM dual",
        ErrorKind::Query,
    )
    .await;
    let wrong = expect_kind(
        source(server.config("ora-wrong").with_password("not-the-Pw-1"))
            .ping()
            .await,
        ErrorKind::Auth,
        "ORA-01017",
    );
    assert!(!wrong.to_string().contains("not-the-Pw-1"));
    expect_kind(
        source(server.config("ora-refused").with_port(9))
            .ping()
            .await,
        ErrorKind::Connect,
        "ORA-12541",
    );
}

#[tokio::test]
async fn timeout_breaks_the_call_and_discards_the_connection() {
    let server = server!("timeout_breaks_the_call_and_discards_the_connection");
    let ora = source(server.config("ora-timeout"));
    let sleep = "WITH FUNCTION s(n NUMBER) RETURN NUMBER IS BEGIN DBMS_SESSION.SLEEP(n); \
                 RETURN n; END; SELECT s(30) AS n FROM dual";
    let started = Instant::now();
    timed_out(ora.as_ref(), Call::Query, sleep, Duration::from_secs(1)).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    for _ in 0..5 {
        let sleep = "BEGIN DBMS_SESSION.SLEEP(30); END;";
        timed_out(
            ora.as_ref(),
            Call::Execute,
            sleep,
            Duration::from_millis(500),
        )
        .await;
    }
    assert_selects_one(ora.as_ref(), "the pool still serves").await;
}

#[tokio::test]
async fn read_only_connector_refuses_dml_ddl_and_plsql() {
    let server = server!("read_only_connector_refuses_dml_ddl_and_plsql");
    let ora = source(server.config("ora-ro").with_read_only(true));
    for sql in [
        "CREATE TABLE extdata_ro_probe (id NUMBER)",
        "BEGIN NULL; END;",
        "INSERT INTO extdata_ro_probe (id) VALUES (1)",
    ] {
        let error = ora
            .execute(&Statement::new(sql), &QueryOptions::default())
            .await
            .expect_err(sql);
        assert!(
            matches!(error.kind(), ErrorKind::ReadOnly | ErrorKind::Query),
            "{sql}: {error}"
        );
    }
    assert_selects_one(ora.as_ref(), "reads work").await;
}

#[tokio::test]
async fn stream_arrives_in_batches_and_stops_when_dropped() {
    let server = server!("stream_arrives_in_batches_and_stops_when_dropped");
    let ora = source(
        server
            .config("ora-stream")
            .with_options("fetch_array_size=50"),
    );
    let mut stream = ora
        .stream(
            &Statement::new("SELECT LEVEL AS n FROM dual CONNECT BY LEVEL <= 100000"),
            &QueryOptions::default(),
        )
        .await
        .expect("stream");
    let mut seen = 0_i64;
    while let Some(row) = stream.next().await {
        let row = row.expect("row");
        seen += 1;
        assert!(matches!(
            row.get(0),
            Some(Value::Decimal(_) | Value::I128(_) | Value::I64(_))
        ));
        if seen == 120 {
            break;
        }
    }
    drop(stream);
    ora.ping()
        .await
        .expect("source usable after a dropped stream");
}

#[tokio::test]
async fn describe_reports_oracle_types() {
    let server = server!("describe_reports_oracle_types");
    let ora = source(server.config("ora-describe"));
    let columns = ora
        .describe(
            &Statement::new(
                "SELECT CAST(1 AS NUMBER(10)) AS a, CAST('x' AS VARCHAR2(5)) AS b, SYSTIMESTAMP AS c FROM dual",
            ),
            &QueryOptions::default(),
        )
        .await
        .expect("describe");
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(columns[0].value_kind, extdata_core::ValueKind::I64);
    assert_eq!(columns[1].value_kind, extdata_core::ValueKind::Text);
    assert_eq!(columns[2].value_kind, extdata_core::ValueKind::TimestampTz);
}
