//! The one error type every backend returns.

use std::error::Error as StdError;
use std::fmt;

use crate::driver::{ScrubbedError, duration_text};
use crate::{Statement, Value};

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
            format!("{operation} timed out after {}", duration_text(after)),
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

    /// Replaces the text of `statement`'s bound values in this error (message and
    /// source chain) with `<value of :name>`, and pieces of them with
    /// `<part of :name>`.
    ///
    /// Servers quote the offending value in some errors (PostgreSQL's `invalid input
    /// syntax for type integer: "…"` and its duplicate-key detail, MariaDB's `Incorrect
    /// integer value: '…'`), sometimes only a piece of it (MariaDB cuts long values to
    /// 64 characters, a JSON parser names the bad token, `regclass` lower-cases), and
    /// values come from subscribers: personal data that must not reach logs. So:
    /// - each value's text is replaced wherever it appears, ignoring ASCII case;
    /// - each word of the message (a run between spaces, quotes, brackets, `,;:=`)
    ///   of six characters or more that is part of a value (ignoring ASCII case, a
    ///   trailing `...` or `…` cut off) is replaced too;
    /// - when the statement has such values, the driver's error is replaced by a text
    ///   copy of its chain, redacted the same way: a driver's `Debug` can hold more
    ///   than its `Display` (PostgreSQL's `where` and `detail`), and the original could
    ///   be downcast and printed. The kind, SQLSTATE and connector stay.
    ///
    /// Values whose text is shorter than four characters are left alone: they identify
    /// nobody, and blanking them would garble the message. What SQL does to a value
    /// before the server quotes it (`reverse(:v)`, `substr(:v, 3)`) can still show up.
    pub fn redact_parameters(mut self, statement: &Statement) -> Self {
        let mut values: Vec<(String, String)> = Vec::new();
        for (name, value) in statement.params() {
            value_texts(value, &mut |text| {
                if text.chars().count() >= MIN_REDACTED_CHARS {
                    values.push((text.to_ascii_lowercase(), name.clone()));
                }
            });
        }
        if values.is_empty() {
            return self;
        }
        // Longest first, so that a value holding another one is replaced whole.
        values.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
        self.message = redact_values(&self.message, &values);
        if let Some(source) = self.source.take() {
            let chain = crate::driver::error_chain(source.as_ref());
            self.source = Some(Box::new(ScrubbedError::from_text(redact_values(
                &chain, &values,
            ))));
        }
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

/// Value texts shorter than this are not redacted by [`Error::redact_parameters`].
const MIN_REDACTED_CHARS: usize = 4;

/// Words of a message shorter than this are not redacted as pieces of a value: short
/// words (`Token`, `type`) are too often part of a value by chance.
const MIN_PART_CHARS: usize = 6;

/// `text` with every occurrence of a value (lower-cased in `values`, with its
/// parameter's name) replaced, ignoring ASCII case, then every word that is part of a
/// value (see [`Error::redact_parameters`]).
fn redact_values(text: &str, values: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    for (value, name) in values {
        // ASCII lower-casing keeps byte offsets, so positions found in the lower-cased
        // copy are positions in `out`.
        let mut lower = out.to_ascii_lowercase();
        let mut from = 0;
        while let Some(at) = lower[from..].find(value.as_str()).map(|i| i + from) {
            let replacement = format!("<value of :{name}>");
            out.replace_range(at..at + value.len(), &replacement);
            // A filler no value text matches, so that no later (shorter) value is
            // found inside a replacement.
            lower.replace_range(at..at + value.len(), &"\u{1}".repeat(replacement.len()));
            from = at + replacement.len();
        }
    }
    let is_delimiter = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '\'' | '"' | '`' | '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';' | ':' | '='
            )
    };
    let mut redacted = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while !rest.is_empty() {
        let word_len = rest.find(is_delimiter).unwrap_or(rest.len());
        if word_len == 0 {
            let delimiter = rest.chars().next().map_or(1, char::len_utf8);
            redacted.push_str(&rest[..delimiter]);
            rest = &rest[delimiter..];
            continue;
        }
        let word = &rest[..word_len];
        let core = word
            .trim_end_matches('…')
            .trim_end_matches("...")
            .trim_end_matches(['.', '!', '?']);
        let owner = (core.chars().count() >= MIN_PART_CHARS && !core.starts_with('<'))
            .then(|| core.to_ascii_lowercase())
            .and_then(|core| values.iter().find(|(value, _)| value.contains(&core)));
        match owner {
            Some((_, name)) => {
                redacted.push_str(&format!("<part of :{name}>"));
                redacted.push_str(&word[core.len()..]);
            }
            None => redacted.push_str(word),
        }
        rest = &rest[word_len..];
    }
    redacted
}

/// Calls `found` with each text a server may quote for `value`: its own text and, for
/// arrays, tuples and maps, the text of each element.
fn value_texts(value: &Value, found: &mut impl FnMut(String)) {
    match value {
        Value::Null => {}
        Value::Array(items) | Value::Tuple(items) => {
            found(value.to_text_lossless());
            for item in items {
                value_texts(item, found);
            }
        }
        Value::Map(entries) => {
            found(value.to_text_lossless());
            for (key, item) in entries {
                value_texts(key, found);
                value_texts(item, found);
            }
        }
        Value::Bytes(bytes) => {
            found(value.to_text_lossless());
            found(String::from_utf8_lossy(bytes).into_owned());
        }
        other => found(other.to_text_lossless()),
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

    /// Like PostgreSQL's database error: the detail shows in `Debug`, not `Display`.
    #[derive(Debug)]
    struct DriverError {
        #[expect(dead_code, reason = "read through Debug only, like a driver's detail")]
        detail: String,
    }

    impl fmt::Display for DriverError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("duplicate key value violates unique constraint")
        }
    }

    impl StdError for DriverError {}

    #[test]
    fn bound_values_are_redacted_from_message_and_source() {
        let statement = Statement::new("INSERT INTO t VALUES (:email, :n, :tags, :id)")
            .bind("email", "ann.subscriber@example.com")
            .bind("n", 7)
            .bind("id", 1_234_567_i64)
            .bind(
                "tags",
                Value::Array(vec![Value::from("vip-tag-x"), Value::from("ok")]),
            );
        let err = Error::new(
            ErrorKind::Query,
            "invalid input syntax for type integer: \"ann.subscriber@example.com\" (1234567, vip-tag-x)",
        )
        .with_sql_state("22P02")
        .with_source(DriverError {
            detail: "Key (email)=(ann.subscriber@example.com) already exists.".into(),
        })
        .with_connector("crm")
        .redact_parameters(&statement);
        let shown = format!("{err} {err:?} {}", err.source().unwrap());
        for secret in ["ann.subscriber", "1234567", "vip-tag-x", "already exists"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(err.message().contains("<value of :email>"), "{err}");
        assert!(err.message().contains("<value of :id>"), "{err}");
        assert!(err.message().contains("<value of :tags>"), "{err}");
        assert_eq!(err.kind(), ErrorKind::Query);
        assert_eq!(err.sql_state(), Some("22P02"));
        assert_eq!(err.connector(), Some("crm"));
        // The driver's text stays, only the value is gone.
        assert!(
            err.source()
                .unwrap()
                .to_string()
                .contains("duplicate key value"),
            "{err:?}"
        );
    }

    #[test]
    fn pieces_of_values_are_redacted_too() {
        let long = format!("SECRETPREFIX-{}", "a".repeat(300));
        let statement = Statement::new("SELECT :long, :json, :name, :short")
            .bind("long", long.as_str())
            .bind("json", r#"{"k": secretTokenValue123}"#)
            .bind("name", "AliceSecretName")
            .bind("short", "Bob");
        let err = Error::new(
            ErrorKind::Query,
            format!(
                "Duplicate entry '{}...' for key 'PRIMARY'; Token \"secretTokenValue123\" is \
                 invalid; relation \"alicesecretname\" does not exist; ALICESECRETNAME; Bob",
                &long[..64]
            ),
        )
        .with_source(DriverError {
            detail: "where: JSON data, line 1: {\"k\": secretTokenValue123...".into(),
        })
        .redact_parameters(&statement);
        let shown = format!("{err} {err:?} {}", err.source().unwrap());
        for secret in [
            "SECRETPREFIX",
            "secretTokenValue123",
            "alicesecretname",
            "ALICESECRETNAME",
            "JSON data",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            err.message()
                .contains("Duplicate entry '<part of :long>...'"),
            "{err}"
        );
        assert!(
            err.message()
                .contains("Token \"<part of :json>\" is invalid"),
            "{err}"
        );
        assert!(
            err.message().contains("relation \"<value of :name>\""),
            "{err}"
        );
        assert!(err.message().ends_with("; Bob"), "short values stay: {err}");
        // The driver's error is a redacted text copy now: its Debug is gone.
        assert!(!has_driver_error(&err), "{err:?}");
    }

    #[test]
    fn errors_without_values_are_left_alone() {
        let statement = Statement::new("SELECT :a").bind("a", "x");
        let err = Error::new(ErrorKind::Query, "syntax error at or near x")
            .with_source(DriverError { detail: "d".into() })
            .redact_parameters(&statement);
        assert_eq!(err.message(), "syntax error at or near x");
        assert!(has_driver_error(&err), "{err:?}");
    }

    /// Whether `err`'s source is still the driver's own error (not a redacted copy).
    fn has_driver_error(err: &Error) -> bool {
        err.source()
            .and_then(|source| source.downcast_ref::<DriverError>())
            .is_some()
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
