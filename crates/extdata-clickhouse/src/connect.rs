//! [`ValidConfig`] → a `clickhouse::Client` over our own HTTP(S) transport.
//!
//! The TLS client is built from the connector's PEM (CA, client certificate and key),
//! never from environment variables or the platform's defaults, and verifies the server
//! fully unless `ssl.verify` says otherwise. Nothing here formats the driver's types:
//! `clickhouse::Client`'s `Debug` would print the password.

use std::time::Duration;

use clickhouse::Client;
use extdata_core::{
    Endpoint, ErrorKind, ExposeSecret, OptionCheck, OptionSpec, Result, ValidConfig,
};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Options given as `setting.<name>` are passed to the server as the ClickHouse setting
/// `<name>` on every query.
pub const SETTING_PREFIX: &str = "setting.";

/// ClickHouse settings that may be given by their own name in `options`, passed on every
/// query.
pub(crate) const SETTING_OPTIONS: &[&str] = &[
    "max_memory_usage",
    "max_threads",
    "max_block_size",
    "max_result_bytes",
    "max_rows_to_read",
    "max_bytes_to_read",
    "max_execution_time",
    "join_use_nulls",
    "join_algorithm",
    "session_timezone",
];

pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "wait_end_of_query",
        OptionCheck::Bool,
        "buffer the whole result on the server before sending it, for `stream` too (default \
         false for `stream`, always on for `query`, `execute` and `describe`); makes an error \
         that happens late in a long result arrive with its message instead of as a broken stream",
    ),
    OptionSpec::new(
        "server_parameters",
        OptionCheck::OneOf(&["auto", "never"]),
        "`auto` (default): bind values as server-side `{name:Type}` parameters on servers that \
         have them (24.1 and later); `never`: always render escaped literals",
    ),
    OptionSpec::new(
        "max_memory_usage",
        OptionCheck::UInt,
        "ClickHouse setting: memory limit of one query, in bytes",
    ),
    OptionSpec::new(
        "max_threads",
        OptionCheck::UInt,
        "ClickHouse setting: threads one query may use",
    ),
    OptionSpec::new(
        "max_block_size",
        OptionCheck::UInt,
        "ClickHouse setting: rows per block (also the granularity of streaming)",
    ),
    OptionSpec::new(
        "max_result_bytes",
        OptionCheck::UInt,
        "ClickHouse setting: bytes a result may have",
    ),
    OptionSpec::new(
        "max_rows_to_read",
        OptionCheck::UInt,
        "ClickHouse setting: rows a query may read from tables",
    ),
    OptionSpec::new(
        "max_bytes_to_read",
        OptionCheck::UInt,
        "ClickHouse setting: bytes a query may read from tables",
    ),
    OptionSpec::new(
        "max_execution_time",
        OptionCheck::UInt,
        "ClickHouse setting, seconds: server-side limit for `stream` (for the other calls the \
         query timeout sets it)",
    ),
    OptionSpec::new(
        "join_use_nulls",
        OptionCheck::Bool,
        "ClickHouse setting: outer joins fill missing columns with NULL instead of defaults",
    ),
    OptionSpec::new(
        "join_algorithm",
        OptionCheck::Any,
        "ClickHouse setting (newer servers): `hash`, `partial_merge`, `auto`, …",
    ),
    OptionSpec::new(
        "session_timezone",
        OptionCheck::Any,
        "ClickHouse setting (23.x and later): zone of DateTime values without one",
    ),
];

pub(crate) fn check_config(config: &ValidConfig, problems: &mut Vec<(String, String)>) {
    for (key, _) in config.options.iter() {
        if config.read_only
            && key
                .strip_prefix(SETTING_PREFIX)
                .is_some_and(|name| name.eq_ignore_ascii_case("readonly"))
        {
            problems.push((
                format!("options.{key}"),
                "a read-only connector runs every query with readonly = 2; the setting cannot \
                 be given"
                    .to_owned(),
            ));
        }
        if let Some(name) = key.strip_prefix(SETTING_PREFIX)
            && (name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            problems.push((
                format!("options.{key}"),
                "a ClickHouse setting name has only letters, digits and `_`".to_owned(),
            ));
        }
    }
}

pub(crate) fn warn_config(config: &ValidConfig, warnings: &mut Vec<(String, String)>) {
    if config.tls.is_some() && matches!(config.endpoint, Endpoint::Tcp { port: 8123, .. }) {
        warnings.push((
            "port".to_owned(),
            "SSL is on but the port is 8123, ClickHouse's plain HTTP port; HTTPS is usually 8443"
                .to_owned(),
        ));
    }
}

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
