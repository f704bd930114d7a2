//! [`ValidConfig`] → sqlx's [`PgConnectOptions`], built field by field (never from a URL)
//! and never formatted: sqlx's `Debug` of these options prints the password.

use std::time::Duration;

use extdata_core::{Endpoint, OptionCheck, OptionSpec, TlsVerify, ValidConfig, parse_duration};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// `application_name` when the connector does not set one, so that the platform's
/// sessions can be told apart in `pg_stat_activity`.
pub(crate) const DEFAULT_APPLICATION_NAME: &str = "extdata";

/// How much later than the client-side query timeout the server's own
/// `statement_timeout` fires: the client cancels first (and says why); the server
/// guard only matters when the client cannot.
pub(crate) const STATEMENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// The DSN options this backend understands.
pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "application_name",
        OptionCheck::Any,
        "name shown in pg_stat_activity and the server log (default `extdata`)",
    ),
    OptionSpec::new(
        "search_path",
        OptionCheck::Any,
        "schemas searched for unqualified names, e.g. `crm, public`",
    ),
    OptionSpec::new(
        "timezone",
        OptionCheck::Any,
        "session time zone (`TimeZone`), e.g. `UTC` or `Europe/Berlin`; affects text output \
         and timestamp ↔ timestamptz conversions on the server",
    ),
    OptionSpec::new(
        "lock_timeout",
        OptionCheck::Duration,
        "give up waiting for a lock after this long (e.g. `2s`); default: no limit",
    ),
    OptionSpec::new(
        "statement_cache_capacity",
        OptionCheck::UInt,
        "prepared statements kept per connection (default 100; 0 disables the cache)",
    ),
    OptionSpec::new(
        "options",
        OptionCheck::Custom(check_server_options),
        "other server settings, libpq style: `-c work_mem=64MB -c geqo=off`",
    ),
];

/// Checks the libpq-style `options` value.
fn check_server_options(value: &str) -> Result<(), String> {
    parse_server_options(value).map(|_| ())
}

/// Parses libpq's `options` (`-c name=value`, `--name=value`, backslash escapes a
/// space) into `(name, value)` pairs.
pub(crate) fn parse_server_options(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => word.push(next),
                None => return Err("`options` ends with a lone backslash".into()),
            },
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut pairs = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words
                .next()
                .ok_or_else(|| "`-c` must be followed by name=value".to_owned())?
        } else if let Some(rest) = word.strip_prefix("-c") {
            rest.to_owned()
        } else if let Some(rest) = word.strip_prefix("--") {
            rest.to_owned()
        } else {
            return Err(format!(
                "`{word}` is not a server setting; write `-c name=value` (e.g. `-c work_mem=64MB`)"
            ));
        };
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("`{setting}` is not of the form name=value"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("`{name}` is not a server setting name"));
        }
        pairs.push((name.to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

/// Builds sqlx's connect options. Every field that sqlx would otherwise take from the
/// environment (`PGSSLMODE`, `PGAPPNAME`, …) is set explicitly where the connector says
/// something about it.
pub(crate) fn connect_options(config: &ValidConfig) -> PgConnectOptions {
    let mut options = PgConnectOptions::new_without_pgpass();
    match &config.endpoint {
        Endpoint::Tcp { host, port } | Endpoint::Udp { host, port } => {
            options = options.host(host).port(*port);
        }
        Endpoint::Unix { path } => {
            options = unix_socket(options, path);
        }
        Endpoint::Embedded => {}
    }
    options =
        extdata_core::sqlx_login_and_tls!(options, config, ssl_root_cert_from_pem, |verify| {
            match verify {
                // Never sqlx's default `prefer`, which silently falls back to plain text.
                None => PgSslMode::Disable,
                Some(TlsVerify::Full) => PgSslMode::VerifyFull,
                Some(TlsVerify::Ca) => PgSslMode::VerifyCa,
                Some(TlsVerify::None) => PgSslMode::Require,
            }
        });
    options = options.application_name(
        config
            .options
            .get("application_name")
            .unwrap_or(DEFAULT_APPLICATION_NAME),
    );
    if let Some(capacity) = config.options.get_u64("statement_cache_capacity") {
        options = options.statement_cache_capacity(usize::try_from(capacity).unwrap_or(usize::MAX));
    }
    if let Some(Ok(pairs)) = config.options.get("options").map(parse_server_options)
        && !pairs.is_empty()
    {
        options = options.options(pairs);
    }
    options
}

/// PostgreSQL's `host` for a socket is the directory holding `.s.PGSQL.<port>`; a full
/// socket path is accepted too (the port is then taken from its name).
fn unix_socket(options: PgConnectOptions, path: &str) -> PgConnectOptions {
    let trimmed = path.trim_end_matches('/');
    if let Some((dir, file)) = trimmed.rsplit_once('/')
        && let Some(port) = file.strip_prefix(".s.PGSQL.")
        && let Ok(port) = port.parse::<u16>()
    {
        let dir = if dir.is_empty() { "/" } else { dir };
        return options.socket(dir).port(port);
    }
    options.socket(if trimmed.is_empty() { "/" } else { trimmed })
}

/// Settings applied with `set_config` right after connecting (not as startup
/// parameters, which connection poolers such as PgBouncer refuse).
pub(crate) fn session_settings(config: &ValidConfig) -> Vec<(&'static str, String)> {
    let mut settings = vec![(
        "statement_timeout",
        statement_timeout_ms(config.query_timeout).to_string(),
    )];
    if config.read_only {
        settings.push(("default_transaction_read_only", "on".to_owned()));
    }
    if let Some(path) = config.options.get("search_path") {
        settings.push(("search_path", path.to_owned()));
    }
    if let Some(zone) = config.options.get("timezone") {
        settings.push(("TimeZone", zone.to_owned()));
    }
    if let Some(Ok(lock)) = config.options.get("lock_timeout").map(parse_duration) {
        settings.push(("lock_timeout", lock.as_millis().to_string()));
    }
    settings
}

/// The server-side guard for a call bounded by `timeout`, in milliseconds.
pub(crate) fn statement_timeout_ms(timeout: Duration) -> u64 {
    u64::try_from((timeout + STATEMENT_TIMEOUT_MARGIN).as_millis())
        .unwrap_or(u64::MAX)
        .min(i32::MAX as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_options_follow_libpq() {
        assert_eq!(
            parse_server_options(r"-c work_mem=64MB --geqo=off -cfoo.bar=a\ b").unwrap(),
            vec![
                ("work_mem".to_owned(), "64MB".to_owned()),
                ("geqo".to_owned(), "off".to_owned()),
                ("foo.bar".to_owned(), "a b".to_owned()),
            ]
        );
        assert!(parse_server_options("work_mem=1").is_err());
        assert!(parse_server_options("-c").is_err());
        assert!(parse_server_options("-c novalue").is_err());
        assert!(parse_server_options(r"-c a=b\").is_err());
        assert!(parse_server_options("").unwrap().is_empty());
    }

    #[test]
    fn socket_path_or_directory() {
        let o = unix_socket(
            PgConnectOptions::new_without_pgpass(),
            "/var/run/postgresql/",
        );
        assert_eq!(
            o.get_socket().map(|p| p.display().to_string()).as_deref(),
            Some("/var/run/postgresql")
        );
        let o = unix_socket(PgConnectOptions::new_without_pgpass(), "/tmp/.s.PGSQL.6543");
        assert_eq!(o.get_port(), 6543);
        assert_eq!(
            o.get_socket().map(|p| p.display().to_string()).as_deref(),
            Some("/tmp")
        );
    }

    #[test]
    fn statement_timeout_has_a_margin() {
        assert_eq!(statement_timeout_ms(Duration::from_secs(1)), 2000);
    }
}
