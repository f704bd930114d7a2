//! Settings of the PostgreSQL test server (from `.services/env`, written by
//! `scripts/services.sh`) and connector builders shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use extdata_conformance::support as shared;
use extdata_core::{
    ConnectorConfig, DbKind, ExternalSource, PoolConfig, QueryOptions, Scalar, Statement, Value,
};
use extdata_postgres::{PostgresSource, SPEC};

pub use shared::TestServer;

/// The PostgreSQL test server (connectors named `pg-test`), or `None` (with the reason
/// printed) when it is not configured or not reachable and the run does not require
/// it. Panics when `EXTDATA_TEST_REQUIRE` names postgres.
pub async fn server() -> Option<TestServer> {
    TestServer::from_env(
        "pg-test",
        DbKind::Postgres,
        "POSTGRES",
        (5432, "/var/run/postgresql"),
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
pub fn source(config: ConnectorConfig) -> PostgresSource {
    PostgresSource::build(shared::validated(config, &SPEC)).expect("build")
}

/// A source whose pool holds one connection, so that every call reuses it.
pub fn one_connection(config: ConnectorConfig) -> PostgresSource {
    source(config.with_pool(PoolConfig {
        max_size: Some(Scalar::Int(1)),
        ..Default::default()
    }))
}

/// A source whose pool holds at most `max_size` connections and waits at most
/// `acquire_timeout` (e.g. `"2s"`) for a free one.
pub fn bounded_pool(
    config: ConnectorConfig,
    max_size: i64,
    acquire_timeout: &str,
) -> PostgresSource {
    source(config.with_pool(PoolConfig {
        max_size: Some(Scalar::Int(max_size)),
        acquire_timeout: Some(acquire_timeout.into()),
        ..Default::default()
    }))
}

/// The values of the first row of `statement`; panics, naming the SQL, when the query
/// fails or returns no row.
pub async fn first_row(source: &PostgresSource, statement: &Statement) -> Vec<Value> {
    let mut result = source
        .query(statement, &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", statement.sql()));
    assert!(!result.rows.is_empty(), "{}: no row", statement.sql());
    result.rows.remove(0).into_values()
}

/// The first value of the first row.
#[allow(unused_imports)] // a test file that reads no value leaves it unused
pub use shared::first_value as scalar;

/// How long until no active query whose text starts with `prefix` is left in
/// `pg_stat_activity` (polled every 20 ms); `None` when still there after `limit`.
pub async fn time_until_gone(
    observer: &PostgresSource,
    prefix: &str,
    limit: Duration,
) -> Option<Duration> {
    let count = Statement::new(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE query LIKE :pattern AND state = 'active' AND pid <> pg_backend_pid()",
    )
    .bind("pattern", format!("{prefix}%"));
    shared::time_until_none(observer, &count, limit).await
}
