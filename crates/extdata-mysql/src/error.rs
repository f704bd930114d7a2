//! sqlx / server errors → [`extdata_core::Error`] with the right [`ErrorKind`].
//!
//! Classified by the server's native error number first (MySQL and MariaDB share them),
//! then by SQLSTATE class. Messages are built from the structured error, never from a
//! `Debug` of sqlx types (its connect options print the password), and any occurrence
//! of the password is cut out as a last line of defence.

use extdata_core::driver::{ScrubbedError, error_chain, mentions_tls, scrub};
use extdata_core::{Error, ErrorKind, ValidConfig, with_tls_hint};
use sqlx::mysql::MySqlDatabaseError;

/// What the failing call was doing; names the operation in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Opening a connection (TCP, TLS, authentication, session setup).
    Connect,
    /// Running a statement.
    Statement,
}

/// Native error numbers with a meaning of their own.
mod code {
    pub(super) const ACCESS_DENIED_DB: u16 = 1044;
    pub(super) const ACCESS_DENIED: u16 = 1045;
    pub(super) const BAD_DB: u16 = 1049;
    pub(super) const TOO_MANY_CONNECTIONS: u16 = 1040;
    pub(super) const HOST_BLOCKED: u16 = 1129;
    pub(super) const HOST_NOT_PRIVILEGED: u16 = 1130;
    pub(super) const NOT_SUPPORTED_AUTH_MODE: u16 = 1251;
    pub(super) const SERVER_SHUTDOWN: u16 = 1053;
    pub(super) const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub(super) const DEADLOCK: u16 = 1213;
    pub(super) const USER_LIMIT_REACHED: u16 = 1226;
    pub(super) const UNKNOWN_COLLATION: u16 = 1273;
    pub(super) const OPTION_PREVENTS_STATEMENT: u16 = 1290;
    pub(super) const UNKNOWN_TIME_ZONE: u16 = 1298;
    pub(super) const QUERY_INTERRUPTED: u16 = 1317;
    pub(super) const ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
    pub(super) const CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: u16 = 1792;
    pub(super) const INNODB_READ_ONLY: u16 = 1874;
    pub(super) const CONNECTION_KILLED: u16 = 1927;
    pub(super) const STATEMENT_TIMEOUT_MARIADB: u16 = 1969;
    pub(super) const QUERY_TIMEOUT_MYSQL: u16 = 3024;
    pub(super) const SERVER_GONE: u16 = 2006;
    pub(super) const SERVER_LOST: u16 = 2013;
    pub(super) const UNKNOWN_CHARACTER_SET: u16 = 1115;
    pub(super) const COLLATION_CHARSET_MISMATCH: u16 = 1253;
    pub(super) const WRONG_VALUE_FOR_VAR: u16 = 1231;
}

/// The kind of a server error number (and SQLSTATE when the number says nothing).
pub(crate) fn kind_of_code(number: u16, sql_state: Option<&str>) -> ErrorKind {
    use code::*;
    match number {
        ACCESS_DENIED
        | ACCESS_DENIED_NO_PASSWORD
        | NOT_SUPPORTED_AUTH_MODE
        | HOST_NOT_PRIVILEGED => ErrorKind::Auth,
        // 1044 comes after a successful login: the account exists but may not use this
        // database, which is what `Database` means ("does not exist or is not
        // accessible"); the credentials are not what is wrong.
        ACCESS_DENIED_DB | BAD_DB => ErrorKind::Database,
        TOO_MANY_CONNECTIONS | HOST_BLOCKED | USER_LIMIT_REACHED | SERVER_SHUTDOWN
        | CONNECTION_KILLED | SERVER_GONE | SERVER_LOST => ErrorKind::Connect,
        QUERY_INTERRUPTED | STATEMENT_TIMEOUT_MARIADB | QUERY_TIMEOUT_MYSQL | LOCK_WAIT_TIMEOUT => {
            ErrorKind::Timeout
        }
        CANT_EXECUTE_IN_READ_ONLY_TRANSACTION | INNODB_READ_ONLY => ErrorKind::ReadOnly,
        // 1290 is "the server runs with --read-only (or another option)": for a write
        // that is the server's read-only error.
        OPTION_PREVENTS_STATEMENT => ErrorKind::ReadOnly,
        _ => match sql_state.map(|s| s.get(..2).unwrap_or(s)) {
            Some("28") => ErrorKind::Auth,
            Some("08") => ErrorKind::Connect,
            _ => ErrorKind::Query,
        },
    }
}

/// Whether the error means the connection itself is unusable (vs. a statement error
/// after which the connection is fine).
pub(crate) fn is_connection_broken(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| {
                matches!(
                    e.number(),
                    code::SERVER_GONE
                        | code::SERVER_LOST
                        | code::CONNECTION_KILLED
                        | code::SERVER_SHUTDOWN
                )
            }),
        _ => false,
    }
}

/// Converts a sqlx error into ours.
pub(crate) fn map_error(config: &ValidConfig, stage: Stage, err: sqlx::Error) -> Error {
    let secret = config.password_text();
    let clean = |text: String| scrub(&text, secret);
    let endpoint = &config.endpoint;
    let error = match &err {
        sqlx::Error::Database(db) => {
            let (number, state, message) = match db.try_downcast_ref::<MySqlDatabaseError>() {
                Some(e) => (
                    e.number(),
                    e.code().map(str::to_owned),
                    e.message().to_owned(),
                ),
                None => (
                    0,
                    db.code().map(|c| c.into_owned()),
                    db.message().to_owned(),
                ),
            };
            let kind = kind_of_code(number, state.as_deref());
            let mut message = clean(message);
            message = match (kind, number) {
                (ErrorKind::Auth, _) => format!("authentication failed at {endpoint}: {message}"),
                (ErrorKind::Database, _) => format!("cannot use the database: {message}"),
                (_, code::UNKNOWN_COLLATION | code::COLLATION_CHARSET_MISMATCH)
                    if stage == Stage::Connect =>
                {
                    format!("options.collation_connection: {message}")
                }
                (_, code::UNKNOWN_CHARACTER_SET) if stage == Stage::Connect => {
                    format!("options.charset: {message}")
                }
                (_, code::UNKNOWN_TIME_ZONE) if stage == Stage::Connect => format!(
                    "options.timezone: {message} (named zones need the server's time zone tables)"
                ),
                (_, code::WRONG_VALUE_FOR_VAR) if stage == Stage::Connect => {
                    format!("a session option was refused by the server: {message}")
                }
                (ErrorKind::Timeout, _) => format!("the server stopped the statement: {message}"),
                (ErrorKind::ReadOnly, _) => {
                    format!("the connector is read-only; the server refused the write: {message}")
                }
                _ if stage == Stage::Connect => format!("setting up the session failed: {message}"),
                _ => message,
            };
            let mut text = format!(
                "{message} (error {number}{})",
                state
                    .as_deref()
                    .map(|s| format!(", SQLSTATE {s}"))
                    .unwrap_or_default()
            );
            if let Some(hint) = access_denied_hint(config, number) {
                text.push_str("; ");
                text.push_str(hint);
            }
            let mut out = Error::new(kind, text);
            if let Some(state) = state {
                out = out.with_sql_state(state);
            }
            if number == code::DEADLOCK {
                out = out.with_temporary(true);
            }
            out
        }
        sqlx::Error::Io(io) => {
            let kind = if mentions_tls(&error_chain(io)) {
                ErrorKind::Tls
            } else {
                ErrorKind::Connect
            };
            let what = if kind == ErrorKind::Tls {
                "TLS handshake with"
            } else if stage == Stage::Connect {
                "cannot connect to"
            } else {
                "connection lost to"
            };
            let text = clean(error_chain(io));
            let message = format!("{what} {endpoint} failed: {text}");
            let message = if kind == ErrorKind::Tls {
                with_tls_hint(message, &text)
            } else {
                message
            };
            Error::new(kind, message)
        }
        sqlx::Error::Tls(e) => {
            let text = clean(error_chain(e.as_ref()));
            Error::new(
                ErrorKind::Tls,
                with_tls_hint(format!("TLS with {endpoint} failed: {text}"), &text),
            )
        }
        sqlx::Error::Protocol(text) => Error::new(
            ErrorKind::Connect,
            format!(
                "protocol error talking to {endpoint}: {}",
                clean(text.clone())
            ),
        ),
        sqlx::Error::Configuration(e) => Error::new(
            ErrorKind::Config,
            format!("invalid connection settings: {}", clean(e.to_string())),
        ),
        sqlx::Error::PoolTimedOut => Error::new(
            ErrorKind::Timeout,
            "timed out waiting for a connection from the pool",
        ),
        sqlx::Error::PoolClosed => Error::new(ErrorKind::Closed, "the source is closed"),
        sqlx::Error::ColumnDecode { index, source } => Error::new(
            ErrorKind::Decode,
            format!(
                "cannot decode column {index}: {}",
                clean(source.to_string())
            ),
        ),
        sqlx::Error::Decode(e) => Error::new(
            ErrorKind::Decode,
            format!("cannot decode a value: {}", clean(e.to_string())),
        ),
        sqlx::Error::Encode(e) => Error::new(
            ErrorKind::Parameter,
            format!("cannot encode a parameter: {}", clean(e.to_string())),
        ),
        other => Error::new(ErrorKind::Internal, clean(other.to_string())),
    };
    error
        .with_connector(config.name.clone())
        .with_source(ScrubbedError::new(&err, secret))
}

/// What to check after "Access denied" (1045) when no client certificate was sent: the
/// server gives the same answer to a wrong password and to an account that requires a
/// certificate (`REQUIRE X509`, `SUBJECT` or `ISSUER`).
fn access_denied_hint(config: &ValidConfig, number: u16) -> Option<&'static str> {
    let sent_certificate = config
        .tls
        .as_ref()
        .is_some_and(|tls| tls.cert_pem.is_some());
    (number == code::ACCESS_DENIED && !sent_certificate).then_some(
        "check the user name and password; if the account requires a client certificate \
         (REQUIRE X509, SUBJECT or ISSUER), set ssl.cert and ssl.key",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_without_a_client_certificate_mentions_one() {
        use extdata_core::{ConnectorConfig, DbKind};
        let plain = ConnectorConfig::new("crm", DbKind::MySql)
            .with_host("db")
            .with_username("u")
            .validate_with(Some(&crate::SPEC))
            .expect("valid");
        let hint = access_denied_hint(&plain, code::ACCESS_DENIED).expect("a hint");
        assert!(hint.contains("client certificate"), "{hint}");
        assert_eq!(access_denied_hint(&plain, code::ACCESS_DENIED_DB), None);
    }

    #[test]
    fn codes_map_to_kinds() {
        let cases = [
            (1045, "28000", ErrorKind::Auth),
            (1044, "42000", ErrorKind::Database),
            (1049, "42000", ErrorKind::Database),
            (1064, "42000", ErrorKind::Query),
            (1146, "42S02", ErrorKind::Query),
            (1054, "42S22", ErrorKind::Query),
            (1317, "70100", ErrorKind::Timeout),
            (1969, "70100", ErrorKind::Timeout),
            (3024, "HY000", ErrorKind::Timeout),
            (1792, "25006", ErrorKind::ReadOnly),
            (2013, "HY000", ErrorKind::Connect),
            (9999, "08S01", ErrorKind::Connect),
            (9999, "28000", ErrorKind::Auth),
        ];
        for (number, state, kind) in cases {
            assert_eq!(kind_of_code(number, Some(state)), kind, "{number}");
        }
    }
}
