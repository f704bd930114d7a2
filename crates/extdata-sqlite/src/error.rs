//! sqlx / SQLite errors → [`extdata_core::Error`], classified by SQLite's result code.
//!
//! | SQLite result code (primary)                        | `ErrorKind`                                 |
//! |-----------------------------------------------------|---------------------------------------------|
//! | `SQLITE_INTERRUPT` (our deadline or cancel fired)   | `Timeout` (`Closed` while the source closes) |
//! | `SQLITE_BUSY`, `SQLITE_LOCKED`                      | `Timeout` (a lock was not released in time) |
//! | `SQLITE_READONLY`                                   | `ReadOnly`                                  |
//! | `SQLITE_CANTOPEN`, `SQLITE_NOTADB`, `SQLITE_CORRUPT`, `SQLITE_PERM`, `SQLITE_IOERR`, `SQLITE_FULL` | `Database` |
//! | `SQLITE_RANGE`, `SQLITE_MISMATCH`                   | `Parameter`                                 |
//! | `SQLITE_ERROR` (syntax, missing table), `SQLITE_CONSTRAINT`, `SQLITE_TOOBIG`, `SQLITE_ABORT`, `SQLITE_AUTH`, others | `Query` |
//! | `SQLITE_NOMEM`, `SQLITE_INTERNAL`, `SQLITE_MISUSE`  | `Internal`                                  |
//!
//! sqlx's own errors: pool timed out → `Timeout`, pool closed → `Closed`, worker thread
//! gone → `Connect`, decode → `Decode`, encode → `Parameter`.

use std::time::Duration;

use extdata_core::{Error, ErrorKind};

/// SQLite's primary result codes (<https://www.sqlite.org/rescode.html>).
mod code {
    pub(super) const INTERNAL: i32 = 2;
    pub(super) const PERM: i32 = 3;
    pub(super) const BUSY: i32 = 5;
    pub(super) const LOCKED: i32 = 6;
    pub(super) const NOMEM: i32 = 7;
    pub(super) const READONLY: i32 = 8;
    pub(super) const INTERRUPT: i32 = 9;
    pub(super) const IOERR: i32 = 10;
    pub(super) const CORRUPT: i32 = 11;
    pub(super) const FULL: i32 = 13;
    pub(super) const CANTOPEN: i32 = 14;
    pub(super) const MISMATCH: i32 = 20;
    pub(super) const MISUSE: i32 = 21;
    pub(super) const RANGE: i32 = 25;
    pub(super) const NOTADB: i32 = 26;
}

/// What was going on when an error happened, to word and classify it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// The connector's name.
    pub(crate) connector: &'a str,
    /// `query`, `execute`, `describe`, `ping`, `stream`.
    pub(crate) operation: &'static str,
    /// The bound on the call, for timeout messages.
    pub(crate) timeout: Duration,
    /// The database file (or `:memory:`), for open errors.
    pub(crate) database: &'a str,
    /// Whether the source is closing (an interrupt then means `Closed`).
    pub(crate) closing: bool,
}

/// Maps a sqlx error.
pub(crate) fn map(error: sqlx::Error, context: Context<'_>) -> Error {
    let mapped = match &error {
        sqlx::Error::Database(db) => {
            let extended: Option<i32> = db.code().and_then(|c| c.parse().ok());
            let primary = extended.map(|c| c & 0xff);
            let message = db.message().to_owned();
            let mut mapped = classify(primary, &message, context);
            if let Some(code) = extended {
                mapped = mapped.with_sql_state(code.to_string());
            }
            mapped
        }
        sqlx::Error::PoolTimedOut => Error::new(
            ErrorKind::Timeout,
            format!(
                "{}: no pooled SQLite connection became free in time (all are busy; raise \
                 pool.max_size or pool.acquire_timeout)",
                context.operation
            ),
        ),
        sqlx::Error::PoolClosed => Error::new(ErrorKind::Closed, "the source is closed"),
        sqlx::Error::WorkerCrashed => Error::new(
            ErrorKind::Connect,
            "the SQLite connection's worker thread stopped; the connection is discarded",
        ),
        sqlx::Error::Io(io) => Error::new(
            ErrorKind::Connect,
            format!("cannot open SQLite database `{}`: {io}", context.database),
        ),
        sqlx::Error::Configuration(e) => {
            Error::new(ErrorKind::Config, format!("invalid SQLite setting: {e}"))
        }
        sqlx::Error::Decode(e) | sqlx::Error::ColumnDecode { source: e, .. } => Error::new(
            ErrorKind::Decode,
            format!("cannot decode a SQLite value: {e}"),
        ),
        sqlx::Error::Encode(e) => Error::new(
            ErrorKind::Parameter,
            format!("cannot bind a parameter: {e}"),
        ),
        other => Error::new(
            ErrorKind::Internal,
            format!(
                "{}: unexpected SQLite driver error: {other}",
                context.operation
            ),
        ),
    };
    mapped.with_connector(context.connector).with_source(error)
}

fn classify(primary: Option<i32>, message: &str, context: Context<'_>) -> Error {
    let op = context.operation;
    match primary {
        Some(code::INTERRUPT) if context.closing => {
            Error::new(ErrorKind::Closed, format!("{op}: the source was closed"))
        }
        Some(code::INTERRUPT) => Error::timeout(op, context.timeout)
            .context("SQLite interrupted the statement")
            .with_temporary(true),
        Some(code::BUSY | code::LOCKED) => Error::new(
            ErrorKind::Timeout,
            format!(
                "{op}: {message} (another connection holds a lock; raise options.busy_timeout \
                 or use journal_mode=wal)"
            ),
        ),
        Some(code::READONLY) => Error::new(ErrorKind::ReadOnly, format!("{op}: {message}")),
        Some(code::CANTOPEN) => Error::new(
            ErrorKind::Database,
            format!(
                "cannot open SQLite database `{}`: {message}",
                context.database
            ),
        ),
        Some(code::NOTADB | code::CORRUPT | code::PERM | code::IOERR | code::FULL) => Error::new(
            ErrorKind::Database,
            format!("SQLite database `{}`: {message}", context.database),
        ),
        Some(code::RANGE | code::MISMATCH) => {
            Error::new(ErrorKind::Parameter, format!("{op}: {message}"))
        }
        Some(code::NOMEM | code::INTERNAL | code::MISUSE) => {
            Error::new(ErrorKind::Internal, format!("{op}: {message}"))
        }
        _ => Error::new(ErrorKind::Query, format!("{op}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(closing: bool) -> Context<'static> {
        Context {
            connector: "local",
            operation: "query",
            timeout: Duration::from_secs(2),
            database: "data.db",
            closing,
        }
    }

    #[test]
    fn result_codes_map_to_kinds() {
        let cases = [
            (Some(code::INTERRUPT), ErrorKind::Timeout),
            (Some(code::BUSY), ErrorKind::Timeout),
            (Some(code::LOCKED), ErrorKind::Timeout),
            (Some(code::READONLY), ErrorKind::ReadOnly),
            (Some(code::CANTOPEN), ErrorKind::Database),
            (Some(code::NOTADB), ErrorKind::Database),
            (Some(code::RANGE), ErrorKind::Parameter),
            (Some(1), ErrorKind::Query),
            (Some(19), ErrorKind::Query),
            (Some(code::NOMEM), ErrorKind::Internal),
            (None, ErrorKind::Query),
        ];
        for (code, kind) in cases {
            assert_eq!(
                classify(code, "msg", context(false)).kind(),
                kind,
                "{code:?}"
            );
        }
        assert_eq!(
            classify(Some(code::INTERRUPT), "interrupted", context(true)).kind(),
            ErrorKind::Closed
        );
    }

    #[test]
    fn timeouts_say_how_long_and_are_temporary() {
        let err = classify(Some(code::INTERRUPT), "interrupted", context(false));
        assert!(err.is_temporary());
        assert!(err.message().contains("2s"), "{err}");
        let err = classify(
            Some(code::CANTOPEN),
            "unable to open database file",
            context(false),
        );
        assert!(err.message().contains("data.db"), "{err}");
        assert!(err.message().contains("unable to open"), "{err}");
    }

    #[test]
    fn pool_errors_are_classified_and_named() {
        let err = map(sqlx::Error::PoolTimedOut, context(false));
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(err.connector(), Some("local"));
        assert_eq!(
            map(sqlx::Error::PoolClosed, context(false)).kind(),
            ErrorKind::Closed
        );
    }
}
