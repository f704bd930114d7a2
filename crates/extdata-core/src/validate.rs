//! Validation: [`ConnectorConfig`] → [`ValidConfig`], reporting every problem at once.

use std::fmt;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConnectorConfig, DbKind, Protocol, REDACTED, Scalar, SecretPolicy};
use crate::error::{Error, ErrorKind};

/// Default connect timeout when the form leaves it empty.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default query timeout when the form leaves it empty.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// One mistake in a configuration: which connector, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The connector (or other section entry) the problem belongs to.
    pub connector: String,
    /// The field, e.g. `port`, `ssl.key`, `options.search_path`.
    pub field: String,
    /// What is wrong, in words an administrator understands.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `<connector>: <field>: <problem>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.connector, self.field, self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Records a problem.
    pub fn push(
        &mut self,
        connector: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(Problem {
            connector: connector.into(),
            field: field.into(),
            message: message.into(),
        });
    }

    /// Whether there is no problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }
}

impl Problems {
    /// Records a field that `connector`'s table does not know: what was probably
    /// meant, when a known field is close (see [`closest_match`]), and the known fields.
    /// `field` may be a path (`retry.backof`); its last part is compared.
    pub fn push_unknown_field(
        &mut self,
        connector: impl Into<String>,
        field: impl Into<String>,
        known: &[&str],
    ) {
        let field = field.into();
        let written = field.rsplit('.').next().unwrap_or(&field);
        let guess = did_you_mean(written, known.iter().copied());
        let message = format!("unknown field;{guess} known fields: {}", known.join(", "));
        self.push(connector, field, message);
    }
}

/// Levenshtein distance between two words (insertions, deletions and substitutions of
/// characters), for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// The candidate `word` most probably meant: the closest by [`edit_distance`] (ties:
/// the first in alphabetical order), if at most 2 edits or a third of its length away.
pub fn closest_match<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min()
        .map(|(_, candidate)| candidate)
}

/// `" did you mean `x`?"` when a candidate is close to `word` ([`closest_match`]), else
/// an empty string: the tail of an "unknown …" message.
///
/// ```
/// use extdata_core::did_you_mean;
/// assert_eq!(did_you_mean("crmm", ["crm", "billing"]), " did you mean `crm`?");
/// assert_eq!(did_you_mean("zzz", ["crm"]), "");
/// ```
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest_match(word, candidates)
        .map(|meant| format!(" did you mean `{meant}`?"))
        .unwrap_or_default()
}

/// "unknown WHAT `NAME`", followed by "; did you mean `x`?" when a candidate is
/// close ([`did_you_mean`]).
///
/// ```
/// use extdata_core::unknown_name;
/// assert_eq!(
///     unknown_name("connector", "crmm", ["crm"]),
///     "unknown connector `crmm`; did you mean `crm`?"
/// );
/// assert_eq!(unknown_name("segment", "zzz", ["crm"]), "unknown segment `zzz`");
/// ```
pub fn unknown_name<'a>(
    what: &str,
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    match closest_match(name, candidates) {
        Some(meant) => format!("unknown {what} `{name}`; did you mean `{meant}`?"),
        None => format!("unknown {what} `{name}`"),
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// So that `?` can turn problems into `Box<dyn std::error::Error>` (examples, binaries).
impl std::error::Error for Problems {}

impl From<Problems> for Error {
    fn from(problems: Problems) -> Self {
        let count = problems.0.len();
        let connector = problems.0.first().map(|p| p.connector.clone());
        let mut err = Error::new(
            ErrorKind::Config,
            format!(
                "invalid configuration ({count} problem{}):\n{problems}",
                if count == 1 { "" } else { "s" }
            ),
        );
        if let Some(name) = connector {
            err = err.with_connector(name);
        }
        err
    }
}

/// Whether a backend supports a transport or feature, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Supported.
    Yes,
    /// Not supported, with the reason shown to the administrator.
    No(&'static str),
}

/// How a known option's value is checked.
#[derive(Debug, Clone, Copy)]
pub enum OptionCheck {
    /// Any text.
    Any,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// A non-negative whole number.
    UInt,
    /// A duration such as `5s`.
    Duration,
    /// One of the listed words (case-insensitive).
    OneOf(&'static [&'static str]),
    /// A whole number from the first to the second (both included).
    Range(u64, u64),
    /// A backend-specific check returning what is wrong.
    Custom(fn(&str) -> Result<(), String>),
}

impl OptionCheck {
    fn check(&self, value: &str) -> Result<(), String> {
        match self {
            OptionCheck::Any => Ok(()),
            OptionCheck::Bool => parse_bool(value)
                .map(|_| ())
                .ok_or_else(|| format!("`{value}` is not a boolean (true or false)")),
            OptionCheck::UInt => value
                .parse::<u64>()
                .map(|_| ())
                .map_err(|_| format!("`{value}` is not a non-negative whole number")),
            OptionCheck::Duration => parse_duration(value).map(|_| ()),
            OptionCheck::OneOf(words) => {
                if words.iter().any(|w| w.eq_ignore_ascii_case(value)) {
                    Ok(())
                } else {
                    Err(format!("`{value}` is not one of: {}", words.join(", ")))
                }
            }
            OptionCheck::Range(min, max) => match value.trim().parse::<u64>() {
                Ok(n) if (*min..=*max).contains(&n) => Ok(()),
                _ => Err(format!(
                    "`{value}` is not a whole number from {min} to {max}"
                )),
            },
            OptionCheck::Custom(f) => f(value),
        }
    }
}

/// Parses `true/false`, `1/0`, `yes/no`, `on/off`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses a human duration (`"500ms"`, `"5s"`, `"2m"`, `"1h 30m"`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|e| format!("`{value}` is not a duration like \"5s\" or \"2m\" ({e})"))
}

/// A DSN option a backend understands.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The key, e.g. `application_name`.
    pub key: &'static str,
    /// What it does (shown in docs and in the list of known keys).
    pub description: &'static str,
    /// How its value is checked.
    pub check: OptionCheck,
}

impl OptionSpec {
    /// A known option.
    pub const fn new(key: &'static str, check: OptionCheck, description: &'static str) -> Self {
        OptionSpec {
            key,
            description,
            check,
        }
    }
}

/// The rules of one backend, used by validation: the parts of the form that depend on
/// the database type.
#[derive(Debug, Clone, Copy)]
pub struct BackendSpec {
    /// The kind these rules are for.
    pub kind: DbKind,
    /// Port used when the form leaves it empty (`None`: the backend needs no port).
    pub default_port: Option<u16>,
    /// Whether `host` is required (false for embedded databases).
    pub needs_host: bool,
    /// Whether `database` is required.
    pub needs_database: bool,
    /// TLS support.
    pub tls: Support,
    /// `protocol = "unix"` support.
    pub unix: Support,
    /// `protocol = "udp"` support.
    pub udp: Support,
    /// The DSN options it understands.
    pub options: &'static [OptionSpec],
    /// Option key prefixes passed through as they are (e.g. `hive.`, `spark.`).
    pub option_prefixes: &'static [&'static str],
    /// Extra checks on the validated config; push `(field, message)` for each problem.
    #[allow(clippy::type_complexity)] // a plain fn pointer keeps `BackendSpec` a `const`
    pub check: Option<fn(&ValidConfig, &mut Vec<(String, String)>)>,
    /// Warnings on the validated config (valid, but the administrator should know).
    #[allow(clippy::type_complexity)]
    pub warn: Option<fn(&ValidConfig, &mut Vec<(String, String)>)>,
}

impl BackendSpec {
    /// The rules of a database server reached over the network on `default_port`:
    /// `host` required, `database` optional, TLS and unix sockets supported, UDP refused,
    /// no options and no extra checks. A backend states what differs with struct update
    /// syntax, e.g. `BackendSpec { options: OPTIONS, ..BackendSpec::server(kind, 5432) }`.
    pub const fn server(kind: DbKind, default_port: u16) -> Self {
        BackendSpec {
            kind,
            default_port: Some(default_port),
            needs_host: true,
            needs_database: false,
            tls: Support::Yes,
            unix: Support::Yes,
            udp: Support::No("this database is reached over TCP, not UDP"),
            options: &[],
            option_prefixes: &[],
            check: None,
            warn: None,
        }
    }

    /// The rules of an embedded database (it runs inside this process): `database` (the
    /// file) required, no host and no port; TLS, unix sockets and UDP refused with
    /// `reason`; no options and no extra checks.
    pub const fn embedded(kind: DbKind, reason: &'static str) -> Self {
        BackendSpec {
            kind,
            default_port: None,
            needs_host: false,
            needs_database: true,
            tls: Support::No(reason),
            unix: Support::No(reason),
            udp: Support::No(reason),
            options: &[],
            option_prefixes: &[],
            check: None,
            warn: None,
        }
    }
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP host and port.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// UDP (MSSQL: SQL Server Browser) host and port.
    Udp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A unix domain socket path (or, for PostgreSQL, its directory).
    Unix {
        /// Socket path.
        path: String,
    },
    /// No network: an embedded database.
    Embedded,
}

/// How the server's TLS certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVerify {
    /// Certificate chain and host name (the default).
    #[default]
    Full,
    /// Certificate chain only.
    Ca,
    /// Nothing (encrypts, but trusts anyone: for tests only).
    None,
}

/// TLS material, read and parsed at validation.
#[derive(Clone)]
pub struct TlsSettings {
    /// How the server is verified.
    pub verify: TlsVerify,
    /// CA certificate(s), PEM (None: the system's roots).
    pub ca_pem: Option<String>,
    /// Client certificate chain, PEM.
    pub cert_pem: Option<String>,
    /// Client private key, PEM.
    pub key_pem: Option<SecretString>,
}

crate::debug_fields!(TlsSettings |tls| {
    verify,
    ca: tls.ca_pem.is_some(),
    client_cert: tls.cert_pem.is_some(),
    client_key: tls.key_pem.as_ref().map(|_| crate::driver::REDACTED),
});

/// Pool settings with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Maximum number of connections.
    pub max_size: u32,
    /// Connections kept open while idle.
    pub min_idle: u32,
    /// How long to wait for a free connection.
    pub acquire_timeout: Duration,
    /// Close connections idle longer than this (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Close connections older than this (`None`: never).
    pub max_lifetime: Option<Duration>,
}

/// DSN options after validation, in the order given.
///
/// Its `Debug` shows the keys only: a value may be a secret (`sslpassword`, a token).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Options(Vec<(String, String)>);

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, _)| (k, REDACTED)))
            .finish()
    }
}

impl Options {
    /// Builds options from pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Options(pairs)
    }

    /// The value of `key` (the last one when repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a boolean (validated before, so a bad value is `None`).
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(parse_bool)
    }

    /// The value of `key` as a whole number.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.trim().parse().ok())
    }

    /// The value of `key` as a duration.
    pub fn get_duration(&self, key: &str) -> Option<Duration> {
        self.get(key).and_then(|v| parse_duration(v).ok())
    }

    /// All pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A connector whose every field was checked: typed, defaults applied, secrets read,
/// PEM parsed. Backends build their driver options from this.
#[derive(Clone)]
pub struct ValidConfig {
    /// Connector name.
    pub name: String,
    /// Database type.
    pub kind: DbKind,
    /// Database name (SQLite: path or `:memory:`).
    pub database: Option<String>,
    /// Where the server is.
    pub endpoint: Endpoint,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<SecretString>,
    /// Bound on connect + TLS + authentication.
    pub connect_timeout: Duration,
    /// Default bound on each call.
    pub query_timeout: Duration,
    /// Additional DSN options.
    pub options: Options,
    /// Refuse writes.
    pub read_only: bool,
    /// TLS, when enabled.
    pub tls: Option<TlsSettings>,
    /// Pool settings.
    pub pool: PoolSettings,
    /// Things that are valid but worth telling the administrator.
    pub warnings: Vec<Problem>,
}

impl ValidConfig {
    /// The password's text, for handing to a driver.
    pub fn password_text(&self) -> Option<&str> {
        self.password.as_ref().map(|p| p.expose_secret())
    }

    /// Wraps an error with this connector's name.
    pub fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::new(kind, message).with_connector(self.name.clone())
    }
}

crate::debug_fields!(ValidConfig |config| {
    name, kind, database, endpoint, username,
    password: secret,
    connect_timeout, query_timeout, options, read_only, tls, pool,
});

/// Collects problems for one connector.
struct Report<'a> {
    connector: &'a str,
    problems: Problems,
}

impl Report<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(self.connector, field, message);
    }
}

impl ConnectorConfig {
    /// Validates against `spec` (the rules of the backend for this config's type; see
    /// each backend crate's `SPEC`, or let the `extdata` facade pick it). When `spec` is
    /// `None` the type's backend is not available and that is reported.
    ///
    /// Secrets are read under [`SecretPolicy::deny_all`]: `{ file }`, `{ env }` and PEM
    /// files are refused, literals work. Use
    /// [`validate_with_policy`](Self::validate_with_policy) to grant more.
    ///
    /// Returns every problem at once.
    pub fn validate_with(&self, spec: Option<&BackendSpec>) -> Result<ValidConfig, Problems> {
        self.validate_with_policy(spec, &SecretPolicy::deny_all())
    }

    /// Like [`validate_with`](Self::validate_with), reading the files and variables the
    /// config names (`password`, `ssl.key`, `ssl.*_file`) only as far as `policy`
    /// grants them.
    pub fn validate_with_policy(
        &self,
        spec: Option<&BackendSpec>,
        policy: &SecretPolicy,
    ) -> Result<ValidConfig, Problems> {
        let mut report = Report {
            connector: display_name(&self.name),
            problems: Problems::default(),
        };
        validate_name(&self.name, &mut report);
        let kind = validate_kind(&self.kind, &mut report);
        let spec = matching_spec(kind, spec, &mut report);
        let endpoint = validate_endpoint(self, spec, &mut report);
        let database = validate_database(self, spec, &mut report);
        let password = self.password.as_ref().and_then(|source| {
            source
                .resolve(policy)
                .map_err(|why| report.push("password", why))
                .ok()
        });
        let connect_timeout = validate_timeout(
            &mut report,
            "connect_timeout",
            &self.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        );
        let query_timeout = validate_timeout(
            &mut report,
            "query_timeout",
            &self.query_timeout,
            DEFAULT_QUERY_TIMEOUT,
        );
        let options = validate_options(self, spec, &mut report);
        let tls = validate_ssl(self, spec, policy, &mut report);
        let pool = validate_pool(self, connect_timeout, &mut report);
        let mut valid = ValidConfig {
            name: self.name.clone(),
            kind: kind.unwrap_or(DbKind::Sqlite),
            database,
            endpoint,
            username: self.username.clone().filter(|u| !u.is_empty()),
            password,
            connect_timeout,
            query_timeout,
            options,
            read_only: self.read_only,
            tls,
            pool,
            warnings: Vec::new(),
        };
        if let Some(spec) = spec {
            apply_backend_rules(spec, &mut valid, &mut report);
        }
        if report.problems.is_empty() {
            Ok(valid)
        } else {
            Err(report.problems)
        }
    }
}

/// How problems name a connector: its name, or `<unnamed>`.
fn display_name(name: &str) -> &str {
    if name.trim().is_empty() {
        "<unnamed>"
    } else {
        name
    }
}

fn validate_name(name: &str, report: &mut Report<'_>) {
    if name.trim().is_empty() {
        report.push("name", "must not be empty");
    } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        report.push("name", "must not contain spaces or control characters");
    }
}

fn validate_kind(kind: &str, report: &mut Report<'_>) -> Option<DbKind> {
    kind.parse::<DbKind>()
        .map_err(|e| report.push("type", e.message()))
        .ok()
}

/// The backend rules to apply: `spec` when it is the rules of `kind`; otherwise the
/// mismatch or the missing backend is reported and only the common rules apply.
fn matching_spec<'s>(
    kind: Option<DbKind>,
    spec: Option<&'s BackendSpec>,
    report: &mut Report<'_>,
) -> Option<&'s BackendSpec> {
    match (kind, spec) {
        (Some(kind), Some(spec)) if spec.kind == kind => Some(spec),
        (Some(kind), Some(spec)) => {
            report.push(
                "type",
                format!(
                    "is `{kind}` but was validated with the rules of `{}`",
                    spec.kind
                ),
            );
            None
        }
        (Some(kind), None) => {
            report.push(
                "type",
                format!(
                    "the `{kind}` backend is not compiled in; enable the cargo feature `{}` of `extdata`",
                    kind.feature()
                ),
            );
            None
        }
        (None, _) => None,
    }
}

/// `protocol`, `host` and `port` → where the server is.
fn validate_endpoint(
    config: &ConnectorConfig,
    spec: Option<&BackendSpec>,
    report: &mut Report<'_>,
) -> Endpoint {
    let protocol = match config.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(p) => p.parse::<Protocol>().unwrap_or_else(|e| {
            report.push("protocol", e.message());
            Protocol::Tcp
        }),
    };
    let port = config.port.as_ref().and_then(|scalar| {
        let parsed = match scalar {
            Scalar::Int(v) => u16::try_from(*v).ok(),
            Scalar::Text(t) => t.trim().parse::<u16>().ok(),
            _ => None,
        };
        let port = parsed.filter(|p| *p != 0);
        if port.is_none() {
            report.push(
                "port",
                format!("`{scalar}` is not a port number (1 to 65535)"),
            );
        }
        port
    });
    let host = config
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    if let Some(h) = &host
        && protocol != Protocol::Unix
        && (h.contains('/') || h.contains(char::is_whitespace))
    {
        report.push(
            "host",
            format!(
                "`{h}` is not a host name or address (a socket path needs protocol = \"unix\")"
            ),
        );
    }
    match spec {
        Some(spec) if !spec.needs_host && spec.default_port.is_none() => {
            embedded_endpoint(spec, protocol, host.is_some() || port.is_some(), report)
        }
        _ => network_endpoint(spec, protocol, host, port, report),
    }
}

/// An embedded database: no host, port or protocol.
fn embedded_endpoint(
    spec: &BackendSpec,
    protocol: Protocol,
    has_address: bool,
    report: &mut Report<'_>,
) -> Endpoint {
    if has_address {
        report.push(
            "host",
            format!(
                "{} connectors have no host or port; leave them empty",
                spec.kind
            ),
        );
    }
    if protocol != Protocol::Tcp {
        report.push(
            "protocol",
            format!("{} connectors have no network protocol", spec.kind),
        );
    }
    Endpoint::Embedded
}

/// A server reached over TCP, UDP or a unix socket (`spec` `None`: the backend's
/// rules are unknown, so its support and default port are not checked).
fn network_endpoint(
    spec: Option<&BackendSpec>,
    protocol: Protocol,
    host: Option<String>,
    port: Option<u16>,
    report: &mut Report<'_>,
) -> Endpoint {
    let support = match (spec, protocol) {
        (_, Protocol::Tcp) | (None, _) => Support::Yes,
        (Some(s), Protocol::Udp) => s.udp,
        (Some(s), Protocol::Unix) => s.unix,
    };
    if let Support::No(why) = support {
        report.push("protocol", format!("`{protocol}` is not supported: {why}"));
    }
    match (protocol, host) {
        (Protocol::Unix, Some(path)) => Endpoint::Unix { path },
        (Protocol::Unix, None) => {
            report.push("host", "protocol is unix: give the socket path as host");
            Endpoint::Unix {
                path: String::new(),
            }
        }
        (_, None) => {
            report.push("host", "must not be empty");
            Endpoint::Tcp {
                host: String::new(),
                port: 0,
            }
        }
        (protocol, Some(host)) => {
            let port = port
                .or(spec.and_then(|s| s.default_port))
                .unwrap_or_else(|| {
                    if spec.is_some() {
                        report.push("port", "must be given (this type has no default port)");
                    }
                    0
                });
            if protocol == Protocol::Udp {
                Endpoint::Udp { host, port }
            } else {
                Endpoint::Tcp { host, port }
            }
        }
    }
}

fn validate_database(
    config: &ConnectorConfig,
    spec: Option<&BackendSpec>,
    report: &mut Report<'_>,
) -> Option<String> {
    let database = config
        .database
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    if database.is_none() && spec.is_some_and(|s| s.needs_database) {
        report.push("database", "must not be empty");
    }
    database
}

/// A timeout: `default` when not given, greater than zero when given.
fn validate_timeout(
    report: &mut Report<'_>,
    field: &str,
    value: &Option<String>,
    default: Duration,
) -> Duration {
    let Some(text) = value else {
        return default;
    };
    match parse_duration(text) {
        Ok(d) if d.is_zero() => {
            report.push(field, "must be greater than zero");
            default
        }
        Ok(d) => d,
        Err(e) => {
            report.push(field, e);
            default
        }
    }
}

/// A pool lifetime: `default` when not given, `None` (never) for `"0s"`.
fn validate_lifetime(
    report: &mut Report<'_>,
    field: &str,
    value: &Option<String>,
    default: Duration,
) -> Option<Duration> {
    match value.as_deref().map(parse_duration) {
        Some(Ok(d)) if d.is_zero() => None,
        _ => Some(validate_timeout(report, field, value, default)),
    }
}

/// The backend's own checks (problems) and warnings on the validated config.
fn apply_backend_rules(spec: &BackendSpec, valid: &mut ValidConfig, report: &mut Report<'_>) {
    let mut found = Vec::new();
    if let Some(check) = spec.check {
        check(valid, &mut found);
    }
    for (field, message) in found {
        report.push(&field, message);
    }
    let mut warnings = Vec::new();
    if let Some(warn) = spec.warn {
        warn(valid, &mut warnings);
    }
    valid.warnings = warnings
        .into_iter()
        .map(|(field, message)| Problem {
            connector: report.connector.to_owned(),
            field,
            message,
        })
        .collect();
}

fn validate_options(
    config: &ConnectorConfig,
    spec: Option<&BackendSpec>,
    report: &mut Report<'_>,
) -> Options {
    let pairs = match config.options.pairs() {
        Ok(pairs) => pairs,
        Err(why) => {
            report.push("options", why);
            return Options::default();
        }
    };
    let Some(spec) = spec else {
        return Options::new(pairs);
    };
    for (key, value) in &pairs {
        if key.is_empty() {
            report.push("options", "an option has an empty key");
            continue;
        }
        if let Some(known) = spec
            .options
            .iter()
            .find(|o| o.key.eq_ignore_ascii_case(key))
        {
            if let Err(why) = known.check.check(value) {
                report.push(&format!("options.{key}"), why);
            }
        } else if !spec.option_prefixes.iter().any(|p| key.starts_with(p)) {
            let mut known: Vec<&str> = spec.options.iter().map(|o| o.key).collect();
            known.extend(spec.option_prefixes.iter().copied());
            let list = if known.is_empty() {
                "this type takes no options".to_owned()
            } else {
                format!("known options: {}", known.join(", "))
            };
            report.push(
                "options",
                format!("unknown option `{key}` for {}; {list}", spec.kind),
            );
        }
    }
    Options::new(pairs)
}

fn read_pem(
    report: &mut Report<'_>,
    policy: &SecretPolicy,
    text: &Option<String>,
    file: &Option<String>,
    field: &str,
) -> Option<String> {
    match (text, file) {
        (Some(_), Some(_)) => {
            report.push(
                field,
                format!("give either `{field}` or `{field}_file`, not both"),
            );
            None
        }
        (Some(text), None) => Some(text.clone()),
        (None, Some(path)) => match policy.read_file(path) {
            Ok(text) => Some(text),
            Err(why) => {
                report.push(&format!("{field}_file"), why);
                None
            }
        },
        (None, None) => None,
    }
}

fn validate_ssl(
    config: &ConnectorConfig,
    spec: Option<&BackendSpec>,
    policy: &SecretPolicy,
    report: &mut Report<'_>,
) -> Option<TlsSettings> {
    let ssl = config.ssl.as_ref().filter(|s| s.enabled)?;
    if let Some(BackendSpec {
        tls: Support::No(why),
        kind,
        ..
    }) = spec
    {
        report.push(
            "ssl",
            format!("{kind} connectors do not support SSL: {why}"),
        );
        return None;
    }
    let verify = match ssl.verify.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
        None => TlsVerify::Full,
        Some(v) if v == "full" || v == "verify-full" || v == "verify_full" => TlsVerify::Full,
        Some(v) if v == "ca" || v == "verify-ca" || v == "verify_ca" => TlsVerify::Ca,
        Some(v) if v == "none" => TlsVerify::None,
        Some(v) => {
            report.push("ssl.verify", format!("`{v}` is not one of: full, ca, none"));
            TlsVerify::Full
        }
    };
    let ca_pem = read_pem(report, policy, &ssl.ca, &ssl.ca_file, "ssl.ca");
    let cert_pem = read_pem(report, policy, &ssl.cert, &ssl.cert_file, "ssl.cert");
    let key_pem = match (&ssl.key, &ssl.key_file) {
        (Some(_), Some(_)) => {
            report.push(
                "ssl.key",
                "give either `ssl.key` or `ssl.key_file`, not both",
            );
            None
        }
        (Some(source), None) => match source.resolve(policy) {
            Ok(secret) => Some(secret),
            Err(why) => {
                report.push("ssl.key", why);
                None
            }
        },
        (None, Some(path)) => match policy.read_file(path) {
            Ok(secret) => Some(SecretString::from(secret)),
            Err(why) => {
                report.push("ssl.key_file", why);
                None
            }
        },
        (None, None) => None,
    };
    if let Some(ca) = &ca_pem {
        check_certificates(report, "ssl.ca", ca);
    }
    if let Some(cert) = &cert_pem {
        check_certificates(report, "ssl.cert", cert);
    }
    if let Some(key) = &key_pem
        && PrivateKeyDer::from_pem_slice(key.expose_secret().as_bytes()).is_err()
    {
        // The parser's error is not shown: it could quote part of the key.
        report.push(
            "ssl.key",
            "is not a PEM private key (PKCS#8, PKCS#1 or SEC1)",
        );
    }
    match (cert_pem.is_some(), key_pem.is_some()) {
        (true, false) if ssl.key.is_none() && ssl.key_file.is_none() => {
            report.push("ssl.key", "a client certificate needs its private key")
        }
        (false, true) if ssl.cert.is_none() && ssl.cert_file.is_none() => {
            report.push("ssl.cert", "a client key needs its certificate")
        }
        _ => {}
    }
    Some(TlsSettings {
        verify,
        ca_pem,
        cert_pem,
        key_pem,
    })
}

fn check_certificates(report: &mut Report<'_>, field: &str, pem: &str) {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        match cert {
            Ok(_) => count += 1,
            Err(e) => {
                report.push(field, format!("is not valid PEM: {e}"));
                return;
            }
        }
    }
    if count == 0 {
        report.push(
            field,
            "contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
        );
    }
}

fn validate_pool(
    config: &ConnectorConfig,
    connect_timeout: Duration,
    report: &mut Report<'_>,
) -> PoolSettings {
    let pool = &config.pool;
    let mut count = |field: &str, value: &Option<Scalar>, default: u32, min: u32| -> u32 {
        match value {
            None => default,
            Some(scalar) => {
                let parsed = match scalar {
                    Scalar::Int(v) => u32::try_from(*v).ok(),
                    Scalar::Text(t) => t.trim().parse().ok(),
                    _ => None,
                };
                match parsed {
                    Some(v) if v >= min && v <= 10_000 => v,
                    _ => {
                        report.push(
                            field,
                            format!("`{scalar}` is not a whole number from {min} to 10000"),
                        );
                        default
                    }
                }
            }
        }
    };
    let max_size = count("pool.max_size", &pool.max_size, 10, 1);
    let min_idle = count("pool.min_idle", &pool.min_idle, 0, 0);
    if min_idle > max_size {
        report.push(
            "pool.min_idle",
            format!("{min_idle} is more than pool.max_size ({max_size})"),
        );
    }
    let acquire_timeout = validate_timeout(
        report,
        "pool.acquire_timeout",
        &pool.acquire_timeout,
        connect_timeout,
    );
    let idle_timeout = validate_lifetime(
        report,
        "pool.idle_timeout",
        &pool.idle_timeout,
        Duration::from_secs(600),
    );
    let max_lifetime = validate_lifetime(
        report,
        "pool.max_lifetime",
        &pool.max_lifetime,
        Duration::from_secs(1800),
    );
    PoolSettings {
        max_size,
        min_idle,
        acquire_timeout,
        idle_timeout,
        max_lifetime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DsnOptions, SecretSource, SslConfig};

    const TEST_OPTIONS: &[OptionSpec] = &[
        OptionSpec::new(
            "application_name",
            OptionCheck::Any,
            "name shown by the server",
        ),
        OptionSpec::new(
            "statement_cache_capacity",
            OptionCheck::UInt,
            "prepared statements kept",
        ),
    ];

    const NET: BackendSpec = BackendSpec {
        udp: Support::No("PostgreSQL speaks TCP or unix sockets"),
        options: TEST_OPTIONS,
        ..BackendSpec::server(DbKind::Postgres, 5432)
    };

    const EMBEDDED: BackendSpec =
        BackendSpec::embedded(DbKind::Sqlite, "SQLite is an embedded database");

    fn fields(problems: &Problems) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn range_checks_whole_numbers_between_its_bounds() {
        let check = OptionCheck::Range(512, 32767);
        assert!(check.check("4096").is_ok());
        assert!(check.check(" 512 ").is_ok());
        assert!(check.check("32767").is_ok());
        for bad in ["511", "32768", "-1", "4k", ""] {
            let why = check.check(bad).unwrap_err();
            assert!(why.contains("from 512 to 32767"), "{bad}: {why}");
        }
    }

    #[test]
    fn defaults_are_applied() {
        let valid = ConnectorConfig::new("crm", DbKind::Postgres)
            .with_host("db.example")
            .validate_with(Some(&NET))
            .unwrap();
        assert_eq!(
            valid.endpoint,
            Endpoint::Tcp {
                host: "db.example".into(),
                port: 5432
            }
        );
        assert_eq!(valid.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(valid.pool.max_size, 10);
        assert_eq!(valid.pool.acquire_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert!(valid.tls.is_none());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut config = ConnectorConfig::new("", DbKind::Postgres)
            .with_host("db")
            .with_options("application_name=x&bogus=1&statement_cache_capacity=-3")
            .with_password(SecretSource::Env {
                env: "EXTDATA_TEST_SURELY_UNSET_VAR".into(),
            });
        config.port = Some(Scalar::Int(70000));
        config.protocol = Some("udp".into());
        config.query_timeout = Some("soon".into());
        config.pool.max_size = Some(Scalar::Int(0));
        let problems = config.validate_with(Some(&NET)).unwrap_err();
        let f = fields(&problems);
        for expected in [
            "name",
            "protocol",
            "port",
            "password",
            "query_timeout",
            "options",
            "options.statement_cache_capacity",
            "pool.max_size",
        ] {
            assert!(f.contains(&expected), "missing {expected} in {problems}");
        }
        let text = problems.to_string();
        assert!(text.contains("unknown option `bogus`"), "{text}");
        assert!(
            text.contains("known options: application_name, statement_cache_capacity"),
            "{text}"
        );
        assert!(text.contains("EXTDATA_TEST_SURELY_UNSET_VAR"), "{text}");
    }

    #[test]
    fn ssl_on_a_type_without_tls_is_refused() {
        let config = ConnectorConfig::new("local", DbKind::Sqlite)
            .with_database(":memory:")
            .with_ssl(SslConfig {
                enabled: true,
                ..Default::default()
            });
        let problems = config.validate_with(Some(&EMBEDDED)).unwrap_err();
        assert_eq!(fields(&problems), ["ssl"]);
    }

    #[test]
    fn pem_is_parsed_at_validation() {
        let config = ConnectorConfig::new("crm", DbKind::Postgres)
            .with_host("db")
            .with_ssl(SslConfig {
                ca: Some("not a certificate".into()),
                key: Some(SecretSource::literal(
                    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                )),
                ..Default::default()
            });
        let problems = config.validate_with(Some(&NET)).unwrap_err();
        let f = fields(&problems);
        assert!(f.contains(&"ssl.ca"), "{problems}");
        assert!(f.contains(&"ssl.cert"), "{problems}");
        assert!(
            !problems.to_string().contains("AAAA"),
            "key material leaked: {problems}"
        );
    }

    #[test]
    fn unknown_type_and_missing_backend_name_the_type_field() {
        let mut config = ConnectorConfig::new("x", DbKind::Postgres).with_host("h");
        config.kind = "db2".into();
        let problems = config.validate_with(None).unwrap_err();
        assert_eq!(fields(&problems), ["type"]);
        assert!(problems.to_string().contains("unknown type `db2`"));
        let config = ConnectorConfig::new("x", DbKind::Oracle).with_host("h");
        let problems = config.validate_with(None).unwrap_err();
        assert!(
            problems.to_string().contains("feature `oracle`"),
            "{problems}"
        );
    }

    #[test]
    fn unix_socket_takes_the_path_from_host() {
        let valid = ConnectorConfig::new("crm", DbKind::Postgres)
            .with_protocol(Protocol::Unix)
            .with_host("/var/run/postgresql")
            .validate_with(Some(&NET))
            .unwrap();
        assert_eq!(
            valid.endpoint,
            Endpoint::Unix {
                path: "/var/run/postgresql".into()
            }
        );
    }

    #[test]
    fn options_from_string_and_table_agree() {
        let a = DsnOptions::from("a=1&b=x%20y").pairs().unwrap();
        let table: DsnOptions = toml::from_str::<toml::Table>("a = 1\nb = \"x y\"")
            .map(|t| {
                DsnOptions::Table(
                    t.into_iter()
                        .map(|(k, v)| {
                            (
                                k,
                                match v {
                                    toml::Value::Integer(i) => Scalar::Int(i),
                                    toml::Value::String(s) => Scalar::Text(s),
                                    other => Scalar::Text(other.to_string()),
                                },
                            )
                        })
                        .collect(),
                )
            })
            .unwrap();
        assert_eq!(a, table.pairs().unwrap());
        assert!(DsnOptions::from("novalue").pairs().is_err());
    }

    #[test]
    fn an_unknown_field_names_what_was_probably_meant() {
        let mut problems = Problems::default();
        problems.push_unknown_field("crm", "hots", &["name", "host", "port"]);
        problems.push_unknown_field("job", "retry.backof", &["attempts", "backoff"]);
        problems.push_unknown_field("crm", "colour", &["name", "host"]);
        assert_eq!(
            problems.to_string(),
            "crm: hots: unknown field; did you mean `host`? known fields: name, host, port\n\
             job: retry.backof: unknown field; did you mean `backoff`? known fields: attempts, backoff\n\
             crm: colour: unknown field; known fields: name, host"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest_match("prot", ["port", "host"]), Some("port"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = ConnectorConfig::new("crm", DbKind::Postgres)
            .with_host("db")
            .with_password("hunter2-sentinel");
        assert!(!format!("{config:?}").contains("hunter2-sentinel"));
        let valid = config.validate_with(Some(&NET)).unwrap();
        assert!(!format!("{valid:?}").contains("hunter2-sentinel"));
        assert_eq!(valid.password_text(), Some("hunter2-sentinel"));
    }
}
