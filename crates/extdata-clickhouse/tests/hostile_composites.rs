//! Hostile arrays, tuples and maps against the live servers, each test on 18.16
//! (rendered client-side) and on 26.x (server-side `{name:Array(T)}` parameters whose
//! value text the backend writes): elements full of quotes, backslashes, control
//! characters, brackets and invalid UTF-8 come back exactly (same count, same values,
//! same NULLs: an element-count change is a break-out), whatever sits around the
//! placeholder; huge and deeply nested values and many parameters end in a typed error
//! or exactly, never in a panic or a stack overflow; the extra `DESCRIBE` of a zoned
//! `DateTime` survives a template's trailing comment.
//!
//! The property test runs `EXTDATA_PROPTEST_CASES` cases per shape (default 256) with
//! a fresh seed per run (`EXTDATA_PROPTEST_SEED` repeats one), as `tests/hostile.rs`.

#[macro_use]
mod support;

use std::sync::Arc;

use extdata_core::{ErrorKind, QueryOptions, Statement, Value, ValueKind};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

use support::{Server, expected, hostile_text, proptest_cases, proptest_seed, row};

on_every_server!(
    hostile_elements_come_back_exactly_in_every_composite_shape,
    composites_next_to_comments_identifiers_and_in_functions,
    huge_composites_and_many_parameters_come_back_exactly,
    deeply_nested_arrays_are_a_typed_error_or_exact,
    zoned_datetime_survives_a_trailing_comment,
    edge_composites_come_back_or_fail_typed,
    many_settings_and_parameters_stay_under_the_field_limit,
    the_zone_describe_runs_under_the_queries_settings,
);

/// What ends strings, identifiers, comments, arrays, tuples and maps.
const PIECES: &[&str] = &[
    "'", "\\", "\\'", "\t", "\n", "\r", "\0", "]", "[", ",", ")", "(", "}", "{", ":", "NULL",
    "\\N", "`", "\"", "*/", "--", "é🎉", "\u{7f}", "\u{2028}", "x",
];

/// A hostile string element: text, or bytes (often not UTF-8).
fn element() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => hostile_text(PIECES).prop_map(Value::Text),
        1 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
    ]
}

/// A string element or NULL.
fn nullable_element() -> impl Strategy<Value = Value> {
    prop_oneof![4 => element(), 1 => Just(Value::Null)]
}

/// The shapes: each draws one composite value; 18.16 has no `Map`.
fn shape(index: usize) -> BoxedStrategy<Value> {
    let list = |s: BoxedStrategy<Value>| proptest::collection::vec(s, 0..8);
    match index {
        0 => list(element().boxed()).prop_map(Value::Array).boxed(),
        1 => list(nullable_element().boxed())
            .prop_map(Value::Array)
            .boxed(),
        2 => proptest::collection::vec(list(element().boxed()).prop_map(Value::Array), 0..5)
            .prop_map(Value::Array)
            .boxed(),
        3 => (element(), nullable_element(), element())
            .prop_map(|(a, b, c)| Value::Tuple(vec![a, b, Value::Array(vec![c])]))
            .boxed(),
        4 => proptest::collection::vec((element(), list(nullable_element().boxed())), 0..6)
            .prop_map(|entries| {
                Value::Map(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k, Value::Array(v)))
                        .collect(),
                )
            })
            .boxed(),
        _ => unreachable!(),
    }
}

const SHAPE_NAMES: &[&str] = &[
    "Array(String)",
    "Array(Nullable(String))",
    "Array(Array(String))",
    "Tuple(String, Nullable(String), Array(String))",
    "Map(String, Array(Nullable(String)))",
];

/// A value's element count at every level, for the message of a break-out.
fn counts(value: &Value) -> String {
    match value {
        Value::Array(items) | Value::Tuple(items) => format!(
            "[{}: {}]",
            items.len(),
            items.iter().map(counts).collect::<Vec<_>>().join(" ")
        ),
        Value::Map(entries) => format!("{{{}}}", entries.len()),
        _ => ".".to_owned(),
    }
}

async fn hostile_elements_come_back_exactly_in_every_composite_shape(server: Server) {
    let (settings, _) = source_or_skip!(server);
    let source = support::build(&settings.http("ch-hostile-composites")).unwrap();
    let shapes = if server.modern() { 5 } else { 4 };
    let cases = proptest_cases(256);
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &proptest_seed()),
    );
    let mut inputs = Vec::new();
    for index in 0..shapes {
        let strategy = shape(index);
        for _ in 0..cases {
            inputs.push((index, strategy.new_tree(&mut runner).unwrap().current()));
        }
    }
    let started = std::time::Instant::now();
    let checked = futures::stream::iter(inputs)
        .map(|(index, value)| {
            let source = Arc::clone(&source);
            async move {
                // The value twice, around a second placeholder: neither may take the
                // other's place or change the columns.
                let statement =
                    Statement::new("SELECT :v AS v, 'after' AS tail, :w AS w, :v AS again")
                        .bind("v", value.clone())
                        .bind("w", Value::Array(vec![Value::Text("w'],".into())]));
                let values = row(source.as_ref(), &statement).await;
                let want = expected(&value);
                assert_eq!(
                    values.len(),
                    4,
                    "{}: the columns changed",
                    SHAPE_NAMES[index]
                );
                assert_eq!(
                    values[0],
                    want,
                    "{}: {} came back as {}",
                    SHAPE_NAMES[index],
                    counts(&want),
                    counts(&values[0])
                );
                assert_eq!(values[1], Value::Text("after".into()));
                assert_eq!(values[2], Value::Array(vec![Value::Text("w'],".into())]));
                assert_eq!(values[3], want, "{}", SHAPE_NAMES[index]);
            }
        })
        .buffer_unordered(8)
        .count()
        .await;
    eprintln!(
        "{checked} hostile composites in {shapes} shapes came back exactly in {:?}",
        started.elapsed()
    );
}

/// Templates that put a composite `:a` next to comments, quoted identifiers and string
/// literals, and inside `IN (…)`, `has(…)`, `arrayJoin`; each selects a fixed answer
/// (`:a` holds `it's`, `]`, `)` and `\`) and `'after'` last.
async fn composites_next_to_comments_identifiers_and_in_functions(server: Server) {
    let (_, source) = source_or_skip!(server);
    let a = Value::Array(vec![
        Value::Text("it's".into()),
        Value::Text("]".into()),
        Value::Text("') --".into()),
        Value::Text("\\".into()),
    ]);
    let text = |t: &str| Value::Text(t.to_owned());
    let cases: Vec<(&str, Vec<Value>)> = vec![
        (
            "SELECT /* :no */ length(:a) /* ] */ AS n, 'after'",
            vec![Value::U64(4), text("after")],
        ),
        (
            "SELECT length(:a) AS `a\\` :no ]`, 'after' -- :no\n",
            vec![Value::U64(4), text("after")],
        ),
        (
            "SELECT length(:a) AS \"q\"\" :no\", ':a ]' AS s, 'after'",
            vec![Value::U64(4), text(":a ]"), text("after")],
        ),
        (
            "SELECT 'it''s' IN (:a) AS inside, 'x' IN (:a) AS outside, 'after'",
            vec![Value::U8(1), Value::U8(0), text("after")],
        ),
        (
            "SELECT has(:a, ']') AS h, has(:a, '\\\\') AS b, 'after'",
            vec![Value::U8(1), Value::U8(1), text("after")],
        ),
        (
            "SELECT count() AS n, 'after' FROM (SELECT arrayJoin(:a) AS x)",
            vec![Value::U64(4), text("after")],
        ),
        (
            "SELECT x, 'after' FROM (SELECT arrayJoin(:a) AS x) WHERE x = ''') --'",
            vec![text("') --"), text("after")],
        ),
        (
            "SELECT indexOf(:a, '\\\\') AS i, 'after' --",
            vec![Value::U64(4), text("after")],
        ),
    ];
    for (sql, want) in cases {
        if sql.contains(" IN (") && !server.modern() {
            continue; // 18.16 has no `x IN (array)`
        }
        let statement = Statement::new(sql).bind("a", a.clone());
        let result = source
            .query(&statement, &QueryOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(result.rows.len(), 1, "{sql}");
        let got: Vec<Value> = result.rows[0]
            .values()
            .iter()
            .map(|v| match v {
                Value::Bool(b) => Value::U8(u8::from(*b)),
                other => other.clone(),
            })
            .collect();
        assert_eq!(got, want, "{sql}");
    }
}

/// A composite past the server's form-field limit (128 KiB) goes as a literal, a
/// thousand parameters past its field count do too; both come back exactly, and so do
/// 900 parameters, the most sent as server parameters.
async fn huge_composites_and_many_parameters_come_back_exactly(server: Server) {
    let (_, source) = source_or_skip!(server);
    let items: Vec<Value> = (0..3000)
        .map(|i| Value::Text(format!("{i}'\\\t],{}", "x".repeat(60))))
        .collect();
    let big = Value::Array(items);
    let values = row(
        source.as_ref(),
        &Statement::new("SELECT :a AS a, length(:a) AS n").bind("a", big.clone()),
    )
    .await;
    assert_eq!(values, [big, Value::U64(3000)]);
    // 900: the most sent as server parameters (with the request's settings, under the
    // server's 1,000 form fields); 1,000: as literals.
    for count in [900, 1000] {
        let mut sql = String::from("SELECT [");
        let mut statement_params = Vec::new();
        for i in 0..count {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(":p{i}"));
            statement_params.push((
                format!("p{i}"),
                Value::Array(vec![Value::Text(format!("{i}']"))]),
            ));
        }
        sql.push(']');
        let mut statement = Statement::new(sql);
        for (name, value) in &statement_params {
            statement = statement.bind(name.as_str(), value.clone());
        }
        let values = row(source.as_ref(), &statement).await;
        let want = Value::Array(statement_params.into_iter().map(|(_, v)| v).collect());
        assert_eq!(values, [want], "{count} parameters");
    }
}

/// Arrays nested deeper than the server takes — an 18.16 server crashes on a literal
/// 1,000 arrays deep — are a `Parameter` error before any request, also thousands of
/// levels deep on a thread with a tokio worker's stack (2 MiB), where walking the value
/// once per level would overflow it; 100 levels come back exactly.
async fn deeply_nested_arrays_are_a_typed_error_or_exact(server: Server) {
    let (settings, _) = source_or_skip!(server);
    let config = settings.http("ch-deep");
    for depth in [100_usize, 101, 3_000, 50_000] {
        let config = config.clone();
        let outcome = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let source = support::build(&config).unwrap();
                let mut value = Value::Text("deep'".into());
                for _ in 0..depth {
                    value = Value::Array(vec![value]);
                }
                let statement = Statement::new("SELECT :a AS a").bind("a", value);
                let result = extdata_conformance::support::block_on(
                    source.query(&statement, &QueryOptions::default()),
                );
                let outcome = match &result {
                    Ok(result) => Ok(result.rows[0].get(0) == statement.params().get("a")),
                    Err(error) => Err((error.kind(), error.to_string())),
                };
                // Dropping a value this deep recurses once per level (the caller's own
                // value): the test leaks it rather than measure its own drop.
                std::mem::forget(statement);
                std::mem::forget(result);
                outcome
            })
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("depth {depth}: the call panicked"));
        if depth <= 100 {
            assert_eq!(outcome, Ok(true), "depth {depth}");
        } else {
            let (kind, message) = outcome.expect_err("too deep");
            assert_eq!(kind, ErrorKind::Parameter, "depth {depth}: {message}");
            assert!(message.contains(":a"), "{message}");
            assert!(!message.contains("deep'"), "{message}");
        }
    }
}

/// The `DESCRIBE` that names a top-level `DateTime`'s zone wraps the template: a
/// trailing `--` comment must not comment out its closing parenthesis (the zone would
/// be lost, and an empty result would have no columns).
async fn zoned_datetime_survives_a_trailing_comment(server: Server) {
    let (_, source) = source_or_skip!(server);
    for sql in [
        "SELECT toDateTime(0, 'Asia/Tokyo') AS t, :v AS v -- a note",
        "SELECT toDateTime(0, 'Asia/Tokyo') AS t, :v AS v # a note",
    ] {
        if sql.contains('#') && !server.modern() {
            continue; // 18.16 has no `#` comments
        }
        let statement = Statement::new(sql).bind("v", "x");
        for call in 0..2 {
            let result = source
                .query(&statement, &QueryOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(
                result.columns.first().map(|c| c.value_kind),
                Some(ValueKind::TimestampTz),
                "{sql} (call {call}): {:?}",
                result.columns
            );
            assert!(
                matches!(result.rows[0].get(0), Some(Value::TimestampTz(ts)) if ts.offset().local_minus_utc() == 9 * 3600),
                "{sql}: {:?}",
                result.rows[0]
            );
        }
        let empty =
            Statement::new(format!("SELECT * FROM ({}\n) WHERE 0 -- note", sql)).bind("v", "x");
        let result = source
            .query(&empty, &QueryOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(result.rows.is_empty());
        assert_eq!(result.columns.len(), 2, "{sql}: an empty result's columns");
    }
}

/// One-element tuples, maps with duplicate keys (the server keeps both), NaN keys,
/// Nullable keys (which `Map` refuses: a typed error naming no value).
async fn edge_composites_come_back_or_fail_typed(server: Server) {
    let (_, source) = source_or_skip!(server);
    let text = |t: &str| Value::Text(t.to_owned());
    let mut exact = vec![
        Value::Tuple(vec![text("x')")]),
        Value::Tuple(vec![Value::Null]),
    ];
    if server.modern() {
        exact.push(Value::Map(vec![
            (text("k'"), Value::I64(1)),
            (text("k'"), Value::I64(2)),
        ]));
        exact.push(Value::Map(vec![
            (Value::F64(f64::INFINITY), Value::Array(vec![])),
            (Value::F64(-0.5), Value::Array(vec![Value::Null])),
        ]));
        exact.push(Value::Map(vec![]));
    }
    for value in exact {
        let values = row(
            source.as_ref(),
            &Statement::new("SELECT :v AS v, 'after'").bind("v", value.clone()),
        )
        .await;
        assert_eq!(values, [value, text("after")]);
    }
    if server.modern() {
        let value = Value::Map(vec![
            (Value::Null, Value::I64(1)),
            (text("secret-key-77"), Value::I64(2)),
        ]);
        let error = source
            .query(
                &Statement::new("SELECT :v").bind("v", value),
                &QueryOptions::default(),
            )
            .await
            .expect_err("Map has no Nullable keys");
        assert_eq!(error.kind(), ErrorKind::Query, "{error}");
        assert!(
            !format!("{error} {error:?}").contains("secret-key"),
            "{error:?}"
        );
    }
}

/// The `DESCRIBE` that names a zone is the template's own SQL run once more: on a
/// read-only connector it must carry the query's `readonly = 2`, time limit and the
/// connector's settings, seen from the server's own `system.processes` while a scalar
/// subquery keeps it running (26.x: its `Settings` map).
async fn the_zone_describe_runs_under_the_queries_settings(server: Server) {
    let (settings, probe) = source_or_skip!(server);
    if !server.modern() {
        return; // 18.16's system.processes has no Settings map
    }
    let config = settings
        .http("ch-describe-settings")
        .with_read_only(true)
        .with_options("setting.max_threads=3");
    let source = support::build(&config).unwrap();
    let marker = format!("describe-mark-{}", std::process::id());
    let sql = format!(
        "SELECT toDateTime(0, 'Asia/Tokyo') AS t, (SELECT sleep(0.8)) AS s, :v AS v, \
         '{marker}' AS m"
    );
    let statement = Statement::new(sql).bind("v", "x");
    // The server shows each query formatted, its parameters put in.
    let watch = Statement::new(format!(
        "SELECT position(query, 'DESCRIBE TABLE') = 1, Settings['readonly'], \
         Settings['max_execution_time'], Settings['max_threads'] FROM system.processes \
         WHERE position(query, '{marker}') > 0 AND position(query, 'system.processes') = 0"
    ));
    let seen = std::sync::Mutex::new(Vec::new());
    let run = async {
        for _ in 0..2 {
            let result = source
                .query(&statement, &QueryOptions::default())
                .await
                .expect("the query");
            assert_eq!(
                result.columns.first().map(|c| c.value_kind),
                Some(ValueKind::TimestampTz)
            );
        }
    };
    let poll = async {
        loop {
            let result = probe
                .query(&watch, &QueryOptions::default())
                .await
                .expect("system.processes");
            seen.lock()
                .unwrap()
                .extend(result.rows.iter().map(|row| row.values().to_vec()));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = run => {}
        () = poll => {}
    }
    let seen = seen.into_inner().unwrap();
    let (describes, queries): (Vec<_>, Vec<_>) = seen
        .into_iter()
        .partition(|row| matches!(row[0], Value::Bool(true) | Value::U8(1)));
    assert!(!describes.is_empty(), "no DESCRIBE was seen running");
    assert!(!queries.is_empty(), "the query was not seen running");
    let text = |t: &str| Value::Text(t.to_owned());
    for row in describes.iter().chain(&queries) {
        assert_eq!(row[1], text("2"), "readonly: {row:?}");
        assert_eq!(row[3], text("3"), "the connector's setting: {row:?}");
        assert_eq!(row[2], queries[0][2], "max_execution_time: {row:?}");
    }
}

/// A connector with 150 `setting.*` options (each at its default value) binding 900
/// arrays: the request's settings and parameters together stay under the server's
/// 1,000 form fields (`http_max_fields`), or the call is a typed error naming no value.
async fn many_settings_and_parameters_stay_under_the_field_limit(server: Server) {
    let (settings, probe) = source_or_skip!(server);
    if !server.server_parameters() {
        return; // literals in a plain body: no form fields (and no system.settings.type)
    }
    let defaults = probe
        .query(
            &Statement::new(
                "SELECT name, value FROM system.settings WHERE type IN ('UInt64', 'Bool') \
                 AND changed = 0 AND name NOT LIKE '%readonly%' ORDER BY name LIMIT 150",
            ),
            &QueryOptions::default(),
        )
        .await
        .expect("system.settings");
    let options: Vec<String> = defaults
        .rows
        .iter()
        .filter_map(|row| match (row.get(0), row.get(1)) {
            (Some(Value::Text(name)), Some(Value::Text(value))) => {
                Some(format!("setting.{name}={value}"))
            }
            _ => None,
        })
        .collect();
    let config = settings
        .http("ch-many-settings")
        .with_options(options.join("&").as_str());
    let source = support::build(&config).unwrap();
    assert!(options.len() >= 100, "{} settings", options.len());
    let mut sql = String::from("SELECT [");
    let mut want = Vec::new();
    for i in 0..900 {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(":p{i}"));
        want.push(Value::Array(vec![Value::Text(format!("secret-{i}']"))]));
    }
    sql.push(']');
    let mut statement = Statement::new(sql);
    for (i, value) in want.iter().enumerate() {
        statement = statement.bind(format!("p{i}").as_str(), value.clone());
    }
    match source.query(&statement, &QueryOptions::default()).await {
        Ok(result) => assert_eq!(result.rows[0].values(), [Value::Array(want)]),
        Err(error) => {
            let text = format!("{error} {error:?}");
            assert!(!text.contains("secret-"), "{text}");
            panic!("{} settings and 900 parameters: {error}", options.len());
        }
    }
}
