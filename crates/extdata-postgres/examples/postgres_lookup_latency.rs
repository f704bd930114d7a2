//! Latency of a point lookup (one row, one bound parameter) through a warm pool, for
//! a writable and a `read_only` connector: the cost of the per-call read-only
//! transaction and session reset.
//!
//! ```sh
//! set -a; . .services/env; set +a
//! cargo run --release -p extdata-postgres --example postgres_lookup_latency -- 2000
//! ```
//!
//! Reads the server from `EXTDATA_TEST_POSTGRES_{HOST,PORT,DATABASE,USER,PASSWORD}`.

use std::time::{Duration, Instant};

use extdata_core::{ConnectorConfig, DbKind, ExternalSource, QueryOptions, Statement};
use extdata_postgres::{PostgresSource, SPEC};

fn env(name: &str) -> String {
    std::env::var(format!("EXTDATA_TEST_POSTGRES_{name}"))
        .unwrap_or_else(|_| panic!("EXTDATA_TEST_POSTGRES_{name} is not set"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> extdata_core::Result<()> {
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(2000, |n| n.parse().expect("number of calls"));
    let rounds = 3;
    let table = "ect_lookup_latency";
    let base = || {
        ConnectorConfig::new("lookup", DbKind::Postgres)
            .with_host(env("HOST"))
            .with_port(env("PORT").parse::<u16>().expect("port"))
            .with_database(env("DATABASE"))
            .with_username(env("USER"))
            .with_password(env("PASSWORD"))
    };
    let writer = PostgresSource::build(base().validate_with(Some(&SPEC))?)?;
    for sql in [
        format!("DROP TABLE IF EXISTS {table}"),
        format!("CREATE TABLE {table} (id int PRIMARY KEY, email text, score numeric)"),
        format!(
            "INSERT INTO {table} SELECT g, 'user' || g || '@example.com', g * 1.5 \
             FROM generate_series(1, 10000) g"
        ),
        format!("ANALYZE {table}"),
    ] {
        writer
            .execute(&Statement::new(sql.as_str()), &QueryOptions::default())
            .await?;
    }
    let sources = [
        (
            "writable",
            PostgresSource::build(base().validate_with(Some(&SPEC))?)?,
        ),
        (
            "read_only",
            PostgresSource::build(base().with_read_only(true).validate_with(Some(&SPEC))?)?,
        ),
    ];
    let lookup = format!("SELECT id, email, score FROM {table} WHERE id = :id");
    // Alternate the sources round by round, so that both see the same machine load.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); sources.len()];
    for round in 0..rounds {
        for (index, (_, source)) in sources.iter().enumerate() {
            let warm_up: i32 = if round == 0 { 500 } else { 50 };
            for i in 0..warm_up {
                let statement = Statement::new(lookup.as_str()).bind("id", i % 10000 + 1);
                source.query(&statement, &QueryOptions::default()).await?;
            }
            for i in 0..calls {
                let id = (i * 7919 % 10000 + 1) as i32;
                let statement = Statement::new(lookup.as_str()).bind("id", id);
                let started = Instant::now();
                let rows = source.query(&statement, &QueryOptions::default()).await?;
                samples[index].push(started.elapsed());
                assert_eq!(rows.rows.len(), 1);
            }
        }
    }
    for (name, source) in &sources {
        println!("{name:>9}: pool afterwards {:?}", source.pool_state());
    }
    for ((name, _), mut times) in sources.iter().zip(samples) {
        times.sort();
        println!(
            "{name:>9}: {} calls, p50 {:>4} µs, p99 {:>4} µs, p99.9 {:>5} µs",
            times.len(),
            percentile(&times, 0.50).as_micros(),
            percentile(&times, 0.99).as_micros(),
            percentile(&times, 0.999).as_micros(),
        );
    }
    writer
        .execute(
            &Statement::new(format!("DROP TABLE {table}")),
            &QueryOptions::default(),
        )
        .await?;
    Ok(())
}
