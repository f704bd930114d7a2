//! Settings of the SQL Server test server and connector builders shared by the
//! integration tests.
//!
//! No SQL Server can run on the project's machines (see the crate README): these tests
//! run only when `EXTDATA_TEST_MSSQL_HOST` (with `_PORT`, `_USER`, `_PASSWORD`,
//! `_DATABASE`, `_OPTIONS`, `_CA`, like every backend's settings) names a server, e.g. the one of the repository's `docker-compose.yml`. Otherwise
//! every test prints `skipped: … (<test name>: …)` and returns — a skipped test is not
//! evidence that the backend works. `EXTDATA_TEST_REQUIRE=mssql` turns the skip into
//! a failure.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use extdata_conformance::support as shared;
use extdata_core::{ConnectorConfig, DbKind, SslConfig};
use extdata_mssql::{MsSqlSource, SPEC};

/// Where the SQL Server test server is and who may log in.
#[derive(Debug, Clone)]
pub struct TestServer {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: Option<String>,
    /// Extra connector options (`encrypt=…&trust_server_certificate=…`).
    pub options: String,
    /// CA (PEM text) that signed the server's certificate, when TLS is to be verified.
    pub ca_pem: Option<String>,
}

/// The configured server, without checking it answers.
fn configured() -> Result<Option<TestServer>, String> {
    let var = |name: &str| shared::env(&format!("EXTDATA_TEST_MSSQL_{name}"));
    let Some(host) = var("HOST") else {
        return Ok(None);
    };
    let mut server = TestServer {
        host,
        port: var("PORT").and_then(|p| p.parse().ok()).unwrap_or(1433),
        user: var("USER").unwrap_or_else(|| "sa".into()),
        password: var("PASSWORD").unwrap_or_default(),
        database: var("DATABASE"),
        options: var("OPTIONS").unwrap_or_default(),
        ca_pem: None,
    };
    if let Some(path) = var("CA") {
        server.ca_pem = Some(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("EXTDATA_TEST_MSSQL_CA: cannot read {path}: {e}"))?,
        );
    }
    Ok(Some(server))
}

/// The server, or `None` (with the test's name and the reason printed) when it is not
/// configured or not reachable and the run does not require it. Panics when
/// `EXTDATA_TEST_REQUIRE` names mssql.
pub async fn server() -> Option<TestServer> {
    let server = match configured() {
        Ok(Some(server)) => server,
        Ok(None) => {
            return shared::require_or_skip(
                "mssql",
                format!(
                    "{}: EXTDATA_TEST_MSSQL_HOST is not set; see crates/extdata-mssql/README.md, \"Live tests with Docker\"",
                    shared::test_name()
                ),
            );
        }
        Err(e) => panic!("{e}"),
    };
    shared::require_reachable("mssql", &server.host, server.port, Duration::from_secs(5)).await?;
    Some(server)
}

/// `let server = server!();` — the server, or return from the test (skipped).
#[macro_export]
macro_rules! server {
    () => {
        extdata_conformance::some_or_return!(support::server().await)
    };
}

impl TestServer {
    /// SQL authentication over TCP with `EXTDATA_TEST_MSSQL_OPTIONS`.
    pub fn tcp(&self) -> ConnectorConfig {
        let mut config = shared::password_connector(
            "mssql-test",
            DbKind::MsSql,
            (&self.host, self.port),
            (&self.user, &self.password),
            Duration::from_secs(10),
        )
        .with_query_timeout(Duration::from_secs(30));
        if let Some(database) = &self.database {
            config = config.with_database(database.clone());
        }
        if !self.options.is_empty() {
            config = config.with_options(self.options.as_str());
        }
        config
    }

    /// TLS verified against `EXTDATA_TEST_MSSQL_CA`, when it is set.
    pub fn tls(&self) -> Option<ConnectorConfig> {
        let ca = self.ca_pem.clone()?;
        Some(self.tcp().with_ssl(SslConfig {
            ca: Some(ca),
            verify: Some("full".into()),
            ..Default::default()
        }))
    }
}

/// Validates and builds (panics on a config mistake: tests build valid configs).
pub fn source(config: ConnectorConfig) -> MsSqlSource {
    MsSqlSource::build(shared::validated(config, &SPEC)).expect("build")
}

/// The first value of the first row.
#[allow(unused_imports)] // a test file that reads no value leaves it unused
pub use shared::first_value as scalar;
