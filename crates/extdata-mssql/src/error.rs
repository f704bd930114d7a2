//! tiberius / server errors → [`extdata_core::Error`] with the right [`ErrorKind`].
//!
//! Server errors are classified by SQL Server's error number (the `Server` variant's
//! code), the rest by tiberius' error variant. Messages are built from the structured
//! error, never from a `Debug` of tiberius types (its `Config` derives `Debug`), and the
//! password is cut out of any driver text as a last line of defence.

use extdata_core::driver::{ScrubbedError, mentions_tls, scrub};
use extdata_core::{Error, ErrorKind, ValidConfig};

/// What the failing call was doing; names the operation in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Opening a connection (Browser, TCP, TLS, login).
    Connect,
    /// Running a statement.
    Statement,
}

/// SQL Server error numbers with a meaning of their own.
pub(crate) mod code {
    pub(crate) const SYNTAX: u32 = 102;
    pub(crate) const SYNTAX_NEAR_KEYWORD: u32 = 156;
    pub(crate) const INVALID_COLUMN: u32 = 207;
    pub(crate) const INVALID_OBJECT: u32 = 208;
    pub(crate) const DATABASE_DOES_NOT_EXIST: u32 = 911;
    pub(crate) const PRINCIPAL_CANNOT_ACCESS_DATABASE: u32 = 916;
    pub(crate) const AG_DATABASE_NOT_ACCESSIBLE: u32 = 976;
    pub(crate) const AG_DATABASE_READ_INTENT_ONLY: u32 = 978;
    pub(crate) const DEADLOCK_VICTIM: u32 = 1205;
    pub(crate) const LOCK_TIMEOUT: u32 = 1222;
    pub(crate) const READ_ONLY_DATABASE: u32 = 3906;
    pub(crate) const CANNOT_OPEN_DATABASE: u32 = 4060;
    pub(crate) const CANNOT_OPEN_DEFAULT_DATABASE: u32 = 4064;
    pub(crate) const SNAPSHOT_UPDATE_CONFLICT: u32 = 3960;
    pub(crate) const UNTRUSTED_DOMAIN_LOGIN: u32 = 18452;
    pub(crate) const LOGIN_FAILED: u32 = 18456;
    pub(crate) const ACCOUNT_DISABLED: u32 = 18470;
    pub(crate) const PASSWORD_EXPIRED: u32 = 18487;
    pub(crate) const PASSWORD_MUST_CHANGE: u32 = 18488;
    pub(crate) const SERVER_PAUSED: u32 = 17142;
    pub(crate) const AZURE_SERVICE_BUSY: u32 = 40501;
    pub(crate) const AZURE_DATABASE_UNAVAILABLE: u32 = 40613;
    pub(crate) const AZURE_SERVICE_ERROR: u32 = 40197;
    pub(crate) const AZURE_RESOURCE_LIMIT: u32 = 10928;
    pub(crate) const AZURE_RESOURCE_LIMIT_MIN: u32 = 10929;
}

/// The kind of a SQL Server error number, and whether retrying may help.
pub(crate) fn kind_of_code(number: u32) -> (ErrorKind, bool) {
    use code::*;
    match number {
        LOGIN_FAILED
        | UNTRUSTED_DOMAIN_LOGIN
        | ACCOUNT_DISABLED
        | PASSWORD_EXPIRED
        | PASSWORD_MUST_CHANGE => (ErrorKind::Auth, false),
        // 916 comes after a successful login: the login exists but may not use this
        // database, which is what `Database` means; the credentials are not wrong.
        CANNOT_OPEN_DATABASE
        | CANNOT_OPEN_DEFAULT_DATABASE
        | DATABASE_DOES_NOT_EXIST
        | PRINCIPAL_CANNOT_ACCESS_DATABASE
        | AG_DATABASE_READ_INTENT_ONLY => (ErrorKind::Database, false),
        AG_DATABASE_NOT_ACCESSIBLE => (ErrorKind::Database, true),
        READ_ONLY_DATABASE => (ErrorKind::ReadOnly, false),
        LOCK_TIMEOUT => (ErrorKind::Timeout, true),
        DEADLOCK_VICTIM | SNAPSHOT_UPDATE_CONFLICT => (ErrorKind::Query, true),
        SERVER_PAUSED
        | AZURE_SERVICE_BUSY
        | AZURE_DATABASE_UNAVAILABLE
        | AZURE_SERVICE_ERROR
        | AZURE_RESOURCE_LIMIT
        | AZURE_RESOURCE_LIMIT_MIN => (ErrorKind::Connect, true),
        // 102, 156, 207, 208 and everything else the server says about a statement.
        SYNTAX | SYNTAX_NEAR_KEYWORD | INVALID_COLUMN | INVALID_OBJECT => (ErrorKind::Query, false),
        _ => (ErrorKind::Query, false),
    }
}

/// Whether the error means the connection itself is unusable (vs. a statement error
/// after which the connection is fine).
pub(crate) fn is_connection_broken(err: &tiberius::error::Error) -> bool {
    use tiberius::error::Error as E;
    match err {
        E::Io { .. } | E::Protocol(_) | E::Tls(_) | E::Routing { .. } => true,
        // Severity 20 and above ends the session.
        E::Server(token) => token.class() >= 20,
        _ => false,
    }
}

/// The kind of a tiberius error that is not a server error, and whether retrying may
/// help. Server errors go through [`kind_of_code`].
pub(crate) fn kind_of(err: &tiberius::error::Error) -> (ErrorKind, bool) {
    use tiberius::error::{Error as E, IoErrorKind};
    match err {
        E::Server(token) => kind_of_code(token.code()),
        E::Tls(_) => (ErrorKind::Tls, false),
        // tiberius' handshake timeout names the TLS negotiation among its stages: the
        // timer wins over the TLS words.
        E::Io { kind, .. } if *kind == IoErrorKind::TimedOut => (ErrorKind::Timeout, true),
        E::Io { message, .. } if mentions_tls(message) => (ErrorKind::Tls, false),
        E::Io { .. } => (ErrorKind::Connect, true),
        // A protocol error leaves the connection out of step: like a lost connection.
        E::Routing { .. } | E::Protocol(_) => (ErrorKind::Connect, true),
        E::Encoding(_) | E::Conversion(_) | E::Utf8 | E::Utf16 | E::ParseInt(_) => {
            (ErrorKind::Decode, false)
        }
        E::BulkInput(_) => (ErrorKind::Parameter, false),
        #[allow(unreachable_patterns)] // feature-gated variants (GSSAPI, sspi-rs)
        _ => (ErrorKind::Internal, false),
    }
}

/// Converts a tiberius error into ours; `endpoint` names the server in messages.
pub(crate) fn map_error(
    config: &ValidConfig,
    endpoint: &str,
    stage: Stage,
    err: tiberius::error::Error,
) -> Error {
    use tiberius::error::Error as E;
    let secret = config.password_text();
    let clean = |text: String| scrub(&text, secret);
    let (kind, temporary) = kind_of(&err);
    let error = match &err {
        E::Server(token) => {
            let message = clean(token.message().to_owned());
            let message = match kind {
                ErrorKind::Auth => format!("authentication failed at {endpoint}: {message}"),
                ErrorKind::Database => format!("cannot use the database: {message}"),
                ErrorKind::ReadOnly => format!("the server refused the write: {message}"),
                _ if stage == Stage::Connect => format!("the server refused the login: {message}"),
                _ => message,
            };
            Error::new(
                kind,
                format!(
                    "{message} (error {}, state {}, class {})",
                    token.code(),
                    token.state(),
                    token.class()
                ),
            )
            .with_sql_state(token.code().to_string())
        }
        E::Tls(text) => Error::new(
            kind,
            format!("TLS with {endpoint} failed: {}", clean(text.clone())),
        ),
        E::Io { message, .. } => {
            let what = match (kind, stage) {
                (ErrorKind::Tls, _) => "TLS handshake with",
                (ErrorKind::Timeout, _) => "waiting for",
                (_, Stage::Connect) => "cannot connect to",
                (_, Stage::Statement) => "connection lost to",
            };
            Error::new(
                kind,
                format!("{what} {endpoint}: {}", clean(message.clone())),
            )
        }
        E::Routing { host, port } => Error::new(
            kind,
            format!("the server redirected the connection to {host}:{port}"),
        ),
        E::Protocol(text) => Error::new(
            kind,
            format!(
                "protocol error talking to {endpoint}: {}",
                clean(text.to_string())
            ),
        ),
        E::Encoding(_) | E::Conversion(_) | E::Utf8 | E::Utf16 | E::ParseInt(_) => Error::new(
            kind,
            format!("cannot decode a value: {}", clean(err.to_string())),
        ),
        E::BulkInput(text) => Error::new(
            kind,
            format!("cannot encode a parameter: {}", clean(text.to_string())),
        ),
        #[allow(unreachable_patterns)]
        other => Error::new(kind, clean(other.to_string())),
    };
    error
        .with_temporary(temporary)
        .with_connector(config.name.clone())
        .with_source(ScrubbedError::new(&err, secret))
}

#[cfg(test)]
mod tests {
    use std::error::Error as StdError;

    use super::*;
    use extdata_core::{ConnectorConfig, DbKind};
    use tiberius::error::{Error as E, IoErrorKind};

    const PASSWORD: &str = "Sentinel-Pw-41f9";

    const ENDPOINT: &str = "db.example:1433";

    fn config() -> ValidConfig {
        ConnectorConfig::new("crm", DbKind::MsSql)
            .with_host("db.example")
            .with_username("sa")
            .with_password(PASSWORD)
            .validate_with(Some(&crate::SPEC))
            .expect("valid")
    }

    #[test]
    fn server_error_numbers_map_to_kinds() {
        let cases = [
            (18456, ErrorKind::Auth),
            (18470, ErrorKind::Auth),
            (18488, ErrorKind::Auth),
            (4060, ErrorKind::Database),
            (4064, ErrorKind::Database),
            (911, ErrorKind::Database),
            (916, ErrorKind::Database),
            (102, ErrorKind::Query),
            (156, ErrorKind::Query),
            (207, ErrorKind::Query),
            (208, ErrorKind::Query),
            (2627, ErrorKind::Query),
            (3906, ErrorKind::ReadOnly),
            (1222, ErrorKind::Timeout),
            (40613, ErrorKind::Connect),
            (1205, ErrorKind::Query),
        ];
        for (number, kind) in cases {
            assert_eq!(kind_of_code(number).0, kind, "{number}");
        }
        assert!(kind_of_code(1205).1, "a deadlock victim may retry");
        assert!(kind_of_code(40501).1);
        assert!(!kind_of_code(18456).1);
        assert!(!kind_of_code(102).1);
    }

    #[test]
    fn driver_errors_map_to_kinds() {
        let config = config();
        let cases = [
            (
                E::Io {
                    kind: IoErrorKind::ConnectionRefused,
                    message: "Connection refused (os error 111)".into(),
                },
                Stage::Connect,
                ErrorKind::Connect,
                true,
                true,
            ),
            (
                E::Io {
                    kind: IoErrorKind::TimedOut,
                    message: "the connection handshake (prelogin, TLS negotiation and login) did not complete".into(),
                },
                Stage::Connect,
                ErrorKind::Timeout,
                true,
                true,
            ),
            (
                E::Io {
                    kind: IoErrorKind::InvalidData,
                    message: "invalid peer certificate: UnknownIssuer".into(),
                },
                Stage::Connect,
                ErrorKind::Tls,
                false,
                true,
            ),
            (
                E::Io {
                    kind: IoErrorKind::TimedOut,
                    message: "deadline elapsed".into(),
                },
                Stage::Statement,
                ErrorKind::Timeout,
                true,
                true,
            ),
            (
                E::Tls("invalid peer certificate: UnknownIssuer".into()),
                Stage::Connect,
                ErrorKind::Tls,
                false,
                true,
            ),
            (
                E::Protocol("unexpected token".into()),
                Stage::Statement,
                ErrorKind::Connect,
                true,
                true,
            ),
            (E::Utf16, Stage::Statement, ErrorKind::Decode, false, false),
            (
                E::Conversion("bad value".into()),
                Stage::Statement,
                ErrorKind::Decode,
                false,
                false,
            ),
            (
                E::BulkInput("too long".into()),
                Stage::Statement,
                ErrorKind::Parameter,
                false,
                false,
            ),
            (
                E::Routing {
                    host: "replica".into(),
                    port: 1433,
                },
                Stage::Connect,
                ErrorKind::Connect,
                true,
                true,
            ),
        ];
        for (err, stage, kind, temporary, broken) in cases {
            let text = err.to_string();
            assert_eq!(is_connection_broken(&err), broken, "{text}");
            let mapped = map_error(&config, ENDPOINT, stage, err);
            assert_eq!(mapped.kind(), kind, "{text}");
            assert_eq!(mapped.is_temporary(), temporary, "{text}");
            assert_eq!(mapped.connector(), Some("crm"));
        }
    }

    #[test]
    fn password_is_cut_out_of_driver_text() {
        let config = config();
        let err = E::Io {
            kind: IoErrorKind::Other,
            message: format!("failed with password={PASSWORD}"),
        };
        let mapped = map_error(&config, ENDPOINT, Stage::Connect, err);
        for text in [
            mapped.to_string(),
            format!("{mapped:?}"),
            mapped.source().map(|s| s.to_string()).unwrap_or_default(),
        ] {
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(
                text.contains("[REDACTED]") || text.contains("db.example"),
                "{text}"
            );
        }
    }
}
