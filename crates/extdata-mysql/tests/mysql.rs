//! The MySQL/MariaDB backend against a real server: transports, TLS, errors, timeouts
//! with server-side cancel, read-only sessions, options and types.

mod support;

use std::time::{Duration, Instant};

use extdata_conformance::support::{
    Call, assert_elapsed_below, assert_error_has_no_secret, call_error, expect_kind,
};
use extdata_core::{ErrorKind, ExternalSource, QueryOptions, Statement, Value};

use support::{execute_sql, scalar, source, time_until_gone};

fn session_tls(sql_result: &Value) -> bool {
    matches!(sql_result, Value::Text(cipher) if !cipher.is_empty())
}

const CIPHER: &str = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
                      WHERE VARIABLE_NAME = 'SSL_CIPHER'";

#[tokio::test]
async fn connects_over_tcp_unix_socket_and_verified_tls() {
    let server = server!();
    let tcp = source(server.tcp());
    let info = tcp.ping().await.expect("tcp ping");
    assert!(!info.version.is_empty());
    assert!(
        !session_tls(&scalar(&tcp, CIPHER).await),
        "tcp without ssl must not use TLS"
    );

    let unix = source(server.unix());
    unix.ping().await.expect("unix ping");
    assert_eq!(
        scalar(&unix, "SELECT @@version").await,
        Value::Text(info.version.clone())
    );

    let tls = source(server.tls());
    tls.ping().await.expect("tls ping");
    assert!(
        session_tls(&scalar(&tls, CIPHER).await),
        "ssl section must give a TLS session"
    );
}

#[tokio::test]
async fn certificate_only_user_connects_with_pem_text() {
    let server = server!();
    let source = source(server.cert_user());
    let user = scalar(&source, "SELECT CURRENT_USER()").await;
    let Value::Text(user) = user else {
        panic!("{user:?}")
    };
    assert!(
        user.starts_with(&format!("{}@", server.cert_user)),
        "{user}"
    );
    // Without the client certificate the same user is refused.
    let mut no_cert = server.cert_user();
    no_cert.ssl.as_mut().unwrap().cert = None;
    no_cert.ssl.as_mut().unwrap().key = None;
    let err = support::source(no_cert).ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
}

#[tokio::test]
async fn wrong_ca_is_a_tls_error() {
    let server = server!();
    let mut config = server.tls();
    config.ssl.as_mut().unwrap().ca = Some(server.wrong_ca_pem.clone());
    let started = Instant::now();
    let err = source(config).ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert_elapsed_below(
        started,
        Duration::from_secs(5),
        "a TLS handshake with the wrong CA",
    );
    assert_no_password(&err, &server.password);
}

#[tokio::test]
async fn verify_modes_are_honoured() {
    let server = server!();
    // verify = ca still checks the chain.
    let mut config = server.tls();
    config.ssl.as_mut().unwrap().ca = Some(server.wrong_ca_pem.clone());
    config.ssl.as_mut().unwrap().verify = Some("ca".into());
    let err = source(config.clone()).ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    // verify = none encrypts without checking (tests only).
    config.ssl.as_mut().unwrap().verify = Some("none".into());
    let unverified = source(config);
    unverified.ping().await.expect("verify=none connects");
    assert!(session_tls(&scalar(&unverified, CIPHER).await));
    // verify = ca with the right CA and an address as host.
    let mut config = server.tls().with_host("127.0.0.1");
    config.ssl.as_mut().unwrap().verify = Some("ca".into());
    source(config).ping().await.expect("verify=ca");
}

const SENTINEL: &str = "Sentinel-Pa55word-7f3a";

/// Panics when a text of `err` shows the sentinel password or `password` (checked when
/// it is long enough not to turn up by chance).
fn assert_no_password(err: &extdata_core::Error, password: &str) {
    assert_error_has_no_secret(err, SENTINEL, "the error");
    if password.len() >= 6 {
        assert_error_has_no_secret(err, password, "the error");
    }
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_without_the_password() {
    let server = server!();
    for config in [server.tcp(), server.tls(), server.unix()] {
        let source = source(config.with_password(SENTINEL));
        let err = source.ping().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
        assert_eq!(err.connector(), Some("mysql-test"));
        assert_no_password(&err, SENTINEL);
        assert!(!format!("{source:?}").contains(SENTINEL));
    }
}

#[tokio::test]
async fn closed_port_is_a_connect_error() {
    let server = server!();
    // Bind and drop a listener: a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = source(
        server
            .tcp()
            .with_port(port)
            .with_password(SENTINEL)
            .with_connect_timeout(Duration::from_secs(1)),
    );
    let started = Instant::now();
    let err = source.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.is_temporary());
    assert!(err.to_string().contains("refused"), "{err}");
    assert_elapsed_below(started, Duration::from_secs(4), "a refused connect");
    assert_no_password(&err, SENTINEL);
    // Known down: the next call fails fast, still with the cause.
    let started = Instant::now();
    let what = "the next ping of a known-down server";
    expect_kind(source.ping().await, ErrorKind::Connect, what);
    assert_elapsed_below(started, Duration::from_secs(1), what);
}

#[tokio::test]
async fn server_errors_are_classified_without_the_password() {
    let server = server!();
    let source = source(server.tcp());
    let opts = QueryOptions::default();
    let cases = [
        ("SELEC 1", ErrorKind::Query, "1064"),
        ("SELECT * FROM no_such_table_x", ErrorKind::Query, "1146"),
        (
            "SELECT no_such_column FROM (SELECT 1 AS a) t",
            ErrorKind::Query,
            "1054",
        ),
    ];
    for (sql, kind, code) in cases {
        let err = source.query(&Statement::new(sql), &opts).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{sql}: {err}");
        assert!(err.to_string().contains(code), "{sql}: {err}");
        assert!(err.sql_state().is_some(), "{sql}: {err:?}");
        assert_no_password(&err, &server.password);
    }
    // The connection that saw the error is still good.
    assert_eq!(scalar(&source, "SELECT 7").await.as_i64(), Some(7));

    let missing = support::source(server.tcp().with_database("no_such_db_x"));
    expect_kind(
        missing.ping().await,
        ErrorKind::Database,
        "a missing database",
    );
}

#[tokio::test]
async fn timeout_cancels_query_on_server() {
    let server = server!();
    // The server-side guard is off here, so only KILL QUERY can stop the statement.
    let source = source(server.tcp().with_option("max_statement_time", "off"));
    let observer = support::source(server.tcp());
    source.ping().await.unwrap();
    let opts = QueryOptions::default().with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let err = source
        .query(
            &Statement::new("SELECT SLEEP(30) /* cancel-query */"),
            &opts,
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(elapsed < Duration::from_secs(2), "timeout took {elapsed:?}");
    let gone = time_until_gone(
        &observer,
        "SELECT SLEEP(30) /* cancel-query",
        Duration::from_secs(5),
    )
    .await
    .expect("the statement is still running on the server");
    assert!(gone < Duration::from_secs(1), "took {gone:?} to vanish");
    eprintln!("measured: timeout after {elapsed:?}, gone from the process list {gone:?} later");

    // The same for execute.
    let started = Instant::now();
    let err = source
        .execute(&Statement::new("DO SLEEP(30) /* cancel-exec */"), &opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        time_until_gone(
            &observer,
            "DO SLEEP(30) /* cancel-exec",
            Duration::from_secs(1)
        )
        .await
        .is_some()
    );
    assert_eq!(scalar(&source, "SELECT 1").await.as_i64(), Some(1));
}

#[tokio::test]
async fn fifty_timeouts_in_a_row_leave_the_pool_serving() {
    let server = server!();
    let mut config = server.tcp().with_option("max_statement_time", "off");
    config.pool.max_size = Some(extdata_core::Scalar::Int(3));
    let source = source(config);
    let observer = support::source(server.tcp());
    let opts = QueryOptions::default().with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    for i in 0..50 {
        let err = source
            .query(&Statement::new("SELECT SLEEP(30) /* fifty */"), &opts)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "call {i}: {err}");
    }
    let total = started.elapsed();
    // Served at once, by a pool of 3 that lent each connection 16+ times.
    let quick = QueryOptions::default().with_timeout(Duration::from_secs(2));
    for _ in 0..5 {
        let result = source
            .query(&Statement::new("SELECT 42"), &quick)
            .await
            .unwrap();
        assert_eq!(result.rows[0].values()[0].as_i64(), Some(42));
    }
    assert!(
        time_until_gone(
            &observer,
            "SELECT SLEEP(30) /* fifty",
            Duration::from_secs(2)
        )
        .await
        .is_some(),
        "a timed-out statement is still running"
    );
    eprintln!("measured: 50 timeouts of 300ms took {total:?}; pool serves afterwards");
}

#[tokio::test]
async fn server_side_guard_stops_a_statement_by_itself() {
    let server = server!();
    let source = source(server.tcp().with_option("max_statement_time", "1s"));
    let opts = QueryOptions::default().with_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let result = source
        .query(&Statement::new("SELECT COUNT(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, information_schema.COLUMNS c"), &opts)
        .await;
    let what = "the statement stopped by the server";
    expect_kind(result, ErrorKind::Timeout, what);
    assert_elapsed_below(started, Duration::from_secs(4), what);
}

#[tokio::test]
async fn collation_connection_sets_the_session_collation() {
    let server = server!();
    for config in [server.tcp(), server.tls(), server.unix()] {
        let source = source(config.with_option("collation_connection", "utf8mb4_unicode_ci"));
        assert_eq!(
            scalar(&source, "SELECT @@collation_connection").await,
            Value::Text("utf8mb4_unicode_ci".into())
        );
        // Results stay UTF-8.
        assert_eq!(
            scalar(&source, "SELECT 'Grüße ✓'").await,
            Value::Text("Grüße ✓".into())
        );
    }
    let source = source(
        server
            .tcp()
            .with_option("collation_connection", "latin1_swedish_ci"),
    );
    assert_eq!(
        scalar(&source, "SELECT @@collation_connection").await,
        Value::Text("latin1_swedish_ci".into())
    );
    let source = support::source(
        server
            .tcp()
            .with_option("collation_connection", "no_such_collation"),
    );
    let err = source.ping().await.unwrap_err();
    assert!(err.to_string().contains("collation"), "{err}");
}

#[tokio::test]
async fn read_only_refuses_writes_with_the_servers_error() {
    let server = server!();
    let writer = source(server.tcp());
    execute_sql(&writer, "CREATE TABLE IF NOT EXISTS ro_check (id INT)").await;
    let reader = source(server.tcp().with_read_only(true));
    let write = |sql| call_error(&reader, Call::Execute, sql, ErrorKind::ReadOnly);
    let err = write("INSERT INTO ro_check VALUES (1)").await;
    assert_eq!(err.sql_state(), Some("25006"), "{err:?}");
    assert!(err.to_string().contains("1792"), "{err}");
    // Autocommit DDL is refused too (MariaDB 10.11).
    write("CREATE TABLE ro_check_ddl (id INT)").await;
    // Reads work.
    scalar(&reader, "SELECT COUNT(*) FROM ro_check").await;
}

#[tokio::test]
async fn options_and_protocols_are_validated() {
    use extdata_core::{ConnectorConfig, DbKind, Protocol};
    let config = ConnectorConfig::new("bad", DbKind::MySql)
        .with_host("db")
        .with_protocol(Protocol::Udp)
        .with_option("bogus", "1")
        .with_option("collation_connection", "x'; DROP TABLE t; --")
        .with_option("timezone", "+00:00'");
    let problems = config
        .validate_with(Some(&extdata_mysql::SPEC))
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains("UDP") || problems.contains("udp"),
        "{problems}"
    );
    assert!(problems.contains("unknown option `bogus`"), "{problems}");
    assert!(
        problems.contains("options.collation_connection"),
        "{problems}"
    );
    assert!(problems.contains("options.timezone"), "{problems}");
    assert!(problems.contains("known options: charset"), "{problems}");
}
