//! `transport=http` against the live Spark Thrift servers with
//! `hive.server2.transport.mode=http`: authentication NONE over plain HTTP
//! (`scripts/services.sh hive`, port 10004, path `cliservice`) and LDAP over HTTPS
//! (`scripts/services.sh ldap`, port 10005, path `gateway/cliservice`): Thrift over HTTP
//! POSTs with HTTP Basic authentication and the server's cookies sent back. The LDAP
//! server's logins (right and wrong) and TLS checks are in `ldap.rs`, with the binary
//! transport's.

mod common;

use common::{Mode, build, config, cookies_issued, on_server, query_rows, server_log};
use extdata_conformance::support::{block_on, expect_kind, ok};
use extdata_core::{ErrorKind, Scalar, Statement, Value};

#[test]
fn queries_run_over_http_and_the_session_keeps_its_settings() {
    on_server(Mode::Http, async |config| {
        let source = build(&config).unwrap();
        ok(source.ping().await, "ping over HTTP");
        for n in [1, 2, 3] {
            let rows = query_rows(
                &source,
                Statement::new("SELECT :n + 1 AS n, current_user() AS who").bind("n", n),
                "a query over HTTP",
            )
            .await;
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
    on_server(Mode::Http, async |config| {
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

/// HiveServer2 checks the login of a request without a valid `hive.server2.auth` cookie
/// (an LDAP bind) and answers it with a new cookie; a client that sends the cookie back
/// is checked once per connection. Observed from the outside: the server logs every
/// cookie it issues, so one connection that makes many calls must get exactly one.
#[test]
fn the_servers_cookie_is_kept_and_sent_back_so_the_login_is_checked_once() {
    block_on(async {
        for mode in [Mode::Http, Mode::LdapHttp] {
            let Some(mut config) = config(mode) else {
                continue;
            };
            let log = server_log(mode).unwrap_or_else(|| {
                panic!("{mode:?}: EXTDATA_TEST_HIVE_*_LOG names the server log")
            });
            if mode == Mode::Http {
                // NONE takes any user: one of this run's own, so that no other client's
                // cookies are counted.
                config = config.with_username(format!("extdata_cookie_{}", std::process::id()));
            }
            let user = config.username.clone().expect("a user name");
            // One connection: every call below goes over it.
            config.pool.max_size = Some(Scalar::Int(1));
            let before = cookies_issued(&log, &user);
            let source = build(&config).unwrap();
            ok(source.ping().await, "ping");
            let calls = 6;
            for n in 0..calls {
                let rows = query_rows(
                    &source,
                    Statement::new("SELECT :n AS n").bind("n", n),
                    "a query",
                )
                .await;
                assert_eq!(rows.rows[0].values(), &[Value::I32(n)]);
            }
            source.close().await;
            // The log line is written before the reply is sent; give the appender a moment.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let issued = cookies_issued(&log, &user) - before;
            eprintln!(
                "{mode:?}: {issued} cookie(s) issued to {user} for a session, a ping and \
                 {calls} queries (each several HTTP requests) on one connection"
            );
            assert_eq!(
                issued, 1,
                "{mode:?}: the server issues one cookie for the first request and checks it \
                 afterwards; more means the client did not send it back (see {log})"
            );
        }
    });
}
