//! [`ExternalSource::execute_batch`](extdata_core::ExternalSource::execute_batch): the
//! statements of a batch in one transaction on one pooled connection.
//!
//! The transaction is opened through sqlx's `Transaction`, so that sqlx counts it: a
//! connection that somehow still holds it when it is released is closed by the pool
//! (`Pool::release` checks `is_in_transaction`), never handed to the next call.

use extdata_core::{Dialect, QueryOptions, Statement};
use sqlx::Connection as _;
use tokio::time::Instant;

use crate::{Budget, Call, PostgresSource, Prepared, connect, pool};

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
        let budget = Budget::from_now("batch", options.timeout_or(self.config.query_timeout));
        let total = prepared.len();
        let call = Call::Account {
            statement_timeout_ms: connect::statement_timeout_ms(budget.timeout),
            several: total > 1,
        };
        let read_only = self.config.read_only;
        // On timeout `bounded` cancels the running statement on the server and closes
        // the connection, which ends the transaction there; it never returns to the pool.
        let (outcome, conn) = self
            .bounded(budget, call, async |c: &mut pool::Conn| {
                if read_only {
                    read_only_batch(c, &prepared).await
                } else {
                    batch_in_transaction(c, &prepared, budget.deadline).await
                }
            })
            .await?;
        conn.end_call();
        outcome.map_err(|failed| match failed {
            Some((index, e)) => crate::error::map_error(self.name(), crate::error::Phase::Query, e)
                .context(format!(
                    "statement {} of {total} in the batch (the batch was rolled back)",
                    index + 1
                )),
            None => self.timeout_error("batch", budget.timeout),
        })
    }
}

/// A batch's outcome: each statement's rows affected, or which one failed (`None`: the
/// deadline passed before the commit).
type BatchOutcome = Result<Vec<u64>, Option<(usize, sqlx::Error)>>;

/// The statements of a batch in a transaction of their own, committed only when every
/// one succeeded before `deadline`.
async fn batch_in_transaction(
    conn: &mut pool::Conn,
    prepared: &[Prepared],
    deadline: Instant,
) -> Result<BatchOutcome, sqlx::Error> {
    let mut tx = conn.raw.begin().await?;
    let mut affected = Vec::with_capacity(prepared.len());
    for (index, statement) in prepared.iter().enumerate() {
        match run(&mut tx, statement).await {
            Ok(rows) => affected.push(rows),
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) => {
                // The connection is gone (and the transaction with it): `bounded`
                // discards it.
                return Err(e);
            }
            Err(e) => {
                // A failed rollback leaves sqlx counting the transaction: the pool then
                // closes the connection instead of reusing it.
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
}

/// The statements of a batch on a `read_only` connector, inside the call's read-only
/// transaction (which the end of the call rolls back). Between two statements a
/// `SAVEPOINT` checks that the transaction is still open: one that a statement ended
/// (`PREPARE TRANSACTION`, or a `COMMIT` the first-keyword check missed) would let the
/// next statement run outside it, in a session whose defaults the ended transaction may
/// have changed.
async fn read_only_batch(
    conn: &mut pool::Conn,
    prepared: &[Prepared],
) -> Result<BatchOutcome, sqlx::Error> {
    let mut affected = Vec::with_capacity(prepared.len());
    for (index, statement) in prepared.iter().enumerate() {
        if index > 0 {
            sqlx::raw_sql("SAVEPOINT extdata_batch; RELEASE SAVEPOINT extdata_batch")
                .execute(&mut conn.raw)
                .await?;
        }
        match statement.query(&statement.sql).execute(&mut conn.raw).await {
            Ok(result) => affected.push(result.rows_affected()),
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) => return Err(e),
            Err(e) => return Ok(Err(Some((index, e)))),
        }
    }
    Ok(Ok(affected))
}

async fn run(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    statement: &Prepared,
) -> Result<u64, sqlx::Error> {
    let result = statement.query(&statement.sql).execute(&mut **tx).await?;
    Ok(result.rows_affected())
}
