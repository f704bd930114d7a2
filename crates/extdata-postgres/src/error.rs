//! sqlx / PostgreSQL errors → [`extdata_core::Error`], classified by SQLSTATE.
//!
//! | SQLSTATE / driver error | kind |
//! |---|---|
//! | `28P01`, `28000` (bad password, rejected by `pg_hba.conf`) | `Auth` |
//! | `3D000` (no such database) | `Database` |
//! | `25006` (read-only transaction) | `ReadOnly` |
//! | `57014` by `statement_timeout`, `55P03` (lock timeout) | `Timeout` |
//! | `08xxx`, `57P01`–`57P03`, `53300` (too many connections), I/O errors | `Connect` (temporary) |
//! | `40001`, `40P01` (serialization failure, deadlock) | `Query` (temporary) |
//! | any other SQLSTATE (`42xxx` syntax/undefined, `22xxx` data, `23xxx` constraints…) | `Query` |
//! | TLS handshake and certificate errors (also rustls errors inside I/O errors) | `Tls` |
//! | host name lookup failure | `Resolve` |
//! | decoding a result | `Decode` |
//! | encoding a parameter | `Parameter` |
//!
//! Messages are built from the server's structured fields (message, detail, hint) and
//! from error `Display`s that never include connect options, so no password appears.

use std::error::Error as StdError;

use extdata_core::{Error, ErrorKind, with_tls_hint};
use sqlx::postgres::PgDatabaseError;

/// What was being done when the error happened, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Opening a connection (TCP, TLS, authentication, session set-up).
    Connect,
    /// Running a statement.
    Query,
}

impl Phase {
    fn verb(self) -> &'static str {
        match self {
            Phase::Connect => "cannot connect to PostgreSQL",
            Phase::Query => "PostgreSQL rejected the statement",
        }
    }
}

/// Converts a sqlx error into our error for connector `connector`.
pub(crate) fn map_error(connector: &str, phase: Phase, err: sqlx::Error) -> Error {
    let error = match &err {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<PgDatabaseError>() {
            Some(pg) => from_server(phase, pg),
            None => Error::new(
                ErrorKind::Query,
                format!("{}: {}", phase.verb(), db.message()),
            ),
        },
        sqlx::Error::Io(io) => from_io(phase, io),
        sqlx::Error::Tls(e) => Error::new(
            ErrorKind::Tls,
            with_tls_hint(
                format!("TLS with the PostgreSQL server failed: {e}"),
                &e.to_string(),
            ),
        ),
        sqlx::Error::Configuration(e) => Error::new(
            ErrorKind::Config,
            format!("invalid PostgreSQL connection settings: {e}"),
        ),
        sqlx::Error::Protocol(e) => Error::new(
            ErrorKind::Connect,
            format!("PostgreSQL protocol error (the connection is dropped): {e}"),
        ),
        sqlx::Error::Encode(e) => Error::parameter(format!("cannot bind a parameter: {e}")),
        sqlx::Error::Decode(e) | sqlx::Error::ColumnDecode { source: e, .. } => {
            Error::decode(format!("cannot decode a PostgreSQL value: {e}"))
        }
        sqlx::Error::TypeNotFound { type_name } => Error::new(
            ErrorKind::Query,
            format!("unknown PostgreSQL type `{type_name}`"),
        ),
        sqlx::Error::PoolTimedOut => Error::new(
            ErrorKind::Timeout,
            "timed out waiting for a PostgreSQL connection",
        ),
        sqlx::Error::PoolClosed => Error::new(ErrorKind::Closed, "the source is closed"),
        other => Error::new(ErrorKind::Internal, format!("{}: {other}", phase.verb())),
    };
    error.with_connector(connector).with_source(err)
}

fn from_server(phase: Phase, pg: &PgDatabaseError) -> Error {
    let code = pg.code();
    let kind = match code {
        "28P01" | "28000" => ErrorKind::Auth,
        "3D000" => ErrorKind::Database,
        "25006" => ErrorKind::ReadOnly,
        "55P03" => ErrorKind::Timeout,
        "57014" if pg.message().contains("statement timeout") => ErrorKind::Timeout,
        "57P01" | "57P02" | "57P03" | "53300" => ErrorKind::Connect,
        c if c.starts_with("08") => ErrorKind::Connect,
        _ => ErrorKind::Query,
    };
    let mut message = format!("{}: {} (SQLSTATE {code})", phase.verb(), pg.message());
    if let Some(detail) = pg.detail() {
        message.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = pg.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    let temporary = kind.is_temporary_by_default() || matches!(code, "40001" | "40P01");
    Error::new(kind, message)
        .with_sql_state(code)
        .with_temporary(temporary)
}

fn from_io(phase: Phase, io: &std::io::Error) -> Error {
    if let Some(tls) = find_rustls(io) {
        return Error::new(
            ErrorKind::Tls,
            with_tls_hint(
                format!("TLS with the PostgreSQL server failed: {tls}"),
                &tls.to_string(),
            ),
        );
    }
    let text = io.to_string();
    if text.contains("lookup address") || text.contains("Name or service not known") {
        return Error::new(
            ErrorKind::Resolve,
            format!("cannot resolve the PostgreSQL host: {text}"),
        );
    }
    let what = match phase {
        Phase::Connect => "cannot connect to PostgreSQL",
        Phase::Query => "the connection to PostgreSQL was lost",
    };
    Error::new(ErrorKind::Connect, format!("{what}: {text}"))
}

fn find_rustls(io: &std::io::Error) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = io.get_ref().map(|e| e as _);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_error_inside_io_is_tls() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let err = map_error("crm", Phase::Connect, sqlx::Error::Io(io));
        assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        assert_eq!(err.connector(), Some("crm"));
    }

    #[test]
    fn refused_is_connect_and_temporary() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = map_error("crm", Phase::Connect, sqlx::Error::Io(io));
        assert_eq!(err.kind(), ErrorKind::Connect);
        assert!(err.is_temporary());
    }
}
