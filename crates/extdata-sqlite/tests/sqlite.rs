//! SQLite-specific behaviour: interrupts, lock waits, streaming memory, in-memory
//! databases, read-only modes, the declared-type table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use extdata_conformance::support::assert_elapsed_below;
use extdata_core::{
    Column, ConnectorConfig, DbKind, Error, ErrorKind, ExternalSource, PoolConfig, QueryOptions,
    ResultSet, Scalar, Statement, Value, ValueKind,
};
use extdata_sqlite::{SPEC, SqliteSource};
use futures::StreamExt;

/// Counts to 10^12: runs for hours unless interrupted.
const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                       WHERE x < 1000000000000) SELECT count(*) AS n FROM c";

fn series(count: u64) -> String {
    format!(
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) \
         SELECT n FROM s"
    )
}

fn source(config: ConnectorConfig) -> Arc<SqliteSource> {
    let valid = config.validate_with(Some(&SPEC)).expect("valid config");
    Arc::new(SqliteSource::build(valid).expect("build"))
}

fn pool(max_size: i64) -> PoolConfig {
    PoolConfig {
        max_size: Some(Scalar::Int(max_size)),
        ..PoolConfig::default()
    }
}

fn memory(name: &str) -> ConnectorConfig {
    ConnectorConfig::new(name, DbKind::Sqlite).with_database(":memory:")
}

/// A connector to `<dir>/<name>.db`, which may not exist.
fn at(dir: &tempfile::TempDir, name: &str) -> ConnectorConfig {
    let path = dir.path().join(format!("{name}.db"));
    ConnectorConfig::new(name, DbKind::Sqlite).with_database(path.to_str().expect("UTF-8 path"))
}

/// A connector to the database file `<dir>/<name>.db`, created empty (a valid, empty
/// SQLite database) when missing: connectors open existing files only.
fn file(dir: &tempfile::TempDir, name: &str) -> ConnectorConfig {
    let path = dir.path().join(format!("{name}.db"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("a database file");
    at(dir, name)
}

fn opts() -> QueryOptions {
    QueryOptions::default()
}

async fn exec(source: &SqliteSource, sql: &str) -> u64 {
    source
        .execute(&Statement::new(sql), &opts())
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
}

async fn query(source: &SqliteSource, sql: &str) -> ResultSet {
    source
        .query(&Statement::new(sql), &opts())
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
}

async fn scalar(source: &SqliteSource, sql: &str) -> Value {
    query(source, sql).await.rows[0].values()[0].clone()
}

/// Asserts that the first value of `sql` is `expected`.
async fn assert_scalar(source: &SqliteSource, sql: &str, expected: Value) {
    assert_eq!(scalar(source, sql).await, expected, "{sql}");
}

/// Another program's connection to the file `path` (created when missing).
async fn other_program(path: &std::path::Path) -> sqlx::SqliteConnection {
    sqlx::ConnectOptions::connect(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .expect("another connection")
}

/// Runs `sql` on another program's connection.
async fn raw(connection: &mut sqlx::SqliteConnection, sql: &'static str) {
    sqlx::query(sql)
        .execute(connection)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
}

/// A source of one connection whose calls time out after `timeout`.
fn one_connection(config: ConnectorConfig, timeout: Duration) -> Arc<SqliteSource> {
    source(config.with_pool(pool(1)).with_query_timeout(timeout))
}

async fn describe(source: &SqliteSource, sql: &str) -> Vec<Column> {
    source
        .describe(&Statement::new(sql), &opts())
        .await
        .unwrap_or_else(|e| panic!("describe `{sql}` failed: {e}"))
}

/// The error of `sql`, which must fail (`what` says why it should).
async fn query_err(source: &SqliteSource, sql: &str, what: &str) -> Error {
    source
        .query(&Statement::new(sql), &opts())
        .await
        .expect_err(what)
}

/// The error of `sql` as a write, which must fail (`what` says why it should).
async fn execute_err(source: &SqliteSource, sql: &str, what: &str) -> Error {
    source
        .execute(&Statement::new(sql), &opts())
        .await
        .expect_err(what)
}

/// Each column's name, declared type and value kind.
fn described(columns: &[Column]) -> Vec<(&str, &str, ValueKind)> {
    columns
        .iter()
        .map(|c| (c.name.as_str(), c.database_type.as_str(), c.value_kind))
        .collect()
}

/// Resident memory of this process in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[tokio::test]
async fn timeout_interrupts_a_running_statement_and_the_next_query_works() {
    // One connection: the query after the timeout runs on the interrupted connection.
    let source = one_connection(memory("interrupt"), Duration::from_secs(1));
    for operation in ["query", "execute", "stream"] {
        let started = Instant::now();
        let statement = Statement::new(ENDLESS);
        let error = match operation {
            "query" => source.query(&statement, &opts()).await.map(|_| ()),
            "execute" => source.execute(&statement, &opts()).await.map(|_| ()),
            _ => source.stream(&statement, &opts()).await.map(|_| ()),
        }
        .expect_err("an endless statement cannot succeed");
        let elapsed = started.elapsed();
        eprintln!("{operation}: timed out after {elapsed:?}");
        assert_eq!(error.kind(), ErrorKind::Timeout, "{operation}: {error}");
        assert!(error.is_temporary());
        assert_eq!(error.connector(), Some("interrupt"));
        assert!(
            elapsed < Duration::from_secs(2),
            "{operation}: took {elapsed:?} with a 1s timeout"
        );
        let started = Instant::now();
        assert_scalar(&source, "SELECT 41 + 1", Value::I64(42)).await;
        assert_elapsed_below(started, Duration::from_millis(500), "the next query");
    }
}

#[tokio::test]
async fn per_call_timeout_overrides_the_connector_timeout() {
    let source = source(memory("override").with_query_timeout(Duration::from_secs(60)));
    let started = Instant::now();
    let error = source
        .query(
            &Statement::new(ENDLESS),
            &opts().with_timeout(Duration::from_millis(300)),
        )
        .await
        .expect_err("interrupted");
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_elapsed_below(
        started,
        Duration::from_millis(1300),
        "the interrupted query",
    );
    assert!(error.message().contains("300ms"), "{error}");
}

#[tokio::test]
async fn lock_waits_are_bounded_by_the_call_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let setup = source(file(&dir, "locks"));
    exec(&setup, "CREATE TABLE t (v INTEGER)").await;
    // Another program holds the write lock.
    let mut holder = other_program(&dir.path().join("locks.db")).await;
    raw(&mut holder, "BEGIN IMMEDIATE").await;

    // busy_timeout longer than the call: SQLite sleeps in its busy handler (no VM steps,
    // so no progress handler); the call gives up on time and discards the connection.
    let patient = source(
        file(&dir, "locks")
            .with_options("busy_timeout=30s")
            .with_query_timeout(Duration::from_secs(1)),
    );
    let started = Instant::now();
    let error = execute_err(&patient, "INSERT INTO t VALUES (2)", "the file is locked").await;
    let elapsed = started.elapsed();
    eprintln!("lock wait with busy_timeout=30s: {elapsed:?}");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    // Default busy_timeout = the query timeout: SQLITE_BUSY itself is a Timeout.
    let default = source(file(&dir, "locks").with_query_timeout(Duration::from_millis(500)));
    let error = execute_err(&default, "INSERT INTO t VALUES (3)", "the file is locked").await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(error.message().contains("locked"), "{error}");

    raw(&mut holder, "ROLLBACK").await;
    assert_eq!(exec(&patient, "INSERT INTO t VALUES (4)").await, 1);
}

#[tokio::test]
async fn stream_of_a_million_rows_delivers_every_row() {
    let source = source(memory("million"));
    let started = Instant::now();
    let mut stream = source
        .stream(&Statement::new(series(1_000_000)), &opts())
        .await
        .unwrap();
    assert_eq!(stream.columns()[0].name, "n");
    let (mut count, mut sum, mut previous) = (0_u64, 0_i64, 0_i64);
    while let Some(row) = stream.next().await {
        let Value::I64(n) = row.unwrap().values()[0] else {
            panic!("not an integer")
        };
        assert_eq!(n, previous + 1, "rows out of order");
        previous = n;
        count += 1;
        sum += n;
    }
    eprintln!("1,000,000 rows streamed in {:?}", started.elapsed());
    assert_eq!(count, 1_000_000);
    assert_eq!(sum, 500_000_500_000);
}

#[tokio::test]
async fn stream_memory_stays_bounded_while_the_consumer_waits() {
    // 10 KB per row, a practically endless result: buffering it would take gigabytes.
    let source = source(memory("bounded").with_pool(pool(1)));
    let sql = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s \
               WHERE n < 1000000000000) SELECT n, zeroblob(10000) AS payload FROM s";
    let started = Instant::now();
    let mut stream = source.stream(&Statement::new(sql), &opts()).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(first.values()[0], Value::I64(1));
    let before = resident_bytes();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut read = 1;
    while read < 1_000 {
        stream.next().await.unwrap().unwrap();
        read += 1;
    }
    let grown = resident_bytes().saturating_sub(before);
    eprintln!(
        "resident memory grew by {} KB during the pause",
        grown / 1024
    );
    assert!(
        grown < 64 * 1024 * 1024,
        "memory grew by {grown} bytes while the consumer paused"
    );
    // Dropping the stream interrupts the statement: the only connection is free again.
    drop(stream);
    let started = Instant::now();
    assert_scalar(&source, "SELECT 1", Value::I64(1)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn empty_results_still_have_their_columns() {
    let source = source(memory("empty"));
    exec(&source, "CREATE TABLE t (id INTEGER, born DATE)").await;
    let result = query(&source, "SELECT id, born, 1 + 1 AS two FROM t").await;
    assert!(result.rows.is_empty());
    assert_eq!(
        described(&result.columns),
        [
            ("id", "INTEGER", ValueKind::I64),
            ("born", "DATE", ValueKind::Date),
            ("two", "", ValueKind::Null),
        ]
    );
}

#[tokio::test]
async fn read_only_refuses_writes_for_files_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let writer = source(file(&dir, "ro"));
    exec(&writer, "CREATE TABLE customers (email TEXT)").await;
    exec(&writer, "INSERT INTO customers VALUES ('a@example.com')").await;

    for reader in [
        source(file(&dir, "ro").with_read_only(true)),
        source(file(&dir, "ro").with_options("mode=ro")),
    ] {
        for sql in [
            "INSERT INTO customers VALUES ('b@example.com')",
            "DELETE FROM customers",
            "CREATE TABLE other (x INTEGER)",
        ] {
            let error = execute_err(&reader, sql, "read-only").await;
            assert_eq!(error.kind(), ErrorKind::ReadOnly, "{sql}: {error}");
            assert_eq!(error.connector(), Some("ro"));
        }
        assert_scalar(&reader, "SELECT count(*) FROM customers", Value::I64(1)).await;
    }

    let memory = source(memory("ro-memory").with_read_only(true));
    let error = execute_err(&memory, "CREATE TABLE t (x INTEGER)", "query_only").await;
    assert_eq!(error.kind(), ErrorKind::ReadOnly, "{error}");
}

/// The files in `dir`, sorted.
fn files_in(dir: &tempfile::TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_missing_file_fails_with_its_path_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A typo, however the connector is set up to open it; `mode=rwc` written into the
    // path is a file name (only `file:` names are URIs, and those are refused).
    let in_path = dir.path().join("typo.db?mode=rwc&vfs=unix-none");
    let cases = [
        ("default", at(&dir, "typo"), true),
        ("mode=rw", at(&dir, "typo").with_options("mode=rw"), true),
        ("mode=ro", at(&dir, "typo").with_options("mode=ro"), false),
        ("read_only", at(&dir, "typo").with_read_only(true), false),
        (
            "read_only with mode=rwc",
            at(&dir, "typo")
                .with_options("mode=rwc")
                .with_read_only(true),
            false,
        ),
        (
            "?mode=rwc in the path",
            ConnectorConfig::new("typo", DbKind::Sqlite)
                .with_database(in_path.to_str().unwrap())
                .with_options("journal_mode=wal"),
            true,
        ),
    ];
    for (case, config, suggests_rwc) in cases {
        let source = source(config);
        let error = source.ping().await.expect_err(case);
        assert_eq!(error.kind(), ErrorKind::Database, "{case}: {error}");
        assert!(!error.is_temporary(), "{case}: {error}");
        assert_eq!(error.connector(), Some(source.name()), "{case}");
        let text = error.to_string();
        for expected in [
            "no such database file",
            source.database(),
            "field `database`",
        ] {
            assert!(text.contains(expected), "{case}: `{expected}` in {text}");
        }
        assert_eq!(text.contains("mode=rwc"), suggests_rwc, "{case}: {text}");
        // Every call fails the same way, and nothing was created.
        let error = execute_err(&source, "CREATE TABLE t (x INTEGER)", case).await;
        assert!(
            error.message().contains("no such database file"),
            "{case}: {error}"
        );
        source.close().await;
        assert_eq!(files_in(&dir), Vec::<String>::new(), "{case}");
    }
}

#[tokio::test]
async fn mode_rwc_creates_the_file_and_mode_ro_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let creator = source(at(&dir, "new").with_options("mode=rwc&journal_mode=wal"));
    assert!(!creator.ping().await.unwrap().version.is_empty());
    assert!(dir.path().join("new.db").exists());
    exec(&creator, "CREATE TABLE t (x INTEGER)").await;
    exec(&creator, "INSERT INTO t VALUES (7)").await;
    creator.close().await;

    // The default opens the existing file read-write; mode=ro reads it and writes nothing.
    let default = source(at(&dir, "new"));
    exec(&default, "INSERT INTO t VALUES (8)").await;
    let reader = source(at(&dir, "new").with_options("mode=ro"));
    assert_scalar(&reader, "SELECT sum(x) FROM t", Value::I64(15)).await;
    let error = execute_err(&reader, "INSERT INTO t VALUES (9)", "mode=ro").await;
    assert_eq!(error.kind(), ErrorKind::ReadOnly, "{error}");

    // A directory that does not exist is not created, with or without rwc.
    let nested = source(
        ConnectorConfig::new("nested", DbKind::Sqlite)
            .with_database(dir.path().join("no-dir/x.db").to_str().unwrap())
            .with_options("mode=rwc"),
    );
    let error = nested.ping().await.expect_err("no directory");
    assert_eq!(error.kind(), ErrorKind::Database, "{error}");
    assert!(error.message().contains("no-dir"), "{error}");
    assert!(!dir.path().join("no-dir").exists());
}

#[tokio::test]
async fn memory_database_is_shared_by_every_pool_connection() {
    let source = source(memory("shared").with_pool(PoolConfig {
        max_size: Some(Scalar::Int(4)),
        idle_timeout: Some("1s".into()),
        ..PoolConfig::default()
    }));
    exec(&source, "CREATE TABLE t (v INTEGER)").await;
    exec(&source, "INSERT INTO t VALUES (1), (2), (3)").await;
    // Three streams hold three connections; a fourth call must see the same table.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = source
            .stream(&Statement::new("SELECT v FROM t ORDER BY v"), &opts())
            .await
            .unwrap();
        assert_eq!(
            stream.next().await.unwrap().unwrap().values()[0],
            Value::I64(1)
        );
        held.push(stream);
    }
    assert_scalar(&source, "SELECT sum(v) FROM t", Value::I64(6)).await;
    drop(held);
    // Idle connections would have been closed by now if the pool recycled them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_scalar(&source, "SELECT count(*) FROM t", Value::I64(3)).await;
    // Two sources never share an in-memory database.
    let other = self::source(memory("shared"));
    let error = query_err(&other, "SELECT * FROM t", "another database").await;
    assert_eq!(error.kind(), ErrorKind::Query);
}

#[tokio::test]
async fn describe_prepares_without_running() {
    let source = source(memory("describe"));
    exec(
        &source,
        "CREATE TABLE typed (id INTEGER PRIMARY KEY, price DECIMAL(10,2), seen TIMESTAMP, \
         doc JSON, flag BOOLEAN, photo BLOB, note VARCHAR(20), misc)",
    )
    .await;
    let started = Instant::now();
    let columns = describe(&source, ENDLESS).await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(columns[0].name, "n");

    let columns = describe(&source, "SELECT *, id * 2 AS twice FROM typed").await;
    assert_eq!(
        described(&columns),
        [
            ("id", "INTEGER", ValueKind::I64),
            ("price", "DECIMAL(10,2)", ValueKind::Decimal),
            ("seen", "TIMESTAMP", ValueKind::Timestamp),
            ("doc", "JSON", ValueKind::Json),
            ("flag", "BOOLEAN", ValueKind::Bool),
            ("photo", "BLOB", ValueKind::Bytes),
            ("note", "VARCHAR(20)", ValueKind::Text),
            ("misc", "", ValueKind::Null),
            ("twice", "", ValueKind::Null),
        ]
    );

    let insert = Statement::new("INSERT INTO typed (id) VALUES (:id)").bind("id", 1_i64);
    let columns = source.describe(&insert, &opts()).await.unwrap();
    assert!(columns.is_empty());
    assert_scalar(&source, "SELECT count(*) FROM typed", Value::I64(0)).await;
}

#[tokio::test]
async fn declared_types_choose_the_value_only_when_exact() {
    let source = source(memory("types"));
    exec(
        &source,
        "CREATE TABLE v (flag BOOLEAN, born DATE, at DATETIME, price NUMERIC, doc JSON, \
         id UUID, n INTEGER, note TEXT)",
    )
    .await;
    let insert = "INSERT INTO v VALUES (:flag, :born, :at, :price, :doc, :id, :n, :note)";
    let uuid = uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
    let exact = Statement::new(insert)
        .bind("flag", true)
        .bind("born", NaiveDate::from_ymd_opt(1990, 12, 31).unwrap())
        .bind(
            "at",
            NaiveDate::from_ymd_opt(2024, 1, 2)
                .unwrap()
                .and_hms_milli_opt(3, 4, 5, 600)
                .unwrap(),
        )
        .bind("price", Value::Decimal("19.99".parse().unwrap()))
        .bind("doc", serde_json::json!({"tags": ["a"]}))
        .bind("id", uuid)
        .bind("n", 7_i64)
        .bind("note", "plain");
    source.execute(&exact, &opts()).await.unwrap();
    // What SQLite's dynamic typing lets through: the text stays text, never a guess.
    let loose = Statement::new(insert)
        .bind("flag", 2_i64)
        .bind("born", "last tuesday")
        .bind("at", "2024-13-01 00:00:00")
        .bind("price", "about ten")
        .bind("doc", "{broken")
        .bind("id", "not-a-uuid")
        .bind("n", "seven")
        .bind("note", 12_i64);
    source.execute(&loose, &opts()).await.unwrap();
    let nulls = Statement::new("INSERT INTO v DEFAULT VALUES");
    source.execute(&nulls, &opts()).await.unwrap();

    let result = query(&source, "SELECT * FROM v ORDER BY rowid").await;
    assert_eq!(
        result.rows[0].values(),
        [
            Value::Bool(true),
            Value::Date(NaiveDate::from_ymd_opt(1990, 12, 31).unwrap()),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(2024, 1, 2)
                    .unwrap()
                    .and_hms_milli_opt(3, 4, 5, 600)
                    .unwrap()
            ),
            Value::Decimal("19.99".parse().unwrap()),
            Value::Json(serde_json::json!({"tags": ["a"]})),
            Value::Uuid(uuid),
            Value::I64(7),
            Value::Text("plain".into()),
        ]
    );
    assert_eq!(
        result.rows[1].values(),
        [
            Value::I64(2),
            Value::Text("last tuesday".into()),
            Value::Text("2024-13-01 00:00:00".into()),
            Value::Text("about ten".into()),
            Value::Text("{broken".into()),
            Value::Text("not-a-uuid".into()),
            Value::Text("seven".into()),
            // TEXT affinity stores the bound integer as text.
            Value::Text("12".into()),
        ]
    );
    assert!(result.rows[2].values().iter().all(Value::is_null));
}

#[tokio::test]
async fn hostile_parameter_is_data_not_sql() {
    let source = source(memory("hostile"));
    exec(&source, "CREATE TABLE customers (name TEXT)").await;
    let hostile = "'); DROP TABLE customers; --";
    let insert = Statement::new("INSERT INTO customers (name) VALUES (:p)").bind("p", hostile);
    assert_eq!(source.execute(&insert, &opts()).await.unwrap(), 1);
    let found = source
        .query(
            &Statement::new("SELECT name FROM customers WHERE name = :p").bind("p", hostile),
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(found.rows.len(), 1);
    assert_eq!(found.rows[0].values()[0], Value::Text(hostile.into()));
}

#[tokio::test]
async fn unbindable_parameters_are_refused_by_name() {
    let source = source(memory("params"));
    let error = source
        .query(
            &Statement::new("SELECT :big").bind("big", u64::MAX),
            &opts(),
        )
        .await
        .expect_err("does not fit");
    assert_eq!(error.kind(), ErrorKind::Parameter);
    assert!(error.message().contains(":big"), "{error}");
    let error = source
        .execute(
            &Statement::new("SELECT :ids").bind("ids", Value::Array(vec![Value::I64(1)])),
            &opts(),
        )
        .await
        .expect_err("arrays");
    assert_eq!(error.kind(), ErrorKind::Unsupported);
    assert!(error.message().contains(":ids"), "{error}");
    assert_eq!(error.connector(), Some("params"));
}

#[tokio::test]
async fn server_errors_are_classified() {
    let source = source(memory("errors"));
    exec(
        &source,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
    )
    .await;
    for (sql, kind) in [
        ("SELEC 1", ErrorKind::Query),
        ("SELECT * FROM nowhere", ErrorKind::Query),
        ("INSERT INTO t (id, v) VALUES (1, NULL)", ErrorKind::Query),
    ] {
        let error = execute_err(&source, sql, sql).await;
        assert_eq!(error.kind(), kind, "{sql}: {error}");
        assert!(error.sql_state().is_some(), "{sql}: no result code");
        assert!(!error.is_temporary());
    }
    let error = query_err(&source, "SELECT * FROM nowhere", "missing table").await;
    assert!(
        error.message().contains("no such table: nowhere"),
        "{error}"
    );
}

#[tokio::test]
async fn close_stops_streams_and_refuses_calls() {
    let source = source(memory("closing").with_pool(pool(2)));
    let mut slow = source
        .stream(&Statement::new(series(1_000_000)), &opts())
        .await
        .unwrap();
    slow.next().await.unwrap().unwrap();
    let started = Instant::now();
    source.close().await;
    assert_elapsed_below(
        started,
        Duration::from_secs(2),
        "close with an unread stream",
    );
    // The open stream ends with an error, never as a silently shorter result.
    let mut ended_with_error = false;
    while let Some(item) = slow.next().await {
        if let Err(error) = item {
            assert_eq!(error.kind(), ErrorKind::Closed, "{error}");
            ended_with_error = true;
        }
    }
    assert!(ended_with_error);
    let error = source.ping().await.expect_err("closed");
    assert_eq!(error.kind(), ErrorKind::Closed);
    source.close().await;
}

#[test]
fn build_needs_no_runtime_and_debug_shows_no_secret() {
    let source = source(
        ConnectorConfig::new("local", DbKind::Sqlite)
            .with_database("/nonexistent/dir/x.db")
            .with_password("hunter2-sentinel"),
    );
    let debug = format!("{source:?}");
    assert!(debug.contains("/nonexistent/dir/x.db"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert_eq!(source.database(), "/nonexistent/dir/x.db");
}

#[tokio::test]
async fn a_transaction_cannot_outlive_its_call() {
    let source = source(memory("transactions").with_pool(pool(1)));
    exec(&source, "CREATE TABLE t (v INTEGER)").await;
    for sql in ["BEGIN", "begin immediate", "SAVEPOINT a"] {
        let error = execute_err(&source, sql, "left open").await;
        assert_eq!(error.kind(), ErrorKind::Query, "{sql}: {error}");
        assert!(error.message().contains("rolled back"), "{sql}: {error}");
        // The one connection is not in a transaction: this write commits on its own.
        exec(&source, "INSERT INTO t VALUES (1)").await;
    }
    // Several statements in one call are refused (one statement per call), so a
    // transaction spans no statements of its own: `execute_batch` is the way.
    let error = execute_err(
        &source,
        "BEGIN; INSERT INTO t VALUES (2); COMMIT",
        "one statement per call",
    )
    .await;
    assert_eq!(error.kind(), ErrorKind::Query, "{error}");
    assert_scalar(&source, "SELECT count(*) FROM t", Value::I64(3)).await;
    // A column named like the keyword costs a check, nothing else.
    exec(&source, "CREATE TABLE s (begin_date TEXT)").await;
    assert_eq!(
        exec(&source, "INSERT INTO s (begin_date) VALUES ('x')").await,
        1
    );
}

/// 48 first calls at once on a fresh file with `journal_mode=wal`: pooled connections
/// that each switched the file to WAL failed now and then with an immediate `SQLITE_BUSY`
/// (about one call in 2 500; 150 rounds make a miss unlikely).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_on_a_fresh_wal_file_all_succeed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut failures = Vec::new();
    for round in 0..150 {
        let mut config =
            at(&dir, &format!("fresh-{round}")).with_options("journal_mode=wal&mode=rwc");
        config.pool = pool(16);
        let source = source(config);
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let source = Arc::clone(&source);
                tokio::spawn(async move {
                    let statement = Statement::new("SELECT :p AS v").bind("p", i64::from(i));
                    let started = Instant::now();
                    (source.query(&statement, &opts()).await, started.elapsed())
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.expect("a call panicked") {
                (Ok(result), _) => assert_eq!(result.rows[0].values()[0], Value::I64(i as i64)),
                (Err(e), elapsed) => failures.push(format!(
                    "round {round} call {i} after {elapsed:?}: {e} (kind {:?}, code {:?})",
                    e.kind(),
                    e.sql_state()
                )),
            }
        }
        source.close().await;
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
}

/// Switching to WAL is a write that starts as a read, and SQLite does not wait for a
/// read to become a write while another connection holds the write lock (it could be a
/// deadlock): the switch fails at once with `SQLITE_BUSY`. The source retries it (up to
/// the busy timeout) instead of failing the call.
#[tokio::test]
async fn switching_to_wal_waits_for_another_programs_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let mut writer = other_program(&path).await;
    raw(
        &mut writer,
        "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)",
    )
    .await;
    // A RESERVED lock on the (rollback-journal) file: another program is writing.
    raw(&mut writer, "BEGIN IMMEDIATE").await;

    let source = source(file(&dir, "shared").with_options("journal_mode=wal&busy_timeout=5s"));
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        raw(&mut writer, "COMMIT").await;
        writer
    });
    let started = Instant::now();
    let value = source
        .query(&Statement::new("SELECT v FROM t"), &opts())
        .await
        .unwrap_or_else(|e| panic!("the switch to WAL failed instead of waiting: {e}"));
    assert_eq!(value.rows[0].values()[0], Value::I64(1));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    drop(release.await.unwrap());
    assert_scalar(&source, "PRAGMA journal_mode", Value::Text("wal".into())).await;
}

/// A decimal keeps every digit only where SQLite stores it as text: NUMERIC affinity
/// (`DECIMAL`) turns it into a REAL of 15 significant digits, and what is read back then
/// is that REAL, never a `Decimal` with invented digits.
#[tokio::test]
async fn long_decimals_keep_their_digits_only_in_text_columns() {
    let source = source(memory("decimals"));
    exec(
        &source,
        "CREATE TABLE d (numeric DECIMAL(38,10), exact DECIMAL TEXT(38,10), text TEXT, \
         untyped)",
    )
    .await;
    let long: extdata_core::Decimal = "12345678901234567890.1234567890".parse().unwrap();
    let short: extdata_core::Decimal = "-1234567.25".parse().unwrap();
    let insert = "INSERT INTO d VALUES (:v, :v, :v, :v)";
    for value in [&long, &short] {
        let statement = Statement::new(insert).bind("v", Value::Decimal(value.clone()));
        source.execute(&statement, &opts()).await.unwrap();
    }
    let result = query(
        &source,
        "SELECT numeric, exact, text, untyped FROM d ORDER BY rowid",
    )
    .await;
    let lossy = 12_345_678_901_234_567_890.123_456_789_f64;
    assert_eq!(
        result.rows[0].values(),
        [
            Value::F64(lossy),
            Value::Decimal(long.clone()),
            Value::Text(long.to_string()),
            Value::Text(long.to_string()),
        ]
    );
    assert_eq!(
        result.rows[1].values(),
        [
            Value::Decimal(short.clone()),
            Value::Decimal(short.clone()),
            Value::Text(short.to_string()),
            Value::Text(short.to_string()),
        ]
    );
    let columns = result.columns;
    assert_eq!(columns[1].value_kind, ValueKind::Decimal);
}

#[tokio::test]
async fn a_batch_is_one_transaction_even_when_it_times_out() {
    // One connection: whatever the batch leaves behind, the next calls see it.
    let dir = tempfile::tempdir().unwrap();
    let source = one_connection(file(&dir, "batch"), Duration::from_secs(1));
    assert!(source.batches_are_atomic());
    exec(&source, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    let insert = |id: i64| Statement::new(format!("INSERT INTO t (id) VALUES ({id})"));

    let affected = source
        .execute_batch(&[insert(1), insert(2)], &opts())
        .await
        .expect("a batch of two INSERTs");
    assert_eq!(affected, vec![1, 1]);

    // The third statement runs past the timeout: it is interrupted and the two INSERTs
    // before it are rolled back with it.
    let started = Instant::now();
    let endless_insert = Statement::new(format!(
        "INSERT INTO t (id) SELECT n + 100 FROM ({ENDLESS})"
    ));
    let error = source
        .execute_batch(&[insert(3), insert(4), endless_insert], &opts())
        .await
        .expect_err("an endless statement cannot succeed");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_elapsed_below(
        started,
        Duration::from_secs(2),
        "the batch with a 1s timeout",
    );
    assert_scalar(&source, "SELECT count(*) FROM t", Value::I64(2)).await;

    // Transaction control would end the batch's own transaction: refused before anything
    // runs.
    let error = source
        .execute_batch(&[insert(5), Statement::new("COMMIT")], &opts())
        .await
        .expect_err("COMMIT inside a batch");
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    assert!(error.message().contains("statement 2"), "{error}");
    assert_scalar(&source, "SELECT count(*) FROM t", Value::I64(2)).await;

    // A failing statement names its place in the batch; the batch is rolled back and the
    // connection is usable (no transaction left open: a later write commits on its own).
    let error = source
        .execute_batch(&[insert(6), insert(1)], &opts())
        .await
        .expect_err("a duplicate key");
    assert!(error.message().contains("statement 2 of 2"), "{error}");
    exec(&source, "INSERT INTO t (id) VALUES (7)").await;
    let other = self::source(file(&dir, "batch"));
    assert_eq!(
        scalar(
            &other,
            "SELECT group_concat(id) FROM (SELECT id FROM t ORDER BY id)"
        )
        .await,
        Value::Text("1,2,7".into())
    );
}

#[tokio::test]
async fn a_dropped_call_interrupts_its_statement_and_frees_the_connection() {
    // One connection and a long timeout: only the drop can stop the statement in time.
    let source = one_connection(memory("dropped"), Duration::from_secs(60));
    exec(&source, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    let endless_insert = Statement::new(format!(
        "INSERT INTO t (id) SELECT n + 100 FROM ({ENDLESS})"
    ));
    let calls: [(&str, Vec<Statement>); 3] = [
        ("execute", vec![endless_insert.clone()]),
        ("query", vec![Statement::new(ENDLESS)]),
        (
            "execute_batch",
            vec![
                Statement::new("INSERT INTO t (id) VALUES (1)"),
                endless_insert.clone(),
            ],
        ),
    ];
    for (operation, statements) in calls {
        let call = async {
            match operation {
                "execute" => source.execute(&statements[0], &opts()).await.map(|_| ()),
                "query" => source.query(&statements[0], &opts()).await.map(|_| ()),
                _ => source.execute_batch(&statements, &opts()).await.map(|_| ()),
            }
        };
        // The caller gives up after 300 ms (e.g. its own request was cancelled).
        let gave_up = tokio::time::timeout(Duration::from_millis(300), call).await;
        assert!(gave_up.is_err(), "{operation}: the endless statement ended");
        let started = Instant::now();
        assert_scalar(&source, "SELECT count(*) FROM t", Value::I64(0)).await;
        let waited = started.elapsed();
        eprintln!("{operation}: the next call ran {waited:?} after the drop");
        assert!(
            waited < Duration::from_secs(2),
            "{operation}: the next call waited {waited:?} for the dropped one's connection"
        );
    }
}

// ---- Hostile SQL: one statement per call, nothing outside the database file, no
// ---- session state that outlives a call.

/// Runs `sql` through every call that takes SQL (query, stream, execute, describe,
/// execute_batch) and asserts that each refuses it with `kind`.
async fn refused_by_every_call(source: &SqliteSource, sql: &str, kind: ErrorKind) {
    let statement = Statement::new(sql);
    let errors = [
        ("query", source.query(&statement, &opts()).await.err()),
        ("stream", source.stream(&statement, &opts()).await.err()),
        ("execute", source.execute(&statement, &opts()).await.err()),
        ("describe", source.describe(&statement, &opts()).await.err()),
        (
            "execute_batch",
            source
                .execute_batch(&[Statement::new("SELECT 1"), statement.clone()], &opts())
                .await
                .err(),
        ),
    ];
    for (call, error) in errors {
        let error = error.unwrap_or_else(|| panic!("{call} ran `{sql}`"));
        assert_eq!(error.kind(), kind, "{call} `{sql}`: {error}");
        assert_eq!(error.connector(), Some(source.name()), "{call}");
    }
}

/// A file database with `t (x)` holding one row, and a read-write source on it.
async fn file_with_table(dir: &tempfile::TempDir, name: &str) -> Arc<SqliteSource> {
    let writer = source(file(dir, name).with_pool(pool(1)));
    exec(&writer, "CREATE TABLE t (x INTEGER)").await;
    exec(&writer, "INSERT INTO t VALUES (1)").await;
    writer
}

#[tokio::test]
async fn several_statements_in_one_string_are_refused_before_any_runs() {
    let dir = tempfile::tempdir().unwrap();
    let writer = file_with_table(&dir, "multi").await;
    let reader = source(file(&dir, "multi").with_read_only(true).with_pool(pool(1)));
    for sql in [
        "INSERT INTO t VALUES (2); INSERT INTO t VALUES (3)",
        "INSERT INTO t VALUES (2);DELETE FROM t",
        "SELECT 1; INSERT INTO t VALUES (2)",
        "PRAGMA query_only=OFF; INSERT INTO t VALUES (2)",
        "INSERT INTO t VALUES (2) -- c\n; /* c */ 'x'",
        ";INSERT INTO t VALUES (2)",
        // SQLite reads `$a(')` as one parameter token: the `;` is outside any string.
        "SELECT $a(') ; INSERT INTO t VALUES (2) --'",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END",
        "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN ATTACH 'x.db' AS x; END",
    ] {
        for source in [&writer, &reader] {
            refused_by_every_call(source, sql, ErrorKind::Query).await;
        }
    }
    let error = execute_err(&writer, "SELECT 1\0; DELETE FROM t", "NUL").await;
    assert_eq!(error.kind(), ErrorKind::Query, "{error}");
    // Not even the first statement ran.
    assert_scalar(&writer, "SELECT count(*) FROM t", Value::I64(1)).await;
    // One statement with trailing `;`, comments and `;` inside literals still runs.
    exec(&writer, "INSERT INTO t VALUES (length(';x;')) ; ; -- done").await;
    assert_scalar(
        &reader,
        "SELECT sum(x) FROM t /* ; DELETE */ ;",
        Value::I64(4),
    )
    .await;
}

#[tokio::test]
async fn read_only_holds_after_any_earlier_call_on_a_one_connection_pool() {
    let dir = tempfile::tempdir().unwrap();
    let writer = file_with_table(&dir, "ro-calls").await;
    let file_reader = source(
        file(&dir, "ro-calls")
            .with_read_only(true)
            .with_pool(pool(1)),
    );
    let memory_reader = source(
        memory("ro-memory-calls")
            .with_read_only(true)
            .with_pool(pool(1)),
    );
    for reader in [&file_reader, &memory_reader] {
        for sql in [
            "PRAGMA query_only=OFF",
            "pragma QUERY_ONLY = false",
            "PRAGMA main.query_only(0)",
            // SQLite applies a pragma while it prepares it: EXPLAIN alone would do.
            "EXPLAIN PRAGMA query_only=OFF",
            "PRAGMA writable_schema=ON",
        ] {
            refused_by_every_call(reader, sql, ErrorKind::Forbidden).await;
        }
        assert_eq!(
            scalar(reader, "SELECT * FROM pragma_query_only").await,
            Value::I64(1)
        );
    }
    for sql in [
        "INSERT INTO t VALUES (2)",
        "INSERT INTO t VALUES (2) RETURNING x",
        "WITH n AS (SELECT 2) INSERT INTO t SELECT * FROM n",
        "UPDATE t SET x = 5 RETURNING x",
    ] {
        let statement = Statement::new(sql);
        let query = file_reader.query(&statement, &opts()).await.expect_err(sql);
        assert_eq!(query.kind(), ErrorKind::ReadOnly, "query `{sql}`: {query}");
        let execute = file_reader
            .execute(&statement, &opts())
            .await
            .expect_err(sql);
        assert_eq!(
            execute.kind(),
            ErrorKind::ReadOnly,
            "execute `{sql}`: {execute}"
        );
    }
    let error = execute_err(&memory_reader, "CREATE TABLE t (x INTEGER)", "query_only").await;
    assert_eq!(error.kind(), ErrorKind::ReadOnly, "{error}");
    assert_scalar(&writer, "SELECT sum(x) FROM t", Value::I64(1)).await;
}

#[tokio::test]
async fn attach_and_detach_are_refused_on_every_connector() {
    let dir = tempfile::tempdir().unwrap();
    let writer = file_with_table(&dir, "main").await;
    let other = file_with_table(&dir, "other").await;
    let other_path = dir.path().join("other.db");
    let other_path = other_path.to_str().unwrap();
    let new_path = dir.path().join("created-by-attach.db");
    let new_path = new_path.to_str().unwrap();
    let reader = source(file(&dir, "main").with_read_only(true).with_pool(pool(1)));
    let memory = source(memory("attach-memory").with_pool(pool(1)));
    for source in [&writer, &reader, &memory] {
        for sql in [
            format!("ATTACH '{other_path}' AS o"),
            format!("attach database '{other_path}' as o"),
            format!("/* c */ -- c\n\t AtTaCh\n'{other_path}' AS o"),
            format!("ATTACH 'file:{new_path}?mode=rwc' AS o"),
            format!("ATTACH '{new_path}' AS o"),
            "ATTACH '/etc/passwd' AS o".to_owned(),
            format!("EXPLAIN ATTACH '{other_path}' AS o"),
            format!("EXPLAIN QUERY PLAN ATTACH '{other_path}' AS o"),
            "DETACH o".to_owned(),
        ] {
            refused_by_every_call(source, &sql, ErrorKind::Forbidden).await;
        }
        // Nothing was attached: the other file's table cannot be reached or written.
        let error = execute_err(source, "INSERT INTO o.t VALUES (2)", "no database o").await;
        assert!(error.message().contains("no such table: o.t"), "{error}");
        assert_eq!(
            scalar(
                source,
                "SELECT count(*) FROM pragma_database_list WHERE name = 'o'"
            )
            .await,
            Value::I64(0)
        );
    }
    assert_scalar(&other, "SELECT count(*) FROM t", Value::I64(1)).await;
    assert!(
        !std::path::Path::new(new_path).exists(),
        "ATTACH created a file"
    );
}

#[tokio::test]
async fn vacuum_into_is_refused_and_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let writer = file_with_table(&dir, "vacuum").await;
    let reader = source(file(&dir, "vacuum").with_read_only(true));
    let copy = dir.path().join("copy.db");
    let copy = copy.to_str().unwrap();
    for source in [&writer, &reader] {
        for sql in [
            format!("VACUUM INTO '{copy}'"),
            format!("vacuum main /* c */ into '{copy}'"),
            format!("EXPLAIN VACUUM INTO '{copy}'"),
        ] {
            refused_by_every_call(source, &sql, ErrorKind::Forbidden).await;
        }
    }
    assert!(
        !std::path::Path::new(copy).exists(),
        "VACUUM INTO wrote a file"
    );
    // A plain VACUUM stays a read-write connector's maintenance of its own file.
    exec(&writer, "VACUUM").await;
}

#[tokio::test]
async fn extension_loading_and_tokenizer_pointers_stay_out_of_reach() {
    let dir = tempfile::tempdir().unwrap();
    let writer = file_with_table(&dir, "extensions").await;
    // Refused by SQLite itself (the connection never enables extension loading).
    let error = query_err(
        &writer,
        "SELECT load_extension('/nonexistent/evil.so')",
        "load_extension",
    )
    .await;
    assert!(error.message().contains("not authorized"), "{error}");
    refused_by_every_call(
        &writer,
        "SELECT fts3_tokenizer('simple')",
        ErrorKind::Forbidden,
    )
    .await;
}

#[tokio::test]
async fn no_session_state_crosses_calls_on_a_one_connection_pool() {
    let dir = tempfile::tempdir().unwrap();
    let writer = file_with_table(&dir, "session").await;
    for sql in [
        "PRAGMA case_sensitive_like=ON",
        "PRAGMA foreign_keys=OFF",
        "PRAGMA [foreign_keys] = 0",
        "PRAGMA recursive_triggers=ON",
        "PRAGMA reverse_unordered_selects=ON",
        "PRAGMA busy_timeout=0",
        "PRAGMA journal_mode=OFF",
        "PRAGMA temp_store_directory='/tmp'",
        "PRAGMA cache_size=-1",
        "CREATE TEMP TABLE secrets (x)",
        "CREATE TEMPORARY VIEW v AS SELECT 1",
        "CREATE TABLE temp.secrets (x)",
        "CREATE TABLE \"TEMP\".secrets AS SELECT 1",
        "CREATE INDEX temp.i ON t (x)",
        "CREATE VIRTUAL TABLE temp.f USING fts5(x)",
    ] {
        refused_by_every_call(&writer, sql, ErrorKind::Forbidden).await;
    }
    // The next calls, on the same (only) connection, see the connector's defaults.
    for (sql, expected) in [
        ("SELECT 'a' LIKE 'A'", Value::I64(1)),
        ("SELECT * FROM pragma_foreign_keys", Value::I64(1)),
        ("SELECT * FROM pragma_recursive_triggers", Value::I64(0)),
        (
            "SELECT * FROM pragma_reverse_unordered_selects",
            Value::I64(0),
        ),
        ("SELECT count(*) FROM temp.sqlite_schema", Value::I64(0)),
    ] {
        assert_eq!(scalar(&writer, sql).await, expected, "{sql}");
    }
    // Pragmas that read work, with or without an argument.
    let columns = query(&writer, "PRAGMA table_info(t)").await;
    assert_eq!(columns.rows.len(), 1);
    assert_scalar(&writer, "PRAGMA foreign_keys", Value::I64(1)).await;
    // A call whose statement is a PRAGMA (SQLite applies pragmas while preparing) does
    // not hand its connection on: the next call gets a fresh one. Seen through
    // `last_insert_rowid()`, which is per connection.
    exec(&writer, "INSERT INTO t VALUES (7)").await;
    assert_scalar(&writer, "SELECT last_insert_rowid()", Value::I64(2)).await;
    describe(&writer, "PRAGMA index_list(t)").await;
    assert_scalar(&writer, "SELECT last_insert_rowid()", Value::I64(0)).await;
    // A table named like the keyword, or a column called temp, is not a temp object.
    exec(
        &writer,
        "CREATE TABLE readings (temp REAL, \"temporary\" TEXT)",
    )
    .await;
    assert_eq!(
        scalar(
            &writer,
            "SELECT count(*) FROM main.sqlite_schema WHERE name = 'readings'"
        )
        .await,
        Value::I64(1)
    );
}
