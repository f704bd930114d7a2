//! Behaviour against the live HiveServer2 servers (Spark Thrift server, NONE and NOSASL)
//! beyond the conformance suite: both modes, big streams, server-side cancel, mode
//! mismatch, session settings.

mod common;

use std::time::{Duration, Instant};

use common::{Mode, build, config, on_server, query_rows};
use extdata_conformance::support::{Call, block_on, env, ok, timed_out};
use extdata_core::{ErrorKind, QueryOptions, Statement, Value};
use futures::StreamExt;

#[test]
fn both_modes_answer_queries_and_ping() {
    block_on(async {
        for mode in [Mode::Plain, Mode::NoSasl] {
            let Some(config) = config(mode) else { return };
            let source = build(&config).unwrap();
            let info = ok(source.ping().await, "ping");
            assert!(
                info.version
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit()),
                "{mode:?}: version {}",
                info.version
            );
            let rows = query_rows(
                &source,
                Statement::new("SELECT 1 AS one, 'x' AS s, CAST(NULL AS INT) AS n"),
                "query",
            )
            .await;
            assert_eq!(
                rows.rows[0].values(),
                &[Value::I32(1), Value::Text("x".into()), Value::Null]
            );
            source.close().await;
        }
    });
}

#[test]
// Memory is measured where nothing else runs in the process: `extdata-bench` W2
// (BENCHMARKS.md: RSS(10M) − RSS(1M) = 0.4 MiB). Here, other tests share the process,
// so its RSS says nothing about this stream.
fn streaming_a_million_rows_delivers_every_row_in_order() {
    on_server(Mode::Plain, async |config| {
        let source = build(&config).unwrap();
        let started = Instant::now();
        let mut stream = ok(
            source
                .stream(
                    &Statement::new("SELECT id FROM range(0, 1000000, 1, 1)"),
                    &QueryOptions::default(),
                )
                .await,
            "starting the stream",
        );
        let mut expected = 0_i64;
        while let Some(row) = stream.next().await {
            let row = ok(row, "a streamed row");
            assert_eq!(row.get(0), Some(&Value::I64(expected)));
            expected += 1;
        }
        assert_eq!(expected, 1_000_000, "every row arrived");
        eprintln!("streamed 1,000,000 rows in {:?}", started.elapsed());
    });
}

fn cancels_in_log() -> Option<usize> {
    let path = env("EXTDATA_TEST_HIVE_LOG")?;
    let log = std::fs::read_to_string(path).ok()?;
    Some(log.matches("Asked to cancel job group").count())
}

#[test]
fn timeout_cancels_query_on_server_and_session_stays_usable() {
    on_server(Mode::Plain, async |config| {
        // One session: the next query must reuse the one that timed out.
        let config = config.with_pool(extdata_core::PoolConfig {
            max_size: Some(1.into()),
            ..Default::default()
        });
        let source = build(&config).unwrap();
        ok(source.ping().await, "warm-up");
        let cancels_before = cancels_in_log();
        let started = Instant::now();
        // A 200 s query with a 2 s timeout.
        let endless = "SELECT count(*) FROM range(200000000000)";
        let error = timed_out(
            source.as_ref(),
            Call::Query,
            endless,
            Duration::from_secs(2),
        )
        .await;
        let elapsed = started.elapsed();
        eprintln!("timed out after {elapsed:?}: {error}");
        assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
        let next = Instant::now();
        let rows = query_rows(
            &source,
            Statement::new("SELECT 7 AS n"),
            "the next query on the same source",
        )
        .await;
        assert_eq!(rows.rows[0].get(0), Some(&Value::I32(7)));
        eprintln!("next query answered in {:?}", next.elapsed());
        if let (Some(before), Some(after)) = (cancels_before, cancels_in_log()) {
            assert!(
                after > before,
                "the server log shows no cancelled job group after the timeout"
            );
            eprintln!("server log: {} job group(s) cancelled", after - before);
        } else {
            eprintln!(
                "EXTDATA_TEST_HIVE_LOG not readable: server-side cancel not checked in the log"
            );
        }
    });
}

#[test]
fn wrong_mode_is_a_clear_error_within_the_connect_timeout() {
    block_on(async {
        for (server, client_auth, hint) in [
            (Mode::Plain, "NOSASL", "auth=NONE"),
            (Mode::NoSasl, "NONE", "auth=NOSASL"),
        ] {
            let Some(config) = config(server) else { return };
            let connect_timeout = Duration::from_secs(3);
            let config = config
                .with_option("auth", client_auth)
                .with_connect_timeout(connect_timeout);
            let source = build(&config).unwrap();
            let started = Instant::now();
            let error = source.ping().await.expect_err("a mode mismatch must fail");
            let elapsed = started.elapsed();
            eprintln!("{client_auth} client against {server:?} server, {elapsed:?}: {error}");
            assert!(
                matches!(error.kind(), ErrorKind::Connect | ErrorKind::Auth),
                "{error}"
            );
            assert!(
                error.to_string().contains(hint),
                "names the other mode: {error}"
            );
            assert!(
                elapsed < connect_timeout + Duration::from_millis(500),
                "took {elapsed:?}"
            );
        }
    });
}

#[test]
fn session_settings_and_database_are_applied() {
    on_server(Mode::NoSasl, async |config| {
        let source = build(
            &config
                .clone()
                .with_option("spark.sql.session.timeZone", "Asia/Tokyo"),
        )
        .unwrap();
        let rows = query_rows(
            &source,
            Statement::new("SELECT current_timezone() AS tz, current_database() AS db"),
            "session settings",
        )
        .await;
        assert_eq!(rows.rows[0].get(0), Some(&Value::Text("Asia/Tokyo".into())));
        let missing = build(&config.with_database("extdata_no_such_db")).unwrap();
        let error = missing.ping().await.expect_err("a missing database");
        assert_eq!(error.kind(), ErrorKind::Database, "{error}");
    });
}

#[test]
fn hostile_strings_come_back_verbatim_from_the_server() {
    on_server(Mode::Plain, async |config| {
        let source = build(&config).unwrap();
        for hostile in [
            "'; SELECT 1; --",
            "\\' OR 1=1 --",
            "trailing backslash \\",
            "${env:HOME} ${hiveconf:hive.server2.thrift.port} ${system:user.name}",
            "line\nfeed\r\nand\ttab",
            "nul \0 inside",
            "unicode ✓ 日本語 🦀 \u{2028}",
            "\"double\" `back`",
        ] {
            let rows = query_rows(
                &source,
                Statement::new("SELECT :v AS v, length(:v) AS n").bind("v", hostile),
                "hostile literal",
            )
            .await;
            assert_eq!(
                rows.rows[0].get(0),
                Some(&Value::Text(hostile.into())),
                "{hostile:?}"
            );
            assert_eq!(
                rows.rows[0].get(1),
                Some(&Value::I32(hostile.chars().count() as i32)),
                "{hostile:?}"
            );
        }
    });
}

#[test]
fn complex_types_arrive_as_json() {
    on_server(Mode::Plain, async |config| {
        let source = build(&config).unwrap();
        let rows = query_rows(
            &source,
            Statement::new(
                "SELECT array(1, 2) AS a, map('k', 1) AS m, \
                         named_struct('x', 1, 'y', 'z') AS s, \
                         CAST(NULL AS ARRAY<INT>) AS n",
            ),
            "complex types",
        )
        .await;
        let values = rows.rows[0].values();
        assert_eq!(values[0], Value::Json(serde_json::json!([1, 2])));
        assert_eq!(values[1], Value::Json(serde_json::json!({"k": 1})));
        assert_eq!(
            values[2],
            Value::Json(serde_json::json!({"x": 1, "y": "z"}))
        );
        assert_eq!(values[3], Value::Null);
    });
}
