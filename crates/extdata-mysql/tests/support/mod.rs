//! Settings of the test server (from `.services/env`, written by `scripts/services.sh`)
//! and connector builders shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use extdata_core::{
    ConnectorConfig, DbKind, Protocol, QueryOptions, SecretSource, SslConfig, Statement, Value,
};
use extdata_mysql::{MySqlSource, SPEC};

/// Where the MariaDB/MySQL test server is and who may log in.
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

fn required() -> bool {
    std::env::var("EXTDATA_TEST_REQUIRE")
        .map(|v| {
            v.split([',', ' '])
                .any(|s| s.eq_ignore_ascii_case("mysql") || s.eq_ignore_ascii_case("mariadb"))
        })
        .unwrap_or(false)
}

fn skip_or_fail(why: String) -> Option<TestServer> {
    if required() {
        panic!("EXTDATA_TEST_REQUIRE names mysql, but {why}");
    }
    eprintln!("skipped: {why} (run scripts/services.sh and source .services/env)");
    None
}

/// The server, or `None` (with the reason printed) when it is not configured or not
/// reachable and the run does not require it. Panics when it is required.
pub async fn server() -> Option<TestServer> {
    let var = |name: &str| std::env::var(format!("EXTDATA_TEST_{name}")).ok();
    let Some(host) = var("MYSQL_HOST") else {
        return skip_or_fail("EXTDATA_TEST_MYSQL_HOST is not set".into());
    };
    let port = var("MYSQL_PORT")
        .and_then(|p| p.parse().ok())
        .unwrap_or(3306);
    let read = |name: &str| {
        var(name)
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    };
    let server = TestServer {
        socket: var("MYSQL_SOCKET").unwrap_or_else(|| "/run/mysqld/mysqld.sock".into()),
        database: var("MYSQL_DATABASE").unwrap_or_else(|| "extdata_test".into()),
        user: var("MYSQL_USER").unwrap_or_else(|| "extdata_pw".into()),
        password: var("MYSQL_PASSWORD").unwrap_or_default(),
        cert_user: var("MYSQL_CERT_USER").unwrap_or_else(|| "extdata_cert".into()),
        ca_pem: read("CA"),
        wrong_ca_pem: read("WRONG_CA"),
        client_cert_pem: read("CLIENT_CERT"),
        client_key_pem: read("CLIENT_KEY"),
        host,
        port,
    };
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect((server.host.as_str(), server.port)),
    )
    .await;
    match reachable {
        Ok(Ok(_)) => Some(server),
        Ok(Err(e)) => skip_or_fail(format!(
            "{}:{} is unreachable: {e}",
            server.host, server.port
        )),
        Err(_) => skip_or_fail(format!("{}:{} did not answer", server.host, server.port)),
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
        ConnectorConfig::new("mysql-test", DbKind::MySql)
            .with_host(self.host.clone())
            .with_port(self.port)
            .with_database(self.database.clone())
            .with_username(self.user.clone())
            .with_password(self.password.clone())
            .with_connect_timeout(Duration::from_secs(5))
            .with_query_timeout(Duration::from_secs(20))
    }

    /// Password user over the unix socket.
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
pub fn source(config: ConnectorConfig) -> MySqlSource {
    let valid = config
        .validate_with(Some(&SPEC))
        .unwrap_or_else(|p| panic!("invalid test config: {p}"));
    MySqlSource::build(valid).expect("build")
}

/// The first value of the first row.
pub async fn scalar(source: &MySqlSource, sql: &str) -> Value {
    use extdata_core::ExternalSource;
    let result = source
        .query(&Statement::new(sql), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    result.rows[0].values()[0].clone()
}

/// Seconds a statement whose text starts with `prefix` has been visible in the process
/// list, polled until it is gone; `None` when still there after `limit`.
pub async fn time_until_gone(
    observer: &MySqlSource,
    prefix: &str,
    limit: Duration,
) -> Option<Duration> {
    use extdata_core::ExternalSource;
    let started = std::time::Instant::now();
    let statement = Statement::new(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE INFO LIKE :pattern AND ID <> CONNECTION_ID()",
    )
    .bind("pattern", format!("{prefix}%"));
    loop {
        let result = observer
            .query(&statement, &QueryOptions::default())
            .await
            .expect("process list");
        if result.rows[0].values()[0].as_i64() == Some(0) {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
