//! [`ExternalSource::execute_batch`](extdata_core::ExternalSource::execute_batch): the
//! statements of a batch in one transaction on one pooled connection.
//!
//! sqlx's pool returns a connection after a mere ping, whatever the server's
//! transaction state, so the transaction is ended here on every path: `COMMIT`, or
//! `ROLLBACK` after an error, or — after a timeout or when the call is dropped —
//! `KILL QUERY` then `ROLLBACK` in the background; a connection where that fails is
//! closed (the server rolls back) instead of returned.

use std::sync::Arc;

use extdata_core::driver::timeout_error;
use extdata_core::{Dialect, QueryOptions, Result, Statement};
use sqlx::AssertSqlSafe;
use sqlx::mysql::MySqlConnection;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::classify::Effect;
use crate::error::{Stage, is_connection_broken};
use crate::pool::{DRAIN_TIMEOUT, Inner, Lease, Recover, kill_wait};

/// First keywords refused inside a batch: they end or nest the batch's own transaction
/// (MySQL commits implicitly before `BEGIN`, `START TRANSACTION` and `LOCK TABLES`), so
/// the statements after them would no longer be all-or-nothing.
const TRANSACTION_CONTROL: &[&str] = &[
    "begin", "start", "commit", "rollback", "xa", "lock", "unlock",
];

/// Why a batch did not commit.
enum Failure {
    /// Statement `index` failed.
    Statement(usize, sqlx::Error),
    /// `START TRANSACTION` or `COMMIT` failed.
    Control(sqlx::Error),
    /// The deadline passed between statements.
    Late,
}

/// A lease that may be inside a transaction. Dropped while it still holds the lease
/// (the call's future was dropped), it ends the transaction in the background.
struct InTransaction {
    lease: Option<Lease>,
    inner: Arc<Inner>,
}

impl InTransaction {
    fn lease(&mut self) -> &mut Lease {
        self.lease
            .as_mut()
            .expect("the lease is present until the transaction is ended")
    }

    /// `ROLLBACK` within [`DRAIN_TIMEOUT`]; the connection is closed when that fails.
    async fn roll_back(mut self) {
        if let Some(mut lease) = self.lease.take() {
            let done =
                tokio::time::timeout(DRAIN_TIMEOUT, control(&mut lease.conn, "ROLLBACK")).await;
            if !matches!(done, Ok(Ok(_))) {
                lease.conn.close_on_drop();
            }
        }
    }

    /// The transaction ended (committed or rolled back by the server): the connection
    /// goes back to the pool.
    fn ended(mut self) {
        drop(self.lease.take());
    }

    /// Closes the connection (the server rolls back).
    fn close(mut self) {
        if let Some(mut lease) = self.lease.take() {
            lease.conn.close_on_drop();
        }
    }

    /// Stops the running statement with `KILL QUERY`, waiting until at most
    /// [`KILL_WAIT`](crate::KILL_WAIT) after the batch's `deadline` for it to go out; the rollback
    /// finishes in the background.
    async fn cancel(mut self, deadline: Instant) {
        if let Some(lease) = self.lease.take() {
            let (tx, rx) = oneshot::channel();
            tokio::spawn(
                self.inner
                    .clone()
                    .cancel(lease, Some(tx), Recover::RollBack),
            );
            let _ = tokio::time::timeout(kill_wait(deadline), rx).await;
        }
    }
}

impl Drop for InTransaction {
    fn drop(&mut self) {
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(self.inner.clone().cancel(lease, None, Recover::RollBack));
            }
            Err(_) => lease.conn.close_on_drop(),
        }
    }
}

/// Sends a transaction-control statement as plain text (not prepared).
async fn control(
    conn: &mut MySqlConnection,
    sql: &'static str,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await?;
    Ok(())
}

impl Inner {
    /// Runs `statements` in one transaction; see the trait's documentation.
    pub(crate) async fn run_batch(
        self: &Arc<Self>,
        statements: &[Statement],
        options: &QueryOptions,
    ) -> Result<Vec<u64>> {
        self.lifecycle.check_open(&self.config.name)?;
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        // A read-only connector's refusal comes first: it covers transaction control too.
        let mut effect = Effect::Plain;
        for statement in statements {
            if self.admit(statement)? == Effect::Session {
                effect = Effect::Session;
            }
        }
        Statement::refuse_transaction_control(statements, Dialect::MySql, TRANSACTION_CONTROL)
            .map_err(|e| e.with_connector(self.config.name.clone()))?;
        let rendered = statements
            .iter()
            .map(|statement| self.render(statement))
            .collect::<Result<Vec<_>>>()?;
        let total = rendered.len();
        let timeout = options.timeout_or(self.config.query_timeout);
        let deadline = Instant::now() + timeout;
        let mut lease = self
            .lease(deadline, self.session.guard_for(Some(timeout)))
            .await?;
        lease.ran(effect);
        // A read-only connector's lease is already in its read-only transaction, which
        // is rolled back, never committed.
        let read_only = self.session.read_only;
        let mut tx = InTransaction {
            lease: Some(lease),
            inner: self.clone(),
        };
        let outcome = tokio::time::timeout_at(deadline, async {
            let conn = &mut *tx.lease().conn;
            if !read_only {
                control(conn, "START TRANSACTION")
                    .await
                    .map_err(Failure::Control)?;
            }
            let mut affected = Vec::with_capacity(total);
            for (index, (sql, args)) in rendered.into_iter().enumerate() {
                let done = sqlx::query_with(AssertSqlSafe(sql), args)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| Failure::Statement(index, e))?;
                affected.push(done.rows_affected());
            }
            // A statement that ended right at the deadline must not be committed.
            if Instant::now() >= deadline {
                return Err(Failure::Late);
            }
            let end = if read_only { "ROLLBACK" } else { "COMMIT" };
            control(conn, end).await.map_err(Failure::Control)?;
            Ok(affected)
        })
        .await;
        let timed_out = || {
            timeout_error(&self.config.name, "batch", timeout).context("the batch was rolled back")
        };
        match outcome {
            Ok(Ok(affected)) => {
                tx.ended();
                Ok(affected)
            }
            Ok(Err(Failure::Late)) => {
                tx.roll_back().await;
                Err(timed_out())
            }
            Ok(Err(Failure::Statement(_, e) | Failure::Control(e))) if is_connection_broken(&e) => {
                tx.close();
                Err(self.map(Stage::Statement, e))
            }
            Ok(Err(Failure::Statement(index, e))) => {
                tx.roll_back().await;
                Err(self.map(Stage::Statement, e).context(format!(
                    "statement {} of {total} in the batch (the batch was rolled back)",
                    index + 1
                )))
            }
            Ok(Err(Failure::Control(e))) => {
                tx.roll_back().await;
                Err(self
                    .map(Stage::Statement, e)
                    .context("the batch was rolled back"))
            }
            Err(_) => {
                tx.cancel(deadline).await;
                Err(timed_out())
            }
        }
    }
}
