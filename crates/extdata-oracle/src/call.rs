//! One call on a blocking thread: the statement prepared and bound, the connection's
//! call timeout set, and the connector's timer that breaks the call on the server
//! (`OCIBreak`) when it fires; a read-only connector's calls run inside
//! `SET TRANSACTION READ ONLY`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool::managed::Object;
use extdata_core::driver::timeout_error;
use extdata_core::{Dialect, Error, ErrorKind, Result, Statement};
use oracle::sql_type::ToSql;
use oracle::{Connection, StatementType};
use tokio::time::Instant;

use crate::error::{Stage, code_of, is_fatal, map_error};
use crate::pool::{CALL_TIMEOUT_MARGIN, Inner, Manager};
use crate::types::{self, Bind};

/// How long a timed-out call waits for the broken statement to end before returning
/// (its connection is discarded either way).
const BREAK_WAIT: Duration = Duration::from_secs(2);

/// Whether a call was broken by the connector's timer, shared by the timer and the
/// thread running the call so that exactly one of them decides.
#[derive(Debug, Default)]
pub(crate) struct CallGuard {
    phase: Mutex<Phase>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Running,
    Done,
    Broken,
}

impl CallGuard {
    /// The timer fired: returns `true` when the call is still running and must be
    /// broken (it is then marked so, and its connection will be discarded).
    pub(crate) fn try_break(&self) -> bool {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        if *phase == Phase::Running {
            *phase = Phase::Broken;
            true
        } else {
            false
        }
    }

    /// The call ended: returns `true` when the timer broke it.
    pub(crate) fn finish(&self) -> bool {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        if *phase == Phase::Running {
            *phase = Phase::Done;
        }
        *phase == Phase::Broken
    }

    pub(crate) fn was_broken(&self) -> bool {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) == Phase::Broken
    }
}

/// Breaks the running call of `conn` from another blocking thread.
pub(crate) fn break_call(conn: Arc<Connection>) {
    tokio::task::spawn_blocking(move || {
        if let Err(e) = conn.break_execution() {
            tracing::debug!(error = %e, "break_execution failed; the call timeout will stop the call");
        }
    });
}

/// A statement ready to run on a blocking thread.
pub(crate) struct Prepared {
    pub(crate) sql: String,
    pub(crate) binds: Vec<Bind>,
}

impl Prepared {
    pub(crate) fn params(&self) -> Vec<&dyn ToSql> {
        self.binds.iter().map(|b| b as &dyn ToSql).collect()
    }
}

/// What a blocking call failed with.
pub(crate) enum Failure {
    Oracle(oracle::Error),
    Ours(Error),
}

impl From<oracle::Error> for Failure {
    fn from(e: oracle::Error) -> Self {
        Failure::Oracle(e)
    }
}

impl Inner {
    pub(crate) fn prepare(&self, statement: &Statement) -> Result<Prepared> {
        let rendered = statement
            .render(Dialect::Oracle)
            .map_err(|e| e.with_connector(self.config.name.clone()))?;
        let binds = rendered
            .params
            .iter()
            .map(types::bind)
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.with_connector(self.config.name.clone()))?;
        Ok(Prepared {
            sql: rendered.sql,
            binds,
        })
    }

    pub(crate) fn map(&self, failure: Failure, broken_by_us: bool) -> Error {
        match failure {
            Failure::Ours(e) => e,
            Failure::Oracle(e) => map_error(&self.config, Stage::Statement, &e, broken_by_us),
        }
    }

    /// Runs `work` on a blocking thread with a pooled connection, bounded by
    /// `timeout`: when it fires the call is broken and its connection discarded.
    pub(crate) async fn run<T, F>(&self, operation: &str, timeout: Duration, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> std::result::Result<T, Failure> + Send + 'static,
    {
        let started = Instant::now();
        let deadline = started + timeout;
        let object = self.acquire(deadline, timeout).await?;
        let conn = object.conn.clone();
        let guard = Arc::new(CallGuard::default());
        let call_guard = guard.clone();
        let call_timeout = deadline.saturating_duration_since(Instant::now()) + CALL_TIMEOUT_MARGIN;
        let mut handle = tokio::task::spawn_blocking(move || {
            let mut object = object;
            let result = object
                .conn
                .set_call_timeout(Some(call_timeout))
                .map_err(Failure::from)
                .and_then(|()| work(&object.conn));
            let broken = call_guard.finish();
            discard_if(&mut object, broken, &result);
            result
        });
        let joined = tokio::select! {
            joined = &mut handle => joined,
            () = tokio::time::sleep_until(deadline) => {
                if guard.try_break() {
                    break_call(conn);
                    // Wait a little for the broken call to end, so that the caller
                    // sees the statement gone when it gets the error.
                    let _ = tokio::time::timeout(BREAK_WAIT, &mut handle).await;
                    return Err(timeout_error(&self.config.name, operation, timeout));
                }
                // It finished just now: take its result.
                handle.await
            }
        };
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(failure)) => Err(self.map(failure, guard.was_broken())),
            Err(e) => Err(self.config.error(
                ErrorKind::Internal,
                format!("the {operation} thread failed: {e}"),
            )),
        }
    }
}

/// Closes the connection instead of pooling it after a break, a timeout or a lost
/// connection.
pub(crate) fn discard_if<T>(
    object: &mut Object<Manager>,
    broken_by_us: bool,
    result: &std::result::Result<T, Failure>,
) {
    let fatal = match result {
        Err(Failure::Oracle(e)) => is_fatal(code_of(e)),
        _ => false,
    };
    if broken_by_us || fatal {
        object.broken = true;
    }
}

/// `SET TRANSACTION READ ONLY` for a read-only connector, after refusing what a
/// read-only transaction does not stop (DDL commits first; PL/SQL may commit).
pub(crate) fn begin_call(
    conn: &Connection,
    read_only: bool,
    statement_type: StatementType,
    connector: &str,
) -> std::result::Result<(), Failure> {
    if !read_only {
        return Ok(());
    }
    match statement_type {
        StatementType::Create
        | StatementType::Alter
        | StatementType::Drop
        | StatementType::Begin
        | StatementType::Declare
        | StatementType::Call
        | StatementType::Commit
        | StatementType::Unknown => {
            return Err(Failure::Ours(
                Error::new(
                    ErrorKind::ReadOnly,
                    format!(
                        "the connector is read-only: {} statements are refused (they could commit past a read-only transaction)",
                        statement_kind(statement_type)
                    ),
                )
                .with_connector(connector.to_owned()),
            ));
        }
        _ => {}
    }
    conn.execute("SET TRANSACTION READ ONLY", &[])?;
    Ok(())
}

fn statement_kind(statement_type: StatementType) -> &'static str {
    match statement_type {
        StatementType::Create | StatementType::Alter | StatementType::Drop => "DDL",
        StatementType::Begin | StatementType::Declare => "PL/SQL",
        StatementType::Call => "CALL",
        StatementType::Commit => "COMMIT",
        _ => "unrecognised",
    }
}

/// Ends the read-only transaction of a read-only connector (nothing to keep).
pub(crate) fn end_call(conn: &Connection, read_only: bool) -> std::result::Result<(), Failure> {
    if read_only {
        conn.rollback()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_guard_breaks_only_a_running_call() {
        let guard = CallGuard::default();
        assert!(guard.try_break());
        assert!(!guard.try_break(), "a call is broken once");
        assert!(guard.finish(), "the call learns it was broken");

        let guard = CallGuard::default();
        assert!(!guard.finish());
        assert!(!guard.try_break(), "a finished call is not broken");
        assert!(!guard.was_broken());
    }
}
