//! `auth=GSSAPI` against the live Kerberos-secured Spark Thrift servers and a throw-away
//! MIT KDC (`scripts/services.sh kerberos`): SASL GSSAPI on the binary transport
//! (settings `EXTDATA_TEST_HIVE_GSSAPI_*`) and SPNEGO over the HTTP transport
//! (`EXTDATA_TEST_HIVE_SPNEGO_*`).
//!
//! The Kerberos library reads its configuration and ticket cache from the process
//! environment (`KRB5_CONFIG`, `KRB5CCNAME`), which a test cannot change safely while
//! other threads run. So each case runs this test binary again as a child process with
//! the Kerberos environment it needs: the user's ticket cache, or an empty in-memory
//! cache. In the child (marked by an environment variable) the same test runs its
//! body instead of starting another child.

#![cfg(feature = "gssapi")]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use extdata_conformance::require_or_skip;
use extdata_conformance::support::{block_on, env, expect_kind, ok};
use extdata_core::{ConnectorConfig, DbKind, ErrorKind, ExternalSource, Scalar, Statement, Value};
use extdata_hive::{HiveSource, SPEC};

use common::{cookies_issued, query_rows};

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

/// The setting `name`, a port number.
fn port_var(name: &str) -> Result<u16, String> {
    let text = var(name)?;
    text.parse()
        .map_err(|_| format!("{name} `{text}` is not a port"))
}

fn read_settings() -> Result<Settings, String> {
    Ok(Settings {
        host: var("EXTDATA_TEST_HIVE_GSSAPI_HOST")?,
        port: port_var("EXTDATA_TEST_HIVE_GSSAPI_PORT")?,
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

/// The `EXTDATA_TEST_HIVE_SPNEGO_*` settings: the Kerberos server with the HTTP
/// transport (the host, user and Kerberos files are the binary server's).
#[derive(Debug)]
struct Spnego {
    port: u16,
    path: String,
    /// `HTTP/localhost@REALM`: the server's hive.server2.authentication.spnego.principal.
    principal: String,
    /// A principal of the realm whose key the server does not have.
    stranger: String,
    log: String,
}

fn read_spnego() -> Result<Spnego, String> {
    Ok(Spnego {
        port: port_var("EXTDATA_TEST_HIVE_SPNEGO_PORT")?,
        path: var("EXTDATA_TEST_HIVE_SPNEGO_PATH")?,
        principal: var("EXTDATA_TEST_HIVE_SPNEGO_PRINCIPAL")?,
        stranger: var("EXTDATA_TEST_HIVE_SPNEGO_STRANGER_PRINCIPAL")?,
        log: var("EXTDATA_TEST_HIVE_SPNEGO_LOG")?,
    })
}

/// The Kerberos settings and the SPNEGO server's when it is configured and listening,
/// by the same require-or-skip rule as [`settings`].
fn spnego_settings() -> Option<(Settings, Spnego)> {
    let settings = settings()?;
    let spnego = match read_spnego() {
        Ok(spnego) => spnego,
        Err(why) => return require_or_skip(SERVICE, why),
    };
    let address = format!("{}:{}", settings.host, spnego.port);
    let listening = address
        .parse::<SocketAddr>()
        .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok());
    if !listening {
        return require_or_skip(SERVICE, format!("nothing listens on {address}"));
    }
    Some((settings, spnego))
}

/// The SPNEGO cases run one at a time: the cookie count reads the server's log, where
/// the other cases' logins would also appear.
static SPNEGO: Mutex<()> = Mutex::new(());

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

fn child_spnego() -> (Settings, Spnego) {
    let spnego = read_spnego().unwrap_or_else(|why| panic!("child without settings: {why}"));
    (child_settings(), spnego)
}

/// A connector to the SPNEGO server that asks for `principal`'s tickets.
fn spnego_connector(settings: &Settings, spnego: &Spnego, principal: &str) -> ConnectorConfig {
    connector(settings)
        .with_port(spnego.port)
        .with_option("transport", "http")
        .with_option("http_path", spnego.path.clone())
        .with_option("principal", principal.to_owned())
}

/// A connector to the binary server without a `principal` option.
fn without_principal(settings: &Settings) -> ConnectorConfig {
    ConnectorConfig::new("hive-gssapi", DbKind::Hive)
        .with_host(settings.host.clone())
        .with_port(settings.port)
        .with_username(CLAIMED_USER)
        .with_connect_timeout(Duration::from_secs(20))
        .with_query_timeout(Duration::from_secs(120))
        .with_option("auth", "GSSAPI")
}

fn connector(settings: &Settings) -> ConnectorConfig {
    without_principal(settings).with_option("principal", settings.principal.clone())
}

fn build(config: &ConnectorConfig) -> Arc<dyn ExternalSource> {
    let valid = config
        .validate_with(Some(&SPEC))
        .unwrap_or_else(|e| panic!("the test connector is invalid: {e}"));
    Arc::new(ok(HiveSource::build(valid), "building the source"))
}

#[test]
fn queries_with_a_kerberos_ticket() {
    kerberos_case(
        "queries_with_a_kerberos_ticket",
        Transport::Binary,
        child_queries_with_a_ticket,
        None,
    );
}

#[test]
fn no_ticket_is_an_auth_error() {
    // An in-memory cache exists only in the child, and is empty there.
    kerberos_case(
        "no_ticket_is_an_auth_error",
        Transport::Binary,
        child_no_ticket_is_an_auth_error,
        Some(NO_TICKET),
    );
}

/// The child's half of `queries_with_a_kerberos_ticket`.
fn child_queries_with_a_ticket() {
    let settings = child_settings();
    block_on(async {
        let source = build(&connector(&settings));
        ping_reports_a_version(&source, "ping over GSSAPI").await;
        let rows = query_rows(&source, Statement::new("SELECT 1"), "SELECT 1").await;
        assert_eq!(rows.rows.len(), 1);
        assert_eq!(rows.rows[0].values(), &[Value::I32(1)]);

        // A parameter, several rows, and the identity the server sees: the Kerberos
        // principal's short name, not the user name claimed at OpenSession.
        let rows = query_rows(
            &source,
            Statement::new(
                "SELECT id, concat(:prefix, CAST(id AS STRING)) AS label, \
                         current_user() AS who FROM range(0, 3, 1, 1) ORDER BY id",
            )
            .bind("prefix", "row-'"),
            "a small query",
        )
        .await;
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
    block_on(no_ticket_is_an_auth_error_with(
        &connector(&settings),
        "ping without a ticket",
    ));
}

/// Without a ticket, a ping with `config` is an auth error that names Kerberos and
/// says that credentials are missing.
async fn no_ticket_is_an_auth_error_with(config: &ConnectorConfig, what: &str) {
    let text = auth_error_text(config, what).await;
    assert!(text.contains("Kerberos"), "names Kerberos: {text}");
    assert!(
        text.to_ascii_lowercase().contains("credentials"),
        "says that credentials are missing: {text}"
    );
}

/// A ping with `config` must fail with an auth error: its text (printed, `what` first).
async fn auth_error_text(config: &ConnectorConfig, what: &str) -> String {
    let source = build(config);
    let error = expect_kind(source.ping().await, ErrorKind::Auth, what);
    let text = error.to_string();
    eprintln!("{what}: {text}");
    source.close().await;
    text
}

/// Pings `source`: the server's version must start with a digit.
async fn ping_reports_a_version(source: &Arc<dyn ExternalSource>, what: &str) {
    let info = ok(source.ping().await, what);
    assert!(
        info.version.starts_with(|c: char| c.is_ascii_digit()),
        "version {}",
        info.version
    );
}

/// The server a case talks to: the binary transport's (SASL GSSAPI) or the HTTP
/// transport's (SPNEGO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Binary,
    Spnego,
}

/// The ticket cache of a child without a ticket: an in-memory cache exists only in
/// the child, and is empty there.
const NO_TICKET: &str = "MEMORY:extdata-no-ticket";

/// Runs the case `case` (the test's own name) against `transport`'s server: in the
/// child process `child`; in the test, the child with the ticket cache `ccache` (the
/// user's ticket when `None`). The SPNEGO cases run one at a time.
fn kerberos_case(case: &str, transport: Transport, child: fn(), ccache: Option<&str>) {
    if env(CHILD_VAR).is_some() {
        return child();
    }
    let (settings, _turn) = match transport {
        Transport::Binary => {
            let Some(settings) = settings() else { return };
            (settings, None)
        }
        Transport::Spnego => {
            let Some((settings, _)) = spnego_settings() else {
                return;
            };
            (
                settings,
                Some(SPNEGO.lock().unwrap_or_else(|e| e.into_inner())),
            )
        }
    };
    run_child(case, &settings, ccache.unwrap_or(&settings.ccache));
}

#[test]
fn spnego_queries_with_a_kerberos_ticket_and_keeps_the_cookie() {
    kerberos_case(
        "spnego_queries_with_a_kerberos_ticket_and_keeps_the_cookie",
        Transport::Spnego,
        child_spnego_queries_and_keeps_the_cookie,
        None,
    );
}

#[test]
fn spnego_finds_the_http_principal_by_default_and_takes_the_service_principal() {
    kerberos_case(
        "spnego_finds_the_http_principal_by_default_and_takes_the_service_principal",
        Transport::Spnego,
        child_spnego_principals,
        None,
    );
}

#[test]
fn spnego_without_a_ticket_is_an_auth_error() {
    kerberos_case(
        "spnego_without_a_ticket_is_an_auth_error",
        Transport::Spnego,
        child_spnego_no_ticket,
        Some(NO_TICKET),
    );
}

#[test]
fn spnego_with_a_wrong_principal_is_an_auth_error() {
    kerberos_case(
        "spnego_with_a_wrong_principal_is_an_auth_error",
        Transport::Spnego,
        child_spnego_wrong_principal,
        None,
    );
}

/// The child's half of `spnego_queries_with_a_kerberos_ticket_and_keeps_the_cookie`:
/// queries as the ticket's user, and one connection's many requests log in once —
/// the first request's SPNEGO token gets the server's cookie, which the later requests
/// send instead of new tokens.
fn child_spnego_queries_and_keeps_the_cookie() {
    let (settings, spnego) = child_spnego();
    block_on(async {
        let mut config = spnego_connector(&settings, &spnego, &spnego.principal);
        // One connection: every call below goes over it.
        config.pool.max_size = Some(Scalar::Int(1));
        let before = cookies_issued(&spnego.log, &settings.user);
        let source = build(&config);
        ping_reports_a_version(&source, "ping over SPNEGO").await;
        let calls = 6;
        for n in 0..calls {
            let rows = query_rows(
                &source,
                Statement::new(
                    "SELECT :n AS n, concat(:prefix, 'x') AS label, current_user() AS who",
                )
                .bind("n", n)
                .bind("prefix", "row-'"),
                "a query over SPNEGO",
            )
            .await;
            // The server sees the Kerberos principal's short name, not the user name
            // claimed at OpenSession.
            assert_eq!(
                rows.rows[0].values(),
                &[
                    Value::I32(n),
                    Value::Text("row-'x".into()),
                    Value::Text(settings.user.clone())
                ]
            );
        }
        source.close().await;
        // The log line is written before the reply is sent; give the appender a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let issued = cookies_issued(&spnego.log, &settings.user) - before;
        eprintln!(
            "{issued} cookie(s) issued to {} for a session, a ping and {calls} queries \
             (each several HTTP requests) on one connection",
            settings.user
        );
        assert_eq!(
            issued, 1,
            "the server issues one cookie for the first request's SPNEGO token and checks \
             the cookie afterwards; more means the client did not send it back (see {})",
            spnego.log
        );
    });
}

/// The child's half of
/// `spnego_finds_the_http_principal_by_default_and_takes_the_service_principal`.
fn child_spnego_principals() {
    let (settings, spnego) = child_spnego();
    block_on(async {
        // No principal: HTTP@<host> (the SPNEGO convention); the KDC knows
        // HTTP/localhost.
        let config = without_principal(&settings)
            .with_host("localhost")
            .with_port(spnego.port)
            .with_option("transport", "http")
            .with_option("http_path", spnego.path.clone());
        // HiveServer2 also accepts tickets for its Kerberos service principal (Hive's
        // JDBC URLs name it): the binary server's.
        let service = connector(&settings)
            .with_port(spnego.port)
            .with_option("transport", "http")
            .with_option("http_path", spnego.path.clone());
        for (what, config) in [("no principal", config), ("the service principal", service)] {
            let source = build(&config);
            let rows = query_rows(
                &source,
                Statement::new("SELECT current_user() AS who"),
                what,
            )
            .await;
            assert_eq!(
                rows.rows[0].values(),
                &[Value::Text(settings.user.clone())],
                "{what}"
            );
            source.close().await;
        }
    });
}

/// The child's half of `spnego_without_a_ticket_is_an_auth_error`.
fn child_spnego_no_ticket() {
    let (settings, spnego) = child_spnego();
    block_on(no_ticket_is_an_auth_error_with(
        &spnego_connector(&settings, &spnego, &spnego.principal),
        "ping over SPNEGO without a ticket",
    ));
}

/// The child's half of `spnego_with_a_wrong_principal_is_an_auth_error`: a principal
/// the KDC does not know fails at the client; one the KDC knows but the server has no
/// key for is refused by the server (HTTP 401).
fn child_spnego_wrong_principal() {
    let (settings, spnego) = child_spnego();
    block_on(async {
        let unknown = format!("HTTP/nowhere@{}", realm(&spnego.principal));
        let text = auth_error_text(
            &spnego_connector(&settings, &spnego, &unknown),
            "a principal the KDC does not know",
        )
        .await;
        assert!(
            text.contains("HTTP@nowhere") && text.contains("not found"),
            "names the principal and says the KDC does not know it: {text}"
        );

        let text = auth_error_text(
            &spnego_connector(&settings, &spnego, &spnego.stranger),
            "a principal the server has no key for",
        )
        .await;
        // HTTP/host@REALM is asked for as the service HTTP@host.
        let target = spnego
            .stranger
            .split('@')
            .next()
            .unwrap_or_default()
            .replace('/', "@");
        assert!(
            text.contains("refused the Kerberos (SPNEGO) ticket")
                && text.contains(&target)
                && text.contains("401")
                && text.contains("spnego.principal"),
            "says the server refused the ticket and what to check: {text}"
        );
    });
}

/// The realm of `principal` (`…@REALM`).
fn realm(principal: &str) -> &str {
    principal.rsplit('@').next().unwrap_or_default()
}
