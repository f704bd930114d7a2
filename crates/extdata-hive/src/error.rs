//! HiveServer2 errors → [`extdata_core::Error`] with the right [`ErrorKind`].
//!
//! The server reports failures in a `TStatus` (SQLSTATE, error code, message) or as an
//! operation in the `ERROR` state; transport failures are socket errors or a closed
//! connection. Spark prefixes its messages with an error class in brackets
//! (`[TABLE_OR_VIEW_NOT_FOUND]`), which is used when the SQLSTATE is too coarse.

use extdata_core::{Error, ErrorKind};
use hive::service::rpc::thrift::TStatus;

use crate::transport::TransportError;

/// What failed: the one input of [`map_error`].
pub(crate) enum Failure<'a> {
    /// A call answered with a status that is not a success.
    Status(&'a TStatus),
    /// An operation ended in the `ERROR` state with these details.
    Server {
        sql_state: Option<&'a str>,
        error_code: Option<i32>,
        message: &'a str,
    },
    /// The socket or the Thrift framing failed.
    Transport(TransportError),
}

/// Converts a failure during `operation` into ours.
pub(crate) fn map_error(failure: Failure<'_>, operation: &str) -> Error {
    match failure {
        Failure::Status(status) => from_status(status, operation),
        Failure::Server {
            sql_state,
            error_code,
            message,
        } => from_server(sql_state, error_code, message, operation),
        Failure::Transport(error) => from_transport(error, operation),
    }
}

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
        _ => ErrorKind::Query,
    }
}

/// A server error from a status that is not a success.
fn from_status(status: &TStatus, operation: &str) -> Error {
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
fn from_server(
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

/// A transport failure during `operation`: the connection is unusable, whatever broke.
fn from_transport(error: TransportError, operation: &str) -> Error {
    let message = match &error {
        TransportError::Closed { .. } => {
            format!("{operation}: the server closed the connection")
        }
        TransportError::Auth(why) => {
            return Error::new(ErrorKind::Auth, format!("{operation}: {why}"));
        }
        TransportError::Http {
            status: 401 | 403, ..
        } => {
            return Error::new(
                ErrorKind::Auth,
                format!("{operation}: login refused by the server: {error}"),
            )
            .with_source(error);
        }
        TransportError::Http {
            status: 404 | 405, ..
        } => format!(
            "{operation}: {error}: the HTTP path is wrong (set the option http_path to the \
             server's hive.server2.thrift.http.path)"
        ),
        TransportError::NotHttp(_) => format!(
            "{operation}: {error}: if the server runs with hive.server2.use.SSL=true, turn ssl \
             on; if it runs the binary transport, set the option transport=binary"
        ),
        other => format!("{operation}: {other}"),
    };
    Error::new(ErrorKind::Connect, message).with_source(error)
}

/// `HiveSource::withhold_values` for a statement that has parameters (`has_params`).
pub(crate) fn withhold_if(has_params: bool, connector: &str, error: Error) -> Error {
    if !has_params
        || matches!(
            error.kind(),
            ErrorKind::Timeout
                | ErrorKind::Closed
                | ErrorKind::ReadOnly
                | ErrorKind::Parameter
                | ErrorKind::Unsupported
                | ErrorKind::Config
        )
    {
        return error;
    }
    withheld(error, connector)
}

/// `error` with the server's text replaced by its error class (see
/// `HiveSource::withhold_values`).
fn withheld(error: Error, connector: &str) -> Error {
    let message = error.message();
    let operation = message.split(": ").next().unwrap_or("the statement failed");
    let classes: Vec<&str> = message
        .match_indices('[')
        .filter_map(|(at, _)| {
            let rest = &message[at + 1..];
            let end = rest.find(']')?;
            let class = &rest[..end];
            (!class.is_empty()
                && class.bytes().all(|b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'.'
                }))
            .then_some(class)
        })
        .collect();
    let class = match classes.first() {
        Some(class) => format!("[{class}] "),
        None => String::new(),
    };
    let mut rebuilt = Error::new(
        error.kind(),
        format!(
            "{operation}: {class}(the server's message is withheld: the statement has \
             parameters, whose values it may quote; run it without parameters to see it)"
        ),
    )
    .with_connector(connector.to_owned())
    .with_temporary(error.is_temporary());
    if let Some(state) = error.sql_state() {
        rebuilt = rebuilt.with_sql_state(state.to_owned());
    }
    rebuilt
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
        let error = map_error(Failure::Status(&status), "execute");
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
        let error = map_error(Failure::Status(&status), "fetch");
        assert_eq!(error.kind(), ErrorKind::Connect);
        assert!(error.is_temporary());
    }
}
