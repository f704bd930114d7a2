//! Latency of the lookup path: a single-row query with one bound parameter on a warm
//! pool, 2 000 calls per round; prints the median and the 99th percentile of each round.
//!
//! `cargo run --release -p extdata-sqlite --example sqlite_lookup_latency [rounds]`

use std::time::{Duration, Instant};

use extdata_core::{ConnectorConfig, DbKind, ExternalSource, QueryOptions, Statement};
use extdata_sqlite::{SPEC, SqliteSource};

const CALLS: usize = 2_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> extdata_core::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("lookup.db");
    let path = path.to_str().expect("UTF-8 path");
    let setup = build(
        ConnectorConfig::new("setup", DbKind::Sqlite)
            .with_database(path)
            .with_options("mode=rwc"),
    )?;
    let options = QueryOptions::default();
    setup
        .execute(
            &Statement::new(
                "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT)",
            ),
            &options,
        )
        .await?;
    setup
        .execute(
            &Statement::new(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) \
                 INSERT INTO people SELECT i, 'user' || i || '@example.com', 'name ' || i FROM n",
            ),
            &options,
        )
        .await?;
    setup.close().await;

    for read_only in [false, true] {
        let mut config = ConnectorConfig::new("lookup", DbKind::Sqlite).with_database(path);
        config.read_only = read_only;
        let source = build(config)?;
        let lookup = |i: usize| {
            Statement::new("SELECT id, name FROM people WHERE email = :email")
                .bind("email", format!("user{}@example.com", i % 10_000 + 1))
        };
        for i in 0..500 {
            source.query(&lookup(i), &options).await?;
        }
        for round in 0..rounds {
            let mut times = Vec::with_capacity(CALLS);
            for i in 0..CALLS {
                let statement = lookup(i * 7);
                let started = Instant::now();
                let rows = source.query(&statement, &options).await?;
                times.push(started.elapsed());
                assert_eq!(rows.rows.len(), 1);
            }
            times.sort();
            println!(
                "read_only={read_only} round {round}: median {:>6.1} µs  p99 {:>6.1} µs",
                micros(times[CALLS / 2]),
                micros(times[CALLS * 99 / 100]),
            );
        }
        source.close().await;
    }
    Ok(())
}

fn build(config: ConnectorConfig) -> extdata_core::Result<SqliteSource> {
    SqliteSource::build(config.validate_with(Some(&SPEC))?)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
