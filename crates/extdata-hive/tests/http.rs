//! `transport=http` against the live Spark Thrift servers with
//! `hive.server2.transport.mode=http`: authentication NONE over plain HTTP
//! (`scripts/services.sh hive`, port 10004, path `cliservice`) and LDAP over HTTPS
//! (`scripts/services.sh ldap`, port 10005, path `gateway/cliservice`): Thrift over HTTP
//! POSTs with HTTP Basic authentication and the server's cookies sent back. The LDAP
//! server's logins (right and wrong) and TLS checks are in `ldap.rs`, with the binary
//! transport's.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{
    Mode, build, config, cookies_issued, on_server, query_rows, server_log, server_sessions,
};
use extdata_conformance::support::{block_on, expect_kind, ok};
use extdata_core::{ErrorKind, QueryOptions, Scalar, Statement, Value};

/// The live tests of this file run one at a time: the session test counts the
/// sessions the server opened while it ran, which must all be its own.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn queries_run_over_http_and_the_session_keeps_its_settings() {
    let _one = one_at_a_time();
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
    let _one = one_at_a_time();
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
    let _one = one_at_a_time();
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

/// Over HTTP a session outlives its TCP connection: the server closes it on
/// `CloseSession` only (or after `hive.server2.idle.session.timeout`, days by default).
/// Every session the pool lets go — after a statement that may have changed it (`SET`),
/// after a timed-out statement, when the pool closes — must be closed on the server, or
/// each one keeps its Spark session state there. Seen from the server: its
/// operation-log directory, one per open session, is gone.
#[test]
fn sessions_the_pool_lets_go_are_closed_on_the_server() {
    let _one = one_at_a_time();
    block_on(async {
        for mode in [Mode::Http, Mode::LdapHttp] {
            let Some(mut config) = config(mode) else {
                continue;
            };
            let log = server_log(mode).unwrap_or_else(|| {
                panic!("{mode:?}: EXTDATA_TEST_HIVE_*_LOG names the server log")
            });
            let (created_before, _) = server_sessions(&log);
            config.pool.max_size = Some(Scalar::Int(1));
            let source = build(&config).unwrap();
            for n in 2..5 {
                // A `SET` may change the session: it serves no other call.
                ok(
                    source
                        .query(
                            &Statement::new(format!("SET spark.sql.shuffle.partitions={n}")),
                            &QueryOptions::default(),
                        )
                        .await,
                    "a SET",
                );
            }
            // A short job of the same shape first: the server has then planned and
            // compiled it, so the long one is running when its timeout comes. A cancel
            // that reaches Spark while it still plans a statement does not stop the job
            // submitted after it, which would then hold the server's task slots to its
            // end: seconds of work (Spark counts a range at ~1e9 rows a second per core or
            // faster), not minutes.
            query_rows(
                &source,
                Statement::new("SELECT count(*) FROM range(1000)"),
                "a short job",
            )
            .await;
            expect_kind(
                source
                    .query(
                        &Statement::new("SELECT count(*) FROM range(50000000000)"),
                        &QueryOptions::default().with_timeout(Duration::from_secs(1)),
                    )
                    .await,
                ErrorKind::Timeout,
                "a long query with a 1 s timeout",
            );
            query_rows(&source, Statement::new("SELECT 1 AS n"), "a query").await;
            source.close().await;
            let ours = |open: BTreeSet<PathBuf>| -> BTreeSet<PathBuf> {
                open.into_iter()
                    .filter(|dir| !created_before.contains(dir))
                    .collect()
            };
            let (created, _) = server_sessions(&log);
            let opened = ours(created).len();
            assert!(
                opened >= 4,
                "{mode:?}: three SETs and the queries should have opened at least 4 sessions; \
                 the log ({log}) names {opened} new ones"
            );
            // The close is sent from a task: give it a moment.
            let started = Instant::now();
            let left = loop {
                let left = ours(server_sessions(&log).1);
                if left.is_empty() || started.elapsed() > Duration::from_secs(30) {
                    break left;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert!(
                left.is_empty(),
                "{mode:?}: {} of the {opened} sessions opened since the test started are \
                 still open on the server after 30 s: {left:?}",
                left.len()
            );
            eprintln!(
                "{mode:?}: {opened} sessions opened, all closed on the server within {:?}",
                started.elapsed()
            );
        }
    });
}
