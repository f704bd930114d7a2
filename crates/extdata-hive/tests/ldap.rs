//! `auth=LDAP` against the live Spark Thrift servers with
//! `hive.server2.authentication=LDAP` over TLS (`scripts/services.sh ldap`: a throw-away
//! OpenLDAP server with one user), on both transports: binary (SASL PLAIN, port 10003)
//! and HTTP (HTTP Basic over HTTPS, port 10005). The server checks the password, so a
//! wrong one and an unknown user are refused — as `ErrorKind::Auth` errors that never
//! show the password.

mod common;

use common::{Mode, build, config, on_server, query_rows};
use extdata_conformance::support::{
    assert_error_has_no_secret, assert_no_secret, captured_logs, expect_kind, ok,
};
use extdata_core::{ConnectorConfig, ErrorKind, QueryOptions, Statement, Value};

/// A password no real login uses, easy to find in any text.
const WRONG_PASSWORD: &str = "Wr0ng-LDAP-pw-5150";

/// The servers that check passwords: one per transport.
const MODES: [Mode; 2] = [Mode::Ldap, Mode::LdapHttp];

/// Runs `case` on each server of [`MODES`] that is configured here.
fn on_each_server(case: impl AsyncFn(Mode, ConnectorConfig)) {
    for mode in MODES {
        on_server(mode, async |config| case(mode, config).await);
    }
}

fn password(config: &ConnectorConfig) -> String {
    let valid = config
        .validate_with(Some(&extdata_hive::SPEC))
        .expect("a valid config");
    valid
        .password_text()
        .expect("the LDAP test user has a password")
        .to_owned()
}

#[test]
fn the_right_password_logs_in_and_queries() {
    on_each_server(right_password);
}

async fn right_password(mode: Mode, config: ConnectorConfig) {
    let user = config.username.clone().expect("a user name");
    let source = build(&config).unwrap();
    ok(source.ping().await, "ping");
    let rows = query_rows(
        &source,
        Statement::new("SELECT current_user() AS who, :n + 1 AS n").bind("n", 41),
        "a query with a parameter",
    )
    .await;
    assert_eq!(
        rows.rows[0].values(),
        &[Value::Text(user), Value::I32(42)],
        "{mode:?}: the server saw the LDAP user"
    );
    source.close().await;
}

#[test]
fn a_wrong_password_and_an_unknown_user_are_auth_errors_without_the_password() {
    captured_logs();
    on_each_server(wrong_logins);
    let logs = captured_logs();
    assert_no_secret(&logs, WRONG_PASSWORD, "the logs");
    if let Some(config) = config(Mode::Ldap) {
        assert_no_secret(&logs, &password(&config), "the logs");
    }
}

async fn wrong_logins(mode: Mode, config: ConnectorConfig) {
    let real = password(&config);
    let user = config.username.clone().expect("a user name");
    for (what, user) in [
        ("a wrong password", user.as_str()),
        ("an unknown user", "extdata_nobody"),
    ] {
        let what = format!("{mode:?}: {what}");
        let what = what.as_str();
        let config = config
            .clone()
            .with_username(user)
            .with_password(WRONG_PASSWORD);
        let source = build(&config).unwrap();
        let error = expect_kind(source.ping().await, ErrorKind::Auth, what);
        let message = error.to_string();
        eprintln!("{what}: {message}");
        assert!(
            message.contains("login refused by the server"),
            "{what}: the error says the login was refused: {message}"
        );
        assert!(!error.is_temporary(), "{what}: not temporary: {message}");
        let query = expect_kind(
            source
                .query(&Statement::new("SELECT 1"), &QueryOptions::default())
                .await
                .map(|rows| rows.rows.len()),
            ErrorKind::Auth,
            what,
        );
        for error in [&error, &query] {
            assert_error_has_no_secret(error, WRONG_PASSWORD, what);
            assert_error_has_no_secret(error, &real, what);
        }
        assert_no_secret(&format!("{source:?}"), WRONG_PASSWORD, what);
        assert_no_secret(&format!("{config:?}"), WRONG_PASSWORD, what);
        source.close().await;
    }
}

#[test]
fn tls_is_verified_fully_and_a_plain_client_is_told_to_turn_ssl_on() {
    on_each_server(tls_checks);
}

async fn tls_checks(mode: Mode, config: ConnectorConfig) {
    let real = password(&config);
    let wrong_ca = extdata_conformance::support::env_file("EXTDATA_TEST_WRONG_CA")
        .expect("EXTDATA_TEST_WRONG_CA names the unrelated CA (scripts/services.sh)");
    // The CA that did not sign the server's certificate.
    let mut untrusted = config.clone();
    if let Some(ssl) = untrusted.ssl.as_mut() {
        ssl.ca = Some(wrong_ca);
    }
    // Without TLS, the server's TLS port looks like a server that does not speak
    // SASL (binary) or HTTP: the error says to turn ssl on.
    let mut plain = config.clone();
    plain.ssl = None;
    for (what, config, kind, hint) in [
        ("the wrong CA", untrusted, ErrorKind::Tls, "set ssl.ca"),
        ("no TLS", plain, ErrorKind::Connect, "turn ssl on"),
    ] {
        let source = build(&config).unwrap();
        let error = expect_kind(source.ping().await, kind, what);
        eprintln!("{mode:?}: {what}: {error}");
        assert!(error.to_string().contains(hint), "{error}");
        assert_error_has_no_secret(&error, &real, what);
        source.close().await;
    }

    // Verification by CA only: the chain is checked, the name is not.
    let mut chain_only = config.clone();
    if let Some(ssl) = chain_only.ssl.as_mut() {
        ssl.verify = Some("ca".into());
    }
    let source = build(&chain_only.with_host("127.0.0.1")).unwrap();
    ok(source.ping().await, "verify = ca");
    source.close().await;
}
