//! The live test servers (`EXTDATA_TEST_*`, written by `scripts/services.sh`) and what
//! the reliability tests need to know about each: how to keep it busy, how to stream
//! from it, and how to ask it whether a query still runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use extdata::{
    ConnectorConfig, DbKind, ExternalSource, QueryOptions, Result, SslConfig, Statement,
};
use extdata_conformance::require_or_skip;
use extdata_conformance::support::{env, int_of};

use crate::proxy::FaultProxy;

/// A backend with a live server here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL 15.
    Postgres,
    /// MariaDB 10.11.
    MySql,
    /// ClickHouse over HTTP (18.16).
    ClickHouse,
    /// ClickHouse 26.x over HTTP (PyPI `chdb-core`; service `clickhouse26`): server-side
    /// parameters, no HTTPS listener.
    ClickHouse26,
    /// Spark Thrift server (HiveServer2, binary transport, SASL PLAIN, auth NONE).
    Hive,
    /// Spark Thrift server over the HTTP transport, plain HTTP, auth NONE (service
    /// `hive`).
    HiveHttp,
    /// Spark Thrift server over the HTTP transport with TLS and LDAP (HTTP Basic,
    /// passwords checked; service `ldap`).
    HiveHttps,
}

impl Backend {
    /// Every backend with a live server.
    pub const LIVE: [Backend; 5] = [
        Backend::Postgres,
        Backend::MySql,
        Backend::ClickHouse,
        Backend::ClickHouse26,
        Backend::Hive,
    ];

    /// [`LIVE`](Backend::LIVE) and Hive's other transports: the HTTP transport without
    /// and with TLS (the cancellation, fault and TLS tests run on them too).
    pub const ALL: [Backend; 7] = [
        Backend::Postgres,
        Backend::MySql,
        Backend::ClickHouse,
        Backend::ClickHouse26,
        Backend::Hive,
        Backend::HiveHttp,
        Backend::HiveHttps,
    ];

    /// Its name in reports (the backend's `EXTDATA_TEST_REQUIRE` name, or for Hive's
    /// HTTP servers `hive-http` and `hive-https`).
    pub fn kind(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
            Backend::ClickHouse => "clickhouse",
            Backend::ClickHouse26 => "clickhouse26",
            Backend::Hive => "hive",
            Backend::HiveHttp => "hive-http",
            Backend::HiveHttps => "hive-https",
        }
    }

    /// The service of `scripts/services.sh` that runs its server, as
    /// `EXTDATA_TEST_REQUIRE` names it.
    pub fn service(self) -> &'static str {
        match self {
            Backend::HiveHttp => "hive",
            Backend::HiveHttps => "ldap",
            other => other.kind(),
        }
    }

    /// Whether it is one of the Spark Thrift servers.
    pub fn is_hive(self) -> bool {
        matches!(self, Backend::Hive | Backend::HiveHttp | Backend::HiveHttps)
    }

    /// The prefix of its `EXTDATA_TEST_<PREFIX>_*` settings (host, login, database).
    fn prefix(self) -> &'static str {
        match self {
            Backend::Postgres => "POSTGRES",
            Backend::MySql => "MYSQL",
            Backend::ClickHouse => "CLICKHOUSE",
            Backend::ClickHouse26 => "CLICKHOUSE26",
            Backend::Hive | Backend::HiveHttp => "HIVE",
            Backend::HiveHttps => "HIVE_LDAP",
        }
    }

    /// The prefix of the settings of its own server (port, HTTP path, log).
    fn server_prefix(self) -> &'static str {
        match self {
            Backend::HiveHttp => "HIVE_HTTP",
            Backend::HiveHttps => "HIVE_LDAP_HTTP",
            other => other.prefix(),
        }
    }

    fn db_kind(self) -> DbKind {
        match self {
            Backend::Postgres => DbKind::Postgres,
            Backend::MySql => DbKind::MySql,
            Backend::ClickHouse | Backend::ClickHouse26 => DbKind::ClickHouse,
            Backend::Hive | Backend::HiveHttp | Backend::HiveHttps => DbKind::Hive,
        }
    }

    /// The Spark server's log (`EXTDATA_TEST_HIVE_LOG`, `…_HIVE_HTTP_LOG`,
    /// `…_HIVE_LDAP_HTTP_LOG`); `None` for the other backends or when it is not set.
    pub fn server_log(self) -> Option<String> {
        if !self.is_hive() {
            return None;
        }
        env(&format!("EXTDATA_TEST_{}_LOG", self.server_prefix()))
    }

    /// The server's settings, or `None` after printing why (a panic when
    /// `EXTDATA_TEST_REQUIRE` names the backend).
    pub fn server(self) -> Option<Server> {
        let var = |name: &str| env(&format!("EXTDATA_TEST_{}_{name}", self.prefix()));
        let own = |name: &str| env(&format!("EXTDATA_TEST_{}_{name}", self.server_prefix()));
        let Some(host) = var("HOST") else {
            return require_or_skip(
                self.service(),
                format!(
                    "EXTDATA_TEST_{}_HOST is not set (run scripts/services.sh, source .services/env)",
                    self.prefix()
                ),
            );
        };
        let Some(port) = own("PORT").and_then(|p| p.parse::<u16>().ok()) else {
            return require_or_skip(
                self.service(),
                format!("EXTDATA_TEST_{}_PORT is not a port", self.server_prefix()),
            );
        };
        let Ok(address) = format!("{host}:{port}").parse::<SocketAddr>() else {
            return require_or_skip(self.service(), format!("`{host}` is not an IP address"));
        };
        if !address.ip().is_loopback() {
            return require_or_skip(
                self.service(),
                format!("{address} is not a loopback address"),
            );
        }
        let mut config = ConnectorConfig::new(format!("rel-{}", self.kind()), self.db_kind())
            .with_host(host)
            .with_port(port)
            .with_connect_timeout(Duration::from_secs(5))
            .with_query_timeout(Duration::from_secs(30));
        if let Some(database) = var("DATABASE") {
            config = config.with_database(database);
        }
        if let Some(user) = var("USER") {
            config = config.with_username(user);
        }
        if let Some(password) = var("PASSWORD") {
            config = config.with_password(password);
        }
        match self {
            Backend::Hive | Backend::HiveHttp => config = config.with_option("auth", "NONE"),
            Backend::HiveHttps => {
                let Some(ca) = env("EXTDATA_TEST_CA") else {
                    return require_or_skip(self.service(), "EXTDATA_TEST_CA is not set");
                };
                config = config.with_option("auth", "LDAP").with_ssl(SslConfig {
                    ca_file: Some(ca),
                    ..SslConfig::default()
                });
            }
            _ => {}
        }
        if matches!(self, Backend::HiveHttp | Backend::HiveHttps) {
            let Some(path) = own("PATH") else {
                return require_or_skip(
                    self.service(),
                    format!("EXTDATA_TEST_{}_PATH is not set", self.server_prefix()),
                );
            };
            config = config
                .with_option("transport", "http")
                .with_option("http_path", path);
        }
        Some(Server {
            backend: self,
            address,
            config,
        })
    }

    /// A query that runs about `secs` seconds unless cancelled, with `marker` in its
    /// text (for [`running`](Backend::running)).
    pub fn sleep_sql(self, secs: u64, marker: &str) -> String {
        match self {
            Backend::Postgres => format!("SELECT pg_sleep({secs}) /* {marker} */"),
            Backend::MySql => format!("SELECT SLEEP({secs}) /* {marker} */"),
            // sleep() is capped at 3 s per block, and 18.16 drops trailing comments.
            Backend::ClickHouse | Backend::ClickHouse26 => format!(
                "SELECT sleep(0.5), '{marker}' FROM numbers({}) SETTINGS max_block_size = 1",
                secs * 2
            ),
            // Spark has no sleep: a count over a range takes roughly 1 s per 1e9 rows
            // per core here.
            Backend::Hive | Backend::HiveHttp | Backend::HiveHttps => format!(
                "SELECT count(*) AS n, '{marker}' AS m FROM range({})",
                secs.saturating_mul(1_000_000_000)
            ),
        }
    }

    /// A query returning the integers `1..=n` (or `0..n`) in one column, produced as
    /// they are read.
    pub fn series_sql(self, n: u64) -> String {
        match self {
            Backend::Postgres => format!("SELECT generate_series(1, {n})::int8 AS n"),
            // MariaDB's Sequence engine: no table, rows made as they are read.
            Backend::MySql => format!("SELECT seq AS n FROM seq_1_to_{n}"),
            Backend::ClickHouse | Backend::ClickHouse26 => {
                format!("SELECT number AS n FROM system.numbers LIMIT {n}")
            }
            Backend::Hive | Backend::HiveHttp | Backend::HiveHttps => {
                format!("SELECT id AS n FROM range({n})")
            }
        }
    }

    /// Rows of a stream that is cut by a fault before it ends. Spark's Thrift server
    /// collects a result in its driver's heap before sending it (no incremental
    /// collect here): 100 million rows would exhaust it, one million does not.
    pub fn long_stream_rows(self) -> u64 {
        if self.is_hive() {
            1_000_000
        } else {
            100_000_000
        }
    }

    /// Whether a query whose text contains `marker` runs on the server, asked through
    /// `observer` (another source: the probe must not queue behind the query).
    ///
    /// Hive has no activity view over SQL; its probe is the Spark server's log (see
    /// [`hive_cancelled_jobs`]) and this returns `Ok(false)`.
    pub async fn running(self, observer: &dyn ExternalSource, marker: &str) -> Result<bool> {
        // The marker is bound (a `LIKE` pattern), so the probe never matches itself.
        let probe = match self {
            Backend::Postgres => Statement::new(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE query LIKE :pattern AND state = 'active' AND pid <> pg_backend_pid()",
            ),
            Backend::MySql => Statement::new(
                "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE :pattern AND ID <> CONNECTION_ID() AND COMMAND <> 'Sleep'",
            ),
            Backend::ClickHouse | Backend::ClickHouse26 => Statement::new(
                "SELECT count() AS n FROM system.processes \
                 WHERE query LIKE :pattern AND query NOT LIKE '%system.processes%'",
            ),
            Backend::Hive | Backend::HiveHttp | Backend::HiveHttps => return Ok(false),
        }
        .bind("pattern", format!("%{marker}%"));
        let rows = observer.query(&probe, &QueryOptions::default()).await?;
        Ok(rows
            .rows
            .first()
            .and_then(|row| row.get(0))
            .and_then(int_of)
            .is_some_and(|n| n > 0))
    }
}

/// Job groups the Spark Thrift server of `backend` has cancelled so far, from its log
/// ([`Backend::server_log`]); `None` when the log is not readable here.
pub fn hive_cancelled_jobs(backend: Backend) -> Option<usize> {
    let log = std::fs::read_to_string(backend.server_log()?).ok()?;
    Some(log.matches("Asked to cancel job group").count())
}

/// One live server: where it listens and a connector for it.
#[derive(Debug, Clone)]
pub struct Server {
    /// Which backend.
    pub backend: Backend,
    /// The server's own address (loopback).
    pub address: SocketAddr,
    config: ConnectorConfig,
}

impl Server {
    /// A connector straight to the server (connect timeout 5 s, query timeout 30 s).
    pub fn config(&self) -> ConnectorConfig {
        self.config.clone()
    }

    /// The same connector pointed at `proxy` instead.
    pub fn through(&self, proxy: &FaultProxy) -> ConnectorConfig {
        self.config().with_host("127.0.0.1").with_port(proxy.port())
    }

    /// A proxy in front of this server.
    pub async fn proxy(&self) -> FaultProxy {
        FaultProxy::start(self.address)
            .await
            .unwrap_or_else(|e| panic!("cannot start a fault proxy: {e}"))
    }
}

/// Builds a source through the facade (validation, backend, instrumentation); panics
/// on a config mistake, which in these tests is a bug of the test.
pub fn source(config: &ConnectorConfig) -> Arc<dyn ExternalSource> {
    extdata::connect_with_policy(config, &test_secret_policy())
        .unwrap_or_else(|e| panic!("invalid test connector: {e}"))
}

/// What test connectors may read: the test TLS material (`EXTDATA_TEST_TLS_DIR`) and
/// the `EXTDATA_TEST_` variables.
pub fn test_secret_policy() -> extdata::SecretPolicy {
    let policy = extdata::SecretPolicy::deny_all().with_env_prefix("EXTDATA_TEST_");
    match std::env::var("EXTDATA_TEST_TLS_DIR") {
        Ok(dir) if !dir.is_empty() => policy.with_file_root(dir),
        _ => policy,
    }
}
