//! Helpers for implementing a backend: one copy of what every driver wrapper needs.
//!
//! A backend crate turns a driver's errors into [`Error`]s without leaking the password
//! ([`scrub`], [`error_chain`], [`ScrubbedError`], [`mentions_tls`]), names where it
//! connects ([`host_port`], and [`Endpoint`]'s `Display`), refuses calls once closed
//! ([`Lifecycle`], [`closed_error`]), refuses a connector of another kind
//! ([`check_kind`]), bounds calls by their timeout ([`Bound`], [`timeout_error`],
//! [`pool_busy_error`]), retires pooled connections ([`PoolSettings::retired`]) and
//! prints durations one way ([`duration_text`]). With the `deadpool` feature,
//! `pool_build_error` and `pool_get_error` word a deadpool pool's failures; with the
//! `rustls` feature, `ensure_crypto_provider` settles rustls' process-wide provider.
//!
//! Users of the library need none of this; it is public so that every backend crate
//! uses the same helper under the same name.

use std::error::Error as StdError;
use std::fmt;
use std::ops::Add;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::DbKind;
use crate::error::{Error, ErrorKind, Result};
use crate::validate::{Endpoint, PoolSettings, ValidConfig};

/// What [`scrub`] puts where the secret was.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not cut out: they would garble any text (a password
/// `a` is in most words) and protect nothing.
const MIN_SCRUBBED_LEN: usize = 3;

/// `text` with every occurrence of `secret` (the connector's password) replaced by
/// [`REDACTED`]: the last line of defence against a driver that echoes it.
///
/// ```
/// use extdata_core::driver::scrub;
/// assert_eq!(scrub("login pw=hunter2 failed", Some("hunter2")), "login pw=[REDACTED] failed");
/// assert_eq!(scrub("login failed", None), "login failed");
/// ```
pub fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if secret.len() >= MIN_SCRUBBED_LEN && text.contains(secret) => {
            text.replace(secret, REDACTED)
        }
        _ => text.to_owned(),
    }
}

/// `error` and its sources joined by `: `, each source only when the text so far does
/// not already hold it (drivers often repeat their source in their own message; rustls'
/// reason is only in a source). Built from `Display`, never from `Debug`.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Whether a driver's error text speaks of TLS (a certificate, a handshake, rustls'
/// bare reasons such as `UnknownIssuer`): drivers that report TLS failures as I/O
/// errors are classified [`ErrorKind::Tls`] by it.
pub fn mentions_tls(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "unknownissuer",
        "notvalidforname",
        "ssl",
    ]
    .iter()
    .any(|word| text.contains(word))
}

/// A driver's error reduced to its text with the password cut out: what a backend
/// attaches as the [`source`](StdError::source) of its [`Error`], so that neither the
/// driver's `Debug` nor an unscrubbed cause can be reached from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubbedError(String);

impl ScrubbedError {
    /// `error`'s [`error_chain`] with `secret` [`scrub`]bed out.
    pub fn new(error: &(dyn StdError + 'static), secret: Option<&str>) -> Self {
        ScrubbedError(scrub(&error_chain(error), secret))
    }

    /// A text that is already free of secrets.
    pub fn from_text(text: impl Into<String>) -> Self {
        ScrubbedError(text.into())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScrubbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for ScrubbedError {}

/// `host:port`, with an IPv6 address in brackets (`[::1]:5432`): how messages and
/// `Debug` name a TCP endpoint.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for Endpoint {
    /// `host:port` ([`host_port`]), `unix socket <path>` or `embedded`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } | Endpoint::Udp { host, port } => {
                f.write_str(&host_port(host, *port))
            }
            Endpoint::Unix { path } => write!(f, "unix socket {path}"),
            Endpoint::Embedded => f.write_str("embedded"),
        }
    }
}

/// `Ok` when `config` is a connector of `kind`; the `Config` error a backend's `build`
/// returns for a connector of another kind otherwise.
pub fn check_kind(config: &ValidConfig, kind: DbKind) -> Result<()> {
    if config.kind == kind {
        Ok(())
    } else {
        Err(config.error(
            ErrorKind::Config,
            format!("is a `{}` connector, not {kind}", config.kind),
        ))
    }
}

impl PoolSettings {
    /// Why a pooled connection of age `age`, unused for `idle`, must be closed rather
    /// than reused (`max_lifetime`, `idle_timeout`); `None` while it may serve.
    pub fn retired(&self, age: Duration, idle: Duration) -> Option<&'static str> {
        if self.max_lifetime.is_some_and(|limit| age >= limit) {
            Some("older than pool.max_lifetime")
        } else if self.idle_timeout.is_some_and(|limit| idle >= limit) {
            Some("idle longer than pool.idle_timeout")
        } else {
            None
        }
    }
}

/// Applies a connector's login and TLS to a sqlx connect-options builder: user name,
/// password and database when given; the SSL mode `$mode` gives for the connector's
/// verification (`None`: no TLS); the CA through the builder's `$set_ca` setter, the
/// client certificate and the key. sqlx's PostgreSQL and MySQL builders have these
/// setters but no trait for them, hence a macro. Evaluates to the builder.
///
/// ```text
/// options = extdata_core::sqlx_login_and_tls!(options, config, ssl_ca_from_pem, |verify| {
///     match verify {
///         None => MySqlSslMode::Disabled,
///         Some(TlsVerify::Full) => MySqlSslMode::VerifyIdentity,
///         Some(TlsVerify::Ca) => MySqlSslMode::VerifyCa,
///         Some(TlsVerify::None) => MySqlSslMode::Required,
///     }
/// });
/// ```
#[macro_export]
macro_rules! sqlx_login_and_tls {
    ($options:expr, $config:expr, $set_ca:ident, $mode:expr $(,)?) => {{
        let config: &$crate::ValidConfig = $config;
        let mut options = $options;
        if let Some(user) = &config.username {
            options = options.username(user);
        }
        if let Some(password) = config.password_text() {
            options = options.password(password);
        }
        if let Some(database) = &config.database {
            options = options.database(database);
        }
        let mode: fn(Option<$crate::TlsVerify>) -> _ = $mode;
        options = options.ssl_mode(mode(config.tls.as_ref().map(|tls| tls.verify)));
        if let Some(tls) = &config.tls {
            if let Some(ca) = &tls.ca_pem {
                options = options.$set_ca(ca.as_bytes().to_vec());
            }
            if let Some(cert) = &tls.cert_pem {
                options = options.ssl_client_cert_from_pem(cert.as_bytes());
            }
            if let Some(key) = &tls.key_pem {
                options = options.ssl_client_key_from_pem($crate::expose(key).as_bytes());
            }
        }
        options
    }};
}

/// The error a closed source returns.
pub fn closed_error(connector: &str) -> Error {
    Error::new(ErrorKind::Closed, "the source is closed").with_connector(connector)
}

/// The [`ErrorKind::Timeout`] error of connector `connector` for `operation` after
/// `after` (see [`Error::timeout`]).
pub fn timeout_error(connector: &str, operation: &str, after: Duration) -> Error {
    Error::timeout(operation, after).with_connector(connector)
}

/// The [`timeout_error`] of a call that waited `waited` for a pooled connection while
/// `in_use` of the pool's `max_size` connections were busy.
pub fn pool_busy_error(connector: &str, in_use: usize, max_size: usize, waited: Duration) -> Error {
    timeout_error(
        connector,
        &format!("waiting for a free connection ({in_use} of {max_size} in use)"),
        waited,
    )
}

/// The error of a deadpool pool that could not be built (cargo feature `deadpool`): an
/// [`ErrorKind::Internal`] error of `connector`.
#[cfg(feature = "deadpool")]
pub fn pool_build_error(connector: &str, error: deadpool::managed::BuildError) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("cannot build the pool: {error}"),
    )
    .with_connector(connector)
}

/// The error of a deadpool `get` that failed (cargo feature `deadpool`), for a backend
/// whose manager's error is [`Error`]: the backend's own error as it is, [`closed_error`]
/// for a closed pool, and for an expired timeout what `on_timeout` words (each backend
/// says what it waited for); anything else, and a timeout `on_timeout` leaves to it
/// (`None`), is an [`ErrorKind::Internal`] error of the connection pool.
#[cfg(feature = "deadpool")]
pub fn pool_get_error(
    connector: &str,
    error: deadpool::managed::PoolError<Error>,
    on_timeout: impl FnOnce(deadpool::managed::TimeoutType) -> Option<Error>,
) -> Error {
    use deadpool::managed::PoolError;
    let other = match error {
        PoolError::Backend(e) => return e,
        PoolError::Closed => return closed_error(connector),
        PoolError::Timeout(timeout) => match on_timeout(timeout) {
            Some(e) => return e,
            None => PoolError::Timeout(timeout),
        },
        other => other,
    };
    Error::new(
        ErrorKind::Internal,
        format!("the connection pool failed: {other}"),
    )
    .with_connector(connector)
}

/// Whether a source is open: every call checks it first, and `close` ends it for good.
#[derive(Debug, Default)]
pub struct Lifecycle {
    closed: AtomicBool,
}

impl Lifecycle {
    /// An open source.
    pub const fn new() -> Self {
        Lifecycle {
            closed: AtomicBool::new(false),
        }
    }

    /// `Ok` while open; [`closed_error`] of `connector` once closed.
    pub fn check_open(&self, connector: &str) -> Result<()> {
        if self.is_closed() {
            Err(closed_error(connector))
        } else {
            Ok(())
        }
    }

    /// Closes; returns `true` for the call that closed it, `false` when it already was.
    pub fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Whether [`close`](Lifecycle::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// How a call bounds its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The whole call (query, execute, describe, ping).
    Total(Duration),
    /// Each wait for the next row (or batch) of a stream.
    PerRow(Duration),
}

impl Bound {
    /// The timeout.
    pub fn duration(self) -> Duration {
        match self {
            Bound::Total(d) | Bound::PerRow(d) => d,
        }
    }

    /// When a wait that starts at `now` in a call started at `started` must end:
    /// `started + timeout` for [`Bound::Total`], `now + timeout` for
    /// [`Bound::PerRow`]. Works with `std` and `tokio` instants alike.
    pub fn deadline<I: Add<Duration, Output = I>>(self, started: I, now: I) -> I {
        match self {
            Bound::Total(d) => started + d,
            Bound::PerRow(d) => now + d,
        }
    }

    /// What ran out of time, for the message: `query` or `waiting for the next row`.
    pub fn operation(self) -> &'static str {
        match self {
            Bound::Total(_) => "query",
            Bound::PerRow(_) => "waiting for the next row",
        }
    }

    /// The [`timeout_error`] of connector `connector` when this bound ran out.
    pub fn timeout_error(self, connector: &str) -> Error {
        timeout_error(connector, self.operation(), self.duration())
    }
}

/// A duration as messages print it, to the millisecond: `2s`, `1s 500ms`, `250ms`.
pub fn duration_text(duration: Duration) -> String {
    let millis = Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    humantime::format_duration(millis).to_string()
}

/// sqlx and hyper build their TLS clients on rustls' process-wide crypto provider. When
/// the process links rustls with both `ring` and `aws-lc-rs` (tiberius, for MSSQL,
/// brings the latter), rustls cannot choose and panics at the first TLS connection:
/// this installs `ring` unless the application already chose a provider. Cheap after
/// the first call; backends call it from `build`.
#[cfg(feature = "rustls")]
pub fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err only means another thread installed one first: that one is used.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn StdError + 'static))
        }
    }

    #[test]
    fn scrub_cuts_out_the_secret_but_not_a_short_one() {
        assert_eq!(
            scrub("a pw9 b pw9", Some("pw9")),
            "a [REDACTED] b [REDACTED]"
        );
        assert_eq!(scrub("a b", Some("ab")), "a b");
        assert_eq!(scrub("as is", Some("")), "as is");
        assert_eq!(scrub("as is", None), "as is");
    }

    #[test]
    fn error_chain_joins_sources_it_does_not_already_hold() {
        let error = Layer(
            "io error: tls handshake failed",
            Some(Box::new(Layer(
                "tls handshake failed",
                Some(Box::new(Layer("UnknownIssuer", None))),
            ))),
        );
        assert_eq!(
            error_chain(&error),
            "io error: tls handshake failed: UnknownIssuer"
        );
        assert!(mentions_tls(&error_chain(&error)));
        assert!(!mentions_tls("Connection refused (os error 111)"));
    }

    #[test]
    fn scrubbed_error_keeps_the_chain_without_the_password() {
        let error = Layer(
            "login failed",
            Some(Box::new(Layer("password=Sentinel-Pw", None))),
        );
        let scrubbed = ScrubbedError::new(&error, Some("Sentinel-Pw"));
        assert_eq!(scrubbed.to_string(), "login failed: password=[REDACTED]");
        assert!(!format!("{scrubbed:?}").contains("Sentinel-Pw"));
        assert!(
            scrubbed.source().is_none(),
            "no way back to the driver's error"
        );
        assert_eq!(ScrubbedError::from_text("x").as_str(), "x");
    }

    #[test]
    fn endpoints_print_as_messages_name_them() {
        let tcp = |host: &str| Endpoint::Tcp {
            host: host.into(),
            port: 5432,
        };
        assert_eq!(tcp("db.example").to_string(), "db.example:5432");
        assert_eq!(tcp("::1").to_string(), "[::1]:5432");
        assert_eq!(
            Endpoint::Unix {
                path: "/run/mysqld/mysqld.sock".into()
            }
            .to_string(),
            "unix socket /run/mysqld/mysqld.sock"
        );
        assert_eq!(Endpoint::Embedded.to_string(), "embedded");
        assert_eq!(host_port("10.0.0.1", 1433), "10.0.0.1:1433");
    }

    #[test]
    fn pooled_connections_retire_by_lifetime_and_idle_time() {
        let settings = PoolSettings {
            max_size: 4,
            min_idle: 0,
            acquire_timeout: Duration::from_secs(1),
            idle_timeout: Some(Duration::from_secs(60)),
            max_lifetime: Some(Duration::from_secs(600)),
        };
        let secs = Duration::from_secs;
        assert_eq!(settings.retired(secs(10), secs(10)), None);
        assert_eq!(
            settings.retired(secs(600), secs(0)),
            Some("older than pool.max_lifetime")
        );
        assert_eq!(
            settings.retired(secs(100), secs(61)),
            Some("idle longer than pool.idle_timeout")
        );
        let forever = PoolSettings {
            idle_timeout: None,
            max_lifetime: None,
            ..settings
        };
        assert_eq!(forever.retired(secs(1 << 30), secs(1 << 30)), None);
    }

    #[test]
    fn a_connector_of_another_kind_is_refused() {
        const EMBEDDED: crate::BackendSpec =
            crate::BackendSpec::embedded(DbKind::Sqlite, "embedded");
        let config = crate::ConnectorConfig::new("crm", DbKind::Sqlite)
            .with_database(":memory:")
            .validate_with(Some(&EMBEDDED))
            .expect("valid");
        assert!(check_kind(&config, DbKind::Sqlite).is_ok());
        let error = check_kind(&config, DbKind::MySql).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert_eq!(
            error.to_string(),
            "connector `crm`: is a `sqlite` connector, not mysql"
        );
    }

    #[test]
    fn lifecycle_refuses_calls_once_closed() {
        let lifecycle = Lifecycle::new();
        assert!(lifecycle.check_open("crm").is_ok());
        assert!(lifecycle.close(), "the first close closes");
        assert!(!lifecycle.close(), "a second close finds it closed");
        assert!(lifecycle.is_closed());
        let error = lifecycle.check_open("crm").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Closed);
        assert_eq!(error.to_string(), "connector `crm`: the source is closed");
    }

    #[test]
    fn bounds_set_deadlines_and_name_what_ran_out() {
        let second = Duration::from_secs(1);
        let started = std::time::Instant::now();
        let now = started + Duration::from_secs(5);
        assert_eq!(
            Bound::Total(second).deadline(started, now),
            started + second
        );
        assert_eq!(Bound::PerRow(second).deadline(started, now), now + second);
        assert_eq!(Bound::PerRow(second).duration(), second);
        let error = Bound::PerRow(second).timeout_error("crm");
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert_eq!(
            error.to_string(),
            "connector `crm`: waiting for the next row timed out after 1s"
        );
        assert_eq!(
            timeout_error("crm", "ping", Duration::from_millis(1500)).to_string(),
            "connector `crm`: ping timed out after 1s 500ms"
        );
        let busy = pool_busy_error("crm", 4, 4, second);
        assert_eq!(busy.kind(), ErrorKind::Timeout);
        assert_eq!(
            busy.to_string(),
            "connector `crm`: waiting for a free connection (4 of 4 in use) timed out after 1s"
        );
    }

    #[test]
    fn durations_print_to_the_millisecond() {
        assert_eq!(duration_text(Duration::from_secs(2)), "2s");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(duration_text(Duration::from_micros(250_400)), "250ms");
        assert_eq!(duration_text(Duration::from_secs(90)), "1m 30s");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn a_crypto_provider_is_installed() {
        ensure_crypto_provider();
        ensure_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[cfg(feature = "deadpool")]
    #[test]
    fn pool_get_errors_keep_the_backends_own_and_word_timeouts_as_asked() {
        use deadpool::managed::{PoolError, TimeoutType};
        let busy = |_| Some(Error::new(ErrorKind::Timeout, "busy"));
        // (what, the failure, whether the backend words its timeouts, kind, text)
        let cases = [
            (
                "backend",
                PoolError::Backend(Error::new(ErrorKind::Auth, "denied")),
                false,
                ErrorKind::Auth,
                "denied",
            ),
            (
                "closed",
                PoolError::Closed,
                false,
                ErrorKind::Closed,
                "closed",
            ),
            (
                "worded timeout",
                PoolError::Timeout(TimeoutType::Wait),
                true,
                ErrorKind::Timeout,
                "busy",
            ),
            (
                "timeout left to the pool",
                PoolError::Timeout(TimeoutType::Recycle),
                false,
                ErrorKind::Internal,
                "the connection pool failed: Timeout occurred while recycling",
            ),
            (
                "no runtime",
                PoolError::NoRuntimeSpecified,
                false,
                ErrorKind::Internal,
                "the connection pool failed",
            ),
        ];
        for (what, error, worded, kind, text) in cases {
            let error = if worded {
                pool_get_error("crm", error, busy)
            } else {
                pool_get_error("crm", error, |_| None)
            };
            assert_eq!(error.kind(), kind, "{what}: {error}");
            assert!(error.to_string().contains(text), "{what}: {error}");
        }
    }
}
