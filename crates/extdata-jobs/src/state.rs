//! The state store: import cursors and run history, the written-key index of file
//! sinks, cached segment evaluations, the members each segment sync has written, and
//! who runs what. [`StateStore`] is the interface; [`SqliteStateStore`] (one local file,
//! the embedded default) and [`PostgresStateStore`] (shared by several workers) implement
//! it over the same statements. Every row is keyed by account and name: names are unique
//! within an account only.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fmt::Write as _;
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
    /// Keys a `full_refresh` import read in an earlier run that this run's whole result
    /// no longer has.
    pub missing: u64,
    /// Rows of missing keys deleted from the sink (`delete_missing = true`).
    pub deleted: u64,
}

impl RunCounts {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: &RunCounts) {
        self.read += other.read;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.skipped += other.skipped;
        self.unchanged += other.unchanged;
        self.missing += other.missing;
        self.deleted += other.deleted;
    }
}

/// One run of an import, from the history.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run's number among the runs of its import: 1 for the first, then 2, 3, …
    /// (each import of each account counts its own runs).
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

    /// Tries to take import `job` of `account` for a run (see [`Claim`]).
    async fn acquire(&self, account: &str, job: &str, claim: Claim) -> Result<Acquired>;

    /// Extends a lease; `false` when it was lost (another worker took the import after
    /// it expired).
    async fn renew(&self, account: &str, job: &str, token: i64) -> Result<bool>;

    /// Gives a lease back at the end of a run.
    async fn release(&self, lease: Lease) -> Result<()>;

    /// The last checkpoint of import `job` of `account`, if it has one.
    async fn checkpoint(&self, account: &str, job: &str) -> Result<Option<Checkpoint>>;

    /// The rows of import `job` of `account` at its checkpoint's cursor value, as key →
    /// digest of the row.
    ///
    /// A cursor query compares with `>=`, so the next run reads these rows again; a row
    /// whose key and digest are here was imported already and is not written twice,
    /// while a new row at the same value, or a changed one, is.
    async fn boundary(&self, account: &str, job: &str) -> Result<HashMap<String, String>>;

    /// Records the start of a run under `lease` (a leased store recorded it with the
    /// take).
    async fn begin_run(&self, lease: &Lease) -> Result<StartedRun>;

    /// Records a committed batch of run `run` ([`StartedRun::id`]) in one transaction: the new cursor and file
    /// position, the rows at the new cursor value, the run's counts so far, and the keys a
    /// file sink wrote for the first time. With a leased store the lease's fencing token
    /// is checked (and the lease extended) in the same transaction: a worker that lost
    /// its lease cannot move the cursor.
    async fn commit_batch(&self, lease: &Lease, run: i64, batch: BatchCommit<'_>) -> Result<()>;

    /// Which of `keys` a file sink of import `job` of `account` has written before.
    async fn existing_keys(
        &self,
        account: &str,
        job: &str,
        keys: &[String],
    ) -> Result<HashSet<String>>;

    /// At most `limit` keys that a `full_refresh` import `job` read in an earlier run and
    /// run `run` has not (asked once the run has read its whole result).
    async fn missing_keys(
        &self,
        account: &str,
        job: &str,
        run: i64,
        limit: usize,
    ) -> Result<Vec<String>>;

    /// Forgets missing `keys` of the import `lease` holds (they are not reported again)
    /// and records run `run`'s `counts`, in one transaction (fenced like
    /// [`commit_batch`](Self::commit_batch)).
    async fn forget_keys(
        &self,
        lease: &Lease,
        run: i64,
        keys: &[String],
        counts: &RunCounts,
    ) -> Result<()>;

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

    /// The runs of import `job` of `account`, newest first, at most `limit`.
    async fn history(&self, account: &str, job: &str, limit: usize) -> Result<Vec<RunRecord>>;

    /// The cached evaluation of `segment` of `account` if it was made with the same
    /// query (`fingerprint`) and has not expired at `now`.
    async fn cached_segment(
        &self,
        account: &str,
        segment: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CachedSegment>>;

    /// Stores an evaluation of `segment` of `account`, valid until `expires_at`.
    async fn store_segment(
        &self,
        account: &str,
        segment: &str,
        fingerprint: &str,
        cached: &CachedSegment,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;

    /// The keys segment sync `sync` of `account` has written as members.
    async fn synced_members(&self, account: &str, sync: &str) -> Result<HashSet<String>>;

    /// Records that a batch of segment sync `sync` of `account` was applied.
    async fn record_sync(
        &self,
        account: &str,
        sync: &str,
        added: &[String],
        removed: &[String],
    ) -> Result<()>;

    /// Closes its connections.
    async fn close(&self);
}

/// Opens (creating its tables when missing) the state store `config` names; the rows of
/// a store written before names were per account are moved to their `owners`.
pub async fn open_state_store(
    config: &StateConfig,
    owners: &LegacyOwners,
) -> Result<Arc<dyn StateStore>> {
    Ok(match config {
        StateConfig::Sqlite { path } => Arc::new(SqliteStateStore::open(path, owners).await?),
        StateConfig::Postgres { url, schema, lease } => {
            Arc::new(PostgresStateStore::open(url, schema.as_deref(), *lease, owners).await?)
        }
    })
}

/// Which accounts have an import, a segment or a segment sync of each name: how a state
/// store written before names were per account (its rows keyed by name alone) is
/// migrated when it is opened.
///
/// A name that exactly one account has moves to that account, with its checkpoint, run
/// history (numbered 1, 2, … per import in the order the runs started), key index,
/// segment cache and synced members. The rows of a name that no account has, or that
/// several accounts have (an ambiguity a file of the older version could not hold), are
/// kept under the account `""`, which no entry has: they are not read, and a warning
/// names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyOwners {
    /// Import name → the accounts that have an import of that name.
    pub imports: BTreeMap<String, BTreeSet<String>>,
    /// Segment name → accounts.
    pub segments: BTreeMap<String, BTreeSet<String>>,
    /// Segment sync name → accounts.
    pub segment_syncs: BTreeMap<String, BTreeSet<String>>,
}

impl LegacyOwners {
    /// The names of `kind` (`import`, `segment`, `sync`) with their one owner.
    fn unique(&self, kind: LegacyKind) -> impl Iterator<Item = (&String, &String)> {
        let map = match kind {
            LegacyKind::Import => &self.imports,
            LegacyKind::Segment => &self.segments,
            LegacyKind::Sync => &self.segment_syncs,
        };
        map.iter()
            .filter_map(|(name, accounts)| match accounts.len() {
                1 => accounts.first().map(|account| (name, account)),
                _ => None,
            })
    }
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
    account: String,
    job: String,
    /// The run recorded with the take (leased stores), so that every take is in the
    /// history even when its worker dies at once.
    run: Option<StartedRun>,
    token: i64,
    takeover: bool,
    fire: Option<DateTime<Utc>>,
    worker: String,
    _lock: Option<File>,
}

impl Lease {
    /// The account of the import.
    pub fn account(&self) -> &str {
        &self.account
    }

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

/// A run recorded by [`StateStore::begin_run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartedRun {
    /// Its key in the store, for [`StateStore::commit_batch`],
    /// [`StateStore::record_attempt`] and [`StateStore::finish_run`].
    pub id: i64,
    /// Its number among the runs of its import (1 for the first), as the history shows
    /// it ([`RunRecord::id`]).
    pub number: i64,
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
    /// Keys a `full_refresh` run read in this batch (recorded with the run, so that the
    /// keys an earlier run read and this one did not can be told at its end).
    pub seen_keys: &'a [String],
}

/// The shared schema; `{id}` is the run id column's definition and `{no_rowid}` a
/// SQLite table option. Integers are `BIGINT` (PostgreSQL's `int8`, SQLite's integer).
/// Every row belongs to an account: names are unique within an account only. A run has
/// a key (`id`, for the store) and a number within its import (`run`, for people).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS import_checkpoint (
        account TEXT NOT NULL, job TEXT NOT NULL, cursor_kind TEXT, cursor_text TEXT,
        position BIGINT, updated_at TEXT NOT NULL, PRIMARY KEY (account, job))",
    "CREATE TABLE IF NOT EXISTS import_run (
        id {id}, account TEXT NOT NULL, job TEXT NOT NULL, run BIGINT NOT NULL,
        started_at TEXT NOT NULL, ended_at TEXT, rows_read BIGINT NOT NULL DEFAULT 0,
        inserted BIGINT NOT NULL DEFAULT 0, updated BIGINT NOT NULL DEFAULT 0,
        skipped BIGINT NOT NULL DEFAULT 0, error TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS import_run_number ON import_run (account, job, run)",
    "CREATE TABLE IF NOT EXISTS import_boundary (account TEXT NOT NULL, job TEXT NOT NULL,
        key TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (account, job, key)){no_rowid}",
    "CREATE TABLE IF NOT EXISTS file_sink_key (account TEXT NOT NULL, job TEXT NOT NULL,
        key TEXT NOT NULL, PRIMARY KEY (account, job, key)){no_rowid}",
    "CREATE TABLE IF NOT EXISTS refresh_key (account TEXT NOT NULL, job TEXT NOT NULL,
        key TEXT NOT NULL, run BIGINT NOT NULL, PRIMARY KEY (account, job, key)){no_rowid}",
    "CREATE TABLE IF NOT EXISTS segment_cache (
        account TEXT NOT NULL, segment TEXT NOT NULL, fingerprint TEXT NOT NULL,
        key_kind TEXT NOT NULL, keys TEXT NOT NULL, evaluated_at TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL, PRIMARY KEY (account, segment))",
    "CREATE TABLE IF NOT EXISTS segment_sync_member (account TEXT NOT NULL, sync TEXT NOT NULL,
        key TEXT NOT NULL, PRIMARY KEY (account, sync, key)){no_rowid}",
    "CREATE TABLE IF NOT EXISTS import_lease (account TEXT NOT NULL, job TEXT NOT NULL,
        owner TEXT, token BIGINT NOT NULL DEFAULT 0, expires_at_ms BIGINT NOT NULL DEFAULT 0,
        fire_ms BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (account, job))",
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
    ("import_run", "missing", "BIGINT NOT NULL DEFAULT 0"),
    ("import_run", "deleted", "BIGINT NOT NULL DEFAULT 0"),
];

/// What a table written before names were per account is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegacyKind {
    Import,
    Segment,
    Sync,
}

/// The tables of a store from before names were per account: (table, its name column,
/// whose name it is, its columns besides `account` as the older version created them;
/// `import_run` also has its [`ADDED_COLUMNS`]). Such a table has no `account` column.
const LEGACY_TABLES: &[(&str, &str, LegacyKind, &[&str])] = &[
    (
        "import_checkpoint",
        "job",
        LegacyKind::Import,
        &[
            "job",
            "cursor_kind",
            "cursor_text",
            "position",
            "updated_at",
        ],
    ),
    (
        "import_run",
        "job",
        LegacyKind::Import,
        &[
            "id",
            "job",
            "started_at",
            "ended_at",
            "rows_read",
            "inserted",
            "updated",
            "skipped",
            "error",
        ],
    ),
    (
        "import_boundary",
        "job",
        LegacyKind::Import,
        &["job", "key", "digest"],
    ),
    ("file_sink_key", "job", LegacyKind::Import, &["job", "key"]),
    (
        "segment_cache",
        "segment",
        LegacyKind::Segment,
        &[
            "segment",
            "fingerprint",
            "key_kind",
            "keys",
            "evaluated_at",
            "expires_at_ms",
        ],
    ),
    (
        "segment_sync_member",
        "sync",
        LegacyKind::Sync,
        &["sync", "key"],
    ),
    (
        "import_lease",
        "job",
        LegacyKind::Import,
        &["job", "owner", "token", "expires_at_ms", "fire_ms"],
    ),
];

/// The index of the older `import_run`, dropped with it (its name would clash).
const LEGACY_INDEXES: &[&str] = &["import_run_job"];

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

    /// Inserts `(account, owner, key)` for every key into `target` (`table (col, col,
    /// col)`), skipping rows already there: [`KEYS_PER_INSERT`] rows per statement, so
    /// that a batch of keys costs a few round trips on the PostgreSQL store, not one per
    /// key.
    async fn insert_keys(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        target: &str,
        (account, owner): (&str, &str),
        keys: &[String],
    ) -> std::result::Result<(), sqlx::Error> {
        for chunk in keys.chunks(KEYS_PER_INSERT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                .collect();
            let mut query = self.query(format!(
                "INSERT INTO {target} VALUES {} ON CONFLICT DO NOTHING",
                rows.join(", ")
            ));
            for key in chunk {
                query = query
                    .bind(account.to_owned())
                    .bind(owner.to_owned())
                    .bind(key.clone());
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

    /// Moves the tables of a store from before names were per account (`present`: its
    /// (table, column) pairs) to the current schema, in `tx`: each such table is renamed,
    /// created anew (by `schema`), copied with the account `""` and runs numbered per
    /// import in the order they started, and dropped; then each name's rows go to the
    /// account that alone has that name ([`LegacyOwners`]). `after_copy` runs once the
    /// rows are copied (PostgreSQL moves its run id sequence past the copied ids).
    async fn migrate_legacy(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        present: &HashSet<(String, String)>,
        schema: &[String],
        owners: &LegacyOwners,
        after_copy: Option<&str>,
    ) -> Result<()> {
        let has =
            |table: &str, column: &str| present.contains(&(table.to_owned(), column.to_owned()));
        let legacy: Vec<_> = LEGACY_TABLES
            .iter()
            .filter(|(table, name, ..)| has(table, name) && !has(table, "account"))
            .collect();
        if legacy.is_empty() {
            return Ok(());
        }
        let fail = |e| self.error("cannot move its tables to per-account names", e);
        let mut statements: Vec<String> = LEGACY_INDEXES
            .iter()
            .map(|index| format!("DROP INDEX IF EXISTS {index}"))
            .collect();
        for (table, ..) in &legacy {
            statements.push(format!("ALTER TABLE {table} RENAME TO {table}_legacy"));
            for (_, column, definition) in ADDED_COLUMNS.iter().filter(|(t, ..)| t == table) {
                if !has(table, column) {
                    statements.push(format!(
                        "ALTER TABLE {table}_legacy ADD COLUMN {column} {definition}"
                    ));
                }
            }
        }
        statements.extend(schema.iter().cloned());
        for (table, _, _, columns) in &legacy {
            let added: Vec<&str> = ADDED_COLUMNS
                .iter()
                .filter(|(t, ..)| t == table)
                .map(|(_, column, _)| *column)
                .collect();
            for (_, column, definition) in ADDED_COLUMNS.iter().filter(|(t, ..)| t == table) {
                statements.push(format!(
                    "ALTER TABLE {table} ADD COLUMN {column} {definition}"
                ));
            }
            let columns = columns
                .iter()
                .chain(&added)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            let (run, number) = if *table == "import_run" {
                (
                    ", run",
                    ", ROW_NUMBER() OVER (PARTITION BY job ORDER BY id)",
                )
            } else {
                ("", "")
            };
            statements.push(format!(
                "INSERT INTO {table} (account, {columns}{run})
                 SELECT '', {columns}{number} FROM {table}_legacy"
            ));
            statements.push(format!("DROP TABLE {table}_legacy"));
        }
        statements.extend(after_copy.map(str::to_owned));
        for statement in statements {
            self.query(statement)
                .execute(&mut **tx)
                .await
                .map_err(fail)?;
        }
        let mut unowned = BTreeSet::new();
        for (table, name, kind, _) in &legacy {
            for (owned, account) in owners.unique(*kind) {
                self.query(format!(
                    "UPDATE {table} SET account = $1 WHERE account = '' AND {name} = $2"
                ))
                .bind(account.clone())
                .bind(owned.clone())
                .execute(&mut **tx)
                .await
                .map_err(fail)?;
            }
            let left = self
                .query(format!(
                    "SELECT DISTINCT {name} FROM {table} WHERE account = ''"
                ))
                .fetch_all(&mut **tx)
                .await
                .map_err(fail)?;
            unowned.extend(left.into_iter().map(|row| row.get::<String, _>(0)));
        }
        tracing::info!(
            store = %self.label,
            tables = legacy.len(),
            "moved the state store to per-account names"
        );
        if !unowned.is_empty() {
            tracing::warn!(
                store = %self.label,
                names = %unowned.into_iter().collect::<Vec<_>>().join(", "),
                "state of names that no account, or several accounts, have was kept under \
                 the account \"\" (not used by any job)"
            );
        }
        Ok(())
    }

    async fn checkpoint(&self, account: &str, job: &str) -> Result<Option<Checkpoint>> {
        let mut conn = self.connection().await?;
        let row = self
            .query(
                "SELECT cursor_kind, cursor_text, position FROM import_checkpoint
                 WHERE account = $1 AND job = $2",
            )
            .bind(account.to_owned())
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

    async fn boundary(&self, account: &str, job: &str) -> Result<HashMap<String, String>> {
        let mut conn = self.connection().await?;
        let rows = self
            .query("SELECT key, digest FROM import_boundary WHERE account = $1 AND job = $2")
            .bind(account.to_owned())
            .bind(job.to_owned())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.error("cannot read the rows at the cursor", e))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect())
    }

    /// The statement that records the start of a run under `lease`, numbered after the
    /// import's last run, returning its id and number. (Two runs of one import are never
    /// recorded at once: the lease or the import's lock file is held; the unique index
    /// on the number would refuse the second.)
    fn insert_run(&self, lease: &Lease) -> SqlQuery<DB> {
        self.query(
            "INSERT INTO import_run
               (account, job, run, started_at, worker, fire_at, takeover, token)
             SELECT $1, $2, COALESCE(MAX(run), 0) + 1, $3, $4, $5, $6, $7 FROM import_run
             WHERE account = $1 AND job = $2
             RETURNING id, run",
        )
        .bind(lease.account.clone())
        .bind(lease.job.clone())
        .bind(Utc::now().to_rfc3339())
        .bind(lease.worker.clone())
        .bind(lease.fire.map(|t| t.to_rfc3339()))
        .bind(i64::from(lease.takeover))
        .bind((lease.token > 0).then_some(lease.token))
    }

    async fn begin_run(&self, lease: &Lease) -> Result<StartedRun> {
        if let Some(run) = lease.run {
            return Ok(run);
        }
        let mut conn = self.connection().await?;
        let row = self
            .insert_run(lease)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.error("cannot record a run", e))?;
        Ok(StartedRun {
            id: row.get(0),
            number: row.get(1),
        })
    }

    /// The statement that extends lease `token` (`$3`) of import `job` (`$2`) of
    /// `account` (`$1`) by the lease time (`$4`, ms), returning the token when the
    /// lease is still this worker's.
    fn extend_sql(&self) -> String {
        format!(
            "UPDATE import_lease SET expires_at_ms = {} + $4
             WHERE account = $1 AND job = $2 AND token = $3
             RETURNING token",
            self.now_ms
        )
    }

    fn lease_ms(&self) -> i64 {
        self.lease
            .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
    }

    async fn renew(&self, account: &str, job: &str, token: i64) -> Result<bool> {
        let mut conn = self.connection().await?;
        let row = self
            .query(self.extend_sql())
            .bind(account.to_owned())
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
            "UPDATE import_lease SET owner = NULL, expires_at_ms = 0
             WHERE account = $1 AND job = $2 AND token = $3",
        )
        .bind(lease.account.clone())
        .bind(lease.job.clone())
        .bind(lease.token)
        .execute(&mut *conn)
        .await
        .map_err(|e| self.error("cannot release a lease", e))?;
        Ok(())
    }

    async fn commit_batch(&self, lease: &Lease, run: i64, batch: BatchCommit<'_>) -> Result<()> {
        let (account, job) = (lease.account.clone(), lease.job.clone());
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
                .bind(account.clone())
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
                        "import `{job}` of account `{account}`: this worker lost its lease \
                         (token {}) to another worker; the batch's checkpoint is not saved",
                        lease.token
                    ),
                ));
            }
        }
        self.query(
            "INSERT INTO import_checkpoint
               (account, job, cursor_kind, cursor_text, position, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account, job) DO UPDATE SET cursor_kind = excluded.cursor_kind,
               cursor_text = excluded.cursor_text, position = excluded.position,
               updated_at = excluded.updated_at",
        )
        .bind(account.clone())
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
                self.query("DELETE FROM import_boundary WHERE account = $1 AND job = $2")
                    .bind(account.clone())
                    .bind(job.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.error("cannot write the rows at the cursor", e))?;
            }
            for (key, digest) in boundary.rows {
                self.query(
                    "INSERT INTO import_boundary (account, job, key, digest)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (account, job, key) DO UPDATE SET digest = excluded.digest",
                )
                .bind(account.clone())
                .bind(job.clone())
                .bind(key.clone())
                .bind(digest.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error("cannot write the rows at the cursor", e))?;
            }
        }
        self.write_counts(&mut tx, run, batch.counts).await?;
        self.insert_keys(
            &mut tx,
            "file_sink_key (account, job, key)",
            (&account, &job),
            batch.new_keys,
        )
        .await
        .map_err(|e| self.error("cannot write the key index", e))?;
        for chunk in batch.seen_keys.chunks(KEYS_PER_INSERT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, $2, ${}, $3)", i + 4))
                .collect();
            let mut query = self
                .query(format!(
                    "INSERT INTO refresh_key (account, job, key, run) VALUES {}
                     ON CONFLICT (account, job, key) DO UPDATE SET run = excluded.run",
                    rows.join(", ")
                ))
                .bind(account.clone())
                .bind(job.clone())
                .bind(run);
            for key in chunk {
                query = query.bind(key.clone());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error("cannot write the keys read", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.error("cannot commit a checkpoint", e))
    }

    /// Fencing: with a leased store, checks (and extends) `lease` inside `tx`, so that
    /// what `tx` writes is written only while the lease is this worker's; otherwise an
    /// error saying that `what_is_lost`.
    async fn check_lease(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        lease: &Lease,
        what_is_lost: &str,
    ) -> Result<()> {
        if lease.token <= 0 {
            return Ok(());
        }
        let held = self
            .query(self.extend_sql())
            .bind(lease.account.clone())
            .bind(lease.job.clone())
            .bind(lease.token)
            .bind(self.lease_ms())
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| self.error("cannot check the lease", e))?;
        match held {
            Some(_) => Ok(()),
            None => Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "import `{}` of account `{}`: this worker lost its lease (token {}) to \
                     another worker; {what_is_lost}",
                    lease.job, lease.account, lease.token
                ),
            )),
        }
    }

    /// Writes the counts of run `run` so far.
    async fn write_counts(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        run: i64,
        counts: &RunCounts,
    ) -> Result<()> {
        self.query(
            "UPDATE import_run SET rows_read = $1, inserted = $2, updated = $3, skipped = $4,
             unchanged = $5, missing = $6, deleted = $7 WHERE id = $8",
        )
        .bind(counts.read as i64)
        .bind(counts.inserted as i64)
        .bind(counts.updated as i64)
        .bind(counts.skipped as i64)
        .bind(counts.unchanged as i64)
        .bind(counts.missing as i64)
        .bind(counts.deleted as i64)
        .bind(run)
        .execute(&mut **tx)
        .await
        .map_err(|e| self.error("cannot write a run", e))?;
        Ok(())
    }

    async fn missing_keys(
        &self,
        account: &str,
        job: &str,
        run: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut conn = self.connection().await?;
        let rows = self
            .query(
                "SELECT key FROM refresh_key WHERE account = $1 AND job = $2 AND run <> $3
                 ORDER BY key LIMIT $4",
            )
            .bind(account.to_owned())
            .bind(job.to_owned())
            .bind(run)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.error("cannot read the keys read before", e))?;
        Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
    }

    async fn forget_keys(
        &self,
        lease: &Lease,
        run: i64,
        keys: &[String],
        counts: &RunCounts,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        self.check_lease(&mut tx, lease, "the missing keys are not recorded")
            .await?;
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let list: Vec<String> = (3..chunk.len() + 3).map(|n| format!("${n}")).collect();
            let mut query = self
                .query(format!(
                    "DELETE FROM refresh_key WHERE account = $1 AND job = $2 AND key IN ({})",
                    list.join(",")
                ))
                .bind(lease.account.clone())
                .bind(lease.job.clone());
            for key in chunk {
                query = query.bind(key.clone());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error("cannot forget the missing keys", e))?;
        }
        self.write_counts(&mut tx, run, counts).await?;
        tx.commit()
            .await
            .map_err(|e| self.error("cannot commit the missing keys", e))
    }

    async fn existing_keys(
        &self,
        account: &str,
        job: &str,
        keys: &[String],
    ) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        let mut conn = self.connection().await?;
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let list: Vec<String> = (3..chunk.len() + 3).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT key FROM file_sink_key WHERE account = $1 AND job = $2 AND key IN ({})",
                list.join(",")
            );
            let mut query = self
                .query(sql)
                .bind(account.to_owned())
                .bind(job.to_owned());
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
             skipped = $5, unchanged = $6, stopped = $7, error = $8, missing = $10,
             deleted = $11 WHERE id = $9",
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
        .bind(counts.missing as i64)
        .bind(counts.deleted as i64)
        .execute(&mut *conn)
        .await
        .map_err(|e| self.error("cannot write a run", e))?;
        Ok(())
    }

    async fn history(&self, account: &str, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
        let mut conn = self.connection().await?;
        let rows = self
            .query(
                "SELECT run, started_at, ended_at, rows_read, inserted, updated, skipped, error,
                 unchanged, attempts, stopped, worker, fire_at, takeover, missing, deleted
                 FROM import_run
                 WHERE account = $1 AND job = $2 ORDER BY run DESC LIMIT $3",
            )
            .bind(account.to_owned())
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
                        missing: row.get::<i64, _>(14) as u64,
                        deleted: row.get::<i64, _>(15) as u64,
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
        account: &str,
        segment: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CachedSegment>> {
        let mut conn = self.connection().await?;
        let row = self
            .query(
                "SELECT key_kind, keys, evaluated_at FROM segment_cache
                 WHERE account = $1 AND segment = $2 AND fingerprint = $3
                   AND expires_at_ms > $4",
            )
            .bind(account.to_owned())
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
        account: &str,
        segment: &str,
        fingerprint: &str,
        cached: &CachedSegment,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let keys = serde_json::to_string(&cached.keys)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        let mut conn = self.connection().await?;
        self.query(
            "INSERT INTO segment_cache
               (account, segment, fingerprint, key_kind, keys, evaluated_at, expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (account, segment) DO UPDATE SET fingerprint = excluded.fingerprint,
               key_kind = excluded.key_kind, keys = excluded.keys,
               evaluated_at = excluded.evaluated_at, expires_at_ms = excluded.expires_at_ms",
        )
        .bind(account.to_owned())
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

    async fn synced_members(&self, account: &str, sync: &str) -> Result<HashSet<String>> {
        let mut conn = self.connection().await?;
        let rows = self
            .query("SELECT key FROM segment_sync_member WHERE account = $1 AND sync = $2")
            .bind(account.to_owned())
            .bind(sync.to_owned())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.error("cannot read the synced members", e))?;
        Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
    }

    async fn record_sync(
        &self,
        account: &str,
        sync: &str,
        added: &[String],
        removed: &[String],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        self.insert_keys(
            &mut tx,
            "segment_sync_member (account, sync, key)",
            (account, sync),
            added,
        )
        .await
        .map_err(|e| self.error("cannot write the synced members", e))?;
        for key in removed {
            self.query(
                "DELETE FROM segment_sync_member WHERE account = $1 AND sync = $2 AND key = $3",
            )
            .bind(account.to_owned())
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

/// Rows per multi-row `INSERT` of keys: 3 parameters each, far below SQLite's limit of
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

            async fn acquire(&self, account: &str, job: &str, claim: Claim) -> Result<Acquired> {
                self.acquire_here(account, job, claim).await
            }

            async fn renew(&self, account: &str, job: &str, token: i64) -> Result<bool> {
                self.inner.renew(account, job, token).await
            }

            async fn release(&self, lease: Lease) -> Result<()> {
                self.inner.release(&lease).await
            }

            async fn checkpoint(&self, account: &str, job: &str) -> Result<Option<Checkpoint>> {
                self.inner.checkpoint(account, job).await
            }

            async fn boundary(&self, account: &str, job: &str) -> Result<HashMap<String, String>> {
                self.inner.boundary(account, job).await
            }

            async fn begin_run(&self, lease: &Lease) -> Result<StartedRun> {
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

            async fn existing_keys(
                &self,
                account: &str,
                job: &str,
                keys: &[String],
            ) -> Result<HashSet<String>> {
                self.inner.existing_keys(account, job, keys).await
            }

            async fn missing_keys(
                &self,
                account: &str,
                job: &str,
                run: i64,
                limit: usize,
            ) -> Result<Vec<String>> {
                self.inner.missing_keys(account, job, run, limit).await
            }

            async fn forget_keys(
                &self,
                lease: &Lease,
                run: i64,
                keys: &[String],
                counts: &RunCounts,
            ) -> Result<()> {
                self.inner.forget_keys(lease, run, keys, counts).await
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

            async fn history(
                &self,
                account: &str,
                job: &str,
                limit: usize,
            ) -> Result<Vec<RunRecord>> {
                self.inner.history(account, job, limit).await
            }

            async fn cached_segment(
                &self,
                account: &str,
                segment: &str,
                fingerprint: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<CachedSegment>> {
                self.inner
                    .cached_segment(account, segment, fingerprint, now)
                    .await
            }

            async fn store_segment(
                &self,
                account: &str,
                segment: &str,
                fingerprint: &str,
                cached: &CachedSegment,
                expires_at: DateTime<Utc>,
            ) -> Result<()> {
                self.inner
                    .store_segment(account, segment, fingerprint, cached, expires_at)
                    .await
            }

            async fn synced_members(&self, account: &str, sync: &str) -> Result<HashSet<String>> {
                self.inner.synced_members(account, sync).await
            }

            async fn record_sync(
                &self,
                account: &str,
                sync: &str,
                added: &[String],
                removed: &[String],
            ) -> Result<()> {
                self.inner.record_sync(account, sync, added, removed).await
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
    /// Opens (creating when missing) the state store at `path`; a file written before
    /// names were per account is migrated, its rows going to their `owners`.
    pub async fn open(path: impl AsRef<Path>, owners: &LegacyOwners) -> Result<Self> {
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
        store.migrate(&schema, owners).await?;
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

    /// Migrates a file from before names were per account, holding the file's write lock
    /// from the first look (another process opening it at once waits, then finds it
    /// migrated).
    async fn migrate(&self, schema: &[String], owners: &LegacyOwners) -> Result<()> {
        let inner = &self.inner;
        let mut tx = inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| inner.error("cannot begin a transaction", e))?;
        let present: HashSet<(String, String)> = sqlx::query(
            "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p
             WHERE m.type = 'table'",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| inner.error("cannot read its tables", e))?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
        inner
            .migrate_legacy(&mut tx, &present, schema, owners, None)
            .await?;
        tx.commit()
            .await
            .map_err(|e| inner.error("cannot move its tables to per-account names", e))
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

    async fn acquire_here(&self, account: &str, job: &str, claim: Claim) -> Result<Acquired> {
        // One-to-one: letters, digits and `-` stay, every other byte is `_` and its two
        // hex digits (so `_` itself too), and `.` separates the parts. Two different
        // (account, name) pairs never share a lock file, whatever their characters.
        let safe = |name: &str| -> String {
            let mut out = String::with_capacity(name.len());
            for byte in name.bytes() {
                if byte.is_ascii_alphanumeric() || byte == b'-' {
                    out.push(char::from(byte));
                } else {
                    let _ = write!(out, "_{byte:02x}");
                }
            }
            out
        };
        let path = self.lock_path(&format!(".{}.{}.lock", safe(account), safe(job)));
        Ok(match try_lock(&path)? {
            Ok(file) => Acquired::Taken(Lease {
                account: account.to_owned(),
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
    /// A store written before names were per account is migrated, its rows going to
    /// their `owners`.
    pub async fn open(
        url: &SecretSource,
        schema: Option<&str>,
        lease: Duration,
        owners: &LegacyOwners,
    ) -> Result<Self> {
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
        store.create_tables(schema, owners).await?;
        Ok(store)
    }

    async fn create_tables(&self, schema: Option<&str>, owners: &LegacyOwners) -> Result<()> {
        let inner = &self.inner;
        let mut tx = inner.begin().await?;
        let mut statements = vec![format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")];
        if let Some(schema) = schema {
            statements.push(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                schema.replace('"', "\"\"")
            ));
        }
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(|e| inner.error("cannot create its tables", e))?;
        }
        let tables =
            SqlStore::<Postgres>::schema("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "");
        let present = Self::columns(inner, &mut tx).await?;
        // The copied runs keep their ids: the identity continues after them.
        let after_copy = "SELECT setval(pg_get_serial_sequence('import_run', 'id'),
            (SELECT COALESCE(MAX(id), 0) + 1 FROM import_run), false)";
        inner
            .migrate_legacy(&mut tx, &present, &tables, owners, Some(after_copy))
            .await?;
        for statement in tables {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(|e| inner.error("cannot create its tables", e))?;
        }
        // Only the missing columns: ALTER TABLE locks the table even when it changes
        // nothing, and would stall the other workers' runs while they commit.
        let present = Self::columns(inner, &mut tx).await?;
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

    /// The (table, column) pairs of the store's schema.
    async fn columns(
        inner: &SqlStore<Postgres>,
        tx: &mut sqlx::Transaction<'static, Postgres>,
    ) -> Result<HashSet<(String, String)>> {
        Ok(sqlx::query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema()",
        )
        .fetch_all(&mut **tx)
        .await
        .map_err(|e| inner.error("cannot read its tables", e))?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
    }

    fn hold_schedule_here(&self) -> Result<std::result::Result<ScheduleGuard, String>> {
        Ok(Ok(ScheduleGuard { _lock: None }))
    }

    async fn acquire_here(&self, account: &str, job: &str, claim: Claim) -> Result<Acquired> {
        let inner = &self.inner;
        let mut tx = inner.begin().await?;
        inner
            .query(
                "INSERT INTO import_lease (account, job) VALUES ($1, $2)
                 ON CONFLICT (account, job) DO NOTHING",
            )
            .bind(account.to_owned())
            .bind(job.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(|e| inner.error("cannot read a lease", e))?;
        let row = inner
            .query(format!(
                "SELECT owner, token, expires_at_ms, fire_ms, {} FROM import_lease
                 WHERE account = $1 AND job = $2 FOR UPDATE",
                inner.now_ms
            ))
            .bind(account.to_owned())
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
                "UPDATE import_lease SET owner = $3, token = $4, expires_at_ms = $5,
                 fire_ms = $6 WHERE account = $1 AND job = $2",
            )
            .bind(account.to_owned())
            .bind(job.to_owned())
            .bind(inner.worker.clone())
            .bind(token)
            .bind(current.now_ms.saturating_add(inner.lease_ms()))
            .bind(fire.map_or(current.fire_ms, |f| f.timestamp_millis()))
            .execute(&mut *tx)
            .await
            .map_err(|e| inner.error("cannot take a lease", e))?;
        let mut lease = Lease {
            account: account.to_owned(),
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
        lease.run = Some(StartedRun {
            id: run.get(0),
            number: run.get(1),
        });
        tx.commit()
            .await
            .map_err(|e| inner.error("cannot take a lease", e))?;
        if takeover {
            tracing::warn!(
                account,
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
