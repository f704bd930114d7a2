//! [`ExternalSource::execute_batch`](extdata_core::ExternalSource::execute_batch): the
//! statements of a batch in one transaction on one pooled connection.
//!
//! The transaction is opened through sqlx's `Transaction`, so that sqlx counts it: a
//! connection that somehow still holds it when it is released is closed by the pool
//! (`Pool::release` checks `is_in_transaction`), never handed to the next call.

use extdata_core::{Dialect, QueryOptions, Statement};
use sqlx::Connection as _;
use tokio::time::Instant;

use crate::{PostgresSource, Prepared, connect, pool};

/// First keywords refused inside a batch: they would end (or nest) the batch's own
/// transaction, so the statements after them would no longer be all-or-nothing.
const TRANSACTION_CONTROL: &[&str] = &["begin", "start", "commit", "end", "rollback", "abort"];

impl PostgresSource {
    /// Runs `statements` in one transaction; see the trait's documentation.
    pub(crate) async fn run_batch(
        &self,
        statements: &[Statement],
        options: &QueryOptions,
    ) -> extdata_core::Result<Vec<u64>> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        Statement::refuse_transaction_control(statements, Dialect::Postgres, TRANSACTION_CONTROL)
            .map_err(|e| e.with_connector(self.name()))?;
        let prepared = statements
            .iter()
            .map(|statement| self.prepare_statement(statement))
            .collect::<extdata_core::Result<Vec<_>>>()?;
        let timeout = options.timeout_or(self.config.query_timeout);
        let deadline = Instant::now() + timeout;
        let guard = connect::statement_timeout_ms(timeout);
        let conn = self.pool().await?.acquire(deadline).await?;
        let total = prepared.len();
        // On timeout `bounded` cancels the running statement on the server and closes
        // the connection, which ends the transaction there; it never returns to the pool.
        let (outcome, _conn) = self
            .bounded(
                conn,
                deadline,
                timeout,
                "batch",
                async |c: &mut pool::Conn| {
                    Self::set_guard(c, guard).await?;
                    let mut tx = c.raw.begin().await?;
                    let mut affected = Vec::with_capacity(total);
                    for (index, statement) in prepared.iter().enumerate() {
                        match run(&mut tx, statement).await {
                            Ok(rows) => affected.push(rows),
                            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) => {
                                // The connection is gone (and the transaction with it):
                                // `bounded` discards it.
                                return Err(e);
                            }
                            Err(e) => {
                                // A failed rollback leaves sqlx counting the transaction:
                                // the pool then closes the connection instead of reusing it.
                                let _ = tx.rollback().await;
                                return Ok(Err(Some((index, e))));
                            }
                        }
                    }
                    // A statement that ended right at the deadline must not be committed.
                    if Instant::now() >= deadline {
                        let _ = tx.rollback().await;
                        return Ok(Err(None));
                    }
                    tx.commit().await?;
                    Ok(Ok(affected))
                },
            )
            .await?;
        outcome.map_err(|failed| match failed {
            Some((index, e)) => crate::error::convert(self.name(), crate::error::Phase::Query, e)
                .context(format!(
                    "statement {} of {total} in the batch (the batch was rolled back)",
                    index + 1
                )),
            None => self.timeout_error("batch", timeout),
        })
    }
}

async fn run(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    statement: &Prepared,
) -> Result<u64, sqlx::Error> {
    let result = statement.query(&statement.sql).execute(&mut **tx).await?;
    Ok(result.rows_affected())
}
