//! W3: a parametrised point query (`WHERE id = :id`) through a pool of 16 connections,
//! extdata's `query` against the raw driver's own pool, at a given concurrency. On
//! PostgreSQL also against tokio-postgres, raw and with extdata's session isolation
//! sent one round trip at a time or pipelined ([`crate::pipelined`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use extdata::{ExternalSource, QueryOptions, Statement};
use sqlx::AssertSqlSafe;

use crate::backend::{Backend, COLUMNS, sqlx_options};
use crate::measure::{load, quantile};
use crate::pipelined;
use crate::stream::{self, sqlx_mysql_payload, sqlx_postgres_payload};

/// Connections in each pool.
const POOL_SIZE: u32 = 16;

/// The point query `$sql` for `$id` on the sqlx pool `$pool`, its row decoded by
/// `$payload`.
macro_rules! sqlx_lookup {
    ($pool:expr, $sql:expr, $id:expr, $payload:path) => {{
        let row = sqlx::query(AssertSqlSafe($sql.to_string()))
            .bind($id)
            .fetch_one($pool)
            .await
            .map_err(|e| e.to_string())?;
        $payload(&row).map_err(|e| e.to_string())?;
        Ok(())
    }};
}

/// One way to run the point query.
#[derive(Clone)]
enum Client {
    /// extdata's `query`; the label says whether the connector is `read_only`.
    Extdata(Arc<dyn ExternalSource>, Arc<str>, &'static str),
    SqlxPostgres(sqlx::PgPool, Arc<str>),
    SqlxMysql(sqlx::MySqlPool, Arc<str>),
    ClickHouse(Box<clickhouse::Client>, Arc<str>),
    TokioPostgres(Arc<pipelined::Pool>),
}

impl Client {
    fn label(&self) -> &'static str {
        match self {
            Client::Extdata(_, _, label) => label,
            Client::SqlxPostgres(..) | Client::SqlxMysql(..) => "sqlx pool",
            Client::ClickHouse(..) => "clickhouse crate",
            Client::TokioPostgres(pool) => pool.label(),
        }
    }

    /// One lookup; checks that exactly the row asked for came back.
    async fn lookup(&self, id: i32) -> Result<(), String> {
        match self {
            Client::Extdata(source, sql, _) => {
                let statement = Statement::new(sql.as_ref()).bind("id", id);
                let result = source
                    .query(&statement, &QueryOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
                match result.rows.as_slice() {
                    [row] if row.get(0).and_then(|v| v.as_i64()) == Some(i64::from(id)) => Ok(()),
                    _ => Err(format!("id {id}: {} rows", result.rows.len())),
                }
            }
            Client::SqlxPostgres(pool, sql) => sqlx_lookup!(pool, sql, id, sqlx_postgres_payload),
            Client::SqlxMysql(pool, sql) => sqlx_lookup!(pool, sql, id, sqlx_mysql_payload),
            Client::ClickHouse(client, sql) => {
                let row = client
                    .query(sql)
                    .bind(id)
                    .fetch_one::<stream::ClickHouseRow>()
                    .await
                    .map_err(|e| e.to_string())?;
                std::hint::black_box(row);
                Ok(())
            }
            Client::TokioPostgres(pool) => pool.lookup(id).await,
        }
    }
}

/// A sqlx pool of [`POOL_SIZE`] connections of `options`.
async fn sqlx_pool<DB: sqlx::Database>(
    options: <DB::Connection as sqlx::Connection>::Options,
) -> Result<sqlx::Pool<DB>, String> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(POOL_SIZE)
        .connect_with(options)
        .await
        .map_err(|e| e.to_string())
}

async fn raw_client(backend: Backend, rows: u64) -> Result<Client, String> {
    let server = backend.server()?;
    let table = backend.table(rows);
    match backend {
        Backend::Postgres => {
            use sqlx::postgres::{PgConnectOptions, PgSslMode};
            let options = sqlx_options!(PgConnectOptions, server, PgSslMode::Disable);
            let pool = sqlx_pool(options).await?;
            let sql = format!("SELECT {COLUMNS} FROM {table} WHERE id = $1");
            Ok(Client::SqlxPostgres(pool, sql.into()))
        }
        Backend::Mysql => {
            use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
            let options = sqlx_options!(MySqlConnectOptions, server, MySqlSslMode::Disabled);
            let pool = sqlx_pool(options).await?;
            let sql = format!("SELECT {COLUMNS} FROM {table} WHERE id = ?");
            Ok(Client::SqlxMysql(pool, sql.into()))
        }
        Backend::ClickHouse => {
            let sql = format!("SELECT {COLUMNS} FROM {table} WHERE id = ?");
            Ok(Client::ClickHouse(
                Box::new(stream::clickhouse_client(&server)),
                sql.into(),
            ))
        }
        Backend::Hive => Err("no point-query benchmark for Hive (seconds per query)".into()),
    }
}

/// Runs `iterations` lookups with `concurrency` tasks; returns each one's latency (µs).
async fn run(
    client: &Client,
    rows: u64,
    iterations: u64,
    concurrency: u64,
    seed: u64,
) -> Result<Vec<f64>, String> {
    let client = client.clone();
    timed_calls(iterations, concurrency, move |n| {
        // A fixed pseudo-random walk over the table, the same for every client.
        let id = ((n + seed).wrapping_mul(2_654_435_761) % rows) as i32 + 1;
        let client = client.clone();
        async move { client.lookup(id).await }
    })
    .await
}

/// Makes calls `call(0)` to `call(iterations - 1)` from `concurrency` tasks; returns the
/// latency of each (µs), the time its future took (what `call` does before it returns
/// the future is not counted).
async fn timed_calls<F, Fut>(iterations: u64, concurrency: u64, call: F) -> Result<Vec<f64>, String>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (call, next) = (call.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= iterations {
                    break;
                }
                let pending = call(n);
                let started = Instant::now();
                pending.await?;
                latencies.push(started.elapsed().as_secs_f64() * 1e6);
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut all = Vec::with_capacity(iterations as usize);
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok(all)
}

/// The client `name` of `--clients`: `extdata`, `extdata-ro` (a `read_only`
/// connector), `raw` (the driver's own pool), and on PostgreSQL the tokio-postgres
/// modes of [`pipelined::Mode::parse`].
async fn client(backend: Backend, rows: u64, name: &str) -> Result<Client, String> {
    let sql = || Arc::<str>::from(backend.point_query(rows));
    match name {
        "extdata" => Ok(Client::Extdata(
            stream::connect(backend, i64::from(POOL_SIZE)).await?,
            sql(),
            "extdata",
        )),
        "extdata-ro" => {
            let config = backend
                .connector(i64::from(POOL_SIZE))?
                .with_read_only(true);
            let source = extdata::connect(&config).map_err(|e| e.to_string())?;
            source.ping().await.map_err(|e| e.to_string())?;
            Ok(Client::Extdata(source, sql(), "extdata read-only"))
        }
        "raw" => raw_client(backend, rows).await,
        other => match (backend, pipelined::Mode::parse(other)) {
            (Backend::Postgres, Some(mode)) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM {} WHERE id = $1",
                    backend.table(rows)
                );
                let pool =
                    pipelined::Pool::connect(&backend.server()?, mode, POOL_SIZE as usize, &sql)
                        .await?;
                Ok(Client::TokioPostgres(pool))
            }
            _ => Err(format!("no client `{other}` for {}", backend.name())),
        },
    }
}

/// Prints the W3 table for `backend`: each of `clients` (names as for [`client`]) at
/// each concurrency, the clients alternating in rounds.
pub(crate) fn lookups(
    backend: Backend,
    rows: u64,
    iterations: u64,
    concurrencies: &[u64],
    clients: &[&str],
) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        let mut all = Vec::new();
        for name in clients {
            all.push(client(backend, rows, name).await?);
        }
        let clients = all;
        println!(
            "W3 {} lookups on {} ({} rows), load before: {}",
            backend.name(),
            backend.table(rows),
            rows,
            load()
        );
        println!();
        println!("| concurrency | client | lookups | p50 µs | p99 µs | p99.9 µs | lookups/s | lookups/s ÷ first |");
        println!("|---:|---|---:|---:|---:|---:|---:|---:|");
        for &concurrency in concurrencies {
            let warm_up = (iterations / 10).max(1000);
            for client in &clients {
                run(client, rows, warm_up, concurrency, 7).await?;
            }
            // Alternate the clients in rounds, so that a noisy moment hits all of them.
            let rounds = 4;
            let mut samples = vec![Vec::new(); clients.len()];
            let mut seconds = vec![Duration::ZERO; clients.len()];
            for round in 0..rounds {
                for (slot, client) in clients.iter().enumerate() {
                    let started = Instant::now();
                    let latencies = run(
                        client,
                        rows,
                        iterations / rounds,
                        concurrency,
                        round * 1_000_003,
                    )
                    .await?;
                    seconds[slot] += started.elapsed();
                    samples[slot].extend(latencies);
                }
            }
            let mut first = None;
            for (slot, client) in clients.iter().enumerate() {
                let sorted = &mut samples[slot];
                sorted.sort_by(f64::total_cmp);
                let rate = sorted.len() as f64 / seconds[slot].as_secs_f64();
                let first = *first.get_or_insert(rate);
                println!(
                    "| {concurrency} | {} | {} | {:.0} | {:.0} | {:.0} | {rate:.0} | {:.2} |",
                    client.label(),
                    sorted.len(),
                    quantile(sorted, 0.5),
                    quantile(sorted, 0.99),
                    quantile(sorted, 0.999),
                    rate / first
                );
            }
        }
        println!();
        println!("load after: {}", load());
        Ok(())
    })
}

/// The cached lookup path of `extdata-jobs` (`Lookups::get` with `cache_ttl`): every
/// key is looked up once to fill the cache, then `iterations` lookups hit it.
pub(crate) fn cached_lookups(
    backend: Backend,
    rows: u64,
    iterations: u64,
    concurrencies: &[u64],
) -> Result<(), String> {
    let keys = 1000u64.min(rows);
    let dir = std::env::temp_dir().join(format!("extdata-bench-jobs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let config = dir.join("extdata.toml");
    std::fs::write(
        &config,
        format!(
            "state = \"state.db\"\n\n{}\n\
             [[accounts]]\nid = \"1\"\nconnectors = [\"bench\"]\n\n\
             [[lookups]]\nname = \"point\"\naccount = \"1\"\nconnector = \"bench\"\n\
             query = \"{}\"\nresult = \"row\"\ncache_ttl = \"10m\"\ntimeout = \"5s\"\n",
            backend.connector_toml("bench", POOL_SIZE)?,
            backend.point_query(rows)
        ),
    )
    .map_err(|e| e.to_string())?;
    let jobs =
        Arc::new(extdata_jobs::Jobs::from_path(&config).map_err(|e| format!("jobs config: {e}"))?);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    let result = runtime.block_on(async {
        let lookups = Arc::new(extdata_jobs::Lookups::new(jobs, 100_000));
        let params = |id: u64| {
            let mut map = serde_json::Map::new();
            map.insert("id".into(), serde_json::json!(id));
            map
        };
        for id in 1..=keys {
            let row = lookups
                .get(Some("1"), "point", &params(id))
                .await
                .map_err(|e| e.to_string())?;
            if row.get("id").and_then(|v| v.as_u64()) != Some(id) {
                return Err(format!("lookup {id} returned {row}"));
            }
        }
        println!(
            "W3 cached lookups (extdata-jobs Lookups::get, {keys} keys in the cache), {} {}, load {}",
            backend.name(),
            backend.table(rows),
            load()
        );
        println!();
        println!("| concurrency | lookups | p50 µs | p99 µs | p99.9 µs |");
        println!("|---:|---:|---:|---:|---:|");
        for &concurrency in concurrencies {
            let lookups = lookups.clone();
            let mut all = timed_calls(iterations, concurrency, move |n| {
                let id = n.wrapping_mul(2_654_435_761) % keys + 1;
                let (lookups, params) = (lookups.clone(), params(id));
                async move {
                    lookups
                        .get(Some("1"), "point", &params)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            })
            .await?;
            all.sort_by(f64::total_cmp);
            println!(
                "| {concurrency} | {} | {:.1} | {:.1} | {:.1} |",
                all.len(),
                quantile(&all, 0.5),
                quantile(&all, 0.99),
                quantile(&all, 0.999)
            );
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
