//! SQL written by a hostile account against the live server: a `read_only` connector
//! writes nothing whatever the SQL, and no session state (settings, role, locks,
//! prepared statements, cursors, temporary tables, …) reaches the next call on the
//! same pooled connection — checked on one-connection pools, so that the next call
//! really gets the same connection.

mod support;

use extdata_conformance::support::unique_name;
use extdata_core::{ErrorKind, ExternalSource, QueryOptions, Statement, Value};
use extdata_postgres::PostgresSource;
use futures::StreamExt;

use support::{one_connection, scalar, source};

fn defaults() -> QueryOptions {
    QueryOptions::default()
}

/// Runs each of `statements`, which must succeed.
async fn setup(writer: &PostgresSource, statements: impl IntoIterator<Item = String>) {
    for sql in statements {
        writer
            .execute(&Statement::new(sql.as_str()), &defaults())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn pid(source: &PostgresSource) -> Value {
    scalar(source, "SELECT pg_backend_pid()").await
}

/// A table and a sequence made by a writable connector, dropped at the end.
struct Fixture {
    writer: PostgresSource,
    table: String,
    sequence: String,
}

impl Fixture {
    async fn new(writer: PostgresSource) -> Fixture {
        let table = unique_name("hostile");
        let sequence = format!("{table}_seq");
        setup(
            &writer,
            [
                format!("CREATE TABLE {table} (id int)"),
                format!("CREATE SEQUENCE {sequence}"),
            ],
        )
        .await;
        Fixture {
            writer,
            table,
            sequence,
        }
    }

    /// Rows in the table and whether the sequence was ever advanced, as the writer
    /// sees them.
    async fn untouched(&self) -> bool {
        let rows = scalar(
            &self.writer,
            format!("SELECT count(*) FROM {}", self.table).as_str(),
        )
        .await;
        let called = scalar(
            &self.writer,
            format!("SELECT is_called FROM {}", self.sequence).as_str(),
        )
        .await;
        rows == Value::I64(0) && called == Value::Bool(false)
    }

    async fn drop_all(self) {
        for sql in [
            format!("DROP TABLE IF EXISTS {}", self.table),
            format!("DROP SEQUENCE IF EXISTS {}", self.sequence),
        ] {
            let _ = self
                .writer
                .execute(&Statement::new(sql.as_str()), &defaults())
                .await;
        }
    }
}

/// How an attack is sent.
#[derive(Debug, Clone, Copy)]
enum Via {
    Query,
    Execute,
    Stream,
}

async fn run(source: &PostgresSource, via: Via, sql: &str) -> extdata_core::Result<()> {
    let statement = Statement::new(sql);
    match via {
        Via::Query => source.query(&statement, &defaults()).await.map(|_| ()),
        Via::Execute => source.execute(&statement, &defaults()).await.map(|_| ()),
        Via::Stream => {
            let mut rows = source.stream(&statement, &defaults()).await?;
            while let Some(row) = rows.next().await {
                row?;
            }
            Ok(())
        }
    }
}

/// After an attack: the read-only connector still refuses a plain write, its session
/// still defaults to read-only, and nothing was written.
async fn assert_still_read_only(ro: &PostgresSource, fixture: &Fixture, attack: &str) {
    let insert = Statement::new(format!("INSERT INTO {} VALUES (7)", fixture.table));
    let err = ro
        .execute(&insert, &defaults())
        .await
        .expect_err(&format!("a write after `{attack}`"));
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "after `{attack}`: {err}");
    assert_eq!(
        scalar(
            ro,
            "SELECT current_setting('default_transaction_read_only')"
        )
        .await,
        Value::Text("on".into()),
        "after `{attack}`"
    );
    assert!(fixture.untouched().await, "`{attack}` wrote something");
}

#[tokio::test]
async fn read_only_connector_writes_nothing_whatever_the_sql() {
    let server = server!();
    let fixture = Fixture::new(source(server.tcp())).await;
    let (table, seq) = (fixture.table.clone(), fixture.sequence.clone());
    let procedure = format!("{table}_p");
    fixture
        .writer
        .execute(
            &Statement::new(format!(
                "CREATE PROCEDURE {procedure}() LANGUAGE plpgsql AS $$ BEGIN \
                 PERFORM set_config('default_transaction_read_only', 'off', false); COMMIT; \
                 INSERT INTO {table} VALUES (1); END $$"
            )),
            &defaults(),
        )
        .await
        .expect("create procedure");
    let ro = one_connection(server.tcp().with_read_only(true));
    let marker = format!("/tmp/{table}_copy_program");
    let refused: Vec<(Via, String)> = vec![
        (
            Via::Execute,
            format!(
                "DO $$ BEGIN PERFORM set_config('default_transaction_read_only', 'off', false); \
                 COMMIT; INSERT INTO {table} VALUES (1); END $$"
            ),
        ),
        (
            Via::Query,
            format!(
                "DO $$ BEGIN PERFORM set_config('transaction_read_only', 'off', true); \
                 INSERT INTO {table} VALUES (1); END $$"
            ),
        ),
        (
            Via::Execute,
            format!(
                "DO $$ BEGIN ROLLBACK; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; \
                 INSERT INTO {table} VALUES (1); END $$"
            ),
        ),
        (Via::Execute, format!("CALL {procedure}()")),
        (Via::Execute, "SET TRANSACTION READ WRITE".to_owned()),
        (Via::Query, format!("SELECT nextval('{seq}')")),
        (Via::Execute, format!("SELECT setval('{seq}', 100)")),
        (
            Via::Execute,
            "CREATE TEMP TABLE ect_hostile_tmp (a int)".to_owned(),
        ),
        (
            Via::Execute,
            format!("COPY (SELECT 1) TO PROGRAM 'touch {marker}'"),
        ),
        (Via::Execute, format!("COPY (SELECT 1) TO '{marker}'")),
        (
            Via::Query,
            format!("INSERT INTO {table} VALUES (1) RETURNING id"),
        ),
        (
            Via::Stream,
            format!("INSERT INTO {table} VALUES (1) RETURNING id"),
        ),
        (
            Via::Query,
            format!("WITH w AS (INSERT INTO {table} VALUES (1) RETURNING id) SELECT * FROM w"),
        ),
        (Via::Execute, format!("UPDATE {table} SET id = 2")),
        (Via::Execute, format!("TRUNCATE {table}")),
        (Via::Execute, format!("CREATE TABLE {table}_x (a int)")),
    ];
    for (via, attack) in &refused {
        let result = run(&ro, *via, attack).await;
        assert!(result.is_err(), "{via:?} `{attack}` succeeded");
        assert_still_read_only(&ro, &fixture, attack).await;
    }
    assert!(
        !std::path::Path::new(&marker).exists(),
        "COPY ran a program or wrote a file"
    );

    // These succeed inside the call's transaction and are undone with it.
    for (via, attack) in [
        (
            Via::Execute,
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        ),
        (
            Via::Query,
            "SELECT set_config('default_transaction_read_only', 'off', false)",
        ),
        (Via::Execute, "SET default_transaction_read_only = off"),
        (Via::Execute, "RESET ALL"),
        (Via::Execute, "COMMIT AND CHAIN"),
    ] {
        let _ = run(&ro, via, attack).await;
        assert_still_read_only(&ro, &fixture, attack).await;
    }

    // A batch: first-keyword checks aside, the transaction is the server's.
    for batch in [
        vec![
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE".to_owned(),
            format!("INSERT INTO {table} VALUES (1)"),
        ],
        vec![
            "SET TRANSACTION READ WRITE".to_owned(),
            format!("SELECT nextval('{seq}')"),
        ],
        vec![
            "SELECT set_config('default_transaction_read_only', 'off', false)".to_owned(),
            "COMMIT".to_owned(),
            format!("INSERT INTO {table} VALUES (1)"),
        ],
        vec![
            "SELECT 1".to_owned(),
            "PREPARE TRANSACTION 'ect_hostile'".to_owned(),
            format!("INSERT INTO {table} VALUES (1)"),
        ],
    ] {
        let statements: Vec<Statement> = batch.iter().map(|s| Statement::new(s.as_str())).collect();
        let result = ro.execute_batch(&statements, &defaults()).await;
        assert!(result.is_err(), "batch {batch:?} succeeded");
        assert_still_read_only(&ro, &fixture, &batch.join("; ")).await;
    }
    // A read-only batch that only reads still runs.
    let counts = ro
        .execute_batch(
            &[Statement::new("SELECT 1"), Statement::new("SELECT 2")],
            &defaults(),
        )
        .await
        .expect("a reading batch");
    assert_eq!(counts.len(), 2);

    let _ = fixture
        .writer
        .execute(
            &Statement::new(format!("DROP PROCEDURE IF EXISTS {procedure}")),
            &defaults(),
        )
        .await;
    fixture.drop_all().await;
}

/// A statement that ends the call's read-only transaction writes nothing, and its
/// connection is closed rather than reused; the next call is read-only again.
#[tokio::test]
async fn ending_the_read_only_transaction_drops_its_connection() {
    let server = server!();
    let fixture = Fixture::new(source(server.tcp())).await;
    let ro = one_connection(server.tcp().with_read_only(true));
    for (via, sql) in [
        (Via::Execute, "COMMIT"),
        (Via::Execute, "END"),
        (Via::Query, "ROLLBACK"),
        (Via::Execute, "ABORT"),
        (Via::Stream, "COMMIT"),
        (Via::Execute, "/* hidden */ commit"),
    ] {
        let before = pid(&ro).await;
        // Whether the call itself reports it does not matter: nothing can run after it
        // in the same call, and its connection must not serve another.
        let _ = run(&ro, via, sql).await;
        assert_ne!(pid(&ro).await, before, "`{sql}`: the connection was reused");
        assert_still_read_only(&ro, &fixture, sql).await;
    }
    fixture.drop_all().await;
}

/// Everything of a session that a call can change, read in one query with a bound
/// parameter (so that sqlx prepares and caches it: a `DEALLOCATE ALL` under it must not
/// break it).
const SESSION_STATE: &str = "SELECT current_setting('search_path') AS search_path, \
    current_setting('TimeZone') AS timezone, \
    current_setting('statement_timeout') AS statement_timeout, \
    current_setting('default_transaction_read_only') AS default_read_only, \
    current_setting('application_name') AS application_name, \
    current_setting('work_mem') AS work_mem, \
    current_setting('role') AS role, current_user::text AS current_user_, \
    session_user::text AS session_user_, \
    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) \
        AS advisory_locks, \
    (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS sql_prepared, \
    (SELECT count(*) FROM pg_cursors) AS cursors, \
    (SELECT count(*) FROM pg_listening_channels()) AS listening, \
    (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_relations, \
    :marker::int AS marker";

async fn session_state(source: &PostgresSource, after: &str) -> Vec<Value> {
    let result = source
        .query(
            &Statement::new(SESSION_STATE).bind("marker", 1_i32),
            &defaults(),
        )
        .await
        .unwrap_or_else(|e| panic!("the call after `{after}` failed: {e}"));
    result.rows[0].values().to_vec()
}

/// A role the test user may `SET ROLE` to: one it creates when it may create roles,
/// else itself (which still changes the `role` setting).
async fn other_role(writer: &PostgresSource) -> String {
    let may_create = scalar(
        writer,
        "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .await;
    if may_create == Value::Bool(true) {
        let role = unique_name("role");
        setup(
            writer,
            [
                format!("CREATE ROLE {role} NOLOGIN"),
                format!("GRANT {role} TO current_user"),
            ],
        )
        .await;
        role
    } else {
        eprintln!("the test user may not create roles: SET ROLE to itself");
        match scalar(writer, "SELECT current_user::text").await {
            Value::Text(name) => name,
            other => panic!("current_user: {other:?}"),
        }
    }
}

async fn no_state_crosses_calls(read_only: bool) {
    let server = server!();
    let writer = source(server.tcp());
    let role = other_role(&writer).await;
    let sequence = unique_name("seq");
    writer
        .execute(
            &Statement::new(format!("CREATE SEQUENCE {sequence}")),
            &defaults(),
        )
        .await
        .expect("create sequence");
    let pg = one_connection(
        server
            .tcp()
            .with_read_only(read_only)
            .with_options("search_path=public&timezone=UTC&application_name=ect-hostile"),
    );
    let baseline = session_state(&pg, "nothing").await;
    let first_pid = pid(&pg).await;
    let changes = [
        format!("SET ROLE {role}"),
        format!("SELECT set_config('role', '{role}', false)"),
        // Not observable unless the test user is a superuser (who may become anyone);
        // kept so that the call is known to work and not to break the reset.
        format!("SET SESSION AUTHORIZATION {}", server.user),
        "SELECT set_config('search_path', 'pg_catalog', false)".to_owned(),
        "SET search_path = pg_catalog".to_owned(),
        "SELECT set_config('TimeZone', 'Pacific/Apia', false)".to_owned(),
        "SET TIME ZONE 'Asia/Kathmandu'".to_owned(),
        "SELECT set_config('statement_timeout', '1', false)".to_owned(),
        format!(
            "SELECT set_config('default_transaction_read_only', '{}', false)",
            if read_only { "off" } else { "on" }
        ),
        "SET application_name = 'someone-else'".to_owned(),
        "SET work_mem = '77MB'".to_owned(),
        "SELECT pg_advisory_lock(4242)".to_owned(),
        "SELECT pg_advisory_lock_shared(4243), pg_try_advisory_lock(4244)".to_owned(),
        "CREATE TEMP TABLE ect_hostile_tmp (a int)".to_owned(),
        "PREPARE ect_hostile_p AS SELECT 1".to_owned(),
        "DO $$ BEGIN EXECUTE 'PREPARE ect_hostile_q AS SELECT 2'; END $$".to_owned(),
        "DECLARE ect_hostile_c CURSOR WITH HOLD FOR SELECT 1".to_owned(),
        "LISTEN ect_hostile".to_owned(),
        "COMMIT AND CHAIN".to_owned(),
        "ROLLBACK AND CHAIN".to_owned(),
        "DEALLOCATE ALL".to_owned(),
        "DISCARD ALL".to_owned(),
        format!("SELECT nextval('{sequence}')"),
    ];
    for change in &changes {
        for via in [Via::Query, Via::Execute] {
            // Whether the change itself is allowed does not matter (a read-only
            // transaction refuses some): the next call must see the defaults.
            let _ = run(&pg, via, change).await;
            let state = session_state(&pg, change).await;
            assert_eq!(
                state, baseline,
                "{via:?} `{change}` (read_only = {read_only})"
            );
            assert_eq!(
                pid(&pg).await,
                first_pid,
                "`{change}`: the session was reset, not replaced"
            );
        }
    }
    // A sequence's `currval` is session state too.
    let currval = run(&pg, Via::Query, &format!("SELECT currval('{sequence}')")).await;
    assert!(
        currval.is_err(),
        "currval from an earlier call's nextval: {currval:?}"
    );
    // A stream and a batch reset the session as well.
    let _ = run(
        &pg,
        Via::Stream,
        "SELECT set_config('work_mem', '99MB', false)",
    )
    .await;
    assert_eq!(session_state(&pg, "a stream").await, baseline);
    let _ = pg
        .execute_batch(
            &[
                Statement::new("SELECT set_config('work_mem', '99MB', false)"),
                Statement::new("SELECT pg_advisory_lock(4245)"),
            ],
            &defaults(),
        )
        .await;
    assert_eq!(session_state(&pg, "a batch").await, baseline);
    assert_eq!(pid(&pg).await, first_pid);
    // A batch that could commit what it set and go on in a chained transaction
    // (read-only still) would keep the committed settings past a rollback.
    for end in ["COMMIT AND CHAIN", "END AND CHAIN", "ROLLBACK AND CHAIN"] {
        let refused = pg
            .execute_batch(
                &[
                    Statement::new("SELECT set_config('work_mem', '98MB', false)"),
                    Statement::new("SET application_name = 'chained'"),
                    Statement::new(end),
                    Statement::new("SELECT pg_advisory_lock(4246)"),
                ],
                &defaults(),
            )
            .await;
        // Refused before it reaches the server (a batch names no transaction
        // control); were it not, the full reset batches get would undo it.
        assert!(refused.is_err(), "`{end}` in a batch: {refused:?}");
        assert_eq!(
            session_state(&pg, end).await,
            baseline,
            "a batch ending with `{end}` (read_only = {read_only})"
        );
    }

    let drop = format!("DROP SEQUENCE IF EXISTS {sequence}");
    let _ = run(&writer, Via::Execute, &drop).await;
}

#[tokio::test]
async fn no_session_state_crosses_calls_on_a_writable_connector() {
    no_state_crosses_calls(false).await;
}

#[tokio::test]
async fn no_session_state_crosses_calls_on_a_read_only_connector() {
    no_state_crosses_calls(true).await;
}

/// `setseed` in one call must not choose the next call's `random()` (the next account's
/// "random" sample or token): the reset reseeds from the client's randomness.
#[tokio::test]
async fn a_seed_does_not_reach_the_next_call() {
    let server = server!();
    for read_only in [false, true] {
        let pg = one_connection(server.tcp().with_read_only(read_only));
        let mut draws = Vec::new();
        for _ in 0..2 {
            scalar(&pg, "SELECT setseed(0.5)::text").await;
            draws.push(scalar(&pg, "SELECT random()").await);
        }
        assert_ne!(
            draws[0], draws[1],
            "read_only={read_only}: the seed crossed calls"
        );
        // Another account on the same role reads the reset's text in pg_stat_activity
        // (the pooled connection's last query): the new seed must not be in it, or
        // `setseed(<it>)` would predict the next call's random().
        let pooled = pid(&pg).await;
        let observer = source(server.tcp());
        let sql = format!(
            "SELECT query FROM pg_stat_activity WHERE pid = {}              AND query LIKE '%pg_advisory_unlock_all%'",
            match pooled {
                Value::I32(pid) => pid,
                other => panic!("pid: {other:?}"),
            }
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let reset = loop {
            let rows = observer
                .query(&Statement::new(sql.as_str()), &defaults())
                .await
                .expect("pg_stat_activity")
                .rows;
            if let Some(Value::Text(text)) = rows.first().and_then(|r| r.get(0)).cloned() {
                break text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the reset never showed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let seeded = reset
            .split("setseed(")
            .nth(1)
            .unwrap_or_else(|| panic!("no setseed in the reset: {reset}"));
        assert!(
            !seeded.starts_with(|c: char| c == '-' || c.is_ascii_digit()),
            "read_only={read_only}: the seed is readable by other sessions: {reset}"
        );
        observer.close().await;
        pg.close().await;
    }
}

/// The reset is not a reconnect: every kind of call, failed ones included, leaves the
/// one connection of the pool in use.
#[tokio::test]
async fn calls_keep_their_connection_and_their_settings() {
    let server = server!();
    for read_only in [false, true] {
        let pg = one_connection(
            server
                .tcp()
                .with_read_only(read_only)
                .with_options("timezone=Asia/Tokyo&lock_timeout=1500ms"),
        );
        let first = pid(&pg).await;
        pg.describe(&Statement::new("SELECT 1 AS a"), &defaults())
            .await
            .expect("describe");
        pg.execute(&Statement::new("SELECT 1"), &defaults())
            .await
            .expect("execute");
        pg.execute_batch(&[Statement::new("SELECT 1")], &defaults())
            .await
            .expect("batch");
        run(&pg, Via::Stream, "SELECT generate_series(1, 1000)")
            .await
            .expect("stream");
        pg.query(&Statement::new("SELECT no_such_column"), &defaults())
            .await
            .expect_err("a failing query");
        let settings = pg
            .query(
                &Statement::new(
                    "SELECT current_setting('TimeZone'), current_setting('lock_timeout'), \
                     current_setting('transaction_read_only')",
                ),
                &defaults(),
            )
            .await
            .expect("settings")
            .rows[0]
            .values()
            .to_vec();
        assert_eq!(
            settings,
            vec![
                Value::Text("Asia/Tokyo".into()),
                Value::Text("1500ms".into()),
                Value::Text(if read_only { "on" } else { "off" }.into()),
            ],
            "read_only = {read_only}"
        );
        assert_eq!(pid(&pg).await, first, "read_only = {read_only}");
    }
}

/// A call's own timeout applies on the server inside the read-only transaction, and
/// does not stay for the next call.
#[tokio::test]
async fn read_only_call_timeout_is_its_own() {
    let server = server!();
    let ro = one_connection(server.tcp().with_read_only(true));
    let guard = ro
        .query(
            &Statement::new("SELECT current_setting('statement_timeout')"),
            &QueryOptions::default().with_timeout(std::time::Duration::from_secs(4)),
        )
        .await
        .expect("guard")
        .rows[0]
        .values()[0]
        .clone();
    assert_eq!(guard, Value::Text("5s".into()));
    let default = scalar(&ro, "SELECT current_setting('statement_timeout')").await;
    assert_ne!(default, guard);
}
