//! `clickhouse` crate errors → [`extdata_core::Error`] with the right [`ErrorKind`].
//!
//! The server's errors arrive as text (`Code: 193, e.displayText() = DB::Exception: …`):
//! the code decides the kind. Transport errors are classified by walking their sources
//! (a `rustls::Error` anywhere means TLS, a refused connection means Connect).

use std::error::Error as StdError;

use clickhouse::error::Error as ChError;
use extdata_core::driver::{ScrubbedError, error_chain, scrub};
use extdata_core::{Error, ErrorKind, with_tls_hint};

/// ClickHouse error codes the backend classifies (`src/Common/ErrorCodes.cpp`).
pub(crate) mod code {
    /// `UNKNOWN_DATABASE`.
    pub(crate) const UNKNOWN_DATABASE: u32 = 81;
    /// `TIMEOUT_EXCEEDED`: `max_execution_time` fired on the server.
    pub(crate) const TIMEOUT_EXCEEDED: u32 = 159;
    /// `READONLY`: a write under `readonly`.
    pub(crate) const READONLY: u32 = 164;
    /// `UNKNOWN_USER`.
    pub(crate) const UNKNOWN_USER: u32 = 192;
    /// `WRONG_PASSWORD`.
    pub(crate) const WRONG_PASSWORD: u32 = 193;
    /// `REQUIRED_PASSWORD`.
    pub(crate) const REQUIRED_PASSWORD: u32 = 194;
    /// `IP_ADDRESS_NOT_ALLOWED`.
    pub(crate) const IP_ADDRESS_NOT_ALLOWED: u32 = 195;
    /// `SOCKET_TIMEOUT`.
    pub(crate) const SOCKET_TIMEOUT: u32 = 209;
    /// `TOO_MANY_SIMULTANEOUS_QUERIES`.
    pub(crate) const TOO_MANY_SIMULTANEOUS_QUERIES: u32 = 202;
    /// `QUERY_WAS_CANCELLED` (`KILL QUERY`).
    pub(crate) const QUERY_WAS_CANCELLED: u32 = 394;
    /// `AUTHENTICATION_FAILED` (newer servers, for every credential problem).
    pub(crate) const AUTHENTICATION_FAILED: u32 = 516;
}

/// The kind of a server error code.
pub(crate) fn kind_of_code(code: u32) -> ErrorKind {
    match code {
        code::AUTHENTICATION_FAILED
        | code::UNKNOWN_USER
        | code::WRONG_PASSWORD
        | code::REQUIRED_PASSWORD
        | code::IP_ADDRESS_NOT_ALLOWED => ErrorKind::Auth,
        code::UNKNOWN_DATABASE => ErrorKind::Database,
        code::TIMEOUT_EXCEEDED | code::SOCKET_TIMEOUT => ErrorKind::Timeout,
        code::READONLY => ErrorKind::ReadOnly,
        // A query stopped by KILL QUERY, or refused because the server is busy.
        code::QUERY_WAS_CANCELLED | code::TOO_MANY_SIMULTANEOUS_QUERIES => ErrorKind::Query,
        _ => ErrorKind::Query,
    }
}

/// Splits `Code: 62, e.displayText() = DB::Exception: Syntax error…` (18.x) or
/// `Code: 62. DB::Exception: Syntax error… (SYNTAX_ERROR) (version …)` (newer) into the
/// code and a readable message.
pub(crate) fn parse_server_error(text: &str) -> (Option<u32>, String) {
    let text = text.trim();
    let Some(rest) = text.strip_prefix("Code:") else {
        return (None, text.to_owned());
    };
    let rest = rest.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let code = digits.parse().ok();
    let mut message = rest[digits.len()..]
        .trim_start_matches([',', '.', ' '])
        .trim_start_matches("e.displayText() = ")
        .to_owned();
    for noise in [
        ", e.what() = DB::Exception",
        ", e.what() = DB::NetException",
    ] {
        if let Some(pos) = message.find(noise) {
            message.truncate(pos);
        }
    }
    if let Some(pos) = message.find(" (version ") {
        message.truncate(pos);
    }
    (code, message.trim().to_owned())
}

/// Whether `error` or one of its sources is a `T`.
fn has_source<T: StdError + 'static>(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<T>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<T>())
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Whether `error` is the clickhouse crate failing to read a column type with
/// `Nothing` in it (`NULL`, `[]`) or a `JSON` column, which it has no reader for (the
/// backend reads such columns through a cast).
pub(crate) fn names_castable_type(error: &ChError) -> bool {
    matches!(error, ChError::DataFormat(source) if {
        let text = error_chain(source.as_ref());
        text.contains("Nothing") || text.contains("(sub)type JSON")
    })
}

/// Converts a driver error, for the operation `operation` (`"query"`, `"connect"`, …).
pub(crate) fn map_error(error: ChError, operation: &str, password: Option<&str>) -> Error {
    let (kind, message, sql_state) = match &error {
        ChError::BadResponse(text) => {
            let (code, message) = parse_server_error(text);
            let kind = code.map_or_else(|| kind_of_status(text), kind_of_code);
            let message = match code {
                Some(code) => format!("{operation} failed: server error {code}: {message}"),
                None => format!("{operation} failed: {message}"),
            };
            (kind, message, code.map(|c| c.to_string()))
        }
        ChError::Network(source) => {
            let source: &(dyn StdError + 'static) = source.as_ref();
            let text = error_chain(source);
            let kind = if has_source::<rustls::Error>(source)
                || text.contains("certificate")
                || text.contains("tls handshake")
            {
                ErrorKind::Tls
            } else if text.contains("dns error") || text.contains("failed to lookup address") {
                ErrorKind::Resolve
            } else {
                ErrorKind::Connect
            };
            let message = format!("{operation} failed: cannot reach the server: {text}");
            let message = if kind == ErrorKind::Tls {
                with_tls_hint(message, &text)
            } else {
                message
            };
            (kind, message, None)
        }
        ChError::TimedOut => (
            ErrorKind::Timeout,
            format!("{operation} timed out in the client"),
            None,
        ),
        ChError::DataFormat(source) => {
            let text = error_chain(source.as_ref());
            if text.contains("parsing data type")
                || text.contains("not implemented")
                || text.contains("unimplemented deserialization")
            {
                (
                    ErrorKind::Decode,
                    format!(
                        "{operation} failed: a column type is not supported by the Native reader \
                         of the clickhouse crate ({text}); CAST the column to a supported type"
                    ),
                    None,
                )
            } else {
                // Old servers append their error text to a result that has started (HTTP
                // 200): the Native reader then fails on that text.
                (
                    ErrorKind::Query,
                    format!(
                        "{operation} failed: the result broke off mid-stream; the server most \
                         likely reported an error after sending the first rows ({text})"
                    ),
                    None,
                )
            }
        }
        ChError::NotEnoughData => (
            ErrorKind::Query,
            format!(
                "{operation} failed: the result broke off mid-stream; the server most likely \
                 reported an error after sending the first rows"
            ),
            None,
        ),
        ChError::InvalidUtf8Encoding(_) | ChError::SchemaMismatch(_) => (
            ErrorKind::Decode,
            format!("{operation} failed: {error}"),
            None,
        ),
        ChError::InvalidParams(_) => (
            ErrorKind::Parameter,
            format!("{operation} failed: {error}"),
            None,
        ),
        ChError::Unsupported(_) => (
            ErrorKind::Unsupported,
            format!("{operation} failed: {error}"),
            None,
        ),
        _ => (
            ErrorKind::Query,
            format!("{operation} failed: {error}"),
            None,
        ),
    };
    let busy = sql_state.as_deref() == Some("202");
    let mut converted = Error::new(kind, scrub(&message, password));
    if busy {
        converted = converted.with_temporary(true);
    }
    if let Some(state) = sql_state {
        converted = converted.with_sql_state(state);
    }
    converted.with_source(ScrubbedError::from_text(scrub(
        &error.to_string(),
        password,
    )))
}

/// Kind for an error without a ClickHouse code (a proxy's or the HTTP layer's answer).
fn kind_of_status(text: &str) -> ErrorKind {
    if text.starts_with("401") || text.starts_with("403") {
        ErrorKind::Auth
    } else if text.starts_with("502") || text.starts_with("503") || text.starts_with("504") {
        ErrorKind::Connect
    } else {
        ErrorKind::Query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_new_server_errors_are_parsed() {
        let (code, message) = parse_server_error(
            "Code: 193, e.displayText() = DB::Exception: Wrong password for user extdata_pw, e.what() = DB::Exception",
        );
        assert_eq!(code, Some(193));
        assert_eq!(message, "DB::Exception: Wrong password for user extdata_pw");
        let (code, message) = parse_server_error(
            "Code: 62. DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR) (version 24.3.1.1 (official build))",
        );
        assert_eq!(code, Some(62));
        assert_eq!(
            message,
            "DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR)"
        );
        assert_eq!(parse_server_error("502 Bad Gateway").0, None);
    }

    #[test]
    fn codes_map_to_kinds() {
        for (code, kind) in [
            (516, ErrorKind::Auth),
            (192, ErrorKind::Auth),
            (193, ErrorKind::Auth),
            (81, ErrorKind::Database),
            (159, ErrorKind::Timeout),
            (164, ErrorKind::ReadOnly),
            (62, ErrorKind::Query),
            (60, ErrorKind::Query),
        ] {
            assert_eq!(kind_of_code(code), kind, "code {code}");
        }
    }

    #[test]
    fn bad_response_becomes_classified_error_without_password() {
        let error = map_error(
            ChError::BadResponse(
                "Code: 193, e.displayText() = DB::Exception: Wrong password hunter22, e.what() = DB::Exception".into(),
            ),
            "query",
            Some("hunter22"),
        );
        assert_eq!(error.kind(), ErrorKind::Auth);
        assert_eq!(error.sql_state(), Some("193"));
        assert!(!error.to_string().contains("hunter22"));
        assert!(!format!("{error:?}").contains("hunter22"));
    }
}
