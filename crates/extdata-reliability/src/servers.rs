//! The live test servers (`EXTDATA_TEST_*`, written by `scripts/services.sh`) and what
//! the reliability tests need to know about each: how to keep it busy, how to stream
//! from it, and how to ask it whether a query still runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use extdata::{ConnectorConfig, DbKind, ExternalSource, QueryOptions, Result, Statement};
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
    /// Spark Thrift server (HiveServer2, SASL PLAIN).
    Hive,
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

    /// The name `EXTDATA_TEST_REQUIRE` uses.
    pub fn kind(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
            Backend::ClickHouse => "clickhouse",
            Backend::ClickHouse26 => "clickhouse26",
            Backend::Hive => "hive",
        }
    }

    /// The prefix of its `EXTDATA_TEST_<PREFIX>_*` settings.
    fn prefix(self) -> &'static str {
        match self {
            Backend::Postgres => "POSTGRES",
            Backend::MySql => "MYSQL",
            Backend::ClickHouse => "CLICKHOUSE",
            Backend::ClickHouse26 => "CLICKHOUSE26",
            Backend::Hive => "HIVE",
        }
    }

    fn db_kind(self) -> DbKind {
        match self {
            Backend::Postgres => DbKind::Postgres,
            Backend::MySql => DbKind::MySql,
            Backend::ClickHouse | Backend::ClickHouse26 => DbKind::ClickHouse,
            Backend::Hive => DbKind::Hive,
        }
    }

    /// The server's settings, or `None` after printing why (a panic when
    /// `EXTDATA_TEST_REQUIRE` names the backend).
    pub fn server(self) -> Option<Server> {
        let var = |name: &str| env(&format!("EXTDATA_TEST_{}_{name}", self.prefix()));
        let Some(host) = var("HOST") else {
            return require_or_skip(
                self.kind(),
                format!(
                    "EXTDATA_TEST_{}_HOST is not set (run scripts/services.sh, source .services/env)",
                    self.prefix()
                ),
            );
        };
        let Some(port) = var("PORT").and_then(|p| p.parse::<u16>().ok()) else {
            return require_or_skip(self.kind(), "its PORT setting is not a port");
        };
        let Ok(address) = format!("{host}:{port}").parse::<SocketAddr>() else {
            return require_or_skip(self.kind(), format!("`{host}` is not an IP address"));
        };
        if !address.ip().is_loopback() {
            return require_or_skip(self.kind(), format!("{address} is not a loopback address"));
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
        if self == Backend::Hive {
            config = config.with_option("auth", "NONE");
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
            Backend::Hive => format!(
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
            Backend::Hive => format!("SELECT id AS n FROM range({n})"),
        }
    }

    /// Rows of a stream that is cut by a fault before it ends. Spark's Thrift server
    /// collects a result in its driver's heap before sending it (no incremental
    /// collect here): 100 million rows would exhaust it, one million does not.
    pub fn long_stream_rows(self) -> u64 {
        match self {
            Backend::Hive => 1_000_000,
            _ => 100_000_000,
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
            Backend::Hive => return Ok(false),
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

/// Job groups the Spark Thrift server (auth NONE) has cancelled so far, from its log
/// (`EXTDATA_TEST_HIVE_LOG`); `None` when the log is not readable here.
pub fn hive_cancelled_jobs() -> Option<usize> {
    let log = std::fs::read_to_string(env("EXTDATA_TEST_HIVE_LOG")?).ok()?;
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
