//! Read-only and session isolation against the live server, tried as a hostile account
//! would: SQL that tries to leave the read-only transaction or to leave state on a
//! pooled connection for the next call (possibly another account's).

mod support;

use std::time::Duration;

use extdata_conformance::support::{eventually, int_of, unique_name};
use extdata_core::{
    ConnectorConfig, ErrorKind, ExternalSource, PoolConfig, QueryOptions, Scalar, Statement, Value,
};
use extdata_mysql::MySqlSource;
use sqlx::{AssertSqlSafe, Connection};

use support::{assert_locks_freed, scalar, source};

fn opts() -> QueryOptions {
    QueryOptions::default()
}

/// One connection only: every call of the source reuses it (when it is pooled again).
fn single(config: ConnectorConfig) -> ConnectorConfig {
    config.with_pool(PoolConfig {
        max_size: Some(Scalar::Int(1)),
        ..Default::default()
    })
}

/// A fresh table `name (v INT)`, made by a read-write source.
/// Runs `sql` (setup), which must succeed.
async fn setup(writer: &MySqlSource, sql: &str) {
    writer
        .execute(&Statement::new(sql), &opts())
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
}

async fn table(writer: &MySqlSource, hint: &str) -> String {
    let name = unique_name(hint);
    let create = format!("CREATE TABLE {name} (v INT) ENGINE = InnoDB");
    setup(writer, &create).await;
    name
}

async fn rows_in(writer: &MySqlSource, table: &str) -> Option<i128> {
    int_of(&scalar(writer, &format!("SELECT COUNT(*) FROM {table}")).await)
}

/// A writer, a table of its own (named after the hint) and a read-only reader of one
/// connection on the test server; the test returns when there is no server.
macro_rules! read_only_case {
    ($hint:expr) => {{
        let server = server!();
        let writer = source(server.tcp());
        let name = table(&writer, $hint).await;
        let reader = source(single(server.tcp().with_read_only(true)));
        (writer, name, reader)
    }};
}

/// The rows of `table`, which is dropped.
async fn rows_then_drop(writer: &MySqlSource, table: &str) -> Option<i128> {
    let rows = rows_in(writer, table).await;
    drop_table(writer, table).await;
    rows
}

async fn drop_table(writer: &MySqlSource, table: &str) {
    let _ = writer
        .execute(&Statement::new(format!("DROP TABLE {table}")), &opts())
        .await;
}

/// The error of `sql` run through `query` and `execute`, which must both be `kind`.
async fn refused_everywhere(source: &MySqlSource, sql: &str, kind: ErrorKind) {
    let statement = Statement::new(sql);
    let err = source.query(&statement, &opts()).await.unwrap_err();
    assert_eq!(err.kind(), kind, "query `{sql}`: {err}");
    let err = source.execute(&statement, &opts()).await.unwrap_err();
    assert_eq!(err.kind(), kind, "execute `{sql}`: {err}");
    let err = source
        .execute_batch(std::slice::from_ref(&statement), &opts())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), kind, "execute_batch `{sql}`: {err}");
}

#[tokio::test]
async fn server_alone_lets_a_compound_statement_commit_out_of_a_read_only_transaction() {
    // Why the statement check exists: MariaDB prepares `BEGIN NOT ATOMIC … END`, and a
    // COMMIT inside it ends the read-only transaction it runs in.
    let server = server!();
    let writer = source(server.tcp());
    let name = table(&writer, "ro_server").await;
    let url = std::env::var("EXTDATA_TEST_MYSQL_URL").expect("EXTDATA_TEST_MYSQL_URL");
    let mut conn = sqlx::MySqlConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(AssertSqlSafe(
        "SET SESSION TRANSACTION READ ONLY; START TRANSACTION READ ONLY",
    ))
    .execute(&mut conn)
    .await
    .expect("begin");
    let compound = format!(
        "BEGIN NOT ATOMIC COMMIT; SET SESSION TRANSACTION READ WRITE; \
         INSERT INTO {name} VALUES (1); END"
    );
    // Prepared (an argument list, even empty, makes sqlx prepare), as the source runs
    // every statement.
    let prepared = sqlx::query_with(
        AssertSqlSafe(compound),
        sqlx::mysql::MySqlArguments::default(),
    )
    .execute(&mut conn)
    .await;
    let _ = conn.close().await;
    assert!(prepared.is_ok(), "{prepared:?}");
    assert_eq!(rows_then_drop(&writer, &name).await, Some(1));
}

#[tokio::test]
async fn read_only_refuses_compound_statements_before_they_run() {
    let (writer, name, reader) = read_only_case!("ro_compound");
    for sql in [
        format!(
            "BEGIN NOT ATOMIC SET SESSION TRANSACTION READ WRITE; \
             INSERT INTO {name} VALUES (1); END"
        ),
        format!("BEGIN NOT ATOMIC COMMIT; INSERT INTO {name} VALUES (2); END"),
        format!("/* hi */ begin not atomic commit; insert into {name} values (3); end"),
        // An executable comment is code to the server, not a comment.
        format!("/*!BEGIN NOT ATOMIC*/ SELECT 1; COMMIT; INSERT INTO {name} VALUES (4); END"),
        format!("IF 1 THEN COMMIT; INSERT INTO {name} VALUES (5); END IF"),
        format!("FOR i IN 1..1 DO COMMIT; INSERT INTO {name} VALUES (6); END FOR"),
        format!("CALL no_such_procedure_{name}()"),
    ] {
        refused_everywhere(&reader, &sql, ErrorKind::ReadOnly).await;
    }
    let err = reader
        .describe(
            &Statement::new(format!(
                "BEGIN NOT ATOMIC COMMIT; INSERT INTO {name} VALUES (7); END"
            )),
            &opts(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
    assert!(err.message().contains("`BEGIN`"), "{err}");
    assert_eq!(rows_then_drop(&writer, &name).await, Some(0));
}

#[tokio::test]
async fn read_only_transaction_control_is_refused_and_the_next_call_still_cannot_write() {
    let (writer, name, reader) = read_only_case!("ro_control");
    let insert = Statement::new(format!("INSERT INTO {name} VALUES (1)"));
    for sql in [
        "COMMIT",
        "ROLLBACK",
        "START TRANSACTION READ WRITE",
        "BEGIN",
        "SET SESSION TRANSACTION READ WRITE",
        "SET TRANSACTION READ WRITE",
        "SET autocommit = 1",
        "SET autocommit = 0",
        "SET @@session.tx_read_only = 0",
        "SET STATEMENT tx_read_only = 0 FOR SELECT 1",
        "XA START 'x'",
        "LOCK TABLES mysql.user READ",
        "/*!COMMIT*/",
    ] {
        refused_everywhere(&reader, sql, ErrorKind::ReadOnly).await;
        // Refused or not, the next call (same connection) is still read-only.
        let err = reader.execute(&insert, &opts()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReadOnly, "after `{sql}`: {err}");
        assert_eq!(err.sql_state(), Some("25006"), "after `{sql}`: {err}");
    }
    assert_eq!(rows_then_drop(&writer, &name).await, Some(0));
}

#[tokio::test]
async fn read_only_writes_through_query_functions_and_returning_are_refused_by_the_server() {
    let server = server!();
    let writer = source(server.tcp());
    let name = table(&writer, "ro_dml").await;
    let function = format!("{name}_f");
    writer
        .execute(
            &Statement::new(format!(
                "CREATE FUNCTION {function}() RETURNS INT MODIFIES SQL DATA \
                 BEGIN INSERT INTO {name} VALUES (9); RETURN 1; END"
            )),
            &opts(),
        )
        .await
        .expect("create function");
    let reader = source(single(server.tcp().with_read_only(true)));
    for sql in [
        format!("INSERT INTO {name} VALUES (1) RETURNING v"),
        format!("REPLACE INTO {name} VALUES (2) RETURNING v"),
        format!("DELETE FROM {name} RETURNING v"),
        format!("SELECT {function}()"),
        format!("WITH x AS (SELECT 1) SELECT {function}() FROM x"),
    ] {
        let err = reader
            .query(&Statement::new(&sql), &opts())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReadOnly, "{sql}: {err}");
        assert_eq!(err.sql_state(), Some("25006"), "{sql}: {err}");
    }
    assert_eq!(rows_in(&writer, &name).await, Some(0));
    let _ = writer
        .execute(
            &Statement::new(format!("DROP FUNCTION {function}")),
            &opts(),
        )
        .await;
    drop_table(&writer, &name).await;
}

#[tokio::test]
async fn read_only_refuses_ddl_temporary_tables_and_named_locks_by_statement() {
    let server = server!();
    let reader = source(single(server.tcp().with_read_only(true)));
    for sql in [
        "CREATE TEMPORARY TABLE ro_tmp (a INT)",
        "CREATE TABLE ro_ddl (a INT)",
        "DROP TABLE IF EXISTS ro_ddl",
        "DO GET_LOCK('ro_lock', 0)",
        "SET @x = 1",
        "SET ROLE NONE",
        "PREPARE s FROM 'SELECT 1'",
        "HANDLER mysql.user OPEN",
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t",
    ] {
        refused_everywhere(&reader, sql, ErrorKind::ReadOnly).await;
    }
    // The temporary table does not exist afterwards.
    let err = reader
        .query(&Statement::new("SELECT * FROM ro_tmp"), &opts())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Query, "{err}");
}

#[tokio::test]
async fn read_only_refuses_into_outfile_itself_and_the_server_refuses_it_without_file_privilege() {
    let server = server!();
    let reader = source(server.tcp().with_read_only(true));
    for sql in [
        "SELECT 1 INTO OUTFILE '/tmp/extdata_outfile'",
        "SELECT 1 INTO DUMPFILE '/tmp/extdata_dumpfile'",
        "SELECT 1 /*!INTO OUTFILE '/tmp/extdata_outfile2'*/",
    ] {
        let err = reader
            .query(&Statement::new(sql), &opts())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReadOnly, "{sql}: {err}");
        assert!(err.message().contains("OUTFILE"), "{sql}: {err}");
    }
    // A read-write connector reaches the server, which refuses: the test user has no
    // FILE privilege (error 1227).
    let writer = source(server.tcp());
    let err = writer
        .query(
            &Statement::new("SELECT 1 INTO OUTFILE '/tmp/extdata_outfile'"),
            &opts(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1227"), "{err}");
    assert!(err.to_string().contains("FILE"), "{err}");
}

#[tokio::test]
async fn every_call_is_one_prepared_statement() {
    let server = server!();
    let writer = source(server.tcp());
    // The text protocol would run both; the prepared one refuses the second.
    let err = writer
        .query(&Statement::new("SELECT 1; SELECT 2"), &opts())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Query, "{err}");
    assert!(err.to_string().contains("1064"), "{err}");
}

/// The session as a call sees it: settings, variables, role, whether it holds the
/// named locks `lock` and `{lock}_b`, transaction mode.
///
/// Named locks are server-wide, and a connection that is closed rather than reset
/// (after `DO`, say) lets go of its locks when the server's thread for it ends, which
/// can be a moment after the next call started on a new connection: this asks whether
/// the caller's own session holds them; `assert_locks_freed` waits for them to be free.
async fn session_of(source: &MySqlSource, lock: &str) -> String {
    let sql = format!(
        "SELECT CONCAT_WS('|', @@sql_mode, @@time_zone, @@collation_connection, \
         @@character_set_client, @@autocommit, @@tx_read_only, @@sql_select_limit, \
         @@div_precision_increment, IFNULL(@x, 'no @x'), IFNULL(@y, 'no @y'), \
         IFNULL(CURRENT_ROLE(), 'no role'), \
         IF(IS_USED_LOCK('{lock}') <=> CONNECTION_ID(), 'holds lock', 'no lock'), \
         IF(IS_USED_LOCK('{lock}_b') <=> CONNECTION_ID(), 'holds lock_b', 'no lock_b'), \
         @@in_transaction, YEAR(NOW()) > 2000, LAST_INSERT_ID())"
    );
    match scalar(source, &sql).await {
        Value::Text(text) => text,
        // CONCAT_WS of numbers and strings has a binary collation.
        Value::Bytes(bytes) => String::from_utf8(bytes).expect("utf-8"),
        other => panic!("{other:?}"),
    }
}

async fn connection_id(source: &MySqlSource) -> Value {
    scalar(source, "SELECT CONNECTION_ID()").await
}

/// Runs `sql` (errors included: some are refused or fail on purpose) and returns
/// whether it ran.
async fn attempt(source: &MySqlSource, sql: &str) -> bool {
    source.execute(&Statement::new(sql), &opts()).await.is_ok()
}

/// Every way of leaving state on a connection, each followed by a call that must see
/// the connector's defaults, on a pool of one connection.
async fn session_state_does_not_cross_calls(config: ConnectorConfig) {
    let read_only = config.read_only;
    let lock = unique_name("iso_lock");
    let pristine = session_of(&source(config.clone()), &lock).await;
    let source = source(single(config));
    assert_eq!(session_of(&source, &lock).await, pristine);
    let temporary = unique_name("iso_tmp");
    let attacks = [
        "SET SESSION sql_mode = 'ANSI'".to_owned(),
        "SET SESSION time_zone = '+05:00'".to_owned(),
        "SET SESSION collation_connection = 'latin1_swedish_ci'".to_owned(),
        "SET NAMES latin1".to_owned(),
        "SET SESSION max_statement_time = 0.001".to_owned(),
        "SET SESSION sql_select_limit = 1".to_owned(),
        "SET SESSION div_precision_increment = 1".to_owned(),
        "SET SESSION TRANSACTION READ ONLY".to_owned(),
        "SET SESSION TRANSACTION READ WRITE".to_owned(),
        "SET autocommit = 0".to_owned(),
        "SET timestamp = 1".to_owned(),
        "SET @x = 1".to_owned(),
        "SELECT @y := 2".to_owned(),
        "SELECT 3 INTO @y".to_owned(),
        "SET ROLE NONE".to_owned(),
        format!("CREATE TEMPORARY TABLE {temporary} (a INT)"),
        format!("DO GET_LOCK('{lock}', 0)"),
        format!("SELECT GET_LOCK('{lock}_b', 0)"),
        "SELECT LAST_INSERT_ID(42)".to_owned(),
        "START TRANSACTION".to_owned(),
        "BEGIN NOT ATOMIC SET @x = 5; SET SESSION sql_mode = 'ANSI'; END".to_owned(),
    ];
    let mut ran = Vec::new();
    for sql in &attacks {
        if attempt(&source, sql).await {
            ran.push(sql.as_str());
        }
        assert_eq!(session_of(&source, &lock).await, pristine, "after `{sql}`");
        let lock_b = format!("{lock}_b");
        assert_locks_freed(&source, &[&lock, &lock_b], Duration::from_secs(5)).await;
        let err = source
            .query(
                &Statement::new(format!("SELECT * FROM {temporary}")),
                &opts(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Query, "after `{sql}`: {err}");
        // The server-side limit is the call's again (not 1 ms).
        scalar(&source, "SELECT SLEEP(0.05)").await;
    }
    if read_only {
        // Only the plain SELECTs run on a read-only connector.
        let plain = [
            "SELECT @y := 2".to_owned(),
            "SELECT 3 INTO @y".to_owned(),
            format!("SELECT GET_LOCK('{lock}_b', 0)"),
            "SELECT LAST_INSERT_ID(42)".to_owned(),
        ];
        assert_eq!(ran, plain);
    } else {
        assert_eq!(
            ran.len(),
            attacks.len(),
            "every attack runs read-write: {ran:?}"
        );
    }
}

#[tokio::test]
async fn session_state_does_not_cross_calls_on_a_read_write_connector() {
    let server = server!();
    session_state_does_not_cross_calls(server.tcp()).await;
}

#[tokio::test]
async fn session_state_does_not_cross_calls_on_a_read_only_connector() {
    let server = server!();
    session_state_does_not_cross_calls(server.tcp().with_read_only(true)).await;
}

#[tokio::test]
async fn session_state_does_not_cross_calls_with_the_connectors_own_settings() {
    let server = server!();
    let config = server.tcp().with_options(
        "collation_connection=utf8mb4_unicode_ci&timezone=+02:00&sql_mode=ANSI_QUOTES",
    );
    let settings = source(config.clone());
    assert_eq!(
        scalar(
            &settings,
            "SELECT CONCAT_WS('|', @@collation_connection, @@time_zone, @@sql_mode)"
        )
        .await,
        Value::Text("utf8mb4_unicode_ci|+02:00|ANSI_QUOTES".into())
    );
    session_state_does_not_cross_calls(config).await;
}

#[tokio::test]
async fn stored_functions_cannot_leave_session_state_for_the_next_call() {
    let server = server!();
    let writer = source(server.tcp());
    let function = unique_name("iso_f");
    let lock = unique_name("iso_lock");
    writer
        .execute(
            &Statement::new(format!(
                "CREATE FUNCTION {function}() RETURNS INT NO SQL BEGIN \
                 SET SESSION sql_select_limit = 1; SET SESSION div_precision_increment = 1; \
                 SET SESSION time_zone = '+07:00'; SET @x = 7; \
                 DO GET_LOCK('{lock}', 0); RETURN 1; END"
            )),
            &opts(),
        )
        .await
        .expect("create function");
    for read_only in [false, true] {
        let config = server.tcp().with_read_only(read_only);
        let pristine = session_of(&source(config.clone()), &lock).await;
        let single = source(single(config));
        assert_eq!(
            int_of(&scalar(&single, &format!("SELECT {function}()")).await),
            Some(1)
        );
        assert_eq!(
            session_of(&single, &lock).await,
            pristine,
            "read_only = {read_only}"
        );
        let lock_b = format!("{lock}_b");
        assert_locks_freed(&single, &[&lock, &lock_b], Duration::from_secs(5)).await;
    }
    let _ = writer
        .execute(
            &Statement::new(format!("DROP FUNCTION {function}")),
            &opts(),
        )
        .await;
}

#[tokio::test]
async fn plain_statements_keep_their_connection_and_others_close_it() {
    let server = server!();
    let source = source(single(server.tcp()));
    let first = connection_id(&source).await;
    assert_eq!(
        connection_id(&source).await,
        first,
        "a plain call keeps its connection"
    );
    assert!(attempt(&source, "DO 1").await);
    let second = connection_id(&source).await;
    assert_ne!(
        second, first,
        "`DO` may change the session: its connection is closed"
    );
    // A user variable set by a plain statement closes it too (it cannot be dropped).
    assert!(attempt(&source, "SELECT @v := 1").await);
    assert_ne!(connection_id(&source).await, second);
}

#[tokio::test]
async fn a_named_lock_taken_by_a_query_is_released_when_the_call_ends() {
    let server = server!();
    let reader = source(server.tcp().with_read_only(true));
    let observer = source(server.tcp());
    let lock = unique_name("iso_lock");
    assert_eq!(
        int_of(&scalar(&reader, &format!("SELECT GET_LOCK('{lock}', 0)")).await),
        Some(1)
    );
    let free = format!("SELECT IS_FREE_LOCK('{lock}')");
    let released = eventually(Duration::from_secs(2), || async {
        int_of(&scalar(&observer, &free).await) == Some(1)
    })
    .await;
    assert!(released, "the lock is still held after the call");
}

/// A sequence's `LASTVAL` is session state no statement resets: the call that used the
/// sequence must not leave it for the next call on the same pool.
#[tokio::test]
async fn a_sequence_used_in_one_call_is_not_seen_by_the_next() {
    let server = server!();
    let writer = source(server.tcp());
    let sequence = unique_name("seq");
    setup(&writer, &format!("CREATE SEQUENCE {sequence}")).await;
    let shared = source(single(server.tcp()));
    let next = scalar(&shared, &format!("SELECT NEXTVAL({sequence})")).await;
    assert_eq!(int_of(&next), Some(1));
    let last = scalar(&shared, &format!("SELECT LASTVAL({sequence})")).await;
    assert_eq!(last, Value::Null, "LASTVAL crossed calls");
    let _ = writer
        .execute(
            &Statement::new(format!("DROP SEQUENCE {sequence}")),
            &opts(),
        )
        .await;
}
