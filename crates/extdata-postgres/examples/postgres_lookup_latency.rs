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

use extdata_conformance::latency::{self, Lookup};
use extdata_core::{ConnectorConfig, DbKind, ExternalSource, QueryOptions, Statement};
use extdata_postgres::{PostgresSource, SPEC};

fn env(name: &str) -> String {
    std::env::var(format!("EXTDATA_TEST_POSTGRES_{name}"))
        .unwrap_or_else(|_| panic!("EXTDATA_TEST_POSTGRES_{name} is not set"))
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
    let lookups: Vec<Lookup<'_>> = sources
        .iter()
        .map(|(label, source)| Lookup {
            label,
            source,
            statement: Box::new(|n| {
                Statement::new(lookup.as_str()).bind("id", (n % 10000 + 1) as i32)
            }),
        })
        .collect();
    let samples = latency::sample(&lookups, calls, rounds, 50).await?;
    for (name, source) in &sources {
        println!("{name:>9}: pool afterwards {:?}", source.pool_state());
    }
    latency::report(&lookups, &samples);
    writer
        .execute(
            &Statement::new(format!("DROP TABLE {table}")),
            &QueryOptions::default(),
        )
        .await?;
    Ok(())
}
