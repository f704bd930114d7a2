//! [`Capabilities`]: what a backend can do and how it spells things.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use extdata_core::{ExternalSource, Result, Value};
use futures::future::BoxFuture;

/// Asks the server whether a query whose text contains `marker` is still running.
///
/// Called with the harness's main source and the marker; returns `Ok(true)` while such
/// a query runs. The conformance suite binds the marker as a parameter (e.g. a `LIKE`
/// pattern) so the probe's own text never matches itself. The probe must not count its
/// own session.
pub type RunningProbe =
    Arc<dyn Fn(Arc<dyn ExternalSource>, String) -> BoxFuture<'static, Result<bool>> + Send + Sync>;

/// One SQL column type and the values that must survive a round trip through it.
///
/// Each pair is `(bound, expected)`: `bound` is inserted through a bound parameter,
/// `expected` is what must come back, compared with `==` (NaN equals NaN).
#[derive(Debug, Clone, PartialEq)]
pub struct TypeCase {
    /// The column type as written in `CREATE TABLE` (`BIGINT`, `NUMERIC(38,10)`, …).
    pub sql_type: String,
    /// `(bound, expected)` pairs; NULL is tested separately for every type.
    pub values: Vec<(Value, Value)>,
}

impl TypeCase {
    /// A type whose values come back exactly as bound.
    ///
    /// ```
    /// use extdata_conformance::TypeCase;
    /// use extdata_core::Value;
    /// let case = TypeCase::exact("BIGINT", [Value::I64(i64::MIN), Value::I64(i64::MAX)]);
    /// assert_eq!(case.values.len(), 2);
    /// ```
    pub fn exact(sql_type: impl Into<String>, values: impl IntoIterator<Item = Value>) -> Self {
        TypeCase {
            sql_type: sql_type.into(),
            values: values.into_iter().map(|v| (v.clone(), v)).collect(),
        }
    }

    /// A type whose values come back as a different variant than the one bound
    /// (e.g. an `I32` bound into a `BIGINT` column comes back as `I64`).
    pub fn converted(
        sql_type: impl Into<String>,
        pairs: impl IntoIterator<Item = (Value, Value)>,
    ) -> Self {
        TypeCase {
            sql_type: sql_type.into(),
            values: pairs.into_iter().collect(),
        }
    }

    /// Adds a value that comes back exactly.
    pub fn with_value(mut self, value: impl Into<Value>) -> Self {
        let value = value.into();
        self.values.push((value.clone(), value));
        self
    }

    /// Adds a value that comes back as `expected`.
    pub fn with_conversion(mut self, bound: impl Into<Value>, expected: impl Into<Value>) -> Self {
        self.values.push((bound.into(), expected.into()));
        self
    }
}

/// What a backend can do and how its SQL is spelled, for the conformance cases.
///
/// Defaults are the strict, standard-SQL answer: a new backend fills in only what
/// differs, and every `false` it sets is a documented gap, not a weakened test.
///
/// ```
/// use extdata_conformance::{Capabilities, TypeCase};
/// use extdata_core::Value;
/// let caps = Capabilities::new()
///     .with_type_case(TypeCase::exact("BIGINT", [Value::I64(-1), Value::I64(i64::MAX)]))
///     .with_sleep_sql(|secs| format!("SELECT pg_sleep({secs})"))
///     .with_series_sql(|n| format!("SELECT generate_series(1, {n}) AS n"));
/// assert!(caps.sleep_sql.is_some());
/// ```
#[derive(Clone)]
pub struct Capabilities {
    /// Type of the integer `id` columns the cases create (default `INTEGER`).
    pub integer_type: String,
    /// Type of the text columns the cases create (default `TEXT`); must hold long
    /// Unicode strings.
    pub text_type: String,
    /// Column types and the values that round-trip through them. Must not be empty.
    pub type_cases: Vec<TypeCase>,
    /// `CREATE TABLE` for `(table, [(column, type)])`; columns must accept NULL
    /// (default: `CREATE TABLE t (c1 T1, …)`).
    pub create_table: fn(&str, &[(&str, &str)]) -> String,
    /// Drops a table, without failing when it is missing (default `DROP TABLE IF EXISTS t`).
    pub drop_table: fn(&str) -> String,
    /// Turns a select list into a query (default `SELECT {list}`; Oracle adds `FROM dual`).
    pub select: fn(&str) -> String,
    /// The expression of a text parameter named `name` in a select list (default
    /// `:name`; a server that cannot infer a parameter's type may need a `CAST`).
    pub text_parameter: fn(&str) -> String,
    /// A query that runs at least `secs` seconds unless cancelled (`None`: the backend
    /// cannot express one and the timeout cases are skipped).
    pub sleep_sql: Option<fn(u64) -> String>,
    /// A query returning one integer column named `n` with the values `1..=count` in
    /// that order (default: a standard recursive CTE).
    pub series_sql: fn(u64) -> String,
    /// Whether the first row of a billion-row series arrives long before the series is
    /// complete (the server streams and the backend does not buffer).
    pub streams_lazily: bool,
    /// Rows streamed by the streaming case (default 200 000).
    pub stream_rows: u64,
    /// Asks the server whether a query is still running; lets the timeout case check
    /// that the query was cancelled on the server, not only abandoned by the client.
    pub running_probe: Option<RunningProbe>,
    /// Timeouts in a row that must leave the pool serving (default 20; the case uses a
    /// pool of 2 connections, so a leaked connection per timeout is caught).
    pub timeout_repeats: usize,
    /// Whether `execute` returns the number of rows affected.
    pub reports_affected_rows: bool,
    /// Whether `UPDATE` and `DELETE` are supported.
    pub supports_update: bool,
    /// Whether a `read_only` connector refuses writes with [`ErrorKind::ReadOnly`](extdata_core::ErrorKind::ReadOnly).
    pub read_only_enforced: bool,
    /// Whether the backend authenticates with a password (wrong-password case).
    pub has_passwords: bool,
    /// Whether text may contain U+0000.
    pub text_allows_nul: bool,
    /// Whether the server stores `''` as NULL (Oracle).
    pub empty_string_is_null: bool,
    /// Whether `describe` and result columns report each column's [`Value`] variant
    /// (false: the server does not say before the values arrive).
    pub describe_reports_kinds: bool,
    /// The SQLSTATE a duplicate key is reported with (`None`: not checked); the batch
    /// cases check it on the error of a batch that repeats a key.
    pub unique_violation_sql_state: Option<String>,
    /// Slack on top of a batch's 1 s timeout before the timed-out call must have
    /// returned (default 1 s; stopping and rolling back may take a server longer).
    pub batch_timeout_slack: Duration,
    /// Statements in the backend's own dialect that start, end or implicitly commit a
    /// transaction, which a batch that [`batches_are_atomic`](extdata_core::ExternalSource::batches_are_atomic)
    /// must refuse before running anything (checked in addition to `BEGIN`, `COMMIT`
    /// and `ROLLBACK`, which every such backend must refuse).
    pub batch_transaction_control: Vec<String>,
    /// Extra time the server may take to answer `SELECT 1` after the cases' cancelled
    /// or failed work (default none). Spark's Thrift server stops cancelled tasks in the
    /// background, and its next job waits for their task slots on a busy machine.
    pub recovery_slack: Duration,
}

/// An exact decimal [`Value`] from its text (for type cases); panics on a typo.
pub fn decimal(text: &str) -> Value {
    Value::Decimal(text.parse().expect("decimal literal"))
}

/// Setters that store their argument as it is: `$setter(value)` sets `$field`.
macro_rules! setters {
    ($($(#[$doc:meta])* $setter:ident => $field:ident: $ty:ty;)+) => {
        $(
            $(#[$doc])*
            pub fn $setter(mut self, $field: $ty) -> Self {
                self.$field = $field;
                self
            }
        )+
    };
}

impl Capabilities {
    /// The strict defaults; see each field.
    pub fn new() -> Self {
        Capabilities {
            integer_type: "INTEGER".to_owned(),
            text_type: "TEXT".to_owned(),
            type_cases: Vec::new(),
            create_table: default_create_table,
            drop_table: default_drop_table,
            select: default_select,
            text_parameter: default_text_parameter,
            sleep_sql: None,
            series_sql: default_series_sql,
            streams_lazily: true,
            stream_rows: 200_000,
            running_probe: None,
            timeout_repeats: 20,
            reports_affected_rows: true,
            supports_update: true,
            read_only_enforced: true,
            has_passwords: true,
            text_allows_nul: true,
            empty_string_is_null: false,
            describe_reports_kinds: true,
            unique_violation_sql_state: None,
            batch_timeout_slack: Duration::from_secs(1),
            batch_transaction_control: Vec::new(),
            recovery_slack: Duration::ZERO,
        }
    }

    /// Sets the type of integer `id` columns.
    pub fn with_integer_type(mut self, sql_type: impl Into<String>) -> Self {
        self.integer_type = sql_type.into();
        self
    }

    /// Sets the type of text columns.
    pub fn with_text_type(mut self, sql_type: impl Into<String>) -> Self {
        self.text_type = sql_type.into();
        self
    }

    /// Adds a type case.
    pub fn with_type_case(mut self, case: TypeCase) -> Self {
        self.type_cases.push(case);
        self
    }

    /// Adds several type cases.
    pub fn with_type_cases(mut self, cases: impl IntoIterator<Item = TypeCase>) -> Self {
        self.type_cases.extend(cases);
        self
    }

    setters! {
        /// Sets the `CREATE TABLE` spelling.
        with_create_table => create_table: fn(&str, &[(&str, &str)]) -> String;
        /// Sets the `DROP TABLE` spelling.
        with_drop_table => drop_table: fn(&str) -> String;
        /// Sets how a select list becomes a query.
        with_select => select: fn(&str) -> String;
        /// Sets how a text parameter is written in a select list.
        with_text_parameter => text_parameter: fn(&str) -> String;
        /// Sets the series query.
        with_series_sql => series_sql: fn(u64) -> String;
        /// Sets whether the first row of a huge result arrives early.
        with_streams_lazily => streams_lazily: bool;
        /// Sets the number of rows of the streaming case.
        with_stream_rows => stream_rows: u64;
        /// Sets how many timeouts in a row must leave the pool serving.
        with_timeout_repeats => timeout_repeats: usize;
        /// Sets whether `execute` reports rows affected.
        with_reports_affected_rows => reports_affected_rows: bool;
        /// Sets whether `UPDATE`/`DELETE` are supported.
        with_supports_update => supports_update: bool;
        /// Sets whether `read_only` is enforced.
        with_read_only_enforced => read_only_enforced: bool;
        /// Sets whether the backend authenticates with a password.
        with_passwords => has_passwords: bool;
        /// Sets whether text may contain U+0000.
        with_text_allows_nul => text_allows_nul: bool;
        /// Sets whether `''` is stored as NULL.
        with_empty_string_is_null => empty_string_is_null: bool;
        /// Sets whether column descriptions carry value kinds.
        with_describe_reports_kinds => describe_reports_kinds: bool;
        /// Sets the extra time `SELECT 1` may take after cancelled or failed work.
        with_recovery_slack => recovery_slack: Duration;
        /// Sets the slack allowed on top of a timed-out batch's timeout.
        with_batch_timeout_slack => batch_timeout_slack: Duration;
    }

    /// Sets the long-running query.
    pub fn with_sleep_sql(mut self, sleep: fn(u64) -> String) -> Self {
        self.sleep_sql = Some(sleep);
        self
    }

    /// Sets the "is this query still running on the server" probe.
    ///
    /// ```
    /// use extdata_conformance::Capabilities;
    /// use extdata_core::{QueryOptions, Statement};
    /// let caps = Capabilities::new().with_running_probe(|source, marker| async move {
    ///     let probe = Statement::new(
    ///         "SELECT count(*) AS n FROM pg_stat_activity \
    ///          WHERE query LIKE :pattern AND pid <> pg_backend_pid()",
    ///     )
    ///     .bind("pattern", format!("%{marker}%"));
    ///     let rows = source.query(&probe, &QueryOptions::default()).await?;
    ///     Ok(rows.rows[0].get(0).and_then(|v| v.as_i64()) != Some(0))
    /// });
    /// assert!(caps.running_probe.is_some());
    /// ```
    pub fn with_running_probe<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn(Arc<dyn ExternalSource>, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool>> + Send + 'static,
    {
        self.running_probe = Some(Arc::new(move |source, marker| {
            Box::pin(probe(source, marker)) as BoxFuture<'static, Result<bool>>
        }));
        self
    }

    /// Sets the SQLSTATE of a duplicate-key error.
    pub fn with_unique_violation_sql_state(mut self, sql_state: impl Into<String>) -> Self {
        self.unique_violation_sql_state = Some(sql_state.into());
        self
    }

    /// Adds dialect-specific statements an atomic batch must refuse.
    pub fn with_batch_transaction_control<S: Into<String>>(
        mut self,
        statements: impl IntoIterator<Item = S>,
    ) -> Self {
        self.batch_transaction_control
            .extend(statements.into_iter().map(Into::into));
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new()
    }
}

extdata_core::debug_fields!(Capabilities |caps| {
    integer_type,
    text_type,
    type_cases: caps.type_cases.len(),
    sleep_sql: caps.sleep_sql.map(|sleep| sleep(30)),
    series_sql: (caps.series_sql)(3),
    streams_lazily,
    stream_rows,
    running_probe: caps.running_probe.is_some(),
    timeout_repeats,
    recovery_slack,
    reports_affected_rows,
    supports_update,
    read_only_enforced,
    has_passwords,
    text_allows_nul,
    empty_string_is_null,
    describe_reports_kinds,
    unique_violation_sql_state,
    batch_timeout_slack,
    batch_transaction_control,
    ..
});

fn default_create_table(table: &str, columns: &[(&str, &str)]) -> String {
    let columns: Vec<String> = columns
        .iter()
        .map(|(name, sql_type)| format!("{name} {sql_type}"))
        .collect();
    format!("CREATE TABLE {table} ({})", columns.join(", "))
}

fn default_drop_table(table: &str) -> String {
    format!("DROP TABLE IF EXISTS {table}")
}

fn default_select(list: &str) -> String {
    format!("SELECT {list}")
}

fn default_text_parameter(name: &str) -> String {
    format!(":{name}")
}

fn default_series_sql(count: u64) -> String {
    format!(
        "WITH RECURSIVE series(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM series \
         WHERE n < {count}) SELECT n FROM series"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_create_table_lists_columns_in_order() {
        let caps = Capabilities::new();
        assert_eq!(
            (caps.create_table)("t1", &[("id", "INTEGER"), ("v", "TEXT")]),
            "CREATE TABLE t1 (id INTEGER, v TEXT)"
        );
    }

    #[test]
    fn builder_overrides_only_what_it_sets() {
        let caps = Capabilities::new()
            .with_passwords(false)
            .with_type_case(TypeCase::exact("REAL", [Value::F64(1.5)]));
        assert!(!caps.has_passwords);
        assert!(caps.reports_affected_rows);
        assert_eq!(caps.type_cases[0].values[0].1, Value::F64(1.5));
    }
}
