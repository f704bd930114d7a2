//! Settings of the Oracle server the live tests use, from the environment:
//! `EXTDATA_TEST_ORACLE_URL=oracle://user:password@host:port/service` or
//! `EXTDATA_TEST_ORACLE_{HOST,PORT,SERVICE,USER,PASSWORD}` (see the README).
#![allow(dead_code)] // each test file uses a part

use std::sync::Arc;
use std::time::Duration;

use extdata_conformance::require_or_skip;
use extdata_conformance::support::{env, password_connector};
use extdata_core::{ConnectorConfig, DbKind, ExternalSource};
use extdata_oracle::{OracleSource, SPEC};

/// The server named by the environment.
#[derive(Debug, Clone)]
pub(crate) struct TestServer {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) service: String,
    pub(crate) user: String,
    pub(crate) password: String,
}

/// Parses `oracle://user:password@host[:port]/service` (user and password may be
/// percent-encoded).
pub(crate) fn parse_url(url: &str) -> Result<TestServer, String> {
    let rest = url
        .strip_prefix("oracle://")
        .ok_or("must start with oracle://")?;
    let (credentials, address) = rest.rsplit_once('@').ok_or("needs user:password@")?;
    let (user, password) = credentials.split_once(':').ok_or("needs user:password@")?;
    let (host_port, service) = address.split_once('/').ok_or("needs /service")?;
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| "bad port")?),
        None => (host_port, 1521),
    };
    let decode = |s: &str| -> Result<String, String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
                let hex = s.get(i + 1..i + 3).ok_or("bad percent escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent escape")?);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).map_err(|_| "not UTF-8".to_owned())
    };
    Ok(TestServer {
        host: host.to_owned(),
        port,
        service: service.to_owned(),
        user: decode(user)?,
        password: decode(password)?,
    })
}

/// The configured server, or `None` after printing why (`test` names the test);
/// panics when `EXTDATA_TEST_REQUIRE` names oracle and nothing is configured.
pub(crate) fn server(test: &str) -> Option<TestServer> {
    if let Some(url) = env("EXTDATA_TEST_ORACLE_URL") {
        return match parse_url(&url) {
            Ok(server) => Some(server),
            Err(why) => panic!("EXTDATA_TEST_ORACLE_URL is not usable: {why}"),
        };
    }
    match (
        env("EXTDATA_TEST_ORACLE_HOST"),
        env("EXTDATA_TEST_ORACLE_USER"),
        env("EXTDATA_TEST_ORACLE_PASSWORD"),
    ) {
        (Some(host), Some(user), Some(password)) => Some(TestServer {
            host,
            port: env("EXTDATA_TEST_ORACLE_PORT")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1521),
            service: env("EXTDATA_TEST_ORACLE_SERVICE").unwrap_or_else(|| "FREEPDB1".to_owned()),
            user,
            password,
        }),
        _ => require_or_skip(
            "oracle",
            format!(
                "{test}: neither EXTDATA_TEST_ORACLE_URL nor EXTDATA_TEST_ORACLE_HOST/USER/PASSWORD is set"
            ),
        ),
    }
}

impl TestServer {
    /// A connector for this server over TCP.
    pub(crate) fn config(&self, name: &str) -> ConnectorConfig {
        password_connector(
            name,
            DbKind::Oracle,
            (&self.host, self.port),
            (&self.user, &self.password),
            Duration::from_secs(10),
        )
        .with_database(self.service.clone())
        .with_query_timeout(Duration::from_secs(30))
    }
}

/// Validates with the Oracle rules and builds (no I/O).
pub(crate) fn build(config: &ConnectorConfig) -> extdata_core::Result<Arc<dyn ExternalSource>> {
    let valid = config.validate_with(Some(&SPEC))?;
    Ok(Arc::new(OracleSource::build(valid)?))
}

/// Whether an Oracle Client library can be found by the loader here.
pub(crate) fn client_library_installed() -> bool {
    let in_dir = |dir: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libclntsh"))
        })
    };
    let from_env = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
        .split(':')
        .any(|dir| !dir.is_empty() && in_dir(dir));
    let from_home = std::env::var("ORACLE_HOME").is_ok_and(|home| in_dir(&format!("{home}/lib")));
    let from_cache = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("libclntsh"));
    from_env || from_home || from_cache
}

#[test]
fn url_is_parsed_with_encoded_credentials() {
    let server = parse_url("oracle://app%40x:p%2Fw%3A1@db.example.com:1600/FREEPDB1").unwrap();
    assert_eq!(server.user, "app@x");
    assert_eq!(server.password, "p/w:1");
    assert_eq!(
        (server.host.as_str(), server.port),
        ("db.example.com", 1600)
    );
    assert_eq!(server.service, "FREEPDB1");
    let default_port = parse_url("oracle://a:b@h/S").unwrap();
    assert_eq!(default_port.port, 1521);
    assert!(parse_url("postgres://a:b@h/S").is_err());
    assert!(parse_url("oracle://h/S").is_err());
}
