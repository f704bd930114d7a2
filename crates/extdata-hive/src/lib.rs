#![doc = include_str!("../README.md")]

mod connect;
mod error;
#[cfg(any(feature = "gssapi", test))]
mod gssapi;
mod guard;
mod pool;
mod sasl;
mod transport;
mod types;

use std::fmt;
use std::time::Duration;

use extdata_core::{
    BackendSpec, Column, DbKind, Dialect, Error, ErrorKind, ExternalSource, OptionCheck,
    OptionSpec, QueryOptions, Result, Row, RowStream, ServerInfo, Statement, Support, ValidConfig,
    async_trait,
};
use futures::StreamExt;
use hive::service::rpc::thrift::{TGetInfoType, TOperationHandle};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use connect::{Auth, DEFAULT_FETCH_SIZE};
#[doc(hidden)]
pub use types::decode_text_for_bench;
pub use types::{literal, string_literal};

use connect::Settings;
use pool::{Lease, Pool};

/// Option keys (besides the `hive.`/`spark.` session settings) a Hive connector knows.
const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "auth",
        OptionCheck::OneOf(&[
            "NOSASL", "NONE", "PLAIN", "LDAP", "CUSTOM", "GSSAPI", "KERBEROS",
        ]),
        "authentication, matching the server's hive.server2.authentication: NOSASL (raw \
         Thrift), NONE/PLAIN/LDAP/CUSTOM (SASL PLAIN with username and password; the \
         default), GSSAPI/KERBEROS (needs the `gssapi` feature)",
    ),
    OptionSpec::new(
        "allow_server_code",
        OptionCheck::Bool,
        "let statements run code on the server: TRANSFORM/MAP/REDUCE … USING '<command>', \
         reflect/java_method, ADD JAR/FILE, … (default false: refused on every connector; \
         never allowed on a read-only one)",
    ),
    OptionSpec::new(
        "fetch_size",
        OptionCheck::Custom(check_fetch_size),
        "rows per FetchResults call (default 10000, 1 to 1000000)",
    ),
    OptionSpec::new(
        "principal",
        OptionCheck::Custom(check_principal),
        "Kerberos principal of the server, e.g. hive/_HOST@EXAMPLE.COM (_HOST: the host \
         connected to)",
    ),
    OptionSpec::new(
        "kerberos_service_name",
        OptionCheck::Any,
        "Kerberos service name when no principal is given (default hive)",
    ),
];

fn check_fetch_size(value: &str) -> std::result::Result<(), String> {
    match value.trim().parse::<u64>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(()),
        _ => Err(format!(
            "`{value}` is not a number of rows from 1 to 1000000"
        )),
    }
}

fn check_principal(value: &str) -> std::result::Result<(), String> {
    let service = value.split(['/', '@']).next().unwrap_or_default();
    if service.is_empty() || value.contains(char::is_whitespace) {
        Err(format!(
            "`{value}` is not a principal like hive/_HOST@EXAMPLE.COM"
        ))
    } else {
        Ok(())
    }
}

fn check(config: &ValidConfig, problems: &mut Vec<(String, String)>) {
    let auth = config.options.get("auth").and_then(Auth::parse);
    if auth == Some(Auth::Gssapi) && !cfg!(feature = "gssapi") {
        problems.push((
            "options.auth".to_owned(),
            "GSSAPI needs extdata-hive built with its `gssapi` cargo feature".to_owned(),
        ));
    }
    if config
        .options
        .get("spark.sql.parser.escapedStringLiterals")
        .and_then(extdata_core::parse_bool)
        == Some(true)
    {
        // Parameters are rendered as escaped literals; this setting would change
        // their meaning.
        problems.push((
            "options.spark.sql.parser.escapedStringLiterals".to_owned(),
            "must stay false: parameters are sent as escaped string literals".to_owned(),
        ));
    }
}

fn warn(config: &ValidConfig, warnings: &mut Vec<(String, String)>) {
    let auth = config.options.get("auth").and_then(Auth::parse);
    if auth != Some(Auth::NoSasl) && auth != Some(Auth::Gssapi) && config.password.is_some() {
        warnings.push((
            "password".to_owned(),
            "SASL PLAIN sends the password unencrypted (Hive connectors have no TLS yet)"
                .to_owned(),
        ));
    }
}

/// The rules of Hive connectors, for validation.
pub const SPEC: BackendSpec = BackendSpec {
    kind: DbKind::Hive,
    default_port: Some(10000),
    needs_host: true,
    needs_database: false,
    tls: Support::No("TLS to HiveServer2 is not implemented yet"),
    unix: Support::No("HiveServer2 listens on TCP only"),
    udp: Support::No("HiveServer2 listens on TCP only"),
    options: OPTIONS,
    option_prefixes: &["hive.", "spark."],
    check: Some(check),
    warn: Some(warn),
};

/// A Hive (HiveServer2 protocol) source: Apache Hive, Spark's Thrift server, and other
/// servers speaking TCLIService.
pub struct HiveSource {
    pool: Pool,
}

impl fmt::Debug for HiveSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = self.pool.settings();
        f.debug_struct("HiveSource")
            .field("name", &settings.name)
            .field("kind", &DbKind::Hive)
            .field("endpoint", &format!("{}:{}", settings.host, settings.port))
            .field("auth", &settings.auth)
            .field("database", &settings.database)
            .finish_non_exhaustive()
    }
}

/// A started statement whose session is on loan.
struct Running {
    lease: Lease,
    operation: TOperationHandle,
    has_result_set: bool,
    modified_rows: Option<i64>,
}

impl HiveSource {
    /// Builds the source; no I/O (sessions open on first use).
    pub fn build(config: ValidConfig) -> Result<Self> {
        if config.kind != DbKind::Hive {
            return Err(config.error(
                ErrorKind::Config,
                format!("a {} connector cannot be built as Hive", config.kind),
            ));
        }
        let settings = Settings::from_config(&config)?;
        Ok(HiveSource {
            pool: Pool::new(settings, config.pool.clone())?,
        })
    }

    fn settings(&self) -> &Settings {
        self.pool.settings()
    }

    fn render(&self, statement: &Statement) -> Result<String> {
        let sql = statement
            .render_inline(Dialect::Hive, types::literal)
            .map_err(|e| e.with_connector(self.settings().name.clone()))?;
        // A trailing `;` is a client-side separator, not HiveQL.
        Ok(sql.trim_end().trim_end_matches(';').trim_end().to_owned())
    }

    /// The statement check: `read_only`, and code that would run on the server. It
    /// reads the statement with its placeholders, never a value.
    fn refuse(&self, statement: &Statement) -> Result<()> {
        let settings = self.settings();
        match guard::check(statement, settings.read_only, settings.allow_server_code) {
            Ok(()) => Ok(()),
            Err(guard::Refusal::RunsCode(why)) if !settings.read_only => Err(settings.error(
                ErrorKind::Unsupported,
                format!(
                    "the statement is refused: {why}; a connector runs such statements only \
                     with the option allow_server_code=true"
                ),
            )),
            Err(
                guard::Refusal::RunsCode(why)
                | guard::Refusal::Writes(why)
                | guard::Refusal::Uncertain(why),
            ) => Err(settings.error(
                ErrorKind::ReadOnly,
                format!("the connector is read-only and the statement is refused: {why}"),
            )),
        }
    }

    /// Server messages quote the statement (Spark's `== SQL ==` section, the plan) and
    /// the values it failed on: for a statement with parameters only the error class
    /// is kept, so that no subscriber's value reaches an error or a log.
    fn withhold_values(&self, statement: &Statement, error: Error) -> Error {
        withhold_if(!statement.params().is_empty(), &self.settings().name, error)
    }
}

/// [`HiveSource::withhold_values`] for a statement that has parameters (`has_params`).
fn withhold_if(has_params: bool, connector: &str, error: Error) -> Error {
    if !has_params
        || matches!(
            error.kind(),
            ErrorKind::Timeout
                | ErrorKind::Closed
                | ErrorKind::ReadOnly
                | ErrorKind::Parameter
                | ErrorKind::Unsupported
                | ErrorKind::Config
        )
    {
        return error;
    }
    withheld(error, connector)
}

impl HiveSource {
    /// Runs `sql` to completion of its execution (results not fetched yet).
    /// `plain_read`: the statement cannot change the session ([`guard::is_plain_read`]);
    /// when it may, the session is closed after the call instead of serving another
    /// (another account's) call with a changed setting, database or temporary view.
    async fn start(&self, sql: &str, timeout: Duration, plain_read: bool) -> Result<Running> {
        let deadline = Instant::now() + timeout;
        let mut lease = self.pool.acquire(deadline).await?;
        lease.reusable = plain_read;
        let server_timeout = timeout.as_secs_f64().ceil() as i64;
        let operation = lease
            .execute(sql, server_timeout, deadline, timeout)
            .await?;
        match lease.wait(&operation, deadline, timeout).await {
            Ok(Some(status)) => Ok(Running {
                has_result_set: status.has_result_set.unwrap_or(operation.has_result_set),
                modified_rows: status.num_modified_rows,
                lease,
                operation,
            }),
            Ok(None) => {
                let cancelled = Instant::now();
                self.abandon(&mut lease, &operation).await;
                tracing::debug!(
                    connector = %self.settings().name,
                    took = ?cancelled.elapsed(),
                    session_kept = !lease.broken,
                    "statement cancelled at its deadline"
                );
                Err(Error::timeout("the statement", timeout)
                    .with_connector(self.settings().name.clone()))
            }
            Err(error) => {
                if !lease.broken {
                    let grace = self.grace();
                    let _ = lease
                        .close_operation(&operation, Instant::now() + grace, grace)
                        .await;
                }
                Err(error)
            }
        }
    }

    fn grace(&self) -> Duration {
        self.settings().connect_timeout.min(Duration::from_secs(5))
    }

    /// Cancels and closes an operation that ran out of time.
    async fn abandon(&self, lease: &mut Lease, operation: &TOperationHandle) {
        let grace = self.grace();
        let deadline = Instant::now() + grace;
        if lease.cancel(operation, deadline, grace).await.is_ok() {
            let _ = lease.close_operation(operation, deadline, grace).await;
        }
    }

    async fn finish(&self, mut running: Running) {
        let grace = self.grace();
        let _ = running
            .lease
            .close_operation(&running.operation, Instant::now() + grace, grace)
            .await;
    }

    fn check_open(&self) -> Result<()> {
        if self.pool.is_closed() {
            return Err(extdata_core::closed_error(&self.settings().name));
        }
        Ok(())
    }
}

/// `error` with the server's text replaced by its error class (see
/// [`HiveSource::withhold_values`]).
fn withheld(error: Error, connector: &str) -> Error {
    let message = error.message();
    let operation = message.split(": ").next().unwrap_or("the statement failed");
    let classes: Vec<&str> = message
        .match_indices('[')
        .filter_map(|(at, _)| {
            let rest = &message[at + 1..];
            let end = rest.find(']')?;
            let class = &rest[..end];
            (!class.is_empty()
                && class.bytes().all(|b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'.'
                }))
            .then_some(class)
        })
        .collect();
    let class = match classes.first() {
        Some(class) => format!("[{class}] "),
        None => String::new(),
    };
    let mut rebuilt = Error::new(
        error.kind(),
        format!(
            "{operation}: {class}(the server's message is withheld: the statement has \
             parameters, whose values it may quote; run it without parameters to see it)"
        ),
    )
    .with_connector(connector.to_owned())
    .with_temporary(error.is_temporary());
    if let Some(state) = error.sql_state() {
        rebuilt = rebuilt.with_sql_state(state.to_owned());
    }
    rebuilt
}

#[async_trait]
impl ExternalSource for HiveSource {
    fn name(&self) -> &str {
        &self.settings().name
    }

    fn kind(&self) -> DbKind {
        DbKind::Hive
    }

    async fn ping(&self) -> Result<ServerInfo> {
        self.check_open()?;
        let timeout = self.settings().query_timeout;
        let deadline = Instant::now() + timeout;
        let mut lease = self.pool.acquire(deadline).await?;
        let version = lease
            .info(TGetInfoType::CLI_DBMS_VER, deadline, timeout)
            .await?;
        Ok(ServerInfo { version })
    }

    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream> {
        self.check_open()?;
        self.refuse(statement)?;
        let sql = self.render(statement)?;
        let timeout = options.timeout_or(self.settings().query_timeout);
        let mut running = self
            .start(&sql, timeout, guard::is_plain_read(statement))
            .await
            .map_err(|e| self.withhold_values(statement, e))?;
        if !running.has_result_set {
            self.finish(running).await;
            return Ok(RowStream::new(Vec::new().into(), futures::stream::empty()));
        }
        let deadline = Instant::now() + timeout;
        let schema = match running
            .lease
            .metadata(&running.operation, deadline, timeout)
            .await
        {
            Ok(table) => types::schema(&table),
            Err(error) => {
                if !running.lease.broken {
                    self.finish(running).await;
                }
                return Err(self.withhold_values(statement, error));
            }
        };
        let columns = schema.columns.clone();
        let has_params = !statement.params().is_empty();
        let fetch_size = self.settings().fetch_size;
        let grace = self.grace();
        let connector = self.settings().name.clone();
        // One batch in flight and one queued: memory stays at two batches however
        // long the result.
        let (sender, receiver) = mpsc::channel::<Result<Vec<Row>>>(1);
        tokio::spawn(async move {
            let Running {
                mut lease,
                operation,
                ..
            } = running;
            loop {
                let deadline = Instant::now() + timeout;
                let batch = tokio::select! {
                    batch = lease.fetch(&operation, fetch_size, deadline, timeout) => batch,
                    // The reader went away: stop the query.
                    () = sender.closed() => {
                        let until = Instant::now() + grace;
                        if lease.cancel(&operation, until, grace).await.is_ok() {
                            let _ = lease.close_operation(&operation, until, grace).await;
                        }
                        return;
                    }
                };
                let rows = batch.and_then(|set| {
                    types::rows(&schema, set).map_err(|e| e.with_connector(connector.clone()))
                });
                match rows {
                    Ok(rows) if rows.is_empty() => {
                        let _ = lease
                            .close_operation(&operation, Instant::now() + grace, grace)
                            .await;
                        return;
                    }
                    Ok(rows) => {
                        if sender.send(Ok(rows)).await.is_err() {
                            let until = Instant::now() + grace;
                            if lease.cancel(&operation, until, grace).await.is_ok() {
                                let _ = lease.close_operation(&operation, until, grace).await;
                            }
                            return;
                        }
                    }
                    Err(error) => {
                        if !lease.broken {
                            let until = Instant::now() + grace;
                            let _ = lease.close_operation(&operation, until, grace).await;
                        }
                        let error = withhold_if(has_params, &connector, error);
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                }
            }
        });
        let rows = futures::stream::unfold(receiver, |mut receiver| async move {
            let batch = receiver.recv().await?;
            Some((batch, receiver))
        })
        .flat_map(|batch| {
            let items: Vec<Result<Row>> = match batch {
                Ok(rows) => rows.into_iter().map(Ok).collect(),
                Err(error) => vec![Err(error)],
            };
            futures::stream::iter(items)
        });
        Ok(RowStream::new(columns, rows))
    }

    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        self.check_open()?;
        self.refuse(statement)?;
        let sql = self.render(statement)?;
        let timeout = options.timeout_or(self.settings().query_timeout);
        let running = self
            .start(&sql, timeout, guard::is_plain_read(statement))
            .await
            .map_err(|e| self.withhold_values(statement, e))?;
        let modified = running.modified_rows.unwrap_or(0).max(0) as u64;
        self.finish(running).await;
        Ok(modified)
    }

    async fn describe(&self, statement: &Statement, options: &QueryOptions) -> Result<Vec<Column>> {
        self.check_open()?;
        self.refuse(statement)?;
        let sql = self.render(statement)?;
        let timeout = options.timeout_or(self.settings().query_timeout);
        // HiveServer2 cannot prepare; a query with no rows gives the columns cheaply.
        // Wrapping also keeps a non-query (a write) from running: it is a syntax
        // error inside a subquery.
        let probe = format!("SELECT * FROM (\n{sql}\n) extdata_describe LIMIT 0");
        // The probe wraps the statement in a subquery: it can only read.
        let mut running = self
            .start(&probe, timeout, true)
            .await
            .map_err(|e| self.withhold_values(statement, e))?;
        let deadline = Instant::now() + timeout;
        let result = running
            .lease
            .metadata(&running.operation, deadline, timeout)
            .await;
        if !running.lease.broken {
            self.finish(running).await;
        }
        let table = result.map_err(|e| self.withhold_values(statement, e))?;
        Ok(types::schema(&table).columns.to_vec())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use extdata_core::ConnectorConfig;

    fn config() -> ConnectorConfig {
        ConnectorConfig::new("warehouse", DbKind::Hive)
            .with_host("127.0.0.1")
            .with_username("ann")
            .with_password("pw-secret-42")
    }

    #[test]
    fn validation_knows_options_and_prefixes() {
        let valid = config()
            .with_options("auth=NOSASL&fetch_size=500&spark.sql.session.timeZone=UTC")
            .validate_with(Some(&SPEC))
            .unwrap();
        let settings = Settings::from_config(&valid).unwrap();
        assert_eq!(settings.auth, Auth::NoSasl);
        assert_eq!(settings.fetch_size, 500);
        assert_eq!(settings.port, 10000);
        assert_eq!(
            settings
                .session_conf
                .get("set:hiveconf:spark.sql.session.timeZone")
                .map(String::as_str),
            Some("UTC")
        );
        let problems = config()
            .with_options("auth=DIGEST&fetch_size=0&colour=blue")
            .validate_with(Some(&SPEC))
            .unwrap_err();
        let text = problems.to_string();
        assert!(text.contains("options.auth"), "{text}");
        assert!(text.contains("options.fetch_size"), "{text}");
        assert!(text.contains("unknown option `colour`"), "{text}");
        assert!(text.contains("hive."), "lists the prefixes: {text}");
    }

    #[test]
    fn ssl_and_unix_are_validation_errors() {
        let problems = config()
            .with_ssl(extdata_core::SslConfig::default())
            .with_protocol(extdata_core::Protocol::Unix)
            .validate_with(Some(&SPEC))
            .unwrap_err()
            .to_string();
        assert!(problems.contains("ssl"), "{problems}");
        assert!(problems.contains("protocol"), "{problems}");
    }

    #[test]
    fn escaped_string_literals_setting_is_refused() {
        let problems = config()
            .with_options("spark.sql.parser.escapedStringLiterals=true")
            .validate_with(Some(&SPEC))
            .unwrap_err()
            .to_string();
        assert!(problems.contains("escapedStringLiterals"), "{problems}");
    }

    #[test]
    fn debug_shows_no_password() {
        let source = HiveSource::build(config().validate_with(Some(&SPEC)).unwrap()).unwrap();
        let text = format!("{source:?}");
        assert!(
            text.contains("warehouse") && text.contains("127.0.0.1:10000"),
            "{text}"
        );
        assert!(!text.contains("pw-secret-42"), "{text}");
    }

    #[test]
    fn parameters_render_through_the_escaper() {
        let source = HiveSource::build(config().validate_with(Some(&SPEC)).unwrap()).unwrap();
        let statement = Statement::new("SELECT :a, ':a' FROM t WHERE x = :b;")
            .bind("a", "it's ${env:HOME}")
            .bind("b", 5_i64);
        assert_eq!(
            source.render(&statement).unwrap(),
            "SELECT CAST(unhex('6974277320247B656E763A484F4D457D') AS STRING), ':a' FROM t \
             WHERE x = CAST(5 AS BIGINT)"
        );
    }
}
