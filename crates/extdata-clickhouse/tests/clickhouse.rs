//! ClickHouse-specific behaviour against the real server: types, streaming memory,
//! server-side cancel, mid-stream errors, error kinds, TLS and hostile strings.

mod support;

use std::time::{Duration, Instant};

use extdata_conformance::support::{assert_error_has_no_secret, block_on, unique_name};
use extdata_core::{ErrorKind, ExternalSource, QueryOptions, Statement, Value};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

macro_rules! source_or_skip {
    () => {{
        let Some(settings) = support::settings() else {
            return;
        };
        let Some(source) = support::reachable(&settings).await else {
            return;
        };
        (settings, source)
    }};
}

async fn one(source: &dyn ExternalSource, sql: &str) -> Vec<Value> {
    let result = source
        .query(&Statement::new(sql), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    result.rows.first().expect("one row").values().to_vec()
}

#[test]
fn server_types_decode_exactly() {
    block_on(async {
        let (_, source) = source_or_skip!();
        let values = one(
            source.as_ref(),
            "SELECT toUInt64('18446744073709551615') AS u, toInt64('-9223372036854775808') AS i, \
             toDecimal128('-12345678901234567890123456.0123456789', 10) AS d, \
             toDateTime('2024-01-02 03:04:05', 'Asia/Tokyo') AS tz, \
             CAST('b' AS Enum8('a' = 1, 'b' = -2)) AS e, [1, 2, 3] AS a, (1, 'x') AS t, \
             toNullable(7) AS n, CAST('x' AS LowCardinality(String)) AS lc, \
             toFixedString('ab', 3) AS f, toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS uu, \
             [[1], []] AS nested, CAST(NULL AS Nullable(String)) AS ns",
        )
        .await;
        let tokyo = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05+09:00").unwrap();
        assert_eq!(values[0], Value::U64(u64::MAX));
        assert_eq!(values[1], Value::I64(i64::MIN));
        assert_eq!(
            values[2],
            Value::Decimal("-12345678901234567890123456.0123456789".parse().unwrap())
        );
        // 18.16 names a computed DateTime's type without its zone in the Native header
        // (a table column keeps it: see the conformance type cases); the instant is right.
        match &values[3] {
            Value::TimestampTz(ts) => {
                assert_eq!(*ts, tokyo);
                assert_eq!(ts.offset().local_minus_utc(), 9 * 3600);
            }
            Value::Timestamp(naive) => assert_eq!(naive.and_utc(), tokyo),
            other => panic!("{other:?}"),
        }
        assert_eq!(values[4], Value::Text("b".into()));
        assert_eq!(
            values[5],
            Value::Array(vec![Value::U8(1), Value::U8(2), Value::U8(3)])
        );
        assert_eq!(
            values[6],
            Value::Tuple(vec![Value::U8(1), Value::Text("x".into())])
        );
        assert_eq!(values[7], Value::U8(7));
        assert_eq!(values[8], Value::Text("x".into()));
        assert_eq!(values[9], Value::Text("ab\0".into()));
        assert_eq!(
            values[10],
            Value::Uuid("61f0c404-5cb3-11e7-907b-a6006ad3dba0".parse().unwrap())
        );
        assert_eq!(
            values[11],
            Value::Array(vec![Value::Array(vec![Value::U8(1)]), Value::Array(vec![])])
        );
        assert_eq!(values[12], Value::Null);
    });
}

#[test]
fn unsupported_type_is_a_decode_error_not_a_wrong_value() {
    block_on(async {
        let (_, source) = source_or_skip!();
        // AggregateFunction states have no reader in the clickhouse crate.
        let error = source
            .query(
                &Statement::new("SELECT uniqState(1) AS x"),
                &QueryOptions::default(),
            )
            .await
            .expect_err("AggregateFunction is not decodable");
        assert_eq!(error.kind(), ErrorKind::Decode, "{error}");
        // `NULL` alone is Nullable(Nothing), which the crate cannot read either: it is
        // read through a cast, and comes back as NULL.
        let values = one(source.as_ref(), "SELECT NULL AS x, [] AS y").await;
        assert_eq!(values, [Value::Null, Value::Array(vec![])]);
    });
}

#[test]
fn streaming_ten_million_rows_keeps_memory_flat() {
    block_on(async {
        let (_, source) = source_or_skip!();
        let statement =
            Statement::new("SELECT number, toString(number) FROM system.numbers LIMIT 10000000");
        let mut stream = source
            .stream(
                &statement,
                &QueryOptions::default().with_timeout(Duration::from_secs(60)),
            )
            .await
            .expect("stream");
        let started = Instant::now();
        let mut count: u64 = 0;
        let mut rss_after_first_million = 0;
        let mut peak = 0;
        while let Some(row) = stream.next().await {
            let row = row.expect("row");
            if count.is_multiple_of(1_000_000) {
                assert_eq!(row.get(0), Some(&Value::U64(count)));
                assert_eq!(row.get(1), Some(&Value::Text(count.to_string())));
                let rss = rss_kib();
                peak = peak.max(rss);
                if count == 1_000_000 {
                    rss_after_first_million = rss;
                }
            }
            count += 1;
        }
        assert_eq!(count, 10_000_000);
        eprintln!(
            "streamed {count} rows in {:?}; RSS after 1M rows {rss_after_first_million} KiB, \
             peak sampled {peak} KiB",
            started.elapsed()
        );
        // Flat: the result is ~190 MB as text; the process must not grow by anything near it.
        assert!(
            peak < rss_after_first_million + 64 * 1024,
            "memory grew from {rss_after_first_million} KiB to {peak} KiB while streaming"
        );
    });
}

#[test]
fn streamed_rows_keep_their_order_across_chunks_and_blocks() {
    block_on(async {
        let (_, source) = source_or_skip!();
        // Blocks of 3,000 rows are handed over 1,024 rows at a time: chunk ends fall
        // inside blocks and block ends inside chunks; a first block of one row too.
        for (rows, block) in [(10_000_u64, 3_000_u64), (2_049, 1), (1, 65_536)] {
            let statement = Statement::new(format!(
                "SELECT number, toString(number), [number, number + 1] FROM numbers({rows}) \
                 SETTINGS max_block_size = {block}"
            ));
            let mut stream = source
                .stream(&statement, &QueryOptions::default())
                .await
                .expect("stream");
            let mut count: u64 = 0;
            while let Some(row) = stream.next().await {
                let row = row.expect("row");
                assert_eq!(row.get(0), Some(&Value::U64(count)), "row {count}");
                assert_eq!(row.get(1), Some(&Value::Text(count.to_string())));
                assert_eq!(
                    row.get(2),
                    Some(&Value::Array(vec![
                        Value::U64(count),
                        Value::U64(count + 1)
                    ]))
                );
                count += 1;
            }
            assert_eq!(count, rows, "max_block_size = {block}");
        }
    });
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn running(source: &dyn ExternalSource, marker: &str) -> bool {
    let values = one(
        source,
        &format!(
            "SELECT count() FROM system.processes WHERE query LIKE '%{marker}%' \
             AND query NOT LIKE '%system.processes%'"
        ),
    )
    .await;
    values[0].as_i64().unwrap_or(0) > 0
}

#[test]
fn timeout_cancels_query_on_server() {
    block_on(async {
        let (_, source) = source_or_skip!();
        let marker = unique_name("sleep");
        // sleep() is capped at 3 s per block: chained blocks run past the timeout, and
        // the marker sits inside the query (18.16 drops trailing comments).
        let statement = Statement::new(format!(
            "SELECT sleep(0.5), '{marker}' FROM numbers(20) SETTINGS max_block_size = 1"
        ));
        let task = tokio::spawn({
            let source = source.clone();
            async move {
                let started = Instant::now();
                let result = source
                    .query(
                        &statement,
                        &QueryOptions::default().with_timeout(Duration::from_secs(1)),
                    )
                    .await;
                (result, started.elapsed())
            }
        });
        let mut seen = false;
        while !task.is_finished() {
            if running(source.as_ref(), &marker).await {
                seen = true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (result, elapsed) = task.await.unwrap();
        let error = result.expect_err("must time out");
        assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
        assert!(seen, "the query was never seen running");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !running(source.as_ref(), &marker).await,
            "the query still runs 1 s after its timeout"
        );
        eprintln!("timeout returned after {elapsed:?}");
    });
}

#[test]
fn error_after_streaming_began_is_an_error() {
    block_on(async {
        let (_, source) = source_or_skip!();
        let sql = "SELECT number, throwIf(number = 900000) FROM system.numbers LIMIT 1000000 \
                   SETTINGS max_block_size = 1000";
        // query: buffered on the server, so the server's own error comes back.
        let error = source
            .query(
                &Statement::new(sql),
                &QueryOptions::default().with_max_rows(2_000_000),
            )
            .await
            .expect_err("throwIf must fail the query");
        assert_eq!(error.kind(), ErrorKind::Query, "{error}");
        assert_eq!(error.sql_state(), Some("395"), "{error}");
        // stream: rows arrive first, then the stream must end with an error.
        let mut stream = source
            .stream(&Statement::new(sql), &QueryOptions::default())
            .await
            .expect("the first rows arrive");
        let mut rows = 0u64;
        let mut failed = None;
        while let Some(row) = stream.next().await {
            match row {
                Ok(_) => rows += 1,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let error =
            failed.unwrap_or_else(|| panic!("the stream ended after {rows} rows without error"));
        assert!(rows > 0 && rows < 1_000_000, "{rows} rows before the error");
        assert_eq!(error.kind(), ErrorKind::Query, "{error}");
    });
}

#[test]
fn connection_errors_are_classified_without_password() {
    block_on(async {
        let Some(settings) = support::settings() else {
            return;
        };
        if support::reachable(&settings).await.is_none() {
            return;
        }
        let secret = "wrong-password-sentinel-1234";
        let wrong = support::build(&settings.http("ch-wrong-pw").with_password(secret)).unwrap();
        let error = wrong.ping().await.expect_err("wrong password");
        assert_eq!(error.kind(), ErrorKind::Auth, "{error}");
        assert_error_has_no_secret(&error, secret, "wrong password");
        assert!(!format!("{wrong:?}").contains(secret));

        let database =
            support::build(&settings.http("ch-no-db").with_database("no_such_db_x")).unwrap();
        let error = database.ping().await.expect_err("unknown database");
        assert_eq!(error.kind(), ErrorKind::Database, "{error}");

        if let Some(wrong_ca) = &settings.wrong_ca {
            let tls = support::build(&settings.https("ch-wrong-ca", wrong_ca)).unwrap();
            let error = tls.ping().await.expect_err("wrong CA");
            assert_eq!(error.kind(), ErrorKind::Tls, "{error}");
            assert_error_has_no_secret(&error, &settings.password, "wrong CA");
        }

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let refused = support::build(&settings.http("ch-closed").with_port(port)).unwrap();
        let error = refused.ping().await.expect_err("closed port");
        assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
        assert_error_has_no_secret(&error, &settings.password, "closed port");

        let source = support::build(&settings.http("ch-syntax")).unwrap();
        let error = source
            .query(&Statement::new("SELEC 1"), &QueryOptions::default())
            .await
            .expect_err("syntax error");
        assert_eq!(error.kind(), ErrorKind::Query, "{error}");
        assert_eq!(error.sql_state(), Some("62"));
    });
}

#[test]
fn read_only_connector_gets_the_servers_refusal() {
    block_on(async {
        let Some(settings) = support::settings() else {
            return;
        };
        if support::reachable(&settings).await.is_none() {
            return;
        }
        let source = support::build(&settings.http("ch-ro").with_read_only(true)).unwrap();
        let table = unique_name("ro");
        let error = source
            .execute(
                &Statement::new(format!("CREATE TABLE {table} (a Int8) ENGINE = Memory")),
                &QueryOptions::default(),
            )
            .await
            .expect_err("read-only");
        assert_eq!(error.kind(), ErrorKind::ReadOnly, "{error}");
        assert_eq!(error.sql_state(), Some("164"));
        assert_eq!(one(source.as_ref(), "SELECT 1").await, vec![Value::U8(1)]);
    });
}

/// Any string, bound as a parameter, comes back as itself: no value leaves its literal.
fn hostile_strings() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just("'".to_owned()),
                Just("\\".to_owned()),
                Just("\0".to_owned()),
                Just("\n".to_owned()),
                Just("\r".to_owned()),
                Just("\"".to_owned()),
                Just("`".to_owned()),
                Just("?".to_owned()),
                Just(":p".to_owned()),
                Just("/*".to_owned()),
                Just("--".to_owned()),
                Just("')".to_owned()),
                Just("\\'".to_owned()),
                Just("é🎉".to_owned()),
                Just("\u{7f}".to_owned()),
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

#[test]
fn hostile_strings_round_trip_through_client_side_binding() {
    block_on(async {
        let Some(settings) = support::settings() else {
            return;
        };
        if support::reachable(&settings).await.is_none() {
            return;
        }
        let source = support::build(&settings.http("ch-hostile")).unwrap();
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 200,
            ..ProptestConfig::default()
        });
        let mut cases = Vec::new();
        let strategy = hostile_strings();
        for _ in 0..200 {
            cases.push(strategy.new_tree(&mut runner).unwrap().current());
        }
        for text in cases {
            let statement = Statement::new("SELECT :a AS a, length(:a) AS n, 'after' AS tail")
                .bind("a", text.clone());
            let result = source
                .query(&statement, &QueryOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let row = &result.rows[0];
            assert_eq!(row.get(0), Some(&Value::Text(text.clone())), "{text:?}");
            assert_eq!(row.get(1), Some(&Value::U64(text.len() as u64)), "{text:?}");
            assert_eq!(row.get(2), Some(&Value::Text("after".into())), "{text:?}");
        }
    });
}
