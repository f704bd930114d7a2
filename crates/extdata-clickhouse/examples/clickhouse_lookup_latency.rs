//! Latency of a point lookup (one row, one bound parameter) on ClickHouse, for a result
//! without a `DateTime` column and for the same lookup returning a top-level
//! `DateTime('Zone')` column, whose zone the backend learns from the result's
//! `DESCRIBE`: the cost of that second request, in the same run.
//!
//! ```sh
//! set -a; . .services/env; set +a
//! cargo run --release -p extdata-clickhouse --example clickhouse_lookup_latency -- 1000
//! cargo run --release -p extdata-clickhouse --example clickhouse_lookup_latency -- 1000 CLICKHOUSE26
//! ```
//!
//! Reads the server from `EXTDATA_TEST_<PREFIX>_{HOST,PORT,DATABASE,USER,PASSWORD}`,
//! the prefix being the second argument (`CLICKHOUSE`, the 18.16 server, by default).

use extdata_clickhouse::{ClickHouseSource, SPEC};
use extdata_conformance::latency::{self, Lookup};
use extdata_core::{ConnectorConfig, DbKind, ExternalSource, QueryOptions, Statement};

#[tokio::main(flavor = "current_thread")]
async fn main() -> extdata_core::Result<()> {
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(1000, |n| n.parse().expect("number of calls"));
    let prefix = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "CLICKHOUSE".to_owned());
    let env = |name: &str| std::env::var(format!("EXTDATA_TEST_{prefix}_{name}")).ok();
    let mut config = ConnectorConfig::new("lookup", DbKind::ClickHouse)
        .with_host(env("HOST").expect("host"))
        .with_port(env("PORT").expect("port").parse::<u16>().expect("port"))
        .with_database(env("DATABASE").expect("database"));
    if let Some(user) = env("USER") {
        config = config.with_username(user);
    }
    if let Some(password) = env("PASSWORD") {
        config = config.with_password(password);
    }
    let source = ClickHouseSource::build(config.validate_with(Some(&SPEC))?)?;
    let rounds = 3;
    let table = "ect_lookup_latency";
    for sql in [
        format!("DROP TABLE IF EXISTS {table}"),
        format!(
            "CREATE TABLE {table} (id UInt32, email String, seen DateTime('Asia/Tokyo')) \
             ENGINE = MergeTree ORDER BY id"
        ),
        format!(
            "INSERT INTO {table} SELECT number + 1, concat('user', toString(number + 1), \
             '@example.com'), toDateTime(1700000000 + number, 'Asia/Tokyo') \
             FROM system.numbers LIMIT 10000"
        ),
    ] {
        source
            .execute(&Statement::new(sql.as_str()), &QueryOptions::default())
            .await?;
    }
    let lookups = [
        (
            "no DateTime",
            format!("SELECT id, email FROM {table} WHERE id = :id"),
        ),
        (
            "DateTime('Asia/Tokyo')",
            format!("SELECT id, email, seen FROM {table} WHERE id = :id"),
        ),
    ];
    let lookups: Vec<Lookup<'_>> = lookups
        .iter()
        .map(|(label, sql)| Lookup {
            label,
            source: &source,
            statement: Box::new(|n| {
                Statement::new(sql.as_str()).bind("id", (n % 10000 + 1) as u32)
            }),
        })
        .collect();
    let samples = latency::sample(&lookups, calls, rounds, 20).await?;
    let medians = latency::report(&lookups, &samples);
    println!(
        "p50 with the zoned column / without: {:.2}",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );
    source
        .execute(
            &Statement::new(format!("DROP TABLE {table}")),
            &QueryOptions::default(),
        )
        .await?;
    Ok(())
}
