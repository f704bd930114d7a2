//! Settings of the test server (from `.services/env`, written by `scripts/services.sh`)
//! and connector builders shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use extdata_conformance::support as shared;
use extdata_core::{ConnectorConfig, DbKind, ExternalSource, QueryOptions, Statement, Value};
use extdata_mysql::{MySqlSource, SPEC};

pub use shared::TestServer;

/// The MariaDB/MySQL test server (connectors named `mysql-test`), or `None` (with the reason
/// printed) when it is not configured or not reachable and the run does not require
/// it. Panics when `EXTDATA_TEST_REQUIRE` names mysql.
pub async fn server() -> Option<TestServer> {
    TestServer::from_env(
        "mysql-test",
        DbKind::MySql,
        "MYSQL",
        (3306, "/run/mysqld/mysqld.sock"),
    )
    .await
}

/// `let server = server!();` — the server, or return from the test (skipped).
#[macro_export]
macro_rules! server {
    () => {
        extdata_conformance::some_or_return!(support::server().await)
    };
}

/// Validates and builds (panics on a config mistake: tests build valid configs).
pub fn source(config: ConnectorConfig) -> MySqlSource {
    MySqlSource::build(shared::validated(config, &SPEC)).expect("build")
}

/// The first value of the first row.
pub async fn scalar(source: &MySqlSource, sql: &str) -> Value {
    shared::first_value(source, sql).await
}

/// Asserts that each named lock of `locks` is free within `within`. Named locks are
/// server-wide, and a connection closed rather than reset lets go of its locks only
/// when the server's thread for it ends, a moment after the next call may start.
pub async fn assert_locks_freed(source: &MySqlSource, locks: &[&str], within: Duration) {
    let sql = locks
        .iter()
        .map(|lock| format!("IS_FREE_LOCK('{lock}')"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!("SELECT {sql}");
    let freed = shared::eventually(within, || async {
        shared::int_of(&scalar(source, &sql).await) == Some(1)
    })
    .await;
    assert!(
        freed,
        "a named lock of {locks:?} is still held after {within:?}"
    );
}

/// Executes `sql` with the default options; panics, naming the SQL, when it fails.
pub async fn execute_sql(source: &MySqlSource, sql: &str) -> u64 {
    source
        .execute(&Statement::new(sql), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// How long until no statement whose text starts with `prefix` is left in the process
/// list (polled every 20 ms); `None` when still there after `limit`.
pub async fn time_until_gone(
    observer: &MySqlSource,
    prefix: &str,
    limit: Duration,
) -> Option<Duration> {
    let count = Statement::new(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE INFO LIKE :pattern AND ID <> CONNECTION_ID()",
    )
    .bind("pattern", format!("{prefix}%"));
    shared::time_until_none(observer, &count, limit).await
}
