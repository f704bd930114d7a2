//! Helpers shared by the cases and by backends' own tests: environment settings, the
//! require-or-skip rule, unique names, secret and timing assertions.

use std::collections::hash_map::RandomState;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use extdata_core::{
    BackendSpec, ConnectorConfig, DbKind, Error, ErrorKind, ExternalSource, Protocol, QueryOptions,
    Result, SecretPolicy, SecretSource, SslConfig, Statement, ValidConfig, Value,
};

/// The environment variable listing the backends whose servers must be reachable
/// (comma-separated kinds, e.g. `sqlite,postgres,mysql`).
pub const REQUIRE_VAR: &str = "EXTDATA_TEST_REQUIRE";

/// A password no real server accepts, easy to search for in error texts.
pub const SENTINEL_PASSWORD: &str = "extdata-sentinel-Pw-7f3a9c0e";

/// Reads an `EXTDATA_TEST_*` setting; unset or empty is `None`.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Whether the comma-separated `list` names `kind` (`postgres` matches `postgresql`
/// and `pg`, `mysql` matches `mariadb`; `all` matches everything).
pub fn list_requires(list: &str, kind: &str) -> bool {
    let wanted = DbKind::from_str(kind).ok();
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            entry.eq_ignore_ascii_case("all")
                || entry.eq_ignore_ascii_case(kind)
                || (wanted.is_some() && DbKind::from_str(entry).ok() == wanted)
        })
}

/// Whether [`REQUIRE_VAR`] names `kind`.
pub fn is_required(kind: &str) -> bool {
    env(REQUIRE_VAR).is_some_and(|list| list_requires(&list, kind))
}

/// The rule for a backend whose server is not configured here: panics when
/// [`REQUIRE_VAR`] names `kind` (a required backend must not pass by skipping),
/// otherwise prints why the test did not run and returns `None`.
///
/// ```no_run
/// use extdata_conformance::{Harness, require_or_skip, support};
/// async fn setup() -> Option<Harness> {
///     let Some(url) = support::env("EXTDATA_TEST_POSTGRES_HOST") else {
///         return require_or_skip("postgres", "EXTDATA_TEST_POSTGRES_HOST is not set");
///     };
///     # let _ = url;
///     # None
/// }
/// ```
pub fn require_or_skip<T>(kind: &str, reason: impl fmt::Display) -> Option<T> {
    if is_required(kind) {
        panic!("{REQUIRE_VAR} requires `{kind}`, but it cannot be tested: {reason}");
    }
    eprintln!(
        "skipped: `{kind}` is not configured here ({reason}); set {REQUIRE_VAR}={kind} to make this a failure"
    );
    None
}

/// The `[[connectors]]` lines `type`, `host`, `port`, `database` and `username` of the
/// test server whose settings are `EXTDATA_TEST_<prefix>_*`, for a config file (its
/// password stays in `EXTDATA_TEST_<prefix>_PASSWORD`); `None` (by the
/// [`require_or_skip`] rule for `kind`) when one of them is not set.
pub fn server_toml(prefix: &str, kind: &str, db_type: &str) -> Option<String> {
    let setting = |name: &str| env(&format!("EXTDATA_TEST_{prefix}_{name}"));
    let (Some(host), Some(port), Some(database), Some(user)) = (
        setting("HOST"),
        setting("PORT"),
        setting("DATABASE"),
        setting("USER"),
    ) else {
        return require_or_skip(
            kind,
            format!("EXTDATA_TEST_{prefix}_HOST/PORT/DATABASE/USER are not set"),
        );
    };
    Some(format!(
        "type = \"{db_type}\"\nhost = \"{host}\"\nport = {port}\ndatabase = \"{database}\"\nusername = \"{user}\"\n"
    ))
}

/// A config file's SQLite connector `crm` (the file `crm.db` beside it) and account 42,
/// which owns it (what the command-line, jobs and isolation tests start from).
pub const CRM_ACCOUNT: &str = r#"
[[connectors]]
name = "crm"
type = "sqlite"
database = "crm.db"

[[accounts]]
id = "42"
connectors = ["crm"]
"#;

/// A config file's SQLite connectors `crm` (`crm.db`) of account 42 and `other`
/// (`other.db`) of account 7, with the `EXTDATA_TEST_*` variables granted as secrets.
pub const SQLITE_ACCOUNTS: &str = r#"
# The servers' passwords and URLs are read from the test environment.
[secrets]
env_prefixes = ["EXTDATA_TEST_"]

[[connectors]]
name = "crm"
type = "sqlite"
database = "crm.db"

[[connectors]]
name = "other"
type = "sqlite"
database = "other.db"

[[accounts]]
id = "42"
connectors = ["crm"]

[[accounts]]
id = "7"
connectors = ["other"]
"#;

/// One `[[<section>]]` entry of a config file (`imports`, `segments`, `lookups`) of
/// `account` over `connector`; `fields` are its other `key = value` lines.
pub fn config_entry(
    section: &str,
    name: &str,
    (account, connector): (&str, &str),
    query: &str,
    fields: &str,
) -> String {
    format!(
        "\n[[{section}]]\nname = \"{name}\"\naccount = \"{account}\"\nconnector = \"{connector}\"\nquery = \"{query}\"\n{fields}\n"
    )
}

/// Connectors of a config file with a mistake each, for the tests that every problem of
/// a file is reported (and that none shows a secret): `crm` (PostgreSQL) with the port
/// 70000 and the lines `crm` (its other fields), `local` (SQLite) asking for SSL, and
/// one without a name.
pub fn mistaken_connectors(crm: &str) -> String {
    format!(
        r#"
[[connectors]]
name = "crm"
type = "postgresql"
host = "127.0.0.1"
port = 70000
{crm}

[[connectors]]
name = "local"
type = "sqlite"
database = ":memory:"
ssl = {{ enabled = true }}

[[connectors]]
name = ""
type = "sqlite"
database = ":memory:"
"#
    )
}

/// Asserts that `text` holds every one of `expected`.
pub fn assert_contains_all(text: &str, expected: &[&str]) {
    for expected in expected {
        assert!(
            text.contains(expected),
            "`{expected}` missing from:\n{text}"
        );
    }
}

/// The PostgreSQL test server (`EXTDATA_TEST_POSTGRES_*`) as connector `name`, its
/// password read from the environment, and the policy that allows that read.
pub fn postgres_from_env(name: &str) -> (ConnectorConfig, SecretPolicy) {
    let setting = |key: &str| {
        env(&format!("EXTDATA_TEST_POSTGRES_{key}"))
            .unwrap_or_else(|| panic!("EXTDATA_TEST_POSTGRES_{key} is not set"))
    };
    let config = ConnectorConfig::new(name, DbKind::Postgres)
        .with_host(setting("HOST"))
        .with_port(setting("PORT").parse().expect("EXTDATA_TEST_POSTGRES_PORT"))
        .with_database(setting("DATABASE"))
        .with_username(setting("USER"))
        .with_password(SecretSource::Env {
            env: "EXTDATA_TEST_POSTGRES_PASSWORD".into(),
        });
    (
        config,
        SecretPolicy::deny_all().with_env_prefix("EXTDATA_TEST_"),
    )
}

/// Reads the file an `EXTDATA_TEST_*` setting names (e.g. a PEM file); `None` when
/// the setting is unset or the file cannot be read.
pub fn env_file(name: &str) -> Option<String> {
    env(name).and_then(|path| std::fs::read_to_string(path).ok())
}

/// The name of the running test (libtest names each test's thread after it).
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned()
}

/// `Some(())` when a TCP connection to `host:port` opens within `within`; otherwise
/// the [`require_or_skip`] rule for `kind`, with the test's name and what went wrong.
pub async fn require_reachable(kind: &str, host: &str, port: u16, within: Duration) -> Option<()> {
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(within, connect).await {
        Ok(Ok(_)) => Some(()),
        Ok(Err(e)) => require_or_skip(
            kind,
            format!("{}: {host}:{port} is unreachable: {e}", test_name()),
        ),
        Err(_) => require_or_skip(
            kind,
            format!("{}: {host}:{port} did not answer", test_name()),
        ),
    }
}

/// A connector of `kind` that logs in to `host:port` with a user and password, with a
/// connect timeout of `connect_timeout` (what most backends' tests start from).
pub fn password_connector(
    name: &str,
    kind: DbKind,
    (host, port): (&str, u16),
    (user, password): (&str, &str),
    connect_timeout: Duration,
) -> ConnectorConfig {
    ConnectorConfig::new(name, kind)
        .with_host(host)
        .with_port(port)
        .with_username(user)
        .with_password(password)
        .with_connect_timeout(connect_timeout)
}

/// A test server of `scripts/services.sh` that takes a password user over TCP, a unix
/// socket and verified TLS, and a certificate-only user (the PostgreSQL and MariaDB
/// servers). Read by [`TestServer::from_env`].
#[derive(Clone)]
pub struct TestServer {
    /// The name of the connectors built from it.
    pub connector: String,
    /// The backend.
    pub kind: DbKind,
    /// Host name or address (TCP).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Unix socket (file or directory, as the backend takes it).
    pub socket: String,
    /// Database.
    pub database: String,
    /// The password user.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The user that logs in with a client certificate only.
    pub cert_user: String,
    /// The test CA (PEM text; empty when not configured).
    pub ca_pem: String,
    /// A CA that did not sign the server's certificate (PEM text).
    pub wrong_ca_pem: String,
    /// The client certificate of `cert_user` (PEM text).
    pub client_cert_pem: String,
    /// Its private key (PEM text).
    pub client_key_pem: String,
}

impl TestServer {
    /// Reads `EXTDATA_TEST_<prefix>_{HOST,PORT,SOCKET,DATABASE,USER,PASSWORD,CERT_USER}`
    /// and the PEM files named by `EXTDATA_TEST_{CA,WRONG_CA,CLIENT_CERT,CLIENT_KEY}`;
    /// `None` (by the [`require_or_skip`] rule) when the host is not set or its port does
    /// not answer within 3 s.
    pub async fn from_env(
        connector: &str,
        kind: DbKind,
        prefix: &str,
        (default_port, default_socket): (u16, &str),
    ) -> Option<Self> {
        let var = |name: &str| env(&format!("EXTDATA_TEST_{prefix}_{name}"));
        let Some(host) = var("HOST") else {
            return require_or_skip(
                kind.as_str(),
                format!(
                    "EXTDATA_TEST_{prefix}_HOST is not set (run scripts/services.sh and source .services/env)"
                ),
            );
        };
        let pem = |name: &str| env_file(&format!("EXTDATA_TEST_{name}")).unwrap_or_default();
        let server = TestServer {
            connector: connector.to_owned(),
            kind,
            port: var("PORT")
                .and_then(|p| p.parse().ok())
                .unwrap_or(default_port),
            socket: var("SOCKET").unwrap_or_else(|| default_socket.to_owned()),
            database: var("DATABASE").unwrap_or_else(|| "extdata_test".into()),
            user: var("USER").unwrap_or_else(|| "extdata_pw".into()),
            password: var("PASSWORD").unwrap_or_default(),
            cert_user: var("CERT_USER").unwrap_or_else(|| "extdata_cert".into()),
            ca_pem: pem("CA"),
            wrong_ca_pem: pem("WRONG_CA"),
            client_cert_pem: pem("CLIENT_CERT"),
            client_key_pem: pem("CLIENT_KEY"),
            host,
        };
        require_reachable(
            kind.as_str(),
            &server.host,
            server.port,
            Duration::from_secs(3),
        )
        .await?;
        Some(server)
    }

    /// Password user over TCP without TLS (connect timeout 5 s, query timeout 20 s).
    pub fn tcp(&self) -> ConnectorConfig {
        password_connector(
            &self.connector,
            self.kind,
            (&self.host, self.port),
            (&self.user, &self.password),
            Duration::from_secs(5),
        )
        .with_database(self.database.clone())
        .with_query_timeout(Duration::from_secs(20))
    }

    /// Password user over the unix socket.
    pub fn unix(&self) -> ConnectorConfig {
        self.tcp()
            .with_protocol(Protocol::Unix)
            .with_host(self.socket.clone())
    }

    /// Password user over TLS verified fully (chain and host name) against the test CA,
    /// given as PEM text.
    pub fn tls(&self) -> ConnectorConfig {
        self.tcp().with_host("localhost").with_ssl(SslConfig {
            ca: Some(self.ca_pem.clone()),
            verify: Some("full".into()),
            ..Default::default()
        })
    }

    /// The certificate-only user, certificate and key as PEM text.
    pub fn cert_user(&self) -> ConnectorConfig {
        let mut config = self.tls().with_username(self.cert_user.clone());
        config.password = None;
        config.ssl = Some(SslConfig {
            ca: Some(self.ca_pem.clone()),
            cert: Some(self.client_cert_pem.clone()),
            key: Some(SecretSource::literal(self.client_key_pem.clone())),
            verify: Some("full".into()),
            ..Default::default()
        });
        config
    }
}

// The password, the key and the PEM texts are left out.
extdata_core::debug_fields!(TestServer |server| {
    connector, kind, host, port, socket, database, user, cert_user, ..
});

/// `config` validated with a backend's rules; panics (with every problem) on a mistake,
/// since tests build valid configs.
pub fn validated(config: ConnectorConfig, spec: &BackendSpec) -> ValidConfig {
    config
        .validate_with(Some(spec))
        .unwrap_or_else(|problems| panic!("invalid test config: {problems}"))
}

/// The first value of the first row of `statement`; panics (naming the SQL) when the
/// query fails or returns no row.
pub async fn first_value<S: ExternalSource + ?Sized>(
    source: &S,
    statement: impl Into<Statement>,
) -> Value {
    let statement = statement.into();
    let result = source
        .query(&statement, &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", statement.sql()));
    let Some(row) = result.rows.first() else {
        panic!("{}: no row", statement.sql());
    };
    row.values().first().cloned().unwrap_or(Value::Null)
}

/// The call of [`ExternalSource`] that [`call_error`] and [`timed_out`] make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// [`ExternalSource::query`].
    Query,
    /// [`ExternalSource::execute`].
    Execute,
}

/// `statement` run by `call` with the default options, which must fail with `kind`:
/// the error. A panic names the SQL.
pub async fn call_error<S: ExternalSource + ?Sized>(
    source: &S,
    call: Call,
    statement: impl Into<Statement>,
    kind: ErrorKind,
) -> Error {
    let statement = statement.into();
    let outcome = run_call(source, call, &statement, &QueryOptions::default()).await;
    expect_kind(outcome, kind, statement.sql())
}

/// `sql` run by `call` with `timeout`, which must fail with [`ErrorKind::Timeout`]:
/// the error. A panic names the SQL.
pub async fn timed_out<S: ExternalSource + ?Sized>(
    source: &S,
    call: Call,
    sql: &str,
    timeout: Duration,
) -> Error {
    let options = QueryOptions::default().with_timeout(timeout);
    let outcome = run_call(source, call, &Statement::new(sql), &options).await;
    expect_kind(outcome, ErrorKind::Timeout, sql)
}

/// What `call` of `statement` returned: the rows read or affected, or the error.
async fn run_call<S: ExternalSource + ?Sized>(
    source: &S,
    call: Call,
    statement: &Statement,
    options: &QueryOptions,
) -> Result<usize> {
    match call {
        Call::Query => (source.query(statement, options).await).map(|result| result.rows.len()),
        Call::Execute => (source.execute(statement, options).await).map(|rows| rows as usize),
    }
}

/// How long until `count` (a query whose first value counts something, e.g. the
/// server's sessions running a marked query) returns 0, polled every 20 ms; `None`
/// when it is still not 0 after `limit`.
pub async fn time_until_none<S: ExternalSource + ?Sized>(
    observer: &S,
    count: &Statement,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if first_value(observer, count.clone()).await.as_i64() == Some(0) {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints that a case did not run for this backend and why (a capability says so).
pub fn skip_case(case: &str, reason: impl fmt::Display) {
    eprintln!("case `{case}` skipped for this backend: {reason}");
}

/// A name no other test (in this or a parallel process) uses: lower-case ASCII
/// letters, digits and `_`, at most 30 characters, starting with `ect_`.
pub fn unique_name(hint: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    let hint: String = hint
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    format!("ect_{hint}_{}", base36(hasher.finish()))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(13);
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Every text a user could see of an error: its `Display`, its `Debug`, and the
/// `Display` and `Debug` of each error in its source chain.
pub fn error_texts(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut texts = vec![error.to_string(), format!("{error:?}")];
    let mut source = error.source();
    while let Some(inner) = source {
        texts.push(inner.to_string());
        texts.push(format!("{inner:?}"));
        source = inner.source();
    }
    texts
}

/// Panics when `haystack` contains `secret` (as written or percent-encoded). `what`
/// names the text in the failure message; the secret itself is never printed.
pub fn assert_no_secret(haystack: &str, secret: &str, what: &str) {
    assert!(
        !secret.is_empty(),
        "assert_no_secret needs a non-empty secret"
    );
    let encoded: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    assert!(
        !haystack.contains(secret) && !haystack.contains(&encoded),
        "{what} contains the password ({} characters of text checked)",
        haystack.len()
    );
}

/// Panics when any text of `error` (see [`error_texts`]) contains `secret`.
pub fn assert_error_has_no_secret(error: &Error, secret: &str, what: &str) {
    for (i, text) in error_texts(error).iter().enumerate() {
        assert_no_secret(text, secret, &format!("{what} (error text #{i})"));
    }
}

/// Panics when more than `bound` passed since `start`.
pub fn assert_elapsed_below(start: Instant, bound: Duration, what: &str) -> Duration {
    let elapsed = start.elapsed();
    assert!(
        elapsed < bound,
        "{what} took {elapsed:?}, expected less than {bound:?}"
    );
    elapsed
}

/// The value of `result`, or a panic that shows the error's kind and message.
#[track_caller]
pub fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what} failed: [{}] {error} ({error:?})", error.kind()),
    }
}

/// The error of `result`, checked to be of `kind`.
#[track_caller]
pub fn expect_kind<T: fmt::Debug>(result: Result<T>, kind: ErrorKind, what: &str) -> Error {
    match result {
        Ok(value) => panic!("{what}: expected a `{kind}` error, got Ok({value:?})"),
        Err(error) => {
            assert_eq!(
                error.kind(),
                kind,
                "{what}: expected a `{kind}` error, got `{}`: {error}",
                error.kind()
            );
            error
        }
    }
}

/// An integer value of any width (and an integral decimal, for servers whose
/// `COUNT(*)` is a `NUMBER`), or `None`.
pub fn int_of(value: &Value) -> Option<i128> {
    match value {
        Value::I8(v) => Some((*v).into()),
        Value::I16(v) => Some((*v).into()),
        Value::I32(v) => Some((*v).into()),
        Value::I64(v) => Some((*v).into()),
        Value::I128(v) => Some(*v),
        Value::U8(v) => Some((*v).into()),
        Value::U16(v) => Some((*v).into()),
        Value::U32(v) => Some((*v).into()),
        Value::U64(v) => Some((*v).into()),
        Value::U128(v) => i128::try_from(*v).ok(),
        Value::Decimal(d) => {
            let text = d.as_str();
            let whole = match text.split_once('.') {
                Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole,
                Some(_) => return None,
                None => text,
            };
            whole.parse().ok()
        }
        _ => None,
    }
}

/// `==` on values, except that NaN equals NaN (a round trip keeps NaN).
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) if x.is_nan() && y.is_nan() => true,
        (Value::F64(x), Value::F64(y)) if x.is_nan() && y.is_nan() => true,
        _ => a == b,
    }
}

/// The cases that assert wall-clock bounds or keep the CPU busy (endless queries,
/// long streams). Run concurrently on a small machine they would stretch each other's
/// timings, so [`exclusive`] runs them one at a time.
pub const TIMING_CASES: &[&str] = &[
    "timeout_returns_promptly_and_cancels_on_server",
    "repeated_timeouts_do_not_leak_connections",
    "connector_query_timeout_applies",
    "stream_delivers_every_row_in_order",
    "stream_starts_before_result_is_complete",
    "dropped_stream_leaves_source_usable",
    "timed_out_batch_is_cancelled_on_server_and_leaves_no_row",
    "dropped_batch_call_is_cancelled_not_pooled_inside_its_transaction",
];

/// For a case of [`TIMING_CASES`]: waits until no other such case runs in this
/// process and returns the guard that keeps the others waiting; `None` for other cases.
pub fn exclusive(case: &str) -> Option<MutexGuard<'static, ()>> {
    static TIMING: Mutex<()> = Mutex::new(());
    TIMING_CASES.contains(&case).then(|| {
        TIMING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    })
}

/// Runs a future on a fresh multi-threaded runtime (the conformance tests need no
/// `tokio` dependency in the backend crate).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
        .block_on(future)
}

/// Polls `check` every 50 ms until it returns `true` or `within` passes; returns
/// whether it became true.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every log line this test process wrote so far, at every level (the drivers' too),
/// as text: the first call installs a process-wide `tracing` subscriber (tasks run on a
/// runtime's worker threads, which a thread-local one would miss) that keeps them all.
/// For tests that assert that no secret or parameter value reaches a log line; a test
/// binary that calls it must install no subscriber of its own.
pub fn captured_logs() -> String {
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("captured_logs: the test binary installed another subscriber");
        captured
    });
    String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_list_matches_kind_and_aliases() {
        assert!(list_requires("sqlite,postgres", "sqlite"));
        assert!(list_requires(" postgres ", "postgresql"));
        assert!(list_requires("pg", "postgres"));
        assert!(list_requires("mariadb", "mysql"));
        assert!(list_requires("all", "clickhouse"));
        assert!(!list_requires("postgres,mysql", "sqlite"));
        assert!(!list_requires("", "sqlite"));
        assert!(!list_requires("sqlite3", "sqlite"));
    }

    #[test]
    fn unique_names_differ_and_are_plain_identifiers() {
        let a = unique_name("Types-Round!trip");
        let b = unique_name("Types-Round!trip");
        assert_ne!(a, b);
        for name in [&a, &b] {
            assert!(name.starts_with("ect_typesrou_"), "{name}");
            assert!(name.len() <= 30, "{name}");
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn assert_no_secret_finds_plain_and_encoded_secret() {
        assert_no_secret("connector `x`: auth failed", "p@ss word", "message");
        let plain = std::panic::catch_unwind(|| assert_no_secret("pw=p@ss word", "p@ss word", "m"));
        assert!(plain.is_err());
        let encoded =
            std::panic::catch_unwind(|| assert_no_secret("url p%40ss%20word", "p@ss word", "m"));
        assert!(encoded.is_err());
    }

    #[test]
    fn error_texts_walk_the_source_chain() {
        let inner = std::io::Error::other("inner detail");
        let error = Error::new(ErrorKind::Connect, "outer").with_source(inner);
        let texts = error_texts(&error);
        assert!(texts.iter().any(|t| t == "outer"));
        assert!(texts.iter().filter(|t| t.contains("inner detail")).count() >= 2);
    }

    #[test]
    fn int_of_reads_every_integer_and_integral_decimals() {
        assert_eq!(int_of(&Value::U64(u64::MAX)), Some(u64::MAX.into()));
        assert_eq!(int_of(&Value::I8(-3)), Some(-3));
        let d: extdata_core::Decimal = "42.000".parse().unwrap();
        assert_eq!(int_of(&Value::Decimal(d)), Some(42));
        let d: extdata_core::Decimal = "42.5".parse().unwrap();
        assert_eq!(int_of(&Value::Decimal(d)), None);
        assert_eq!(int_of(&Value::Text("1".into())), None);
    }

    #[test]
    fn timing_cases_exist_and_exclude_each_other() {
        for case in TIMING_CASES {
            assert!(crate::CASES.contains(case), "{case}");
        }
        assert!(exclusive("ping_returns_server_version").is_none());
        let first = exclusive(TIMING_CASES[0]);
        assert!(first.is_some());
        let (sender, receiver) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _second = exclusive(TIMING_CASES[1]);
            sender.send(()).unwrap();
        });
        assert!(
            receiver
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "a second timing case ran while the first held the lock"
        );
        drop(first);
        receiver
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the second timing case runs once the first is done");
        waiter.join().unwrap();
    }

    #[test]
    fn same_value_treats_nan_as_equal_only_to_nan() {
        assert!(same_value(&Value::F64(f64::NAN), &Value::F64(f64::NAN)));
        assert!(!same_value(&Value::F64(f64::NAN), &Value::F64(1.0)));
        assert!(!same_value(&Value::F64(1.0), &Value::F32(1.0)));
    }
}
