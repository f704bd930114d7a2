#![doc = include_str!("../README.md")]

#[cfg(feature = "arrow")]
mod arrow;
mod batch;
mod connect;
mod error;
mod pool;
mod session;
mod stream;
mod types;
mod typmod;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use extdata_core::driver::{Lifecycle, check_kind, ensure_crypto_provider, timeout_error};
use extdata_core::{
    BackendSpec, Column, Columns, DbKind, Dialect, Endpoint, Error, ErrorKind, ExternalSource,
    QueryOptions, ResultSet, Row, RowStream, ServerInfo, Statement, Support, ValidConfig, Value,
    async_trait,
};
use futures::TryStreamExt;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArguments, PgRow, PgTypeInfo};
use sqlx::query::Query;
use sqlx::{
    AssertSqlSafe, Executor, Postgres, Row as _, SqlSafeStr, Statement as _, ValueRef as _,
};
use tokio::sync::OnceCell;
use tokio::time::Instant;

pub use pool::PoolState;
#[doc(hidden)]
pub use types::decode_binary_for_bench;

/// The SQL this backend sends around each call — the start of a read-only call and the
/// session reset — for the benchmarks, which send the same statements through another
/// driver (`benches/src/pipelined.rs`). Not API.
#[doc(hidden)]
pub mod session_for_bench {
    pub use crate::session::{Check, Reset, begin_read_only, reset_sql};
}

use crate::pool::{Pool, PoolConfig, Pooled};
use crate::types::{Decoder, Param};
use crate::typmod::{NumericTypmods, Origins};

/// The rules of PostgreSQL connectors, for [`ConnectorConfig::validate_with`](extdata_core::ConnectorConfig::validate_with).
pub const SPEC: BackendSpec = BackendSpec {
    udp: Support::No(
        "PostgreSQL speaks TCP or unix sockets only; use protocol = \"tcp\" (or \"unix\" with the socket directory as host)",
    ),
    options: connect::OPTIONS,
    check: Some(check),
    ..BackendSpec::server(DbKind::Postgres, 5432)
};

fn check(config: &ValidConfig, problems: &mut Vec<(String, String)>) {
    if config.tls.is_some() && matches!(config.endpoint, Endpoint::Unix { .. }) {
        problems.push((
            "ssl".into(),
            "PostgreSQL does not use TLS over a unix socket; disable ssl or use protocol = \"tcp\""
                .into(),
        ));
    }
}

/// A PostgreSQL database reached through sqlx.
///
/// ```no_run
/// # async fn demo() -> extdata_core::Result<()> {
/// use extdata_core::{ConnectorConfig, DbKind, ExternalSource, QueryOptions, Statement};
/// use extdata_postgres::{PostgresSource, SPEC};
///
/// let config = ConnectorConfig::new("crm", DbKind::Postgres)
///     .with_host("127.0.0.1")
///     .with_database("crm")
///     .with_username("reader")
///     .with_password("s3cret")
///     .validate_with(Some(&SPEC))?;
/// let source = PostgresSource::build(config)?;
/// let rows = source
///     .query(
///         &Statement::new("SELECT id, email FROM customers WHERE id = :id").bind("id", 42_i64),
///         &QueryOptions::default(),
///     )
///     .await?;
/// # Ok(()) }
/// ```
pub struct PostgresSource {
    config: Arc<ValidConfig>,
    pool: OnceCell<Pool>,
    lifecycle: Lifecycle,
    /// The declared precision and scale of the `numeric` table columns results had.
    typmods: NumericTypmods,
}

impl fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSource")
            .field("name", &self.config.name)
            .field("kind", &self.config.kind)
            .field("endpoint", &self.config.endpoint.to_string())
            .field("database", &self.config.database)
            .field("tls", &self.config.tls.as_ref().map(|t| t.verify))
            .finish_non_exhaustive()
    }
}

/// A statement ready to run: rendered SQL and its parameters.
struct Prepared {
    sql: String,
    params: Vec<Param>,
    types: Vec<PgTypeInfo>,
}

impl Prepared {
    fn query(&self, sql: &str) -> Query<'static, Postgres, PgArguments> {
        let mut query = sqlx::query(AssertSqlSafe(sql.to_owned()));
        for param in &self.params {
            query = query.bind(param.clone());
        }
        query
    }
}

/// The result columns of a statement and how to read them.
struct Shape {
    columns: Columns,
    decoders: Vec<Decoder>,
    /// The SQL actually run (wrapped when some columns must come back as text).
    sql: String,
}

impl PostgresSource {
    /// Creates the source. Does no I/O and needs no runtime: the pool is created on
    /// first use.
    pub fn build(config: ValidConfig) -> extdata_core::Result<Self> {
        ensure_crypto_provider();
        check_kind(&config, DbKind::Postgres)?;
        if matches!(config.endpoint, Endpoint::Udp { .. } | Endpoint::Embedded) {
            return Err(config.error(ErrorKind::Config, "PostgreSQL needs protocol tcp or unix"));
        }
        Ok(PostgresSource {
            config: Arc::new(config),
            pool: OnceCell::new(),
            lifecycle: Lifecycle::new(),
            typmods: NumericTypmods::default(),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &ValidConfig {
        &self.config
    }

    /// The pool's counters, or `None` before first use.
    pub fn pool_state(&self) -> Option<PoolState> {
        self.pool.get().map(Pool::state)
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    async fn pool(&self) -> extdata_core::Result<&Pool> {
        self.lifecycle.check_open(self.name())?;
        self.pool
            .get_or_try_init(|| async {
                let config = &self.config;
                Pool::new(PoolConfig {
                    connector: config.name.clone(),
                    options: connect::connect_options(config),
                    session: connect::session_settings(config),
                    statement_timeout_ms: connect::statement_timeout_ms(config.query_timeout),
                    read_only: config.read_only,
                    settings: config.pool.clone(),
                    connect_timeout: config.connect_timeout,
                })
            })
            .await
    }

    fn prepare_statement(&self, statement: &Statement) -> extdata_core::Result<Prepared> {
        if opens_transaction(statement.sql()) {
            // Each call takes some pooled connection and runs in its own transaction: a
            // BEGIN would leave the next, unrelated call inside this transaction.
            return Err(Error::unsupported(
                "transaction control (BEGIN / START TRANSACTION) is not supported: each call \
                 runs on its own pooled connection in its own transaction",
            )
            .with_connector(self.name()));
        }
        let rendered = statement
            .render(Dialect::Postgres)
            .map_err(|e| e.with_connector(self.name()))?;
        let mut params = Vec::with_capacity(rendered.params.len());
        let mut oids = Vec::with_capacity(rendered.params.len());
        for (index, value) in rendered.params.into_iter().enumerate() {
            let param = Param(value);
            let type_oid = param.type_oid().map_err(|why| {
                Error::parameter(format!("parameter ${}: {why}", index + 1))
                    .with_connector(self.name())
            })?;
            oids.push(type_oid);
            params.push(param);
        }
        // sqlx caches prepared statements by SQL text alone; the same text bound with
        // other parameter types (an int now, a NULL or text later) must be a different
        // statement, or the server would read the new values with the old types.
        let sql = if oids.is_empty() {
            rendered.sql
        } else {
            let signature: Vec<String> = oids.iter().map(u32::to_string).collect();
            format!(
                "{}\n-- extdata parameter types: {}",
                rendered.sql,
                signature.join(",")
            )
        };
        Ok(Prepared {
            sql,
            params,
            types: oids
                .into_iter()
                .map(|o| PgTypeInfo::with_oid(Oid(o)))
                .collect(),
        })
    }

    fn timeout_error(&self, operation: &str, after: Duration) -> Error {
        timeout_error(self.name(), operation, after)
            .context("the query was cancelled on the server")
    }

    /// Takes a pooled connection and runs `work` on it until `budget`'s deadline, after
    /// [`Pooled::start_call`] when `call` runs SQL of an account. On timeout the query
    /// is cancelled on the server and the connection closed; on a lost connection it is
    /// closed; after a server error the session is reset ([`Pooled::end_call`]) and the
    /// connection goes back to the pool. On success the call is still open: the caller
    /// ends it with [`Pooled::end_call`] (or aborts it).
    async fn bounded<T>(
        &self,
        budget: Budget,
        call: Call,
        work: impl AsyncFnOnce(&mut pool::Conn) -> Result<T, sqlx::Error>,
    ) -> extdata_core::Result<(T, Pooled)> {
        let mut conn = self.pool().await?.acquire(budget.deadline).await?;
        if let Call::Account { several: true, .. } = call {
            conn.several_statements();
        }
        conn.begin();
        let outcome = tokio::time::timeout_at(budget.deadline, async {
            if let Call::Account {
                statement_timeout_ms,
                ..
            } = call
            {
                conn.start_call(statement_timeout_ms).await?;
            }
            work(conn.conn()).await
        })
        .await;
        match outcome {
            Ok(Ok(value)) => {
                conn.finish();
                Ok((value, conn))
            }
            Ok(Err(e)) => Err(conn.failed(self.name(), e)),
            Err(_) => {
                conn.abort().await;
                Err(self.timeout_error(budget.operation, budget.timeout))
            }
        }
    }

    /// Prepares (or finds in the cache) the statement and works out its columns,
    /// wrapping it when some columns are of types without a binary decoder; a
    /// `numeric` column of a table column is named with its declared precision and
    /// scale (`NUMERIC(20,4)`, see [`typmod`]).
    async fn shape(
        conn: &mut pool::Conn,
        prepared: &Prepared,
        typmods: &NumericTypmods,
    ) -> Result<Shape, sqlx::Error> {
        let statement = conn
            .raw
            .prepare_with(
                AssertSqlSafe(prepared.sql.clone()).into_sql_str(),
                &prepared.types,
            )
            .await?;
        let mut decoders: Vec<Decoder> = statement
            .columns()
            .iter()
            .map(|c| Decoder::for_type(sqlx::Column::type_info(c)))
            .collect();
        let origins = Origins::of(statement.columns());
        let missing = typmods.missing(&origins);
        if !missing.is_empty() {
            typmods.read(&mut conn.raw, &missing).await?;
        }
        let numeric_types = typmods.type_names(&origins);
        let columns: Columns = statement
            .columns()
            .iter()
            .zip(&decoders)
            .zip(numeric_types)
            .map(|((c, d), numeric_type)| {
                Column::new(
                    sqlx::Column::name(c),
                    numeric_type.unwrap_or_else(|| types::type_name(sqlx::Column::type_info(c))),
                    d.value_kind(),
                )
            })
            .collect();
        let mut sql = prepared.sql.clone();
        if let Some(wrapped) = types::text_wrapper(&prepared.sql, &decoders) {
            match conn
                .raw
                .prepare_with(
                    AssertSqlSafe(wrapped.clone()).into_sql_str(),
                    &prepared.types,
                )
                .await
            {
                Ok(statement) => {
                    decoders = statement
                        .columns()
                        .iter()
                        .map(|c| Decoder::for_type(sqlx::Column::type_info(c)))
                        .collect();
                    sql = wrapped;
                }
                // Not every statement can be a CTE (e.g. `SHOW`, `EXPLAIN`): run it as
                // it is and read the unknown columns as best we can.
                Err(sqlx::Error::Database(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Shape {
            columns,
            decoders,
            sql,
        })
    }
}

impl PostgresSource {
    /// Prepares `statement` and works out its result's columns on a pooled connection,
    /// whose query a [`stream::batches`] generator then runs (for `stream` and
    /// `stream_batches` alike).
    async fn open_stream(
        &self,
        statement: &Statement,
        options: &QueryOptions,
    ) -> extdata_core::Result<stream::Query> {
        let prepared = self.prepare_statement(statement)?;
        let budget = Budget::from_now("query", options.timeout_or(self.config.query_timeout));
        // An import may stream for longer than the query timeout, which bounds the wait
        // for each row instead: no statement_timeout on the server for streams.
        let unguarded = Call::Account {
            statement_timeout_ms: 0,
            several: false,
        };
        let (shape, conn) = self
            .bounded(budget, unguarded, async |c: &mut pool::Conn| {
                Self::shape(c, &prepared, &self.typmods).await
            })
            .await?;
        Ok(stream::Query {
            conn,
            prepared,
            shape,
            first_deadline: budget.deadline,
            timeout: budget.timeout,
            connector: self.config.name.clone(),
        })
    }
}

/// What a [`PostgresSource::bounded`] call runs.
#[derive(Debug, Clone, Copy)]
enum Call {
    /// Only the backend's own SQL (`ping`): no transaction, no reset.
    Internal,
    /// SQL of an account, with this server-side `statement_timeout` guard: read-only
    /// transaction on a `read_only` connector, session reset afterwards — in full when
    /// the call runs `several` statements ([`Pooled::several_statements`]).
    Account {
        statement_timeout_ms: u64,
        several: bool,
    },
}

impl Call {
    /// One statement of an account, whose server-side guard follows from the call's
    /// timeout.
    fn guarded(budget: Budget) -> Self {
        Call::Account {
            statement_timeout_ms: connect::statement_timeout_ms(budget.timeout),
            several: false,
        }
    }
}

/// What a call is (its operation, as a timeout error names it) and how long it may
/// take: its timeout, and the deadline that sets from the call's start.
#[derive(Debug, Clone, Copy)]
struct Budget {
    operation: &'static str,
    timeout: Duration,
    deadline: Instant,
}

impl Budget {
    /// `operation` bounded by `timeout` (`options`' or the connector's
    /// `query_timeout`), from now.
    fn from_now(operation: &'static str, timeout: Duration) -> Self {
        Budget {
            operation,
            timeout,
            deadline: Instant::now() + timeout,
        }
    }
}

/// Whether the statement's first keyword opens a transaction block.
fn opens_transaction(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(after) = rest.strip_prefix("/*") {
            // Block comments nest in PostgreSQL.
            let mut depth = 1;
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                let next = after[i + c.len_utf8()..].chars().next();
                match (c, next) {
                    ('/', Some('*')) => {
                        depth += 1;
                        chars.next();
                    }
                    ('*', Some('/')) => {
                        depth -= 1;
                        chars.next();
                        if depth == 0 {
                            end = i + 2;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &after[end.min(after.len())..];
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    word == "begin" || word == "start"
}

fn decode_row(row: &PgRow, shape: &Shape) -> extdata_core::Result<Row> {
    // A loop into a vector of the right size: collecting `Result`s would grow the
    // vector from nothing, reallocating it per row (measured: +50 % CPU per row).
    let mut values = Vec::with_capacity(shape.decoders.len());
    for index in 0..shape.decoders.len() {
        values.push(decode_cell(shape, index, raw_bytes(row, index)?)?);
    }
    Ok(Row::new(shape.columns.clone(), values))
}

/// The wire bytes of column `index` of `row` (`None`: NULL).
fn raw_bytes(row: &PgRow, index: usize) -> extdata_core::Result<Option<&[u8]>> {
    let raw = row
        .try_get_raw(index)
        .map_err(|e| Error::decode(format!("column {index}: {e}")))?;
    if raw.is_null() {
        return Ok(None);
    }
    raw.as_bytes()
        .map(Some)
        .map_err(|e| Error::decode(format!("column {index}: {e}")))
}

/// The value of column `index` whose wire bytes are `bytes` (`None`: NULL), decoded by
/// the row decoder.
fn decode_cell(shape: &Shape, index: usize, bytes: Option<&[u8]>) -> extdata_core::Result<Value> {
    let (Some(bytes), Some(decoder)) = (bytes, shape.decoders.get(index)) else {
        return Ok(Value::Null);
    };
    decoder.decode(bytes).map_err(|why| {
        let column = shape.columns.get(index);
        Error::decode(format!(
            "column `{}` ({}): {why}",
            column.map_or("?", |c| c.name.as_str()),
            column.map_or("?", |c| c.database_type.as_str()),
        ))
    })
}

#[async_trait]
impl ExternalSource for PostgresSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> DbKind {
        DbKind::Postgres
    }

    async fn ping(&self) -> extdata_core::Result<ServerInfo> {
        let budget = Budget::from_now("ping", self.config.query_timeout);
        let (version, _conn) = self
            .bounded(budget, Call::Internal, async |c: &mut pool::Conn| {
                sqlx::query_scalar::<_, String>("SELECT current_setting('server_version')")
                    .fetch_one(&mut c.raw)
                    .await
            })
            .await?;
        Ok(ServerInfo { version })
    }

    async fn query(
        &self,
        statement: &Statement,
        options: &QueryOptions,
    ) -> extdata_core::Result<ResultSet> {
        let prepared = self.prepare_statement(statement)?;
        let budget = Budget::from_now("query", options.timeout_or(self.config.query_timeout));
        let max_rows = options.max_rows_or_default();
        let ((shape, rows, truncated), conn) = self
            .bounded(budget, Call::guarded(budget), async |c: &mut pool::Conn| {
                let shape = Self::shape(c, &prepared, &self.typmods).await?;
                let mut rows = Vec::new();
                let mut truncated = false;
                let mut stream = prepared.query(&shape.sql).fetch(&mut c.raw);
                while let Some(row) = stream.try_next().await? {
                    if rows.len() >= max_rows {
                        truncated = true;
                        break;
                    }
                    rows.push(row);
                }
                Ok((shape, rows, truncated))
            })
            .await?;
        if truncated {
            // Rows are still coming: stop the query rather than read them all.
            conn.abort().await;
        } else {
            conn.end_call();
        }
        let rows = rows
            .iter()
            .map(|row| decode_row(row, &shape))
            .collect::<extdata_core::Result<Vec<_>>>()
            .map_err(|e| e.with_connector(self.name()))?;
        Ok(ResultSet {
            columns: shape.columns,
            rows,
            truncated,
        })
    }

    async fn stream(
        &self,
        statement: &Statement,
        options: &QueryOptions,
    ) -> extdata_core::Result<RowStream> {
        let query = self.open_stream(statement, options).await?;
        let columns = query.shape.columns.clone();
        Ok(RowStream::new(columns, stream::rows(query)))
    }

    async fn execute(
        &self,
        statement: &Statement,
        options: &QueryOptions,
    ) -> extdata_core::Result<u64> {
        let prepared = self.prepare_statement(statement)?;
        let budget = Budget::from_now("statement", options.timeout_or(self.config.query_timeout));
        let (affected, conn) = self
            .bounded(budget, Call::guarded(budget), async |c: &mut pool::Conn| {
                let result = prepared.query(&prepared.sql).execute(&mut c.raw).await?;
                Ok(result.rows_affected())
            })
            .await?;
        conn.end_call();
        Ok(affected)
    }

    /// One transaction on one connection: all statements apply or none does. The
    /// call's timeout bounds the whole batch; when it fires, the running statement is
    /// cancelled on the server and the connection closed (which rolls back).
    async fn execute_batch(
        &self,
        statements: &[Statement],
        options: &QueryOptions,
    ) -> extdata_core::Result<Vec<u64>> {
        self.run_batch(statements, options).await
    }

    fn batches_are_atomic(&self) -> bool {
        true
    }

    async fn describe(
        &self,
        statement: &Statement,
        options: &QueryOptions,
    ) -> extdata_core::Result<Vec<Column>> {
        let prepared = self.prepare_statement(statement)?;
        let budget = Budget::from_now("describe", options.timeout_or(self.config.query_timeout));
        let (shape, conn) = self
            .bounded(budget, Call::guarded(budget), async |c: &mut pool::Conn| {
                Self::shape(c, &prepared, &self.typmods).await
            })
            .await?;
        conn.end_call();
        Ok(shape.columns.to_vec())
    }

    async fn close(&self) {
        self.lifecycle.close();
        if let Some(pool) = self.pool.get() {
            pool.close().await;
        }
    }

    /// `Some(self)`: the facade reaches `PostgresSource::stream_batches` (feature
    /// `arrow`) through it.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use extdata_core::{ConnectorConfig, Protocol, SslConfig};

    fn config() -> ConnectorConfig {
        ConnectorConfig::new("crm", DbKind::Postgres)
    }

    /// The problems validation finds in `config`.
    fn problems_of(config: ConnectorConfig) -> extdata_core::Problems {
        config.validate_with(Some(&SPEC)).unwrap_err()
    }

    #[test]
    fn build_needs_no_runtime_and_debug_hides_the_password() {
        let config = config()
            .with_host("db.example")
            .with_password("hunter2-sentinel")
            .validate_with(Some(&SPEC))
            .unwrap();
        let source = PostgresSource::build(config).unwrap();
        let debug = format!("{source:?}");
        assert!(debug.contains("db.example:5432"), "{debug}");
        assert!(!debug.contains("hunter2-sentinel"), "{debug}");
        assert!(source.pool_state().is_none());
    }

    #[test]
    fn udp_and_tls_over_unix_are_refused_with_a_reason() {
        let problems = problems_of(config().with_host("db").with_protocol(Protocol::Udp));
        assert!(
            problems.to_string().contains("TCP or unix sockets"),
            "{problems}"
        );
        let problems = problems_of(
            config()
                .with_host("/var/run/postgresql")
                .with_protocol(Protocol::Unix)
                .with_ssl(SslConfig::default()),
        );
        assert!(problems.to_string().contains("unix socket"), "{problems}");
    }

    #[test]
    fn transaction_openers_are_recognised() {
        for sql in [
            "BEGIN",
            " begin;",
            "/* a /* b */ */ START TRANSACTION",
            "-- c\nBEGIN WORK",
        ] {
            assert!(opens_transaction(sql), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "COMMIT",
            "DO $$ BEGIN END $$",
            "/* BEGIN */ SELECT",
            "beginx",
            "",
        ] {
            assert!(!opens_transaction(sql), "{sql}");
        }
    }

    #[test]
    fn unknown_options_list_the_known_ones() {
        let problems = problems_of(
            config()
                .with_host("db")
                .with_options("sslmode=require&options=-c%20work_mem%3D1MB&lock_timeout=soon"),
        );
        let text = problems.to_string();
        assert!(text.contains("unknown option `sslmode`"), "{text}");
        assert!(text.contains("application_name, search_path"), "{text}");
        assert!(text.contains("options.lock_timeout"), "{text}");
        assert!(!text.contains("options.options"), "{text}");
    }
}
