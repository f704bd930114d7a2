//! A bound value (a subscriber's personal data) never appears in an error or a log line,
//! although ClickHouse quotes the query and offending values in its messages and the
//! clickhouse crate logs them: errors show the statement's placeholders instead.
//!
//! Its own test binary: it installs a global tracing subscriber that keeps every line.
//! Runs on 18.16 (values rendered into the SQL) and on 26.x (server-side parameters).

#[macro_use]
mod support;

use extdata_conformance::support::{captured_logs, error_texts};
use extdata_core::{Error, QueryOptions, Statement, Value};
use futures::StreamExt;
use support::Server;

const SECRET: &str = "pii-sentinel-3141@example.com";

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02X}")).collect()
}

/// Panics when `text` holds one of `needles` (each with what it is, for the message);
/// `what` names the text.
fn assert_holds_none(text: &str, needles: &[(&str, &str)], what: &str) {
    for (needle, name) in needles {
        assert!(!text.contains(needle), "{what}: {name} is in `{text}`");
    }
}

fn assert_no_value(error: &Error, what: &str) {
    let needles = [
        (SECRET, "the value"),
        ("pii-sentinel", "part of the value"),
        (&hex(SECRET)[..16], "the value's hex"),
    ];
    for text in error_texts(error) {
        assert_holds_none(&text, &needles, what);
    }
}

on_every_server!(
    errors_and_logs_show_placeholders_never_values,
    composite_elements_stay_out_of_errors_and_logs,
);

async fn errors_and_logs_show_placeholders_never_values(server: Server) {
    captured_logs();
    async {
        let Some((settings, _)) = support::source_of(server).await else {
            return;
        };
        let source = support::build(&settings.http("ch-pii")).unwrap();
        let failing = [
            // The server echoes the query from the failing position on.
            ("syntax error", "SELEC :v AS v"),
            ("syntax error before the value", "SELECT FROM :v"),
            // The server quotes the value it could not convert.
            ("conversion", "SELECT toUInt64(:v)"),
            ("date conversion", "SELECT toDateTime(:v)"),
            ("unknown identifier", "SELECT :v AS v, nope_column"),
        ];
        for (what, sql) in failing {
            let statement = Statement::new(sql).bind("v", SECRET);
            let error = source
                .query(&statement, &QueryOptions::default())
                .await
                .expect_err(what);
            assert_no_value(&error, what);
            // 18.16 echoes the rendered query, where each value stands as its `:name`;
            // 26.x parses `{v:String}` and echoes from the failing position on.
            if what.starts_with("syntax error") && server == Server::V18 {
                assert!(error.message().contains(":v"), "{what}: {error}");
            }
            let error = source
                .execute(&statement, &QueryOptions::default())
                .await
                .expect_err(what);
            assert_no_value(&error, &format!("{what} (execute)"));
            match source.stream(&statement, &QueryOptions::default()).await {
                Err(error) => assert_no_value(&error, &format!("{what} (stream)")),
                Ok(mut rows) => {
                    while let Some(row) = rows.next().await {
                        if let Err(error) = row {
                            assert_no_value(&error, &format!("{what} (stream row)"));
                        }
                    }
                }
            }
            let error = source
                .describe(&statement, &QueryOptions::default())
                .await
                .expect_err(what);
            assert_no_value(&error, &format!("{what} (describe)"));
        }
        // An error after the first rows of a stream, with the value in the query.
        let statement = Statement::new(
            "SELECT number, :v FROM system.numbers WHERE throwIf(number = 300000) = 0 \
             LIMIT 1000000 SETTINGS max_block_size = 1000",
        )
        .bind("v", SECRET);
        let mut rows = source
            .stream(&statement, &QueryOptions::default())
            .await
            .expect("first rows");
        let mut failed = false;
        while let Some(row) = rows.next().await {
            if let Err(error) = row {
                assert_no_value(&error, "mid-stream");
                failed = true;
            }
        }
        assert!(failed, "the stream must end with an error");
        // A sub-second timestamp compared with a DateTime: the server quotes its text.
        let stamp = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_milli_opt(3, 4, 5, 678)
            .unwrap();
        // 18.16 binds it as text, which it cannot compare with a DateTime; 26.x as a
        // DateTime64 parameter, whose text it quotes when it is no IPv4 address.
        let sql = match server {
            Server::V18 => "SELECT now() > :t",
            Server::V26 => "SELECT toIPv4(toString(:t))",
        };
        let error = source
            .query(
                &Statement::new(sql).bind("t", Value::Timestamp(stamp)),
                &QueryOptions::default(),
            )
            .await
            .expect_err("the timestamp makes the query fail");
        for text in error_texts(&error) {
            assert!(!text.contains("03:04:05.678"), "{text}");
        }
    }
    .await;
    let needles = [
        (SECRET, "the value"),
        (&hex(SECRET)[..16], "the value's hex"),
        ("03:04:05.678", "the timestamp"),
    ];
    assert_holds_none(&captured_logs(), &needles, "the log");
}

/// Elements of arrays, tuples and maps — strings and numbers — in no error and no log
/// line when the server refuses the composite: a type mismatch (26.x echoes the whole
/// value as `_CAST([…], 'Array(T)')`), a conversion of an element, an element out of
/// range, a syntax error after the placeholder.
async fn composite_elements_stay_out_of_errors_and_logs(server: Server) {
    const ELEMENT: &str = "pii-elem-2718@example.com";
    const NUMBER: i64 = 4_155_550_123;
    captured_logs();
    async {
        let Some((settings, _)) = support::source_of(server).await else {
            return;
        };
        let source = support::build(&settings.http("ch-pii-composite")).unwrap();
        let strings = Value::Array(vec![Value::Text(ELEMENT.into()), Value::Text("ab".into())]);
        let numbers = Value::Array(vec![Value::I64(NUMBER), Value::I64(-NUMBER)]);
        let tuple = Value::Tuple(vec![Value::Text(ELEMENT.into()), Value::I64(NUMBER)]);
        let map = Value::Map(vec![(Value::Text(ELEMENT.into()), Value::I64(NUMBER))]);
        let mut failing = vec![
            ("type mismatch", "SELECT :a + 1", strings.clone()),
            (
                "numbers type mismatch",
                "SELECT toUInt8(:a)",
                numbers.clone(),
            ),
            (
                "numbers out of range",
                "SELECT arrayMap(x -> toDate(x), :a) AS d, throwIf(1)",
                numbers.clone(),
            ),
            (
                "element conversion",
                "SELECT arrayMap(x -> toUInt64(x), :a)",
                strings.clone(),
            ),
            ("syntax error after", "SELECT :a,, 1", strings.clone()),
            ("tuple mismatch", "SELECT :a + 1", tuple.clone()),
        ];
        if server.modern() {
            failing.push(("map mismatch", "SELECT :a + 1", map.clone()));
            failing.push(("map keys", "SELECT toUInt8(mapKeys(:a))", map.clone()));
        }
        for (what, sql, value) in failing {
            let statement = Statement::new(sql).bind("a", value);
            let error = source
                .query(&statement, &QueryOptions::default())
                .await
                .expect_err(what);
            let needles = [
                (ELEMENT, "an element"),
                ("pii-elem", "part of an element"),
                (&NUMBER.to_string(), "a number element"),
                (&hex(ELEMENT)[..16], "an element's hex"),
            ];
            for text in error_texts(&error) {
                assert_holds_none(&text, &needles, what);
            }
        }
    }
    .await;
    let needles = [
        (ELEMENT, "an element"),
        (&NUMBER.to_string(), "a number element"),
    ];
    assert_holds_none(&captured_logs(), &needles, "the log");
}
