//! Settings of the PostgreSQL test server (from `.services/env`, written by
//! `scripts/services.sh`) and connector builders shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use extdata_conformance::support as shared;
use extdata_core::{
    ConnectorConfig, DbKind, ExternalSource, Protocol, QueryOptions, SecretSource, SslConfig,
    Statement, Value,
};
use extdata_postgres::{PostgresSource, SPEC};

/// Where the PostgreSQL test server is and who may log in.
#[derive(Debug, Clone)]
pub struct TestServer {
    pub host: String,
    pub port: u16,
    pub socket: String,
    pub database: String,
    pub user: String,
    pub password: String,
    pub cert_user: String,
    pub ca_pem: String,
    pub wrong_ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// The server, or `None` (with the reason printed) when it is not configured or not
/// reachable and the run does not require it. Panics when `EXTDATA_TEST_REQUIRE`
/// names postgres.
pub async fn server() -> Option<TestServer> {
    let var = |name: &str| shared::env(&format!("EXTDATA_TEST_{name}"));
    let Some(host) = var("POSTGRES_HOST") else {
        return shared::require_or_skip(
            "postgres",
            "EXTDATA_TEST_POSTGRES_HOST is not set (run scripts/services.sh and source .services/env)",
        );
    };
    let read = |name: &str| {
        var(name)
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    };
    let server = TestServer {
        port: var("POSTGRES_PORT")
            .and_then(|p| p.parse().ok())
            .unwrap_or(5432),
        socket: var("POSTGRES_SOCKET").unwrap_or_else(|| "/var/run/postgresql".into()),
        database: var("POSTGRES_DATABASE").unwrap_or_else(|| "extdata_test".into()),
        user: var("POSTGRES_USER").unwrap_or_else(|| "extdata_pw".into()),
        password: var("POSTGRES_PASSWORD").unwrap_or_default(),
        cert_user: var("POSTGRES_CERT_USER").unwrap_or_else(|| "extdata_cert".into()),
        ca_pem: read("CA"),
        wrong_ca_pem: read("WRONG_CA"),
        client_cert_pem: read("CLIENT_CERT"),
        client_key_pem: read("CLIENT_KEY"),
        host,
    };
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect((server.host.as_str(), server.port)),
    )
    .await;
    match reachable {
        Ok(Ok(_)) => Some(server),
        Ok(Err(e)) => shared::require_or_skip(
            "postgres",
            format!("{}:{} is unreachable: {e}", server.host, server.port),
        ),
        Err(_) => shared::require_or_skip(
            "postgres",
            format!("{}:{} did not answer", server.host, server.port),
        ),
    }
}

/// `let server = server!();` — the server, or return from the test (skipped).
#[macro_export]
macro_rules! server {
    () => {
        match support::server().await {
            Some(server) => server,
            None => return,
        }
    };
}

impl TestServer {
    /// Password user over TCP without TLS.
    pub fn tcp(&self) -> ConnectorConfig {
        ConnectorConfig::new("pg-test", DbKind::Postgres)
            .with_host(self.host.clone())
            .with_port(self.port)
            .with_database(self.database.clone())
            .with_username(self.user.clone())
            .with_password(self.password.clone())
            .with_connect_timeout(Duration::from_secs(5))
            .with_query_timeout(Duration::from_secs(20))
    }

    /// Password user over the unix socket (directory as host).
    pub fn unix(&self) -> ConnectorConfig {
        self.tcp()
            .with_protocol(Protocol::Unix)
            .with_host(self.socket.clone())
    }

    /// Password user over TLS verified fully (chain and host name) against the test CA,
    /// given as PEM text.
    pub fn tls(&self) -> ConnectorConfig {
        self.tcp().with_host("localhost").with_ssl(SslConfig {
            ca: Some(self.ca_pem.clone()),
            verify: Some("full".into()),
            ..Default::default()
        })
    }

    /// The certificate-only user, certificate and key as PEM text.
    pub fn cert_user(&self) -> ConnectorConfig {
        let mut config = self.tls().with_username(self.cert_user.clone());
        config.password = None;
        config.ssl = Some(SslConfig {
            ca: Some(self.ca_pem.clone()),
            cert: Some(self.client_cert_pem.clone()),
            key: Some(SecretSource::literal(self.client_key_pem.clone())),
            verify: Some("full".into()),
            ..Default::default()
        });
        config
    }
}

/// Validates and builds (panics on a config mistake: tests build valid configs).
pub fn source(config: ConnectorConfig) -> PostgresSource {
    let valid = config
        .validate_with(Some(&SPEC))
        .unwrap_or_else(|p| panic!("invalid test config: {p}"));
    PostgresSource::build(valid).expect("build")
}

/// The first value of the first row.
pub async fn scalar(source: &PostgresSource, statement: impl Into<Statement>) -> Value {
    let statement = statement.into();
    let result = source
        .query(&statement, &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", statement.sql()));
    result.rows[0].values()[0].clone()
}

/// How long until no active query whose text starts with `prefix` is left in
/// `pg_stat_activity` (polled every 20 ms); `None` when still there after `limit`.
pub async fn time_until_gone(
    observer: &PostgresSource,
    prefix: &str,
    limit: Duration,
) -> Option<Duration> {
    let started = std::time::Instant::now();
    let statement = Statement::new(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE query LIKE :pattern AND state = 'active' AND pid <> pg_backend_pid()",
    )
    .bind("pattern", format!("{prefix}%"));
    loop {
        let result = observer
            .query(&statement, &QueryOptions::default())
            .await
            .expect("pg_stat_activity");
        if result.rows[0].values()[0].as_i64() == Some(0) {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
