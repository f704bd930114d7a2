//! sqlx / SQLite errors → [`extdata_core::Error`], classified by SQLite's result code.
//!
//! | SQLite result code (primary)                        | `ErrorKind`                                 |
//! |-----------------------------------------------------|---------------------------------------------|
//! | `SQLITE_INTERRUPT` (our deadline or cancel fired)   | `Timeout` (`Closed` while the source closes) |
//! | `SQLITE_BUSY`, `SQLITE_LOCKED` after waiting `busy_timeout` | `Timeout` (a lock was not released in time) |
//! | `SQLITE_BUSY`, `SQLITE_LOCKED` sooner (no wait: see below) | `Query`, temporary                   |
//! | `SQLITE_READONLY`                                   | `ReadOnly`                                  |
//! | `SQLITE_CANTOPEN` for a file that does not exist (and was not to be created) | `Database`: `no such database file` |
//! | `SQLITE_CANTOPEN`, `SQLITE_NOTADB`, `SQLITE_CORRUPT`, `SQLITE_PERM`, `SQLITE_IOERR`, `SQLITE_FULL` | `Database` |
//! | `SQLITE_RANGE`, `SQLITE_MISMATCH`                   | `Parameter`                                 |
//! | `SQLITE_ERROR` (syntax, missing table), `SQLITE_CONSTRAINT`, `SQLITE_TOOBIG`, `SQLITE_ABORT`, `SQLITE_AUTH`, others | `Query` |
//! | `SQLITE_NOMEM`, `SQLITE_INTERNAL`, `SQLITE_MISUSE`  | `Internal`                                  |
//!
//! SQLite answers some lock conflicts at once, without its busy handler: a journal-mode
//! switch into or out of WAL, a read transaction that cannot become a write one
//! (deadlock avoidance, `SQLITE_BUSY_SNAPSHOT`), a shared-cache table lock
//! (`SQLITE_LOCKED_SHAREDCACHE`). No timeout ran out, so those are not `Timeout`; the call
//! may succeed when retried.
//!
//! sqlx's own errors: pool timed out → `Timeout`, pool closed → `Closed`, worker thread
//! gone → `Connect`, decode → `Decode`, encode → `Parameter`.

use std::time::Duration;

use extdata_core::{Error, ErrorKind};

use crate::connect::{MEMORY, OnMissing};

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
    /// What opening the file does when it does not exist: tells "no such database file"
    /// from other reasons SQLite cannot open one.
    pub(crate) on_missing: OnMissing,
    /// Whether the source is closing (an interrupt then means `Closed`).
    pub(crate) closing: bool,
    /// How long the failed work had run: tells a lock wait that ran out from a lock
    /// conflict SQLite reported at once.
    pub(crate) waited: Duration,
    /// How long SQLite waits for another connection's lock.
    pub(crate) busy_timeout: Duration,
}

/// Whether `error` is SQLite's `SQLITE_BUSY` or `SQLITE_LOCKED` (any extended code).
pub(crate) fn is_lock_conflict(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    let primary = db
        .code()
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff);
    matches!(primary, Some(code::BUSY | code::LOCKED))
}

/// Maps a sqlx error.
pub(crate) fn map_error(error: sqlx::Error, context: Context<'_>) -> Error {
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
        // SQLite's busy handler sleeps until the busy timeout is nearly used up (it may
        // skip the last short sleep): a tenth of slack.
        Some(code::BUSY | code::LOCKED)
            if !context.busy_timeout.is_zero()
                && context.waited >= context.busy_timeout.mul_f32(0.9) =>
        {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "{op}: {message} (another connection held a lock for longer than the busy \
                     timeout of {:?}; raise options.busy_timeout or use journal_mode=wal)",
                    context.busy_timeout
                ),
            )
        }
        Some(code::BUSY | code::LOCKED) => Error::new(
            ErrorKind::Query,
            format!(
                "{op}: {message} (a lock conflict with another connection that SQLite does not \
                 wait out, e.g. two transactions that both read and then write; retry the call)"
            ),
        )
        .with_temporary(true),
        Some(code::READONLY) => Error::new(ErrorKind::ReadOnly, format!("{op}: {message}")),
        Some(code::CANTOPEN) if is_missing(context) => {
            let what_to_do = match context.on_missing {
                OnMissing::FailReadOnly => {
                    "check the path (a read-only connector never creates a database)"
                }
                _ => {
                    "check the path, or set the option `mode=rwc` to create a new, empty \
                     database there"
                }
            };
            Error::new(
                ErrorKind::Database,
                format!(
                    "no such database file `{}` (field `database`): {what_to_do}",
                    context.database
                ),
            )
        }
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

/// Whether `SQLITE_CANTOPEN` came from a file that is not there and was not to be created
/// (SQLite's own text, `unable to open database file`, does not tell).
fn is_missing(context: Context<'_>) -> bool {
    context.on_missing != OnMissing::Create
        && context.database != MEMORY
        && std::fs::metadata(context.database)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
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
            on_missing: OnMissing::Create,
            closing,
            waited: Duration::from_millis(1),
            busy_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn result_codes_map_to_kinds() {
        let cases = [
            (Some(code::INTERRUPT), ErrorKind::Timeout),
            (Some(code::BUSY), ErrorKind::Query),
            (Some(code::LOCKED), ErrorKind::Query),
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
    fn lock_conflicts_are_timeouts_only_when_the_busy_timeout_ran_out() {
        let waited = |waited: Duration, busy_timeout: Duration| Context {
            waited,
            busy_timeout,
            ..context(false)
        };
        let two = Duration::from_secs(2);
        for code in [
            code::BUSY,
            code::LOCKED,
            517, /* SQLITE_BUSY_SNAPSHOT */
        ] {
            let at_once = classify(
                Some(code & 0xff),
                "database is locked",
                waited(Duration::ZERO, two),
            );
            assert_eq!(at_once.kind(), ErrorKind::Query, "{at_once}");
            assert!(at_once.is_temporary());
            assert!(
                at_once.message().contains("database is locked"),
                "{at_once}"
            );

            let ran_out = classify(Some(code & 0xff), "database is locked", waited(two, two));
            assert_eq!(ran_out.kind(), ErrorKind::Timeout, "{ran_out}");
            assert!(ran_out.is_temporary());
            assert!(ran_out.message().contains("2s"), "{ran_out}");
        }
        // busy_timeout=0: SQLite never waits, so no timeout ran out.
        let never = classify(
            Some(code::BUSY),
            "database is locked",
            waited(two, Duration::ZERO),
        );
        assert_eq!(never.kind(), ErrorKind::Query, "{never}");
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
    fn a_missing_file_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.db");
        let path = path.to_str().unwrap();
        let open = |on_missing| {
            classify(
                Some(code::CANTOPEN),
                "unable to open database file",
                Context {
                    database: path,
                    on_missing,
                    ..context(false)
                },
            )
        };
        let error = open(OnMissing::Fail);
        assert_eq!(error.kind(), ErrorKind::Database);
        assert!(!error.is_temporary());
        for expected in [
            "no such database file",
            "typo.db",
            "field `database`",
            "mode=rwc",
        ] {
            assert!(error.message().contains(expected), "{expected}: {error}");
        }
        let error = open(OnMissing::FailReadOnly);
        assert!(error.message().contains("no such database file"), "{error}");
        assert!(!error.message().contains("mode=rwc"), "{error}");
        // Created when missing: SQLite failed for another reason (a missing directory,
        // permissions), which it words itself.
        let error = open(OnMissing::Create);
        assert!(error.message().contains("unable to open"), "{error}");
        // The file is there: not a missing file, whatever the mode.
        std::fs::write(path, b"").unwrap();
        let error = open(OnMissing::Fail);
        assert!(!error.message().contains("no such"), "{error}");
    }

    #[test]
    fn pool_errors_are_classified_and_named() {
        let err = map_error(sqlx::Error::PoolTimedOut, context(false));
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(err.connector(), Some("local"));
        assert_eq!(
            map_error(sqlx::Error::PoolClosed, context(false)).kind(),
            ErrorKind::Closed
        );
    }
}
