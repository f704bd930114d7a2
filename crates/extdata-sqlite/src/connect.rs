//! [`ValidConfig`] → sqlx's [`SqliteConnectOptions`] and [`SqlitePoolOptions`].
//!
//! The options are built field by field; no URL string is ever parsed, and the sqlx option
//! types are never formatted (their `Debug` is not written for secrets to stay out).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use extdata_core::{OptionCheck, OptionSpec, ValidConfig, parse_duration};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The `database` value that selects a private in-memory database.
pub(crate) const MEMORY: &str = ":memory:";

/// Rows sqlx's worker thread may read ahead of the consumer, per statement. Small, so that
/// a stream's memory stays bounded; large enough that the worker rarely waits.
const ROW_BUFFER: usize = 64;

/// SQLite keeps the busy timeout in a C `int` of milliseconds; sqlx panics beyond it.
const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// The DSN options the SQLite backend understands.
pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "mode",
        OptionCheck::OneOf(&["rwc", "rw", "ro"]),
        "rw (default): read-write, the file must exist; rwc: read-write, create the file if \
         missing; ro: read-only",
    ),
    OptionSpec::new(
        "journal_mode",
        OptionCheck::OneOf(&["delete", "truncate", "persist", "memory", "wal", "off"]),
        "PRAGMA journal_mode (default: the database's own, DELETE for new files); wal lets \
         readers run while one connection writes",
    ),
    OptionSpec::new(
        "synchronous",
        OptionCheck::OneOf(&["off", "normal", "full", "extra"]),
        "PRAGMA synchronous (default full); normal is safe and faster with journal_mode=wal",
    ),
    OptionSpec::new(
        "busy_timeout",
        OptionCheck::Custom(check_busy_timeout),
        "how long a statement waits for a lock held by another connection, e.g. 5s \
         (default: the query timeout)",
    ),
    OptionSpec::new(
        "foreign_keys",
        OptionCheck::Bool,
        "enforce foreign key constraints (default true)",
    ),
    OptionSpec::new(
        "statement_cache_capacity",
        OptionCheck::UInt,
        "prepared statements kept per connection (default 100; 0 disables the cache)",
    ),
];

fn check_busy_timeout(value: &str) -> Result<(), String> {
    let timeout = parse_duration(value)?;
    if timeout > MAX_BUSY_TIMEOUT {
        return Err(format!(
            "`{value}` is longer than SQLite allows (about 24 days)"
        ));
    }
    Ok(())
}

/// Checks that need the whole configuration (`BackendSpec::check`).
pub(crate) fn check(config: &ValidConfig, problems: &mut Vec<(String, String)>) {
    if let Some(database) = config.database.as_deref() {
        // sqlx opens every file with SQLITE_OPEN_URI: a `file:` name would be read as a URI
        // whose query string could switch options (`?mode=rwc`, `?vfs=`) behind the form's back.
        if database
            .get(..5)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("file:"))
        {
            problems.push((
                "database".into(),
                format!(
                    "`{database}` is a URI; give a plain file path (or `:memory:`) and put \
                     settings in options"
                ),
            ));
        }
        if database.contains('\0') {
            problems.push(("database".into(), "must not contain a NUL character".into()));
        }
    }
}

/// Warnings on a valid configuration (`BackendSpec::warn`).
pub(crate) fn warn(config: &ValidConfig, warnings: &mut Vec<(String, String)>) {
    if config.username.is_some() {
        warnings.push((
            "username".into(),
            "SQLite has no users; the user name is ignored".into(),
        ));
    }
    if config.password.is_some() {
        warnings.push((
            "password".into(),
            "SQLite has no passwords; the password is ignored".into(),
        ));
    }
    let memory = config.database.as_deref() == Some(MEMORY);
    if memory && config.options.get("mode").is_some() {
        warnings.push((
            "options.mode".into(),
            "ignored for `:memory:` databases".into(),
        ));
    }
    if config.read_only && config.options.get("mode").is_some_and(|m| m != "ro") {
        warnings.push((
            "options.mode".into(),
            "read_only = true opens the database read-only whatever the mode".into(),
        ));
    }
}

/// What opening a database file that does not exist does, for the connector's
/// `read_only` and `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnMissing {
    /// `mode=rwc`, and `:memory:`: the file is created.
    Create,
    /// The default (`mode=rw`): the open fails; `mode=rwc` would create it.
    Fail,
    /// `read_only` or `mode=ro`: the open fails; a read-only connector never creates.
    FailReadOnly,
}

/// Everything needed to open connections, derived from a [`ValidConfig`] without I/O.
#[derive(Clone)]
pub(crate) struct Settings {
    /// Options of the connection that opens the database before the pool does (and, for
    /// `:memory:`, keeps it alive): it alone switches the journal mode to WAL.
    pub(crate) setup: SqliteConnectOptions,
    /// Options of every pooled connection.
    pub(crate) connect: SqliteConnectOptions,
    /// How long SQLite waits for another connection's lock.
    pub(crate) busy_timeout: Duration,
    /// Pool sizing and lifetimes.
    pub(crate) pool: SqlitePoolOptions,
    /// Whether this is a `:memory:` database (kept alive by a dedicated connection).
    pub(crate) memory: bool,
    /// Shown in `Debug` and messages: the file path or `:memory:`.
    pub(crate) display: String,
    /// What opening a missing file does (and how its error is worded).
    pub(crate) on_missing: OnMissing,
}

/// Distinguishes the in-memory databases of different sources in this process.
static MEMORY_SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl Settings {
    /// Builds the driver options. `config` was validated against [`crate::SPEC`].
    pub(crate) fn from_config(config: &ValidConfig) -> Self {
        let database = config.database.clone().unwrap_or_else(|| MEMORY.to_owned());
        let memory = database == MEMORY;
        let options = &config.options;

        let busy_timeout = options
            .get_duration("busy_timeout")
            .unwrap_or(config.query_timeout)
            .min(MAX_BUSY_TIMEOUT);
        let statement_cache = options
            .get_u64("statement_cache_capacity")
            .map_or(100, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let thread_prefix = format!("extdata-sqlite-{}", config.name);

        let mut connect = SqliteConnectOptions::new()
            .busy_timeout(busy_timeout)
            .statement_cache_capacity(statement_cache)
            .foreign_keys(options.get_bool("foreign_keys").unwrap_or(true))
            .row_buffer_size(ROW_BUFFER)
            .thread_name(move |id| format!("{thread_prefix}-{id}"));

        let mut on_missing = OnMissing::Create;
        if memory {
            // A private in-memory database is per connection; a named one in shared-cache
            // mode is seen by every connection of the pool. The name is ours alone (no user
            // text), so it cannot carry URI parameters.
            let sequence = MEMORY_SEQUENCE.fetch_add(1, Ordering::Relaxed);
            connect = connect
                .filename(format!(
                    "file:extdata-memory-{}-{sequence}",
                    std::process::id()
                ))
                .in_memory(true)
                .shared_cache(true);
        } else {
            let mode = options.get("mode").map(str::to_ascii_lowercase);
            let read_only = config.read_only || mode.as_deref() == Some("ro");
            // Only an explicit `mode=rwc` creates: a connector's `ping` must not turn a
            // misspelt path into a new, empty database.
            let create = !read_only && mode.as_deref() == Some("rwc");
            on_missing = match (create, read_only) {
                (true, _) => OnMissing::Create,
                (false, true) => OnMissing::FailReadOnly,
                (false, false) => OnMissing::Fail,
            };
            connect = connect
                .filename(PathBuf::from(&database))
                .read_only(read_only)
                .create_if_missing(create);
        }
        // Validation admitted only the values of the options table, which sqlx parses
        // (any case).
        if let Some(level) = options
            .get("synchronous")
            .and_then(|v| v.parse::<SqliteSynchronous>().ok())
        {
            connect = connect.synchronous(level);
        }
        if config.read_only {
            // Also refuses writes to the temp schema and, for `:memory:` (which cannot be
            // opened read-only), is the only guard.
            connect = connect.pragma("query_only", "ON");
        }
        // Switching a file into (or out of) WAL upgrades a read to a write, which SQLite
        // does not wait for: pool connections switching at once fail with SQLITE_BUSY.
        // So the first connection sets the mode; WAL is stored in the file, and the other
        // modes are per connection but change without a lock once the file is out of WAL.
        let journal_mode = options
            .get("journal_mode")
            .and_then(|v| v.parse::<SqliteJournalMode>().ok());
        let (setup, connect) = match journal_mode {
            Some(SqliteJournalMode::Wal) if !memory => (
                connect.clone().journal_mode(SqliteJournalMode::Wal),
                connect,
            ),
            Some(mode) => {
                let connect = connect.journal_mode(mode);
                (connect.clone(), connect)
            }
            None => (connect.clone(), connect),
        };

        let pool = config.pool.clone();
        let mut pool_options = SqlitePoolOptions::new()
            .max_connections(pool.max_size)
            .min_connections(pool.min_idle)
            .acquire_timeout(pool.acquire_timeout)
            // The test is a round trip to the connection's worker thread, which only fails
            // if that thread died; sqlx pings every connection returned to the pool anyway.
            .test_before_acquire(false);
        pool_options = if memory {
            // Nothing to gain from recycling in-process memory connections.
            pool_options.idle_timeout(None).max_lifetime(None)
        } else {
            pool_options
                .idle_timeout(pool.idle_timeout)
                .max_lifetime(pool.max_lifetime)
        };

        Settings {
            setup,
            connect,
            busy_timeout,
            pool: pool_options,
            memory,
            display: database,
            on_missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use extdata_core::{ConnectorConfig, DbKind};

    fn validate(config: ConnectorConfig) -> Result<ValidConfig, extdata_core::Problems> {
        config.validate_with(Some(&crate::SPEC))
    }

    #[test]
    fn every_option_value_maps_to_a_driver_setting() {
        let values = |name: &str| match OPTIONS.iter().find(|o| o.key == name) {
            Some(OptionSpec {
                check: OptionCheck::OneOf(values),
                ..
            }) => *values,
            _ => panic!("`{name}` is not a choice in OPTIONS"),
        };
        for value in values("journal_mode").iter().chain(&["WAL"]) {
            assert!(value.parse::<SqliteJournalMode>().is_ok(), "{value}");
        }
        for value in values("synchronous").iter().chain(&["NORMAL"]) {
            assert!(value.parse::<SqliteSynchronous>().is_ok(), "{value}");
        }
    }

    #[test]
    fn uri_file_names_are_refused() {
        let problems = validate(
            ConnectorConfig::new("local", DbKind::Sqlite).with_database("file:x.db?mode=rwc"),
        )
        .unwrap_err();
        assert_eq!(problems.0.len(), 1, "{problems}");
        assert_eq!(problems.0[0].field, "database");
    }

    #[test]
    fn host_port_ssl_and_unknown_options_are_refused() {
        let mut config = ConnectorConfig::new("local", DbKind::Sqlite)
            .with_database("a.db")
            .with_host("db.example")
            .with_options("mode=sometimes&busy_timeout=soon&journal=wal");
        config.ssl = Some(Default::default());
        let problems = validate(config).unwrap_err().to_string();
        for expected in [
            "host",
            "options.mode",
            "options.busy_timeout",
            "unknown option `journal`",
            "ssl",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} missing in {problems}"
            );
        }
    }

    #[test]
    fn busy_timeout_beyond_sqlite_limit_is_refused() {
        let problems = validate(
            ConnectorConfig::new("local", DbKind::Sqlite)
                .with_database("a.db")
                .with_options("busy_timeout=30days"),
        )
        .unwrap_err();
        assert!(problems.to_string().contains("24 days"), "{problems}");
    }

    #[test]
    fn memory_databases_get_distinct_names_and_are_never_recycled() {
        let config =
            validate(ConnectorConfig::new("m", DbKind::Sqlite).with_database(MEMORY)).unwrap();
        let a = Settings::from_config(&config);
        let b = Settings::from_config(&config);
        assert!(a.memory && b.memory);
        assert_ne!(a.connect.get_filename(), b.connect.get_filename());
        assert_eq!(a.pool.get_idle_timeout(), None);
        assert_eq!(a.pool.get_max_lifetime(), None);
    }

    #[test]
    fn only_an_explicit_rwc_creates_a_missing_file() {
        let on_missing = |options: &str, read_only: bool| {
            let config = validate(
                ConnectorConfig::new("f", DbKind::Sqlite)
                    .with_database("a.db")
                    .with_options(options)
                    .with_read_only(read_only),
            )
            .unwrap();
            Settings::from_config(&config).on_missing
        };
        assert_eq!(on_missing("", false), OnMissing::Fail);
        assert_eq!(on_missing("mode=rw", false), OnMissing::Fail);
        assert_eq!(on_missing("mode=rwc", false), OnMissing::Create);
        assert_eq!(on_missing("mode=RWC", false), OnMissing::Create);
        assert_eq!(on_missing("mode=ro", false), OnMissing::FailReadOnly);
        // read_only wins over the mode: a read-only connector never creates.
        assert_eq!(on_missing("mode=rwc", true), OnMissing::FailReadOnly);
        assert_eq!(on_missing("", true), OnMissing::FailReadOnly);
    }

    #[test]
    fn ignored_fields_produce_warnings() {
        let config = validate(
            ConnectorConfig::new("m", DbKind::Sqlite)
                .with_database(MEMORY)
                .with_username("someone")
                .with_options("mode=ro"),
        )
        .unwrap();
        let fields: Vec<&str> = config.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(fields, ["username", "options.mode"]);
    }
}
