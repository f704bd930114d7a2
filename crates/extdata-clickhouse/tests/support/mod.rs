//! The two test servers of `scripts/services.sh` — ClickHouse 18.16 (`clickhouse`,
//! `EXTDATA_TEST_CLICKHOUSE_*`) and ClickHouse 26.x (`clickhouse26`,
//! `EXTDATA_TEST_CLICKHOUSE26_*`) — and sources built from their settings. Tests that
//! hold on every server are written once, as `async fn name(server: Server)`, and run
//! on each server by [`on_every_server!`].
#![allow(dead_code)] // each test file uses a part

use std::sync::Arc;
use std::time::Duration;

use extdata_clickhouse::{ClickHouseSource, SPEC};
use extdata_conformance::require_or_skip;
use extdata_conformance::support::{env, password_connector};
use extdata_core::{
    ConnectorConfig, DbKind, ExternalSource, QueryOptions, SslConfig, Statement, Value,
};
use proptest::prelude::*;

/// One of the test servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// ClickHouse 18.16 (Debian's package): HTTP and HTTPS, no server-side parameters,
    /// none of the types newer than 2018.
    V18,
    /// ClickHouse 26.x (PyPI `chdb-core`): HTTP only (no HTTPS listener), server-side
    /// parameters, every type of the backend's type table.
    V26,
}

impl Server {
    /// The name `EXTDATA_TEST_REQUIRE` uses for it (its service's name).
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Server::V18 => "clickhouse",
            Server::V26 => "clickhouse26",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Server::V18 => "EXTDATA_TEST_CLICKHOUSE",
            Server::V26 => "EXTDATA_TEST_CLICKHOUSE26",
        }
    }

    /// Whether the backend binds values as server-side `{name:Type}` parameters there.
    pub(crate) fn server_parameters(self) -> bool {
        self == Server::V26
    }

    /// Whether it has the types newer than 18.16 (`Bool`, `DateTime64`, `Int128`…).
    pub(crate) fn modern(self) -> bool {
        self == Server::V26
    }
}

/// A test server's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) server: Server,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `None` where the server has no HTTPS listener (26.x here).
    pub(crate) https_port: Option<u16>,
    pub(crate) database: String,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) ca: Option<String>,
    pub(crate) wrong_ca: Option<String>,
}

/// The 18.16 server's settings, or `None` (skip; a failure when EXTDATA_TEST_REQUIRE
/// names clickhouse).
pub(crate) fn settings() -> Option<Settings> {
    settings_of(Server::V18)
}

/// `server`'s settings, or `None` (skip; a failure when EXTDATA_TEST_REQUIRE names its
/// service).
pub(crate) fn settings_of(server: Server) -> Option<Settings> {
    let var = |name: &str| env(&format!("{}_{name}", server.prefix()));
    let Some(host) = var("HOST") else {
        return require_or_skip(
            server.kind(),
            format!(
                "{}_HOST is not set (run scripts/services.sh)",
                server.prefix()
            ),
        );
    };
    let port = |name: &str| var(name).and_then(|p| p.parse().ok());
    let (default_port, https_port) = match server {
        Server::V18 => (8123, Some(port("HTTPS_PORT").unwrap_or(8443))),
        Server::V26 => (8126, None),
    };
    Some(Settings {
        server,
        host,
        port: port("PORT").unwrap_or(default_port),
        https_port,
        database: var("DATABASE").unwrap_or_else(|| "default".into()),
        user: var("USER").unwrap_or_else(|| "default".into()),
        password: var("PASSWORD").unwrap_or_default(),
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
    /// which the test certificate names); `None` when the server has no HTTPS port.
    pub(crate) fn https(&self, name: &str, ca_file: &str) -> Option<ConnectorConfig> {
        Some(
            self.http(name)
                .with_host("localhost")
                .with_port(self.https_port?)
                .with_ssl(SslConfig {
                    enabled: true,
                    ca_file: Some(ca_file.to_owned()),
                    ..Default::default()
                }),
        )
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

/// Whether the server answers at all; with EXTDATA_TEST_REQUIRE naming its service an
/// unreachable server fails the test. The version it reports must be the one its
/// service installed (a 26.x server that turned out to be 18.16 would make the 26.x
/// tests prove nothing).
pub(crate) async fn reachable(settings: &Settings) -> Option<Arc<dyn ExternalSource>> {
    let source = build(&settings.http("ch-probe")).expect("valid config");
    let version = match source.ping().await {
        Ok(info) => info.version,
        Err(e) => {
            return require_or_skip(
                settings.server.kind(),
                format!("the server does not answer: {e}"),
            );
        }
    };
    let expected = match settings.server {
        Server::V18 => "18.",
        Server::V26 => "26.",
    };
    assert!(
        version.starts_with(expected),
        "the {} server reports version {version}",
        settings.server.kind()
    );
    Some(source)
}

/// The settings of `server` and a source on it, or `None` (the skip rule).
pub(crate) async fn source_of(server: Server) -> Option<(Settings, Arc<dyn ExternalSource>)> {
    let settings = settings_of(server)?;
    let source = reachable(&settings).await?;
    Some((settings, source))
}

/// Runs `sql`, which must succeed; returns the rows it affected.
pub(crate) async fn exec(source: &dyn ExternalSource, sql: impl Into<String>) -> u64 {
    let sql = sql.into();
    source
        .execute(&Statement::new(sql.clone()), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
}

/// The values of `statement`'s single row, which must succeed.
pub(crate) async fn row(source: &dyn ExternalSource, statement: &Statement) -> Vec<Value> {
    let result = source
        .query(statement, &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", statement.sql()));
    assert_eq!(result.rows.len(), 1, "{}", statement.sql());
    result.rows[0].values().to_vec()
}

/// `SELECT :v AS v, <function>(:v) AS n, 'after' AS tail` with `value` bound: the values
/// of `v` and `n`, once the literal after the placeholders came back whole (a value that
/// escaped its placeholder would shift or swallow it). `what` names the value.
pub(crate) async fn echo_with_tail(
    source: &dyn ExternalSource,
    function: &str,
    value: impl Into<Value>,
    what: &str,
) -> [Value; 2] {
    let sql = format!("SELECT :v AS v, {function}(:v) AS n, 'after' AS tail");
    let result = source
        .query(
            &Statement::new(sql).bind("v", value),
            &QueryOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let row = result
        .rows
        .first()
        .unwrap_or_else(|| panic!("{what}: no row"));
    let [v, n, tail] = row.values() else {
        panic!("{what}: {} columns, expected 3", row.values().len());
    };
    assert_eq!(tail, &Value::Text("after".into()), "{what}");
    [v.clone(), n.clone()]
}

/// What the server gives back for a bound `value`: bytes that are UTF-8 come back as
/// text, inside arrays, tuples and maps too.
pub(crate) fn expected(value: &Value) -> Value {
    match value {
        Value::Bytes(bytes) => match String::from_utf8(bytes.clone()) {
            Ok(text) => Value::Text(text),
            Err(_) => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(expected).collect()),
        Value::Tuple(items) => Value::Tuple(items.iter().map(expected).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (expected(k), expected(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Any text, or up to 15 of `pieces` (what ends or starts strings, comments…) run
/// together.
pub(crate) fn hostile_text(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(proptest::sample::select(pieces), 0..16)
            .prop_map(|parts| parts.concat()),
    ]
}

/// The cases of a live property test: `EXTDATA_PROPTEST_CASES`, `default` when unset.
pub(crate) fn proptest_cases(default: u32) -> u32 {
    std::env::var("EXTDATA_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// A fresh seed per run (printed), or `EXTDATA_PROPTEST_SEED` (hex) to repeat one.
pub(crate) fn proptest_seed() -> [u8; 32] {
    let seed = std::env::var("EXTDATA_PROPTEST_SEED")
        .ok()
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            format!("{nanos:064x}")
        });
    eprintln!("EXTDATA_PROPTEST_SEED={seed}");
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(seed.get(i * 2..i * 2 + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    bytes
}

/// The source of a test server, or (by the require-or-skip rule) the end of the test.
#[allow(unused_macros)] // not every test file needs a source of its own
macro_rules! source_or_skip {
    ($server:expr) => {{
        let Some(found) = support::source_of($server).await else {
            return;
        };
        found
    }};
}

/// Runs each `async fn name(server: Server)` listed as its own test on each server:
/// `on_18_16::name` and `on_26::name` (`#[macro_use] mod support;`).
#[allow(unused_macros)] // conformance.rs has its own macro
macro_rules! on_every_server {
    ($($name:ident),* $(,)?) => {
        mod on_18_16 {
            $(
                #[test]
                fn $name() {
                    extdata_conformance::support::block_on(super::$name(
                        super::support::Server::V18,
                    ));
                }
            )*
        }
        mod on_26 {
            $(
                #[test]
                fn $name() {
                    extdata_conformance::support::block_on(super::$name(
                        super::support::Server::V26,
                    ));
                }
            )*
        }
    };
}
