//! The server behind the connector's HTTP client: its connections are hyper's
//! keep-alive pool (built in [`crate::connect`]; over HTTP a pooled socket holds no
//! session state, so there is nothing to reset and no per-connection data to keep,
//! and a query is cancelled by its `query_id` from any connection). What a source learns
//! from the server on first use — version, time zone, which parameter path it takes —
//! is kept here, once per source.

use std::time::Duration;

use chrono_tz::Tz;
use extdata_core::{Error, ErrorKind, Result, Value};

use crate::ClickHouseSource;
use crate::stream::read_all;
use crate::types::{self, ServerFeatures};

/// What was learned from the server once per source.
#[derive(Debug, Clone)]
pub(crate) struct ServerState {
    pub(crate) version: String,
    pub(crate) features: ServerFeatures,
    pub(crate) server_parameters: bool,
    pub(crate) zone: Tz,
}

impl ClickHouseSource {
    /// The server's version, zone and features, asked once per source.
    pub(crate) async fn server(&self) -> Result<&ServerState> {
        self.server
            .get_or_try_init(|| async {
                // HTTP has no acquire step: this first exchange plays that part, so
                // it is bounded by the pool's acquire timeout as well.
                let acquire_timeout = self.config.pool.acquire_timeout;
                let timeout = (self.config.connect_timeout.max(Duration::from_secs(1))
                    + Duration::from_secs(5))
                .min(acquire_timeout);
                let cursor = self
                    .client
                    .query_raw("SELECT version(), timezone()")
                    .with_setting("max_execution_time", "10")
                    .fetch_native()
                    .map_err(|e| self.error(e, "connect"))?;
                let rows = tokio::time::timeout(timeout, read_all(cursor, Tz::UTC))
                    .await
                    .map_err(|_| {
                        let error = if timeout == acquire_timeout {
                            Error::new(
                                ErrorKind::Timeout,
                                format!(
                                    "no connection within {}ms (acquire_timeout): the TCP \
                                     connect or the server's answer to the first request \
                                     timed out (the server accepts but does not answer, or \
                                     the network path is silent)",
                                    timeout.as_millis()
                                ),
                            )
                        } else {
                            Error::timeout("connect", timeout)
                        };
                        error.with_connector(self.config.name.clone())
                    })?
                    .map_err(|e| self.classify(e, "connect"))?;
                let (version, zone) = match rows.first().map(Vec::as_slice) {
                    Some([Value::Text(version), Value::Text(zone)]) => {
                        (version.clone(), zone.clone())
                    }
                    _ => {
                        return Err(self.config.error(
                            ErrorKind::Internal,
                            "the server did not answer `SELECT version(), timezone()`",
                        ));
                    }
                };
                let (major, minor) = parse_version(&version);
                let never = self.config.options.get("server_parameters") == Some("never");
                Ok(ServerState {
                    features: ServerFeatures {
                        modern_types: major >= 21,
                    },
                    // 0.15 sends parameters in a multipart/form-data body, which the
                    // HTTP interface reads from 24.1 on; 18.x has no parameters at all.
                    server_parameters: !never && (major, minor) >= (24, 1),
                    zone: types::parse_zone(&zone).unwrap_or(Tz::UTC),
                    version,
                })
            })
            .await
    }
}

pub(crate) fn parse_version(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}
