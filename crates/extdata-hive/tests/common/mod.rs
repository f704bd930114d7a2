//! Settings of the live HiveServer2 test servers (`EXTDATA_TEST_HIVE_*`, written by
//! `scripts/services.sh hive`) and the require-or-skip rule.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use extdata_conformance::require_or_skip;
use extdata_conformance::support::env;
use extdata_core::{ConnectorConfig, DbKind, ExternalSource, Result};
use extdata_hive::{HiveSource, SPEC};

/// Which of the two test servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `hive.server2.authentication=NONE`: SASL PLAIN.
    Plain,
    /// `hive.server2.authentication=NOSASL`: raw Thrift.
    NoSasl,
}

impl Mode {
    pub fn auth(self) -> &'static str {
        match self {
            Mode::Plain => "NONE",
            Mode::NoSasl => "NOSASL",
        }
    }
}

/// The config of the server in `mode`, or `None` (after printing why, or panicking
/// when `EXTDATA_TEST_REQUIRE` names hive) when it is not configured or unreachable.
pub fn config(mode: Mode) -> Option<ConnectorConfig> {
    let Some(host) = env("EXTDATA_TEST_HIVE_HOST") else {
        return require_or_skip("hive", "EXTDATA_TEST_HIVE_HOST is not set");
    };
    let port_var = match mode {
        Mode::Plain => "EXTDATA_TEST_HIVE_PORT",
        Mode::NoSasl => "EXTDATA_TEST_HIVE_NOSASL_PORT",
    };
    let Some(port) = env(port_var).and_then(|p| p.parse::<u16>().ok()) else {
        return require_or_skip("hive", format!("{port_var} is not set to a port"));
    };
    if std::net::TcpStream::connect_timeout(
        &match format!("{host}:{port}").parse() {
            Ok(address) => address,
            Err(_) => return require_or_skip("hive", format!("`{host}` is not an IP address")),
        },
        Duration::from_secs(3),
    )
    .is_err()
    {
        return require_or_skip("hive", format!("nothing listens on {host}:{port}"));
    }
    let mut config =
        ConnectorConfig::new(format!("hive-{}", mode.auth().to_lowercase()), DbKind::Hive)
            .with_host(host)
            .with_port(port)
            .with_username(env("EXTDATA_TEST_HIVE_USER").unwrap_or_else(|| "extdata".into()))
            .with_password(env("EXTDATA_TEST_HIVE_PASSWORD").unwrap_or_else(|| "extdata".into()))
            .with_connect_timeout(Duration::from_secs(10))
            .with_query_timeout(Duration::from_secs(120))
            .with_option("auth", mode.auth());
    if let Some(database) = env("EXTDATA_TEST_HIVE_DATABASE") {
        config = config.with_database(database);
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
