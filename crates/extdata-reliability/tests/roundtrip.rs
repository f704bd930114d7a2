//! Hostile strings bound as a parameter in `SELECT :p` come back byte for byte from
//! every live server (PostgreSQL and MariaDB bind on the server; ClickHouse 18.16 and
//! Hive get escaped literals).
//!
//! 200 random cases per backend in CI (100 for Hive); `EXTDATA_RELIABILITY_CASES=10000` for the long
//! run (RELIABILITY.md has its figures).

use std::time::Instant;

use extdata::{ErrorKind, QueryOptions, Statement, Value};
use extdata_conformance::support::block_on;
use extdata_reliability::{Backend, case_count, hostile_string, source};
use proptest::strategy::{Strategy as _, ValueTree as _};
use proptest::test_runner::TestRunner;

fn round_trip(backend: Backend) {
    block_on(async {
        let Some(server) = backend.server() else {
            return;
        };
        let source = source(&server.config());
        // Spark takes ~150 ms a query here: fewer cases in CI keep the run short.
        let cases = case_count(if backend == Backend::Hive { 100 } else { 200 });
        let mut runner = TestRunner::default();
        let strategy = hostile_string();
        let statement = Statement::new("SELECT :p AS p");
        let started = Instant::now();
        let (mut bytes, mut refused) = (0usize, 0usize);
        for _ in 0..cases {
            let text = strategy
                .new_tree(&mut runner)
                .expect("a generated string")
                .current();
            let result = source
                .query(
                    &statement.clone().bind("p", text.clone()),
                    &QueryOptions::default(),
                )
                .await;
            match result {
                Ok(rows) => {
                    let got = rows.rows.first().and_then(|row| row.get(0));
                    assert_eq!(
                        got,
                        Some(&Value::Text(text.clone())),
                        "{} changed the string {text:?}",
                        backend.kind()
                    );
                    bytes += text.len();
                }
                // PostgreSQL text cannot hold U+0000: refusing it is right, changing it
                // would not be.
                Err(error)
                    if backend == Backend::Postgres
                        && text.contains('\0')
                        && error.kind() == ErrorKind::Parameter =>
                {
                    refused += 1;
                }
                Err(error) => panic!("{} failed on {text:?}: {error}", backend.kind()),
            }
        }
        eprintln!(
            "measured: {} round trip: {cases} cases, {bytes} bytes back byte for byte, {refused} refused (NUL), {:?}",
            backend.kind(),
            started.elapsed()
        );
    });
}

#[test]
fn postgres_returns_hostile_strings_byte_for_byte() {
    round_trip(Backend::Postgres);
}

#[test]
fn mariadb_returns_hostile_strings_byte_for_byte() {
    round_trip(Backend::MySql);
}

#[test]
fn clickhouse_returns_hostile_strings_byte_for_byte() {
    round_trip(Backend::ClickHouse);
}

#[test]
fn clickhouse26_returns_hostile_strings_byte_for_byte() {
    round_trip(Backend::ClickHouse26);
}

#[test]
fn hive_returns_hostile_strings_byte_for_byte() {
    round_trip(Backend::Hive);
}
