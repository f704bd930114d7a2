//! The state store: import cursors and run history, the written-key index of file
//! sinks, cached segment evaluations, the members each segment sync has written, and
//! who runs what. [`StateStore`] is the interface; [`SqliteStateStore`] (one local file,
//! the embedded default) and [`PostgresStateStore`] (shared by several workers) implement
//! it over the same statements.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use extdata::{
    Decimal, Error, ErrorKind, ExposeSecret as _, Result, SecretSource, Value, ValueKind,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Postgres, Row as _, Sqlite};

use crate::config::StateConfig;

/// Where a run of an import stands, as recorded in the state store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Rows read from the source.
    pub read: u64,
    /// Rows added to the sink.
    pub inserted: u64,
    /// Rows that replaced a row with the same key.
    pub updated: u64,
    /// Rows left out by the mode (or without a key).
    pub skipped: u64,
    /// Rows read again at the saved cursor value that were imported before, unchanged
    /// (the inclusive cursor reads them again; they are not written twice).
    pub unchanged: u64,
}

impl RunCounts {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: &RunCounts) {
        self.read += other.read;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.skipped += other.skipped;
        self.unchanged += other.unchanged;
    }
}

/// One run of an import, from the history.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run's id (increasing).
    pub id: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while running or when the process died.
    pub ended_at: Option<DateTime<Utc>>,
    /// What it did (committed batches only).
    pub counts: RunCounts,
    /// Why it failed or stopped early, if it did.
    pub error: Option<String>,
    /// Tries the run took: 1, or more when temporary errors were retried.
    pub attempts: u32,
    /// Whether a stop request ended it early (not an error: the next run resumes at the
    /// last checkpoint).
    pub stopped: bool,
    /// The worker (`host/pid`) that ran it; `None` in histories from older versions.
    pub worker: Option<String>,
    /// The scheduled fire time it was taken for; `None` for a run on demand, or a
    /// takeover that took no new fire time.
    pub fire_at: Option<DateTime<Utc>>,
    /// Whether it took over from a worker that stopped renewing its lease (its run
    /// stays `unfinished` in the history) and resumed from the last checkpoint.
    pub takeover: bool,
}

/// How a run ended, as [`RunRecord::status`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// It read its whole result.
    Ok,
    /// A stop request ended it after a committed batch.
    Stopped,
    /// It failed (see [`RunRecord::error`]).
    Failed,
    /// It has not ended: still running, or its process died.
    Unfinished,
}

impl RunStatus {
    /// `ok`, `stopped`, `failed` or `unfinished`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Unfinished => "unfinished",
        }
    }
}

impl RunRecord {
    /// How the run ended.
    pub fn status(&self) -> RunStatus {
        match (self.ended_at, &self.error, self.stopped) {
            (None, _, _) => RunStatus::Unfinished,
            (Some(_), Some(_), _) => RunStatus::Failed,
            (Some(_), None, true) => RunStatus::Stopped,
            (Some(_), None, false) => RunStatus::Ok,
        }
    }
}

/// The last checkpoint of an import.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    /// The cursor value of the last committed row.
    pub cursor: Option<Value>,
    /// The length of a file sink after the last committed batch.
    pub position: Option<u64>,
}

/// A segment evaluation kept in the state store.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedSegment {
    /// The members' keys in first-seen order, without duplicates.
    pub keys: Vec<String>,
    /// The key column's value type (to bind keys with their type again).
    pub key_kind: String,
    /// When the query ran.
    pub evaluated_at: DateTime<Utc>,
}

/// Where the state of the jobs is kept: import checkpoints and run history, the
/// written-key index of file sinks, cached segment evaluations, the members each segment
/// sync has written, and who runs what (the schedule and the per-import leases).
///
/// Two implementations: [`SqliteStateStore`], one local file (the embedded default), and
/// [`PostgresStateStore`], shared by any number of `extdata run` workers on any hosts.
/// [`open_state_store`] opens the one a [`StateConfig`] names.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// Where it is, for messages (`sqlite `path``, `postgresql `host:port/db``); never a
    /// password.
    fn location(&self) -> String;

    /// This process's name in leases and in the run history (`host/pid`).
    fn worker(&self) -> &str;

    /// How long a lease lasts without renewal, when runs are leased (shared stores):
    /// a worker that dies loses its imports after this long. `None` for a store whose
    /// locks the operating system releases when a process dies.
    fn lease_time(&self) -> Option<Duration>;

    /// Takes the whole schedule for this runner, when the store has one runner at a time
    /// (SQLite: a lock file beside the state file, released when the process ends):
    /// `Ok(Err(holder))` when another runner has it. A shared store gives every runner
    /// the schedule (runs are then taken one by one through leases).
    async fn hold_schedule(&self) -> Result<std::result::Result<ScheduleGuard, String>>;

    /// Tries to take import `job` for a run (see [`Claim`]).
    async fn acquire(&self, job: &str, claim: Claim) -> Result<Acquired>;

    /// Extends a lease; `false` when it was lost (another worker took the import after
    /// it expired).
    async fn renew(&self, job: &str, token: i64) -> Result<bool>;

    /// Gives a lease back at the end of a run.
    async fn release(&self, lease: Lease) -> Result<()>;

    /// The last checkpoint of `job`, if it has one.
    async fn checkpoint(&self, job: &str) -> Result<Option<Checkpoint>>;

    /// The rows of `job` at its checkpoint's cursor value, as key → digest of the row.
    ///
    /// A cursor query compares with `>=`, so the next run reads these rows again; a row
    /// whose key and digest are here was imported already and is not written twice,
    /// while a new row at the same value, or a changed one, is.
    async fn boundary(&self, job: &str) -> Result<HashMap<String, String>>;

    /// Records the start of a run under `lease` (a leased store recorded it with the
    /// take); returns its id.
    async fn begin_run(&self, lease: &Lease) -> Result<i64>;

    /// Records a committed batch of run `run` in one transaction: the new cursor and file
    /// position, the rows at the new cursor value, the run's counts so far, and the keys a
    /// file sink wrote for the first time. With a leased store the lease's fencing token
    /// is checked (and the lease extended) in the same transaction: a worker that lost
    /// its lease cannot move the cursor.
    async fn commit_batch(&self, lease: &Lease, run: i64, batch: BatchCommit<'_>) -> Result<()>;

    /// Which of `keys` a file sink of `job` has written before.
    async fn existing_keys(&self, job: &str, keys: &[String]) -> Result<HashSet<String>>;

    /// Records that try `attempt` of `run` starts (after a temporary error).
    async fn record_attempt(&self, run: i64, attempt: u32) -> Result<()>;

    /// Records the end of a run: `stopped` by a stop request, or failed with `error`.
    async fn finish_run(
        &self,
        run: i64,
        counts: &RunCounts,
        stopped: bool,
        error: Option<&str>,
    ) -> Result<()>;

    /// The runs of `job`, newest first, at most `limit`.
    async fn history(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>>;

    /// The cached evaluation of `segment` if it was made with the same query
    /// (`fingerprint`) and has not expired at `now`.
    async fn cached_segment(
        &self,
        segment: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CachedSegment>>;

    /// Stores an evaluation of `segment`, valid until `expires_at`.
    async fn store_segment(
        &self,
        segment: &str,
        fingerprint: &str,
        cached: &CachedSegment,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;

    /// The keys a segment sync has written as members.
    async fn synced_members(&self, sync: &str) -> Result<HashSet<String>>;

    /// Records that a batch of a segment sync was applied.
    async fn record_sync(&self, sync: &str, added: &[String], removed: &[String]) -> Result<()>;

    /// Closes its connections.
    async fn close(&self);
}

/// Opens (creating its tables when missing) the state store `config` names.
pub async fn open_state_store(config: &StateConfig) -> Result<Arc<dyn StateStore>> {
    Ok(match config {
        StateConfig::Sqlite { path } => Arc::new(SqliteStateStore::open(path).await?),
        StateConfig::Postgres { url, schema, lease } => {
            Arc::new(PostgresStateStore::open(url, schema.as_deref(), *lease).await?)
        }
    })
}

/// What a worker asks for when it tries to take an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The scheduled run due at this fire time: taken when no other worker took that
    /// fire time and nobody runs the import (or its runner stopped renewing its lease).
    Fire(DateTime<Utc>),
    /// A run on demand (`extdata import --once`, `run_on_start`): taken when nobody runs
    /// the import.
    Now,
    /// Only a run whose worker stopped renewing its lease, to resume it.
    Abandoned,
}

/// The answer to [`StateStore::acquire`].
#[derive(Debug)]
pub enum Acquired {
    /// This worker runs the import under the lease.
    Taken(Lease),
    /// Another run holds the import.
    Busy {
        /// Who (a worker name or a lock file).
        holder: String,
        /// When its lease expires unless renewed (leased stores only).
        expires_in: Option<Duration>,
    },
    /// Nothing to take: the fire time was taken by another worker, which has finished,
    /// or there is no abandoned run.
    Nothing,
}

/// The right to run one import, from [`StateStore::acquire`] to
/// [`StateStore::release`].
#[derive(Debug)]
pub struct Lease {
    job: String,
    /// The run recorded with the take (leased stores), so that every take is in the
    /// history even when its worker dies at once.
    run: Option<i64>,
    token: i64,
    takeover: bool,
    fire: Option<DateTime<Utc>>,
    worker: String,
    _lock: Option<File>,
}

impl Lease {
    /// The import.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The fencing token: grows by one each time the import is taken; 0 when the store
    /// does not lease (a lock file that the OS releases stands in for it).
    pub fn token(&self) -> i64 {
        self.token
    }

    /// Whether this run takes over from a worker that stopped renewing its lease.
    pub fn takeover(&self) -> bool {
        self.takeover
    }

    /// The fire time this run was taken for, when it was a scheduled one.
    pub fn fire(&self) -> Option<DateTime<Utc>> {
        self.fire
    }
}

/// Held while a runner has the schedule of a one-runner store (see
/// [`StateStore::hold_schedule`]).
#[derive(Debug)]
pub struct ScheduleGuard {
    _lock: Option<File>,
}

/// One committed batch, for [`StateStore::commit_batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchCommit<'a> {
    /// The new cursor and file position.
    pub checkpoint: &'a Checkpoint,
    /// How the rows remembered at the cursor value change.
    pub boundary: Option<BoundaryUpdate<'a>>,
    /// The run's counts so far.
    pub counts: &'a RunCounts,
    /// Keys a file sink wrote for the first time.
    pub new_keys: &'a [String],
}

/// The shared schema; `{id}` is the run id column's definition and `{no_rowid}` a
/// SQLite table option. Integers are `BIGINT` (PostgreSQL's `int8`, SQLite's integer).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS import_checkpoint (
        job TEXT PRIMARY KEY, cursor_kind TEXT, cursor_text TEXT, position BIGINT,
        updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS import_run (
        id {id}, job TEXT NOT NULL, started_at TEXT NOT NULL,
        ended_at TEXT, rows_read BIGINT NOT NULL DEFAULT 0, inserted BIGINT NOT NULL DEFAULT 0,
        updated BIGINT NOT NULL DEFAULT 0, skipped BIGINT NOT NULL DEFAULT 0, error TEXT)",
    "CREATE INDEX IF NOT EXISTS import_run_job ON import_run (job, id)",
    "CREATE TABLE IF NOT EXISTS import_boundary (job TEXT NOT NULL, key TEXT NOT NULL,
        digest TEXT NOT NULL, PRIMARY KEY (job, key)){no_rowid}",
    "CREATE TABLE IF NOT EXISTS file_sink_key (job TEXT NOT NULL, key TEXT NOT NULL,
        PRIMARY KEY (job, key)){no_rowid}",
    "CREATE TABLE IF NOT EXISTS segment_cache (
        segment TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, key_kind TEXT NOT NULL,
        keys TEXT NOT NULL, evaluated_at TEXT NOT NULL, expires_at_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS segment_sync_member (sync TEXT NOT NULL, key TEXT NOT NULL,
        PRIMARY KEY (sync, key)){no_rowid}",
    "CREATE TABLE IF NOT EXISTS import_lease (job TEXT PRIMARY KEY, owner TEXT,
        token BIGINT NOT NULL DEFAULT 0, expires_at_ms BIGINT NOT NULL DEFAULT 0,
        fire_ms BIGINT NOT NULL DEFAULT 0)",
];

/// Columns added to tables of older state files: (table, column, definition).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("import_run", "unchanged", "BIGINT NOT NULL DEFAULT 0"),
    ("import_run", "attempts", "BIGINT NOT NULL DEFAULT 1"),
    ("import_run", "stopped", "BIGINT NOT NULL DEFAULT 0"),
    ("import_run", "worker", "TEXT"),
    ("import_run", "fire_at", "TEXT"),
    ("import_run", "takeover", "BIGINT NOT NULL DEFAULT 0"),
    ("import_run", "token", "BIGINT"),
];

/// How a committed batch changes the rows remembered at the cursor value (see
/// [`StateStore::boundary`]).
#[derive(Debug, Clone, Copy)]
pub struct BoundaryUpdate<'a> {
    /// The cursor value moved: the rows remembered before are forgotten.
    pub replace: bool,
    /// (key, digest) of the batch's rows at the new cursor value.
    pub rows: &'a [(String, String)],
}

/// Keys per `IN (…)` list (SQLite allows 32766 bound values).
const KEYS_PER_QUERY: usize = 10_000;

/// The statements of both implementations, written once over a sqlx database: the SQL
/// is the subset PostgreSQL and SQLite share (`$n` parameters, `ON CONFLICT`,
/// `RETURNING`, integers as `BIGINT`, times as RFC 3339 text).
struct SqlStore<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    label: String,
    worker: String,
    /// The database's clock in milliseconds since the epoch, as SQL (leases are timed by
    /// the shared database, not by the workers' clocks).
    now_ms: &'static str,
    lease: Option<Duration>,
}

impl<DB: sqlx::Database> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("store", &self.label)
            .field("worker", &self.worker)
            .finish()
    }
}

impl<DB> SqlStore<DB>
where
    DB: sqlx::Database,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> String: sqlx::Encode<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB>,
    String: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<<DB as sqlx::Database>::Row>,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    fn error(&self, what: &str, error: sqlx::Error) -> Error {
        state_error(&self.label, what, error)
    }

    fn query(&self, sql: impl Into<String>) -> SqlQuery<DB> {
        sqlx::query::<DB>(AssertSqlSafe(sql.into()))
    }

    /// Inserts `(owner, key)` for every key into `target` (`table (col, col)`), skipping
    /// pairs already there: [`KEYS_PER_INSERT`] rows per statement, so that a batch of
    /// keys costs a few round trips on the PostgreSQL store, not one per key.
    async fn insert_keys(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        target: &str,
        owner: &str,
        keys: &[String],
    ) -> std::result::Result<(), sqlx::Error> {
        for chunk in keys.chunks(KEYS_PER_INSERT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let mut query = self.query(format!(
                "INSERT INTO {target} VALUES {} ON CONFLICT DO NOTHING",
                rows.join(", ")
            ));
            for key in chunk {
                query = query.bind(owner.to_owned()).bind(key.clone());
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<DB>> {
        self.pool
            .acquire()
            .await
            .map_err(|e| self.error("cannot connect", e))
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, DB>> {
        self.pool
            .begin()
            .await
            .map_err(|e| self.error("cannot begin a transaction", e))
    }

    /// The schema's statements for this database.
    fn schema(id: &str, no_rowid: &str) -> Vec<String> {
        SCHEMA
            .iter()
            .map(|s| s.replace("{id}", id).replace("{no_rowid}", no_rowid))
            .collect()
    }

    async fn checkpoint(&self, job: &str) -> Result<Option<Checkpoint>> {
        let mut conn = self.connection().await?;
        let row = self
            .query(
                "SELECT cursor_kind, cursor_text, position FROM import_checkpoint WHERE job = $1",
            )
            .bind(job.to_owned())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.error("cannot read a checkpoint", e))?;
        let Some(row) = row else { return Ok(None) };
        let kind: Option<String> = row.get(0);
        let text: Option<String> = row.get(1);
        let position: Option<i64> = row.get(2);
        let cursor = match (kind, text) {
            (Some(kind), Some(text)) => Some(decode_value(&kind, &text)?),
            _ => None,
        };
        Ok(Some(Checkpoint {
            cursor,
            position: position.map(|p| p as u64),
        }))
    }

    async fn boundary(&self, job: &str) -> Result<HashMap<String, String>> {
        let mut conn = self.connection().await?;
        let rows = self
            .query("SELECT key, digest FROM import_boundary WHERE job = $1")
            .bind(job.to_owned())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.error("cannot read the rows at the cursor", e))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect())
    }

    /// The statement that records the start of a run under `lease`, returning its id.
    fn insert_run(&self, lease: &Lease) -> SqlQuery<DB> {
        self.query(
            "INSERT INTO import_run (job, started_at, worker, fire_at, takeover, token)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(lease.job.clone())
        .bind(Utc::now().to_rfc3339())
        .bind(lease.worker.clone())
        .bind(lease.fire.map(|t| t.to_rfc3339()))
        .bind(i64::from(lease.takeover))
        .bind((lease.token > 0).then_some(lease.token))
    }

    async fn begin_run(&self, lease: &Lease) -> Result<i64> {
        if let Some(run) = lease.run {
            return Ok(run);
        }
        let mut conn = self.connection().await?;
        let row = self
            .insert_run(lease)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.error("cannot record a run", e))?;
        Ok(row.get(0))
    }

    /// The statement that extends lease `token` of `job` (`$1`, `$2`) by the lease time
    /// (`$3`, ms), returning the token when the lease is still this worker's.
    fn extend_sql(&self) -> String {
        format!(
            "UPDATE import_lease SET expires_at_ms = {} + $3 WHERE job = $1 AND token = $2
             RETURNING token",
            self.now_ms
        )
    }

    fn lease_ms(&self) -> i64 {
        self.lease
            .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
    }

    async fn renew(&self, job: &str, token: i64) -> Result<bool> {
        let mut conn = self.connection().await?;
        let row = self
            .query(self.extend_sql())
            .bind(job.to_owned())
            .bind(token)
            .bind(self.lease_ms())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.error("cannot renew a lease", e))?;
        Ok(row.is_some())
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        if lease.token == 0 {
            return Ok(());
        }
        let mut conn = self.connection().await?;
        self.query(
            "UPDATE import_lease SET owner = NULL, expires_at_ms = 0 WHERE job = $1 AND token = $2",
        )
        .bind(lease.job.clone())
        .bind(lease.token)
        .execute(&mut *conn)
        .await
        .map_err(|e| self.error("cannot release a lease", e))?;
        Ok(())
    }

    async fn commit_batch(&self, lease: &Lease, run: i64, batch: BatchCommit<'_>) -> Result<()> {
        let job = lease.job.clone();
        let (kind, text) = match &batch.checkpoint.cursor {
            Some(value) => {
                let (k, t) = encode_value(value)?;
                (Some(k), Some(t))
            }
            None => (None, None),
        };
        let mut tx = self.begin().await?;
        if lease.token > 0 {
            // Fencing: the checkpoint moves only while the lease is this worker's.
            let held = self
                .query(self.extend_sql())
                .bind(job.clone())
                .bind(lease.token)
                .bind(self.lease_ms())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.error("cannot check the lease", e))?;
            if held.is_none() {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!(
                        "import `{job}`: this worker lost its lease (token {}) to another \
                         worker; the batch's checkpoint is not saved",
                        lease.token
                    ),
                ));
            }
        }
        self.query(
            "INSERT INTO import_checkpoint (job, cursor_kind, cursor_text, position, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (job) DO UPDATE SET cursor_kind = excluded.cursor_kind,
               cursor_text = excluded.cursor_text, position = excluded.position,
               updated_at = excluded.updated_at",
        )
        .bind(job.clone())
        .bind(kind)
        .bind(text)
        .bind(batch.checkpoint.position.map(|p| p as i64))
        .bind(Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.error("cannot write a checkpoint", e))?;
        if let Some(boundary) = batch.boundary {
            if boundary.replace {
                self.query("DELETE FROM import_boundary WHERE job = $1")
                    .bind(job.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.error("cannot write the rows at the cursor", e))?;
            }
            for (key, digest) in boundary.rows {
                self.query(
                    "INSERT INTO import_boundary (job, key, digest) VALUES ($1, $2, $3)
                     ON CONFLICT (job, key) DO UPDATE SET digest = excluded.digest",
                )
                .bind(job.clone())
                .bind(key.clone())
                .bind(digest.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error("cannot write the rows at the cursor", e))?;
            }
        }
        let counts = batch.counts;
        self.query(
            "UPDATE import_run SET rows_read = $1, inserted = $2, updated = $3, skipped = $4,
             unchanged = $5 WHERE id = $6",
        )
        .bind(counts.read as i64)
        .bind(counts.inserted as i64)
        .bind(counts.updated as i64)
        .bind(counts.skipped as i64)
        .bind(counts.unchanged as i64)
        .bind(run)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.error("cannot write a run", e))?;
        self.insert_keys(&mut tx, "file_sink_key (job, key)", &job, batch.new_keys)
            .await
            .map_err(|e| self.error("cannot write the key index", e))?;
        tx.commit()
            .await
            .map_err(|e| self.error("cannot commit a checkpoint", e))
    }

    async fn existing_keys(&self, job: &str, keys: &[String]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        let mut conn = self.connection().await?;
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let list: Vec<String> = (2..chunk.len() + 2).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT key FROM file_sink_key WHERE job = $1 AND key IN ({})",
                list.join(",")
            );
            let mut query = self.query(sql).bind(job.to_owned());
            for key in chunk {
                query = query.bind(key.clone());
            }
            let rows = query
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.error("cannot read the key index", e))?;
            found.extend(rows.into_iter().map(|r| r.get::<String, _>(0)));
        }
        Ok(found)
    }

    async fn record_attempt(&self, run: i64, attempt: u32) -> Result<()> {
        let mut conn = self.connection().await?;
        self.query("UPDATE import_run SET attempts = $1 WHERE id = $2")
            .bind(i64::from(attempt))
            .bind(run)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.error("cannot write a run", e))?;
        Ok(())
    }

    async fn finish_run(
        &self,
        run: i64,
        counts: &RunCounts,
        stopped: bool,
        error: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.connection().await?;
        self.query(
            "UPDATE import_run SET ended_at = $1, rows_read = $2, inserted = $3, updated = $4,
             skipped = $5, unchanged = $6, stopped = $7, error = $8 WHERE id = $9",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(counts.read as i64)
        .bind(counts.inserted as i64)
        .bind(counts.updated as i64)
        .bind(counts.skipped as i64)
        .bind(counts.unchanged as i64)
        .bind(i64::from(stopped))
        .bind(error.map(str::to_owned))
        .bind(run)
        .execute(&mut *conn)
        .await
        .map_err(|e| self.error("cannot write a run", e))?;
        Ok(())
    }

    async fn history(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
        let mut conn = self.connection().await?;
        let rows = self
            .query(
                "SELECT id, started_at, ended_at, rows_read, inserted, updated, skipped, error,
                 unchanged, attempts, stopped, worker, fire_at, takeover FROM import_run
                 WHERE job = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(job.to_owned())
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.error("cannot read the history", e))?;
        rows.into_iter()
            .map(|row| {
                let started: String = row.get(1);
                let ended: Option<String> = row.get(2);
                let fire: Option<String> = row.get(12);
                Ok(RunRecord {
                    id: row.get(0),
                    started_at: parse_time(&started)?,
                    ended_at: ended.as_deref().map(parse_time).transpose()?,
                    counts: RunCounts {
                        read: row.get::<i64, _>(3) as u64,
                        inserted: row.get::<i64, _>(4) as u64,
                        updated: row.get::<i64, _>(5) as u64,
                        skipped: row.get::<i64, _>(6) as u64,
                        unchanged: row.get::<i64, _>(8) as u64,
                    },
                    error: row.get(7),
                    attempts: row.get::<i64, _>(9).clamp(1, i64::from(u32::MAX)) as u32,
                    stopped: row.get::<i64, _>(10) != 0,
                    worker: row.get(11),
                    fire_at: fire.as_deref().map(parse_time).transpose()?,
                    takeover: row.get::<i64, _>(13) != 0,
                })
            })
            .collect()
    }

    async fn cached_segment(
        &self,
        segment: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CachedSegment>> {
        let mut conn = self.connection().await?;
        let row = self
            .query(
                "SELECT key_kind, keys, evaluated_at FROM segment_cache
                 WHERE segment = $1 AND fingerprint = $2 AND expires_at_ms > $3",
            )
            .bind(segment.to_owned())
            .bind(fingerprint.to_owned())
            .bind(now.timestamp_millis())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.error("cannot read the segment cache", e))?;
        let Some(row) = row else { return Ok(None) };
        let keys: String = row.get(1);
        let keys: Vec<String> = serde_json::from_str(&keys).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("the segment cache is damaged: {e}"),
            )
        })?;
        let evaluated: String = row.get(2);
        Ok(Some(CachedSegment {
            keys,
            key_kind: row.get(0),
            evaluated_at: parse_time(&evaluated)?,
        }))
    }

    async fn store_segment(
        &self,
        segment: &str,
        fingerprint: &str,
        cached: &CachedSegment,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let keys = serde_json::to_string(&cached.keys)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        let mut conn = self.connection().await?;
        self.query(
            "INSERT INTO segment_cache (segment, fingerprint, key_kind, keys, evaluated_at, expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (segment) DO UPDATE SET fingerprint = excluded.fingerprint,
               key_kind = excluded.key_kind, keys = excluded.keys,
               evaluated_at = excluded.evaluated_at, expires_at_ms = excluded.expires_at_ms",
        )
        .bind(segment.to_owned())
        .bind(fingerprint.to_owned())
        .bind(cached.key_kind.clone())
        .bind(keys)
        .bind(cached.evaluated_at.to_rfc3339())
        .bind(expires_at.timestamp_millis())
        .execute(&mut *conn)
        .await
        .map_err(|e| self.error("cannot write the segment cache", e))?;
        Ok(())
    }

    async fn synced_members(&self, sync: &str) -> Result<HashSet<String>> {
        let mut conn = self.connection().await?;
        let rows = self
            .query("SELECT key FROM segment_sync_member WHERE sync = $1")
            .bind(sync.to_owned())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.error("cannot read the synced members", e))?;
        Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
    }

    async fn record_sync(&self, sync: &str, added: &[String], removed: &[String]) -> Result<()> {
        let mut tx = self.begin().await?;
        self.insert_keys(&mut tx, "segment_sync_member (sync, key)", sync, added)
            .await
            .map_err(|e| self.error("cannot write the synced members", e))?;
        for key in removed {
            self.query("DELETE FROM segment_sync_member WHERE sync = $1 AND key = $2")
                .bind(sync.to_owned())
                .bind(key.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error("cannot write the synced members", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.error("cannot commit the synced members", e))
    }
}

/// Rows per multi-row `INSERT` of keys: 2 parameters each, far below SQLite's limit of
/// 32,766 parameters per statement and PostgreSQL's 65,535.
const KEYS_PER_INSERT: usize = 500;

type SqlQuery<DB> = sqlx::query::Query<'static, DB, <DB as sqlx::Database>::Arguments>;

/// Implements [`StateStore`] for a wrapper of [`SqlStore`]: the shared statements, and
/// the wrapper's own `hold_schedule`, `acquire` and `open`-time choices.
macro_rules! sql_state_store {
    ($store:ty) => {
        #[async_trait]
        impl StateStore for $store {
            fn location(&self) -> String {
                self.inner.label.clone()
            }

            fn worker(&self) -> &str {
                &self.inner.worker
            }

            fn lease_time(&self) -> Option<Duration> {
                self.inner.lease
            }

            async fn hold_schedule(&self) -> Result<std::result::Result<ScheduleGuard, String>> {
                self.hold_schedule_here()
            }

            async fn acquire(&self, job: &str, claim: Claim) -> Result<Acquired> {
                self.acquire_here(job, claim).await
            }

            async fn renew(&self, job: &str, token: i64) -> Result<bool> {
                self.inner.renew(job, token).await
            }

            async fn release(&self, lease: Lease) -> Result<()> {
                self.inner.release(&lease).await
            }

            async fn checkpoint(&self, job: &str) -> Result<Option<Checkpoint>> {
                self.inner.checkpoint(job).await
            }

            async fn boundary(&self, job: &str) -> Result<HashMap<String, String>> {
                self.inner.boundary(job).await
            }

            async fn begin_run(&self, lease: &Lease) -> Result<i64> {
                self.inner.begin_run(lease).await
            }

            async fn commit_batch(
                &self,
                lease: &Lease,
                run: i64,
                batch: BatchCommit<'_>,
            ) -> Result<()> {
                self.inner.commit_batch(lease, run, batch).await
            }

            async fn existing_keys(&self, job: &str, keys: &[String]) -> Result<HashSet<String>> {
                self.inner.existing_keys(job, keys).await
            }

            async fn record_attempt(&self, run: i64, attempt: u32) -> Result<()> {
                self.inner.record_attempt(run, attempt).await
            }

            async fn finish_run(
                &self,
                run: i64,
                counts: &RunCounts,
                stopped: bool,
                error: Option<&str>,
            ) -> Result<()> {
                self.inner.finish_run(run, counts, stopped, error).await
            }

            async fn history(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
                self.inner.history(job, limit).await
            }

            async fn cached_segment(
                &self,
                segment: &str,
                fingerprint: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<CachedSegment>> {
                self.inner.cached_segment(segment, fingerprint, now).await
            }

            async fn store_segment(
                &self,
                segment: &str,
                fingerprint: &str,
                cached: &CachedSegment,
                expires_at: DateTime<Utc>,
            ) -> Result<()> {
                self.inner
                    .store_segment(segment, fingerprint, cached, expires_at)
                    .await
            }

            async fn synced_members(&self, sync: &str) -> Result<HashSet<String>> {
                self.inner.synced_members(sync).await
            }

            async fn record_sync(
                &self,
                sync: &str,
                added: &[String],
                removed: &[String],
            ) -> Result<()> {
                self.inner.record_sync(sync, added, removed).await
            }

            async fn close(&self) {
                self.inner.pool.close().await;
            }
        }
    };
}

// ----------------------------------------------------------------------------- SQLite

/// The embedded state store: one SQLite file, opened in WAL mode with
/// `synchronous = FULL`, so a committed checkpoint survives a crash of the process and
/// of the machine, and several processes on one host (the runner, a manual
/// `extdata import`, `extdata segment`) can share it.
///
/// One runner at a time holds its schedule (a lock file beside it), and one run of an
/// import at a time holds that import (a lock file per import); the OS releases both
/// when a process dies, so a crash never leaves anything locked.
#[derive(Debug)]
pub struct SqliteStateStore {
    inner: SqlStore<Sqlite>,
    path: PathBuf,
}

sql_state_store!(SqliteStateStore);

impl SqliteStateStore {
    /// Opens (creating when missing) the state store at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let label = format!("sqlite `{}`", path.display());
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| state_error(&label, "cannot open", e))?;
        let store = SqliteStateStore {
            inner: SqlStore {
                pool,
                label,
                worker: worker_name(),
                now_ms: "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
                lease: None,
            },
            path,
        };
        let schema =
            SqlStore::<Sqlite>::schema("INTEGER PRIMARY KEY AUTOINCREMENT", " WITHOUT ROWID");
        for statement in schema {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&store.inner.pool)
                .await
                .map_err(|e| store.inner.error("cannot create its tables", e))?;
        }
        for (table, column, definition) in ADDED_COLUMNS {
            store.add_column(table, column, definition).await?;
        }
        Ok(store)
    }

    /// Adds `column` to `table` of a state file written by an older version.
    async fn add_column(&self, table: &str, column: &str, definition: &str) -> Result<()> {
        let pool = &self.inner.pool;
        let present = sqlx::query(AssertSqlSafe(format!(
            "SELECT 1 FROM pragma_table_info('{table}') WHERE name = '{column}'"
        )))
        .fetch_optional(pool)
        .await
        .map_err(|e| self.inner.error("cannot read its tables", e))?
        .is_some();
        if present {
            return Ok(());
        }
        match sqlx::query(AssertSqlSafe(format!(
            "ALTER TABLE {table} ADD COLUMN {column} {definition}"
        )))
        .execute(pool)
        .await
        {
            Ok(_) => Ok(()),
            // Another process opening the same file may have added it first.
            Err(sqlx::Error::Database(e)) if e.message().contains("duplicate column") => Ok(()),
            Err(e) => Err(self.inner.error("cannot add a column to its tables", e)),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<state file><suffix>`, a lock file beside the state file.
    fn lock_path(&self, suffix: &str) -> PathBuf {
        let mut path = PathBuf::from(self.path.as_os_str());
        path.as_mut_os_string().push(suffix);
        path
    }

    fn hold_schedule_here(&self) -> Result<std::result::Result<ScheduleGuard, String>> {
        let path = self.lock_path(".schedule.lock");
        Ok(match try_lock(&path)? {
            Ok(mut file) => {
                use std::io::Write as _;
                // Who holds it, for the message another runner shows (best effort).
                let _ = file.set_len(0).and_then(|()| {
                    write!(
                        file,
                        "{} since {}",
                        self.inner.worker,
                        Utc::now().to_rfc3339()
                    )
                });
                Ok(ScheduleGuard { _lock: Some(file) })
            }
            Err(()) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                Err(if holder.is_empty() {
                    format!("the runner holding `{}`", path.display())
                } else {
                    format!("runner {holder} (`{}`)", path.display())
                })
            }
        })
    }

    async fn acquire_here(&self, job: &str, claim: Claim) -> Result<Acquired> {
        let safe: String = job
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.lock_path(&format!(".{safe}.lock"));
        Ok(match try_lock(&path)? {
            Ok(file) => Acquired::Taken(Lease {
                job: job.to_owned(),
                run: None,
                token: 0,
                takeover: false,
                fire: match claim {
                    Claim::Fire(at) => Some(at),
                    _ => None,
                },
                worker: self.inner.worker.clone(),
                _lock: Some(file),
            }),
            Err(()) => Acquired::Busy {
                holder: format!("another run (it holds `{}`)", path.display()),
                expires_in: None,
            },
        })
    }
}

/// Locks `path` (created when missing) for this process: `Ok(Err(()))` when another
/// process holds it.
fn try_lock(path: &Path) -> Result<std::result::Result<File, ()>> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot open the lock file `{}`: {e}", path.display()),
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Ok(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Err(())),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::new(
            ErrorKind::Internal,
            format!("cannot lock `{}`: {e}", path.display()),
        )),
    }
}

// ------------------------------------------------------------------------- PostgreSQL

/// The shared state store: tables in a PostgreSQL database, for any number of
/// `extdata run` workers on any hosts.
///
/// Every worker follows every schedule; each due run is taken by one worker through a
/// lease on the import's row of `import_lease` (read `FOR UPDATE`, so two workers
/// asking at once are served one after the other): a fire time is taken once, and
/// nobody takes an import whose lease is held. The holder renews the lease while it
/// runs (every third of the lease time) and gives it back at the end. A worker that
/// dies stops renewing; once its lease has expired, the next worker that looks (at the
/// expiry it was told, or at the next fire time) takes the import over and resumes from
/// the last checkpoint. Each take increases the lease's fencing token, and a batch's
/// checkpoint is committed only in a transaction that finds the token unchanged: a
/// worker that lost its lease (paused, cut off) cannot move the cursor. Lease times are
/// read from the database's clock, so the workers' clocks do not matter.
#[derive(Debug)]
pub struct PostgresStateStore {
    inner: SqlStore<Postgres>,
}

sql_state_store!(PostgresStateStore);

/// Serialises the creation of the tables by several workers starting at once.
const SCHEMA_LOCK: i64 = 0x6578_7464_6174_6131;

impl PostgresStateStore {
    /// Connects to the database `url` names (a secret: never printed), TLS verified in
    /// full unless the URL names another `sslmode` (as for the PostgreSQL sink), and
    /// creates the tables when missing, in `schema` when given (created too).
    pub async fn open(url: &SecretSource, schema: Option<&str>, lease: Duration) -> Result<Self> {
        let url = url
            .resolve(&extdata::SecretPolicy::deny_all())
            .map_err(|e| Error::config(format!("state.url: {e}")))?;
        let mut options = crate::sink::postgres_options("state.url", url.expose_secret())?;
        if let Some(schema) = schema {
            options = options.options([("search_path", schema)]);
        }
        let label = crate::sink::postgres_label(&options);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| state_error(&label, "cannot connect", e))?;
        let store = PostgresStateStore {
            inner: SqlStore {
                pool,
                label,
                worker: worker_name(),
                now_ms: "(extract(epoch from clock_timestamp()) * 1000)::bigint",
                lease: Some(lease),
            },
        };
        store.create_tables(schema).await?;
        Ok(store)
    }

    async fn create_tables(&self, schema: Option<&str>) -> Result<()> {
        let inner = &self.inner;
        let mut tx = inner.begin().await?;
        let mut statements = vec![format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")];
        if let Some(schema) = schema {
            statements.push(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                schema.replace('"', "\"\"")
            ));
        }
        statements.extend(SqlStore::<Postgres>::schema(
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "",
        ));
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(|e| inner.error("cannot create its tables", e))?;
        }
        // Only the missing columns: ALTER TABLE locks the table even when it changes
        // nothing, and would stall the other workers' runs while they commit.
        let present: HashSet<(String, String)> = sqlx::query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema()",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| inner.error("cannot read its tables", e))?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
        for (table, column, definition) in ADDED_COLUMNS {
            if present.contains(&((*table).to_owned(), (*column).to_owned())) {
                continue;
            }
            sqlx::query(AssertSqlSafe(format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {definition}"
            )))
            .execute(&mut *tx)
            .await
            .map_err(|e| inner.error("cannot add a column to its tables", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| inner.error("cannot create its tables", e))
    }

    fn hold_schedule_here(&self) -> Result<std::result::Result<ScheduleGuard, String>> {
        Ok(Ok(ScheduleGuard { _lock: None }))
    }

    async fn acquire_here(&self, job: &str, claim: Claim) -> Result<Acquired> {
        let inner = &self.inner;
        let mut tx = inner.begin().await?;
        inner
            .query("INSERT INTO import_lease (job) VALUES ($1) ON CONFLICT (job) DO NOTHING")
            .bind(job.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(|e| inner.error("cannot read a lease", e))?;
        let row = inner
            .query(format!(
                "SELECT owner, token, expires_at_ms, fire_ms, {} FROM import_lease
                 WHERE job = $1 FOR UPDATE",
                inner.now_ms
            ))
            .bind(job.to_owned())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| inner.error("cannot read a lease", e))?;
        let current = LeaseRow {
            owner: row.get(0),
            token: row.get(1),
            expires_at_ms: row.get(2),
            fire_ms: row.get(3),
            now_ms: row.get(4),
        };
        let (takeover, fire) = match current.decide(claim) {
            Decision::Take { takeover, fire } => (takeover, fire),
            Decision::Busy { holder, left_ms } => {
                return Ok(Acquired::Busy {
                    holder,
                    expires_in: Some(Duration::from_millis(left_ms.max(0) as u64)),
                });
            }
            Decision::Nothing => return Ok(Acquired::Nothing),
        };
        let token = current.token + 1;
        inner
            .query(
                "UPDATE import_lease SET owner = $2, token = $3, expires_at_ms = $4,
                 fire_ms = $5 WHERE job = $1",
            )
            .bind(job.to_owned())
            .bind(inner.worker.clone())
            .bind(token)
            .bind(current.now_ms.saturating_add(inner.lease_ms()))
            .bind(fire.map_or(current.fire_ms, |f| f.timestamp_millis()))
            .execute(&mut *tx)
            .await
            .map_err(|e| inner.error("cannot take a lease", e))?;
        let mut lease = Lease {
            job: job.to_owned(),
            run: None,
            token,
            takeover,
            fire,
            worker: inner.worker.clone(),
            _lock: None,
        };
        // The run is recorded in the same transaction as the take.
        let run = inner
            .insert_run(&lease)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| inner.error("cannot record a run", e))?;
        lease.run = Some(run.get(0));
        tx.commit()
            .await
            .map_err(|e| inner.error("cannot take a lease", e))?;
        if takeover {
            tracing::warn!(
                import = job,
                worker = %inner.worker,
                previous = current.owner.as_deref().unwrap_or_default(),
                token,
                "took over a run whose worker stopped renewing its lease; resuming from the last checkpoint"
            );
        }
        Ok(Acquired::Taken(lease))
    }
}

/// An import's lease as read (times in the database's milliseconds).
#[derive(Debug, Clone, PartialEq)]
struct LeaseRow {
    owner: Option<String>,
    token: i64,
    expires_at_ms: i64,
    fire_ms: i64,
    now_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
enum Decision {
    /// Take it: over from a dead worker (`takeover`), for fire time `fire`.
    Take {
        takeover: bool,
        fire: Option<DateTime<Utc>>,
    },
    Busy {
        holder: String,
        left_ms: i64,
    },
    Nothing,
}

impl LeaseRow {
    fn decide(&self, claim: Claim) -> Decision {
        let new_fire = match claim {
            Claim::Fire(at) if at.timestamp_millis() > self.fire_ms => Some(at),
            _ => None,
        };
        match &self.owner {
            Some(holder) if self.expires_at_ms > self.now_ms => Decision::Busy {
                holder: holder.clone(),
                left_ms: self.expires_at_ms - self.now_ms,
            },
            Some(_) => Decision::Take {
                takeover: true,
                fire: new_fire,
            },
            None if claim == Claim::Now || new_fire.is_some() => Decision::Take {
                takeover: false,
                fire: new_fire,
            },
            None => Decision::Nothing,
        }
    }
}

/// This process's name: `host/pid`.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}/{}", std::process::id())
}

fn state_error(label: &str, what: &str, error: sqlx::Error) -> Error {
    // Connect options (with a password) are never formatted; sqlx's message names the
    // server's error.
    Error::new(
        ErrorKind::Internal,
        format!("state store {label}: {what}: {error}"),
    )
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("bad time `{text}` in the state store: {e}"),
            )
        })
}

/// The initial cursor from the config: a whole number, an RFC 3339 instant, a date-time
/// without zone, a date, or else text.
pub(crate) fn parse_cursor_initial(json: &serde_json::Value) -> std::result::Result<Value, String> {
    match json {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::I64)
            .or_else(|| n.as_f64().map(Value::F64))
            .ok_or_else(|| format!("`{n}` is out of range")),
        serde_json::Value::String(text) => Ok(parse_text_cursor(text)),
        _ => Err("must be a number or a string (a date, a timestamp or text)".to_owned()),
    }
}

fn parse_text_cursor(text: &str) -> Value {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Value::TimestampTz(t);
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Value::Timestamp(t);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Value::Date(d);
    }
    Value::Text(text.to_owned())
}

/// A value as (kind, text) for the state store; the kinds a cursor or key can have.
pub(crate) fn encode_value(value: &Value) -> Result<(String, String)> {
    let supported = matches!(
        value.kind(),
        ValueKind::Bool
            | ValueKind::I8
            | ValueKind::I16
            | ValueKind::I32
            | ValueKind::I64
            | ValueKind::I128
            | ValueKind::U8
            | ValueKind::U16
            | ValueKind::U32
            | ValueKind::U64
            | ValueKind::U128
            | ValueKind::F32
            | ValueKind::F64
            | ValueKind::Decimal
            | ValueKind::Text
            | ValueKind::Date
            | ValueKind::Timestamp
            | ValueKind::TimestampTz
            | ValueKind::Uuid
    );
    if !supported {
        return Err(Error::unsupported(format!(
            "a cursor column of type {} cannot be remembered; use a number, text, date or timestamp column",
            value.kind()
        )));
    }
    let text = match value {
        // RFC 3339 with full precision, so the value reads back exactly.
        Value::TimestampTz(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Value::Timestamp(t) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        other => other.to_text_lossless(),
    };
    Ok((value.kind().as_str().to_owned(), text))
}

/// The inverse of [`encode_value`]; an unknown kind reads back as text.
pub(crate) fn decode_value(kind: &str, text: &str) -> Result<Value> {
    let bad = |e: &dyn fmt::Display| {
        Error::new(
            ErrorKind::Internal,
            format!("state store: `{text}` is not a valid {kind}: {e}"),
        )
    };
    macro_rules! num {
        ($t:ty, $v:ident) => {
            text.parse::<$t>().map(Value::$v).map_err(|e| bad(&e))
        };
    }
    match kind {
        "bool" => num!(bool, Bool),
        "i8" => num!(i8, I8),
        "i16" => num!(i16, I16),
        "i32" => num!(i32, I32),
        "i64" => num!(i64, I64),
        "i128" => num!(i128, I128),
        "u8" => num!(u8, U8),
        "u16" => num!(u16, U16),
        "u32" => num!(u32, U32),
        "u64" => num!(u64, U64),
        "u128" => num!(u128, U128),
        "f32" => num!(f32, F32),
        "f64" => num!(f64, F64),
        "decimal" => Decimal::from_str(text)
            .map(Value::Decimal)
            .map_err(|e| bad(&e)),
        "date" => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Value::Date)
            .map_err(|e| bad(&e)),
        "timestamp" => NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .map(Value::Timestamp)
            .map_err(|e| bad(&e)),
        "timestamptz" => DateTime::parse_from_rfc3339(text)
            .map(Value::TimestampTz)
            .map_err(|e| bad(&e)),
        "uuid" => text
            .parse::<sqlx::types::Uuid>()
            .map(Value::Uuid)
            .map_err(|e| bad(&e)),
        _ => Ok(Value::Text(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_values_round_trip_exactly() {
        let values = [
            Value::I64(i64::MIN),
            Value::U64(u64::MAX),
            Value::Text("a'b\nc".into()),
            Value::Decimal("12345678901234567890.000000001".parse().unwrap()),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Timestamp(
                NaiveDateTime::parse_from_str("2024-03-31 02:30:00.123456", "%Y-%m-%d %H:%M:%S%.f")
                    .unwrap(),
            ),
            Value::TimestampTz(
                DateTime::parse_from_rfc3339("2024-10-27T01:30:00.5+03:00").unwrap(),
            ),
        ];
        for value in values {
            let (kind, text) = encode_value(&value).unwrap();
            assert_eq!(decode_value(&kind, &text).unwrap(), value, "{kind} {text}");
        }
        assert_eq!(
            encode_value(&Value::Json(serde_json::json!({})))
                .unwrap_err()
                .kind(),
            ErrorKind::Unsupported
        );
    }

    #[test]
    fn initial_cursor_is_typed() {
        let parse = |j: serde_json::Value| parse_cursor_initial(&j).unwrap();
        assert!(matches!(
            parse(serde_json::json!("1970-01-01T00:00:00Z")),
            Value::TimestampTz(_)
        ));
        assert!(matches!(
            parse(serde_json::json!("2024-01-01 10:00:00")),
            Value::Timestamp(_)
        ));
        assert!(matches!(
            parse(serde_json::json!("2024-01-01")),
            Value::Date(_)
        ));
        assert_eq!(parse(serde_json::json!(0)), Value::I64(0));
        assert_eq!(parse(serde_json::json!("abc")), Value::Text("abc".into()));
        assert!(parse_cursor_initial(&serde_json::json!([1])).is_err());
    }

    fn lease(owner: Option<&str>, expires_at_ms: i64, fire_ms: i64) -> LeaseRow {
        LeaseRow {
            owner: owner.map(str::to_owned),
            token: 7,
            expires_at_ms,
            fire_ms,
            now_ms: 10_000,
        }
    }

    #[test]
    fn a_fire_time_is_taken_once_and_a_dead_workers_run_is_taken_over() {
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap();
        let take = |takeover, fire| Decision::Take { takeover, fire };
        // A free import: a new fire time is taken, one taken before is not.
        assert_eq!(
            lease(None, 0, 9_000).decide(Claim::Fire(at(10_000))),
            take(false, Some(at(10_000)))
        );
        assert_eq!(
            lease(None, 0, 10_000).decide(Claim::Fire(at(10_000))),
            Decision::Nothing
        );
        assert_eq!(lease(None, 0, 10_000).decide(Claim::Now), take(false, None));
        assert_eq!(
            lease(None, 0, 10_000).decide(Claim::Abandoned),
            Decision::Nothing
        );
        // A held lease that has not expired: busy, whatever the claim.
        for claim in [Claim::Fire(at(20_000)), Claim::Now, Claim::Abandoned] {
            assert_eq!(
                lease(Some("h/1"), 12_500, 9_000).decide(claim),
                Decision::Busy {
                    holder: "h/1".into(),
                    left_ms: 2_500
                }
            );
        }
        // An expired lease (its worker died): taken over, with the new fire time if any.
        assert_eq!(
            lease(Some("h/1"), 10_000, 9_000).decide(Claim::Abandoned),
            take(true, None)
        );
        assert_eq!(
            lease(Some("h/1"), 9_999, 9_000).decide(Claim::Fire(at(10_000))),
            take(true, Some(at(10_000)))
        );
    }
}
