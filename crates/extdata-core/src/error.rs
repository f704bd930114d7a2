//! The one error type every backend returns.

use std::error::Error as StdError;
use std::fmt;

/// A boxed driver error kept as the [`Error::source`] of an [`Error`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The result type of every fallible extdata call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of the backend.
///
/// A retry or timeout layer decides on the kind alone; the message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connector's configuration is invalid (names the field).
    Config,
    /// The host name could not be resolved.
    Resolve,
    /// The server could not be reached, or the connection was lost.
    Connect,
    /// TLS negotiation failed (untrusted certificate, wrong host name, bad key).
    Tls,
    /// The server refused the credentials.
    Auth,
    /// The database named by the connector does not exist or is not accessible.
    Database,
    /// The call ran out of time (connect, acquire or query timeout).
    Timeout,
    /// The server rejected the statement (syntax, missing table, constraint, …).
    Query,
    /// A statement tried to write through a read-only connector.
    ReadOnly,
    /// A value could not be converted between the database and [`crate::Value`].
    Decode,
    /// A parameter is missing, unused or cannot be bound.
    Parameter,
    /// The operation or type is not supported by this backend or build.
    Unsupported,
    /// The account is not allowed to use this connector.
    Forbidden,
    /// The source was closed.
    Closed,
    /// A bug or an unexpected state; please report it.
    Internal,
}

impl ErrorKind {
    /// A lower-case name for logs and metrics labels (`"timeout"`, `"auth"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Resolve => "resolve",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Auth => "auth",
            ErrorKind::Database => "database",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Query => "query",
            ErrorKind::ReadOnly => "read_only",
            ErrorKind::Decode => "decode",
            ErrorKind::Parameter => "parameter",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Closed => "closed",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether an error of this kind may go away if the call is retried later.
    pub fn is_temporary_by_default(self) -> bool {
        matches!(
            self,
            ErrorKind::Resolve | ErrorKind::Connect | ErrorKind::Timeout
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An extdata error: a [`kind`](Error::kind), the connector it concerns, a message,
/// and the driver's error as [`source`](StdError::source).
///
/// Messages never contain passwords, keys or connection strings with credentials:
/// backends build them from the driver's structured error, not from its `Debug`.
pub struct Error {
    kind: ErrorKind,
    connector: Option<String>,
    message: String,
    temporary: bool,
    sql_state: Option<String>,
    source: Option<BoxError>,
}

impl Error {
    /// Creates an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            connector: None,
            message: message.into(),
            temporary: kind.is_temporary_by_default(),
            sql_state: None,
            source: None,
        }
    }

    /// A [`ErrorKind::Config`] error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// A [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// A [`ErrorKind::Decode`] error.
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decode, message)
    }

    /// A [`ErrorKind::Parameter`] error.
    pub fn parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Parameter, message)
    }

    /// A [`ErrorKind::Timeout`] error for `operation` after `after`.
    pub fn timeout(operation: &str, after: std::time::Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!(
                "{operation} timed out after {}",
                humantime::format_duration(after)
            ),
        )
    }

    /// Attaches the connector's name (shown as a prefix of the message).
    pub fn with_connector(mut self, name: impl Into<String>) -> Self {
        self.connector = Some(name.into());
        self
    }

    /// Attaches the driver's error. Its text must not contain secrets.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Overrides whether a retry may succeed.
    pub fn with_temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// Attaches the server's SQLSTATE (or native error code as text).
    pub fn with_sql_state(mut self, state: impl Into<String>) -> Self {
        self.sql_state = Some(state.into());
        self
    }

    /// Prefixes the message with `context: `.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The connector this error concerns, when known.
    pub fn connector(&self) -> Option<&str> {
        self.connector.as_deref()
    }

    /// The message, without the connector prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The server's SQLSTATE or error code, when it gave one.
    pub fn sql_state(&self) -> Option<&str> {
        self.sql_state.as_deref()
    }

    /// Whether the same call may succeed if retried later (lost connection, timeout).
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.connector {
            Some(name) => write!(f, "connector `{name}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Error");
        s.field("kind", &self.kind)
            .field("connector", &self.connector)
            .field("message", &self.message)
            .field("temporary", &self.temporary);
        if let Some(state) = &self.sql_state {
            s.field("sql_state", state);
        }
        if let Some(source) = &self.source {
            // The source's Display, not its Debug: driver Debug output can hold options
            // with credentials (sqlx's connect options print the password).
            s.field("source", &source.to_string());
        }
        s.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|e| e.as_ref() as &(dyn StdError + 'static))
    }
}

/// What an administrator has to fix after a TLS failure, read from the driver's error
/// text (rustls prints some reasons only as a bare name, such as `UnknownIssuer`):
/// unknown CA, expired or not yet valid certificate, wrong host name, client
/// certificate required. `None` when the text says none of these.
///
/// Backends append it to their `Tls` errors with [`with_tls_hint`].
pub fn tls_hint(text: &str) -> Option<&'static str> {
    let text = text.to_ascii_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if says(&["unknownissuer", "unknown issuer", "unknown ca"]) {
        Some(
            "the server's certificate is not signed by a trusted CA (unknown issuer): \
             set ssl.ca or ssl.ca_file to the CA that issued it",
        )
    } else if says(&["expired"]) {
        Some("the server's certificate has expired: renew it on the server")
    } else if says(&["notvalidforname", "not valid for name"]) {
        Some(
            "the server's certificate does not name this host: connect by a host name \
             the certificate lists, or reissue it for this name",
        )
    } else if says(&["notvalidyet", "not valid yet"]) {
        Some("the server's certificate is not valid yet: check the clocks of client and server")
    } else if says(&["certificaterequired", "certificate required"]) {
        Some("the server requires a client certificate: set ssl.cert and ssl.key")
    } else {
        None
    }
}

/// `message` followed by the [`tls_hint`] for the driver's error `text`, if any.
///
/// ```
/// let message = extdata_core::with_tls_hint(
///     "TLS with the server failed".into(),
///     "invalid peer certificate: UnknownIssuer",
/// );
/// assert!(message.contains("set ssl.ca"));
/// ```
pub fn with_tls_hint(message: String, text: &str) -> String {
    match tls_hint(text) {
        Some(hint) => format!("{message} ({hint})"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_say_what_to_fix() {
        let cases = [
            ("invalid peer certificate: UnknownIssuer", "ssl.ca"),
            (
                "invalid peer certificate: certificate expired: verification time 1 (UNIX), \
                 but certificate is not valid after 0 (1 seconds ago)",
                "renew it",
            ),
            (
                "invalid peer certificate: certificate not valid for name \"vm\"",
                "does not name this host",
            ),
            ("received fatal alert: CertificateRequired", "ssl.cert"),
        ];
        for (text, fix) in cases {
            let message = with_tls_hint("TLS failed".into(), text);
            assert!(message.contains(fix), "{text} → {message}");
        }
        assert_eq!(with_tls_hint("x".into(), "connection reset"), "x");
    }

    #[test]
    fn display_prefixes_connector_and_keeps_kind() {
        let err = Error::new(
            ErrorKind::Auth,
            "password authentication failed for user `x`",
        )
        .with_connector("crm");
        assert_eq!(
            err.to_string(),
            "connector `crm`: password authentication failed for user `x`"
        );
        assert_eq!(err.kind(), ErrorKind::Auth);
        assert!(!err.is_temporary());
    }

    #[test]
    fn connect_and_timeout_are_temporary_by_default() {
        assert!(Error::new(ErrorKind::Connect, "refused").is_temporary());
        assert!(Error::timeout("query", std::time::Duration::from_secs(1)).is_temporary());
        assert!(!Error::new(ErrorKind::Query, "syntax").is_temporary());
    }

    #[test]
    fn source_is_exposed() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::new(ErrorKind::Connect, "connect failed").with_source(io);
        assert_eq!(
            err.source().map(|s| s.to_string()).as_deref(),
            Some("refused")
        );
    }
}
