//! The local state store: one SQLite file holding import cursors and run history, the
//! written-key index of file sinks, cached segment evaluations and the members each
//! segment sync has written.
//!
//! It is opened in WAL mode with `synchronous = FULL`, so a committed checkpoint
//! survives a crash of the process and of the machine, and several processes (the
//! daemon, a manual `extdata import`, `extdata segment`) can share it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use extdata::{Decimal, Error, ErrorKind, Result, Value, ValueKind};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row as _, SqlitePool};

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

/// The state store (see the module documentation).
#[derive(Clone)]
pub struct StateStore {
    path: PathBuf,
    pool: SqlitePool,
}

impl fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS import_checkpoint (
        job TEXT PRIMARY KEY, cursor_kind TEXT, cursor_text TEXT, position INTEGER,
        updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS import_run (
        id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started_at TEXT NOT NULL,
        ended_at TEXT, rows_read INTEGER NOT NULL DEFAULT 0, inserted INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0, error TEXT)",
    "CREATE INDEX IF NOT EXISTS import_run_job ON import_run (job, id)",
    "CREATE TABLE IF NOT EXISTS import_boundary (job TEXT NOT NULL, key TEXT NOT NULL,
        digest TEXT NOT NULL, PRIMARY KEY (job, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS file_sink_key (job TEXT NOT NULL, key TEXT NOT NULL,
        PRIMARY KEY (job, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS segment_cache (
        segment TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, key_kind TEXT NOT NULL,
        keys TEXT NOT NULL, evaluated_at TEXT NOT NULL, expires_at_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS segment_sync_member (sync TEXT NOT NULL, key TEXT NOT NULL,
        PRIMARY KEY (sync, key)) WITHOUT ROWID",
];

/// Columns added to tables of older state files: (table, column, definition).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("import_run", "unchanged", "INTEGER NOT NULL DEFAULT 0"),
    ("import_run", "attempts", "INTEGER NOT NULL DEFAULT 1"),
    ("import_run", "stopped", "INTEGER NOT NULL DEFAULT 0"),
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

impl StateStore {
    /// Opens (creating when missing) the state store at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
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
            .map_err(|e| state_error(&path, "cannot open", e))?;
        let store = StateStore { path, pool };
        for statement in SCHEMA {
            sqlx::query(*statement)
                .execute(&store.pool)
                .await
                .map_err(|e| store.error("cannot create its tables", e))?;
        }
        for (table, column, definition) in ADDED_COLUMNS {
            store.add_column(table, column, definition).await?;
        }
        Ok(store)
    }

    /// Adds `column` to `table` of a state file written by an older version.
    async fn add_column(&self, table: &str, column: &str, definition: &str) -> Result<()> {
        let present = sqlx::query(AssertSqlSafe(format!(
            "SELECT 1 FROM pragma_table_info('{table}') WHERE name = '{column}'"
        )))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.error("cannot read its tables", e))?
        .is_some();
        if present {
            return Ok(());
        }
        match sqlx::query(AssertSqlSafe(format!(
            "ALTER TABLE {table} ADD COLUMN {column} {definition}"
        )))
        .execute(&self.pool)
        .await
        {
            Ok(_) => Ok(()),
            // Another process opening the same file may have added it first.
            Err(sqlx::Error::Database(e)) if e.message().contains("duplicate column") => Ok(()),
            Err(e) => Err(self.error("cannot add a column to its tables", e)),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: &str, error: sqlx::Error) -> Error {
        state_error(&self.path, what, error)
    }

    /// The last checkpoint of `job`, if it has one.
    pub async fn checkpoint(&self, job: &str) -> Result<Option<Checkpoint>> {
        let row = sqlx::query(
            "SELECT cursor_kind, cursor_text, position FROM import_checkpoint WHERE job = ?",
        )
        .bind(job)
        .fetch_optional(&self.pool)
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

    /// The rows of `job` at its checkpoint's cursor value, as key → digest of the row.
    ///
    /// A cursor query compares with `>=`, so the next run reads these rows again; a row
    /// whose key and digest are here was imported already and is not written twice,
    /// while a new row at the same value, or a changed one, is.
    pub async fn boundary(&self, job: &str) -> Result<HashMap<String, String>> {
        let rows = sqlx::query("SELECT key, digest FROM import_boundary WHERE job = ?")
            .bind(job)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error("cannot read the rows at the cursor", e))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect())
    }

    /// Records the start of a run; returns its id.
    pub async fn begin_run(&self, job: &str) -> Result<i64> {
        let row =
            sqlx::query("INSERT INTO import_run (job, started_at) VALUES (?, ?) RETURNING id")
                .bind(job)
                .bind(Utc::now().to_rfc3339())
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.error("cannot record a run", e))?;
        Ok(row.get(0))
    }

    /// Records a committed batch in one transaction: the new cursor and file position,
    /// the rows at the new cursor value, the run's counts so far, and the keys a file
    /// sink wrote for the first time.
    pub async fn commit_batch(
        &self,
        job: &str,
        run: i64,
        checkpoint: &Checkpoint,
        boundary: Option<BoundaryUpdate<'_>>,
        counts: &RunCounts,
        new_keys: &[String],
    ) -> Result<()> {
        let (kind, text) = match &checkpoint.cursor {
            Some(value) => {
                let (k, t) = encode_value(value)?;
                (Some(k), Some(t))
            }
            None => (None, None),
        };
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.error("cannot begin a checkpoint", e))?;
        sqlx::query(
            "INSERT INTO import_checkpoint (job, cursor_kind, cursor_text, position, updated_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (job) DO UPDATE SET cursor_kind = excluded.cursor_kind,
               cursor_text = excluded.cursor_text, position = excluded.position,
               updated_at = excluded.updated_at",
        )
        .bind(job)
        .bind(kind)
        .bind(text)
        .bind(checkpoint.position.map(|p| p as i64))
        .bind(Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.error("cannot write a checkpoint", e))?;
        if let Some(boundary) = boundary {
            if boundary.replace {
                sqlx::query("DELETE FROM import_boundary WHERE job = ?")
                    .bind(job)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.error("cannot write the rows at the cursor", e))?;
            }
            for (key, digest) in boundary.rows {
                sqlx::query(
                    "INSERT INTO import_boundary (job, key, digest) VALUES (?, ?, ?)
                     ON CONFLICT (job, key) DO UPDATE SET digest = excluded.digest",
                )
                .bind(job)
                .bind(key)
                .bind(digest)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error("cannot write the rows at the cursor", e))?;
            }
        }
        sqlx::query(
            "UPDATE import_run SET rows_read = ?, inserted = ?, updated = ?, skipped = ?,
             unchanged = ? WHERE id = ?",
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
        for key in new_keys {
            sqlx::query("INSERT OR IGNORE INTO file_sink_key (job, key) VALUES (?, ?)")
                .bind(job)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error("cannot write the key index", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.error("cannot commit a checkpoint", e))
    }

    /// Which of `keys` a file sink of `job` has written before.
    pub async fn existing_keys(&self, job: &str, keys: &[String]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let sql = format!(
                "SELECT key FROM file_sink_key WHERE job = ? AND key IN ({})",
                vec!["?"; chunk.len()].join(",")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(job);
            for key in chunk {
                query = query.bind(key);
            }
            let rows = query
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.error("cannot read the key index", e))?;
            found.extend(rows.into_iter().map(|r| r.get::<String, _>(0)));
        }
        Ok(found)
    }

    /// Records that try `attempt` of `run` starts (after a temporary error).
    pub async fn record_attempt(&self, run: i64, attempt: u32) -> Result<()> {
        sqlx::query("UPDATE import_run SET attempts = ? WHERE id = ?")
            .bind(i64::from(attempt))
            .bind(run)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error("cannot write a run", e))?;
        Ok(())
    }

    /// Records the end of a run: `stopped` by a stop request, or failed with `error`.
    pub async fn finish_run(
        &self,
        run: i64,
        counts: &RunCounts,
        stopped: bool,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE import_run SET ended_at = ?, rows_read = ?, inserted = ?, updated = ?,
             skipped = ?, unchanged = ?, stopped = ?, error = ? WHERE id = ?",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(counts.read as i64)
        .bind(counts.inserted as i64)
        .bind(counts.updated as i64)
        .bind(counts.skipped as i64)
        .bind(counts.unchanged as i64)
        .bind(stopped)
        .bind(error)
        .bind(run)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error("cannot write a run", e))?;
        Ok(())
    }

    /// The runs of `job`, newest first, at most `limit`.
    pub async fn history(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT id, started_at, ended_at, rows_read, inserted, updated, skipped, error,
             unchanged, attempts, stopped FROM import_run WHERE job = ? ORDER BY id DESC
             LIMIT ?",
        )
        .bind(job)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error("cannot read the history", e))?;
        rows.into_iter()
            .map(|row| {
                let started: String = row.get(1);
                let ended: Option<String> = row.get(2);
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
                })
            })
            .collect()
    }

    /// The cached evaluation of `segment` if it was made with the same query
    /// (`fingerprint`) and has not expired at `now`.
    pub async fn cached_segment(
        &self,
        segment: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CachedSegment>> {
        let row = sqlx::query(
            "SELECT key_kind, keys, evaluated_at FROM segment_cache
             WHERE segment = ? AND fingerprint = ? AND expires_at_ms > ?",
        )
        .bind(segment)
        .bind(fingerprint)
        .bind(now.timestamp_millis())
        .fetch_optional(&self.pool)
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

    /// Stores an evaluation of `segment`, valid until `expires_at`.
    pub async fn store_segment(
        &self,
        segment: &str,
        fingerprint: &str,
        cached: &CachedSegment,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let keys = serde_json::to_string(&cached.keys)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        sqlx::query(
            "INSERT INTO segment_cache (segment, fingerprint, key_kind, keys, evaluated_at, expires_at_ms)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (segment) DO UPDATE SET fingerprint = excluded.fingerprint,
               key_kind = excluded.key_kind, keys = excluded.keys,
               evaluated_at = excluded.evaluated_at, expires_at_ms = excluded.expires_at_ms",
        )
        .bind(segment)
        .bind(fingerprint)
        .bind(&cached.key_kind)
        .bind(keys)
        .bind(cached.evaluated_at.to_rfc3339())
        .bind(expires_at.timestamp_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| self.error("cannot write the segment cache", e))?;
        Ok(())
    }

    /// The keys a segment sync has written as members.
    pub async fn synced_members(&self, sync: &str) -> Result<HashSet<String>> {
        let rows = sqlx::query("SELECT key FROM segment_sync_member WHERE sync = ?")
            .bind(sync)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error("cannot read the synced members", e))?;
        Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Records that a batch of a segment sync was applied.
    pub async fn record_sync(
        &self,
        sync: &str,
        added: &[String],
        removed: &[String],
    ) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.error("cannot begin", e))?;
        for key in added {
            sqlx::query("INSERT OR IGNORE INTO segment_sync_member (sync, key) VALUES (?, ?)")
                .bind(sync)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error("cannot write the synced members", e))?;
        }
        for key in removed {
            sqlx::query("DELETE FROM segment_sync_member WHERE sync = ? AND key = ?")
                .bind(sync)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error("cannot write the synced members", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.error("cannot commit the synced members", e))
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn state_error(path: &Path, what: &str, error: sqlx::Error) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("state store `{}`: {what}: {error}", path.display()),
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
}
