//! HiveServer2 errors → [`extdata_core::Error`] with the right [`ErrorKind`].
//!
//! The server reports failures in a `TStatus` (SQLSTATE, error code, message) or as an
//! operation in the `ERROR` state; transport failures are socket errors or a closed
//! connection. Spark prefixes its messages with an error class in brackets
//! (`[TABLE_OR_VIEW_NOT_FOUND]`), which is used when the SQLSTATE is too coarse.

use extdata_core::{Error, ErrorKind};
use hive::service::rpc::thrift::TStatus;

use crate::transport::TransportError;

/// The kind of a server-side failure, from its SQLSTATE and message.
pub(crate) fn classify(sql_state: Option<&str>, message: &str) -> ErrorKind {
    let upper = message.to_ascii_uppercase();
    if upper.contains("[SCHEMA_NOT_FOUND]")
        || upper.contains("DATABASE DOES NOT EXIST")
        || upper.contains("DATABASE ") && upper.contains(" NOT FOUND")
    {
        return ErrorKind::Database;
    }
    if upper.contains("QUERY TIMED OUT")
        || upper.contains("TIMED OUT AFTER")
        || upper.contains("[OPERATION_TIMEOUT]")
    {
        return ErrorKind::Timeout;
    }
    match sql_state.map(|s| s.get(..2).unwrap_or(s)) {
        Some("08") => ErrorKind::Connect,
        Some("28") => ErrorKind::Auth,
        Some("3D") => ErrorKind::Database,
        Some("22") if upper.contains("CAST") || upper.contains("OVERFLOW") => ErrorKind::Query,
        _ => ErrorKind::Query,
    }
}

/// A server error from a status that is not a success.
pub(crate) fn from_status(status: &TStatus, operation: &str) -> Error {
    let message = status
        .error_message
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| format!("status code {}", status.status_code.0));
    // INVALID_HANDLE: the server no longer knows the session or operation.
    if status.status_code.0 == 4 {
        return Error::new(
            ErrorKind::Connect,
            format!("{operation}: the server no longer knows this session: {message}"),
        );
    }
    from_server(
        status.sql_state.as_deref(),
        status.error_code,
        &message,
        operation,
    )
}

/// A server error from its parts.
pub(crate) fn from_server(
    sql_state: Option<&str>,
    error_code: Option<i32>,
    message: &str,
    operation: &str,
) -> Error {
    let kind = classify(sql_state, message);
    let message = first_lines(message);
    let mut error = Error::new(kind, format!("{operation}: {message}"));
    if let Some(state) = sql_state.filter(|s| !s.is_empty()) {
        error = error.with_sql_state(state);
    } else if let Some(code) = error_code.filter(|c| *c != 0) {
        error = error.with_sql_state(code.to_string());
    }
    error
}

/// Server messages can carry a whole Java stack trace; keep the part a user reads.
fn first_lines(message: &str) -> String {
    const MAX: usize = 2000;
    let kept: Vec<&str> = message
        .lines()
        .take_while(|line| !line.trim_start().starts_with("at "))
        .collect();
    let mut text = kept.join("\n").trim().to_owned();
    if text.is_empty() {
        text = message.trim().to_owned();
    }
    if text.len() > MAX {
        let mut cut = MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A transport failure during `operation`.
pub(crate) fn from_transport(error: TransportError, operation: &str) -> Error {
    let kind = match &error {
        TransportError::Io(_) | TransportError::Closed { .. } => ErrorKind::Connect,
        TransportError::Protocol(_) | TransportError::Application(_) => ErrorKind::Connect,
    };
    let message = match &error {
        TransportError::Closed { .. } => {
            format!("{operation}: the server closed the connection")
        }
        other => format!("{operation}: {other}"),
    };
    Error::new(kind, message).with_source(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive::service::rpc::thrift::TStatusCode;

    #[test]
    fn classifies_by_error_class_and_sql_state() {
        assert_eq!(
            classify(
                Some("42P01"),
                "[TABLE_OR_VIEW_NOT_FOUND] The table `x` cannot be found"
            ),
            ErrorKind::Query
        );
        assert_eq!(
            classify(
                Some("42704"),
                "[SCHEMA_NOT_FOUND] The schema `nope` cannot be found."
            ),
            ErrorKind::Database
        );
        assert_eq!(classify(Some("08S01"), "lost"), ErrorKind::Connect);
        assert_eq!(classify(Some("28000"), "denied"), ErrorKind::Auth);
        assert_eq!(
            classify(None, "Query timed out after 2 seconds"),
            ErrorKind::Timeout
        );
        assert_eq!(classify(None, "anything else"), ErrorKind::Query);
    }

    #[test]
    fn keeps_sql_state_and_drops_stack_traces() {
        let status = TStatus::new(
            TStatusCode::ERROR_STATUS,
            None,
            Some("42000".to_owned()),
            Some(0),
            Some("[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'\n\tat org.apache.Foo\n\tat org.apache.Bar".to_owned()),
        );
        let error = from_status(&status, "execute");
        assert_eq!(error.kind(), ErrorKind::Query);
        assert_eq!(error.sql_state(), Some("42000"));
        assert!(error.message().contains("PARSE_SYNTAX_ERROR"));
        assert!(
            !error.message().contains("org.apache"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn invalid_handle_is_a_lost_session() {
        let status = TStatus::new(TStatusCode::INVALID_HANDLE_STATUS, None, None, None, None);
        let error = from_status(&status, "fetch");
        assert_eq!(error.kind(), ErrorKind::Connect);
        assert!(error.is_temporary());
    }
}
