//! The conformance cases. Each takes a [`Harness`] and panics when the backend does not
//! conform; [`conformance_tests!`](crate::conformance_tests) turns each into a test.
//!
//! A case that needs something the backend's [`Capabilities`](crate::Capabilities) say
//! it cannot do prints why and returns; everything else is asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use extdata_core::{
    Column, ConnectorConfig, Error, ErrorKind, ExternalSource, QueryOptions, ResultSet, Scalar,
    Statement, Value,
};
use futures::StreamExt;

use crate::capabilities::TypeCase;
use crate::harness::Harness;
use crate::support::{
    self, Call, SENTINEL_PASSWORD, call_error, expect_kind, int_of, ok, same_value,
};

/// Slack allowed on top of a timeout before the call must have returned.
const TIMEOUT_SLACK: Duration = Duration::from_secs(1);

fn defaults() -> QueryOptions {
    QueryOptions::default()
}

/// `statement` queried with the default options; it must succeed (`what` says what it
/// was for).
async fn query_ok(h: &Harness, statement: &Statement, what: &str) -> ResultSet {
    ok(h.source().query(statement, &defaults()).await, what)
}

/// `statement` executed with the default options: the rows affected. It must succeed.
async fn execute_ok(h: &Harness, statement: &Statement, what: &str) -> u64 {
    ok(h.source().execute(statement, &defaults()).await, what)
}

/// The columns `statement` would return, described with the default options.
async fn describe_ok(h: &Harness, statement: &Statement, what: &str) -> Vec<Column> {
    ok(h.source().describe(statement, &defaults()).await, what)
}

/// A new table `(id, v)`: the backend's integer and text types.
async fn id_text_table(h: &Harness, hint: &str) -> String {
    let caps = h.capabilities();
    h.create_table(
        hint,
        &[
            ("id", caps.integer_type.as_str()),
            ("v", caps.text_type.as_str()),
        ],
    )
    .await
}

/// `INSERT INTO <table> (id, v) VALUES (:id, :v)` with `id` and `v` bound.
fn insert_id_text(table: &str, id: i64, v: impl Into<Value>) -> Statement {
    Statement::new(format!("INSERT INTO {table} (id, v) VALUES (:id, :v)"))
        .bind("id", id)
        .bind("v", v)
}

/// The only value of a one-row, one-column result.
#[track_caller]
fn single(result: &ResultSet, what: &str) -> Value {
    assert_eq!(result.rows.len(), 1, "{what}: expected one row");
    let values = result.rows[0].values();
    assert_eq!(values.len(), 1, "{what}: expected one column");
    values[0].clone()
}

#[track_caller]
fn single_int(result: &ResultSet, what: &str) -> i128 {
    let value = single(result, what);
    int_of(&value).unwrap_or_else(|| panic!("{what}: expected an integer, got {value:?}"))
}

async fn count_rows(h: &Harness, table: &str, filter: Option<Statement>) -> i128 {
    let statement = match filter {
        Some(where_clause) => {
            let mut statement = Statement::new(format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE {}",
                where_clause.sql()
            ));
            for (name, value) in where_clause.params() {
                statement.set(name.clone(), value.clone());
            }
            statement
        }
        None => Statement::new(format!("SELECT COUNT(*) AS n FROM {table}")),
    };
    let result = query_ok(h, &statement, &format!("counting rows of {table}")).await;
    single_int(&result, "COUNT(*)")
}

/// Rows of the `(id, v)` `table` whose `v` is `v`.
async fn count_v(h: &Harness, table: &str, v: impl Into<Value>) -> i128 {
    count_rows(h, table, Some(Statement::new("v = :v").bind("v", v))).await
}

/// Sets `v` to `updated` in the rows of the `(id, v)` `table` whose `id` is above `min`.
fn update_above(table: &str, min: i64) -> Statement {
    Statement::new(format!("UPDATE {table} SET v = :v WHERE id > :min"))
        .bind("v", "updated")
        .bind("min", min)
}

/// [`assert_serves`] of the harness's own source.
async fn serves(h: &Harness, within: Duration, what: &str) {
    assert_serves(h.source(), h, within, what).await;
}

/// [`assert_serves`] of `source` within 3 s (a variant that ran into timeouts or
/// dropped streams), then closes it.
async fn serves_then_close(source: Arc<dyn ExternalSource>, h: &Harness, what: &str) {
    assert_serves(&source, h, Duration::from_secs(3), what).await;
    source.close().await;
}

/// Asserts `SELECT 1` answers on `source` within `within` (plus the backend's
/// [`recovery_slack`](crate::Capabilities::recovery_slack)); the call's own timeout is that
/// bound, so a variant with a short `query_timeout` is asked the same question.
async fn assert_serves(
    source: &Arc<dyn ExternalSource>,
    h: &Harness,
    within: Duration,
    what: &str,
) {
    let within = within + h.capabilities().recovery_slack;
    let started = Instant::now();
    let result = ok(
        source
            .query(
                &Statement::new(h.select("1 AS one")),
                &defaults().with_timeout(within),
            )
            .await,
        what,
    );
    support::assert_elapsed_below(started, within, what);
    assert_eq!(single_int(&result, what), 1, "{what}: SELECT 1");
}

/// The errors of `statement` from every call (`query`, `execute`, `describe`, and
/// `stream` read to its end), in that order, each checked to be of `kind`; `what` names
/// the statement.
async fn every_call_fails(
    h: &Harness,
    statement: &Statement,
    kind: ErrorKind,
    what: &str,
) -> [Error; 4] {
    let source = h.source();
    let query = source.query(statement, &defaults()).await;
    let query = expect_kind(query, kind, &format!("query with {what}"));
    let execute = source.execute(statement, &defaults()).await;
    let execute = expect_kind(execute, kind, &format!("execute with {what}"));
    let describe = source.describe(statement, &defaults()).await;
    let describe = expect_kind(describe, kind, &format!("describe with {what}"));
    let streamed = match source.stream(statement, &defaults()).await {
        Ok(stream) => stream.collect_limited(None).await.map(|r| r.rows.len()),
        Err(error) => Err(error),
    };
    let stream = expect_kind(streamed, kind, &format!("stream with {what}"));
    [query, execute, describe, stream]
}

#[track_caller]
fn assert_connector(error: &Error, h: &Harness, what: &str) {
    assert_eq!(
        error.connector(),
        Some(h.config().name.as_str()),
        "{what}: the error must name the connector: {error}"
    );
    assert!(
        error.to_string().contains(&h.config().name),
        "{what}: the error's text must name the connector: {error}"
    );
}

/// A config whose pool has `size` connections and gives up waiting for one after 5 s.
fn small_pool(mut config: ConnectorConfig, size: i64) -> ConnectorConfig {
    config.pool.max_size = Some(Scalar::Int(size));
    config.pool.min_idle = None;
    config.pool.acquire_timeout = Some("5s".to_owned());
    config
}

/// The text that hostile-string cases bind; `nul` adds strings with U+0000.
pub fn hostile_strings(nul: bool) -> Vec<String> {
    let mut strings: Vec<String> = [
        "'",
        "''",
        "\\",
        "\\'",
        "'\\",
        "\"",
        "\"\"",
        "`",
        ";",
        "--",
        "-- comment",
        "#",
        "/*",
        "*/",
        "/* x */",
        "${x}",
        "$$",
        "$tag$ x $tag$",
        ":name",
        "::text",
        "?",
        "??",
        "?1",
        "$1",
        "@P1",
        ":1",
        "%",
        "_",
        "[x]",
        "\\n",
        "\\x27",
        "\n",
        "\r\n",
        "\t",
        "a\u{0008}b",
        "' OR '1'='1",
        "'; SELECT 1; --",
        "E'\\''",
        "N'x'",
        "\u{00e9}\u{0301}",
        "\u{1F600}\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
        "\u{05E9}\u{05DC}\u{05D5}\u{05DD} \u{202E}abc\u{202C}",
        "\u{FEFF}bom",
        "\u{FFFD}",
        " leading and trailing ",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    strings.push("\u{4E2D}\u{6587}\u{00FC}\u{1F980}'\\".repeat(2_000));
    if nul {
        strings.push("a\0b".to_owned());
        strings.push("\0".to_owned());
        strings.push("'\0'".to_owned());
    }
    strings
}

// ---------------------------------------------------------------------------------------
// 1. ping

/// `ping` makes a round trip and returns a non-empty server version.
pub async fn ping_returns_server_version(h: &Harness) {
    let info = ok(h.source().ping().await, "ping");
    assert!(
        !info.version.trim().is_empty(),
        "ping returned an empty version"
    );
    let again = ok(h.source().ping().await, "second ping");
    assert_eq!(
        info.version, again.version,
        "the version changed between pings"
    );
    assert_eq!(h.source().name(), h.config().name, "source name");
}

// ---------------------------------------------------------------------------------------
// 2–3. values

/// Every `(sql_type, value)` of the capabilities, bound as a parameter into a column of
/// that type, reads back as exactly the expected [`Value`]; `''` reads back as
/// `Text("")`, not NULL; result columns announce the variant their values decode to.
pub async fn values_round_trip_exactly(h: &Harness) {
    let caps = h.capabilities();
    assert!(
        !caps.type_cases.is_empty(),
        "the backend's capabilities list no type cases"
    );
    let mut cases = caps.type_cases.clone();
    let empty = if caps.empty_string_is_null {
        Value::Null
    } else {
        Value::Text(String::new())
    };
    cases.push(TypeCase::converted(
        caps.text_type.clone(),
        [
            (Value::Text(String::new()), empty),
            (Value::Text(" ".to_owned()), Value::Text(" ".to_owned())),
            (Value::Text("0".to_owned()), Value::Text("0".to_owned())),
        ],
    ));
    for case in &cases {
        let table = h
            .create_table(
                "rt",
                &[("id", caps.integer_type.as_str()), ("v", &case.sql_type)],
            )
            .await;
        let insert = format!("INSERT INTO {table} (id, v) VALUES (:id, :v)");
        for (i, (bound, _)) in case.values.iter().enumerate() {
            let statement = Statement::new(insert.clone())
                .bind("id", i as i64)
                .bind("v", bound.clone());
            let affected = execute_ok(
                h,
                &statement,
                &format!("inserting {bound:?} into a `{}` column", case.sql_type),
            )
            .await;
            if caps.reports_affected_rows {
                assert_eq!(affected, 1, "rows affected by one INSERT");
            }
        }
        let result = query_ok(
            h,
            &Statement::new(format!("SELECT id, v FROM {table} ORDER BY id")),
            &format!("reading back the `{}` column", case.sql_type),
        )
        .await;
        assert_eq!(
            result.rows.len(),
            case.values.len(),
            "rows read back from the `{}` column",
            case.sql_type
        );
        for (row, (bound, expected)) in result.rows.iter().zip(&case.values) {
            let got = &row.values()[1];
            assert!(
                same_value(got, expected),
                "`{}` column: bound {bound:?}, expected {expected:?}, read back {got:?}",
                case.sql_type
            );
            if caps.describe_reports_kinds && !expected.is_null() {
                assert_eq!(
                    result.columns[1].value_kind,
                    expected.kind(),
                    "`{}` column: the result column announces `{}` but its values are {expected:?}",
                    case.sql_type,
                    result.columns[1].value_kind
                );
            }
        }
    }
}

/// A table with an `id` column and one column per type case (`c0`, `c1`, …) plus a text
/// column `ct`; returns its name, the column names and the first expected value of each.
async fn create_wide_table(h: &Harness) -> (String, Vec<String>, Vec<Value>) {
    let caps = h.capabilities();
    assert!(
        !caps.type_cases.is_empty(),
        "the backend's capabilities list no type cases"
    );
    let mut names = vec!["id".to_owned()];
    let mut types = vec![caps.integer_type.clone()];
    for (i, case) in caps.type_cases.iter().enumerate() {
        names.push(format!("c{i}"));
        types.push(case.sql_type.clone());
    }
    names.push("ct".to_owned());
    types.push(caps.text_type.clone());
    let columns: Vec<(&str, &str)> = names
        .iter()
        .zip(&types)
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let table = h.create_table("wide", &columns).await;
    let mut firsts = vec![Value::I64(0)];
    for case in &caps.type_cases {
        firsts.push(
            case.values
                .first()
                .map(|(_, expected)| expected.clone())
                .unwrap_or(Value::Null),
        );
    }
    firsts.push(Value::Text("x".to_owned()));
    (table, names, firsts)
}

/// A NULL bound into a column of every type reads back as `Value::Null`, next to a row
/// of non-NULL values in the same columns.
pub async fn nulls_round_trip_in_every_column_type(h: &Harness) {
    let caps = h.capabilities();
    let (table, names, _) = create_wide_table(h).await;
    let placeholders: Vec<String> = names.iter().map(|n| format!(":{n}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        placeholders.join(", ")
    );
    let mut nulls = Statement::new(insert.clone()).bind("id", 1_i64);
    let mut values = Statement::new(insert).bind("id", 2_i64);
    let mut expected_values = Vec::new();
    for (name, case) in names[1..].iter().zip(&caps.type_cases) {
        nulls.set(name.clone(), Value::Null);
        let (bound, expected) = case
            .values
            .first()
            .cloned()
            .unwrap_or((Value::Null, Value::Null));
        values.set(name.clone(), bound);
        expected_values.push(expected);
    }
    nulls.set("ct", Value::Null);
    values.set("ct", "x");
    expected_values.push(Value::Text("x".to_owned()));
    execute_ok(h, &nulls, "inserting NULL into every column type").await;
    execute_ok(h, &values, "inserting a value into every column type").await;
    let result = query_ok(
        h,
        &Statement::new(format!(
            "SELECT {} FROM {table} ORDER BY id",
            names.join(", ")
        )),
        "reading back NULLs",
    )
    .await;
    assert_eq!(result.rows.len(), 2, "rows read back");
    let types = caps
        .type_cases
        .iter()
        .map(|c| c.sql_type.as_str())
        .chain([caps.text_type.as_str()]);
    for (value, sql_type) in result.rows[0].values()[1..].iter().zip(types) {
        assert_eq!(value, &Value::Null, "NULL in a `{sql_type}` column");
    }
    for (got, expected) in result.rows[1].values()[1..].iter().zip(&expected_values) {
        assert!(
            same_value(got, expected),
            "next to NULLs: expected {expected:?}, read back {got:?}"
        );
    }
    // An untyped NULL parameter in a select list is NULL too, not text or zero.
    let param = h.text_parameter("p");
    let result = query_ok(
        h,
        &Statement::new(h.select(&format!("{param} AS v"))).bind("p", Value::Null),
        "selecting a NULL parameter",
    )
    .await;
    assert_eq!(single(&result, "SELECT NULL parameter"), Value::Null);
}

// ---------------------------------------------------------------------------------------
// 4. parameters

/// A name used twice binds one value in both places, several parameters bind their own
/// values, `:a` inside a string literal or comment is text, and a bound integer filters
/// rows in a `WHERE` clause.
pub async fn parameters_are_bound_by_name(h: &Harness) {
    let a = h.text_parameter("a");
    let b = h.text_parameter("b");
    let sql = h.select(&format!("{a} AS x, {b} AS y, {a} AS z, ':a' AS lit"));
    let result = query_ok(
        h,
        &Statement::new(sql).bind("a", "first").bind("b", "second"),
        "selecting named parameters",
    )
    .await;
    assert_eq!(result.rows.len(), 1);
    assert_eq!(
        result.rows[0].values(),
        &[
            Value::Text("first".into()),
            Value::Text("second".into()),
            Value::Text("first".into()),
            Value::Text(":a".into()),
        ],
        "values of `:a, :b, :a, ':a'`"
    );
    let names: Vec<String> = result
        .columns
        .iter()
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    assert_eq!(names, ["x", "y", "z", "lit"], "column names");

    let sql = format!("{} /* :b */ -- :c\n", h.select(&format!("{a} AS x")));
    let result = query_ok(
        h,
        &Statement::new(sql).bind("a", "only"),
        "a parameter name inside comments",
    )
    .await;
    assert_eq!(single(&result, "comment"), Value::Text("only".into()));

    let table = id_text_table(h, "params").await;
    for (id, v) in [(1_i64, "one"), (2, "two"), (3, "three")] {
        execute_ok(h, &insert_id_text(&table, id, v), "inserting a row").await;
    }
    let result = query_ok(
        h,
        &Statement::new(format!(
            "SELECT v FROM {table} WHERE id = :id OR (id > :id AND v = :v) ORDER BY id"
        ))
        .bind("id", 2_i64)
        .bind("v", "three"),
        "filtering by bound parameters",
    )
    .await;
    let got: Vec<&Value> = result.rows.iter().map(|r| &r.values()[0]).collect();
    assert_eq!(
        got,
        [&Value::Text("two".into()), &Value::Text("three".into())],
        "rows selected by `id = 2 OR (id > 2 AND v = 'three')`"
    );
}

/// A placeholder without a value, or a bound value the SQL does not use, is an
/// [`ErrorKind::Parameter`] error on every call, and the source keeps serving.
pub async fn missing_or_unused_parameter_is_rejected(h: &Harness) {
    let a = h.text_parameter("a");
    let b = h.text_parameter("b");
    let missing = Statement::new(h.select(&format!("{a} AS x, {b} AS y"))).bind("a", "x");
    let unused = Statement::new(h.select("1 AS one")).bind("a", "x");
    for (statement, what) in [
        (&missing, "a missing parameter"),
        (&unused, "an unused parameter"),
    ] {
        let [query, ..] = every_call_fails(h, statement, ErrorKind::Parameter, what).await;
        assert_connector(&query, h, what);
    }
    serves(h, Duration::from_secs(5), "SELECT 1 after parameter errors").await;
}

// ---------------------------------------------------------------------------------------
// 5. hostile strings

/// Strings full of quotes, escapes, comment markers, placeholders of every dialect,
/// control characters and Unicode come back byte for byte from `SELECT :p`, and match
/// themselves in a `WHERE` clause.
pub async fn hostile_parameter_is_bound_not_spliced(h: &Harness) {
    let caps = h.capabilities();
    let param = h.text_parameter("p");
    let select = h.select(&format!("{param} AS v"));
    for text in hostile_strings(caps.text_allows_nul) {
        let result = query_ok(
            h,
            &Statement::new(select.clone()).bind("p", text.clone()),
            &format!("SELECT of the bound string {:?}", preview(&text)),
        )
        .await;
        let got = single(&result, "SELECT :p");
        assert_eq!(
            got,
            Value::Text(text.clone()),
            "the bound string {:?} came back changed",
            preview(&text)
        );
    }
}

/// `'); DROP TABLE <t>; --` and the other hostile strings inserted as values are stored
/// as text: the table still exists, holds every row, and each row reads back exactly.
pub async fn hostile_value_in_insert_cannot_drop_table(h: &Harness) {
    let caps = h.capabilities();
    let table = id_text_table(h, "hostile").await;
    let mut strings = vec![
        format!("'); DROP TABLE {table}; --"),
        format!("\"); DROP TABLE {table}; --"),
        format!("`); DROP TABLE {table}; --"),
        format!("\\'); DROP TABLE {table}; --"),
        format!("$$); DROP TABLE {table}; --"),
    ];
    strings.extend(hostile_strings(caps.text_allows_nul));
    for (i, text) in strings.iter().enumerate() {
        execute_ok(
            h,
            &insert_id_text(&table, i as i64, text.clone()),
            &format!("inserting the string {:?}", preview(text)),
        )
        .await;
    }
    assert_eq!(
        count_rows(h, &table, None).await,
        strings.len() as i128,
        "rows in the table after inserting hostile strings"
    );
    let result = query_ok(
        h,
        &Statement::new(format!("SELECT v FROM {table} ORDER BY id")),
        "reading back hostile strings",
    )
    .await;
    for (row, text) in result.rows.iter().zip(&strings) {
        assert_eq!(
            row.values()[0],
            Value::Text(text.clone()),
            "the stored string {:?} came back changed",
            preview(text)
        );
    }
    let matches = count_v(h, &table, strings[0].clone()).await;
    assert_eq!(matches, 1, "WHERE v = :v with the DROP TABLE string");
}

fn preview(text: &str) -> String {
    if text.chars().count() > 40 {
        let head: String = text.chars().take(40).collect();
        format!("{head}… ({} chars)", text.chars().count())
    } else {
        text.to_owned()
    }
}

// ---------------------------------------------------------------------------------------
// 6. errors

/// A syntax error and a missing table are [`ErrorKind::Query`] errors from every call,
/// name the connector, are not temporary, contain no password, and leave the source
/// serving.
pub async fn errors_have_kind_and_connector(h: &Harness) {
    let missing_table = support::unique_name("missing");
    let statements = [
        (
            Statement::new("SELEC 1 FORM nowhere"),
            "a syntax error".to_owned(),
        ),
        (
            Statement::new(format!("SELECT * FROM {missing_table}")),
            "a missing table".to_owned(),
        ),
    ];
    let password = h.password();
    for (statement, what) in &statements {
        for error in &every_call_fails(h, statement, ErrorKind::Query, what).await {
            assert_connector(error, h, what);
            assert!(!error.is_temporary(), "{what} is not temporary: {error}");
            if let Some(password) = &password {
                support::assert_error_has_no_secret(error, password, what);
            }
        }
    }
    serves(h, Duration::from_secs(5), "SELECT 1 after query errors").await;
}

// ---------------------------------------------------------------------------------------
// 7. timeouts

fn sleep_statement(h: &Harness, marker: &str) -> Option<Statement> {
    let sleep = h.capabilities().sleep_sql?;
    // The marker lets the running-query probe find this query on the server.
    Some(Statement::new(format!("{} /* {marker} */", sleep(30))))
}

/// The 30 s query of a timeout case, marked with `marker`; `None` (printed for `case`)
/// when the backend has no long-running query.
fn sleep_or_skip(h: &Harness, marker: &str, case: &str) -> Option<Statement> {
    let statement = sleep_statement(h, marker);
    if statement.is_none() {
        support::skip_case(case, "the backend has no long-running query (sleep_sql)");
    }
    statement
}

/// A long query with a 1 s timeout fails with [`ErrorKind::Timeout`] within 2 s; with a
/// probe, the query is seen running and then gone from the server within 1 s; the same
/// source answers `SELECT 1` right after.
pub async fn timeout_returns_promptly_and_cancels_on_server(h: &Harness) {
    let marker = support::unique_name("sleep");
    let Some(statement) = sleep_or_skip(h, &marker, "timeout") else {
        return;
    };
    let timeout = Duration::from_secs(1);
    let source = h.source().clone();
    let started = Instant::now();
    let task = tokio::spawn({
        let source = source.clone();
        async move {
            let result = source
                .query(&statement, &QueryOptions::default().with_timeout(timeout))
                .await;
            (result.map(|r| r.rows.len()), started.elapsed())
        }
    });
    let probe = h.capabilities().running_probe.clone();
    let mut seen_running = false;
    if let Some(probe) = &probe {
        while !task.is_finished() {
            if ok(
                probe(source.clone(), marker.clone()).await,
                "running-query probe",
            ) {
                seen_running = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (result, elapsed) = task.await.expect("the query task panicked");
    let error = expect_kind(
        result,
        ErrorKind::Timeout,
        "a query running past its timeout",
    );
    assert!(
        elapsed < timeout + TIMEOUT_SLACK,
        "the timed-out query returned after {elapsed:?}, expected less than {:?}",
        timeout + TIMEOUT_SLACK
    );
    assert!(error.is_temporary(), "a timeout is temporary: {error}");
    assert_connector(&error, h, "timeout");
    if let Some(probe) = &probe {
        assert!(
            seen_running,
            "the running-query probe never saw the query run, so it cannot prove the cancel"
        );
        let gone = support::eventually(Duration::from_secs(1), || {
            let probe = probe.clone();
            let source = source.clone();
            let marker = marker.clone();
            async move { matches!(probe(source, marker).await, Ok(false)) }
        })
        .await;
        assert!(
            gone,
            "the query was still running on the server 1 s after its timeout"
        );
    }
    serves(h, Duration::from_secs(2), "SELECT 1 right after a timeout").await;
}

/// Many timeouts in a row on a 2-connection pool leave the pool serving: no
/// connection is leaked or returned busy.
pub async fn repeated_timeouts_do_not_leak_connections(h: &Harness) {
    let marker = support::unique_name("sleep");
    let Some(statement) = sleep_or_skip(h, &marker, "timeout") else {
        return;
    };
    let source = ok(
        h.variant(|config| small_pool(config, 2)),
        "building a 2-connection variant",
    );
    let timeout = Duration::from_millis(300);
    let repeats = h.capabilities().timeout_repeats;
    let started_all = Instant::now();
    for i in 0..repeats {
        let started = Instant::now();
        let result = source
            .query(&statement, &QueryOptions::default().with_timeout(timeout))
            .await;
        expect_kind(
            result.map(|r| r.rows.len()),
            ErrorKind::Timeout,
            &format!("timeout #{}", i + 1),
        );
        support::assert_elapsed_below(
            started,
            timeout + TIMEOUT_SLACK,
            &format!("timeout #{}", i + 1),
        );
    }
    eprintln!(
        "{repeats} timeouts of {timeout:?} took {:?}",
        started_all.elapsed()
    );
    serves_then_close(
        source,
        h,
        "SELECT 1 on a 2-connection pool after repeated timeouts",
    )
    .await;
}

/// The connector's own `query_timeout` bounds `query`, `execute` and `stream` when the
/// call sets none.
pub async fn connector_query_timeout_applies(h: &Harness) {
    let marker = support::unique_name("sleep");
    let Some(statement) = sleep_or_skip(h, &marker, "timeout") else {
        return;
    };
    let timeout = Duration::from_secs(1);
    let source = ok(
        h.variant(|config| config.with_query_timeout(timeout)),
        "building a variant with query_timeout = 1s",
    );
    let started = Instant::now();
    // The query past the connector's query_timeout.
    let error = call_error(&*source, Call::Query, statement.clone(), ErrorKind::Timeout).await;
    support::assert_elapsed_below(started, timeout + TIMEOUT_SLACK, "query timeout");
    assert_connector(&error, h, "connector timeout");

    let started = Instant::now();
    expect_kind(
        source.execute(&statement, &defaults()).await,
        ErrorKind::Timeout,
        "execute past the connector's query_timeout",
    );
    support::assert_elapsed_below(started, timeout + TIMEOUT_SLACK, "execute timeout");

    let started = Instant::now();
    let streamed = match source.stream(&statement, &defaults()).await {
        Ok(mut stream) => match stream.next().await {
            Some(Ok(row)) => Ok(row.values().len()),
            Some(Err(error)) => Err(error),
            None => Ok(0),
        },
        Err(error) => Err(error),
    };
    expect_kind(
        streamed,
        ErrorKind::Timeout,
        "stream past the connector's query_timeout",
    );
    support::assert_elapsed_below(started, timeout + TIMEOUT_SLACK, "stream timeout");
    serves_then_close(source, h, "SELECT 1 after connector timeouts").await;
}

// ---------------------------------------------------------------------------------------
// 8. streaming

fn series(h: &Harness, count: u64) -> Statement {
    Statement::new((h.capabilities().series_sql)(count))
}

/// A long series streams every row, in order, with its columns known before the first
/// row (count and sum checked).
pub async fn stream_delivers_every_row_in_order(h: &Harness) {
    let count = h.capabilities().stream_rows;
    assert!(count > 0, "stream_rows must be positive");
    let started = Instant::now();
    let mut stream = ok(
        h.source().stream(&series(h, count), &defaults()).await,
        "starting a stream",
    );
    let columns = stream.columns().clone();
    assert_eq!(columns.len(), 1, "the series has one column: {columns:?}");
    assert!(
        columns[0].name.eq_ignore_ascii_case("n"),
        "the series column is named `n`: {columns:?}"
    );
    let mut seen: u64 = 0;
    let mut sum: i128 = 0;
    while let Some(row) = stream.next().await {
        let row = ok(row, &format!("row {} of the stream", seen + 1));
        let value = row
            .get(0)
            .and_then(int_of)
            .unwrap_or_else(|| panic!("row {}: not an integer: {row:?}", seen + 1));
        assert_eq!(value, i128::from(seen) + 1, "rows arrive in order");
        assert_eq!(
            row.columns(),
            &columns,
            "every row carries the stream's columns"
        );
        seen += 1;
        sum += value;
    }
    let elapsed = started.elapsed();
    assert_eq!(seen, count, "rows streamed");
    let n = i128::from(count);
    assert_eq!(sum, n * (n + 1) / 2, "sum of the streamed series");
    eprintln!(
        "streamed {count} rows in {elapsed:?} ({:.0} rows/s)",
        count as f64 / elapsed.as_secs_f64()
    );
}

/// The first row of a billion-row series arrives within seconds: the backend streams
/// instead of buffering the result.
pub async fn stream_starts_before_result_is_complete(h: &Harness) {
    if !h.capabilities().streams_lazily {
        support::skip_case(
            "lazy stream",
            "the server produces the series only as a whole",
        );
        return;
    }
    let started = Instant::now();
    let mut stream = ok(
        h.source()
            .stream(&series(h, 1_000_000_000), &defaults())
            .await,
        "starting a billion-row stream",
    );
    let first = stream
        .next()
        .await
        .expect("the stream ended before any row");
    let first = ok(first, "first row of a billion-row stream");
    support::assert_elapsed_below(
        started,
        Duration::from_secs(5),
        "first row of a billion-row stream",
    );
    assert_eq!(first.get(0).and_then(int_of), Some(1), "first row");
    drop(stream);
    serves(
        h,
        Duration::from_secs(3),
        "SELECT 1 after dropping a billion-row stream",
    )
    .await;
}

/// Dropping a stream after a few rows stops the query and frees its connection: a
/// 1-connection pool serves the next call.
pub async fn dropped_stream_leaves_source_usable(h: &Harness) {
    let source = ok(
        h.variant(|config| small_pool(config, 1)),
        "building a 1-connection variant",
    );
    let count = if h.capabilities().streams_lazily {
        1_000_000_000
    } else {
        h.capabilities().stream_rows
    };
    for round in 1..=3 {
        let started = Instant::now();
        let mut stream = ok(
            source.stream(&series(h, count), &defaults()).await,
            &format!("stream #{round} on a 1-connection pool"),
        );
        for i in 1..=10_i128 {
            let row = stream.next().await.expect("the stream ended early");
            let row = ok(row, "reading a row");
            assert_eq!(row.get(0).and_then(int_of), Some(i), "row {i}");
        }
        drop(stream);
        support::assert_elapsed_below(
            started,
            Duration::from_secs(5),
            &format!("opening stream #{round} and reading 10 rows"),
        );
    }
    serves_then_close(
        source,
        h,
        "SELECT 1 on a 1-connection pool after dropped streams",
    )
    .await;
}

/// `query` returns at most `max_rows` rows and says whether more were available.
pub async fn query_max_rows_truncates(h: &Harness) {
    let options = |max: usize| QueryOptions::default().with_max_rows(max);
    let result = ok(
        h.source().query(&series(h, 1000), &options(10)).await,
        "query with max_rows = 10",
    );
    assert_eq!(result.rows.len(), 10, "rows with max_rows = 10");
    assert!(
        result.truncated,
        "1000 rows with max_rows = 10 are truncated"
    );
    let values: Vec<Option<i128>> = result
        .rows
        .iter()
        .map(|r| r.get(0).and_then(int_of))
        .collect();
    assert_eq!(
        values,
        (1..=10).map(Some).collect::<Vec<_>>(),
        "the first 10 rows"
    );

    let result = ok(
        h.source().query(&series(h, 1000), &options(1000)).await,
        "query with max_rows = 1000",
    );
    assert_eq!(result.rows.len(), 1000);
    assert!(!result.truncated, "exactly max_rows rows are not truncated");

    let result = ok(
        h.source().query(&series(h, 1000), &options(999)).await,
        "query with max_rows = 999",
    );
    assert_eq!(result.rows.len(), 999);
    assert!(result.truncated, "max_rows + 1 rows are truncated");

    let default_max = QueryOptions::DEFAULT_MAX_ROWS;
    let result = query_ok(
        h,
        &series(h, default_max as u64 + 5),
        "query with the default max_rows",
    )
    .await;
    assert_eq!(result.rows.len(), default_max, "default max_rows");
    assert!(result.truncated);
}

// ---------------------------------------------------------------------------------------
// 9. execute

/// `execute` returns the rows affected by `INSERT`, `INSERT … SELECT`, `UPDATE` and
/// `DELETE` (0 when nothing matched), and the table holds what the counts say.
pub async fn execute_reports_affected_rows(h: &Harness) {
    let caps = h.capabilities();
    let table = id_text_table(h, "exec").await;
    let check = |affected: u64, expected: u64, what: &str| {
        if caps.reports_affected_rows {
            assert_eq!(affected, expected, "rows affected by {what}");
        }
    };
    for id in 1..=3_i64 {
        let affected = execute_ok(h, &insert_row(&table, id), "INSERT").await;
        check(affected, 1, "a one-row INSERT");
    }
    let affected = execute_ok(
        h,
        &Statement::new(format!(
            "INSERT INTO {table} (id, v) SELECT id + 10, v FROM {table}"
        )),
        "INSERT … SELECT",
    )
    .await;
    check(affected, 3, "INSERT … SELECT of 3 rows");
    assert_eq!(
        count_rows(h, &table, None).await,
        6,
        "rows after the inserts"
    );
    if !caps.supports_update {
        support::skip_case("UPDATE/DELETE", "the backend does not support them");
        return;
    }
    let affected = execute_ok(h, &update_above(&table, 10_i64), "UPDATE").await;
    check(affected, 3, "UPDATE of 3 rows");
    let affected = execute_ok(
        h,
        &Statement::new(format!("UPDATE {table} SET v = :v WHERE id = :id"))
            .bind("v", "nothing")
            .bind("id", -1_i64),
        "UPDATE matching nothing",
    )
    .await;
    check(affected, 0, "UPDATE matching no row");
    let affected = execute_ok(
        h,
        &Statement::new(format!("DELETE FROM {table} WHERE id = :id")).bind("id", 1_i64),
        "DELETE",
    )
    .await;
    check(affected, 1, "DELETE of one row");
    assert_eq!(count_rows(h, &table, None).await, 5, "rows after DELETE");
    assert_eq!(count_v(h, &table, "updated").await, 3, "rows updated");
}

/// `execute_batch` returns each statement's rows affected. When a statement fails, a
/// backend whose [`batches_are_atomic`](ExternalSource::batches_are_atomic) is `true`
/// leaves nothing of the batch applied; any other applies the statements before the
/// failing one and runs none after it (the trait's documented default).
pub async fn batch_is_atomic_where_supported(h: &Harness) {
    let caps = h.capabilities();
    let table = id_text_table(h, "batch").await;
    let insert = |id: i64| insert_row(&table, id);
    let affected = ok(
        h.source()
            .execute_batch(&[insert(1), insert(2)], &defaults())
            .await,
        "a batch of two INSERTs",
    );
    assert_eq!(affected.len(), 2, "one count per statement: {affected:?}");
    if caps.reports_affected_rows {
        assert_eq!(affected, vec![1, 1], "rows affected by each INSERT");
    }
    assert_eq!(
        count_rows(h, &table, None).await,
        2,
        "rows after a successful batch"
    );
    let missing = support::unique_name("nobatch");
    let error = expect_kind(
        h.source()
            .execute_batch(
                &[insert(3), insert(4), insert_row(&missing, 5), insert(6)],
                &defaults(),
            )
            .await,
        ErrorKind::Query,
        "a batch whose third statement writes to a missing table",
    );
    assert_connector(&error, h, "a failed batch");
    let (expected, meaning) = if h.source().batches_are_atomic() {
        (
            2,
            "an atomic batch that failed applies none of its statements",
        )
    } else {
        (
            4,
            "a non-atomic batch keeps the statements before the failure and runs none after it",
        )
    };
    assert_eq!(count_rows(h, &table, None).await, expected, "{meaning}");
    serves(h, Duration::from_secs(5), "SELECT 1 after a failed batch").await;
}

// ---------------------------------------------------------------------------------------
// 9b. transactional batches (backends whose `batches_are_atomic()`)

/// A keyed table and a one-connection source for a batch case; `None` (printed for
/// `case`) when the backend's batches are not atomic.
async fn transactional_batch_setup(
    h: &Harness,
    case: &str,
) -> Option<(String, Arc<dyn ExternalSource>)> {
    if !h.source().batches_are_atomic() {
        support::skip_case(case, "the backend's batches are not atomic");
        return None;
    }
    Some((create_keyed_table(h).await, single_connection(h)))
}

/// A variant whose pool has one connection, so every call after a batch reuses the
/// connection the batch ran on.
fn single_connection(h: &Harness) -> Arc<dyn ExternalSource> {
    ok(
        h.variant(|config| small_pool(config, 1)),
        "building a one-connection variant",
    )
}

/// A table `(id <integer> PRIMARY KEY, v <text>)`.
async fn create_keyed_table(h: &Harness) -> String {
    let caps = h.capabilities();
    let id_type = format!("{} PRIMARY KEY", caps.integer_type);
    h.create_table(
        "batch",
        &[("id", id_type.as_str()), ("v", caps.text_type.as_str())],
    )
    .await
}

/// [`insert_id_text`] of `id` and the text `v<id>`.
fn insert_row(table: &str, id: i64) -> Statement {
    insert_id_text(table, id, format!("v{id}"))
}

/// The `table` of a failed batch holds no row (`what` says why), then
/// [`assert_autocommits_and_close`].
async fn assert_left_nothing(
    h: &Harness,
    source: Arc<dyn ExternalSource>,
    table: &str,
    what: &str,
) {
    assert_eq!(count_rows(h, table, None).await, 0, "{what}");
    assert_autocommits_and_close(h, source, table).await;
}

/// The one-connection `source` is out of any transaction: it serves, and a write
/// through it is visible at once from the harness's own source (another session).
/// Then closes `source`.
async fn assert_autocommits_and_close(h: &Harness, source: Arc<dyn ExternalSource>, table: &str) {
    let id = 10;
    assert_serves(
        &source,
        h,
        Duration::from_secs(5),
        "SELECT 1 on the batch's connection",
    )
    .await;
    let affected = ok(
        source.execute(&insert_row(table, id), &defaults()).await,
        "INSERT after the batch",
    );
    assert_eq!(affected, 1, "rows affected by the INSERT after the batch");
    assert_eq!(
        count_rows(h, table, Some(Statement::new("id = :id").bind("id", id))).await,
        1,
        "a write after the batch must commit on its own (the connection was left in a transaction)"
    );
    source.close().await;
}

/// The error of the batch `statements` on `source`, which must fail with `kind`.
async fn batch_error(
    source: &Arc<dyn ExternalSource>,
    statements: &[Statement],
    options: &QueryOptions,
    kind: ErrorKind,
    what: &str,
) -> Error {
    expect_kind(source.execute_batch(statements, options).await, kind, what)
}

/// Waits up to 5 s until the running-query probe no longer sees `marker` (when the
/// backend has a probe); panics when it is still running then.
async fn assert_stopped_on_server(h: &Harness, marker: &str, what: &str) {
    let Some(probe) = h.capabilities().running_probe.clone() else {
        return;
    };
    let started = Instant::now();
    let gone = support::eventually(Duration::from_secs(5), || {
        let probe = probe.clone();
        let source = h.source().clone();
        let marker = marker.to_owned();
        async move { matches!(probe(source, marker).await, Ok(false)) }
    })
    .await;
    assert!(gone, "{what}: the sleep still runs on the server 5 s later");
    eprintln!(
        "{what}: sleep gone from the server after {:?}",
        started.elapsed()
    );
}

/// An atomic batch commits every statement and returns each one's rows affected
/// (`[1, 1, 2]` for two INSERTs and an UPDATE of both rows), another session sees the
/// rows at once, an empty batch returns no counts, and the connection is left out of
/// any transaction.
pub async fn batch_commits_every_statement_and_returns_their_counts(h: &Harness) {
    let Some((table, source)) = transactional_batch_setup(h, "batch commit").await else {
        return;
    };
    let affected = ok(
        source
            .execute_batch(
                &[
                    insert_row(&table, 1),
                    insert_row(&table, 2),
                    update_above(&table, 0_i64),
                ],
                &defaults(),
            )
            .await,
        "a batch of two INSERTs and an UPDATE",
    );
    assert_eq!(affected, vec![1, 1, 2], "rows affected by each statement");
    assert_eq!(count_rows(h, &table, None).await, 2, "rows after the batch");
    assert_eq!(
        count_v(h, &table, "updated").await,
        2,
        "rows the batch's UPDATE changed"
    );
    assert_eq!(
        ok(
            source.execute_batch(&[], &defaults()).await,
            "an empty batch"
        ),
        Vec::<u64>::new(),
        "an empty batch returns no counts"
    );
    assert_autocommits_and_close(h, source, &table).await;
}

/// A batch whose third statement repeats the first one's key fails with
/// [`ErrorKind::Query`] (with the backend's duplicate-key SQLSTATE, where the
/// capabilities name one), says which statement failed, and leaves no row.
pub async fn failed_batch_statement_leaves_no_row(h: &Harness) {
    let Some((table, source)) = transactional_batch_setup(h, "batch rollback").await else {
        return;
    };
    let error = batch_error(
        &source,
        &[
            insert_row(&table, 1),
            insert_row(&table, 2),
            insert_row(&table, 1),
        ],
        &defaults(),
        ErrorKind::Query,
        "a batch whose third statement repeats a key",
    )
    .await;
    if let Some(expected) = &h.capabilities().unique_violation_sql_state {
        assert_eq!(
            error.sql_state(),
            Some(expected.as_str()),
            "SQLSTATE of a duplicate key: {error}"
        );
    }
    assert!(
        error.to_string().contains("statement 3 of 3"),
        "the error says which statement failed: {error}"
    );
    assert_left_nothing(h, source, &table, "rolled back").await;
}

/// A batch that runs past its 1 s timeout fails with [`ErrorKind::Timeout`] promptly
/// (three times in a row), its long statement is stopped on the server (where a probe
/// can tell), nothing of it stays applied, and the connection is left out of any
/// transaction.
pub async fn timed_out_batch_is_cancelled_on_server_and_leaves_no_row(h: &Harness) {
    let marker = support::unique_name("batchsleep");
    let Some(sleep) = sleep_or_skip(h, &marker, "batch timeout") else {
        return;
    };
    let Some((table, source)) = transactional_batch_setup(h, "batch timeout").await else {
        return;
    };
    let timeout = Duration::from_secs(1);
    let bound = timeout + h.capabilities().batch_timeout_slack;
    for round in 0..3 {
        let started = Instant::now();
        let error = batch_error(
            &source,
            &[insert_row(&table, 1), sleep.clone(), insert_row(&table, 2)],
            &defaults().with_timeout(timeout),
            ErrorKind::Timeout,
            &format!("round {round}: a batch running past its timeout"),
        )
        .await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < bound,
            "round {round}: the timed-out batch returned after {elapsed:?}, expected less than {bound:?}: {error}"
        );
        eprintln!("round {round}: timeout after {elapsed:?}");
        assert_stopped_on_server(h, &marker, &format!("round {round}")).await;
        assert_eq!(
            count_rows(h, &table, None).await,
            0,
            "round {round}: rolled back"
        );
    }
    assert_autocommits_and_close(h, source, &table).await;
}

/// A batch call its caller gives up on (the future is dropped mid-statement) is
/// stopped on the server, rolled back, and its connection is not returned to the pool
/// inside the transaction. Runs where the backend has a running-query probe.
pub async fn dropped_batch_call_is_cancelled_not_pooled_inside_its_transaction(h: &Harness) {
    if h.capabilities().running_probe.is_none() {
        // Without a probe a dropped call's statement cannot be seen to stop (an embedded
        // SQLite keeps its connection busy until the statement ends by itself).
        support::skip_case(
            "dropped batch",
            "the backend has no running-query probe (running_probe)",
        );
        return;
    }
    let marker = support::unique_name("batchdrop");
    let Some(sleep) = sleep_or_skip(h, &marker, "dropped batch") else {
        return;
    };
    let Some((table, source)) = transactional_batch_setup(h, "dropped batch").await else {
        return;
    };
    let statements = [insert_row(&table, 1), sleep, insert_row(&table, 2)];
    // The caller gives up long before the call's own timeout.
    let options = defaults();
    let call = source.execute_batch(&statements, &options);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), call)
            .await
            .is_err(),
        "the batch with a 30 s sleep finished within 500 ms"
    );
    assert_stopped_on_server(h, &marker, "dropped call").await;
    assert_left_nothing(h, source, &table, "rolled back").await;
}

/// `BEGIN`, `COMMIT`, `ROLLBACK` (also after a comment) and the backend's own
/// transaction-control statements inside a batch are refused with
/// [`ErrorKind::Unsupported`] naming the statement, before anything of the batch runs.
pub async fn batch_refuses_transaction_control_before_running(h: &Harness) {
    let Some((table, source)) = transactional_batch_setup(h, "batch transaction control").await
    else {
        return;
    };
    let common = ["COMMIT", "BEGIN", "-- x\nRollback", "/* c */ rollback"].map(String::from);
    for control in common
        .iter()
        .chain(&h.capabilities().batch_transaction_control)
    {
        let error = batch_error(
            &source,
            &[
                insert_row(&table, 1),
                Statement::new(control.clone()),
                insert_row(&table, 2),
            ],
            &defaults(),
            ErrorKind::Unsupported,
            &format!("`{control}` inside a batch"),
        )
        .await;
        assert!(
            error.to_string().contains("statement 2"),
            "{control}: the error names the statement: {error}"
        );
    }
    assert_left_nothing(h, source, &table, "nothing ran").await;
}

// ---------------------------------------------------------------------------------------
// 10. describe

/// `describe` returns the names (and, where the server says, the value kinds) of a
/// query's columns, returns promptly for a long query, and does not run an `INSERT`.
pub async fn describe_reports_columns_without_running(h: &Harness) {
    let caps = h.capabilities();
    let (table, names, firsts) = create_wide_table(h).await;
    let columns: Vec<Column> = describe_ok(
        h,
        &Statement::new(format!("SELECT {} FROM {table}", names.join(", "))),
        "describe of a SELECT",
    )
    .await;
    let got: Vec<String> = columns
        .iter()
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    assert_eq!(got, names, "described column names");
    if caps.describe_reports_kinds {
        for ((column, expected), name) in columns.iter().zip(&firsts).zip(&names).skip(1) {
            if !expected.is_null() {
                assert_eq!(
                    column.value_kind,
                    expected.kind(),
                    "described kind of `{name}` ({}), whose values read back as {expected:?}",
                    column.database_type
                );
            }
        }
    }
    assert_eq!(
        count_rows(h, &table, None).await,
        0,
        "the table is still empty"
    );

    let insert = Statement::new(format!("INSERT INTO {table} (id) VALUES (:id)")).bind("id", 1_i64);
    match h.source().describe(&insert, &defaults()).await {
        Ok(columns) => assert!(
            columns.is_empty(),
            "an INSERT returns no columns: {columns:?}"
        ),
        Err(error) => assert!(
            matches!(error.kind(), ErrorKind::Query | ErrorKind::Unsupported),
            "describe of an INSERT may be refused as a query or unsupported, not: {error}"
        ),
    }
    assert_eq!(
        count_rows(h, &table, None).await,
        0,
        "describe must not run the INSERT it describes"
    );

    if let Some(sleep) = caps.sleep_sql {
        let started = Instant::now();
        describe_ok(h, &Statement::new(sleep(30)), "describe of a long query").await;
        support::assert_elapsed_below(
            started,
            Duration::from_secs(10),
            "describe of a 30 s query (it must not run it)",
        );
    }
}

// ---------------------------------------------------------------------------------------
// 11. read_only

/// A `read_only` connector refuses `INSERT` (through `execute`, `query` and
/// `execute_batch`) and `CREATE TABLE` with [`ErrorKind::ReadOnly`], still answers
/// `SELECT`, and nothing was written.
pub async fn read_only_connector_refuses_writes(h: &Harness) {
    let caps = h.capabilities();
    if !caps.read_only_enforced {
        support::skip_case("read_only", "the backend cannot enforce read-only sessions");
        return;
    }
    let table = id_text_table(h, "ro").await;
    let read_only = ok(
        h.variant(|config| config.with_read_only(true)),
        "building a read-only variant",
    );
    let insert = insert_id_text(&table, 1, "written");
    for call in [Call::Execute, Call::Query] {
        let error = call_error(&*read_only, call, insert.clone(), ErrorKind::ReadOnly).await;
        assert_connector(&error, h, &format!("read-only INSERT through {call:?}"));
    }
    let other = support::unique_name("rocreate");
    let create = (caps.create_table)(&other, &[("id", caps.integer_type.as_str())]);
    let created = read_only
        .execute(&Statement::new(create), &defaults())
        .await;
    if created.is_ok() {
        // Only a non-conforming backend gets here; drop what it wrongly created.
        let _ = h
            .source()
            .execute(&Statement::new((caps.drop_table)(&other)), &defaults())
            .await;
    }
    expect_kind(
        created,
        ErrorKind::ReadOnly,
        "CREATE TABLE on a read-only connector",
    );
    let result = ok(
        read_only
            .query(
                &Statement::new(format!("SELECT COUNT(*) AS n FROM {table}")),
                &defaults(),
            )
            .await,
        "SELECT on a read-only connector",
    );
    assert_eq!(
        single_int(&result, "COUNT(*)"),
        0,
        "rows seen by the read-only connector"
    );
    expect_kind(
        read_only
            .execute_batch(std::slice::from_ref(&insert), &defaults())
            .await,
        ErrorKind::ReadOnly,
        "a writing batch on a read-only connector",
    );
    assert_eq!(count_rows(h, &table, None).await, 0, "nothing was written");
    read_only.close().await;
}

// ---------------------------------------------------------------------------------------
// 12. secrets

/// A wrong password is an [`ErrorKind::Auth`] error that is not temporary, and neither
/// its `Display`, `Debug`, source chain, nor the source's `Debug` contains the password
/// (the wrong one or the real one).
pub async fn wrong_password_is_auth_error_without_secret(h: &Harness) {
    if !h.capabilities().has_passwords {
        support::skip_case("wrong password", "the backend has no passwords");
        return;
    }
    let real = h.password();
    if let Some(real) = &real {
        support::assert_no_secret(&format!("{:?}", h.source()), real, "the source's Debug");
        support::assert_no_secret(&format!("{:?}", h.config()), real, "the config's Debug");
    }
    let wrong = ok(
        h.variant_with_password(SENTINEL_PASSWORD),
        "building a wrong-password variant",
    );
    support::assert_no_secret(
        &format!("{wrong:?}"),
        SENTINEL_PASSWORD,
        "the wrong-password source's Debug",
    );
    let ping = expect_kind(
        wrong.ping().await,
        ErrorKind::Auth,
        "ping with a wrong password",
    );
    assert!(
        !ping.is_temporary(),
        "a wrong password is not temporary: {ping}"
    );
    assert_connector(&ping, h, "wrong password");
    let query = expect_kind(
        wrong
            .query(&Statement::new(h.select("1 AS one")), &defaults())
            .await
            .map(|r| r.rows.len()),
        ErrorKind::Auth,
        "query with a wrong password",
    );
    for error in [&ping, &query] {
        support::assert_error_has_no_secret(error, SENTINEL_PASSWORD, "wrong-password error");
        if let Some(real) = &real {
            support::assert_error_has_no_secret(error, real, "wrong-password error");
        }
    }
    support::assert_no_secret(
        &format!("{wrong:?}"),
        SENTINEL_PASSWORD,
        "the wrong-password source's Debug after connecting",
    );
    wrong.close().await;
}

// ---------------------------------------------------------------------------------------
// 13. close

/// After `close()`, every call fails with [`ErrorKind::Closed`]; closing twice is fine
/// and other sources are not affected.
pub async fn closed_source_refuses_calls(h: &Harness) {
    let source = ok(h.variant(|config| config), "building a second source");
    ok(source.ping().await, "ping before close");
    source.close().await;
    let statement = Statement::new(h.select("1 AS one"));
    let errors = [
        source.ping().await.map(|_| ()).err(),
        source
            .query(&statement, &defaults())
            .await
            .map(|_| ())
            .err(),
        source
            .execute(&statement, &defaults())
            .await
            .map(|_| ())
            .err(),
        source
            .describe(&statement, &defaults())
            .await
            .map(|_| ())
            .err(),
        match source.stream(&statement, &defaults()).await {
            Ok(stream) => stream.collect_limited(None).await.map(|_| ()).err(),
            Err(error) => Some(error),
        },
    ];
    for (error, call) in errors
        .into_iter()
        .zip(["ping", "query", "execute", "describe", "stream"])
    {
        let error = error.unwrap_or_else(|| panic!("{call} succeeded after close()"));
        assert_eq!(
            error.kind(),
            ErrorKind::Closed,
            "{call} after close(): {error}"
        );
        assert_connector(&error, h, call);
    }
    source.close().await;
    serves(
        h,
        Duration::from_secs(5),
        "the main source after closing another",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 14. concurrency

/// Many calls at once on one source each get their own result.
pub async fn concurrent_calls_get_their_own_results(h: &Harness) {
    let select = h.select(&format!("{} AS v", h.text_parameter("p")));
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let source = h.source().clone();
            let statement = Statement::new(select.clone()).bind("p", format!("call-{i}"));
            tokio::spawn(async move { (i, source.query(&statement, &defaults()).await) })
        })
        .collect();
    for task in tasks {
        let (i, result) = task.await.expect("a concurrent call panicked");
        let result = ok(result, &format!("concurrent call {i}"));
        assert_eq!(
            single(&result, "concurrent SELECT :p"),
            Value::Text(format!("call-{i}")),
            "concurrent call {i} got another call's result"
        );
    }
}
