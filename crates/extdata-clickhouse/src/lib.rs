#![doc = include_str!("../README.md")]

#[cfg(feature = "arrow")]
mod arrow;
mod connect;
mod error;
mod pool;
mod read_only;
mod redact;
mod stream;
mod types;

#[doc(hidden)]
pub use connect::SETTING_PREFIX;
pub use types::decode_scalar_for_bench;

/// Renders `value` as the ClickHouse expression the backend puts in place of a
/// placeholder on servers without server-side parameters (18.x; `modern_types`: the
/// server has `Bool`, `DateTime64`, `Int128`…, i.e. 21.x and later).
///
/// No text of the value appears in it: strings and bytes become `unhex('…')` with hex
/// digits, numbers are digits, dates, timestamps, decimals and UUIDs are digits, `-`,
/// `.`, `:` and spaces between quotes. So a value cannot end or start a string, quoted
/// identifier or comment, whatever the lexer state at the placeholder.
///
/// ```
/// use extdata_core::Value;
/// assert_eq!(
///     extdata_clickhouse::literal(&Value::Text("a'*/".into()), false).unwrap(),
///     "unhex('61272A2F')"
/// );
/// ```
///
/// A value nesting arrays, tuples and maps more than 100 levels deep is a `Parameter`
/// error (see the README's "Parameters").
pub fn literal(value: &Value, modern_types: bool) -> Result<String> {
    if types::too_deep(value) {
        return Err(too_deep_error("a value"));
    }
    types::literal(value, ServerFeatures { modern_types })
}

use std::fmt;
use std::time::Duration;

use clickhouse::Client;
use clickhouse::native::{Block, DataTypeNode};
use clickhouse::query::NativeCursor;
use extdata_core::driver::{Lifecycle, check_kind, timeout_error};
use extdata_core::{
    BackendSpec, Column, Columns, DbKind, Dialect, Error, ErrorKind, ExternalSource, QueryOptions,
    Result, ResultSet, RowStream, ServerInfo, Statement, Support, ValidConfig, Value, ValueKind,
    async_trait,
};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::connect::{OPTIONS, SETTING_OPTIONS, check_config, warn_config};
use crate::pool::ServerState;
use crate::stream::{
    ChunkedRows, KillGuard, Producer, ReadError, ZonedStatements, block_columns,
    has_plain_datetime, kill_deadline, kill_query, quiet, quietly, read_all, zoned_types,
};
use crate::types::ServerFeatures;

/// The rules of ClickHouse connectors.
pub const SPEC: BackendSpec = BackendSpec {
    unix: Support::No(
        "the ClickHouse HTTP interface listens on TCP only; use protocol = \"tcp\" with the \
         server's HTTP (8123) or HTTPS (8443) port",
    ),
    udp: Support::No(
        "ClickHouse speaks HTTP over TCP; use protocol = \"tcp\" with port 8123 (HTTP) or 8443 \
         (HTTPS)",
    ),
    options: OPTIONS,
    option_prefixes: &[SETTING_PREFIX],
    check: Some(check_config),
    warn: Some(warn_config),
    ..BackendSpec::server(DbKind::ClickHouse, 8123)
};

/// A query opened up to its first block ([`ClickHouseSource::open`]).
enum Opened {
    /// No block came: the columns, as the result's `DESCRIBE` gave them.
    Empty(Columns),
    /// The first block, and the producer that reads the next ones (its `columns` are
    /// the result's).
    Blocks {
        producer: Box<Producer>,
        first: Block,
    },
}

/// How a call reads: the settings it sends differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// `query` / `describe`: bounded, buffered on the server so errors are exact.
    Buffered,
    /// `stream`: rows as the server produces them.
    Stream,
}

/// A ClickHouse server reached over its HTTP interface with the official `clickhouse`
/// client; rows are read in the Native format, so any query's columns decode without
/// knowing their types in advance.
pub struct ClickHouseSource {
    config: ValidConfig,
    client: Client,
    server: OnceCell<ServerState>,
    lifecycle: Lifecycle,
    /// Statements whose result had a `DateTime` column named without its zone: their
    /// next call describes the result while it runs (see [`ZonedStatements`]).
    zoned_statements: ZonedStatements,
}

impl fmt::Debug for ClickHouseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseSource")
            .field("name", &self.config.name)
            .field("kind", &self.config.kind)
            .field("endpoint", &self.config.endpoint.to_string())
            .field("database", &self.config.database)
            .field("tls", &self.config.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ClickHouseSource {
    /// Builds the source. No I/O: connections are opened on first use.
    pub fn build(config: ValidConfig) -> Result<Self> {
        check_kind(&config, DbKind::ClickHouse)?;
        let client = connect::build_client(&config)?;
        Ok(ClickHouseSource {
            config,
            client,
            server: OnceCell::new(),
            lifecycle: Lifecycle::new(),
            zoned_statements: ZonedStatements::default(),
        })
    }

    fn error(&self, error: clickhouse::error::Error, operation: &str) -> Error {
        error::map_error(error, operation, self.config.password_text())
            .with_connector(self.config.name.clone())
    }

    fn check_open(&self) -> Result<()> {
        self.lifecycle.check_open(&self.config.name)
    }

    /// [`check_open`](Self::check_open), and on a read-only connector
    /// [`read_only::check`] of the statement.
    fn check_call(&self, statement: &Statement) -> Result<()> {
        self.check_open()?;
        if self.config.read_only {
            read_only::check(statement.sql())
                .map_err(|e| e.with_connector(self.config.name.clone()))?;
        }
        Ok(())
    }

    fn classify(&self, error: ReadError, operation: &str) -> Error {
        match error {
            ReadError::Driver(e) => self.error(e, operation),
            ReadError::Decode(e) => e.with_connector(self.config.name.clone()),
        }
    }

    /// SQL with every placeholder bound: server parameters where the server has them,
    /// escaped literals elsewhere.
    fn render(
        &self,
        statement: &Statement,
        server: &ServerState,
    ) -> Result<(String, Vec<(String, String)>)> {
        render_statement(statement, server.features, server.server_parameters)
            .map_err(|e| e.with_connector(self.config.name.clone()))
    }

    /// `error` of a call with `statement` without the values bound into it (see
    /// [`redact::Redactor`]).
    fn redacted(&self, error: Error, statement: &Statement) -> Error {
        match self.redactor(statement) {
            Some(redactor) => redactor.error(error),
            None => error,
        }
    }

    /// What the errors of a call with `statement` must not show; `None` when it binds
    /// nothing.
    fn redactor(&self, statement: &Statement) -> Option<redact::Redactor> {
        let server = self.server.get();
        redactor_of(
            statement,
            server.map(|server| server.features),
            server.is_some_and(|server| server.server_parameters),
        )
    }

    /// The settings of one call.
    fn settings(
        &self,
        call: Call,
        timeout: Duration,
        max_rows: Option<usize>,
    ) -> Vec<(String, String)> {
        let mut settings: Vec<(String, String)> = Vec::new();
        for (key, value) in self.config.options.iter() {
            if let Some(name) = key.strip_prefix(SETTING_PREFIX) {
                settings.push((name.to_owned(), value.to_owned()));
            } else if SETTING_OPTIONS.iter().any(|s| s.eq_ignore_ascii_case(key)) {
                let value = match self.config.options.get_bool(key) {
                    Some(b) if key.eq_ignore_ascii_case("join_use_nulls") => {
                        u8::from(b).to_string()
                    }
                    _ => value.to_owned(),
                };
                settings.push((key.to_ascii_lowercase(), value));
            }
        }
        let wait_option = self.config.options.get_bool("wait_end_of_query");
        if call == Call::Buffered || wait_option == Some(true) {
            settings.push(("wait_end_of_query".into(), "1".into()));
        }
        if call == Call::Buffered {
            // Whole seconds: 18.x reads this setting as an integer.
            let seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
            settings.retain(|(k, _)| k != "max_execution_time");
            settings.push(("max_execution_time".into(), seconds.max(1).to_string()));
        }
        if let Some(max_rows) = max_rows {
            // One row more than asked, so that `truncated` can be told; `break` stops the
            // server instead of failing the query.
            settings.push(("max_result_rows".into(), (max_rows as u64 + 1).to_string()));
            settings.push(("result_overflow_mode".into(), "break".into()));
        }
        if self.config.read_only {
            // 2, not 1: readonly = 1 would also refuse the settings sent with the query.
            // No option may weaken it (validation refuses `setting.readonly` too); the
            // server refuses `SET readonly` and `SETTINGS readonly = …` under it.
            settings.retain(|(name, _)| !name.eq_ignore_ascii_case("readonly"));
            settings.push(("readonly".into(), "2".into()));
        }
        settings
    }

    fn new_query_id() -> String {
        format!("extdata-{}", uuid::Uuid::new_v4())
    }

    fn cursor(
        &self,
        sql: &str,
        params: &[(String, String)],
        settings: &[(String, String)],
        query_id: &str,
    ) -> Result<NativeCursor> {
        let mut query = self
            .client
            .query_raw(sql)
            .with_setting("query_id", query_id);
        for (name, value) in settings {
            query = query.with_setting(name.clone(), value.clone());
        }
        if let Some(size) = query_size_setting(sql, settings) {
            query = query.with_setting("max_query_size", size);
        }
        for (name, text) in params {
            query = query.with_setting(format!("param_{name}"), text.as_str());
        }
        quietly(|| query.fetch_native()).map_err(|e| self.error(e, "query"))
    }

    /// Opens a query and reads up to its first block (to learn the columns), then
    /// decodes it into rows.
    async fn open_stream(
        &self,
        statement: &Statement,
        call: Call,
        timeout: Duration,
        max_rows: Option<usize>,
        query_id: String,
    ) -> Result<RowStream> {
        match self
            .open(statement, call, timeout, max_rows, query_id)
            .await?
        {
            Opened::Empty(columns) => Ok(RowStream::new(columns, futures::stream::empty())),
            Opened::Blocks { producer, first } => {
                let columns = producer.columns.clone();
                let rows = ChunkedRows::new(*producer, first).first_chunk().await?;
                Ok(RowStream::new(columns, rows))
            }
        }
    }

    /// Opens a query and reads up to its first block: the result's columns (described
    /// when no block came) and, when a block came, the producer that reads the rest.
    async fn open(
        &self,
        statement: &Statement,
        call: Call,
        timeout: Duration,
        max_rows: Option<usize>,
        query_id: String,
    ) -> Result<Opened> {
        self.check_call(statement)?;
        let server = self.server().await?.clone();
        let (sql, params) = self.render(statement, &server)?;
        let settings = self.settings(call, timeout, max_rows);
        // The query's first block and every DESCRIBE the call needs share one deadline.
        let deadline = Instant::now() + timeout;
        let guard = KillGuard {
            client: self.client.clone(),
            query_id,
            armed: true,
        };
        // A statement whose result had a plain `DateTime` column is described while
        // the query runs (a second request, concurrent with the first block), not
        // after it: the description is fresh on every call, and the call waits for
        // the slower of the two rather than for both in turn.
        let early_describe = async {
            if self.zoned_statements.contains(&sql) {
                Some(self.describe_by(&sql, &params, deadline, timeout).await)
            } else {
                None
            }
        };
        let open = async {
            let mut guard = guard;
            let mut sql = sql.clone();
            // The columns as described, when the query had to be read through a cast.
            let mut described: Option<Vec<Column>> = None;
            loop {
                let mut cursor = self.cursor(&sql, &params, &settings, &guard.query_id)?;
                match tokio::time::timeout_at(deadline, quiet(cursor.next())).await {
                    Err(_) => {
                        guard.kill().await;
                        return Err(timeout_error(&self.config.name, "query", timeout));
                    }
                    Ok(Err(e)) if described.is_none() && error::names_castable_type(&e) => {
                        // `NULL` (a NULL parameter too) and `[]` have types with `Nothing`,
                        // which the clickhouse crate cannot read, nor `JSON`: ask for the
                        // types and read those columns through a cast (`Nothing` → `UInt8`;
                        // the values are NULLs and empty arrays either way; `JSON` → its
                        // text, parsed back into `Value::Json`).
                        drop(cursor);
                        guard.kill().await;
                        let columns = self.describe_by(&sql, &params, deadline, timeout).await?;
                        sql = read_through_casts(&sql, &columns);
                        described = Some(columns);
                        guard.query_id = Self::new_query_id();
                        guard.armed = true;
                    }
                    Ok(Err(e)) => {
                        guard.armed = false;
                        return Err(self.error(e, "query"));
                    }
                    Ok(Ok(block)) => break Ok((guard, sql, described, cursor, block)),
                }
            }
        };
        let (opened, early) = futures::future::join(open, early_describe).await;
        let (mut guard, sql, mut described, cursor, first) = opened?;
        let Some(first) = first else {
            guard.armed = false;
            // An empty result sends no block at all: ask the server for the columns.
            let columns = match (described, early) {
                (Some(columns), _) => Some(columns),
                (None, Some(early)) => undescribed(early)?,
                (None, None) => {
                    undescribed(self.describe_by(&sql, &params, deadline, timeout).await)?
                }
            };
            let columns = columns.unwrap_or_default();
            return Ok(Opened::Empty(columns.into()));
        };
        if described.is_none() && has_plain_datetime(&first) {
            // The header may have dropped a zone: the result's DESCRIBE names it (one
            // more round trip on a statement's first call, concurrent with the query
            // on the next ones). A statement that cannot be described keeps the
            // header's types.
            self.zoned_statements.insert(&sql);
            let description = match early {
                Some(early) => early,
                None => self.describe_by(&sql, &params, deadline, timeout).await,
            };
            described = match undescribed(description) {
                Ok(described) => described,
                Err(e) => {
                    guard.kill().await;
                    return Err(e);
                }
            };
        } else if early.is_some() && !has_plain_datetime(&first) {
            self.zoned_statements.remove(&sql);
        }
        let zoned = described
            .as_deref()
            .map(|described| zoned_types(&first, described))
            .unwrap_or_default();
        let mut columns: Vec<Column> = block_columns(&first).iter().cloned().collect();
        for (column, zoned) in columns.iter_mut().zip(&zoned) {
            if let Some(zoned) = zoned {
                column.database_type = zoned.to_string();
                column.value_kind = ValueKind::TimestampTz;
            }
        }
        let mut json_columns = Vec::new();
        if let Some(described) = &described {
            for (i, (column, original)) in columns.iter_mut().zip(described).enumerate() {
                if original.database_type.contains("Nothing") {
                    column.database_type = original.database_type.clone();
                }
                if is_json(&original.database_type) {
                    column.database_type = original.database_type.clone();
                    column.value_kind = ValueKind::Json;
                    json_columns.push(i);
                }
            }
        }
        let producer = Producer {
            cursor,
            columns: columns.into(),
            zone: server.zone,
            timeout,
            guard,
            connector: self.config.name.clone(),
            password: self.config.password_text().map(str::to_owned),
            // Kept to redact a later error; cloned only when it binds values.
            statement: (!statement.params().is_empty()).then(|| statement.clone()),
            features: server.features,
            server_parameters: server.server_parameters,
            json_columns,
            zoned,
        };
        Ok(Opened::Blocks {
            producer: Box::new(producer),
            first,
        })
    }

    /// [`describe_sql`](Self::describe_sql) in the time left until `deadline`, the
    /// deadline of a call whose timeout is `timeout`: past it, the call's timeout error.
    async fn describe_by(
        &self,
        sql: &str,
        params: &[(String, String)],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Vec<Column>> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.describe_sql(sql, params, left).await {
            Err(e) if e.kind() == ErrorKind::Timeout => {
                Err(timeout_error(&self.config.name, "query", timeout))
            }
            described => described,
        }
    }

    async fn describe_sql(
        &self,
        sql: &str,
        params: &[(String, String)],
        timeout: Duration,
    ) -> Result<Vec<Column>> {
        let server = self.server().await?.clone();
        let settings = self.settings(Call::Buffered, timeout, None);
        let query_id = Self::new_query_id();
        // The newline ends a trailing `--` or `#` comment of `sql`, which would otherwise
        // take the closing parenthesis with it.
        let describe = format!("DESCRIBE TABLE ({sql}\n)");
        let cursor = self.cursor(&describe, params, &settings, &query_id)?;
        let deadline = Instant::now() + timeout;
        let rows = match tokio::time::timeout_at(deadline, read_all(cursor, server.zone)).await {
            Err(_) => {
                kill_query(&self.client, &query_id, kill_deadline(deadline)).await;
                return Err(timeout_error(&self.config.name, "describe", timeout));
            }
            Ok(rows) => rows.map_err(|e| self.classify(e, "describe"))?,
        };
        Ok(rows
            .into_iter()
            .filter_map(|row| match (row.first(), row.get(1)) {
                (Some(Value::Text(name)), Some(Value::Text(type_name))) => {
                    let (kind, nullable) = if is_json(type_name) {
                        (ValueKind::Json, false)
                    } else {
                        DataTypeNode::new(type_name)
                            .map(|t| types::value_kind(&t))
                            .unwrap_or((ValueKind::Text, false))
                    };
                    Some(
                        Column::new(name.clone(), type_name.clone(), kind)
                            .with_nullable(Some(nullable)),
                    )
                }
                _ => None,
            })
            .collect())
    }
}

/// `statement`'s SQL with every placeholder bound, and the server parameters it uses.
///
/// With `server_parameters`, each value that has a parameter type
/// ([`types::server_parameter`]) becomes `{name:Type}` — named after the statement's own
/// `:name`, so the server's `system.processes` and its errors show the template's names —
/// and its text goes in the request as `param_<name>`, never in the SQL. Every other
/// value (and every value on servers without parameters) is rendered by
/// [`types::literal`].
fn render_statement(
    statement: &Statement,
    features: ServerFeatures,
    server_parameters: bool,
) -> Result<(String, Vec<(String, String)>)> {
    let (sql, params) = render_with(statement, features, server_parameters)?;
    // The server reads the SQL and each value as a form field then, up to limits that a
    // request cannot raise: past them, everything goes as literals in a plain body.
    if !params.is_empty()
        && (params.len() > FORM_FIELDS_LIMIT
            || sql.len() > FORM_FIELD_LIMIT
            || params.iter().any(|(_, text)| text.len() > FORM_FIELD_LIMIT))
    {
        return render_with(statement, features, false);
    }
    Ok((sql, params))
}

/// A DESCRIBE's columns; `None` when the statement cannot be described (`SHOW …`):
/// the call keeps the header's types. A timeout is the call's error.
fn undescribed(description: Result<Vec<Column>>) -> Result<Option<Vec<Column>>> {
    match description {
        Ok(columns) => Ok(Some(columns)),
        Err(e) if e.kind() == ErrorKind::Timeout => Err(e),
        Err(_) => Ok(None),
    }
}

/// The longest form field — the SQL or one parameter's text, as sent in the request's
/// `multipart/form-data` body — that a server takes by default
/// (`http_max_field_value_size`, which a request cannot raise: it is read before the
/// request's settings).
const FORM_FIELD_LIMIT: usize = 128 * 1024;

/// Parameters one request may have: the server takes at most 1,000 fields
/// (`http_max_fields`, also URL settings and headers).
const FORM_FIELDS_LIMIT: usize = 900;

/// The server's default `max_query_size`: it refuses a longer SQL text.
const DEFAULT_MAX_QUERY_SIZE: usize = 256 * 1024;

/// `max_query_size` for `sql` when it is longer than the server takes by default (long
/// values rendered as literals: a 1 MiB string is a 2 MiB `unhex('…')`) and the
/// connector's `settings` do not set it.
fn query_size_setting(sql: &str, settings: &[(String, String)]) -> Option<String> {
    (sql.len() >= DEFAULT_MAX_QUERY_SIZE
        && !settings
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("max_query_size")))
    .then(|| (sql.len() + 1).to_string())
}

fn render_with(
    statement: &Statement,
    features: ServerFeatures,
    server_parameters: bool,
) -> Result<(String, Vec<(String, String)>)> {
    if let Some((name, _)) = statement.params().iter().find(|(_, v)| types::too_deep(v)) {
        return Err(too_deep_error(&format!("parameter `:{name}`")));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    let sql = statement.render_inline(Dialect::ClickHouse, |value| {
        if server_parameters && let Some((data_type, text)) = types::server_parameter(value) {
            let name = parameter_name(statement, value, &params);
            if !params.iter().any(|(n, _)| *n == name) {
                params.push((name.clone(), text));
            }
            return Ok(format!("{{{name}:{data_type}}}"));
        }
        types::literal(value, features)
    })?;
    Ok((sql, params))
}

/// The error for `what` (a value, a parameter) nesting arrays, tuples and maps deeper
/// than [`types::MAX_NESTING`] levels.
fn too_deep_error(what: &str) -> Error {
    Error::parameter(format!(
        "{what} nests arrays, tuples or maps more than {} levels deep, which ClickHouse \
         does not take",
        types::MAX_NESTING
    ))
}

/// The server parameter name of `value`, one of `statement`'s values: its own `:name`
/// (a placeholder name is an identifier, which ClickHouse takes as a parameter name).
/// `render_inline` hands over the statement's own value, which tells the name; should
/// it ever hand over a copy, a fresh `extdata_pN` that no bound name uses is taken
/// instead (`params`: the names taken so far).
fn parameter_name(statement: &Statement, value: &Value, params: &[(String, String)]) -> String {
    if let Some((name, _)) = statement
        .params()
        .iter()
        .find(|(_, bound)| std::ptr::eq(*bound, value))
    {
        return name.clone();
    }
    (params.len() + 1..)
        .map(|n| format!("extdata_p{n}"))
        .find(|name| {
            !statement.params().contains_key(name) && !params.iter().any(|(n, _)| n == name)
        })
        .unwrap_or_default()
}

/// What the errors of a call with `statement` must not show (`None` when it binds
/// nothing): the literals rendered with `features` (unknown before the first exchange:
/// then only the values' texts), and with `server_parameters` the `{name:Type}`
/// placeholders, shown as `:name`, and the parameters' texts.
fn redactor_of(
    statement: &Statement,
    features: Option<ServerFeatures>,
    server_parameters: bool,
) -> Option<redact::Redactor> {
    // A value nested too deep is refused before any request (`render_with`): no error
    // holds it, and walking it here would recurse once per level.
    if statement.params().values().any(types::too_deep) {
        return None;
    }
    redact::Redactor::new(
        statement,
        |value| features.and_then(|features| types::literal(value, features).ok()),
        |name, value| {
            server_parameters
                .then(|| types::server_parameter(value))
                .flatten()
                .map(|(data_type, text)| (format!("{{{name}:{data_type}}}"), text))
        },
    )
}

/// Whether `database_type` is a `JSON` column (`JSON`, `JSON(…)`).
fn is_json(database_type: &str) -> bool {
    database_type == "JSON" || database_type.starts_with("JSON(")
}

/// `sql` read through a query that casts its columns (`columns`: as described) whose
/// type holds `Nothing` to the same type with `UInt8`, and its `JSON` columns to their
/// text (`toJSONString`).
fn read_through_casts(sql: &str, columns: &[Column]) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|column| {
            let name = quote_identifier(&column.name);
            if column.database_type.contains("Nothing") {
                let cast = column.database_type.replace("Nothing", "UInt8");
                format!("CAST({name} AS {cast}) AS {name}")
            } else if is_json(&column.database_type) {
                format!("toJSONString({name}) AS {name}")
            } else {
                name
            }
        })
        .collect();
    // The newline ends a trailing `--` comment of `sql`.
    format!("SELECT {} FROM ({sql}\n)", list.join(", "))
}

/// `value`, the text of a `JSON` column (`toJSONString`), as `Value::Json`.
fn parse_json(value: &mut Value) -> Result<()> {
    if let Value::Text(text) = value {
        // serde_json's error names a line and column, never the text.
        let json = serde_json::from_str(text)
            .map_err(|e| Error::decode(format!("a JSON column's text is not JSON: {e}")))?;
        *value = Value::Json(json);
    }
    Ok(())
}

/// `name` as a backtick-quoted identifier.
fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

#[async_trait]
impl ExternalSource for ClickHouseSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> DbKind {
        DbKind::ClickHouse
    }

    async fn ping(&self) -> Result<ServerInfo> {
        self.check_open()?;
        let server = self.server().await?;
        // The first call asked already; later ones make a real round trip.
        let version = self
            .query(
                &Statement::new("SELECT version()"),
                &QueryOptions::default(),
            )
            .await?;
        let version = match version.rows.first().and_then(|r| r.get(0)) {
            Some(Value::Text(v)) => v.clone(),
            _ => server.version.clone(),
        };
        Ok(ServerInfo { version })
    }

    async fn query(&self, statement: &Statement, options: &QueryOptions) -> Result<ResultSet> {
        let timeout = options.timeout_or(self.config.query_timeout);
        let max_rows = options.max_rows_or_default();
        let query_id = Self::new_query_id();
        let deadline = Instant::now() + timeout;
        let run = async {
            self.open_stream(
                statement,
                Call::Buffered,
                timeout,
                Some(max_rows),
                query_id.clone(),
            )
            .await?
            .collect_limited(Some(max_rows))
            .await
        };
        match tokio::time::timeout_at(deadline, run).await {
            Ok(result) => result.map_err(|e| self.redacted(e, statement)),
            Err(_) => {
                kill_query(&self.client, &query_id, kill_deadline(deadline)).await;
                Err(timeout_error(&self.config.name, "query", timeout))
            }
        }
    }

    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream> {
        let timeout = options.timeout_or(self.config.query_timeout);
        self.open_stream(statement, Call::Stream, timeout, None, Self::new_query_id())
            .await
            .map_err(|e| self.redacted(e, statement))
    }

    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        self.execute_rendered(statement, options)
            .await
            .map_err(|e| self.redacted(e, statement))
    }

    async fn describe(&self, statement: &Statement, options: &QueryOptions) -> Result<Vec<Column>> {
        self.check_call(statement)?;
        let timeout = options.timeout_or(self.config.query_timeout);
        let server = self.server().await?.clone();
        let (sql, params) = self.render(statement, &server)?;
        self.describe_sql(&sql, &params, timeout)
            .await
            .map_err(|e| self.redacted(e, statement))
    }

    async fn close(&self) {
        self.lifecycle.close();
    }

    /// `Some(self)`: the facade reaches [`ClickHouseSource::stream_batches`] (feature
    /// `arrow`) through it.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl ClickHouseSource {
    async fn execute_rendered(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        self.check_call(statement)?;
        let timeout = options.timeout_or(self.config.query_timeout);
        let server = self.server().await?.clone();
        let (sql, params) = self.render(statement, &server)?;
        let settings = self.settings(Call::Buffered, timeout, None);
        let query_id = Self::new_query_id();
        let mut query = self
            .client
            .query_raw(&sql)
            .with_setting("query_id", query_id.as_str());
        for (name, value) in &settings {
            query = query.with_setting(name.clone(), value.clone());
        }
        if let Some(size) = query_size_setting(&sql, &settings) {
            query = query.with_setting("max_query_size", size);
        }
        for (name, text) in &params {
            query = query.with_setting(format!("param_{name}"), text.as_str());
        }
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, quiet(query.execute())).await {
            Ok(Ok(())) => Ok(0),
            Ok(Err(e)) => Err(self.error(e, "execute")),
            Err(_) => {
                kill_query(&self.client, &query_id, kill_deadline(deadline)).await;
                Err(timeout_error(&self.config.name, "execute", timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::parse_version;
    use extdata_core::{ConnectorConfig, Protocol};

    #[test]
    fn a_describe_that_runs_out_of_time_fails_the_call_and_any_other_failure_keeps_the_header() {
        let columns = vec![Column::new("t", "DateTime('UTC')", ValueKind::TimestampTz)];
        assert_eq!(
            undescribed(Ok(columns.clone())).unwrap().as_deref(),
            Some(&columns[..])
        );
        let late = timeout_error("ch", "query", Duration::from_secs(1));
        assert_eq!(
            undescribed(Err(late)).unwrap_err().kind(),
            ErrorKind::Timeout
        );
        let refused = Error::new(ErrorKind::Query, "SHOW cannot be described");
        assert_eq!(undescribed(Err(refused)).unwrap(), None);
    }

    fn config() -> ConnectorConfig {
        ConnectorConfig::new("ch", DbKind::ClickHouse)
            .with_host("127.0.0.1")
            .with_username("u")
            .with_password("secret-pw-sentinel")
    }

    /// The problems validation finds in `config`.
    fn problems_of(config: ConnectorConfig) -> String {
        config.validate_with(Some(&SPEC)).unwrap_err().to_string()
    }

    #[test]
    fn udp_and_unix_are_refused_with_reasons() {
        let problems = problems_of(config().with_protocol(Protocol::Udp));
        assert!(problems.contains("HTTP over TCP"), "{problems}");
        let problems = problems_of(
            config()
                .with_protocol(Protocol::Unix)
                .with_host("/tmp/ch.sock"),
        );
        assert!(problems.contains("TCP only"), "{problems}");
    }

    #[test]
    fn unknown_options_list_the_known_ones() {
        let problems = problems_of(config().with_options("max_memroy_usage=1"));
        assert!(
            problems.contains("unknown option `max_memroy_usage`"),
            "{problems}"
        );
        assert!(problems.contains("max_memory_usage"), "{problems}");
        assert!(problems.contains("setting."), "{problems}");
        let problems = problems_of(config().with_options("setting.bad-name=1"));
        assert!(problems.contains("options.setting.bad-name"), "{problems}");
    }

    #[test]
    fn settings_follow_the_call_and_the_options() {
        let valid = config()
            .with_options("max_memory_usage=1000&setting.max_threads=2&join_use_nulls=true")
            .with_read_only(true)
            .validate_with(Some(&SPEC))
            .unwrap();
        let source = ClickHouseSource::build(valid).unwrap();
        let buffered = source.settings(Call::Buffered, Duration::from_millis(1500), Some(10));
        let get = |s: &[(String, String)], k: &str| {
            s.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        };
        assert_eq!(get(&buffered, "max_memory_usage").as_deref(), Some("1000"));
        assert_eq!(get(&buffered, "max_threads").as_deref(), Some("2"));
        assert_eq!(get(&buffered, "join_use_nulls").as_deref(), Some("1"));
        assert_eq!(get(&buffered, "max_execution_time").as_deref(), Some("2"));
        assert_eq!(get(&buffered, "wait_end_of_query").as_deref(), Some("1"));
        assert_eq!(get(&buffered, "max_result_rows").as_deref(), Some("11"));
        assert_eq!(get(&buffered, "readonly").as_deref(), Some("2"));
        let stream = source.settings(Call::Stream, Duration::from_secs(1), None);
        assert_eq!(get(&stream, "wait_end_of_query"), None);
        assert_eq!(get(&stream, "max_execution_time"), None);
    }

    #[test]
    fn read_only_cannot_be_weakened_by_options() {
        let problems = problems_of(
            config()
                .with_options("setting.readonly=0")
                .with_read_only(true),
        );
        assert!(problems.contains("options.setting.readonly"), "{problems}");
        // Even if such a setting got past validation, readonly = 2 is what is sent.
        let mut valid = config()
            .with_options("setting.READONLY=0")
            .validate_with(Some(&SPEC))
            .unwrap();
        valid.read_only = true;
        let source = ClickHouseSource::build(valid).unwrap();
        let settings = source.settings(Call::Stream, Duration::from_secs(1), None);
        let readonly: Vec<_> = settings
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("readonly"))
            .collect();
        assert_eq!(readonly, [&("readonly".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn debug_has_no_password() {
        let source = ClickHouseSource::build(config().validate_with(Some(&SPEC)).unwrap()).unwrap();
        let text = format!("{source:?}");
        assert!(!text.contains("secret-pw-sentinel"), "{text}");
        assert!(text.contains("127.0.0.1"), "{text}");
    }

    #[test]
    fn server_parameters_are_named_after_the_placeholders() {
        let statement = Statement::new("SELECT :v, length(:v), :n, :bytes, [:n], :a")
            .bind("v", "it's")
            .bind("n", 7_i64)
            .bind("bytes", vec![0xFF_u8])
            .bind(
                "a",
                Value::Array(vec![Value::Text("it's".into()), Value::Null]),
            );
        let modern = ServerFeatures { modern_types: true };
        let (sql, params) = render_statement(&statement, modern, true).unwrap();
        assert_eq!(
            sql,
            "SELECT {v:String}, length({v:String}), {n:Int64}, unhex('FF'), [{n:Int64}], \
             {a:Array(Nullable(String))}"
        );
        assert_eq!(
            params,
            [
                ("v".to_owned(), r"it\'s".to_owned()),
                ("n".to_owned(), "7".to_owned()),
                ("a".to_owned(), r"['it\'s',NULL]".to_owned()),
            ]
        );
        let (sql, params) = render_statement(&statement, modern, false).unwrap();
        assert!(params.is_empty());
        assert_eq!(
            sql,
            "SELECT unhex('69742773'), length(unhex('69742773')), toInt64(7), unhex('FF'), \
             [toInt64(7)], [unhex('69742773'), NULL]"
        );
        // Past the server's form-field limit: everything as literals, in a plain body.
        let long = Statement::new("SELECT :v, :n")
            .bind("v", "'".repeat(FORM_FIELD_LIMIT + 1))
            .bind("n", 7_i64);
        let (sql, params) = render_statement(&long, modern, true).unwrap();
        assert!(
            params.is_empty() && sql.ends_with(", toInt64(7)"),
            "{params:?}"
        );
        assert_eq!(
            query_size_setting(&sql, &[]),
            Some((sql.len() + 1).to_string())
        );
        let configured = [("max_query_size".to_owned(), "1".to_owned())];
        assert_eq!(query_size_setting(&sql, &configured), None);
        assert_eq!(query_size_setting("SELECT 1", &[]), None);
    }

    #[test]
    fn values_nested_too_deep_are_refused_before_rendering() {
        let mut value = Value::Text("deep-secret".into());
        for _ in 0..=types::MAX_NESTING {
            value = Value::Array(vec![value]);
        }
        let statement = Statement::new("SELECT :deep").bind("deep", value);
        let modern = ServerFeatures { modern_types: true };
        for server_parameters in [false, true] {
            let error = render_statement(&statement, modern, server_parameters).unwrap_err();
            assert_eq!(error.kind(), extdata_core::ErrorKind::Parameter);
            assert!(error.message().contains("`:deep`"), "{error}");
            assert!(!error.message().contains("secret"), "{error}");
        }
        assert!(redactor_of(&statement, Some(modern), true).is_none());
        let deep = statement.params()["deep"].clone();
        assert!(crate::literal(&deep, true).is_err());
    }

    #[test]
    fn versions_are_parsed() {
        assert_eq!(parse_version("18.16.1"), (18, 16));
        assert_eq!(parse_version("24.3.2.23"), (24, 3));
        assert_eq!(parse_version("garbage"), (0, 0));
    }
}
