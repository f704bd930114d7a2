//! Running an import: stream the query, write batches to the sink, checkpoint the
//! cursor after each durable batch.
//!
//! Cursors are inclusive: the query says `>= :cursor`, so a run reads again the rows at
//! the saved cursor value, and with them any row that arrived later with that same
//! value. The rows at the saved value are remembered in the state store (key and a
//! digest of the row); one read again unchanged is counted as `unchanged` and written to
//! no sink, a new or changed one is imported. A batch is cut only where the cursor
//! value changes, so the rows of one value are committed (and remembered) together.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use extdata::{Error, ErrorKind, QueryOptions, Result, Row, Statement, Value};
use futures::StreamExt as _;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::Jobs;
use crate::config::{ImportJob, ImportMode};
use crate::sink::{self, Sink, dedupe_by_key, key_position, key_text};
use crate::state::{
    Acquired, BatchCommit, BoundaryUpdate, Checkpoint, Claim, Lease, RunCounts, StateStore,
};

/// Rows between progress events.
const PROGRESS_EVERY: u64 = 256;

/// Missing keys of a `full_refresh` run settled (deleted, forgotten) per round.
const MISSING_PER_ROUND: usize = 10_000;

/// How an import retries a run that failed with a temporary error
/// ([`Error::is_temporary`]: a lost connection, a timeout, a refused connect). Each
/// retry resumes from the last checkpoint, in the same run of the history; an error that
/// is not temporary (a query, auth or config error) fails the run at once.
///
/// The waits grow exponentially from `backoff`, up to `max_backoff`, each a random
/// point in the upper half of its step (jitter, so that many imports failing together
/// do not retry together). No retry starts once `max_time` has passed since the run
/// began, nor after `attempts` tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1: no retry).
    pub attempts: u32,
    /// The wait before the first retry; doubled for each one after.
    pub backoff: Duration,
    /// The longest wait between two tries.
    pub max_backoff: Duration,
    /// No retry starts later than this after the run began.
    pub max_time: Duration,
}

impl Default for RetryPolicy {
    /// 5 tries, waits from 1 s doubling up to 1 min, within 10 min.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_time: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The longest wait after try `attempt` (1-based) failed, before jitter.
    pub fn max_delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// The wait after try `attempt` failed: a random point of the upper half of
    /// [`max_delay`](Self::max_delay).
    pub fn delay(&self, attempt: u32) -> Duration {
        let step = self.max_delay(attempt);
        step / 2 + step.mul_f64(random_fraction() / 2.0)
    }
}

/// A random number in [0, 1) (for jitter; not for secrets).
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A stop request shared by the scheduler and the running imports (SIGINT/SIGTERM).
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A stop signal and the handle that raises it.
    pub fn channel() -> (watch::Sender<bool>, Stop) {
        let (tx, rx) = watch::channel(false);
        (tx, Stop(rx))
    }

    /// A signal that is never raised.
    pub fn never() -> Stop {
        let (tx, rx) = watch::channel(false);
        // The sender is leaked so that the receiver never reports it closed.
        std::mem::forget(tx);
        Stop(rx)
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when a stop is asked for (never when the sender is gone without one).
    pub async fn stopped(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What an import reports while it runs (for progress bars and logs).
#[derive(Debug, Clone)]
pub enum ImportEvent {
    /// Rows read so far in this run.
    Rows(u64),
    /// A batch was committed; the run's totals so far.
    Committed(RunCounts),
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The run's number in the import's history (1 for its first run).
    pub run: i64,
    /// What it did.
    pub counts: RunCounts,
    /// Whether a stop request ended it before the end of the result.
    pub stopped: bool,
    /// The cursor after the run.
    pub cursor: Option<Value>,
    /// Tries it took (1 unless a temporary error was retried).
    pub attempts: u32,
    /// How long it took.
    pub elapsed: Duration,
}

/// Renews a lease while its run goes on (every third of the lease time); stops when
/// dropped.
struct Heartbeat(Option<tokio::task::JoinHandle<()>>);

impl Heartbeat {
    fn start(state: &Arc<dyn StateStore>, lease: &Lease) -> Self {
        let Some(lease_time) = state.lease_time().filter(|_| lease.token() > 0) else {
            return Heartbeat(None);
        };
        let (state, token) = (state.clone(), lease.token());
        let (account, job) = (lease.account().to_owned(), lease.job().to_owned());
        Heartbeat(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease_time / 3).await;
                match state.renew(&account, &job, token).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(
                            account = %account,
                            import = %job,
                            token,
                            "this worker lost its lease to another worker; the run's next checkpoint will be refused"
                        );
                        return;
                    }
                    Err(error) => tracing::warn!(
                        account = %account,
                        import = %job,
                        "cannot renew the lease: {error}"
                    ),
                }
            }
        })))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl Jobs {
    /// Runs import `name` once for `account` (see [`Jobs`] for accounts), reporting
    /// progress to `on_event`. A stop request ends the run after the batch being
    /// committed; rows read after the last commit are read again by the next run.
    pub async fn run_import(
        &self,
        account: Option<&str>,
        name: &str,
        stop: Stop,
        on_event: &(dyn Fn(&ImportEvent) + Send + Sync),
    ) -> Result<ImportSummary> {
        let job = self.import(account, name)?;
        self.source(&job.account, &job.connector)?;
        let state = self.state().await?;
        let lease = match state.acquire(&job.account, &job.name, Claim::Now).await? {
            Acquired::Taken(lease) => lease,
            Acquired::Busy { holder, expires_in } => {
                let until = expires_in
                    .map(|d| format!(" for up to {} s more", d.as_secs().max(1)))
                    .unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::Query,
                    format!(
                        "import `{name}` of account `{}` is already running ({holder} holds it{until})",
                        job.account
                    ),
                )
                .with_temporary(true));
            }
            Acquired::Nothing => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("import `{name}`: the state store gave no lease"),
                ));
            }
        };
        self.run_leased(job, lease, stop, on_event).await
    }

    /// Runs `job` under `lease` (renewed while it runs, given back at the end).
    pub(crate) async fn run_leased(
        &self,
        job: &ImportJob,
        lease: Lease,
        stop: Stop,
        on_event: &(dyn Fn(&ImportEvent) + Send + Sync),
    ) -> Result<ImportSummary> {
        let state = self.state().await?;
        let heartbeat = Heartbeat::start(state, &lease);
        // The account labels every call's metrics and is in every log line of the run.
        let span =
            tracing::info_span!("extdata.import", account = %job.account, import = %job.name);
        let run = self.run_under(job, &lease, stop, on_event);
        let result = extdata::for_account(&job.account, run)
            .instrument(span)
            .await;
        drop(heartbeat);
        if let Err(error) = state.release(lease).await {
            // The lease then expires on its own.
            tracing::warn!(account = %job.account, import = %job.name, "{error}");
        }
        result
    }

    async fn run_under(
        &self,
        job: &ImportJob,
        lease: &Lease,
        stop: Stop,
        on_event: &(dyn Fn(&ImportEvent) + Send + Sync),
    ) -> Result<ImportSummary> {
        let state = self.state().await?.as_ref();
        let started_run = state.begin_run(lease).await?;
        let run = started_run.id;
        let prepared = async {
            let source = self.source(&job.account, &job.connector)?;
            let checkpoint = state
                .checkpoint(&job.account, &job.name)
                .await?
                .unwrap_or_default();
            let boundary = match (&job.cursor, &checkpoint.cursor) {
                (Some(_), Some(_)) => state.boundary(&job.account, &job.name).await?,
                _ => HashMap::new(),
            };
            Ok::<_, Error>((source, checkpoint, boundary))
        };
        let (source, checkpoint, boundary) = match prepared.await {
            Ok(prepared) => prepared,
            Err(error) => {
                let message = error.to_string();
                let _ = state
                    .finish_run(run, &RunCounts::default(), false, Some(&message))
                    .await;
                return Err(error);
            }
        };
        if let Some(warning) = job.cursor_warning() {
            tracing::warn!(account = %job.account, import = %job.name, "{warning}");
        }
        let started = Instant::now();
        let mut runner = Runner {
            job,
            state,
            lease,
            run,
            counts: RunCounts::default(),
            checkpoint,
            boundary,
            on_event,
        };
        let mut attempt: u32 = 1;
        let outcome = loop {
            let result = match sink::build(&job.sink) {
                Ok(mut sink) => {
                    let result = runner
                        .run(source.as_ref(), sink.as_mut(), stop.clone())
                        .await;
                    sink.close().await;
                    result
                }
                Err(error) => Err(error),
            };
            let error = match result {
                Err(error) if error.is_temporary() => error,
                other => break other,
            };
            let delay = job.retry.delay(attempt);
            if attempt >= job.retry.attempts || started.elapsed() + delay > job.retry.max_time {
                break Err(if attempt > 1 {
                    error.context(format!("gave up after {attempt} attempts"))
                } else {
                    error
                });
            }
            tracing::warn!(
                account = %job.account,
                import = %job.name,
                run = started_run.number,
                attempt,
                retry_in_ms = delay.as_millis() as u64,
                "temporary error, retrying from the last checkpoint: {error}"
            );
            let mut waiting = stop.clone();
            tokio::select! {
                biased;
                _ = waiting.stopped() => break Ok(true),
                _ = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
            // Recorded before the try, so a process that dies during it shows it.
            if let Err(error) = state.record_attempt(run, attempt).await {
                break Err(error);
            }
        };
        let counts = runner.counts.clone();
        match outcome {
            Ok(stopped) => {
                state.finish_run(run, &counts, stopped, None).await?;
                Ok(ImportSummary {
                    run: started_run.number,
                    counts,
                    stopped,
                    cursor: runner.checkpoint.cursor.clone(),
                    attempts: attempt,
                    elapsed: started.elapsed(),
                })
            }
            Err(error) => {
                let message = error.to_string();
                // The run's own error matters more than a failure to record it.
                let _ = state.finish_run(run, &counts, false, Some(&message)).await;
                Err(error)
            }
        }
    }

    /// The runs of import `name`, newest first (numbered per import: see
    /// [`RunRecord::id`](crate::RunRecord::id)).
    pub async fn history(
        &self,
        account: Option<&str>,
        name: &str,
        limit: usize,
    ) -> Result<Vec<crate::RunRecord>> {
        let job = self.import(account, name)?;
        self.state()
            .await?
            .history(&job.account, &job.name, limit)
            .await
    }
}

struct Runner<'a> {
    job: &'a ImportJob,
    state: &'a dyn StateStore,
    lease: &'a Lease,
    run: i64,
    counts: RunCounts,
    checkpoint: Checkpoint,
    /// The rows at the checkpoint's cursor value: key → digest.
    boundary: HashMap<String, String>,
    on_event: &'a (dyn Fn(&ImportEvent) + Send + Sync),
}

impl Runner<'_> {
    /// Returns whether a stop request ended the run.
    async fn run(
        &mut self,
        source: &dyn extdata::ExternalSource,
        sink: &mut dyn Sink,
        mut stop: Stop,
    ) -> Result<bool> {
        let job = self.job;
        let mut statement = Statement::new(job.query.clone());
        if let Some(cursor) = &job.cursor {
            let value = self
                .checkpoint
                .cursor
                .clone()
                .unwrap_or_else(|| cursor.initial.clone());
            statement.set("cursor", value);
        }
        let options = QueryOptions {
            timeout: job.timeout,
            ..QueryOptions::default()
        };
        let mut stream = tokio::select! {
            biased;
            _ = stop.stopped() => return Ok(true),
            stream = source.stream(&statement, &options) => stream?,
        };
        let columns = stream.columns().clone();
        let key_index = key_position(&columns, &job.key)?;
        let cursor_index = match &job.cursor {
            Some(c) => Some(key_position(&columns, &c.column).map_err(|_| {
                Error::config(format!(
                    "cursor column `{}` is not among the query's columns",
                    c.column
                ))
            })?),
            None => None,
        };
        sink.open(
            &columns,
            &columns[key_index].name.clone(),
            self.checkpoint.position,
        )
        .await?;
        let mut batch: Vec<Row> = Vec::with_capacity(job.batch_size.min(100_000));
        let mut read: u64 = 0;
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.stopped() => return Ok(true),
                next = stream.next() => next,
            };
            let Some(row) = next else { break };
            let row = row?;
            read += 1;
            if read.is_multiple_of(PROGRESS_EVERY) {
                (self.on_event)(&ImportEvent::Rows(read));
            }
            if let Some(i) = cursor_index
                && let Some(last) = batch.last()
            {
                let (before, now) = (&last.values()[i], &row.values()[i]);
                if compare(before, now) == Some(Ordering::Greater) {
                    return Err(Error::config(format!(
                        "import `{}`: rows are not ordered by the cursor column `{}` ({} came after {}); add `ORDER BY {}` to the query",
                        job.name,
                        columns[i].name,
                        now.to_text_lossless(),
                        before.to_text_lossless(),
                        columns[i].name
                    )));
                }
            }
            if batch.len() >= job.batch_size {
                // Rows sharing the last cursor value stay in one batch.
                let tied = cursor_index.is_some_and(|i| {
                    batch
                        .last()
                        .is_some_and(|last| last.values()[i] == row.values()[i])
                });
                if !tied {
                    let full = std::mem::take(&mut batch);
                    self.commit(sink, full, key_index, cursor_index).await?;
                }
            }
            batch.push(row);
        }
        if !batch.is_empty() {
            self.commit(sink, batch, key_index, cursor_index).await?;
        }
        (self.on_event)(&ImportEvent::Rows(read));
        if job.mode == ImportMode::FullRefresh {
            self.settle_missing(sink).await?;
        }
        Ok(false)
    }

    /// Once a `full_refresh` run has read its whole result: counts the keys an earlier
    /// run read and this one did not, deletes their rows from the sink with
    /// `delete_missing`, and forgets them, so that each disappearance is reported once
    /// (a key that comes back is imported again like any other).
    async fn settle_missing(&mut self, sink: &mut dyn Sink) -> Result<()> {
        let job = self.job;
        loop {
            let keys = self
                .state
                .missing_keys(&job.account, &job.name, self.run, MISSING_PER_ROUND)
                .await?;
            if keys.is_empty() {
                break;
            }
            // Deleted before they are forgotten: a crash in between reports (and deletes)
            // them again, which changes nothing.
            let deleted = if job.delete_missing {
                sink.delete(&keys).await?
            } else {
                0
            };
            self.counts.missing += keys.len() as u64;
            self.counts.deleted += deleted;
            self.state
                .forget_keys(self.lease, self.run, &keys, &self.counts)
                .await?;
            (self.on_event)(&ImportEvent::Committed(self.counts.clone()));
        }
        if self.counts.missing > 0 {
            tracing::info!(
                import = %job.name,
                missing = self.counts.missing,
                deleted = self.counts.deleted,
                "keys read by an earlier run are no longer in the result"
            );
        }
        Ok(())
    }

    async fn commit(
        &mut self,
        sink: &mut dyn Sink,
        batch: Vec<Row>,
        key_index: usize,
        cursor_index: Option<usize>,
    ) -> Result<()> {
        let job = self.job;
        let read = batch.len() as u64;
        let cursor = cursor_index.and_then(|i| {
            batch
                .iter()
                .rev()
                .map(|row| &row.values()[i])
                .find(|v| !v.is_null())
                .cloned()
        });
        let (batch, unchanged, at_cursor) = match cursor_index {
            Some(i) => self.leave_out_imported(batch, i, key_index, cursor.as_ref()),
            None => (batch, 0, Vec::new()),
        };
        let (rows, dropped) = dedupe_by_key(batch, key_index);
        let (existing, new_keys) = if sink.keeps_keys() {
            (vec![false; rows.len()], Vec::new())
        } else {
            let keys: Vec<String> = rows
                .iter()
                .map(|r| key_text(&r.values()[key_index]))
                .collect();
            let known = self
                .state
                .existing_keys(&job.account, &job.name, &keys)
                .await?;
            let existing: Vec<bool> = keys.iter().map(|k| known.contains(k)).collect();
            let new_keys = if job.mode == ImportMode::UpdateOnly {
                Vec::new()
            } else {
                keys.into_iter()
                    .zip(&existing)
                    .filter(|(_, e)| !**e)
                    .map(|(k, _)| k)
                    .collect()
            };
            (existing, new_keys)
        };
        let outcome = if rows.is_empty() {
            sink::WriteOutcome::default()
        } else {
            sink.write(&rows, job.mode, &existing).await?
        };
        self.counts.add(&RunCounts {
            read,
            inserted: outcome.inserted,
            updated: outcome.updated,
            skipped: outcome.skipped + dropped,
            unchanged,
            ..RunCounts::default()
        });
        let replace = match (&cursor, &self.checkpoint.cursor) {
            (Some(new), Some(old)) => !same_value(new, old),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let boundary = cursor.as_ref().map(|_| BoundaryUpdate {
            replace,
            rows: &at_cursor,
        });
        let checkpoint = Checkpoint {
            cursor: cursor.or_else(|| self.checkpoint.cursor.clone()),
            position: sink.position(),
        };
        let seen_keys: Vec<String> = if job.mode == ImportMode::FullRefresh {
            rows.iter()
                .map(|r| key_text(&r.values()[key_index]))
                .collect()
        } else {
            Vec::new()
        };
        let batch = BatchCommit {
            checkpoint: &checkpoint,
            boundary,
            counts: &self.counts,
            new_keys: &new_keys,
            seen_keys: &seen_keys,
        };
        self.state.commit_batch(self.lease, self.run, batch).await?;
        if replace {
            self.boundary.clear();
        }
        self.boundary.extend(at_cursor);
        self.checkpoint = checkpoint;
        (self.on_event)(&ImportEvent::Committed(self.counts.clone()));
        Ok(())
    }
}

impl Runner<'_> {
    /// Splits off the rows read again at the saved cursor value that were imported
    /// before, unchanged; returns the rest, how many were left out, and (key, digest) of
    /// the batch's rows at its new cursor value `last`.
    fn leave_out_imported(
        &self,
        batch: Vec<Row>,
        cursor_index: usize,
        key_index: usize,
        last: Option<&Value>,
    ) -> (Vec<Row>, u64, Vec<(String, String)>) {
        let saved = self.checkpoint.cursor.as_ref();
        let mut unchanged = 0;
        let mut at_cursor: Vec<(String, String)> = Vec::new();
        let kept = batch
            .into_iter()
            .filter(|row| {
                let value = &row.values()[cursor_index];
                let key = &row.values()[key_index];
                let at_saved = saved.is_some_and(|s| same_value(value, s));
                let at_last = last.is_some_and(|l| same_value(value, l));
                if key.is_null() || !(at_saved || at_last) {
                    return true;
                }
                let (key, digest) = (key_text(key), row_digest(row));
                let imported = at_saved && self.boundary.get(&key) == Some(&digest);
                if at_last {
                    at_cursor.push((key, digest));
                }
                if imported {
                    unchanged += 1;
                }
                !imported
            })
            .collect();
        (kept, unchanged, at_cursor)
    }
}

/// A digest of a row's values: two SipHash-2-4 sums (fixed keys, a stable algorithm, so
/// that digests in the state store stay valid across builds) over the values' JSON.
fn row_digest(row: &Row) -> String {
    use std::hash::Hasher as _;
    #[allow(deprecated)]
    use std::hash::SipHasher;
    // An instant is the same whatever the session's time zone: digested in UTC.
    let values: Vec<serde_json::Value> = row
        .values()
        .iter()
        .map(|value| match value {
            Value::TimestampTz(t) => serde_json::Value::String(
                t.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
            other => other.to_json(),
        })
        .collect();
    let bytes = serde_json::to_vec(&values).unwrap_or_default();
    let sum = |k0: u64, k1: u64| {
        #[allow(deprecated)]
        let mut hasher = SipHasher::new_with_keys(k0, k1);
        hasher.write(&bytes);
        hasher.finish()
    };
    format!(
        "{:016x}{:016x}",
        sum(0x6578_7464_6174_6131, 0x6375_7273_6f72_0001),
        sum(0x6578_7464_6174_6132, 0x6375_7273_6f72_0002)
    )
}

/// Whether two cursor values are the same (numbers of different widths and instants in
/// different offsets included).
fn same_value(a: &Value, b: &Value) -> bool {
    match compare(a, b) {
        Some(order) => order == Ordering::Equal,
        None => a == b,
    }
}

/// Orders two cursor values of the same kind; `None` when they cannot be compared (text
/// follows the database's collation, which may not be byte order) and the
/// order check is then left out.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (I8(_) | I16(_) | I32(_) | I64(_) | U8(_) | U16(_) | U32(_) | U64(_), _) => {
            Some(as_i128(a)?.cmp(&as_i128(b)?))
        }
        (Date(x), Date(y)) => Some(x.cmp(y)),
        (Timestamp(x), Timestamp(y)) => Some(x.cmp(y)),
        (TimestampTz(x), TimestampTz(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn as_i128(v: &Value) -> Option<i128> {
    use Value::*;
    Some(match v {
        I8(x) => i128::from(*x),
        I16(x) => i128::from(*x),
        I32(x) => i128::from(*x),
        I64(x) => i128::from(*x),
        U8(x) => i128::from(*x),
        U16(x) => i128::from(*x),
        U32(x) => i128::from(*x),
        U64(x) => i128::from(*x),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use extdata::{Column, Columns};

    fn row(values: Vec<Value>) -> Row {
        let columns: Columns = values
            .iter()
            .enumerate()
            .map(|(i, v)| Column::new(format!("c{i}"), v.kind().as_str(), v.kind()))
            .collect::<Vec<_>>()
            .into();
        Row::new(columns, values)
    }

    #[test]
    fn row_digests_tell_versions_apart_and_ignore_the_session_zone() {
        let at =
            |text: &str| Value::TimestampTz(chrono::DateTime::parse_from_rfc3339(text).unwrap());
        let a = row(vec![Value::I64(1), at("2024-03-31T01:00:00.5+00:00")]);
        let same_instant = row(vec![Value::I64(1), at("2024-03-31T04:00:00.5+03:00")]);
        let changed = row(vec![Value::I64(2), at("2024-03-31T01:00:00.5+00:00")]);
        assert_eq!(row_digest(&a), row_digest(&same_instant));
        assert_ne!(row_digest(&a), row_digest(&changed));
        assert_eq!(row_digest(&a).len(), 32);
    }
}
