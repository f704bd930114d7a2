#![doc = include_str!("../README.md")]

mod connect;
mod error;
#[cfg(any(feature = "gssapi", test))]
mod gssapi;
mod guard;
mod http;
mod pool;
mod sasl;
mod session;
mod stream;
mod transport;
mod types;

use std::fmt;
use std::time::Duration;

use extdata_core::driver::{check_kind, host_port, timeout_error};
use extdata_core::{
    BackendSpec, Column, DbKind, Dialect, Error, ErrorKind, ExternalSource, QueryOptions, Result,
    RowStream, ServerInfo, Statement, Support, ValidConfig, async_trait,
};
use hive::service::rpc::thrift::TGetInfoType;
use tokio::time::Instant;

pub use connect::{Auth, DEFAULT_FETCH_SIZE};
#[doc(hidden)]
pub use types::decode_text_for_bench;
pub use types::{literal, string_literal};

use connect::Settings;
use error::withhold_if;
use pool::Pool;
use stream::Running;

/// The rules of Hive connectors, for validation.
pub const SPEC: BackendSpec = BackendSpec {
    unix: Support::No("HiveServer2 listens on TCP only"),
    udp: Support::No("HiveServer2 listens on TCP only"),
    options: connect::OPTIONS,
    option_prefixes: &["hive.", "spark."],
    check: Some(connect::check),
    warn: Some(connect::warn),
    ..BackendSpec::server(DbKind::Hive, 10000)
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
            .field("endpoint", &host_port(&settings.host, settings.port))
            .field("auth", &settings.auth)
            .field("tls", &settings.uses_tls())
            .field("database", &settings.database)
            .finish_non_exhaustive()
    }
}

impl HiveSource {
    /// Builds the source; no I/O (sessions open on first use).
    pub fn build(config: ValidConfig) -> Result<Self> {
        check_kind(&config, DbKind::Hive)?;
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
                lease.abandon(&operation, self.grace()).await;
                tracing::debug!(
                    connector = %self.settings().name,
                    took = ?cancelled.elapsed(),
                    session_kept = !lease.broken,
                    "statement cancelled at its deadline"
                );
                Err(timeout_error(
                    &self.settings().name,
                    "the statement",
                    timeout,
                ))
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

    async fn finish(&self, mut running: Running) {
        let grace = self.grace();
        let _ = running
            .lease
            .close_operation(&running.operation, Instant::now() + grace, grace)
            .await;
    }
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
        self.pool.check_open()?;
        let timeout = self.settings().query_timeout;
        let deadline = Instant::now() + timeout;
        let mut lease = self.pool.acquire(deadline).await?;
        let version = lease
            .info(TGetInfoType::CLI_DBMS_VER, deadline, timeout)
            .await?;
        Ok(ServerInfo { version })
    }

    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream> {
        self.pool.check_open()?;
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
        Ok(self.rows(running, schema, !statement.params().is_empty(), timeout))
    }

    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        self.pool.check_open()?;
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
        self.pool.check_open()?;
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
    fn unix_is_a_validation_error_and_ssl_is_accepted() {
        let problems = config()
            .with_protocol(extdata_core::Protocol::Unix)
            .validate_with(Some(&SPEC))
            .unwrap_err()
            .to_string();
        assert!(problems.contains("protocol"), "{problems}");
        let valid = config()
            .with_ssl(extdata_core::SslConfig::default())
            .validate_with(Some(&SPEC))
            .expect("ssl on a hive connector");
        let tls = valid.tls.as_ref().expect("TLS settings");
        assert_eq!(
            tls.verify,
            extdata_core::TlsVerify::Full,
            "verify-full by default"
        );
        let source = HiveSource::build(valid).expect("a TLS source builds without I/O");
        assert!(format!("{source:?}").contains("tls: true"), "{source:?}");
    }

    #[test]
    fn http_transport_takes_a_path_and_a_plain_login_only() {
        let valid = config()
            .with_options("transport=http&http_path=gateway/default/hive")
            .validate_with(Some(&SPEC))
            .expect("transport=http");
        let source = HiveSource::build(valid).expect("builds without I/O");
        assert!(format!("{source:?}").contains("HiveSource"));
        for (options, field) in [
            ("transport=http&auth=NOSASL", "auth"),
            ("http_path=cliservice", "http_path"),
            ("transport=thrift", "transport"),
        ] {
            let problems = config()
                .with_options(options)
                .validate_with(Some(&SPEC))
                .unwrap_err()
                .to_string();
            assert!(problems.contains(field), "{options}: {problems}");
        }
    }

    #[test]
    fn gssapi_over_http_is_spnego_behind_the_feature() {
        let gssapi = config().with_options("transport=http&auth=GSSAPI");
        if cfg!(feature = "gssapi") {
            let valid = gssapi
                .validate_with(Some(&SPEC))
                .expect("GSSAPI over HTTP (SPNEGO)");
            let warning = valid
                .warnings
                .iter()
                .find(|w| w.field == "ssl")
                .expect("a warning about plain HTTP");
            assert!(warning.message.contains("SPNEGO"), "{}", warning.message);
            let with_tls = config()
                .with_options("transport=http&auth=GSSAPI")
                .with_ssl(extdata_core::SslConfig::default())
                .validate_with(Some(&SPEC))
                .expect("SPNEGO over HTTPS");
            assert!(
                with_tls.warnings.iter().all(|w| w.field != "ssl"),
                "{:?}",
                with_tls.warnings
            );
        } else {
            let problems = gssapi.validate_with(Some(&SPEC)).unwrap_err().to_string();
            assert!(
                problems.contains("options.auth")
                    && problems.contains("SPNEGO")
                    && problems.contains("`gssapi` cargo feature"),
                "{problems}"
            );
        }
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
