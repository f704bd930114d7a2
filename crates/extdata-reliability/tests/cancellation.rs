//! The cancellation table: for every live backend, a query that outlives its timeout
//! is gone from the server's own view of what runs within 1 s of the call returning,
//! and the next query on the same source succeeds.
//!
//! Each test prints one `cancel-row:` line (the row of RELIABILITY.md's table):
//! repeats, the worst time the call took past its timeout, the worst time until the
//! server's view showed the query gone, the worst time of the next query.

mod support;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use extdata::{
    ConnectorConfig, DbKind, ErrorKind, ExternalSource, PoolConfig, QueryOptions, Statement,
};
use extdata_conformance::support::{block_on, expect_kind, ok, unique_name};
use extdata_reliability::{Backend, hive_cancelled_jobs, source};

/// The cases measure wall-clock times: one at a time.
fn exclusive() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const REPEATS: usize = 3;
const GONE_WITHIN: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Worst {
    past_timeout: Duration,
    gone: Duration,
    next: Duration,
}

impl Worst {
    fn add(&mut self, past_timeout: Duration, gone: Duration, next: Duration) {
        self.past_timeout = self.past_timeout.max(past_timeout);
        self.gone = self.gone.max(gone);
        self.next = self.next.max(next);
    }

    fn print(&self, backend: &str, view: &str, repeats: usize) {
        eprintln!(
            "cancel-row: | {backend} | {view} | {repeats} | {:.0} ms | {:.0} ms | {:.0} ms |",
            self.past_timeout.as_secs_f64() * 1e3,
            self.gone.as_secs_f64() * 1e3,
            self.next.as_secs_f64() * 1e3,
        );
    }
}

fn small_pool(config: ConnectorConfig, size: i64) -> ConnectorConfig {
    config.with_pool(PoolConfig {
        max_size: Some(size.into()),
        ..PoolConfig::default()
    })
}

/// `SELECT 1` on `source`, timed.
async fn next_query(source: &Arc<dyn ExternalSource>) -> Duration {
    let started = Instant::now();
    let rows = ok(
        source
            .query(&Statement::new("SELECT 1"), &QueryOptions::default())
            .await,
        "the next query after a timeout",
    );
    assert_eq!(rows.rows.len(), 1);
    started.elapsed()
}

/// How long until `still_there` answers no (asked every 20 ms); fails, saying `what`,
/// when it still answers yes [`GONE_WITHIN`] after the call's timeout returned.
async fn time_until_gone(what: &str, mut still_there: impl AsyncFnMut() -> bool) -> Duration {
    let gone_since = Instant::now();
    while still_there().await {
        assert!(
            gone_since.elapsed() < GONE_WITHIN,
            "{what} {GONE_WITHIN:?} after its timeout returned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gone_since.elapsed()
}

/// PostgreSQL, MariaDB, ClickHouse: the activity view asked over SQL by an observer.
async fn activity_view_case(backend: Backend, view: &str) {
    let Some(server) = backend.server() else {
        return;
    };
    // One connection: the next query must run on the connection that timed out.
    let victim = source(&small_pool(server.config(), 1));
    let observer = source(&server.config());
    ok(victim.ping().await, "warm-up");
    let timeout = Duration::from_secs(1);
    let mut worst = Worst::default();
    for _ in 0..REPEATS {
        let marker = unique_name("cancel");
        let statement = Statement::new(backend.sleep_sql(30, &marker));
        let started = Instant::now();
        let call = tokio::spawn({
            let victim = Arc::clone(&victim);
            async move {
                victim
                    .query(&statement, &QueryOptions::default().with_timeout(timeout))
                    .await
            }
        });
        let mut seen = false;
        while !call.is_finished() {
            seen |= ok(backend.running(observer.as_ref(), &marker).await, "probe");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let returned = started.elapsed();
        expect_kind(call.await.expect("task"), ErrorKind::Timeout, "query");
        assert!(seen, "the query was never seen running on the server");
        let gone = time_until_gone("the query still runs on the server", async || {
            ok(backend.running(observer.as_ref(), &marker).await, "probe")
        })
        .await;
        worst.add(
            returned.saturating_sub(timeout),
            gone,
            next_query(&victim).await,
        );
    }
    worst.print(backend.kind(), view, REPEATS);
}

support::tests! {
    postgres_query_is_gone_from_pg_stat_activity_within_1s =>
        activity_view_test(Backend::Postgres, "pg_stat_activity");
    mariadb_query_is_gone_from_the_processlist_within_1s =>
        activity_view_test(Backend::MySql, "information_schema.PROCESSLIST");
    clickhouse_query_is_gone_from_system_processes_within_1s =>
        activity_view_test(Backend::ClickHouse, "system.processes");
    clickhouse26_query_is_gone_from_system_processes_within_1s =>
        activity_view_test(Backend::ClickHouse26, "system.processes");
}

/// [`activity_view_case`], alone among the timing cases.
fn activity_view_test(backend: Backend, view: &str) {
    let _one = exclusive();
    block_on(activity_view_case(backend, view));
}

/// Spark's Thrift server has no activity view over SQL: its log says when the
/// executor killed the tasks of the cancelled job. On each transport: binary (SASL
/// PLAIN), HTTP, and HTTP over TLS with LDAP.
fn hive_case(backend: Backend) {
    let _one = exclusive();
    block_on(async {
        let Some(server) = backend.server() else {
            return;
        };
        if hive_cancelled_jobs(backend).is_none() {
            // Without the log the server-side cancel cannot be observed here.
            extdata_conformance::require_or_skip::<()>(
                backend.service(),
                format!("the {} server's log is not readable", backend.kind()),
            );
            return;
        }
        let victim = source(&small_pool(server.config(), 1));
        ok(victim.ping().await, "warm-up");
        // A short job of the same shape: the server has planned and compiled it once,
        // so the measured job starts within the timeout. A cancel that reaches Spark
        // while it still plans a statement does not stop the job submitted after it
        // (its job group is cancelled without future jobs): the job then runs to its
        // end and holds the task slots.
        ok(
            victim
                .query(
                    &Statement::new(backend.sleep_sql(0, "warm-up")),
                    &QueryOptions::default(),
                )
                .await,
            "a short job",
        );
        // Spark needs a moment to plan and start the job: 2 s, not 1 s.
        let timeout = Duration::from_secs(2);
        let mut worst = Worst::default();
        let repeats = 2;
        for _ in 0..repeats {
            let killed_before = killed_tasks(backend);
            let started = Instant::now();
            expect_kind(
                victim
                    .query(
                        &Statement::new(backend.sleep_sql(60, &unique_name("cancel"))),
                        &QueryOptions::default().with_timeout(timeout),
                    )
                    .await,
                ErrorKind::Timeout,
                "a 60 s job with a 2 s timeout",
            );
            let returned = started.elapsed();
            let gone = time_until_gone("no task of the job was killed", async || {
                killed_tasks(backend) <= killed_before
            })
            .await;
            worst.add(
                returned.saturating_sub(timeout),
                gone,
                next_query(&victim).await,
            );
        }
        worst.print(
            backend.kind(),
            "server log: executor killed the job's tasks",
            repeats,
        );
    });
}

support::tests! {
    hive_job_is_killed_on_the_server_within_1s => hive_case(Backend::Hive);
    hive_http_job_is_killed_on_the_server_within_1s => hive_case(Backend::HiveHttp);
    hive_https_job_is_killed_on_the_server_within_1s => hive_case(Backend::HiveHttps);
}

/// Tasks the Spark executor of `backend`'s server killed so far (its log).
fn killed_tasks(backend: Backend) -> usize {
    backend
        .server_log()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|log| log.matches("Executor killed task").count())
        .unwrap_or(0)
}

/// SQLite runs in-process: the interrupt stops the statement on its connection, which
/// the next query (on a one-connection pool) can only use once the statement is gone.
#[test]
fn sqlite_statement_is_interrupted_and_the_connection_free_within_1s() {
    let _one = exclusive();
    block_on(async {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("cancel.db");
        let config = small_pool(
            ConnectorConfig::new("rel-sqlite", DbKind::Sqlite)
                .with_database(path.to_string_lossy().into_owned())
                .with_options("mode=rwc"),
            1,
        );
        let victim = source(&config);
        ok(victim.ping().await, "warm-up");
        let timeout = Duration::from_secs(1);
        let endless = Statement::new(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
             SELECT count(*) FROM c",
        );
        let mut worst = Worst::default();
        for _ in 0..REPEATS {
            let started = Instant::now();
            expect_kind(
                victim
                    .query(&endless, &QueryOptions::default().with_timeout(timeout))
                    .await,
                ErrorKind::Timeout,
                "an endless statement",
            );
            let returned = started.elapsed();
            let next = next_query(&victim).await;
            assert!(next < GONE_WITHIN, "the connection was busy for {next:?}");
            // The next query ran on the interrupted connection: the statement was gone
            // by the time it started.
            worst.add(returned.saturating_sub(timeout), next, next);
        }
        worst.print(
            "sqlite",
            "sqlite3_interrupt; next query on the same connection",
            REPEATS,
        );
    });
}
