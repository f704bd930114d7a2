//! `transport=http` against the live Spark Thrift server with
//! `hive.server2.transport.mode=http` (`scripts/services.sh hive`, port 10004, path
//! `cliservice`): Thrift over HTTP POSTs with HTTP Basic authentication and the server's
//! cookies sent back.

mod common;

use common::{Mode, build, config};
use extdata_conformance::support::{block_on, expect_kind, ok};
use extdata_core::{ErrorKind, QueryOptions, Statement, Value};

#[test]
fn queries_run_over_http_and_the_session_keeps_its_settings() {
    block_on(async {
        let Some(config) = config(Mode::Http) else {
            return;
        };
        let source = build(&config).unwrap();
        ok(source.ping().await, "ping over HTTP");
        for n in [1, 2, 3] {
            let rows = ok(
                source
                    .query(
                        &Statement::new("SELECT :n + 1 AS n, current_user() AS who").bind("n", n),
                        &QueryOptions::default(),
                    )
                    .await,
                "a query over HTTP",
            );
            assert_eq!(
                rows.rows[0].values(),
                &[Value::I32(n + 1), Value::Text("extdata".into())],
                "the server saw the Basic login's user"
            );
        }
        source.close().await;
    });
}

#[test]
fn a_wrong_http_path_and_the_binary_transport_are_clear_errors() {
    block_on(async {
        let Some(config) = config(Mode::Http) else {
            return;
        };
        let wrong_path = build(&config.clone().with_option("http_path", "nowhere")).unwrap();
        let error = expect_kind(wrong_path.ping().await, ErrorKind::Connect, "a wrong path");
        eprintln!("wrong path: {error}");
        assert!(error.to_string().contains("http_path"), "{error}");
        wrong_path.close().await;

        let binary = build(
            &config
                .with_option("transport", "binary")
                .with_options("auth=NONE"),
        )
        .unwrap();
        assert!(
            binary.ping().await.is_err(),
            "the binary transport on an HTTP port"
        );
        binary.close().await;
    });
}
