//! [`ExternalSource::execute_batch`](extdata_core::ExternalSource::execute_batch): the
//! statements of a batch in one transaction on one pooled connection.
//!
//! The transaction is opened with `BEGIN IMMEDIATE`, so the write lock is taken up front
//! (no deadlock when two writers would both upgrade a read lock). It is driven with plain
//! statements rather than sqlx's `Transaction`: an interrupted statement (the call's
//! timeout) can make SQLite roll the transaction back by itself, which sqlx's
//! transaction depth would not notice. On every failure the connection is asked whether
//! a transaction is still open and, if so, rolled back before it returns to the pool; a
//! call that cannot be stopped in time loses its connection (see `run::bounded`).

use std::time::Instant;

use extdata_core::{Dialect, QueryOptions, Result, Statement};
use futures::FutureExt;
use sqlx::{AssertSqlSafe, Executor as _};

use crate::{Prepared, SqliteSource, run};

/// First keywords refused inside a batch: they would end (or nest) the batch's own
/// transaction, so the statements after them would no longer be all-or-nothing.
const TRANSACTION_CONTROL: &[&str] =
    &["begin", "commit", "end", "rollback", "savepoint", "release"];

impl SqliteSource {
    /// Runs `statements` in one transaction; see the trait's documentation.
    pub(crate) async fn run_batch(
        &self,
        statements: &[Statement],
        options: &QueryOptions,
    ) -> Result<Vec<u64>> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        Statement::refuse_transaction_control(statements, Dialect::Sqlite, TRANSACTION_CONTROL)
            .map_err(|e| e.with_connector(&self.name))?;
        let prepared = statements
            .iter()
            .map(|statement| self.prepare(statement))
            .collect::<Result<Vec<_>>>()?;
        let total = prepared.len();
        let discard = prepared.iter().any(|p| p.discard_connection);
        let timeout = options.timeout_or(self.query_timeout);
        let started = Instant::now();
        let deadline = started + timeout;
        let conn = self
            .connection("execute_batch", timeout, deadline, discard)
            .await?;
        let outcome = run::bounded(
            conn,
            &self.shared,
            "execute_batch",
            timeout,
            deadline,
            move |conn| {
                async move {
                    conn.execute("BEGIN IMMEDIATE").await?;
                    let mut affected = Vec::with_capacity(total);
                    for (index, Prepared { sql, args, .. }) in prepared.into_iter().enumerate() {
                        match sqlx::query_with(AssertSqlSafe(sql), args)
                            .execute(&mut *conn)
                            .await
                        {
                            Ok(done) => affected.push(done.rows_affected()),
                            Err(e) => {
                                // An interrupted statement may already have rolled the
                                // transaction back inside SQLite: ask before rolling back.
                                run::roll_back_open_transaction(conn).await?;
                                return Ok(Err(Some((index, e))));
                            }
                        }
                    }
                    // A statement that ended right at the deadline must not be committed.
                    if Instant::now() >= deadline {
                        run::roll_back_open_transaction(conn).await?;
                        return Ok(Err(None));
                    }
                    if let Err(e) = conn.execute("COMMIT").await {
                        run::roll_back_open_transaction(conn).await?;
                        return Err(e);
                    }
                    Ok(Ok(affected))
                }
                .boxed()
            },
        )
        .await?;
        outcome.map_err(|failed| match failed {
            Some((index, e)) => self
                .shared
                .map(e, "execute_batch", timeout, started)
                .context(format!(
                    "statement {} of {total} in the batch (the batch was rolled back)",
                    index + 1
                )),
            None => self.shared.timeout("execute_batch", timeout),
        })
    }
}
