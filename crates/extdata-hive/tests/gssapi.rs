//! `auth=GSSAPI` against a live Kerberos-secured Spark Thrift server and a throw-away
//! MIT KDC (`scripts/services.sh kerberos`, settings `EXTDATA_TEST_HIVE_GSSAPI_*`).
//!
//! The Kerberos library reads its configuration and ticket cache from the process
//! environment (`KRB5_CONFIG`, `KRB5CCNAME`), which a test cannot change safely while
//! other threads run. So each case runs this test binary again as a child process with
//! the Kerberos environment it needs: the user's ticket cache, or an empty in-memory
//! cache. In the child (marked by an environment variable) the same test runs its
//! body instead of starting another child.

#![cfg(feature = "gssapi")]

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use extdata_conformance::require_or_skip;
use extdata_conformance::support::{block_on, env, expect_kind, ok};
use extdata_core::{
    ConnectorConfig, DbKind, ErrorKind, ExternalSource, QueryOptions, Statement, Value,
};
use extdata_hive::{HiveSource, SPEC};

/// Set in the child process; a child case refuses to run without it.
const CHILD_VAR: &str = "EXTDATA_TEST_HIVE_GSSAPI_CHILD";
/// The name `EXTDATA_TEST_REQUIRE` uses for this server.
const SERVICE: &str = "kerberos";
/// Sent as the OpenSession user name; the server must use the Kerberos identity instead.
const CLAIMED_USER: &str = "someone_else";

/// The `EXTDATA_TEST_HIVE_GSSAPI_*` settings.
#[derive(Debug)]
struct Settings {
    host: String,
    port: u16,
    principal: String,
    user: String,
    krb5_config: String,
    ccache: String,
}

fn var(name: &str) -> Result<String, String> {
    env(name).ok_or_else(|| format!("{name} is not set"))
}

fn read_settings() -> Result<Settings, String> {
    let port_text = var("EXTDATA_TEST_HIVE_GSSAPI_PORT")?;
    Ok(Settings {
        host: var("EXTDATA_TEST_HIVE_GSSAPI_HOST")?,
        port: port_text
            .parse()
            .map_err(|_| format!("EXTDATA_TEST_HIVE_GSSAPI_PORT `{port_text}` is not a port"))?,
        principal: var("EXTDATA_TEST_HIVE_GSSAPI_PRINCIPAL")?,
        user: var("EXTDATA_TEST_HIVE_GSSAPI_USER")?,
        krb5_config: var("EXTDATA_TEST_HIVE_GSSAPI_KRB5_CONFIG")?,
        ccache: var("EXTDATA_TEST_HIVE_GSSAPI_CCACHE")?,
    })
}

/// The settings when the server is configured and listening; otherwise `None` after
/// the require-or-skip rule (a panic when `EXTDATA_TEST_REQUIRE` names `kerberos`).
fn settings() -> Option<Settings> {
    let settings = match read_settings() {
        Ok(settings) => settings,
        Err(why) => return require_or_skip(SERVICE, why),
    };
    let Ok(address) = format!("{}:{}", settings.host, settings.port).parse::<SocketAddr>() else {
        return require_or_skip(SERVICE, format!("`{}` is not an IP address", settings.host));
    };
    if TcpStream::connect_timeout(&address, Duration::from_secs(3)).is_err() {
        return require_or_skip(SERVICE, format!("nothing listens on {address}"));
    }
    if !std::path::Path::new(&settings.krb5_config).is_file() {
        return require_or_skip(
            SERVICE,
            format!(
                "the Kerberos configuration {} is missing",
                settings.krb5_config
            ),
        );
    }
    Some(settings)
}

/// Runs the case `case` of this binary in a child process with `KRB5_CONFIG`
/// from the settings and `KRB5CCNAME=ccache`, and fails when the child case fails or
/// did not run.
fn run_child(case: &str, settings: &Settings, ccache: &str) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("this test binary: {e}"));
    let output = Command::new(exe)
        .args([case, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, "1")
        .env("KRB5_CONFIG", &settings.krb5_config)
        .env("KRB5CCNAME", ccache)
        // No keytab to fall back on: the cache alone decides.
        .env_remove("KRB5_CLIENT_KTNAME")
        .output()
        .unwrap_or_else(|e| panic!("starting the child test `{case}`: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("--- child `{case}` (KRB5CCNAME={ccache})\n{stdout}{stderr}---");
    assert!(output.status.success(), "the child case `{case}` failed");
    assert!(
        stdout.contains("1 passed"),
        "the child case `{case}` did not run"
    );
}

fn child_settings() -> Settings {
    read_settings().unwrap_or_else(|why| panic!("child without settings: {why}"))
}

fn connector(settings: &Settings) -> ConnectorConfig {
    ConnectorConfig::new("hive-gssapi", DbKind::Hive)
        .with_host(settings.host.clone())
        .with_port(settings.port)
        .with_username(CLAIMED_USER)
        .with_connect_timeout(Duration::from_secs(20))
        .with_query_timeout(Duration::from_secs(120))
        .with_option("auth", "GSSAPI")
        .with_option("principal", settings.principal.clone())
}

fn build(config: &ConnectorConfig) -> HiveSource {
    let valid = config
        .validate_with(Some(&SPEC))
        .unwrap_or_else(|e| panic!("the test connector is invalid: {e}"));
    ok(HiveSource::build(valid), "building the source")
}

#[test]
fn queries_with_a_kerberos_ticket() {
    if env(CHILD_VAR).is_some() {
        return child_queries_with_a_ticket();
    }
    let Some(settings) = settings() else { return };
    run_child(
        "queries_with_a_kerberos_ticket",
        &settings,
        &settings.ccache,
    );
}

#[test]
fn no_ticket_is_an_auth_error() {
    if env(CHILD_VAR).is_some() {
        return child_no_ticket_is_an_auth_error();
    }
    let Some(settings) = settings() else { return };
    // An in-memory cache exists only in the child, and is empty there.
    run_child(
        "no_ticket_is_an_auth_error",
        &settings,
        "MEMORY:extdata-no-ticket",
    );
}

/// The child's half of `queries_with_a_kerberos_ticket`.
fn child_queries_with_a_ticket() {
    let settings = child_settings();
    block_on(async {
        let source = build(&connector(&settings));
        let info = ok(source.ping().await, "ping over GSSAPI");
        assert!(
            info.version.starts_with(|c: char| c.is_ascii_digit()),
            "version {}",
            info.version
        );
        let rows = ok(
            source
                .query(&Statement::new("SELECT 1"), &QueryOptions::default())
                .await,
            "SELECT 1",
        );
        assert_eq!(rows.rows.len(), 1);
        assert_eq!(rows.rows[0].values(), &[Value::I32(1)]);

        // A parameter, several rows, and the identity the server sees: the Kerberos
        // principal's short name, not the user name claimed at OpenSession.
        let rows = ok(
            source
                .query(
                    &Statement::new(
                        "SELECT id, concat(:prefix, CAST(id AS STRING)) AS label, \
                         current_user() AS who FROM range(0, 3, 1, 1) ORDER BY id",
                    )
                    .bind("prefix", "row-'"),
                    &QueryOptions::default(),
                )
                .await,
            "a small query",
        );
        let got: Vec<&[Value]> = rows.rows.iter().map(|row| row.values()).collect();
        let expected: Vec<Vec<Value>> = (0..3)
            .map(|id| {
                vec![
                    Value::I64(id),
                    Value::Text(format!("row-'{id}")),
                    Value::Text(settings.user.clone()),
                ]
            })
            .collect();
        assert_eq!(got, expected.iter().map(Vec::as_slice).collect::<Vec<_>>());
        source.close().await;
    });
}

/// The child's half of `no_ticket_is_an_auth_error`.
fn child_no_ticket_is_an_auth_error() {
    let settings = child_settings();
    block_on(async {
        let source = build(&connector(&settings));
        let error = expect_kind(
            source.ping().await,
            ErrorKind::Auth,
            "ping without a ticket",
        );
        let text = error.to_string();
        eprintln!("no ticket: {text}");
        assert!(text.contains("Kerberos"), "names Kerberos: {text}");
        assert!(
            text.to_ascii_lowercase().contains("credentials"),
            "says that credentials are missing: {text}"
        );
        source.close().await;
    });
}
