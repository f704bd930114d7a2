//! The jobs sections of the configuration file (`state`, `[[imports]]`, `[[segments]]`,
//! `[[segment_sync]]`, `[[lookups]]`), read field by field so that every mistake is
//! reported at once, like connectors.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use extdata::{
    ConfigDocument, ConfigTable, DbKind, Dialect, Problems, Registry, SecretSource, Statement,
    Value, parse_duration, unknown_name,
};
use serde_json::{Map, Value as Json};

use crate::import::RetryPolicy;
use crate::schedule::Schedule;
use crate::state::{LegacyOwners, parse_cursor_initial};

/// Top-level sections this crate reads (next to the registry's `connectors` and
/// `accounts`).
pub const JOBS_SECTIONS: &[&str] = &["state", "imports", "segments", "segment_sync", "lookups"];

/// The state store's file name when the config file does not name one.
pub const DEFAULT_STATE_FILE: &str = "extdata-state.db";

/// How long a lease of the shared state store lasts without renewal when `[state]` does
/// not say: a worker that dies loses its imports after at most this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Which state store the jobs use (`state = "path"`, or a `[state]` table).
#[derive(Clone)]
pub enum StateConfig {
    /// One local SQLite file (the default: `extdata-state.db` beside the config file);
    /// one runner at a time holds the schedule.
    Sqlite {
        /// The file.
        path: PathBuf,
    },
    /// Tables in a PostgreSQL database, shared by any number of workers.
    Postgres {
        /// `postgres://…` URL; a secret (literal, `{ env }` or `{ file }`), read when the
        /// config is loaded. TLS is verified in full unless it names another `sslmode`.
        url: SecretSource,
        /// The schema of the tables (created when missing); default: the connection's
        /// `search_path`.
        schema: Option<String>,
        /// How long a lease lasts without renewal ([`DEFAULT_LEASE`]).
        lease: Duration,
    },
}

impl fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never printed.
        match self {
            StateConfig::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            StateConfig::Postgres { schema, lease, .. } => f
                .debug_struct("Postgres")
                .field("schema", schema)
                .field("lease", lease)
                .finish_non_exhaustive(),
        }
    }
}

/// Rows per batch of an import when the config does not say.
pub const DEFAULT_BATCH_SIZE: usize = 5000;
/// Statements per batch of a segment sync when the config does not say.
pub const DEFAULT_SYNC_BATCH_SIZE: usize = 500;
/// A lookup's timeout when the config does not say.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);
/// Rows a `result = "rows"` lookup returns at most when the config does not say.
pub const DEFAULT_LOOKUP_MAX_ROWS: usize = 100;

/// How imported rows meet the rows already in the sink, by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportMode {
    /// Upsert: new keys are inserted, existing keys updated.
    AddAndUpdate,
    /// Insert if absent: existing keys are left as they are.
    AddOnly,
    /// Update if present: new keys are skipped.
    UpdateOnly,
    /// Every run reads the whole result (no cursor) and upserts it; the keys this import
    /// wrote before that the result no longer has are counted as missing (and deleted
    /// from a table sink with `delete_missing = true`).
    FullRefresh,
}

impl ImportMode {
    /// The config spelling (`add_and_update`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ImportMode::AddAndUpdate => "add_and_update",
            ImportMode::AddOnly => "add_only",
            ImportMode::UpdateOnly => "update_only",
            ImportMode::FullRefresh => "full_refresh",
        }
    }
}

impl fmt::Display for ImportMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The incremental cursor of an import.
#[derive(Debug, Clone, PartialEq)]
pub struct CursorSpec {
    /// The column whose largest imported value is remembered.
    pub column: String,
    /// The value bound to `:cursor` before the first run.
    pub initial: Value,
}

/// Where an import writes.
#[derive(Clone)]
pub enum SinkConfig {
    /// A SQLite table keyed by the import's key.
    Sqlite {
        /// The database file (created when missing).
        path: PathBuf,
        /// The table (created from the query's columns when missing).
        table: String,
    },
    /// A PostgreSQL table keyed by the import's key.
    Postgres {
        /// `postgres://…` URL; a secret (literal, `{ env }` or `{ file }`).
        url: SecretSource,
        /// The table, optionally `schema.table`.
        table: String,
    },
    /// A JSON-lines file, one object per row version.
    Jsonl {
        /// The file (created when missing).
        path: PathBuf,
    },
    /// A CSV file with a header row, one record per row version.
    Csv {
        /// The file (created when missing).
        path: PathBuf,
    },
}

impl SinkConfig {
    /// The sink type as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Sqlite { .. } => "sqlite",
            SinkConfig::Postgres { .. } => "postgresql",
            SinkConfig::Jsonl { .. } => "jsonl",
            SinkConfig::Csv { .. } => "csv",
        }
    }
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The PostgreSQL URL may hold a password: never printed.
        match self {
            SinkConfig::Sqlite { path, table } => f
                .debug_struct("Sqlite")
                .field("path", path)
                .field("table", table)
                .finish(),
            SinkConfig::Postgres { table, .. } => f
                .debug_struct("Postgres")
                .field("table", table)
                .finish_non_exhaustive(),
            SinkConfig::Jsonl { path } => f.debug_struct("Jsonl").field("path", path).finish(),
            SinkConfig::Csv { path } => f.debug_struct("Csv").field("path", path).finish(),
        }
    }
}

/// One `[[imports]]` entry.
#[derive(Debug, Clone)]
pub struct ImportJob {
    /// Its name, unique among the account's imports (another account may use it too).
    pub name: String,
    /// The account that owns it.
    pub account: String,
    /// The connector it reads (assigned to the account).
    pub connector: String,
    /// The query; with a cursor it uses `:cursor`.
    pub query: String,
    /// The column that identifies a profile.
    pub key: String,
    /// The incremental cursor, when the import is incremental.
    pub cursor: Option<CursorSpec>,
    /// How rows meet existing rows.
    pub mode: ImportMode,
    /// With [`ImportMode::FullRefresh`] and a table sink: delete from the sink the rows
    /// of the keys that disappeared from the result (they are counted either way).
    pub delete_missing: bool,
    /// When it runs (`extdata run`); none: only on demand.
    pub schedule: Option<Schedule>,
    /// Rows per committed batch.
    pub batch_size: usize,
    /// Whether `extdata run` runs it at once when it starts.
    pub run_on_start: bool,
    /// Bound on the wait for each row (default: the connector's `query_timeout`).
    pub timeout: Option<Duration>,
    /// Where rows go.
    pub sink: SinkConfig,
    /// How a run that fails with a temporary error is retried (`retry = { attempts,
    /// backoff, max_backoff, max_time }`; defaults: [`RetryPolicy::default`]).
    pub retry: RetryPolicy,
}

/// One `[[segments]]` entry.
#[derive(Debug, Clone)]
pub struct SegmentDef {
    /// Its short name, unique among the account's segments.
    pub name: String,
    /// The account that owns it.
    pub account: String,
    /// The connector it reads.
    pub connector: String,
    /// The query returning the members.
    pub query: String,
    /// The column holding a member's key.
    pub key: String,
    /// How long an evaluation is reused.
    pub cache_ttl: Duration,
    /// Bound on the wait for each row (default: the connector's `query_timeout`).
    pub timeout: Option<Duration>,
}

/// One `[[segment_sync]]` entry: statements run on the external database when a key
/// joins or leaves a segment.
#[derive(Debug, Clone)]
pub struct SegmentSyncDef {
    /// Its name, unique among the account's segment syncs (default: the segment's name).
    pub name: String,
    /// The segment whose changes are written (the account's).
    pub segment: String,
    /// The account (the segment's; written as `account` when several accounts have a
    /// segment of that name).
    pub account: String,
    /// The connector written to (default: the segment's connector).
    pub connector: String,
    /// Run for each key that joined, with `:key` bound.
    pub on_add: Option<String>,
    /// Run for each key that left, with `:key` bound.
    pub on_remove: Option<String>,
    /// Statements per batch (one transaction where the backend has them).
    pub batch_size: usize,
    /// Bound on each batch.
    pub timeout: Option<Duration>,
}

/// What a lookup returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupResult {
    /// The first row as an object (none when there is no row).
    Row,
    /// All rows as a list of objects, at most `max_rows`.
    Rows,
}

/// What a failed or timed-out lookup does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The render fails.
    Fail,
    /// The lookup returns nothing (none for `row`, an empty list for `rows`).
    Empty,
}

/// One `[[lookups]]` entry.
#[derive(Debug, Clone)]
pub struct LookupDef {
    /// Its name, unique among the account's lookups, used in templates.
    pub name: String,
    /// The account that owns it.
    pub account: String,
    /// The connector it reads.
    pub connector: String,
    /// The query; its `:name` parameters come from the template call.
    pub query: String,
    /// Row or rows.
    pub result: LookupResult,
    /// Bound on the rows of `result = "rows"`.
    pub max_rows: usize,
    /// How long a result is reused (zero: not cached, but concurrent calls still share
    /// one query).
    pub cache_ttl: Duration,
    /// Bound on the whole lookup.
    pub timeout: Duration,
    /// What a failure does.
    pub on_error: OnError,
}

impl ImportJob {
    /// Why the query's cursor comparison can lose rows, when it can: a strict `> :cursor`
    /// (or `:cursor <`) never reads a row that arrives after a run with the saved cursor
    /// value itself. Such a query still runs as written; `>= :cursor` reads the rows at
    /// the saved value again, and the import writes only the new or changed ones.
    pub fn cursor_warning(&self) -> Option<String> {
        self.cursor.as_ref()?;
        strict_cursor_comparison(&self.query).then(|| {
            "compares with `> :cursor`, which never reads a row that arrives later with \
             the saved cursor value; use `>= :cursor` (rows at the saved value are read \
             again and those imported before are not written twice)"
                .to_owned()
        })
    }
}

/// Whether `sql` compares `:cursor` strictly: `> :cursor` or `:cursor <`.
fn strict_cursor_comparison(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let name = b":cursor";
    let mut from = 0;
    while let Some(found) = sql[from..].find(":cursor") {
        let start = from + found;
        let end = start + name.len();
        from = end;
        if bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            continue;
        }
        let before = sql[..start].trim_end().as_bytes();
        if before.last() == Some(&b'>') && !before.ends_with(b"<>") {
            return true;
        }
        let after = sql[end..].trim_start().as_bytes();
        if after.first() == Some(&b'<') && !matches!(after.get(1), Some(b'=' | b'>')) {
            return true;
        }
    }
    false
}

/// An entry's key: (account, name). Names are unique within an account; two accounts
/// may use the same names.
pub type EntryKey = (String, String);

/// The jobs sections of one configuration file, validated.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// The state store.
    pub state: StateConfig,
    /// Imports by (account, name).
    pub imports: BTreeMap<EntryKey, ImportJob>,
    /// Segments by (account, name).
    pub segments: BTreeMap<EntryKey, SegmentDef>,
    /// Segment syncs by (account, name).
    pub segment_syncs: BTreeMap<EntryKey, SegmentSyncDef>,
    /// Lookups by (account, name).
    pub lookups: BTreeMap<EntryKey, LookupDef>,
}

impl JobsConfig {
    /// Reads and validates the jobs sections. Each entry's connector must exist and be
    /// assigned to the entry's account: in `registry`, or, without one (the connectors
    /// or accounts have problems of their own), among the names `doc` declares, so that
    /// one pass reports every problem. Unknown names say what was probably meant.
    pub fn from_document(
        doc: &ConfigDocument,
        registry: Option<&Registry>,
    ) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let state = read_state(doc, &mut problems);
        let checker = Checker {
            registry,
            connectors: doc.declared_connectors(),
            assignments: doc.declared_assignments(),
        };
        let imports = read_section(doc, &IMPORTS, &mut problems, |entry| {
            read_import(entry, doc, &checker)
        });
        let segments = read_section(doc, &SEGMENTS, &mut problems, |entry| {
            read_segment(entry, &checker)
        });
        let declared_segments = declared_entries(doc, &SEGMENTS);
        let segment_syncs = read_section(doc, &SEGMENT_SYNCS, &mut problems, |entry| {
            read_sync(entry, &segments, &declared_segments, &checker)
        });
        let lookups = read_section(doc, &LOOKUPS, &mut problems, |entry| {
            read_lookup(entry, &checker)
        });
        let config = JobsConfig {
            state,
            imports,
            segments,
            segment_syncs,
            lookups,
        };
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// What is valid but probably wrong, one line per finding (e.g. an import whose
    /// query compares its cursor with `>`, see [`ImportJob::cursor_warning`]).
    pub fn warnings(&self) -> Vec<String> {
        self.imports
            .values()
            .filter_map(|job| {
                job.cursor_warning().map(|w| {
                    format!(
                        "import `{}` of account `{}`: query: {w}",
                        job.name, job.account
                    )
                })
            })
            .collect()
    }

    /// Which accounts have each import, segment and segment sync name: how a state
    /// store from before names were per account is migrated ([`LegacyOwners`]).
    pub fn legacy_owners(&self) -> LegacyOwners {
        fn by_name<T>(map: &BTreeMap<EntryKey, T>) -> BTreeMap<String, BTreeSet<String>> {
            let mut owners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (account, name) in map.keys() {
                owners
                    .entry(name.clone())
                    .or_default()
                    .insert(account.clone());
            }
            owners
        }
        LegacyOwners {
            imports: by_name(&self.imports),
            segments: by_name(&self.segments),
            segment_syncs: by_name(&self.segment_syncs),
        }
    }

    /// The number of entries of each kind: imports, segments, syncs, lookups.
    pub fn counts(&self) -> [usize; 4] {
        [
            self.imports.len(),
            self.segments.len(),
            self.segment_syncs.len(),
            self.lookups.len(),
        ]
    }
}

const CONFIG: &str = "config";

/// A `[[section]]` of jobs: its key in the file, what one entry is called in
/// messages, and the fields an entry may have.
struct Section {
    key: &'static str,
    what: &'static str,
    fields: &'static [&'static str],
}

const IMPORTS: Section = Section {
    key: "imports",
    what: "import",
    fields: &[
        "name",
        "account",
        "connector",
        "query",
        "key",
        "cursor",
        "mode",
        "delete_missing",
        "schedule",
        "batch_size",
        "run_on_start",
        "timeout",
        "retry",
        "sink",
    ],
};
const SEGMENTS: Section = Section {
    key: "segments",
    what: "segment",
    fields: &[
        "name",
        "account",
        "connector",
        "query",
        "key",
        "cache_ttl",
        "timeout",
    ],
};
const SEGMENT_SYNCS: Section = Section {
    key: "segment_sync",
    what: "segment sync",
    fields: &[
        "name",
        "account",
        "segment",
        "connector",
        "on_add",
        "on_remove",
        "batch_size",
        "timeout",
    ],
};
const LOOKUPS: Section = Section {
    key: "lookups",
    what: "lookup",
    fields: &[
        "name",
        "account",
        "connector",
        "query",
        "result",
        "max_rows",
        "cache_ttl",
        "timeout",
        "on_error",
    ],
};

/// An entry of a jobs section, known by its account and name.
trait Named {
    fn key(&self) -> EntryKey;
}

macro_rules! named {
    ($($entry:ty),*) => {
        $(impl Named for $entry {
            fn key(&self) -> EntryKey {
                (self.account.clone(), self.name.clone())
            }
        })*
    };
}
named!(ImportJob, SegmentDef, SegmentSyncDef, LookupDef);

/// An account id as written: a string or a whole number.
fn account_text(json: &Json) -> Option<String> {
    match json {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// The (account, name) an entry of `section` declares as written, before it is read
/// (a sync without `account` or `name` is keyed by its segment's name alone).
fn declared_key(section: &Section, fields: &Map<String, Json>) -> Option<(Option<String>, String)> {
    let name = fields.get("name").or_else(|| match section.key {
        "segment_sync" => fields.get("segment"),
        _ => None,
    });
    let name = name.and_then(Json::as_str)?.to_owned();
    Some((fields.get("account").and_then(account_text), name))
}

/// The (account, name) of every entry of `section` as written, valid or not.
fn declared_entries(doc: &ConfigDocument, section: &Section) -> BTreeSet<(Option<String>, String)> {
    doc.list(section.key, &mut Problems::default())
        .iter()
        .filter_map(|entry| declared_key(section, entry.as_object()?))
        .collect()
}

/// Reads every entry of `section` with `read`, keyed by (account, name). A name written
/// twice for one account is reported whether or not the entries are valid; a name that
/// collides only once known (a sync named after its segment) is reported when the entry
/// is added. Another account may use the same name: the problems of an entry whose name
/// several accounts use are labelled `name (account id)`.
fn read_section<T: Named>(
    doc: &ConfigDocument,
    section: &Section,
    problems: &mut Problems,
    mut read: impl FnMut(&mut Entry<'_>) -> Option<T>,
) -> BTreeMap<EntryKey, T> {
    let duplicate = |problems: &mut Problems, label: &str, account: &str| {
        problems.push(
            label,
            "name",
            format!(
                "is used by another {} of account `{account}`; names must be unique within an account",
                section.what
            ),
        );
    };
    let tables = doc.tables(section.key, problems);
    let mut accounts_of: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
    for table in &tables {
        if let Some((account, name)) = declared_key(section, table.fields) {
            accounts_of.entry(name).or_default().insert(account);
        }
    }
    let mut read_entries = BTreeMap::new();
    let mut written = BTreeSet::new();
    for mut table in tables {
        let declared = declared_key(section, table.fields);
        if let Some((Some(account), name)) = &declared
            && accounts_of.get(name).is_some_and(|a| a.len() > 1)
            && table.fields.contains_key("name")
        {
            table.label = format!("{name} (account {account})");
        }
        // (A sync's account is its segment's unless written: known once read.)
        let written_twice = match &declared {
            Some((Some(account), name)) if table.fields.contains_key("name") => {
                !written.insert((account.clone(), name.clone()))
            }
            _ => false,
        };
        if written_twice {
            let account = declared.and_then(|d| d.0).unwrap_or_default();
            duplicate(problems, &table.label, &account);
        }
        let label = table.label.clone();
        let mut entry = Entry::new(&table, section.fields, problems);
        let Some(value) = read(&mut entry) else {
            continue;
        };
        match read_entries.entry(value.key()) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(value);
            }
            std::collections::btree_map::Entry::Occupied(slot) if !written_twice => {
                let (account, name) = slot.key();
                let label = if label.contains(" (account ") {
                    format!("{name} (account {account})")
                } else {
                    name.clone()
                };
                duplicate(problems, &label, account);
            }
            std::collections::btree_map::Entry::Occupied(_) => {}
        }
    }
    read_entries
}

/// One entry being read: its label for problems and the fields not yet taken.
struct Entry<'a> {
    label: String,
    map: &'a Map<String, Json>,
    problems: &'a mut Problems,
    /// Problems count when the entry started: an entry with new problems is dropped.
    start: usize,
}

impl<'a> Entry<'a> {
    /// Starts reading `table`; its fields not in `known` are its first problems.
    fn new(table: &ConfigTable<'a>, known: &[&str], problems: &'a mut Problems) -> Self {
        let start = problems.0.len();
        table.check_fields(known, problems);
        Entry {
            label: table.label.clone(),
            map: table.fields,
            problems,
            start,
        }
    }

    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(&self.label, field, message);
    }

    fn ok(&self) -> bool {
        self.problems.0.len() == self.start
    }

    fn required(&mut self, field: &str) -> Option<String> {
        let value = self.optional(field);
        if value.is_none() && !self.map.contains_key(field) {
            self.problem(field, "is missing");
        }
        value
    }

    /// The value `options` pairs with the text of `field` (the first when the field is
    /// missing); a problem `` `text` is {what}; one of: … `` and the first otherwise.
    fn choice<T: Copy>(&mut self, field: &str, what: &str, options: &[(&str, T)]) -> T {
        let Some(text) = self.optional(field) else {
            return options[0].1;
        };
        match options.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => *value,
            None => {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                self.problem(
                    field,
                    format!("`{text}` {what}; one of: {}", names.join(", ")),
                );
                options[0].1
            }
        }
    }

    fn optional(&mut self, field: &str) -> Option<String> {
        match self.map.get(field)? {
            Json::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Json::String(_) => {
                self.problem(field, "must not be empty");
                None
            }
            _ => {
                self.problem(field, "must be a string");
                None
            }
        }
    }

    /// An account id: a string or a whole number.
    fn account(&mut self) -> Option<String> {
        match self.map.get("account") {
            Some(Json::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            Some(_) => self.required("account"),
            None => {
                self.problem("account", "is missing");
                None
            }
        }
    }

    fn duration(&mut self, field: &str, allow_zero: bool) -> Option<Duration> {
        let text = self.optional(field)?;
        match parse_duration(&text) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.problem(field, "must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(message) => {
                self.problem(field, message);
                None
            }
        }
    }

    fn positive(&mut self, field: &str, default: usize) -> usize {
        match self.map.get(field) {
            None => default,
            Some(Json::Number(n)) => match n.as_u64() {
                Some(v) if v > 0 && v <= 1_000_000 => v as usize,
                _ => {
                    self.problem(field, "must be a whole number from 1 to 1000000");
                    default
                }
            },
            Some(_) => {
                self.problem(field, "must be a whole number");
                default
            }
        }
    }

    fn bool(&mut self, field: &str) -> bool {
        match self.map.get(field) {
            None => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => {
                self.problem(field, "must be true or false");
                false
            }
        }
    }

    fn table(&mut self, field: &str) -> Option<&'a Map<String, Json>> {
        match self.map.get(field)? {
            Json::Object(map) => Some(map),
            _ => {
                self.problem(field, "must be a table");
                None
            }
        }
    }

    /// Unknown keys of a nested table.
    fn nested_unknown(&mut self, field: &str, map: &Map<String, Json>, known: &[&str]) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.problems
                    .push_unknown_field(&self.label, format!("{field}.{key}"), known);
            }
        }
    }

    fn nested_string(
        &mut self,
        field: &str,
        map: &Map<String, Json>,
        key: &str,
        required: bool,
    ) -> Option<String> {
        match map.get(key) {
            Some(Json::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(_) => {
                self.problem(&format!("{field}.{key}"), "must be a non-empty string");
                None
            }
            None if required => {
                self.problem(&format!("{field}.{key}"), "is missing");
                None
            }
            None => None,
        }
    }
}

/// Cross-checks against the registry, or, while the connectors and accounts have
/// problems of their own (no registry), against the names they declare, so that one
/// `check` reports the jobs' problems too.
struct Checker<'r> {
    registry: Option<&'r Registry>,
    /// The `[[connectors]]` names as written.
    connectors: BTreeSet<String>,
    /// Each account's `connectors` as written.
    assignments: BTreeMap<String, BTreeSet<String>>,
}

impl Checker<'_> {
    /// The connector's dialect (with a registry); problems when it does not exist (with
    /// what was probably meant) or is not the account's (nothing is checked while
    /// either name is unknown).
    fn connector(
        &self,
        entry: &mut Entry<'_>,
        account: Option<&str>,
        connector: Option<&str>,
    ) -> Option<Dialect> {
        let (account, connector) = (account?, connector?);
        let known: Vec<&str> = match self.registry {
            Some(registry) => registry.connectors().map(|c| c.name.as_str()).collect(),
            None => self.connectors.iter().map(String::as_str).collect(),
        };
        if !known.contains(&connector) {
            entry.problem("connector", unknown_name("connector", connector, known));
            return None;
        }
        let assigned = match self.registry {
            Some(registry) => registry.is_assigned(account, connector),
            None => self
                .assignments
                .get(account)
                .is_some_and(|names| names.contains(connector)),
        };
        if !assigned {
            entry.problem(
                "connector",
                format!("connector `{connector}` is not assigned to account `{account}`"),
            );
        }
        Some(self.registry?.connector(connector)?.kind.dialect())
    }
}

/// The placeholders of `sql`: with the connector's dialect when known, else the most
/// common lexing (PostgreSQL's).
fn placeholders(sql: &str, dialect: Option<Dialect>) -> Vec<String> {
    Statement::new(sql).placeholder_names(dialect.unwrap_or(DbKind::Postgres.dialect()))
}

/// `:a, :b` for the placeholders `names`.
fn parameter_list<'n>(names: impl IntoIterator<Item = &'n String>) -> String {
    names
        .into_iter()
        .map(|n| format!(":{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_import(
    entry: &mut Entry<'_>,
    doc: &ConfigDocument,
    checker: &Checker<'_>,
) -> Option<ImportJob> {
    let name = entry.required("name");
    let account = entry.account();
    let connector = entry.required("connector");
    let query = entry.required("query");
    let key = entry.required("key");
    let dialect = checker.connector(entry, account.as_deref(), connector.as_deref());
    let modes = [
        ImportMode::AddAndUpdate,
        ImportMode::AddOnly,
        ImportMode::UpdateOnly,
        ImportMode::FullRefresh,
    ]
    .map(|mode| (mode.as_str(), mode));
    let mode = entry.choice("mode", "is not a mode", &modes);
    let delete_missing = entry.bool("delete_missing");
    if delete_missing && mode != ImportMode::FullRefresh {
        entry.problem(
            "delete_missing",
            "applies to `mode = \"full_refresh\"` only (the other modes never see a key disappear)",
        );
    }
    if mode == ImportMode::FullRefresh && entry.map.contains_key("cursor") {
        entry.problem(
            "cursor",
            "a full_refresh import reads the whole result on every run: remove `cursor` and \
             `:cursor` from the query (or use add_and_update for an incremental import)",
        );
    }
    let cursor = entry.table("cursor").and_then(|map| {
        entry.nested_unknown("cursor", map, &["column", "initial"]);
        let column = entry.nested_string("cursor", map, "column", true);
        let initial = match map.get("initial") {
            None => {
                entry.problem("cursor.initial", "is missing");
                None
            }
            Some(json) => match parse_cursor_initial(json) {
                Ok(v) => Some(v),
                Err(message) => {
                    entry.problem("cursor.initial", message);
                    None
                }
            },
        };
        Some(CursorSpec {
            column: column?,
            initial: initial?,
        })
    });
    if let Some(query) = &query {
        let names = placeholders(query, dialect);
        let has_cursor = names.iter().any(|n| n == "cursor");
        if entry.map.contains_key("cursor") && !has_cursor {
            entry.problem(
                "query",
                "has a cursor but does not use `:cursor` (e.g. `WHERE updated_at >= :cursor ORDER BY updated_at`)",
            );
        }
        if !entry.map.contains_key("cursor") && has_cursor {
            entry.problem(
                "query",
                "uses `:cursor` but the import has no `cursor` table",
            );
        }
        let others: Vec<_> = names.iter().filter(|n| *n != "cursor").collect();
        if !others.is_empty() {
            entry.problem(
                "query",
                format!(
                    "uses parameters that nothing binds: {}; an import binds only `:cursor`",
                    parameter_list(others)
                ),
            );
        }
    }
    let schedule = entry.table("schedule").and_then(|map| {
        entry.nested_unknown("schedule", map, &["cron", "timezone"]);
        let cron = entry.nested_string("schedule", map, "cron", true)?;
        let zone = entry
            .nested_string("schedule", map, "timezone", false)
            .unwrap_or_else(|| "UTC".to_owned());
        match Schedule::parse(&cron, &zone) {
            Ok(s) => Some(s),
            Err((field, message)) => {
                entry.problem(&format!("schedule.{field}"), message);
                None
            }
        }
    });
    let batch_size = entry.positive("batch_size", DEFAULT_BATCH_SIZE);
    let run_on_start = entry.bool("run_on_start");
    let timeout = entry.duration("timeout", false);
    let retry = read_retry(entry);
    let sink = match entry.table("sink") {
        None => {
            if !entry.map.contains_key("sink") {
                entry.problem("sink", "is missing");
            }
            None
        }
        Some(map) => read_sink(entry, doc, map),
    };
    if delete_missing && let Some(SinkConfig::Jsonl { .. } | SinkConfig::Csv { .. }) = &sink {
        entry.problem(
            "delete_missing",
            "a jsonl or csv sink cannot delete rows (a file is a log of row versions); \
             leave delete_missing out (keys that disappear are still counted as missing) \
             or write to a sqlite or postgresql table",
        );
    }
    if !entry.ok() {
        return None;
    }
    Some(ImportJob {
        name: name?,
        account: account?,
        connector: connector?,
        query: query?,
        key: key?,
        cursor,
        mode,
        delete_missing,
        schedule,
        batch_size,
        run_on_start,
        timeout,
        sink: sink?,
        retry,
    })
}

/// `retry = { attempts = 5, backoff = "1s", max_backoff = "1m", max_time = "10m" }`, each
/// field optional.
fn read_retry(entry: &mut Entry<'_>) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    let Some(map) = entry.table("retry") else {
        return policy;
    };
    entry.nested_unknown(
        "retry",
        map,
        &["attempts", "backoff", "max_backoff", "max_time"],
    );
    match map.get("attempts") {
        None => {}
        Some(Json::Number(n)) if n.as_u64().is_some_and(|v| (1..=100).contains(&v)) => {
            policy.attempts = n.as_u64().unwrap_or(1) as u32;
        }
        Some(_) => entry.problem(
            "retry.attempts",
            "must be a whole number from 1 (no retry) to 100",
        ),
    }
    for (key, slot) in [
        ("backoff", &mut policy.backoff),
        ("max_backoff", &mut policy.max_backoff),
        ("max_time", &mut policy.max_time),
    ] {
        let field = format!("retry.{key}");
        match map.get(key) {
            None => {}
            Some(Json::String(text)) => match parse_duration(text) {
                Ok(d) => *slot = d,
                Err(message) => entry.problem(&field, message),
            },
            Some(_) => entry.problem(&field, "must be a duration such as \"1s\" or \"5m\""),
        }
    }
    if policy.max_backoff < policy.backoff {
        entry.problem(
            "retry.max_backoff",
            "must not be shorter than retry.backoff",
        );
    }
    policy
}

fn read_sink(
    entry: &mut Entry<'_>,
    doc: &ConfigDocument,
    map: &Map<String, Json>,
) -> Option<SinkConfig> {
    let kind = entry.nested_string("sink", map, "type", true)?;
    let path = |entry: &mut Entry<'_>| {
        entry
            .nested_string("sink", map, "path", true)
            .map(|p| PathBuf::from(doc.resolve_path(&p)))
    };
    match kind.as_str() {
        "sqlite" => {
            entry.nested_unknown("sink", map, &["type", "path", "table"]);
            let path = path(entry);
            let table = entry.nested_string("sink", map, "table", true);
            Some(SinkConfig::Sqlite {
                path: path?,
                table: table?,
            })
        }
        "postgresql" | "postgres" => {
            entry.nested_unknown("sink", map, &["type", "url", "table"]);
            let table = entry.nested_string("sink", map, "table", true);
            let url = read_url(entry, doc, "sink.url", map.get("url"));
            Some(SinkConfig::Postgres {
                url: url?,
                table: table?,
            })
        }
        "jsonl" => {
            entry.nested_unknown("sink", map, &["type", "path"]);
            Some(SinkConfig::Jsonl { path: path(entry)? })
        }
        "csv" => {
            entry.nested_unknown("sink", map, &["type", "path"]);
            Some(SinkConfig::Csv { path: path(entry)? })
        }
        other => {
            entry.problem(
                "sink.type",
                format!("`{other}` is not a sink type; one of: sqlite, postgresql, jsonl, csv"),
            );
            None
        }
    }
}

fn read_segment(entry: &mut Entry<'_>, checker: &Checker<'_>) -> Option<SegmentDef> {
    let name = entry.required("name");
    if let Some(name) = &name
        && !is_short_name(name)
    {
        entry.problem(
            "name",
            "must be a short name: letters, digits, `_` and `-`, at most 64 characters",
        );
    }
    let account = entry.account();
    let connector = entry.required("connector");
    let query = entry.required("query");
    let key = entry.required("key");
    let dialect = checker.connector(entry, account.as_deref(), connector.as_deref());
    if let Some(query) = &query {
        let names = placeholders(query, dialect);
        if !names.is_empty() {
            entry.problem(
                "query",
                format!(
                    "uses parameters that nothing binds: {}",
                    parameter_list(&names)
                ),
            );
        }
    }
    let cache_ttl = entry.duration("cache_ttl", true).unwrap_or_default();
    let timeout = entry.duration("timeout", false);
    if !entry.ok() {
        return None;
    }
    Some(SegmentDef {
        name: name?,
        account: account?,
        connector: connector?,
        query: query?,
        key: key?,
        cache_ttl,
        timeout,
    })
}

fn is_short_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The segment a sync names: the one of that name (of `account` when written); a name
/// several accounts use needs `account`.
fn sync_segment<'s>(
    entry: &mut Entry<'_>,
    name: &str,
    account: Option<&str>,
    segments: &'s BTreeMap<EntryKey, SegmentDef>,
    declared_segments: &BTreeSet<(Option<String>, String)>,
) -> Option<&'s SegmentDef> {
    let of_account = |a: Option<&str>| account.is_none_or(|wanted| a == Some(wanted));
    let found: Vec<&SegmentDef> = segments
        .values()
        .filter(|s| s.name == name && of_account(Some(&s.account)))
        .collect();
    match found.as_slice() {
        [one] => Some(one),
        [] => {
            // A segment that is declared but has problems of its own is reported there.
            let declared = declared_segments
                .iter()
                .any(|(a, n)| n == name && of_account(a.as_deref()));
            if !declared {
                let known = declared_segments
                    .iter()
                    .filter(|(a, _)| of_account(a.as_deref()))
                    .map(|(_, n)| n.as_str());
                let mut problem = unknown_name("segment", name, known);
                if let Some(account) = account {
                    let named = format!("`{name}`");
                    problem =
                        problem.replacen(&named, &format!("{named} of account `{account}`"), 1);
                }
                entry.problem("segment", problem);
            }
            None
        }
        several => {
            let accounts: Vec<String> =
                several.iter().map(|s| format!("`{}`", s.account)).collect();
            entry.problem(
                "account",
                format!(
                    "is missing: accounts {} each have a segment `{name}`; say whose",
                    accounts.join(", ")
                ),
            );
            None
        }
    }
}

fn read_sync(
    entry: &mut Entry<'_>,
    segments: &BTreeMap<EntryKey, SegmentDef>,
    declared_segments: &BTreeSet<(Option<String>, String)>,
    checker: &Checker<'_>,
) -> Option<SegmentSyncDef> {
    let segment_name = entry.required("segment");
    let account = if entry.map.contains_key("account") {
        entry.account()
    } else {
        None
    };
    let segment = segment_name.as_deref().and_then(|name| {
        sync_segment(entry, name, account.as_deref(), segments, declared_segments)
    });
    let name = entry.optional("name").or_else(|| segment_name.clone());
    let connector = entry
        .optional("connector")
        .or_else(|| segment.map(|s| s.connector.clone()));
    let account = segment.map(|s| s.account.as_str());
    let dialect = checker.connector(entry, account, connector.as_deref());
    let on_add = entry.optional("on_add");
    let on_remove = entry.optional("on_remove");
    if on_add.is_none() && on_remove.is_none() {
        entry.problem("on_add", "on_add or on_remove (or both) must be given");
    }
    for (field, sql) in [("on_add", &on_add), ("on_remove", &on_remove)] {
        if let Some(sql) = sql {
            let names = placeholders(sql, dialect);
            if names != ["key"] {
                entry.problem(
                    field,
                    "must use the parameter `:key` and no other (e.g. `DELETE FROM vip WHERE email = :key`)",
                );
            }
        }
    }
    let batch_size = entry.positive("batch_size", DEFAULT_SYNC_BATCH_SIZE);
    let timeout = entry.duration("timeout", false);
    if !entry.ok() {
        return None;
    }
    let segment = segment?;
    Some(SegmentSyncDef {
        name: name?,
        segment: segment.name.clone(),
        account: segment.account.clone(),
        connector: connector?,
        on_add,
        on_remove,
        batch_size,
        timeout,
    })
}

fn read_lookup(entry: &mut Entry<'_>, checker: &Checker<'_>) -> Option<LookupDef> {
    let name = entry.required("name");
    let account = entry.account();
    let connector = entry.required("connector");
    let query = entry.required("query");
    checker.connector(entry, account.as_deref(), connector.as_deref());
    let result = entry.choice(
        "result",
        "is not a result",
        &[("row", LookupResult::Row), ("rows", LookupResult::Rows)],
    );
    let on_error = entry.choice(
        "on_error",
        "is not allowed",
        &[("fail", OnError::Fail), ("empty", OnError::Empty)],
    );
    let max_rows = entry.positive("max_rows", DEFAULT_LOOKUP_MAX_ROWS);
    let cache_ttl = entry.duration("cache_ttl", true).unwrap_or_default();
    let timeout = entry
        .duration("timeout", false)
        .unwrap_or(DEFAULT_LOOKUP_TIMEOUT);
    if !entry.ok() {
        return None;
    }
    Some(LookupDef {
        name: name?,
        account: account?,
        connector: connector?,
        query: query?,
        result,
        max_rows,
        cache_ttl,
        timeout,
        on_error,
    })
}

/// The names of entries of every kind, for messages listing what exists (each once,
/// whatever accounts use it).
pub(crate) fn names<T>(map: &BTreeMap<EntryKey, T>) -> String {
    if map.is_empty() {
        "none".to_owned()
    } else {
        map.keys()
            .map(|(_, name)| name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A PostgreSQL URL (`sink.url`, `state.url`): a string, `{ env }` or `{ file }`, read
/// now under the file's secret policy, like a connector's password, so that the sink or
/// the state store then holds the URL itself.
fn read_url(
    entry: &mut Entry<'_>,
    doc: &ConfigDocument,
    field: &str,
    json: Option<&Json>,
) -> Option<SecretSource> {
    let Some(json) = json else {
        entry.problem(field, "is missing");
        return None;
    };
    match doc.read_secret(json) {
        Ok(secret) => Some(SecretSource::Literal(secret)),
        Err(why) => {
            entry.problem(field, why);
            None
        }
    }
}

/// `state = "path"`, or `[state]` with `type = "sqlite"` (`path`) or
/// `type = "postgresql"` (`url`, `schema`, `lease`).
fn read_state(doc: &ConfigDocument, problems: &mut Problems) -> StateConfig {
    let default = || StateConfig::Sqlite {
        path: PathBuf::from(doc.resolve_path(DEFAULT_STATE_FILE)),
    };
    let map = match doc.section("state") {
        None => return default(),
        Some(Json::String(path)) if !path.trim().is_empty() => {
            return StateConfig::Sqlite {
                path: PathBuf::from(doc.resolve_path(path)),
            };
        }
        Some(Json::Object(map)) => map,
        Some(_) => {
            problems.push(
                CONFIG,
                "state",
                "must be the path of the state store file, or a table with `type`",
            );
            return default();
        }
    };
    let start = problems.0.len();
    let mut entry = Entry {
        label: CONFIG.to_owned(),
        map,
        problems,
        start,
    };
    let kind = entry.nested_string("state", map, "type", false);
    let state = match kind.as_deref().unwrap_or("sqlite") {
        "sqlite" => {
            entry.nested_unknown("state", map, &["type", "path"]);
            entry
                .nested_string("state", map, "path", false)
                .map(|path| StateConfig::Sqlite {
                    path: PathBuf::from(doc.resolve_path(&path)),
                })
        }
        "postgresql" | "postgres" => {
            entry.nested_unknown("state", map, &["type", "url", "schema", "lease"]);
            let url = read_url(&mut entry, doc, "state.url", map.get("url"));
            let schema = entry.nested_string("state", map, "schema", false);
            let lease = match entry.nested_string("state", map, "lease", false) {
                None => Some(DEFAULT_LEASE),
                Some(text) => match parse_duration(&text) {
                    Ok(d) if d >= Duration::from_secs(1) => Some(d),
                    Ok(_) => {
                        entry.problem("state.lease", "must be at least 1s");
                        None
                    }
                    Err(why) => {
                        entry.problem("state.lease", why);
                        None
                    }
                },
            };
            match (url, lease) {
                (Some(url), Some(lease)) => Some(StateConfig::Postgres { url, schema, lease }),
                _ => None,
            }
        }
        other => {
            entry.problem(
                "state.type",
                format!("`{other}` is not a state store type; one of: sqlite, postgresql"),
            );
            None
        }
    };
    state.unwrap_or_else(default)
}
