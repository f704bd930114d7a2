//! Hostile accounts and subscribers against the live Spark Thrift server: `read_only`
//! and the server-code check hold whatever the SQL, a parameter value never changes a
//! statement's structure, values stay out of errors and logs, and timestamps keep
//! their meaning.
//!
//! The live property test runs `EXTDATA_HIVE_LIVE_CASES` cases (default 24: Spark
//! answers in ~0.1–1 s per query); the offline property test of the renderer and lexer
//! (`hostile_values_never_change_the_tokens`) runs `PROPTEST_CASES` cases (default
//! 2048; the documented long run sets 100000).

mod common;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate};
use common::{Mode, build, config, on_server, query_rows};
use extdata_conformance::support::{Call, call_error, captured_logs, expect_kind, ok};
use extdata_core::{
    Dialect, ErrorKind, ExternalSource, HiveTokenKind, QueryOptions, Statement, Value,
};
use proptest::prelude::*;

fn cases(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Pieces that try to leave a string, a comment, an identifier, or start a variable.
fn hostile_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(vec![
                "'", "\"", "`", "``", "\\", "\\'", "*/", "/*", "/*+", "--", "\n", "\r", "\r\n",
                "${x}", "${env:HOME}", ";", ":v", "::", "é", "🦀", "\u{2028}", "\0", " ", "a",
                "INSERT INTO t VALUES (1)", "r'", "\\u0027",
            ])
            .prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ],
        0..16,
    )
    .prop_map(|parts| parts.concat())
}

/// Statement shapes around `:v`, each returning the columns `s1`, `v`, `s2`, with the
/// lexer's hard cases before and after the placeholder.
const TEMPLATES: &[&str] = &[
    "SELECT 'a' AS s1, :v AS v, 'z' AS s2",
    "SELECT /* c /* nested :v */ :v */ 'a' AS s1, :v AS v, 'z' AS s2",
    "SELECT /* c /*+ not nested */ 'a' AS s1, :v AS v /* :v */, 'z' AS s2",
    "SELECT 'a' AS s1 -- continued \\\n :v\n, :v AS v, 'z' AS s2",
    "SELECT 'a' AS s1 -- ends at CR\r, :v AS v, 'z' AS s2",
    "SELECT 'a' AS s1 -- not continued \\\r\n, :v AS v -- :v\n, 'z' AS s2",
    "SELECT `we``ird:v` AS s1, :v AS v, 'z' AS s2 FROM (SELECT 'a' AS `we``ird:v`)",
    "SELECT left('a\\'b:v', 1) AS s1, :v AS v, r'z' AS s2",
    "SELECT left(r'a\\', 1) AS s1, :v AS v, left(\"z\\\" :v\", 1) AS s2",
    "SELECT /*+ REPARTITION(1) */ 'a' AS s1, concat(:v, '') AS v, 'z' AS s2",
    "SELECT 'a' AS s1, v, 'z' AS s2 FROM (SELECT :v AS v) WHERE v = :v",
];

/// The template's tokens with each placeholder replaced by the literal's own tokens:
/// what the rendered statement must lex to.
fn expected_tokens(template: &str, literal: &str) -> Vec<(HiveTokenKind, String)> {
    let literal = Statement::new(literal);
    let literal_tokens = literal.hive_tokens().expect("literal lexes");
    let template = Statement::new(template);
    let mut out = Vec::new();
    for token in template.hive_tokens().expect("template lexes") {
        if token.kind == HiveTokenKind::Parameter {
            out.extend(literal_tokens.iter().map(|t| (t.kind, t.text.to_owned())));
        } else {
            out.push((token.kind, token.text.to_owned()));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases("PROPTEST_CASES", 2048),
        ..ProptestConfig::default()
    })]

    /// Offline: whatever the value, the rendered statement lexes (Spark's rules) to the
    /// template's tokens with the placeholder replaced by a literal of fixed shape:
    /// nothing of the value opens or closes a string, comment or identifier.
    #[test]
    fn hostile_values_never_change_the_tokens(
        value in hostile_text(),
        template in proptest::sample::select(TEMPLATES.to_vec()),
    ) {
        let statement = Statement::new(template).bind("v", value.as_str());
        let rendered = statement
            .render_inline(Dialect::Hive, extdata_hive::literal)
            .expect("renders");
        let literal = extdata_hive::string_literal(&value);
        prop_assert!(literal.bytes().skip(12).take(literal.len() - 25).all(|b| b.is_ascii_hexdigit()));
        let actual: Vec<(HiveTokenKind, String)> = Statement::new(rendered.as_str())
            .hive_tokens()
            .expect("the rendered statement lexes")
            .into_iter()
            .map(|t| (t.kind, t.text.to_owned()))
            .collect();
        prop_assert_eq!(actual, expected_tokens(template, &literal));
    }
}

/// Live: each template with hostile values returns exactly the value between its two
/// sentinel columns (the structure did not change).
#[test]
fn hostile_values_come_back_exactly_in_every_template_shape() {
    let Some(config) = config(Mode::Plain) else {
        return;
    };
    let source = build(&config.with_read_only(true)).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases("EXTDATA_HIVE_LIVE_CASES", 24),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runner
        .run(
            &(hostile_text(), proptest::sample::select(TEMPLATES.to_vec())),
            |(value, template)| {
                let statement = Statement::new(template).bind("v", value.as_str());
                let rows = runtime
                    .block_on(source.query(&statement, &QueryOptions::default()))
                    .map_err(|e| TestCaseError::fail(format!("{template:?}: {e}")))?;
                prop_assert_eq!(rows.rows.len(), 1);
                prop_assert_eq!(
                    rows.rows[0].values(),
                    &[
                        Value::Text("a".into()),
                        Value::Text(value.clone()),
                        Value::Text("z".into())
                    ][..],
                    "template {:?}",
                    template
                );
                Ok(())
            },
        )
        .unwrap();
    eprintln!("live hostile values: {:?}", started.elapsed());
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

async fn count(source: &Arc<dyn ExternalSource>, table: &str) -> Value {
    let rows = query_rows(
        source,
        Statement::new(format!("SELECT count(*) FROM {table}")),
        "count",
    )
    .await;
    rows.rows[0].get(0).cloned().unwrap()
}

#[test]
fn read_only_attacks_are_refused_and_write_nothing() {
    on_server(Mode::Plain, async |config| {
        let writer = build(&config).unwrap();
        let reader = build(&config.clone().with_read_only(true)).unwrap();
        let table = unique("extdata_hostile_target");
        let marker = format!("/tmp/{}", unique("extdata-hostile-marker"));
        let _ = std::fs::remove_file(&marker);
        ok(
            writer
                .execute(
                    &Statement::new(format!(
                        "CREATE TABLE IF NOT EXISTS {table} (a INT) USING parquet"
                    )),
                    &QueryOptions::default(),
                )
                .await,
            "creating the target table",
        );
        let insert = format!("INSERT INTO {table} VALUES (1)");
        let attacks = [
            insert.clone(),
            format!("WITH a AS (SELECT 1) {insert}"),
            format!("FROM (SELECT 1 AS a) s INSERT INTO {table} SELECT a"),
            format!("SELECT 1; {insert}"),
            format!("SELECT 1 -- comment ends at CR\r; {insert}"),
            format!("/* a /* nested */ */ {insert}"),
            format!("/* a /*+ not nested */ {insert} /* */"),
            format!("SELECT 1 -- a \\\r\n; {insert}"),
            format!("CACHE TABLE extdata_hostile_cache AS SELECT * FROM {table}"),
            "SET spark.sql.ansi.enabled=false".to_owned(),
            format!("INSERT OVERWRITE DIRECTORY '{marker}' SELECT 1"),
            format!("SELECT TRANSFORM(1) USING 'touch {marker}' AS (a)"),
            format!("SELECT TRANSFORM(1) USING r'touch {marker}' AS (a)"),
            format!(
                "SELECT reflect('java.io.File', 'createTempFile', 'x', 'y', java_method('java.io.File', 'new', '{marker}'))"
            ),
            "SELECT `java_method`('java.lang.System', 'getProperty', 'user.name')".to_owned(),
            "SELECT IDENTIFIER('java_method')('java.lang.System', 'getProperty', 'user.name')"
                .to_owned(),
            format!("EXECUTE IMMEDIATE '{insert}'"),
            "ADD JAR '/nonexistent.jar'".to_owned(),
            format!("SELECT '${{hiveconf:x}}' FROM {table}"),
            format!("MSCK REPAIR TABLE {table}"),
            format!("ANALYZE TABLE {table} COMPUTE STATISTICS"),
            "DECLARE VARIABLE extdata_v INT".to_owned(),
        ];
        for attack in &attacks {
            let result = reader
                .execute(&Statement::new(attack.as_str()), &QueryOptions::default())
                .await;
            let error = result.expect_err(attack);
            assert_eq!(error.kind(), ErrorKind::ReadOnly, "{attack:?}: {error}");
            let result = reader
                .query(&Statement::new(attack.as_str()), &QueryOptions::default())
                .await;
            assert_eq!(
                result.expect_err(attack).kind(),
                ErrorKind::ReadOnly,
                "{attack:?}"
            );
        }
        // Where Spark's comment rules hide the write, the statement is a read: it runs
        // and writes nothing.
        let hidden = format!("SELECT 1 AS a -- continued \\\n; {insert}");
        query_rows(&reader, Statement::new(hidden), "hidden write").await;
        assert_eq!(
            count(&writer, &table).await,
            Value::I64(0),
            "the table stayed empty"
        );
        assert!(
            !std::path::Path::new(&marker).exists(),
            "no command ran on the server"
        );
        ok(
            writer
                .execute(
                    &Statement::new(format!("DROP TABLE {table}")),
                    &QueryOptions::default(),
                )
                .await,
            "dropping the target table",
        );
    });
}

#[test]
fn server_code_is_refused_on_a_writable_connector() {
    on_server(Mode::Plain, async |config| {
        let writer = build(&config).unwrap();
        let marker = format!("/tmp/{}", unique("extdata-hostile-writable"));
        let _ = std::fs::remove_file(&marker);
        for attack in [
            format!("SELECT TRANSFORM(1) USING 'touch {marker}' AS (a)"),
            "SELECT java_method('java.lang.System', 'getProperty', 'user.name')".to_owned(),
            "SELECT IDENTIFIER('reflect')('java.lang.System', 'getProperty', 'user.name')"
                .to_owned(),
        ] {
            let error = call_error(
                writer.as_ref(),
                Call::Query,
                attack.as_str(),
                ErrorKind::Unsupported,
            )
            .await;
            assert!(error.to_string().contains("allow_server_code"), "{error}");
        }
        assert!(
            !std::path::Path::new(&marker).exists(),
            "no command ran on the server"
        );
    });
}

/// On a writable connector whose pool has one session, statements that change the
/// session (a temporary view named like a table, a setting, the current database, a
/// session variable) must not be seen by the next call, which may be another
/// account's: the session they ran on is closed, not reused.
#[test]
fn session_changes_do_not_reach_the_next_call_on_a_writable_connector() {
    on_server(Mode::Plain, async |mut config| {
        config.pool.max_size = Some(1.into());
        let shared = build(&config).unwrap();
        let options = QueryOptions::default();
        let view = unique("zz_victim");
        let text = |v: &Value| v.to_text_lossless();
        let first = |sql: String| {
            let shared = shared.clone();
            async move {
                let set = shared.query(&Statement::new(sql.as_str()), &options).await;
                set.map(|set| text(&set.rows[0].values()[0]))
            }
        };
        let zone_before = first("SELECT current_timezone()".into()).await.unwrap();
        let database_before = first("SELECT current_database()".into()).await.unwrap();
        for attack in [
            format!("CREATE OR REPLACE TEMPORARY VIEW {view} AS SELECT 'attacker' AS who"),
            "SET spark.sql.session.timeZone=Pacific/Apia".to_owned(),
            "SET spark.sql.ansi.enabled=false".to_owned(),
            "DECLARE VARIABLE zz_hostile_v STRING DEFAULT 'attacker'".to_owned(),
            "USE default".to_owned(),
        ] {
            shared
                .execute(&Statement::new(attack.as_str()), &options)
                .await
                .unwrap_or_else(|e| panic!("{attack}: {e}"));
        }
        assert!(
            first(format!("SELECT who FROM {view}")).await.is_err(),
            "the temporary view reached the next call"
        );
        assert_eq!(
            first("SELECT current_timezone()".into()).await.unwrap(),
            zone_before
        );
        assert_eq!(
            first("SELECT current_database()".into()).await.unwrap(),
            database_before
        );
        assert!(
            first("SELECT zz_hostile_v".into()).await.is_err(),
            "the session variable reached the next call"
        );
        assert!(
            first("SELECT CAST('abc' AS INT)".into()).await.is_err(),
            "ANSI mode was switched off for the next call"
        );
    });
}

#[test]
fn parameter_values_appear_in_no_error_and_no_log() {
    captured_logs();
    on_server(Mode::Plain, async |config| {
        let source = build(&config).unwrap();
        let value = "Zorblax-PII-7731@example.com";
        let hex: String = value.bytes().map(|b| format!("{b:02X}")).collect();
        for (sql, what) in [
            (
                "SELECT CAST(:v AS INT) AS n",
                "a cast error quoting the value",
            ),
            (
                "SELECT :v AS v FROM",
                "a syntax error echoing the statement",
            ),
            (
                "SELECT no_such_column, :v AS v",
                "an analysis error showing the plan",
            ),
            (
                "SELECT raise_error(:v)",
                "a runtime error quoting its message",
            ),
        ] {
            let statement = Statement::new(sql).bind("v", value);
            let error = source
                .query(&statement, &QueryOptions::default())
                .await
                .expect_err(what);
            let text = format!("{error} {error:?} {:?}", std::error::Error::source(&error));
            eprintln!("{what}: {error}");
            assert!(
                !text.contains(value) && !text.contains(&hex),
                "{what}: {text}"
            );
            assert!(!text.contains("7731"), "{what}: {text}");
        }
        // Without parameters the server's message is kept whole.
        let error = source
            .query(
                &Statement::new("SELECT CAST('abc' AS INT)"),
                &QueryOptions::default(),
            )
            .await
            .expect_err("a cast error");
        assert!(error.to_string().contains("abc"), "{error}");
    });
    let logs = captured_logs();
    assert!(
        !logs.contains("Zorblax") && !logs.contains("5A6F72626C6178"),
        "{logs}"
    );
}

#[test]
fn timestamp_with_offset_is_its_instant_and_nanoseconds_are_refused() {
    on_server(Mode::NoSasl, async |config| {
        let source =
            build(&config.with_option("spark.sql.session.timeZone", "Asia/Tokyo")).unwrap();
        let with_offset = DateTime::parse_from_rfc3339("2024-01-01T12:00:00.123456+02:00").unwrap();
        let naive = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 654_321)
            .unwrap();
        let statement = Statement::new(
            "SELECT :tz AS tz, :tz = timestamp_micros(1704103200123456) AS same_instant, :ts AS ts",
        )
        .bind("tz", Value::TimestampTz(with_offset))
        .bind("ts", Value::Timestamp(naive));
        let rows = query_rows(&source, statement, "timestamps").await;
        let tokyo = NaiveDate::from_ymd_opt(2024, 1, 1)
            .unwrap()
            .and_hms_micro_opt(19, 0, 0, 123_456)
            .unwrap();
        assert_eq!(
            rows.rows[0].values(),
            &[
                Value::Timestamp(tokyo),
                Value::Bool(true),
                Value::Timestamp(naive)
            ],
            "the instant, shown in the session time zone; the wall time kept exactly"
        );
        for value in [
            Value::TimestampTz(
                DateTime::parse_from_rfc3339("2024-01-01T12:00:00.123456789+02:00").unwrap(),
            ),
            Value::Timestamp(naive + chrono::Duration::nanoseconds(1)),
        ] {
            expect_kind(
                source
                    .query(
                        &Statement::new("SELECT :t").bind("t", value),
                        &QueryOptions::default(),
                    )
                    .await,
                ErrorKind::Parameter,
                "nanoseconds",
            );
        }
    });
}
