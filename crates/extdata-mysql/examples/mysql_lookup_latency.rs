//! Lookup latency: a single-row query with one bound parameter on a warm pool, called
//! one after another; prints the median and p99 per pool size and read-only mode.
//!
//! ```sh
//! . .services/env   # EXTDATA_TEST_MYSQL_HOST, _PORT, _USER, _PASSWORD, _DATABASE
//! cargo run --release -p extdata-mysql --example mysql_lookup_latency -- 2000
//! ```

use std::time::Instant;

use extdata_conformance::latency::quantile;
use extdata_core::{
    ConnectorConfig, DbKind, ExternalSource, PoolConfig, QueryOptions, Scalar, Statement,
};
use extdata_mysql::{MySqlSource, SPEC};

fn env(name: &str) -> String {
    std::env::var(format!("EXTDATA_TEST_MYSQL_{name}"))
        .unwrap_or_else(|_| panic!("EXTDATA_TEST_MYSQL_{name} is not set (. .services/env)"))
}

fn config(max_size: i64, read_only: bool) -> ConnectorConfig {
    ConnectorConfig::new("latency", DbKind::MySql)
        .with_host(env("HOST"))
        .with_port(env("PORT").parse().expect("port"))
        .with_username(env("USER"))
        .with_password(env("PASSWORD"))
        .with_database(env("DATABASE"))
        .with_read_only(read_only)
        .with_pool(PoolConfig {
            max_size: Some(Scalar::Int(max_size)),
            ..Default::default()
        })
}

fn source(config: ConnectorConfig) -> MySqlSource {
    let valid = config
        .validate_with(Some(&SPEC))
        .unwrap_or_else(|problems| panic!("{problems}"));
    MySqlSource::build(valid).expect("build")
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(2000, |n| n.parse().expect("number of calls"));
    let setup = source(config(2, false));
    let opts = QueryOptions::default();
    setup
        .execute(
            &Statement::new(
                "CREATE TABLE IF NOT EXISTS latency_lookup \
                 (id INT PRIMARY KEY, email VARCHAR(100)) ENGINE = InnoDB",
            ),
            &opts,
        )
        .await
        .expect("create");
    setup
        .execute(
            &Statement::new(
                "INSERT IGNORE INTO latency_lookup \
                 SELECT seq, CONCAT('user', seq, '@example.com') FROM seq_1_to_1000",
            ),
            &opts,
        )
        .await
        .expect("fill");
    setup.close().await;
    let lookup = "SELECT id, email FROM latency_lookup WHERE id = :id";
    for (max_size, read_only) in [(1, false), (1, true), (10, false), (10, true)] {
        let source = source(config(max_size, read_only));
        for id in 0..200_u32 {
            let statement = Statement::new(lookup).bind("id", id % 1000 + 1);
            source.query(&statement, &opts).await.expect("warm-up");
        }
        let mut times = Vec::with_capacity(calls);
        for call in 0..calls {
            let statement = Statement::new(lookup).bind("id", (call % 1000 + 1) as u32);
            let started = Instant::now();
            let rows = source.query(&statement, &opts).await.expect("lookup");
            times.push(started.elapsed());
            assert_eq!(rows.rows.len(), 1);
        }
        times.sort();
        println!(
            "pool {max_size:>2}, read_only {read_only:<5}: median {:>7.1} µs, p99 {:>7.1} µs ({calls} calls)",
            quantile(&times, 0.5).as_secs_f64() * 1e6,
            quantile(&times, 0.99).as_secs_f64() * 1e6,
        );
        source.close().await;
    }
}
