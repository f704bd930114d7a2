//! [`ConnectorConfig`]: the connector form an administrator fills in.
//!
//! The form is deliberately loose (ports, durations and names are kept as written) so
//! that [`ConnectorConfig::validate_with`](crate::ConnectorConfig::validate_with) can report every
//! mistake at once, each naming its field, instead of stopping at the first one.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::statement::Dialect;

/// The type of database a connector reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DbKind {
    /// MySQL and MariaDB.
    MySql,
    /// PostgreSQL.
    Postgres,
    /// Microsoft SQL Server.
    MsSql,
    /// Oracle Database.
    Oracle,
    /// Apache Hive (HiveServer2 protocol; also Spark's Thrift server).
    Hive,
    /// ClickHouse.
    ClickHouse,
    /// SQLite, the embedded default.
    Sqlite,
}

impl DbKind {
    /// Every kind, in the order of the administrator's form.
    pub const ALL: [DbKind; 7] = [
        DbKind::MySql,
        DbKind::Postgres,
        DbKind::MsSql,
        DbKind::Oracle,
        DbKind::Hive,
        DbKind::ClickHouse,
        DbKind::Sqlite,
    ];

    /// The name used in configuration files (`"postgresql"`, `"mysql"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::MySql => "mysql",
            DbKind::Postgres => "postgresql",
            DbKind::MsSql => "mssql",
            DbKind::Oracle => "oracle",
            DbKind::Hive => "hive",
            DbKind::ClickHouse => "clickhouse",
            DbKind::Sqlite => "sqlite",
        }
    }

    /// The cargo feature of the `extdata` facade that compiles this backend in.
    pub fn feature(self) -> &'static str {
        match self {
            DbKind::Postgres => "postgres",
            other => other.as_str(),
        }
    }

    /// The SQL dialect of this kind.
    pub fn dialect(self) -> Dialect {
        match self {
            DbKind::MySql => Dialect::MySql,
            DbKind::Postgres => Dialect::Postgres,
            DbKind::MsSql => Dialect::MsSql,
            DbKind::Oracle => Dialect::Oracle,
            DbKind::Hive => Dialect::Hive,
            DbKind::ClickHouse => Dialect::ClickHouse,
            DbKind::Sqlite => Dialect::Sqlite,
        }
    }
}

impl fmt::Display for DbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DbKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => DbKind::MySql,
            "postgresql" | "postgres" | "pg" => DbKind::Postgres,
            "mssql" | "sqlserver" => DbKind::MsSql,
            "oracle" => DbKind::Oracle,
            "hive" => DbKind::Hive,
            "clickhouse" => DbKind::ClickHouse,
            "sqlite" => DbKind::Sqlite,
            _ => {
                return Err(Error::config(format!(
                    "unknown type `{s}`; expected one of: {}",
                    DbKind::ALL.map(DbKind::as_str).join(", ")
                )));
            }
        })
    }
}

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// TCP to `host:port` (the default).
    #[default]
    Tcp,
    /// UDP; for MSSQL: resolve a named instance through the SQL Server Browser.
    Udp,
    /// A unix domain socket; `host` is the socket path (or directory for PostgreSQL).
    Unix,
}

impl Protocol {
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Unix => "unix",
        }
    }
}

impl FromStr for Protocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "unix" | "unixdomain" | "unix_domain" | "socket" => Ok(Protocol::Unix),
            _ => Err(Error::config(format!(
                "unknown protocol `{s}`; expected tcp, udp or unix"
            ))),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the files and environment variables named in connector configs may be: a
/// policy of the program that embeds extdata, never of the connector.
///
/// A connector may come from an untrusted source (an account's form, an API): if its
/// `{ file = "…" }` or `{ env = "…" }` could name anything, it could make the process
/// read any file or variable and send it, as a password, to a server the connector
/// names. So every file a connector makes the process read (`password = { file }`,
/// `ssl.key`, `ssl.key_file`, `ssl.ca_file`, `ssl.cert_file`) must lie inside a granted
/// directory, and every variable (`{ env }`) must start with a granted prefix.
///
/// - [`SecretPolicy::deny_all`] (also the [`Default`]) grants nothing: only literal
///   secrets and inline PEM are accepted. It is what validation uses unless told
///   otherwise ([`ConnectorConfig::validate_with`]), and what a connector from an
///   untrusted source should get.
/// - The operator grants directories ([`with_file_root`](Self::with_file_root)) and
///   variable-name prefixes ([`with_env_prefix`](Self::with_env_prefix)).
///
/// Files are checked after resolving `..` and symbolic links (a link inside a granted
/// directory that points outside it is refused), must be regular files (not FIFOs,
/// devices or directories) and are read with a bound ([`max_size`](Self::max_size),
/// default 64 KiB), so `/dev/zero` or a huge file cannot exhaust memory. With no
/// directory granted the file system is not touched at all, so a refusal tells nothing
/// about which files exist. Refusals name the field's file or variable and the policy,
/// never the secret.
///
/// The policy is checked when the config is validated; a granted directory should hold
/// only what every connector validated under the policy may read (a directory shared
/// by several accounts' connectors lets each read the others' files).
///
/// ```
/// use extdata_core::{ConnectorConfig, DbKind, SecretPolicy, SecretSource};
/// let config = ConnectorConfig::new("crm", DbKind::Postgres)
///     .with_host("db")
///     .with_password(SecretSource::Env { env: "HOME".into() });
/// // Nothing granted: the variable is refused (the field and the policy are named).
/// let problems = config.validate_with_policy(None, &SecretPolicy::deny_all()).unwrap_err();
/// assert!(problems.to_string().contains("password: environment variable `HOME` is outside"));
/// let policy = SecretPolicy::deny_all()
///     .with_file_root("/run/secrets")
///     .with_env_prefix("CRM_");
/// assert_eq!(policy.env_prefixes(), ["CRM_"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPolicy {
    file_roots: Vec<PathBuf>,
    env_prefixes: Vec<String>,
    max_size: usize,
    grant_hint: Option<String>,
}

impl Default for SecretPolicy {
    /// [`SecretPolicy::deny_all`].
    fn default() -> Self {
        SecretPolicy::deny_all()
    }
}

impl SecretPolicy {
    /// The default bound on a secret file or variable: 64 KiB.
    pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;

    /// Grants nothing: `{ file }` and `{ env }` are refused, literal secrets and inline
    /// PEM work.
    pub fn deny_all() -> Self {
        SecretPolicy {
            file_roots: Vec::new(),
            env_prefixes: Vec::new(),
            max_size: Self::DEFAULT_MAX_SIZE,
            grant_hint: None,
        }
    }

    /// Grants the files inside `dir` (and its subdirectories). A relative `dir` is
    /// relative to the working directory when a file is checked.
    pub fn with_file_root(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        if !self.file_roots.contains(&dir) {
            self.file_roots.push(dir);
        }
        self
    }

    /// Grants the environment variables whose names start with `prefix` (case-sensitive;
    /// an empty prefix grants every variable).
    pub fn with_env_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        if !self.env_prefixes.contains(&prefix) {
            self.env_prefixes.push(prefix);
        }
        self
    }

    /// Sets the bound, in bytes, on a secret file or variable (and on PEM files).
    pub fn with_max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// Sets the advice appended to a refusal, saying how the operator grants more
    /// (e.g. `"grant it with --secrets-dir"`).
    pub fn with_grant_hint(mut self, hint: impl Into<String>) -> Self {
        self.grant_hint = Some(hint.into());
        self
    }

    /// The granted directories, as given.
    pub fn file_roots(&self) -> &[PathBuf] {
        &self.file_roots
    }

    /// The granted variable-name prefixes.
    pub fn env_prefixes(&self) -> &[String] {
        &self.env_prefixes
    }

    /// The bound, in bytes, on a secret file or variable.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    fn hint(&self) -> String {
        match &self.grant_hint {
            Some(hint) => format!("; {hint}"),
            None => "; only literal values are accepted unless the program grants more".into(),
        }
    }

    /// Reads a file a connector names, if the policy allows it: inside a granted
    /// directory once `..` and links are resolved, a regular file, at most
    /// [`max_size`](Self::max_size) bytes, UTF-8. The error names the file and the
    /// rule that refused it, never the content.
    pub fn read_file(&self, path: &str) -> std::result::Result<String, String> {
        let granted = || {
            self.file_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let outside = || {
            format!(
                "file `{path}` is outside the directories granted for secret files (granted: {}){}",
                if self.file_roots.is_empty() {
                    "none".to_owned()
                } else {
                    granted()
                },
                self.hint()
            )
        };
        // Nothing granted: refuse without touching the file system.
        if self.file_roots.is_empty() {
            return Err(outside());
        }
        if path.trim().is_empty() {
            return Err("the file name is empty".into());
        }
        let requested = Path::new(path);
        let roots: Vec<PathBuf> = self
            .file_roots
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .collect();
        let canonical = match std::fs::canonicalize(requested) {
            Ok(canonical) => canonical,
            Err(e) => {
                // Only a path inside a granted directory may learn that it does not exist.
                let lexical = lexical_absolute(requested);
                let inside = lexical.as_ref().is_some_and(|p| {
                    roots.iter().any(|r| p.starts_with(r))
                        || self
                            .file_roots
                            .iter()
                            .filter_map(|r| lexical_absolute(r))
                            .any(|r| p.starts_with(r))
                });
                return Err(if inside {
                    format!("cannot read file `{path}`: {e}")
                } else {
                    outside()
                });
            }
        };
        if !roots.iter().any(|root| canonical.starts_with(root)) {
            return Err(outside());
        }
        let not_regular = || {
            format!(
                "`{path}` is not a regular file (a directory, FIFO or device cannot hold a secret)"
            )
        };
        let too_large = || {
            format!(
                "file `{path}` is larger than the limit of {} bytes for secret files",
                self.max_size
            )
        };
        // Checked before opening: opening a FIFO for reading would block.
        let metadata =
            std::fs::metadata(&canonical).map_err(|e| format!("cannot read file `{path}`: {e}"))?;
        if !metadata.is_file() {
            return Err(not_regular());
        }
        if metadata.len() > self.max_size as u64 {
            return Err(too_large());
        }
        let file = std::fs::File::open(&canonical)
            .map_err(|e| format!("cannot read file `{path}`: {e}"))?;
        // Checked again on the open file, in case the path was swapped in between.
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(not_regular());
        }
        let mut content = Vec::new();
        file.take(self.max_size as u64 + 1)
            .read_to_end(&mut content)
            .map_err(|e| format!("cannot read file `{path}`: {e}"))?;
        if content.len() > self.max_size {
            return Err(too_large());
        }
        String::from_utf8(content).map_err(|_| format!("file `{path}` is not valid UTF-8"))
    }

    /// Reads an environment variable a connector names, if its name starts with a
    /// granted prefix and its value is at most [`max_size`](Self::max_size) bytes.
    pub fn read_env(&self, name: &str) -> std::result::Result<String, String> {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(format!("`{name}` is not an environment variable name"));
        }
        if !self
            .env_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()))
        {
            return Err(format!(
                "environment variable `{name}` is outside the prefixes granted for secret variables (granted: {}){}",
                if self.env_prefixes.is_empty() {
                    "none".to_owned()
                } else {
                    self.env_prefixes
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                self.hint()
            ));
        }
        match std::env::var(name) {
            Ok(value) if value.len() > self.max_size => Err(format!(
                "environment variable `{name}` is longer than the limit of {} bytes for secrets",
                self.max_size
            )),
            Ok(value) => Ok(value),
            Err(std::env::VarError::NotPresent) => {
                Err(format!("environment variable `{name}` is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable `{name}` is not valid UTF-8"))
            }
        }
    }
}

/// `path` made absolute against the working directory, with `.` and `..` folded
/// without touching the file system.
fn lexical_absolute(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut folded = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                folded.pop();
            }
            other => folded.push(other),
        }
    }
    Some(folded)
}

/// A secret (password, private key): literal, from an environment variable, or from a
/// file. Its value is never printed.
///
/// In TOML: `password = "literal"`, `password = { env = "CRM_PASSWORD" }` or
/// `password = { file = "/run/secrets/crm" }`. Which variables and files may be named
/// is the program's [`SecretPolicy`].
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretSource {
    /// The secret itself.
    Literal(SecretString),
    /// The name of an environment variable that holds the secret.
    Env {
        /// Variable name.
        env: String,
    },
    /// A file whose content (without a trailing newline) is the secret.
    File {
        /// File path.
        file: String,
    },
}

impl SecretSource {
    /// A literal secret.
    pub fn literal(secret: impl Into<String>) -> Self {
        SecretSource::Literal(SecretString::from(secret.into()))
    }

    /// Reads the secret, if `policy` allows the variable or file it names. The error
    /// names the variable or file and the rule that refused it, never the value.
    pub fn resolve(&self, policy: &SecretPolicy) -> std::result::Result<SecretString, String> {
        match self {
            SecretSource::Literal(s) => Ok(s.clone()),
            SecretSource::Env { env } => policy.read_env(env).map(SecretString::from),
            SecretSource::File { file } => policy.read_file(file).map(|content| {
                SecretString::from(content.trim_end_matches(['\r', '\n']).to_owned())
            }),
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Literal(_) => f.write_str("SecretSource::Literal([REDACTED])"),
            SecretSource::Env { env } => write!(f, "SecretSource::Env({env:?})"),
            SecretSource::File { file } => write!(f, "SecretSource::File({file:?})"),
        }
    }
}

impl From<&str> for SecretSource {
    fn from(s: &str) -> Self {
        SecretSource::literal(s)
    }
}

impl From<String> for SecretSource {
    fn from(s: String) -> Self {
        SecretSource::literal(s)
    }
}

/// A scalar as written in a config file (TOML/JSON number, string or boolean), kept
/// loose so that validation can say what is wrong with it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A whole number.
    Int(i64),
    /// A fractional number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{v}"),
            Scalar::Bool(v) => write!(f, "{v}"),
            Scalar::Text(v) => f.write_str(v),
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar::Text(s.to_owned())
    }
}

impl From<String> for Scalar {
    fn from(s: String) -> Self {
        Scalar::Text(s)
    }
}

impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}

impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}

/// The "additional DSN options": `key=value` pairs written as a string `a=1&b=2`
/// (values may be percent-encoded) or as a table `{ a = 1, b = "2" }`.
///
/// Its `Debug` shows the keys only: an option's value may be a secret (`sslpassword`,
/// a token).
#[derive(Clone, PartialEq, Default, Deserialize)]
#[serde(untagged)]
pub enum DsnOptions {
    /// No options.
    #[default]
    #[serde(skip)]
    None,
    /// `a=1&b=2`.
    Query(String),
    /// `{ a = 1, b = "2" }`.
    Table(BTreeMap<String, Scalar>),
}

impl DsnOptions {
    /// The pairs in order, or the problem with the string form.
    pub fn pairs(&self) -> std::result::Result<Vec<(String, String)>, String> {
        match self {
            DsnOptions::None => Ok(Vec::new()),
            DsnOptions::Table(map) => Ok(map
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect()),
            DsnOptions::Query(query) => {
                let mut pairs = Vec::new();
                for (index, part) in query
                    .trim()
                    .trim_start_matches('?')
                    .split(['&', ';'])
                    .enumerate()
                {
                    if part.trim().is_empty() {
                        continue;
                    }
                    // The text of a part is not quoted: it may be a value, i.e. a secret.
                    let Some((key, value)) = part.split_once('=') else {
                        return Err(format!("part {} is not of the form key=value", index + 1));
                    };
                    let decode = |s: &str| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8()
                            .map(|c| c.into_owned())
                    };
                    let key = decode(key.trim()).map_err(|_| {
                        format!(
                            "the key of part {} is not valid percent-encoded UTF-8",
                            index + 1
                        )
                    })?;
                    let value = decode(value.trim()).map_err(|_| {
                        format!("the value of `{key}` is not valid percent-encoded UTF-8")
                    })?;
                    pairs.push((key, value));
                }
                Ok(pairs)
            }
        }
    }
}

impl fmt::Debug for DsnOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DsnOptions::None => f.write_str("None"),
            DsnOptions::Table(map) => f
                .debug_map()
                .entries(map.keys().map(|k| (k, REDACTED)))
                .finish(),
            DsnOptions::Query(query) => {
                // Keys only; a part without `=` may be a misplaced value: not shown.
                let mut map = f.debug_map();
                for part in query.trim().trim_start_matches('?').split(['&', ';']) {
                    match part.split_once('=') {
                        Some((key, _)) => map.entry(&key.trim(), &REDACTED),
                        None if part.trim().is_empty() => continue,
                        None => map.entry(&"<not key=value>", &REDACTED),
                    };
                }
                map.finish()
            }
        }
    }
}

/// What `Debug` prints in place of a value that may be secret.
pub(crate) const REDACTED: Redacted = Redacted;

/// Prints `"***"` (see [`REDACTED`]).
#[derive(Clone, Copy)]
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl From<&str> for DsnOptions {
    fn from(s: &str) -> Self {
        DsnOptions::Query(s.to_owned())
    }
}

/// TLS settings of a connector. PEM may be given as text (`ca`, `cert`, `key`) or as a
/// file (`ca_file`, `cert_file`, `key_file`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SslConfig {
    /// Whether to use TLS at all (default `true` when the `ssl` section is present).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// CA certificate(s) as PEM text.
    pub ca: Option<String>,
    /// CA certificate(s) as a PEM file.
    pub ca_file: Option<String>,
    /// Client certificate as PEM text.
    pub cert: Option<String>,
    /// Client certificate as a PEM file.
    pub cert_file: Option<String>,
    /// Client private key as PEM text (a secret: literal, env or file).
    pub key: Option<SecretSource>,
    /// Client private key as a PEM file.
    pub key_file: Option<String>,
    /// `full` (certificate and host name; the default), `ca` (certificate only) or
    /// `none` (no verification — only for tests).
    pub verify: Option<String>,
}

fn default_true() -> bool {
    true
}

impl Default for SslConfig {
    /// TLS enabled, verified fully against the system's roots, no client certificate.
    fn default() -> Self {
        SslConfig {
            enabled: true,
            ca: None,
            ca_file: None,
            cert: None,
            cert_file: None,
            key: None,
            key_file: None,
            verify: None,
        }
    }
}

impl SslConfig {
    /// The fields an `ssl` table may hold.
    pub fn field_names() -> &'static [&'static str] {
        serde_field_names::<SslConfig>()
    }
}

// `key` prints as its own `SecretSource` `Debug` does: a literal key is redacted.
crate::debug_fields!(SslConfig |ssl| {
    enabled,
    ca: ssl.ca.as_ref().map(|_| "<pem>"),
    ca_file,
    cert: ssl.cert.as_ref().map(|_| "<pem>"),
    cert_file, key, key_file, verify,
});

/// Connection pool settings (durations as `"5s"`, `"10m"`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Maximum number of open connections (default 10).
    pub max_size: Option<Scalar>,
    /// Connections kept open while idle (default 0).
    pub min_idle: Option<Scalar>,
    /// How long a call waits for a free connection (default: the connect timeout).
    pub acquire_timeout: Option<String>,
    /// Close connections idle longer than this (default `10m`; `"0s"` = never).
    pub idle_timeout: Option<String>,
    /// Close connections older than this (default `30m`; `"0s"` = never).
    pub max_lifetime: Option<String>,
}

impl PoolConfig {
    /// The fields a `pool` table may hold.
    pub fn field_names() -> &'static [&'static str] {
        serde_field_names::<PoolConfig>()
    }
}

/// A connector as the administrator's form describes it.
///
/// Build it in code with [`ConnectorConfig::new`] and the `with_*` setters, or
/// deserialize it from TOML/JSON; then call [`validate_with`](ConnectorConfig::validate_with)
/// (the `extdata` facade does this for you).
///
/// This struct is the one list of a connector's fields: every field has a default, so
/// a form may give any subset of them (the facade reads a `[[connectors]]` entry one
/// field at a time to report every mistake), and [`field_names`](Self::field_names)
/// is what a file may contain. Missing `name` and `type` are reported by validation.
/// `Debug` is derived: every field's own `Debug` leaves secrets out.
///
/// ```
/// use extdata_core::{ConnectorConfig, DbKind};
/// let config = ConnectorConfig::new("crm", DbKind::Postgres)
///     .with_host("10.0.0.5")
///     .with_database("crm")
///     .with_username("reader")
///     .with_password("s3cret")
///     .with_options("application_name=extdata");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert_eq!(ConnectorConfig::field_names()[..2], ["name", "type"]);
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Unique name of the connector.
    pub name: String,
    /// Database type: `mysql`, `postgresql`, `mssql`, `oracle`, `hive`, `clickhouse`,
    /// `sqlite`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Database name (SQLite: file path or `:memory:`).
    pub database: Option<String>,
    /// Host name or address (`protocol = "unix"`: the socket path).
    pub host: Option<String>,
    /// Port (default per type).
    pub port: Option<Scalar>,
    /// `tcp` (default), `udp` or `unix`.
    pub protocol: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// Password (literal, `{ env = "…" }` or `{ file = "…" }`).
    pub password: Option<SecretSource>,
    /// Bound on TCP connect + TLS + authentication, e.g. `"5s"` (default `10s`).
    pub connect_timeout: Option<String>,
    /// Bound on each call, e.g. `"30s"` (default `30s`).
    pub query_timeout: Option<String>,
    /// Additional DSN options, `a=1&b=2` or a table.
    pub options: DsnOptions,
    /// Refuse writes (enforced by the server session where the backend can).
    pub read_only: bool,
    /// TLS settings.
    pub ssl: Option<SslConfig>,
    /// Pool settings.
    pub pool: PoolConfig,
}

impl ConnectorConfig {
    /// A connector named `name` of type `kind`, everything else at its default.
    pub fn new(name: impl Into<String>, kind: DbKind) -> Self {
        ConnectorConfig {
            name: name.into(),
            kind: kind.as_str().to_owned(),
            ..ConnectorConfig::default()
        }
    }

    /// The fields a connector table may hold, as written in files (`type`, not
    /// `kind`), in the order of the form.
    pub fn field_names() -> &'static [&'static str] {
        serde_field_names::<ConnectorConfig>()
    }

    /// Sets the database name (SQLite: the file path or `:memory:`).
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Sets the host (or socket path for `protocol = unix`).
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(Scalar::Int(port.into()));
        self
    }

    /// Sets the protocol.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol.as_str().to_owned());
        self
    }

    /// Sets the user name.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the password.
    pub fn with_password(mut self, password: impl Into<SecretSource>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(humantime::format_duration(timeout).to_string());
        self
    }

    /// Sets the query timeout.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = Some(humantime::format_duration(timeout).to_string());
        self
    }

    /// Sets the additional DSN options (`a=1&b=2`).
    pub fn with_options(mut self, options: impl Into<DsnOptions>) -> Self {
        self.options = options.into();
        self
    }

    /// Adds one DSN option.
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<Scalar>) -> Self {
        let mut table = match std::mem::take(&mut self.options) {
            DsnOptions::Table(t) => t,
            other => other
                .pairs()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, Scalar::Text(v)))
                .collect(),
        };
        table.insert(key.into(), value.into());
        self.options = DsnOptions::Table(table);
        self
    }

    /// Marks the connector read-only.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets the TLS settings.
    pub fn with_ssl(mut self, ssl: SslConfig) -> Self {
        self.ssl = Some(ssl);
        self
    }

    /// Sets the pool settings.
    pub fn with_pool(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }
}

/// Exposes a secret's text: the only way backends read a password or key.
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

/// The field names a `#[derive(Deserialize)]` struct reads (after `rename`), in
/// declaration order. Asked of the type itself, through the list serde's derive hands
/// to `deserialize_struct`, so that a list of known fields cannot drift from the struct.
fn serde_field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct FieldNames<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom(
                "only the field names were asked for",
            ))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // Always an error: the deserializer stops once it has the names.
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde itself lists when it refuses an unknown field.
    fn serde_lists<'de, T: Deserialize<'de> + fmt::Debug>() -> String {
        let refused = T::deserialize(serde::de::value::MapDeserializer::<
            _,
            serde::de::value::Error,
        >::new(std::iter::once(("?", 0))))
        .unwrap_err()
        .to_string();
        refused
            .split_once("expected one of ")
            .map(|(_, list)| list.to_owned())
            .unwrap_or(refused)
    }

    fn quoted(names: &[&str]) -> String {
        names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn field_names_are_the_names_serde_reads() {
        let fields = ConnectorConfig::field_names();
        assert_eq!(serde_lists::<ConnectorConfig>(), quoted(fields));
        assert_eq!((fields.len(), fields[1]), (14, "type"));
        assert_eq!(serde_lists::<SslConfig>(), quoted(SslConfig::field_names()));
        assert_eq!(
            serde_lists::<PoolConfig>(),
            quoted(PoolConfig::field_names())
        );
    }

    #[test]
    fn a_form_may_leave_out_any_field() {
        let empty: ConnectorConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(
            format!("{empty:?}"),
            format!("{:?}", ConnectorConfig::default())
        );
        assert!(empty.name.is_empty() && empty.kind.is_empty());
        assert!(serde_json::from_str::<ConnectorConfig>(r#"{"hots": "x"}"#).is_err());
    }

    #[test]
    fn debug_names_every_field_and_no_secret() {
        let config = ConnectorConfig::new("crm", DbKind::Postgres)
            .with_password("pw-sentinel")
            .with_option("sslpassword", "opt-sentinel")
            .with_ssl(SslConfig {
                key: Some(SecretSource::literal("key-sentinel")),
                ..SslConfig::default()
            });
        let debug = format!("{config:?}");
        for secret in ["pw-sentinel", "opt-sentinel", "key-sentinel"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        for field in ConnectorConfig::field_names() {
            let field = if *field == "type" { "kind" } else { field };
            assert!(debug.contains(&format!("{field}: ")), "{field} in {debug}");
        }
    }
}
