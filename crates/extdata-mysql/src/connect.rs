//! [`ValidConfig`] → sqlx connect and pool options, and the per-session setup.
//!
//! `MySqlConnectOptions` is built field by field (never parsed from a URL) and never
//! formatted: its `Debug` prints the password.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::FixedOffset;
use extdata_core::{Endpoint, Error, ErrorKind, OptionCheck, OptionSpec, TlsVerify, ValidConfig};
use futures::TryStreamExt;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions, MySqlSslMode};
use sqlx::{AssertSqlSafe, Row};

/// The DSN options this backend understands (see the README's options table).
pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "charset",
        OptionCheck::OneOf(&["utf8mb4", "utf8mb3", "utf8"]),
        "character set of the connection (SET NAMES); default utf8mb4. Results must be UTF-8, so only the UTF-8 sets are accepted",
    ),
    OptionSpec::new(
        "collation_connection",
        OptionCheck::Custom(check_identifier),
        "session collation (SET SESSION collation_connection); e.g. utf8mb4_unicode_ci",
    ),
    OptionSpec::new(
        "timezone",
        OptionCheck::Custom(check_timezone),
        "session time_zone: +HH:MM, SYSTEM or a named zone; default +00:00 (TIMESTAMP values come back as exact instants)",
    ),
    OptionSpec::new(
        "sql_mode",
        OptionCheck::Custom(check_sql_mode),
        "session sql_mode, replacing the server's (comma-separated modes); default: the server's",
    ),
    OptionSpec::new(
        "pipes_as_concat",
        OptionCheck::Bool,
        "add PIPES_AS_CONCAT to sql_mode so that || concatenates; default false (the server's meaning, logical OR)",
    ),
    OptionSpec::new(
        "statement_cache_capacity",
        OptionCheck::UInt,
        "prepared statements kept per connection; default 100, 0 disables the cache",
    ),
    OptionSpec::new(
        "max_statement_time",
        OptionCheck::Custom(check_guard),
        "server-side limit per statement: auto (the call's timeout plus 1s; off while streaming), off, or a duration",
    ),
    OptionSpec::new(
        "enable_cleartext_plugin",
        OptionCheck::Bool,
        "allow the mysql_clear_password plugin (PAM/LDAP accounts); needs ssl; default false",
    ),
];

fn check_identifier(value: &str) -> Result<(), String> {
    if !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a collation name (letters, digits and _ only)"
        ))
    }
}

fn check_timezone(value: &str) -> Result<(), String> {
    if parse_offset(value).is_some()
        || (!value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_/+-".contains(&b)))
    {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a time zone (+HH:MM, SYSTEM or a name like Europe/Berlin)"
        ))
    }
}

fn check_sql_mode(value: &str) -> Result<(), String> {
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b',')
    {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a list of SQL modes (e.g. ANSI_QUOTES,STRICT_TRANS_TABLES)"
        ))
    }
}

fn check_guard(value: &str) -> Result<(), String> {
    parse_guard(value).map(|_| ())
}

/// `max_statement_time` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardSetting {
    /// The call's timeout plus [`GUARD_MARGIN`]; off for streams.
    Auto,
    /// No server-side limit.
    Off,
    /// This limit for every statement.
    Fixed(Duration),
}

/// How much later than our own timeout the server's limit fires: our timeout (which
/// cancels with `KILL QUERY`) acts first; the server's is the backstop for a client that
/// vanished.
pub(crate) const GUARD_MARGIN: Duration = Duration::from_secs(1);

fn parse_guard(value: &str) -> Result<GuardSetting, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(GuardSetting::Auto),
        "off" | "0" | "0s" => Ok(GuardSetting::Off),
        _ => extdata_core::parse_duration(value).map(GuardSetting::Fixed),
    }
}

/// `+HH:MM` / `-HH:MM` as a fixed offset.
pub(crate) fn parse_offset(value: &str) -> Option<FixedOffset> {
    let bytes = value.as_bytes();
    if bytes.len() != 6 || bytes[3] != b':' {
        return None;
    }
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i32 = value.get(1..3)?.parse().ok()?;
    let minutes: i32 = value.get(4..6)?.parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// Server family, from the version string: the statement time limit differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// MariaDB: `max_statement_time` in seconds, every statement.
    MariaDb,
    /// MySQL: `max_execution_time` in milliseconds, SELECT only.
    MySql,
}

impl Flavour {
    pub(crate) fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavour::MariaDb
        } else {
            Flavour::MySql
        }
    }

    /// `SET SESSION …` limiting each statement to `limit` (zero: no limit).
    pub(crate) fn guard_sql(self, limit: Duration) -> String {
        match self {
            Flavour::MariaDb => format!(
                "SET SESSION max_statement_time = {}.{:06}",
                limit.as_secs(),
                limit.subsec_micros()
            ),
            Flavour::MySql => format!(
                "SET SESSION max_execution_time = {}",
                u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)
            ),
        }
    }
}

/// How long the reset of a connection going back to the pool may take before the
/// connection is closed instead.
pub(crate) const RESET_TIMEOUT: Duration = Duration::from_secs(2);

/// Session variables put back to the server's default after each call, on both server
/// families: those that change what the next query returns or may do (a stored function
/// called by a plain `SELECT` may set them; statements that set them directly close
/// their connection instead). `sql_mode` is not among them: it is put back to what a new
/// connection has (sqlx's `CLIENT_IGNORE_SPACE` adds `IGNORE_SPACE` to the server's).
const RESET_COMMON: &[&str] = &[
    "autocommit",
    "completion_type",
    "sql_select_limit",
    "max_join_size",
    "sql_big_selects",
    "timestamp",
    "div_precision_increment",
    "group_concat_max_len",
    "lc_time_names",
    "default_week_format",
    "sql_auto_is_null",
    "sql_safe_updates",
    "foreign_key_checks",
    "unique_checks",
    "auto_increment_increment",
    "auto_increment_offset",
    "big_tables",
    "max_sort_length",
    "sql_quote_show_create",
    "sql_notes",
    "sql_warnings",
    "max_error_count",
    "wait_timeout",
    "net_read_timeout",
    "net_write_timeout",
];

/// MariaDB's names for the rest.
const RESET_MARIADB: &[&str] = &[
    "tx_isolation",
    "tx_read_only",
    "system_versioning_asof",
    "sql_if_exists",
    "old_mode",
];

/// MySQL 8's names for the rest.
const RESET_MYSQL: &[&str] = &["transaction_isolation", "transaction_read_only"];

/// How TIMESTAMP columns are read, from the session time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimestampMode {
    /// Fixed offset: TIMESTAMP values are exact instants with this offset.
    Offset(FixedOffset),
    /// A named zone or SYSTEM: wall-clock values in that zone.
    WallClock,
}

/// Everything the session setup, the per-call preparation and the reset after each
/// call need; shared by all connections of a source.
#[derive(Debug)]
pub(crate) struct Session {
    /// `SET …` statements run once on every new connection.
    pub(crate) setup_sql: String,
    /// What the connector sets on every connection (sqlx's `SET NAMES` and `time_zone`,
    /// then ours), for the reset after each call.
    defaults_sql: String,
    /// The connector is read-only: each call runs in `START TRANSACTION READ ONLY`.
    pub(crate) read_only: bool,
    pub(crate) guard: GuardSetting,
    pub(crate) timestamps: TimestampMode,
    /// Learnt from the first connection.
    pub(crate) flavour: OnceLock<Flavour>,
    pub(crate) version: OnceLock<String>,
    /// `@@sql_mode` of a new connection after the setup.
    sql_mode: OnceLock<String>,
    /// The reset, built once the flavour and `sql_mode` are known.
    reset: OnceLock<String>,
}

impl Session {
    pub(crate) fn from_config(config: &ValidConfig) -> Self {
        let options = &config.options;
        let mut set = Vec::new();
        if let Some(collation) = options.get("collation_connection") {
            // After sqlx's SET NAMES, so the collation wins; it may even belong to another
            // character set than the results (those stay in `charset`).
            set.push(format!("collation_connection = '{collation}'"));
        }
        if let Some(mode) = options.get("sql_mode") {
            set.push(format!("sql_mode = '{mode}'"));
        }
        let mut setup_sql = String::new();
        if !set.is_empty() {
            let _ = write!(setup_sql, "SET SESSION {}; ", set.join(", "));
        }
        if config.read_only {
            // Applies to every later transaction of the session, autocommit statements
            // included: writes fail with error 1792.
            setup_sql.push_str("SET SESSION TRANSACTION READ ONLY; ");
        }
        // What sqlx's connect sets (see `connect_options`), then the setup above.
        let charset = options
            .get("charset")
            .unwrap_or("utf8mb4")
            .to_ascii_lowercase();
        let zone = options.get("timezone").unwrap_or("+00:00");
        let mut defaults_sql = format!("SET NAMES {charset}, time_zone = '{zone}'; ");
        defaults_sql.push_str(&setup_sql);
        setup_sql.push_str("SELECT VERSION(), @@SESSION.sql_mode");
        let timestamps = match options.get("timezone") {
            None => TimestampMode::Offset(FixedOffset::east_opt(0).expect("zero offset")),
            Some(zone) => {
                parse_offset(zone).map_or(TimestampMode::WallClock, TimestampMode::Offset)
            }
        };
        Session {
            setup_sql,
            defaults_sql,
            read_only: config.read_only,
            guard: options
                .get("max_statement_time")
                .and_then(|v| parse_guard(v).ok())
                .unwrap_or(GuardSetting::Auto),
            timestamps,
            flavour: OnceLock::new(),
            version: OnceLock::new(),
            sql_mode: OnceLock::new(),
            reset: OnceLock::new(),
        }
    }

    /// The server-side limit for a call bounded by `timeout` (`None`: a stream).
    pub(crate) fn guard_for(&self, timeout: Option<Duration>) -> Duration {
        match (self.guard, timeout) {
            (GuardSetting::Off, _) | (GuardSetting::Auto, None) => Duration::ZERO,
            (GuardSetting::Fixed(limit), _) => limit,
            (GuardSetting::Auto, Some(timeout)) => timeout + GUARD_MARGIN,
        }
    }

    /// The reset run on a connection going back to the pool (see [`Session::reset`]).
    fn reset_sql(&self, flavour: Flavour) -> String {
        let (names, user_variables) = match flavour {
            Flavour::MariaDb => (
                RESET_MARIADB,
                "SELECT COUNT(*) FROM information_schema.USER_VARIABLES",
            ),
            Flavour::MySql => (
                RESET_MYSQL,
                "SELECT COUNT(*) FROM performance_schema.user_variables_by_thread \
                 WHERE THREAD_ID = PS_CURRENT_THREAD_ID()",
            ),
        };
        let defaults = RESET_COMMON
            .iter()
            .chain(names)
            .map(|name| format!("{name} = DEFAULT"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql_mode = match self.sql_mode.get() {
            Some(mode) => format!("'{mode}'"),
            None => "DEFAULT".to_owned(),
        };
        format!(
            "ROLLBACK; DO RELEASE_ALL_LOCKS(); \
             SET SESSION {defaults}, sql_mode = {sql_mode}, last_insert_id = 0, insert_id = 0; \
             {}{user_variables}",
            self.defaults_sql
        )
    }

    /// Resets a connection going back to the pool (sqlx's `after_release`), bounded by
    /// [`RESET_TIMEOUT`]: ends any transaction (the read-only one of each call
    /// included), releases named locks, puts back the session variables that change
    /// what a query returns or may do, and the connector's own settings. `Ok(false)` —
    /// the connection is closed instead — when user variables are left (they cannot be
    /// dropped by name). An error or timeout closes it too.
    pub(crate) async fn reset(&self, conn: &mut MySqlConnection) -> Result<bool, sqlx::Error> {
        let flavour = self.flavour.get().copied().unwrap_or(Flavour::MariaDb);
        let sql = self.reset.get_or_init(|| self.reset_sql(flavour)).clone();
        let run = async {
            let mut results = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_many(conn);
            let mut left = None;
            while let Some(item) = results.try_next().await? {
                if let sqlx::Either::Right(row) = item {
                    left = Some(row.try_get::<i64, _>(0)?);
                }
            }
            Ok::<_, sqlx::Error>(left == Some(0))
        };
        match tokio::time::timeout(RESET_TIMEOUT, run).await {
            Ok(result) => result,
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// Runs the setup on a fresh connection and learns the server's flavour.
    pub(crate) async fn setup(&self, conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
        let mut results = sqlx::raw_sql(AssertSqlSafe(self.setup_sql.clone())).fetch_many(conn);
        let mut version = None;
        while let Some(item) = results.try_next().await? {
            if let sqlx::Either::Right(row) = item {
                version = Some(row.try_get::<String, _>(0)?);
                let mode = row.try_get::<String, _>(1)?;
                // Only mode names go into the reset's SQL.
                if check_sql_mode(&mode).is_ok() {
                    let _ = self.sql_mode.set(mode);
                }
            }
        }
        if let Some(version) = version {
            let _ = self.flavour.set(Flavour::from_version(&version));
            let _ = self.version.set(version);
        }
        Ok(())
    }
}

/// Builds the connect options. No I/O.
pub(crate) fn connect_options(config: &ValidConfig) -> Result<MySqlConnectOptions, Error> {
    let mut options = MySqlConnectOptions::new();
    options = match &config.endpoint {
        Endpoint::Tcp { host, port } => options.host(host).port(*port),
        Endpoint::Unix { path } => options.socket(path),
        Endpoint::Udp { .. } | Endpoint::Embedded => {
            return Err(config.error(
                ErrorKind::Config,
                "MySQL is reached over TCP or a unix socket",
            ));
        }
    };
    options = extdata_core::sqlx_login_and_tls!(options, config, ssl_ca_from_pem, |verify| {
        match verify {
            // sqlx's default is Preferred (TLS if offered, never verified): always say
            // what we want.
            None => MySqlSslMode::Disabled,
            Some(TlsVerify::Full) => MySqlSslMode::VerifyIdentity,
            Some(TlsVerify::Ca) => MySqlSslMode::VerifyCa,
            Some(TlsVerify::None) => MySqlSslMode::Required,
        }
    });
    let opts = &config.options;
    if let Some(charset) = opts.get("charset") {
        options = options.charset(&charset.to_ascii_lowercase());
    }
    options = options.timezone(Some(opts.get("timezone").unwrap_or("+00:00").to_owned()));
    if let Some(capacity) = opts.get_u64("statement_cache_capacity") {
        options = options.statement_cache_capacity(usize::try_from(capacity).unwrap_or(usize::MAX));
    }
    // Leave the server's sql_mode alone unless asked (sqlx adds PIPES_AS_CONCAT, which
    // silently changes what `a || b` means in the customer's queries).
    options = options
        .pipes_as_concat(opts.get_bool("pipes_as_concat").unwrap_or(false))
        .no_engine_substitution(false)
        .enable_cleartext_plugin(opts.get_bool("enable_cleartext_plugin").unwrap_or(false));
    Ok(options)
}

/// The pool options: sizes and lifetimes from the config; each new connection runs the
/// session setup, and each connection going back to the pool the reset
/// ([`Session::reset`]; sqlx pings it afterwards). `test_before_acquire` is off because every call starts with its own
/// round trip (the guard and `CONNECTION_ID()`), which checks the connection anyway.
pub(crate) fn pool_options(config: &ValidConfig, session: Arc<Session>) -> MySqlPoolOptions {
    let pool = &config.pool;
    MySqlPoolOptions::new()
        .max_connections(pool.max_size)
        .min_connections(pool.min_idle)
        .acquire_timeout(pool.acquire_timeout)
        .idle_timeout(pool.idle_timeout)
        .max_lifetime(pool.max_lifetime)
        .test_before_acquire(false)
        .after_connect({
            let session = session.clone();
            move |conn, _meta| {
                let session = session.clone();
                Box::pin(async move { session.setup(conn).await })
            }
        })
        .after_release(move |conn, _meta| {
            let session = session.clone();
            Box::pin(async move { session.reset(conn).await })
        })
}

/// Checks on the whole config (part of `SPEC`).
pub(crate) fn check(config: &ValidConfig, problems: &mut Vec<(String, String)>) {
    if config.options.get_bool("enable_cleartext_plugin") == Some(true) && config.tls.is_none() {
        problems.push((
            "options.enable_cleartext_plugin".into(),
            "sends the password in clear text: enable ssl as well".into(),
        ));
    }
}

/// Warnings on the whole config (part of `SPEC`).
pub(crate) fn warn(config: &ValidConfig, warnings: &mut Vec<(String, String)>) {
    if let Some(tls) = &config.tls
        && tls.verify == TlsVerify::None
    {
        warnings.push((
            "ssl.verify".into(),
            "`none` encrypts but trusts any server: use it only for tests".into(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse() {
        assert_eq!(
            parse_offset("+03:30"),
            FixedOffset::east_opt(3 * 3600 + 1800)
        );
        assert_eq!(parse_offset("-05:00"), FixedOffset::west_opt(5 * 3600));
        assert_eq!(parse_offset("Europe/Berlin"), None);
        assert_eq!(parse_offset("+3:00"), None);
    }

    #[test]
    fn option_checks_refuse_injection() {
        assert!(check_identifier("utf8mb4_unicode_ci").is_ok());
        assert!(check_identifier("x'; DROP TABLE t; --").is_err());
        assert!(check_timezone("Europe/Berlin").is_ok());
        assert!(check_timezone("+00:00").is_ok());
        assert!(check_timezone("UTC'").is_err());
        assert!(check_sql_mode("ANSI_QUOTES,STRICT_TRANS_TABLES").is_ok());
        assert!(check_sql_mode("ANSI' , x='").is_err());
        assert_eq!(parse_guard("auto"), Ok(GuardSetting::Auto));
        assert_eq!(parse_guard("off"), Ok(GuardSetting::Off));
        assert_eq!(
            parse_guard("1500ms"),
            Ok(GuardSetting::Fixed(Duration::from_millis(1500)))
        );
        assert!(parse_guard("soon").is_err());
    }

    #[test]
    fn guard_sql_per_flavour() {
        assert_eq!(
            Flavour::MariaDb.guard_sql(Duration::from_millis(2500)),
            "SET SESSION max_statement_time = 2.500000"
        );
        assert_eq!(
            Flavour::MySql.guard_sql(Duration::from_millis(2500)),
            "SET SESSION max_execution_time = 2500"
        );
        assert_eq!(
            Flavour::from_version("10.11.6-MariaDB-0+deb12u1"),
            Flavour::MariaDb
        );
        assert_eq!(Flavour::from_version("8.0.36"), Flavour::MySql);
    }
}
