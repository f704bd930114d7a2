//! [`ValidConfig`] → a `clickhouse::Client` over our own HTTP(S) transport.
//!
//! The TLS client is built from the connector's PEM (CA, client certificate and key),
//! never from environment variables or the platform's defaults, and verifies the server
//! fully unless `ssl.verify` says otherwise. Nothing here formats the driver's types:
//! `clickhouse::Client`'s `Debug` would print the password.

use std::time::Duration;

use clickhouse::Client;
use extdata_core::{Endpoint, ErrorKind, ExposeSecret, Result, ValidConfig};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// ClickHouse closes idle keep-alive connections after 3 s (`keep_alive_timeout`): drop
/// ours sooner, or a request may be sent on a connection the server is closing.
const MAX_IDLE: Duration = Duration::from_secs(2);

/// The base URL (`http://host:port`), without credentials.
pub(crate) fn base_url(config: &ValidConfig) -> Result<String> {
    let Endpoint::Tcp { host, port } = &config.endpoint else {
        return Err(config.error(
            ErrorKind::Config,
            "ClickHouse is reached over TCP (HTTP or HTTPS) only",
        ));
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    Ok(format!("{scheme}://{host}:{port}"))
}

fn http_connector(config: &ValidConfig) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_nodelay(true);
    connector.enforce_http(config.tls.is_none());
    connector
}

/// Builds the client: credentials, database and TLS; no I/O.
pub(crate) fn build_client(config: &ValidConfig) -> Result<Client> {
    let url = base_url(config)?;
    let idle = config
        .pool
        .idle_timeout
        .map_or(MAX_IDLE, |d| d.min(MAX_IDLE));
    let max_idle = config.pool.max_size as usize;
    let connector = http_connector(config);
    let client = match &config.tls {
        None => Client::with_http_client(
            HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(idle)
                .pool_max_idle_per_host(max_idle)
                .build(connector),
        ),
        Some(tls) => {
            let tls_config = extdata_core::rustls_client_config(tls).map_err(|e| {
                config.error(
                    ErrorKind::Tls,
                    format!("cannot set up TLS: {}", e.message()),
                )
            })?;
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls_config)
                .https_only()
                .enable_http1()
                .wrap_connector(connector);
            Client::with_http_client(
                HyperClient::builder(TokioExecutor::new())
                    .pool_idle_timeout(idle)
                    .pool_max_idle_per_host(max_idle)
                    .build(https),
            )
        }
    };
    let mut client = client
        .with_url(url)
        // 18.x has no RowBinaryWithNamesAndTypes; the backend reads Native anyway.
        .with_validation(false)
        .with_compression(clickhouse::Compression::None);
    if let Some(user) = &config.username {
        client = client.with_user(user.clone());
    }
    if let Some(password) = &config.password {
        client = client.with_password(password.expose_secret().to_owned());
    }
    if let Some(database) = &config.database {
        client = client.with_database(database.clone());
    }
    Ok(client)
}
