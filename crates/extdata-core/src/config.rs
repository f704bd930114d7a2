//! [`ConnectorConfig`]: the connector form an administrator fills in.
//!
//! The form is deliberately loose (ports, durations and names are kept as written) so
//! that [`ConnectorConfig::validate_with`](crate::ConnectorConfig::validate_with) can report every
//! mistake at once, each naming its field, instead of stopping at the first one.

use std::collections::BTreeMap;
use std::fmt;
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

/// A secret (password, private key): literal, from an environment variable, or from a
/// file. Its value is never printed.
///
/// In TOML: `password = "literal"`, `password = { env = "CRM_PASSWORD" }` or
/// `password = { file = "/run/secrets/crm" }`.
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

    /// Reads the secret. The error names the variable or file, never the value.
    pub fn resolve(&self) -> std::result::Result<SecretString, String> {
        match self {
            SecretSource::Literal(s) => Ok(s.clone()),
            SecretSource::Env { env } => match std::env::var(env) {
                Ok(v) => Ok(SecretString::from(v)),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable `{env}` is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable `{env}` is not valid UTF-8"))
                }
            },
            SecretSource::File { file } => match std::fs::read_to_string(file) {
                Ok(content) => Ok(SecretString::from(
                    content.trim_end_matches(['\r', '\n']).to_owned(),
                )),
                Err(e) => Err(format!("cannot read file `{file}`: {e}")),
            },
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
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
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
                for part in query.trim().trim_start_matches('?').split(['&', ';']) {
                    if part.trim().is_empty() {
                        continue;
                    }
                    let Some((key, value)) = part.split_once('=') else {
                        return Err(format!("`{part}` is not of the form key=value"));
                    };
                    let decode = |s: &str| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8()
                            .map(|c| c.into_owned())
                            .map_err(|_| format!("`{s}` is not valid percent-encoded UTF-8"))
                    };
                    pairs.push((decode(key.trim())?, decode(value.trim())?));
                }
                Ok(pairs)
            }
        }
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

impl fmt::Debug for SslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SslConfig")
            .field("enabled", &self.enabled)
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field("ca_file", &self.ca_file)
            .field("cert", &self.cert.as_ref().map(|_| "<pem>"))
            .field("cert_file", &self.cert_file)
            .field("key", &self.key)
            .field("key_file", &self.key_file)
            .field("verify", &self.verify)
            .finish()
    }
}

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

/// A connector as the administrator's form describes it.
///
/// Build it in code with [`ConnectorConfig::new`] and the `with_*` setters, or
/// deserialize it from TOML/JSON; then call [`validate_with`](ConnectorConfig::validate_with)
/// (the `extdata` facade does this for you).
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
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Unique name of the connector.
    pub name: String,
    /// Database type: `mysql`, `postgresql`, `mssql`, `oracle`, `hive`, `clickhouse`,
    /// `sqlite`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Database name (SQLite: file path or `:memory:`).
    #[serde(default)]
    pub database: Option<String>,
    /// Host name or address (`protocol = "unix"`: the socket path).
    #[serde(default)]
    pub host: Option<String>,
    /// Port (default per type).
    #[serde(default)]
    pub port: Option<Scalar>,
    /// `tcp` (default), `udp` or `unix`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (literal, `{ env = "…" }` or `{ file = "…" }`).
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// Bound on TCP connect + TLS + authentication, e.g. `"5s"` (default `10s`).
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// Bound on each call, e.g. `"30s"` (default `30s`).
    #[serde(default)]
    pub query_timeout: Option<String>,
    /// Additional DSN options, `a=1&b=2` or a table.
    #[serde(default)]
    pub options: DsnOptions,
    /// Refuse writes (enforced by the server session where the backend can).
    #[serde(default)]
    pub read_only: bool,
    /// TLS settings.
    #[serde(default)]
    pub ssl: Option<SslConfig>,
    /// Pool settings.
    #[serde(default)]
    pub pool: PoolConfig,
}

impl ConnectorConfig {
    /// A connector named `name` of type `kind`, everything else at its default.
    pub fn new(name: impl Into<String>, kind: DbKind) -> Self {
        ConnectorConfig {
            name: name.into(),
            kind: kind.as_str().to_owned(),
            database: None,
            host: None,
            port: None,
            protocol: None,
            username: None,
            password: None,
            connect_timeout: None,
            query_timeout: None,
            options: DsnOptions::None,
            read_only: false,
            ssl: None,
            pool: PoolConfig::default(),
        }
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

impl fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("database", &self.database)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("protocol", &self.protocol)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("connect_timeout", &self.connect_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("options", &self.options)
            .field("read_only", &self.read_only)
            .field("ssl", &self.ssl)
            .field("pool", &self.pool)
            .finish()
    }
}

/// Exposes a secret's text: the only way backends read a password or key.
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}
