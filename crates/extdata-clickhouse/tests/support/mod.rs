//! Settings of the test server (`EXTDATA_TEST_CLICKHOUSE_*`, written by
//! `scripts/services.sh`) and a source built from them.
#![allow(dead_code)] // each test file uses a part

use std::sync::Arc;
use std::time::Duration;

use extdata_clickhouse::{ClickHouseSource, SPEC};
use extdata_conformance::require_or_skip;
use extdata_conformance::support::{env, password_connector};
use extdata_core::{ConnectorConfig, DbKind, ExternalSource, SslConfig};

pub(crate) const KIND: &str = "clickhouse";

/// The test server's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) https_port: u16,
    pub(crate) database: String,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) ca: Option<String>,
    pub(crate) wrong_ca: Option<String>,
}

/// The settings, or `None` (skip; a failure when EXTDATA_TEST_REQUIRE names clickhouse).
pub(crate) fn settings() -> Option<Settings> {
    let Some(host) = env("EXTDATA_TEST_CLICKHOUSE_HOST") else {
        return require_or_skip(
            KIND,
            "EXTDATA_TEST_CLICKHOUSE_HOST is not set (run scripts/services.sh)",
        );
    };
    let port = |name: &str, default: u16| env(name).and_then(|p| p.parse().ok()).unwrap_or(default);
    Some(Settings {
        host,
        port: port("EXTDATA_TEST_CLICKHOUSE_PORT", 8123),
        https_port: port("EXTDATA_TEST_CLICKHOUSE_HTTPS_PORT", 8443),
        database: env("EXTDATA_TEST_CLICKHOUSE_DATABASE").unwrap_or_else(|| "default".into()),
        user: env("EXTDATA_TEST_CLICKHOUSE_USER").unwrap_or_else(|| "default".into()),
        password: env("EXTDATA_TEST_CLICKHOUSE_PASSWORD").unwrap_or_default(),
        ca: env("EXTDATA_TEST_CA"),
        wrong_ca: env("EXTDATA_TEST_WRONG_CA"),
    })
}

impl Settings {
    /// A plain-HTTP connector.
    pub(crate) fn http(&self, name: &str) -> ConnectorConfig {
        password_connector(
            name,
            DbKind::ClickHouse,
            (&self.host, self.port),
            (&self.user, &self.password),
            Duration::from_secs(5),
        )
        .with_database(self.database.clone())
    }

    /// An HTTPS connector verifying the server fully against `ca_file` (host `localhost`,
    /// which the test certificate names).
    pub(crate) fn https(&self, name: &str, ca_file: &str) -> ConnectorConfig {
        self.http(name)
            .with_host("localhost")
            .with_port(self.https_port)
            .with_ssl(SslConfig {
                enabled: true,
                ca_file: Some(ca_file.to_owned()),
                ..Default::default()
            })
    }
}

/// Builds a source (no I/O).
pub(crate) fn build(config: &ConnectorConfig) -> extdata_core::Result<Arc<dyn ExternalSource>> {
    // The CA file's folder is granted: secret and PEM files are read only where granted.
    let mut policy = extdata_core::SecretPolicy::deny_all();
    if let Some(dir) = config
        .ssl
        .as_ref()
        .and_then(|ssl| ssl.ca_file.as_deref())
        .and_then(|file| std::path::Path::new(file).parent())
    {
        policy = policy.with_file_root(dir);
    }
    let valid = config.validate_with_policy(Some(&SPEC), &policy)?;
    Ok(Arc::new(ClickHouseSource::build(valid)?))
}

/// Whether the server answers at all; with EXTDATA_TEST_REQUIRE naming clickhouse an
/// unreachable server fails the test.
pub(crate) async fn reachable(settings: &Settings) -> Option<Arc<dyn ExternalSource>> {
    let source = build(&settings.http("ch-probe")).expect("valid config");
    match source.ping().await {
        Ok(_) => Some(source),
        Err(e) => require_or_skip(KIND, format!("the server does not answer: {e}")),
    }
}
