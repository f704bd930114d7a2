//! Fixtures shared by the jobs tests: a folder with a config file and SQLite databases,
//! a source wrapper that counts (and delays or fails) queries, server connectors from the
//! test environment, and small SQL helpers.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use extdata::{
    Column, DbKind, Error, ErrorKind, ExternalSource, QueryOptions, Result, ResultSet, RowStream,
    ServerInfo, Statement, async_trait,
};
pub use extdata_conformance::support::{
    SQLITE_ACCOUNTS as SQLITE_CONNECTORS, assert_contains_all, config_entry,
};
use extdata_conformance::support::{postgres_from_env, server_toml};
use extdata_jobs::{ImportSummary, Jobs, Stop};
use futures::StreamExt as _;
use tempfile::TempDir;

/// Wraps a source for the jobs tests: counts the queries and streams that reach the
/// database, after an optional delay, and fails the first `failures` streams with an
/// error of `kind` (temporary when the kind is), each after `after_rows` rows of the
/// real result. With `calls`, records the account each query, stream and batch is made
/// for ([`extdata::current_account`], the `account` label of its metrics).
#[derive(Debug)]
pub struct Counting {
    pub inner: Arc<dyn ExternalSource>,
    pub queries: Arc<AtomicUsize>,
    pub delay: Duration,
    pub failures: Arc<AtomicUsize>,
    pub kind: ErrorKind,
    pub after_rows: usize,
    pub calls: Option<Calls>,
}

/// The calls a [`Counting`] source recorded: (connector, `<operation> for <account>`).
pub type Calls = Arc<Mutex<Vec<(String, String)>>>;

impl Counting {
    /// A source that only counts (and, with `calls`, records) what passes through.
    fn passing(inner: Arc<dyn ExternalSource>, queries: Arc<AtomicUsize>) -> Self {
        Counting {
            inner,
            queries,
            delay: Duration::ZERO,
            failures: Arc::new(AtomicUsize::new(0)),
            kind: ErrorKind::Internal,
            after_rows: 0,
            calls: None,
        }
    }

    fn record(&self, operation: &str) {
        if let Some(calls) = &self.calls {
            let account =
                extdata::current_account().map_or_else(|| "-".to_owned(), |a| a.to_string());
            calls.lock().unwrap().push((
                self.inner.name().to_owned(),
                format!("{operation} for {account}"),
            ));
        }
    }
}

#[async_trait]
impl ExternalSource for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> DbKind {
        self.inner.kind()
    }
    async fn ping(&self) -> Result<ServerInfo> {
        self.inner.ping().await
    }
    async fn query(&self, statement: &Statement, options: &QueryOptions) -> Result<ResultSet> {
        self.record("query");
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.inner.query(statement, options).await
    }
    async fn stream(&self, statement: &Statement, options: &QueryOptions) -> Result<RowStream> {
        self.record("stream");
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let error = || Error::new(self.kind, "connection reset by the test");
        if !fail {
            return self.inner.stream(statement, options).await;
        }
        if self.after_rows == 0 {
            return Err(error());
        }
        let inner = self.inner.stream(statement, options).await?;
        let columns = inner.columns().clone();
        let rows = inner
            .take(self.after_rows)
            .chain(futures::stream::once(std::future::ready(Err(error()))));
        Ok(RowStream::new(columns, rows))
    }
    async fn execute(&self, statement: &Statement, options: &QueryOptions) -> Result<u64> {
        self.inner.execute(statement, options).await
    }
    async fn execute_batch(
        &self,
        statements: &[Statement],
        options: &QueryOptions,
    ) -> Result<Vec<u64>> {
        self.record("execute_batch");
        self.inner.execute_batch(statements, options).await
    }
    fn batches_are_atomic(&self) -> bool {
        self.inner.batches_are_atomic()
    }
    async fn describe(&self, statement: &Statement, options: &QueryOptions) -> Result<Vec<Column>> {
        self.inner.describe(statement, options).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

pub fn counting(jobs: Jobs, delay: Duration) -> (Jobs, Arc<AtomicUsize>) {
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = queries.clone();
    let jobs = jobs.with_source_layer(Arc::new(move |inner| {
        Arc::new(Counting {
            delay,
            ..Counting::passing(inner, counter.clone())
        }) as Arc<dyn ExternalSource>
    }));
    (jobs, queries)
}

/// `jobs` whose sources record the account of each call ([`Counting::calls`]).
pub fn recording(jobs: Jobs) -> (Jobs, Calls) {
    let calls: Calls = Arc::default();
    let recorded = calls.clone();
    let jobs = jobs.with_source_layer(Arc::new(move |inner| {
        Arc::new(Counting {
            calls: Some(recorded.clone()),
            ..Counting::passing(inner, Arc::default())
        }) as Arc<dyn ExternalSource>
    }));
    (jobs, calls)
}

/// A folder with the SQLite databases the tests' connectors name (`crm.db`, `other.db`,
/// `src.db`; empty until a test fills them) and a config file written per test.
pub struct Fixture {
    _dir: TempDir,
    pub dir: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        // Connectors open existing files only; an empty file is an empty database.
        for name in ["crm.db", "other.db", "src.db"] {
            std::fs::write(path.join(name), "").unwrap();
        }
        Fixture {
            _dir: dir,
            dir: path,
        }
    }

    pub fn jobs(&self, body: &str) -> Jobs {
        let config = self.dir.join("extdata.toml");
        std::fs::write(&config, format!("{SQLITE_CONNECTORS}\n{body}")).unwrap();
        Jobs::from_path(&config).unwrap_or_else(|p| panic!("invalid config:\n{p}"))
    }

    /// [`Fixture::jobs`] with the orders of [`seed_orders`] in `crm`.
    pub async fn seeded(&self, body: &str) -> Jobs {
        let jobs = self.jobs(body);
        seed_orders(&jobs).await;
        jobs
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Account 9 over its connector `src` (a server's, in [`source_account`]).
pub const SRC: (&str, &str) = ("9", "src");

/// `connector` (a `[[connectors]]` entry named `src`) owned by account 9.
pub fn source_account(connector: &str) -> String {
    format!("{connector}\n[[accounts]]\nid = \"9\"\nconnectors = [\"src\"]\n")
}

/// Account 42 over its connector `crm` (the seeded orders).
pub const CRM: (&str, &str) = ("42", "crm");

/// Account 7 over its connector `other` (`other.db`).
pub const OTHER: (&str, &str) = ("7", "other");

/// An import of the seeded orders (account 42) in `created_at` order, keyed by `id`,
/// reading `columns`; `fields` are its other lines (at least its `sink`).
pub fn orders_import(name: &str, columns: &str, fields: &str) -> String {
    orders_import_of(CRM, name, columns, fields)
}

/// [`orders_import`] of another (account, connector).
pub fn orders_import_of(owner: (&str, &str), name: &str, columns: &str, fields: &str) -> String {
    config_entry(
        "imports",
        name,
        owner,
        &format!("SELECT {columns} FROM orders WHERE created_at >= :cursor ORDER BY created_at"),
        &format!("key = \"id\"\ncursor = {{ column = \"created_at\", initial = 0 }}\n{fields}"),
    )
}

/// A new folder whose jobs hold the [`orders_import`] `name` over the seeded orders.
pub async fn seeded_import(name: &str, columns: &str, fields: &str) -> (Fixture, Jobs) {
    let fixture = Fixture::new();
    let jobs = fixture.seeded(&orders_import(name, columns, fields)).await;
    (fixture, jobs)
}

/// The `sink` line of an import into `table` of the PostgreSQL test server.
pub fn pg_sink(table: &str) -> String {
    format!(
        "sink = {{ type = \"postgresql\", url = {{ env = \"EXTDATA_TEST_POSTGRES_URL\" }}, table = \"{table}\" }}"
    )
}

/// The problems `Jobs::from_path` reports for a file holding `text`.
pub fn config_problems(text: &str) -> String {
    let fixture = Fixture::new();
    let config = fixture.path("extdata.toml");
    std::fs::write(&config, text).unwrap();
    Jobs::from_path(&config).unwrap_err().to_string()
}

/// Runs import `name` once, for no particular account, never stopped.
pub async fn try_import(jobs: &Jobs, name: &str) -> Result<ImportSummary> {
    jobs.run_import(None, name, Stop::never(), &|_| {}).await
}

/// [`try_import`] that must succeed.
pub async fn import(jobs: &Jobs, name: &str) -> ImportSummary {
    try_import(jobs, name)
        .await
        .unwrap_or_else(|e| panic!("import `{name}`: {e}"))
}

pub async fn sql(source: &dyn ExternalSource, text: &str) {
    source
        .execute(&Statement::new(text), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"));
}

pub async fn rows(source: &dyn ExternalSource, text: &str) -> Vec<String> {
    source
        .query(&Statement::new(text), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .rows
        .iter()
        .map(|r| {
            r.values()
                .iter()
                .map(|v| v.to_text_lossless())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// The SQLite file `path` as a source, created when missing (`mode=rwc`): to set a
/// database up, or to read what a sink wrote.
pub fn sqlite_file(path: &Path) -> Arc<dyn ExternalSource> {
    extdata::connect(
        &extdata::ConnectorConfig::new("check", DbKind::Sqlite)
            .with_database(path.to_string_lossy())
            .with_options("mode=rwc"),
    )
    .unwrap()
}

pub async fn seed_orders(jobs: &Jobs) {
    seed_orders_of(
        jobs,
        CRM,
        "(1,'a@x.io',500,1),(2,'a@x.io',700,2),(3,'b@x.io',100,3),(4,'c@x.io',2000,4)",
    )
    .await;
}

/// Creates `orders (id, email, total, created_at)` holding `values` (`(1,'a@x.io',500,1),
/// …`) in the database of (account, connector) `owner`.
pub async fn seed_orders_of(jobs: &Jobs, (account, connector): (&str, &str), values: &str) {
    let source = jobs.registry().source(account, connector).unwrap();
    sql(
        source.as_ref(),
        "CREATE TABLE orders (id INTEGER, email TEXT, total INTEGER, created_at INTEGER)",
    )
    .await;
    sql(
        source.as_ref(),
        &format!("INSERT INTO orders VALUES {values}"),
    )
    .await;
}

pub fn server_connector(prefix: &str, kind: &str, db_type: &str, extra: &str) -> Option<String> {
    let fields = server_toml(prefix, kind, db_type)?;
    Some(format!(
        "[[connectors]]\nname = \"src\"\n{fields}password = {{ env = \"EXTDATA_TEST_{prefix}_PASSWORD\" }}\nconnect_timeout = \"10s\"\n{extra}"
    ))
}

/// The PostgreSQL test server as a source (for checking what a sink wrote).
pub fn test_postgres() -> Arc<dyn ExternalSource> {
    let (config, policy) = postgres_from_env("pg");
    extdata::connect_with_policy(&config, &policy).unwrap()
}

/// Wraps every source of `jobs` in a [`Counting`] that fails `failures` streams; returns
/// the jobs, the failures left and the streams (and queries) opened.
pub fn flaky(
    jobs: Jobs,
    failures: usize,
    kind: ErrorKind,
    after_rows: usize,
) -> (Jobs, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let left = Arc::new(AtomicUsize::new(failures));
    let streams = Arc::new(AtomicUsize::new(0));
    let (l, s) = (left.clone(), streams.clone());
    let jobs = jobs.with_source_layer(Arc::new(move |inner| {
        Arc::new(Counting {
            failures: l.clone(),
            kind,
            after_rows,
            ..Counting::passing(inner, s.clone())
        }) as Arc<dyn ExternalSource>
    }));
    (jobs, left, streams)
}
