//! Settings of the live HiveServer2 test servers (`EXTDATA_TEST_HIVE_*`, written by
//! `scripts/services.sh hive ldap kerberos`) and the require-or-skip rule.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use extdata_conformance::require_or_skip;
use extdata_conformance::support::{block_on, env, env_file, ok};
use extdata_core::{
    ConnectorConfig, DbKind, ExternalSource, QueryOptions, Result, ResultSet, SslConfig, Statement,
};
use extdata_hive::{HiveSource, SPEC};

/// Runs `case` with the connector of `mode`'s server, on a fresh runtime; does nothing
/// more when the server is not configured here (by the require-or-skip rule of
/// [`config`]).
pub fn on_server(mode: Mode, case: impl AsyncFnOnce(ConnectorConfig)) {
    block_on(async {
        if let Some(config) = config(mode) {
            case(config).await;
        }
    });
}

/// Which of the test servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `hive.server2.authentication=NONE`: SASL PLAIN, any password.
    Plain,
    /// `hive.server2.authentication=NOSASL`: raw Thrift.
    NoSasl,
    /// `hive.server2.authentication=LDAP` over TLS (`hive.server2.use.SSL`): SASL PLAIN,
    /// the password checked by the test OpenLDAP server (`scripts/services.sh ldap`).
    Ldap,
    /// `hive.server2.transport.mode=http`, authentication NONE: Thrift over HTTP.
    Http,
    /// `hive.server2.transport.mode=http` over TLS with `LDAP`: Thrift over HTTPS, the
    /// HTTP Basic login checked by the test OpenLDAP server (`scripts/services.sh
    /// ldap`), on a path that is not the default (`gateway/cliservice`).
    LdapHttp,
    /// `hive.server2.transport.mode=http` with `KERBEROS`: Thrift over HTTP, SPNEGO
    /// tokens for the server's HTTP principal (`scripts/services.sh kerberos`). Needs
    /// the `gssapi` feature and the test KDC's Kerberos environment in the process
    /// (`KRB5_CONFIG`, `KRB5CCNAME`: see [`config`]).
    Spnego,
}

impl Mode {
    pub fn auth(self) -> &'static str {
        match self {
            Mode::Plain | Mode::Http => "NONE",
            Mode::NoSasl => "NOSASL",
            Mode::Ldap | Mode::LdapHttp => "LDAP",
            Mode::Spnego => "GSSAPI",
        }
    }

    /// Whether the server checks passwords (against the test OpenLDAP server): it
    /// runs with TLS, and with the `ldap` service's settings and login.
    pub fn checks_passwords(self) -> bool {
        matches!(self, Mode::Ldap | Mode::LdapHttp)
    }

    /// Whether the server speaks the HTTP transport.
    pub fn http(self) -> bool {
        matches!(self, Mode::Http | Mode::LdapHttp | Mode::Spnego)
    }

    /// The service of `scripts/services.sh` that runs this server, as
    /// `EXTDATA_TEST_REQUIRE` names it.
    pub fn service(self) -> &'static str {
        match self {
            Mode::Ldap | Mode::LdapHttp => "ldap",
            Mode::Spnego => "kerberos",
            Mode::Plain | Mode::NoSasl | Mode::Http => "hive",
        }
    }

    /// The prefix of this server's settings.
    fn prefix(self) -> &'static str {
        match self {
            Mode::Plain => "EXTDATA_TEST_HIVE",
            Mode::NoSasl => "EXTDATA_TEST_HIVE_NOSASL",
            Mode::Ldap => "EXTDATA_TEST_HIVE_LDAP",
            Mode::Http => "EXTDATA_TEST_HIVE_HTTP",
            Mode::LdapHttp => "EXTDATA_TEST_HIVE_LDAP_HTTP",
            Mode::Spnego => "EXTDATA_TEST_HIVE_SPNEGO",
        }
    }

    /// The prefix of the settings shared by the servers of this mode's service (host,
    /// login).
    fn service_prefix(self) -> &'static str {
        match self {
            Mode::Ldap | Mode::LdapHttp => "EXTDATA_TEST_HIVE_LDAP",
            Mode::Spnego => "EXTDATA_TEST_HIVE_GSSAPI",
            Mode::Plain | Mode::NoSasl | Mode::Http => "EXTDATA_TEST_HIVE",
        }
    }
}

/// The config of the server in `mode`, or `None` (after printing why, or panicking
/// when `EXTDATA_TEST_REQUIRE` names its service) when it is not configured or
/// unreachable. [`Mode::Spnego`] also needs this process to run with the test KDC's
/// Kerberos environment: `KRB5_CONFIG=$EXTDATA_TEST_HIVE_GSSAPI_KRB5_CONFIG` and
/// `KRB5CCNAME=$EXTDATA_TEST_HIVE_GSSAPI_CCACHE` (as `scripts/test.sh` runs it).
pub fn config(mode: Mode) -> Option<ConnectorConfig> {
    let service = mode.service();
    let host_var = format!("{}_HOST", mode.service_prefix());
    let Some(host) = env(&host_var) else {
        return require_or_skip(service, format!("{host_var} is not set"));
    };
    let port_var = format!("{}_PORT", mode.prefix());
    let Some(port) = env(&port_var).and_then(|p| p.parse::<u16>().ok()) else {
        return require_or_skip(service, format!("{port_var} is not set to a port"));
    };
    if std::net::TcpStream::connect_timeout(
        &match format!("{host}:{port}").parse() {
            Ok(address) => address,
            Err(_) => return require_or_skip(service, format!("`{host}` is not an IP address")),
        },
        Duration::from_secs(3),
    )
    .is_err()
    {
        return require_or_skip(service, format!("nothing listens on {host}:{port}"));
    }
    // NONE and NOSASL take any login: the hive service's; LDAP checks the ldap one's.
    let login = mode.service_prefix();
    let mut config = ConnectorConfig::new(
        format!("hive-{}", format!("{mode:?}").to_lowercase()),
        DbKind::Hive,
    )
    .with_host(host)
    .with_port(port)
    .with_username(env(&format!("{login}_USER")).unwrap_or_else(|| "extdata".into()))
    .with_password(env(&format!("{login}_PASSWORD")).unwrap_or_else(|| "extdata".into()))
    .with_connect_timeout(Duration::from_secs(10))
    .with_query_timeout(Duration::from_secs(120))
    .with_option("auth", mode.auth());
    if let Some(database) = env("EXTDATA_TEST_HIVE_DATABASE") {
        config = config.with_database(database);
    }
    if mode.http() {
        let path_var = format!("{}_PATH", mode.prefix());
        let Some(path) = env(&path_var) else {
            return require_or_skip(service, format!("{path_var} is not set"));
        };
        config = config
            .with_option("transport", "http")
            .with_option("http_path", path);
    }
    if mode == Mode::Spnego {
        for (name, setting) in [
            ("KRB5_CONFIG", "EXTDATA_TEST_HIVE_GSSAPI_KRB5_CONFIG"),
            ("KRB5CCNAME", "EXTDATA_TEST_HIVE_GSSAPI_CCACHE"),
        ] {
            let wanted = env(setting);
            if wanted.is_none() || env(name) != wanted {
                return require_or_skip(
                    service,
                    format!("the Kerberos tests need {name}=${setting} in their environment"),
                );
            }
        }
        let Some(principal) = env("EXTDATA_TEST_HIVE_SPNEGO_PRINCIPAL") else {
            return require_or_skip(service, "EXTDATA_TEST_HIVE_SPNEGO_PRINCIPAL is not set");
        };
        // Kerberos takes no password; OpenSession still carries one, which must not
        // show anywhere (a text of its own, so that finding it means it leaked).
        config = config
            .with_option("principal", principal)
            .with_password("unused-by-kerberos-pw-7f3a");
    }
    if mode.checks_passwords() {
        // The LDAP servers are also the TLS ones: verified fully against the test CA.
        let Some(ca) = env_file("EXTDATA_TEST_CA") else {
            return require_or_skip(service, "EXTDATA_TEST_CA is not a readable file");
        };
        config = config.with_ssl(SslConfig {
            ca: Some(ca),
            ..SslConfig::default()
        });
    }
    Some(config)
}

/// Validates and builds (no I/O).
pub fn build(config: &ConnectorConfig) -> Result<Arc<dyn ExternalSource>> {
    let valid = config
        .validate_with(Some(&SPEC))
        .map_err(extdata_core::Error::from)?;
    Ok(Arc::new(HiveSource::build(valid)?))
}

/// Runs `statement` on `source` with the default options; a failure panics, naming
/// `what`.
pub async fn query_rows(
    source: &Arc<dyn ExternalSource>,
    statement: Statement,
    what: &str,
) -> ResultSet {
    ok(
        source.query(&statement, &QueryOptions::default()).await,
        what,
    )
}

/// The server log of the test server in `mode` (`EXTDATA_TEST_HIVE_LOG`,
/// `EXTDATA_TEST_HIVE_NOSASL_LOG`, `EXTDATA_TEST_HIVE_LDAP_LOG`, …).
pub fn server_log(mode: Mode) -> Option<String> {
    env(&format!("{}_LOG", mode.prefix()))
}

/// Whether the Spark Thrift server whose log is `log` runs a statement whose text holds
/// `marker`. Spark has no activity view over SQL; its log says when an operation starts
/// (`Submitting query '<sql>' with <id>`, then `Running query with <id>`) and when it is
/// closed — finished, failed or cancelled, its jobs cancelled with it — (`Close
/// statement with <id>`). Running: started and not closed.
pub fn running_in_log(log: &str, marker: &str) -> bool {
    let mut open: Vec<&str> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Submitting query '").nth(1)
            && rest.contains(marker)
            && let Some(id) = rest.rsplit("' with ").next()
        {
            open.push(id.trim());
        } else if let Some(id) = line.split("Close statement with ").nth(1) {
            open.retain(|started| *started != id.trim());
        }
    }
    let running = |id: &&str| {
        log.lines()
            .any(|line| line.ends_with(&format!("Running query with {id}")))
    };
    open.iter().any(running)
}

/// The running-query probe of the conformance suite for the server in `mode`: reads
/// its log ([`running_in_log`]).
pub async fn running_on_server(mode: Mode, marker: String) -> Result<bool> {
    let Some(path) = server_log(mode) else {
        return Err(extdata_core::Error::new(
            extdata_core::ErrorKind::Config,
            format!("no server log for the hive {mode:?} server (EXTDATA_TEST_HIVE_*LOG)"),
        ));
    };
    // A few MB, read between 50 ms sleeps of the case: blocking is fine in a test.
    let log = std::fs::read_to_string(&path).map_err(|e| {
        extdata_core::Error::new(
            extdata_core::ErrorKind::Config,
            format!("cannot read the hive server log {path}: {e}"),
        )
    })?;
    Ok(running_in_log(&log, &marker))
}

#[test]
fn log_probe_follows_an_operation_from_submit_to_close() {
    let submitted = "26/12/02 08:21:29 INFO SparkExecuteStatementOperation: Submitting query \
                     'SELECT count(*) AS n FROM range(30) /* sleep-7 */' with 17b2-44\n";
    let running =
        "26/12/02 08:21:29 INFO SparkExecuteStatementOperation: Running query with 17b2-44\n";
    let closed =
        "26/12/02 08:21:30 INFO SparkExecuteStatementOperation: Close statement with 17b2-44\n";
    assert!(
        !running_in_log(submitted, "sleep-7"),
        "submitted, not running yet"
    );
    let log = format!("{submitted}{running}");
    assert!(running_in_log(&log, "sleep-7"));
    assert!(!running_in_log(&log, "sleep-8"), "another marker");
    assert!(!running_in_log(&format!("{log}{closed}"), "sleep-7"));
}

/// The lines of the server log at `path` that say the server issued a cookie to `user`
/// (Spark's `ThriftHttpServlet` logs `Cookie added for clientUserName <user>` each time
/// a request comes without a valid cookie and its login is checked).
pub fn cookies_issued(path: &str, user: &str) -> usize {
    let log = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the hive server log {path}: {e}"));
    let line = format!("Cookie added for clientUserName {user}");
    log.lines()
        .filter(|l| l.trim_end().ends_with(&line))
        .count()
}

/// The sessions the server whose log is at `path` has open, as their operation-log
/// directories: HiveServer2 creates one per session when it opens it (and logs
/// `Operation log session directory is created: <dir>`) and deletes it when the session
/// closes. `(created, open)`: every directory the log names, and those still present.
pub fn server_sessions(path: &str) -> (BTreeSet<PathBuf>, BTreeSet<PathBuf>) {
    let log = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the hive server log {path}: {e}"));
    let created: BTreeSet<PathBuf> = log
        .lines()
        .filter_map(|l| {
            l.split("Operation log session directory is created: ")
                .nth(1)
        })
        .map(|dir| PathBuf::from(dir.trim()))
        .collect();
    let open = created.iter().filter(|dir| dir.exists()).cloned().collect();
    (created, open)
}

#[test]
fn server_sessions_reads_created_and_open_sessions_from_the_log() {
    let dir = std::env::temp_dir().join(format!("extdata-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gone = dir.with_extension("gone");
    let log = dir.with_extension("log");
    std::fs::write(
        &log,
        format!(
            "26/12/03 14:06:15 INFO HiveSessionImpl: Operation log session directory is \
             created: {}\n26/12/03 14:06:16 INFO Other: unrelated\n26/12/03 14:06:17 INFO \
             HiveSessionImpl: Operation log session directory is created: {}\n",
            dir.display(),
            gone.display()
        ),
    )
    .unwrap();
    let (created, open) = server_sessions(log.to_str().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert_eq!(created, BTreeSet::from([dir.clone(), gone]));
    assert_eq!(open, BTreeSet::from([dir]));
}
