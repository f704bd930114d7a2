//! [`Sink`]: where an import writes, and the built-in sinks.
//!
//! Table sinks (SQLite, PostgreSQL) keep one row per key (a UNIQUE column) and apply
//! the mode in SQL inside one transaction per batch: upsert, insert-if-absent,
//! update-if-present. Writing a batch again after a crash changes nothing, so the
//! cursor may be saved after the commit.
//!
//! File sinks (JSON lines, CSV) append one line per row version. A file cannot be
//! rolled back, so the import records the file's length with the cursor after each
//! `fsync`ed batch and cuts the file back to it on the next run; the keys already
//! written are kept in the state store (for `add_only` and `update_only`).
//!
//! Both talk to their database with sqlx directly, not through `ExternalSource`: a
//! sink needs a transaction around a batch, DDL and many-row statements, none of which
//! the connector trait offers, and the sink's database is the platform's own, not a
//! customer's connector.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;

use async_trait::async_trait;
use extdata::{
    Column, Columns, Error, ErrorKind, ExposeSecret as _, Result, Row, Value, ValueKind,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Sqlite, SqlitePool};

use crate::config::{ImportMode, SinkConfig};

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows with a new key.
    pub inserted: u64,
    /// Rows whose key was present.
    pub updated: u64,
    /// Rows the mode left out.
    pub skipped: u64,
}

/// A destination of imported rows.
///
/// The import calls [`open`](Sink::open) once per run, then [`write`](Sink::write) once
/// per batch; when `write` returns, the batch must be durable (committed, or written and
/// `fsync`ed), because the cursor is saved right after.
#[async_trait]
pub trait Sink: Send + fmt::Debug {
    /// Whether the sink applies modes by key itself (tables). When not (files), the import
    /// keeps the index of written keys and hands over only the rows the mode lets through.
    fn keeps_keys(&self) -> bool;

    /// Prepares for a run: `columns` of the query, the name of the key column and, for
    /// files, the length recorded with the last checkpoint (the file is cut back to it).
    async fn open(&mut self, columns: &Columns, key: &str, resume_at: Option<u64>) -> Result<()>;

    /// Writes one batch (rows with distinct, non-NULL keys) and makes it durable.
    /// `existing` tells a sink that does not keep keys which rows' keys it wrote before.
    async fn write(
        &mut self,
        rows: &[Row],
        mode: ImportMode,
        existing: &[bool],
    ) -> Result<WriteOutcome>;

    /// The position to record with the cursor (files: the length after the last write).
    fn position(&self) -> Option<u64>;

    /// Deletes the rows of `keys` (as text, `Value::to_text_lossless`) and makes that
    /// durable; returns how many rows went. Only tables can: a file is a log of row
    /// versions, and the default says so.
    async fn delete(&mut self, keys: &[String]) -> Result<u64> {
        let _ = keys;
        Err(Error::unsupported(
            "a jsonl or csv sink cannot delete rows (a file is a log of row versions)",
        ))
    }

    /// Releases connections and files.
    async fn close(&mut self);
}

/// Builds the sink of a config.
pub fn build(config: &SinkConfig) -> Result<Box<dyn Sink>> {
    Ok(match config {
        SinkConfig::Sqlite { path, table } => Box::new(TableSink::sqlite(path.clone(), table)?),
        SinkConfig::Postgres { url, table } => {
            let url = url
                .resolve(&extdata::SecretPolicy::deny_all())
                .map_err(|e| Error::config(format!("sink.url: {e}")))?;
            let options = postgres_options("sink.url", url.expose_secret())?;
            Box::new(TableSink::postgres(options, table)?)
        }
        SinkConfig::Jsonl { path } => Box::new(FileSink::new(path.clone(), FileFormat::Jsonl)),
        SinkConfig::Csv { path } => Box::new(FileSink::new(path.clone(), FileFormat::Csv)),
    })
}

/// The connection options of the platform's own PostgreSQL (the sink's, the shared state
/// store's) from the URL in config field `field`. The URL carries the platform's own
/// password, so TLS is verified in full (chain and host name) unless the URL names
/// another `sslmode`; `prefer` and `allow` are refused because they fall back to an
/// unencrypted connection, password included, when a server (or anything in between)
/// declines TLS. `PGSSLMODE` in the environment does not weaken the default.
pub(crate) fn postgres_options(field: &str, url: &str) -> Result<PgConnectOptions> {
    let options: PgConnectOptions = url.parse().map_err(|_| {
        // sqlx's message may quote the URL with its password: not passed on.
        Error::config(format!("{field}: not a valid postgres:// URL"))
    })?;
    match explicit_ssl_mode(url) {
        None => Ok(options.ssl_mode(PgSslMode::VerifyFull)),
        Some(mode) if mode == "prefer" || mode == "allow" => Err(Error::config(format!(
            "{field}: sslmode={mode} sends the password unencrypted when the server \
             declines TLS; leave sslmode out (verify-full, with sslrootcert=<CA file> for a \
             private CA), or name verify-ca, require, or disable to accept plaintext"
        ))),
        Some(_) => Ok(options),
    }
}

/// `postgresql `host:port/database`` for messages (never the user or password).
pub(crate) fn postgres_label(options: &PgConnectOptions) -> String {
    format!(
        "postgresql `{}:{}/{}`",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

/// The `sslmode` (or `ssl-mode`) the URL's query names, lower-cased.
fn explicit_ssl_mode(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| matches!(*key, "sslmode" | "ssl-mode"))
        .map(|(_, value)| value.to_ascii_lowercase())
        .next_back()
}

// ------------------------------------------------------------------------------ files

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileFormat {
    Jsonl,
    Csv,
}

/// A JSON-lines or CSV file sink (see the module documentation).
pub struct FileSink {
    path: PathBuf,
    format: FileFormat,
    file: Option<std::fs::File>,
    position: u64,
    columns: Columns,
}

extdata::debug_fields!(FileSink |sink| { path, format, position });

impl FileSink {
    fn new(path: PathBuf, format: FileFormat) -> Self {
        FileSink {
            path,
            format,
            file: None,
            position: 0,
            columns: Columns::from(Vec::<Column>::new()),
        }
    }

    fn io_error(&self, what: &str, error: std::io::Error) -> Error {
        Error::new(
            ErrorKind::Internal,
            format!("sink `{}`: {what}: {error}", self.path.display()),
        )
        .with_source(error)
    }
}

#[async_trait]
impl Sink for FileSink {
    fn keeps_keys(&self) -> bool {
        false
    }

    async fn open(&mut self, columns: &Columns, _key: &str, resume_at: Option<u64>) -> Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&self.path)
            .map_err(|e| self.io_error("cannot open", e))?;
        let length = file
            .metadata()
            .map_err(|e| self.io_error("cannot read its length", e))?
            .len();
        let position = match resume_at {
            // A crash after the write but before the checkpoint leaves rows the next run
            // writes again: cut them off.
            Some(at) if at < length => {
                file.set_len(at)
                    .map_err(|e| self.io_error("cannot cut back to the checkpoint", e))?;
                file.sync_all()
                    .map_err(|e| self.io_error("cannot sync", e))?;
                at
            }
            Some(at) if at > length => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!(
                        "sink `{}` is shorter ({length} bytes) than at the last checkpoint ({at} bytes): it was changed outside the import",
                        self.path.display()
                    ),
                ));
            }
            Some(at) => at,
            None => length,
        };
        self.position = position;
        self.columns = columns.clone();
        self.file = Some(file);
        if self.format == FileFormat::Csv && position == 0 {
            let mut header = csv::Writer::from_writer(Vec::new());
            header
                .write_record(columns.iter().map(|c| c.name.as_str()))
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
            let bytes = header
                .into_inner()
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
            self.append(&bytes)?;
        }
        Ok(())
    }

    async fn write(
        &mut self,
        rows: &[Row],
        mode: ImportMode,
        existing: &[bool],
    ) -> Result<WriteOutcome> {
        let mut outcome = WriteOutcome::default();
        let mut buffer = Vec::with_capacity(rows.len() * 64);
        let mut csv_writer =
            (self.format == FileFormat::Csv).then(|| csv::Writer::from_writer(Vec::new()));
        for (row, &exists) in rows.iter().zip(existing) {
            let wanted = match mode {
                ImportMode::AddAndUpdate | ImportMode::FullRefresh => true,
                ImportMode::AddOnly => !exists,
                ImportMode::UpdateOnly => exists,
            };
            if !wanted {
                outcome.skipped += 1;
                continue;
            }
            if exists {
                outcome.updated += 1;
            } else {
                outcome.inserted += 1;
            }
            match &mut csv_writer {
                Some(writer) => writer
                    .write_record(row.values().iter().map(Value::to_text_lossless))
                    .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?,
                None => {
                    serde_json::to_writer(&mut buffer, &row.to_json())
                        .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
                    buffer.push(b'\n');
                }
            }
        }
        if let Some(writer) = csv_writer {
            buffer = writer
                .into_inner()
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        }
        self.append(&buffer)?;
        Ok(outcome)
    }

    fn position(&self) -> Option<u64> {
        Some(self.position)
    }

    async fn close(&mut self) {
        self.file = None;
    }
}

impl FileSink {
    /// Appends at the recorded position and `fsync`s: the bytes are on disk before the
    /// checkpoint that covers them is written.
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::{Seek as _, SeekFrom};
        let Some(file) = self.file.as_mut() else {
            return Err(Error::new(ErrorKind::Internal, "the sink is not open"));
        };
        let result = file
            .seek(SeekFrom::Start(self.position))
            .and_then(|_| file.write_all(bytes))
            .and_then(|_| file.sync_data());
        result.map_err(|e| self.io_error("cannot write", e))?;
        self.position += bytes.len() as u64;
        Ok(())
    }
}

// ----------------------------------------------------------------------------- tables

#[derive(Clone)]
enum TablePool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A SQLite or PostgreSQL table keyed by the import's key (see the module docs).
pub struct TableSink {
    label: String,
    table: Vec<String>,
    pool: TablePool,
    columns: Columns,
    key_index: usize,
}

extdata::debug_fields!(TableSink |sink| { sink: sink.label, table: sink.table.join(".") });

/// Bound values per statement (SQLite allows 32766, PostgreSQL 65535).
const SQLITE_PARAMS: usize = 30_000;
const POSTGRES_PARAMS: usize = 60_000;

/// How long a PostgreSQL sink waits for a connection (a server that is down fails the
/// run after this).
const SINK_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Keys per `DELETE … IN (…)` (SQLite allows 32766 bound values).
const DELETES_PER_STATEMENT: usize = 10_000;

/// A column of the sink's table, as its database describes it.
#[derive(Debug)]
struct TableColumn {
    name: String,
    /// The declared type (SQLite) or `data_type` (PostgreSQL), as the database words it.
    declared: String,
    /// NOT NULL without a default (nor an identity or generated value): an insert must
    /// give it.
    required: bool,
}

/// What a column holds, to tell whether a table column takes a query column's values.
/// Only the types a table sink creates are told apart; others are not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Integer,
    Float,
    Decimal,
    Text,
    Bool,
    Bytes,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Json,
}

impl Family {
    /// The family of a declared type; `None` for a type this sink does not create (on
    /// SQLite, where any column holds any value, only its four storage types count).
    fn of(declared: &str, postgres: bool) -> Option<Family> {
        use Family::*;
        let declared = declared.trim().to_ascii_lowercase();
        if !postgres {
            return Some(match declared.as_str() {
                "integer" => Integer,
                "real" => Float,
                "text" => Text,
                "blob" => Bytes,
                _ => return None,
            });
        }
        Some(match declared.as_str() {
            "smallint" | "integer" | "bigint" => Integer,
            "real" | "double precision" => Float,
            "numeric" => Decimal,
            "text" | "character varying" | "character" => Text,
            "boolean" => Bool,
            "bytea" => Bytes,
            "date" => Date,
            "time" | "time without time zone" => Time,
            "timestamp" | "timestamp without time zone" => Timestamp,
            "timestamptz" | "timestamp with time zone" => TimestampTz,
            "uuid" => Uuid,
            "json" | "jsonb" => Json,
            _ => return None,
        })
    }

    /// Whether a column of this family takes values the sink would give a column of
    /// `wanted`: the same family, text (which takes every value's text), or a widening
    /// the database does on assignment.
    fn takes(self, wanted: Family) -> bool {
        use Family::*;
        self == wanted
            || self == Text
            || matches!(
                (self, wanted),
                (Float | Decimal, Integer)
                    | (Decimal, Float)
                    | (Timestamp, TimestampTz)
                    | (TimestampTz, Timestamp)
            )
    }
}

fn split_table(table: &str) -> Vec<String> {
    table.split('.').map(str::to_owned).collect()
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

impl TableSink {
    fn sqlite(path: PathBuf, table: &str) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        Ok(TableSink {
            label: format!("sqlite `{}`", path.display()),
            table: split_table(table),
            pool: TablePool::Sqlite(pool),
            columns: Columns::from(Vec::<Column>::new()),
            key_index: 0,
        })
    }

    fn postgres(options: PgConnectOptions, table: &str) -> Result<Self> {
        let label = postgres_label(&options);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            // sqlx retries a refused connection until this runs out (30 s by default).
            .acquire_timeout(SINK_ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(TableSink {
            label,
            table: split_table(table),
            pool: TablePool::Postgres(pool),
            columns: Columns::from(Vec::<Column>::new()),
            key_index: 0,
        })
    }

    fn error(&self, what: &str, error: sqlx::Error) -> Error {
        let kind = match &error {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => ErrorKind::Connect,
            sqlx::Error::Tls(_) => ErrorKind::Tls,
            // Refused logins are not query errors: a retry with the same URL cannot help.
            sqlx::Error::Database(e) => match e.code().as_deref().map(|c| c.get(..2)) {
                Some(Some("28")) => ErrorKind::Auth,
                Some(Some("08")) => ErrorKind::Connect,
                _ => ErrorKind::Query,
            },
            _ => ErrorKind::Internal,
        };
        // The sqlx error's Display names the server's message; connect options (with the
        // password) are never formatted.
        let message = format!("sink {}: {what}: {error}", self.label);
        // sqlx reports a failed certificate check as an I/O error.
        if let Some(hint) = extdata::tls_hint(&message) {
            return Error::new(ErrorKind::Tls, format!("{message} ({hint})"));
        }
        Error::new(kind, message)
    }

    fn table_sql(&self) -> String {
        self.table
            .iter()
            .map(|p| quote(p))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn is_postgres(&self) -> bool {
        matches!(self.pool, TablePool::Postgres(_))
    }

    fn column_type(&self, kind: ValueKind) -> &'static str {
        if self.is_postgres() {
            postgres_type(kind)
        } else {
            sqlite_type(kind)
        }
    }

    fn create_sql(&self) -> String {
        let key = &self.columns[self.key_index].name;
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), self.column_type(c.value_kind)))
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, UNIQUE ({}))",
            self.table_sql(),
            columns.join(", "),
            quote(key)
        )
    }

    async fn execute(&self, sql: String) -> std::result::Result<(), sqlx::Error> {
        match &self.pool {
            TablePool::Sqlite(pool) => sqlx::query(AssertSqlSafe(sql))
                .execute(pool)
                .await
                .map(drop),
            TablePool::Postgres(pool) => sqlx::query(AssertSqlSafe(sql))
                .execute(pool)
                .await
                .map(drop),
        }
    }

    /// The table's columns, in order.
    async fn table_columns(&self) -> Result<Vec<TableColumn>> {
        let (schema, name) = match self.table.as_slice() {
            [schema, name] => (Some(schema.clone()), name.clone()),
            _ => (None, self.table.join(".")),
        };
        let rows = match &self.pool {
            TablePool::Sqlite(pool) => {
                let source = if schema.is_some() {
                    "pragma_table_info(?1, ?2)"
                } else {
                    "pragma_table_info(?1)"
                };
                sqlx::query_as::<_, (String, String, bool)>(AssertSqlSafe(format!(
                    "SELECT name, type, \"notnull\" <> 0 AND dflt_value IS NULL AND pk = 0
                     FROM {source} ORDER BY cid"
                )))
                .bind(name)
                .bind(schema)
                .fetch_all(pool)
                .await
            }
            TablePool::Postgres(pool) => {
                sqlx::query_as::<_, (String, String, bool)>(
                    "SELECT column_name::text, data_type::text,
                       is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'
                         AND is_generated = 'NEVER'
                     FROM information_schema.columns
                     WHERE table_name = $1 AND table_schema = COALESCE($2, current_schema())
                     ORDER BY ordinal_position",
                )
                .bind(name)
                .bind(schema)
                .fetch_all(pool)
                .await
            }
        };
        let rows = rows.map_err(|e| self.error("cannot read the table's columns", e))?;
        Ok(rows
            .into_iter()
            .map(|(name, declared, required)| TableColumn {
                name,
                declared,
                required,
            })
            .collect())
    }

    /// Makes the table follow the query: adds the columns the query gained (nullable),
    /// and fails, naming the column and what to do, where a table sink cannot follow — a
    /// column whose type does not take the query's values any more, a NOT NULL column
    /// without a default that the query no longer gives. Nothing is changed unless every
    /// column can follow. A column the query no longer gives otherwise stays as it is.
    async fn follow_the_query(&self) -> Result<()> {
        let existing = self.table_columns().await?;
        let postgres = self.is_postgres();
        // PostgreSQL's quoted names are exact; SQLite's are case-insensitive.
        let same = |a: &str, b: &str| a == b || (!postgres && a.eq_ignore_ascii_case(b));
        let table = self.table.join(".");
        let mut gained = Vec::new();
        for column in self.columns.iter() {
            let Some(found) = existing.iter().find(|c| same(&c.name, &column.name)) else {
                gained.push(column);
                continue;
            };
            let wanted = self.column_type(column.value_kind);
            let fits = column.value_kind == ValueKind::Null
                || match (
                    Family::of(&found.declared, postgres),
                    Family::of(wanted, postgres),
                ) {
                    (Some(have), Some(want)) => have.takes(want),
                    _ => true,
                };
            if !fits {
                let how = if postgres {
                    format!(
                        "`ALTER TABLE {table} ALTER COLUMN \"{}\" TYPE {wanted} USING …`",
                        column.name
                    )
                } else {
                    "SQLite cannot change a column's type: copy the rows into a new table"
                        .to_owned()
                };
                return Err(Error::new(
                    ErrorKind::Query,
                    format!(
                        "sink {}: column `{}` of table `{table}` is {} but the query now gives \
                         {} values ({wanted} in a new table); a table sink does not change a \
                         column's type: change it yourself ({how}), or cast the column in the \
                         query back to {}",
                        self.label, column.name, found.declared, column.value_kind, found.declared
                    ),
                ));
            }
        }
        if let Some(dropped) = existing
            .iter()
            .find(|c| c.required && !self.columns.iter().any(|q| same(&q.name, &c.name)))
        {
            return Err(Error::new(
                ErrorKind::Query,
                format!(
                    "sink {}: column `{}` of table `{table}` is NOT NULL without a default, and \
                     the query does not give it (any more); a table sink does not drop columns: \
                     give it in the query again, or drop the column (or its NOT NULL) yourself",
                    self.label, dropped.name
                ),
            ));
        }
        for column in gained {
            let sql = format!(
                "ALTER TABLE {} ADD COLUMN {}{} {}",
                self.table_sql(),
                if postgres { "IF NOT EXISTS " } else { "" },
                quote(&column.name),
                self.column_type(column.value_kind)
            );
            match self.execute(sql).await {
                Ok(()) => tracing::info!(
                    sink = %self.label,
                    table = %table,
                    column = %column.name,
                    "added the column the query gained"
                ),
                // Another run added it first.
                Err(sqlx::Error::Database(e)) if e.message().contains("duplicate column") => {}
                Err(e) => {
                    return Err(self.error(&format!("cannot add column `{}`", column.name), e));
                }
            }
        }
        Ok(())
    }

    /// Whether the key column compares with a remembered key (its text) bound as an
    /// integer or as text; otherwise it is compared as text (`CAST(key AS TEXT)`).
    fn compares_directly(&self) -> bool {
        use ValueKind::*;
        matches!(
            self.columns[self.key_index].value_kind,
            I8 | I16 | I32 | I64 | U8 | U16 | U32 | Text
        )
    }

    /// `DELETE` of the rows of `keys` keys.
    fn delete_sql(&self, keys: usize) -> String {
        let key = quote(&self.columns[self.key_index].name);
        let column = if self.compares_directly() {
            key
        } else {
            format!("CAST({key} AS TEXT)")
        };
        let list: Vec<String> = (1..=keys).map(|n| self.placeholder(n)).collect();
        format!(
            "DELETE FROM {} WHERE {column} IN ({})",
            self.table_sql(),
            list.join(", ")
        )
    }

    /// Binds a remembered key for [`delete_sql`](Self::delete_sql).
    fn bind_key<'q, DB: BindValues>(&self, query: SqlQuery<'q, DB>, key: &str) -> SqlQuery<'q, DB> {
        let integer =
            self.compares_directly() && self.columns[self.key_index].value_kind != ValueKind::Text;
        match key.parse::<i64>() {
            Ok(n) if integer => DB::bind_value(query, &Value::I64(n), ValueKind::I64),
            _ => DB::bind_value(query, &Value::Text(key.to_owned()), ValueKind::Text),
        }
    }

    fn placeholder(&self, n: usize) -> String {
        if self.is_postgres() {
            format!("${n}")
        } else {
            format!("?{n}")
        }
    }

    /// `(p1, p2, …), (…)` for `rows` rows, starting at placeholder `first`.
    fn values_sql(&self, rows: usize, first: usize) -> String {
        let width = self.columns.len();
        (0..rows)
            .map(|r| {
                let items: Vec<String> = (0..width)
                    .map(|c| self.placeholder(first + r * width + c))
                    .collect();
                format!("({})", items.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn insert_sql(&self, rows: usize, mode: ImportMode) -> String {
        let key = quote(&self.columns[self.key_index].name);
        let updates: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.key_index)
            .map(|(_, c)| format!("{0} = excluded.{0}", quote(&c.name)))
            .collect();
        let conflict = if mode == ImportMode::AddOnly || updates.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        format!(
            "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({key}) {conflict}",
            self.table_sql(),
            self.column_list(),
            self.values_sql(rows, 1)
        )
    }

    fn update_sql(&self, rows: usize) -> String {
        let sets: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.key_index)
            .map(|(i, c)| format!("{} = v.column{}", quote(&c.name), i + 1))
            .collect();
        let table = self.table_sql();
        let key = quote(&self.columns[self.key_index].name);
        if sets.is_empty() {
            // Only a key: "updating" it changes nothing; count the matches.
            return format!(
                "UPDATE {table} SET {key} = {key} WHERE {key} IN (SELECT column1 FROM (VALUES {}) AS v)",
                self.key_values_sql(rows, 1)
            );
        }
        format!(
            "UPDATE {table} SET {} FROM (VALUES {}) AS v WHERE {table}.{key} = v.column{}",
            sets.join(", "),
            self.values_sql(rows, 1),
            self.key_index + 1
        )
    }

    fn key_values_sql(&self, rows: usize, first: usize) -> String {
        (0..rows)
            .map(|r| format!("({})", self.placeholder(first + r)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn count_existing_sql(&self, rows: usize) -> String {
        let key = quote(&self.columns[self.key_index].name);
        let list: Vec<String> = (1..=rows).map(|n| self.placeholder(n)).collect();
        format!(
            "SELECT COUNT(*) FROM {} WHERE {key} IN ({})",
            self.table_sql(),
            list.join(", ")
        )
    }

    fn rows_per_statement(&self) -> usize {
        let limit = if self.is_postgres() {
            POSTGRES_PARAMS
        } else {
            SQLITE_PARAMS
        };
        (limit / self.columns.len().max(1)).max(1)
    }
}

#[async_trait]
impl Sink for TableSink {
    fn keeps_keys(&self) -> bool {
        true
    }

    async fn open(&mut self, columns: &Columns, key: &str, _resume_at: Option<u64>) -> Result<()> {
        self.columns = columns.clone();
        self.key_index = key_position(columns, key)?;
        self.execute(self.create_sql())
            .await
            .map_err(|e| self.error("cannot create the table", e))?;
        self.follow_the_query().await
    }

    async fn write(
        &mut self,
        rows: &[Row],
        mode: ImportMode,
        _existing: &[bool],
    ) -> Result<WriteOutcome> {
        match self.pool.clone() {
            TablePool::Sqlite(pool) => TableWrite::all(self, &pool, rows, mode).await,
            TablePool::Postgres(pool) => TableWrite::all(self, &pool, rows, mode).await,
        }
    }

    fn position(&self) -> Option<u64> {
        None
    }

    async fn delete(&mut self, keys: &[String]) -> Result<u64> {
        let mut deleted = 0;
        for chunk in keys.chunks(DELETES_PER_STATEMENT) {
            let sql = self.delete_sql(chunk.len());
            let done = match &self.pool {
                TablePool::Sqlite(pool) => {
                    let mut query = sqlx::query::<Sqlite>(AssertSqlSafe(sql));
                    for key in chunk {
                        query = self.bind_key(query, key);
                    }
                    query.execute(pool).await.map(|r| r.rows_affected())
                }
                TablePool::Postgres(pool) => {
                    let mut query = sqlx::query::<Postgres>(AssertSqlSafe(sql));
                    for key in chunk {
                        query = self.bind_key(query, key);
                    }
                    query.execute(pool).await.map(|r| r.rows_affected())
                }
            };
            deleted += done.map_err(|e| self.error("cannot delete the missing keys", e))?;
        }
        Ok(deleted)
    }

    async fn close(&mut self) {
        match &self.pool {
            TablePool::Sqlite(pool) => pool.close().await,
            TablePool::Postgres(pool) => pool.close().await,
        }
    }
}

fn add(a: WriteOutcome, b: WriteOutcome) -> WriteOutcome {
    WriteOutcome {
        inserted: a.inserted + b.inserted,
        updated: a.updated + b.updated,
        skipped: a.skipped + b.skipped,
    }
}

/// A query of the sqlx database `DB`.
type SqlQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>;

/// Binding of [`Value`]s for one sqlx database.
trait BindValues: sqlx::Database {
    fn bind_value<'q>(
        query: SqlQuery<'q, Self>,
        value: &Value,
        kind: ValueKind,
    ) -> SqlQuery<'q, Self>;
}

/// A [`TableSink`]'s write of a batch, in one transaction of the sqlx database `DB`;
/// what `DB` must offer is said once, here.
struct TableWrite<'s, DB: sqlx::Database> {
    sink: &'s TableSink,
    tx: sqlx::Transaction<'static, DB>,
}

impl<'s, DB> TableWrite<'s, DB>
where
    DB: BindValues,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<<DB as sqlx::Database>::Row>,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    /// Writes `rows` in one transaction,
    /// [`rows_per_statement`](TableSink::rows_per_statement) rows a statement.
    async fn all(
        sink: &'s TableSink,
        pool: &sqlx::Pool<DB>,
        rows: &[Row],
        mode: ImportMode,
    ) -> Result<WriteOutcome> {
        let tx = pool
            .begin()
            .await
            .map_err(|e| sink.error("cannot begin", e))?;
        let mut write = TableWrite { sink, tx };
        let mut outcome = WriteOutcome::default();
        for part in rows.chunks(sink.rows_per_statement()) {
            outcome = add(outcome, write.part(part, mode).await?);
        }
        write
            .tx
            .commit()
            .await
            .map_err(|e| sink.error("cannot commit", e))?;
        Ok(outcome)
    }

    /// Writes `rows` with one statement (two when counting the keys already there).
    async fn part(&mut self, rows: &[Row], mode: ImportMode) -> Result<WriteOutcome> {
        use sqlx::Row as _;
        let sink = self.sink;
        let n = rows.len() as u64;
        let bind_rows = |sql: String| {
            let mut query = sqlx::query::<DB>(AssertSqlSafe(sql));
            for row in rows {
                for (value, column) in row.values().iter().zip(sink.columns.iter()) {
                    query = DB::bind_value(query, value, column.value_kind);
                }
            }
            query
        };
        match mode {
            ImportMode::AddAndUpdate | ImportMode::FullRefresh => {
                let mut count =
                    sqlx::query::<DB>(AssertSqlSafe(sink.count_existing_sql(rows.len())));
                let key_kind = sink.columns[sink.key_index].value_kind;
                for row in rows {
                    count = DB::bind_value(count, &row.values()[sink.key_index], key_kind);
                }
                let existing: i64 = count
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err(|e| sink.error("cannot count existing keys", e))?
                    .try_get(0)
                    .map_err(|e| sink.error("cannot count existing keys", e))?;
                bind_rows(sink.insert_sql(rows.len(), mode))
                    .execute(&mut *self.tx)
                    .await
                    .map_err(|e| sink.error("cannot upsert", e))?;
                let existing = (existing as u64).min(n);
                Ok(WriteOutcome {
                    inserted: n - existing,
                    updated: existing,
                    skipped: 0,
                })
            }
            ImportMode::AddOnly => {
                let done = bind_rows(sink.insert_sql(rows.len(), mode))
                    .execute(&mut *self.tx)
                    .await
                    .map_err(|e| sink.error("cannot insert", e))?;
                let inserted = rows_affected::<DB>(&done).min(n);
                Ok(WriteOutcome {
                    inserted,
                    updated: 0,
                    skipped: n - inserted,
                })
            }
            ImportMode::UpdateOnly => {
                let query = if sink.columns.len() == 1 {
                    let mut query = sqlx::query::<DB>(AssertSqlSafe(sink.update_sql(rows.len())));
                    for row in rows {
                        query = DB::bind_value(query, &row.values()[0], sink.columns[0].value_kind);
                    }
                    query
                } else {
                    bind_rows(sink.update_sql(rows.len()))
                };
                let done = query
                    .execute(&mut *self.tx)
                    .await
                    .map_err(|e| sink.error("cannot update", e))?;
                let updated = rows_affected::<DB>(&done).min(n);
                Ok(WriteOutcome {
                    inserted: 0,
                    updated,
                    skipped: n - updated,
                })
            }
        }
    }
}

fn rows_affected<DB: sqlx::Database>(result: &<DB as sqlx::Database>::QueryResult) -> u64 {
    // Both databases' results say how many rows changed; sqlx has no shared trait for it.
    let any: &dyn std::any::Any = result;
    if let Some(r) = any.downcast_ref::<sqlx::sqlite::SqliteQueryResult>() {
        return r.rows_affected();
    }
    if let Some(r) = any.downcast_ref::<sqlx::postgres::PgQueryResult>() {
        return r.rows_affected();
    }
    0
}

/// The index of the key column; an error naming the columns when it is not there.
pub(crate) fn key_position(columns: &[Column], key: &str) -> Result<usize> {
    columns
        .iter()
        .position(|c| c.name == key)
        .or_else(|| {
            columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(key))
        })
        .ok_or_else(|| {
            Error::config(format!(
                "key column `{key}` is not among the query's columns ({})",
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

fn sqlite_type(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Bool
        | ValueKind::I8
        | ValueKind::I16
        | ValueKind::I32
        | ValueKind::I64
        | ValueKind::U8
        | ValueKind::U16
        | ValueKind::U32 => "INTEGER",
        ValueKind::F32 | ValueKind::F64 => "REAL",
        ValueKind::Bytes => "BLOB",
        // u64, i128, u128 and decimals keep every digit as text.
        _ => "TEXT",
    }
}

fn postgres_type(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Bool => "boolean",
        ValueKind::I8 | ValueKind::I16 | ValueKind::U8 => "smallint",
        ValueKind::I32 | ValueKind::U16 => "integer",
        ValueKind::I64 | ValueKind::U32 => "bigint",
        ValueKind::U64 | ValueKind::I128 | ValueKind::U128 | ValueKind::Decimal => "numeric",
        ValueKind::F32 => "real",
        ValueKind::F64 => "double precision",
        ValueKind::Bytes => "bytea",
        ValueKind::Date => "date",
        ValueKind::Time => "time",
        ValueKind::Timestamp => "timestamp",
        ValueKind::TimestampTz => "timestamptz",
        ValueKind::Uuid => "uuid",
        ValueKind::Json | ValueKind::Array | ValueKind::Tuple | ValueKind::Map => "jsonb",
        _ => "text",
    }
}

impl BindValues for Sqlite {
    fn bind_value<'q>(
        query: SqlQuery<'q, Self>,
        value: &Value,
        _kind: ValueKind,
    ) -> SqlQuery<'q, Self> {
        match value {
            Value::Null => query.bind(None::<String>),
            Value::Bool(v) => query.bind(*v),
            Value::I8(v) => query.bind(i64::from(*v)),
            Value::I16(v) => query.bind(i64::from(*v)),
            Value::I32(v) => query.bind(i64::from(*v)),
            Value::I64(v) => query.bind(*v),
            Value::U8(v) => query.bind(i64::from(*v)),
            Value::U16(v) => query.bind(i64::from(*v)),
            Value::U32(v) => query.bind(i64::from(*v)),
            Value::F32(v) => query.bind(f64::from(*v)),
            Value::F64(v) => query.bind(*v),
            Value::Bytes(v) => query.bind(v.clone()),
            Value::Timestamp(t) => query.bind(t.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
            other => query.bind(other.to_text_lossless()),
        }
    }
}

impl BindValues for Postgres {
    fn bind_value<'q>(
        query: SqlQuery<'q, Self>,
        value: &Value,
        kind: ValueKind,
    ) -> SqlQuery<'q, Self> {
        use sqlx::types::{BigDecimal, Json, Uuid};
        use std::str::FromStr as _;
        let numeric = |text: String| BigDecimal::from_str(&text).ok();
        match value {
            // A NULL is sent with the column's type: PostgreSQL does not cast text to
            // most types on assignment.
            Value::Null => match postgres_type(kind) {
                "boolean" => query.bind(None::<bool>),
                "smallint" => query.bind(None::<i16>),
                "integer" => query.bind(None::<i32>),
                "bigint" => query.bind(None::<i64>),
                "numeric" => query.bind(None::<BigDecimal>),
                "real" => query.bind(None::<f32>),
                "double precision" => query.bind(None::<f64>),
                "bytea" => query.bind(None::<Vec<u8>>),
                "date" => query.bind(None::<chrono::NaiveDate>),
                "time" => query.bind(None::<chrono::NaiveTime>),
                "timestamp" => query.bind(None::<chrono::NaiveDateTime>),
                "timestamptz" => query.bind(None::<chrono::DateTime<chrono::Utc>>),
                "uuid" => query.bind(None::<Uuid>),
                "jsonb" => query.bind(None::<Json<serde_json::Value>>),
                _ => query.bind(None::<String>),
            },
            Value::Bool(v) => query.bind(*v),
            Value::I8(v) => query.bind(i16::from(*v)),
            Value::I16(v) => query.bind(*v),
            Value::U8(v) => query.bind(i16::from(*v)),
            Value::I32(v) => query.bind(*v),
            Value::U16(v) => query.bind(i32::from(*v)),
            Value::I64(v) => query.bind(*v),
            Value::U32(v) => query.bind(i64::from(*v)),
            Value::U64(_) | Value::I128(_) | Value::U128(_) | Value::Decimal(_) => {
                query.bind(numeric(value.to_text_lossless()))
            }
            Value::F32(v) => query.bind(*v),
            Value::F64(v) => query.bind(*v),
            Value::Bytes(v) => query.bind(v.clone()),
            Value::Date(v) => query.bind(*v),
            Value::Time(v) => query.bind(*v),
            Value::Timestamp(v) => query.bind(*v),
            Value::TimestampTz(v) => query.bind(*v),
            Value::Uuid(v) => query.bind(*v),
            Value::Json(v) => query.bind(Json(v.clone())),
            Value::Array(_) | Value::Tuple(_) | Value::Map(_) => query.bind(Json(value.to_json())),
            other => query.bind(other.to_text_lossless()),
        }
    }
}

/// Keeps the last row of each key and drops rows with a NULL key; returns the rows and
/// how many were dropped.
pub(crate) fn dedupe_by_key(rows: Vec<Row>, key_index: usize) -> (Vec<Row>, u64) {
    let total = rows.len();
    let mut last: HashMap<String, usize> = HashMap::with_capacity(total);
    for (i, row) in rows.iter().enumerate() {
        match row.get(key_index) {
            Some(Value::Null) | None => {}
            Some(v) => {
                last.insert(key_text(v), i);
            }
        }
    }
    let kept: Vec<Row> = rows
        .into_iter()
        .enumerate()
        .filter(|(i, row)| {
            row.get(key_index)
                .filter(|v| !v.is_null())
                .is_some_and(|v| last.get(&key_text(v)) == Some(i))
        })
        .map(|(_, row)| row)
        .collect();
    let dropped = (total - kept.len()) as u64;
    (kept, dropped)
}

/// The text a key is compared and remembered by.
pub(crate) fn key_text(value: &Value) -> String {
    value.to_text_lossless()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "postgresql://sink:s3cret-sink-pw@db.example.com:5432/profiles";

    #[test]
    fn postgres_sink_verifies_tls_in_full_unless_the_url_says_otherwise() {
        let options = postgres_options("sink.url", URL).unwrap();
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        for (query, expected) in [
            ("sslmode=verify-ca", PgSslMode::VerifyCa),
            ("sslmode=require", PgSslMode::Require),
            ("ssl-mode=disable", PgSslMode::Disable),
            (
                "application_name=x&sslmode=verify-full",
                PgSslMode::VerifyFull,
            ),
        ] {
            let options = postgres_options("sink.url", &format!("{URL}?{query}")).unwrap();
            assert_eq!(
                format!("{:?}", options.get_ssl_mode()),
                format!("{expected:?}"),
                "{query}"
            );
        }
    }

    #[test]
    fn postgres_sink_refuses_modes_that_fall_back_to_plaintext() {
        for mode in ["prefer", "allow", "PREFER"] {
            let error = postgres_options("sink.url", &format!("{URL}?sslmode={mode}")).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Config);
            let text = format!("{error} {error:?}");
            assert!(text.contains("sink.url"), "{text}");
            assert!(text.contains("unencrypted"), "{text}");
            assert!(!text.contains("s3cret-sink-pw"), "{text}");
        }
    }
}
