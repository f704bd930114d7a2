//! Settings of the Oracle server the live tests use, from the environment like every
//! backend's: `EXTDATA_TEST_ORACLE_{HOST,PORT,DATABASE,USER,PASSWORD}` (`DATABASE` is
//! the service name, default `FREEPDB1`; see the README).
#![allow(dead_code)] // each test file uses a part

use std::sync::Arc;
use std::time::Duration;

use extdata_conformance::require_or_skip;
use extdata_conformance::support::{env, password_connector};
use extdata_core::{ConnectorConfig, DbKind, ExternalSource};
use extdata_oracle::{OracleSource, SPEC};

/// The server named by the environment: what every connector to it shares (`Debug`
/// shows no password: the config's own leaves it out).
#[derive(Debug, Clone)]
pub(crate) struct TestServer(ConnectorConfig);

/// The configured server, or `None` after printing why (`test` names the test);
/// panics when `EXTDATA_TEST_REQUIRE` names oracle and nothing is configured.
pub(crate) fn server(test: &str) -> Option<TestServer> {
    let var = |name: &str| env(&format!("EXTDATA_TEST_ORACLE_{name}"));
    let (Some(host), Some(user), Some(password)) = (var("HOST"), var("USER"), var("PASSWORD"))
    else {
        return require_or_skip(
            "oracle",
            format!(
                "{test}: EXTDATA_TEST_ORACLE_HOST, _USER and _PASSWORD are not all set; see \
                 crates/extdata-oracle/README.md"
            ),
        );
    };
    let port = var("PORT").and_then(|p| p.parse().ok()).unwrap_or(1521);
    // The service name is the connector's `database`.
    let service = var("DATABASE").unwrap_or_else(|| "FREEPDB1".to_owned());
    let login = (user.as_str(), password.as_str());
    let timeout = Duration::from_secs(10);
    let config = password_connector("oracle-test", DbKind::Oracle, (&host, port), login, timeout)
        .with_database(service)
        .with_query_timeout(Duration::from_secs(30));
    Some(TestServer(config))
}

impl TestServer {
    /// A connector named `name` for this server over TCP.
    pub(crate) fn config(&self, name: &str) -> ConnectorConfig {
        ConnectorConfig {
            name: name.to_owned(),
            ..self.0.clone()
        }
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
