//! A sentinel password and a sentinel private key through every failure path of every
//! live backend — wrong password, unreachable host, silent server (connect timeout),
//! TLS failure, query timeout, bad configuration — and through `extdata check` and
//! `extdata -vv ping`: the sentinels appear in no `Display`, `Debug`, error chain or log
//! line (all tracing events at TRACE level, the drivers' included).
//!
//! Builds on the conformance suite's helpers (`SENTINEL_PASSWORD`, `error_texts`,
//! `assert_no_secret`) and on the facade's single-path test in
//! `crates/extdata/tests/registry.rs`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use extdata::{
    ConnectorConfig, Error, ExternalSource, QueryOptions, Registry, SecretSource, SslConfig,
    Statement,
};
use extdata_conformance::support::{
    SENTINEL_PASSWORD, assert_no_secret, block_on, captured_logs, env, error_texts,
    mistaken_connectors,
};
use extdata_reliability::{Backend, Fault, source};
use support::{exit_and_output, extdata_binary};

/// A private key nobody has: PEM armour around a searchable body.
const SENTINEL_KEY_BODY: &str = "ZXh0ZGF0YS1zZW50aW5lbC1rZXktOWYyYg";

fn sentinel_key() -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{SENTINEL_KEY_BODY}\n-----END PRIVATE KEY-----\n")
}

/// The secrets of this process: the sentinels, and the real test passwords.
fn secrets() -> Vec<String> {
    let mut secrets = vec![SENTINEL_PASSWORD.to_owned(), SENTINEL_KEY_BODY.to_owned()];
    for backend in [
        "POSTGRES",
        "MYSQL",
        "CLICKHOUSE",
        "CLICKHOUSE26",
        "HIVE_LDAP",
    ] {
        if let Some(password) = env(&format!("EXTDATA_TEST_{backend}_PASSWORD")) {
            secrets.push(password);
        }
    }
    secrets
}

fn assert_clean(text: &str, what: &str) {
    for secret in secrets() {
        assert_no_secret(text, &secret, what);
    }
}

fn assert_error_clean(error: &Error, what: &str) {
    for (i, text) in error_texts(error).iter().enumerate() {
        assert_clean(text, &format!("{what}, error text #{i}"));
    }
}

/// Runs `call` on a source of `config`; its error (if any) and the source's `Debug`
/// must be clean. Returns the error for further checks.
async fn failing_path(config: &ConnectorConfig, what: &str) -> Option<Error> {
    assert_clean(&format!("{config:?}"), &format!("{what}: config Debug"));
    let source =
        match extdata::connect_with_policy(config, &extdata_reliability::test_secret_policy()) {
            Ok(source) => source,
            Err(error) => {
                assert_error_clean(&error, &format!("{what}: building"));
                return Some(error);
            }
        };
    assert_clean(&format!("{source:?}"), &format!("{what}: source Debug"));
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        source.query(&Statement::new("SELECT 1"), &QueryOptions::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: the call hung"));
    let error = outcome.err();
    if let Some(error) = &error {
        assert_error_clean(error, what);
    }
    source.close().await;
    error
}

/// `config` pointed at the Spark server that checks passwords with LDAP, over TLS
/// (`scripts/services.sh ldap`), with its user; `None` (or a panic when
/// `EXTDATA_TEST_REQUIRE` names ldap) when it is not set up.
fn hive_ldap(config: &ConnectorConfig) -> Option<ConnectorConfig> {
    let Some(port) = env("EXTDATA_TEST_HIVE_LDAP_PORT").and_then(|p| p.parse::<u16>().ok()) else {
        return extdata_conformance::require_or_skip(
            "ldap",
            "EXTDATA_TEST_HIVE_LDAP_PORT is not set",
        );
    };
    Some(
        config
            .clone()
            .with_port(port)
            .with_username(env("EXTDATA_TEST_HIVE_LDAP_USER").unwrap_or_default())
            .with_option("auth", "LDAP")
            .with_ssl(SslConfig {
                ca_file: env("EXTDATA_TEST_CA"),
                ..SslConfig::default()
            }),
    )
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    port
}

async fn every_failure_path(backend: Backend) {
    captured_logs();
    let Some(server) = backend.server() else {
        return;
    };
    let with_sentinel = server
        .config()
        .with_password(SENTINEL_PASSWORD)
        .with_connect_timeout(Duration::from_secs(2));

    // Wrong password (Hive's NONE mode accepts any password: the call may succeed).
    let error = failing_path(&with_sentinel, "wrong password").await;
    if backend != Backend::Hive {
        assert!(error.is_some(), "a wrong password was accepted");
    } else if let Some(ldap) = hive_ldap(&with_sentinel) {
        // The Spark server with hive.server2.authentication=LDAP checks it.
        let error = failing_path(&ldap, "wrong LDAP password").await;
        assert!(
            error.is_some_and(|e| e.kind() == extdata::ErrorKind::Auth),
            "a wrong LDAP password was not refused as an Auth error"
        );
    }

    // Unreachable host.
    let refused = with_sentinel.clone().with_port(closed_port());
    assert!(failing_path(&refused, "closed port").await.is_some());

    // A server that never answers: the connect timeout fires.
    let proxy = server.proxy().await;
    proxy.set(Fault::Blackhole);
    let silent = server
        .through(&proxy)
        .with_password(SENTINEL_PASSWORD)
        .with_connect_timeout(Duration::from_secs(1));
    assert!(failing_path(&silent, "silent server").await.is_some());
    drop(proxy);

    // TLS: the server verified against the wrong CA, and a client key that is the
    // sentinel (a bad key is a configuration problem, reported without the key).
    if let Some(wrong_ca) = env("EXTDATA_TEST_WRONG_CA") {
        let mut tls = with_sentinel
            .clone()
            .with_host("localhost")
            .with_ssl(SslConfig {
                ca_file: Some(wrong_ca),
                ..SslConfig::default()
            });
        if backend == Backend::ClickHouse
            && let Some(port) =
                env("EXTDATA_TEST_CLICKHOUSE_HTTPS_PORT").and_then(|p| p.parse().ok())
        {
            tls = tls.with_port(port);
        }
        assert!(failing_path(&tls, "TLS with the wrong CA").await.is_some());
    }
    let bad_key = with_sentinel.clone().with_ssl(SslConfig {
        cert: Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into()),
        key: Some(SecretSource::literal(sentinel_key())),
        ..SslConfig::default()
    });
    assert!(
        failing_path(&bad_key, "sentinel client key")
            .await
            .is_some()
    );

    // A query timeout, with the real password: it must not show up either.
    let source: Arc<dyn ExternalSource> = source(&server.config());
    let error = source
        .query(
            &Statement::new(backend.sleep_sql(10, "secrets")),
            &QueryOptions::default().with_timeout(Duration::from_millis(500)),
        )
        .await
        .expect_err("a 10 s query with a 0.5 s timeout");
    assert_error_clean(&error, "query timeout");

    assert_clean(&captured_logs(), "the logs");
    assert!(
        captured_logs().contains("extdata.call"),
        "the calls were not logged, so the log check proves nothing"
    );
}

support::tests! {
    postgres_failure_paths_keep_secrets => block_on(every_failure_path(Backend::Postgres));
    mariadb_failure_paths_keep_secrets => block_on(every_failure_path(Backend::MySql));
    clickhouse_failure_paths_keep_secrets => block_on(every_failure_path(Backend::ClickHouse));
    clickhouse26_failure_paths_keep_secrets => block_on(every_failure_path(Backend::ClickHouse26));
    hive_failure_paths_keep_secrets => block_on(every_failure_path(Backend::Hive));
}

/// The [`mistaken_connectors`], `crm` with the sentinel as its password, in its options
/// and its client key, and `dw` with a literal sentinel password and an empty pool.
fn bad_file() -> String {
    let crm = format!(
        r#"password = "{SENTINEL_PASSWORD}"
options = "sslmode=require&password={SENTINEL_PASSWORD}"
ssl = {{ cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", key = """{key}""" }}"#,
        key = sentinel_key()
    );
    format!(
        r#"{}
[[connectors]]
name = "dw"
type = "mysql"
host = "127.0.0.1"
password = {{ literal = "{SENTINEL_PASSWORD}" }}
pool = {{ max_size = 0 }}
"#,
        mistaken_connectors(&crm)
    )
}

#[test]
fn bad_configuration_keeps_secrets() {
    captured_logs();
    let problems = Registry::from_toml_str(&bad_file()).expect_err("mistakes");
    assert!(problems.iter().count() >= 3, "{problems}");
    assert_clean(&problems.to_string(), "problems Display");
    assert_clean(&format!("{problems:?}"), "problems Debug");
    assert_error_clean(&Error::from(problems), "problems as an error");
}

#[test]
fn check_and_verbose_ping_output_keep_secrets() {
    let Some(binary) = extdata_binary() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary folder");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, bad_file()).expect("write");
    let run = |args: &[&str]| {
        exit_and_output(
            std::process::Command::new(&binary)
                .env_remove("EXTDATA_CONFIG")
                .env("EXTDATA_LOG", "trace")
                .args(args),
        )
    };
    let bad_path = bad.to_string_lossy().into_owned();
    let (code, text) = run(&["--config", &bad_path, "check"]);
    assert_eq!(code, Some(2), "check of a bad file: {text}");
    assert!(text.contains("port"), "check names the problems: {text}");
    assert_clean(&text, "`extdata check` output");

    let Some(server) = Backend::Postgres.server() else {
        return;
    };
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "[[connectors]]\nname = \"pg\"\ntype = \"postgresql\"\nhost = \"{}\"\nport = {}\n\
             database = \"extdata_test\"\nusername = \"extdata_pw\"\npassword = \"{SENTINEL_PASSWORD}\"\n\
             connect_timeout = \"3s\"\n",
            server.address.ip(),
            server.address.port()
        ),
    )
    .expect("write");
    let good_path = good.to_string_lossy().into_owned();
    let (code, text) = run(&["--config", &good_path, "check"]);
    assert_eq!(code, Some(0), "check of a valid file: {text}");
    assert_clean(&text, "`extdata check` of a valid file");
    let (code, text) = run(&["--config", &good_path, "-vv", "ping", "pg"]);
    assert_eq!(code, Some(1), "ping with a wrong password: {text}");
    assert!(
        text.contains("TRACE") || text.contains("DEBUG"),
        "no log lines: {text}"
    );
    assert_clean(&text, "`extdata -vv ping` output with logs");
}
