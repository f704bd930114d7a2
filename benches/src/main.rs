//! Benchmarks of extdata against the raw drivers and the servers' command-line clients
//! (run with `--release`; servers from `scripts/services.sh`, settings from
//! `.services/env`). See `BENCHMARKS.md` for the results and the exact commands.
//!
//! ```sh
//! set -a; . .services/env; set +a
//! cargo run --release -p extdata-bench -- seed --backend pg --rows 1000000
//! cargo run --release -p extdata-bench -- w1 --backend pg --rows 1000000 --reps 3
//! cargo run --release -p extdata-bench -- w2 --backend pg --rows 1000000,10000000
//! cargo run --release -p extdata-bench -- lookup --backend pg --rows 1000000
//! cargo run --release -p extdata-bench -- lookup --backend pg --rows 1000000 \
//!     --clients extdata,raw,tokio-postgres,tp-reset,tp-reset-pipelined
//! cargo run --release -p extdata-bench -- w1 --backend pg --rows 1000000 \
//!     --methods extdata,partitioned-1,partitioned-2,partitioned-4
//! cargo run --release -p extdata-bench -- stream-sqlite 100000 1000000
//! cargo run --release -p extdata-bench -- seed-arrow --rows 1000000
//! cargo run --release -p extdata-bench -- arrow-ch --rows 1000000 --reps 3
//! cargo build --release -p extdata-bench -p extdata-cli   # then, CSV of the CLI:
//! target/release/extdata-bench w1 --backend clickhouse --rows 1000000 --methods cli-csv,extdata-csv
//! # Loads into Arrow kept until the end: the row path (`arrow-N`), the columnar path
//! # (`arrow-columnar-N`, `extdata::stream_batches_partitioned`) and ConnectorX.
//! cargo run --release -p extdata-bench -- w1 --backend pg --rows 1000000 --reps 3 \
//!     --methods arrow-1,arrow-columnar-1,arrow-4,arrow-columnar-4,connectorx-1,connectorx-4
//! ```
//!
//! Every measurement of a whole-table read runs in a fresh child process (this program
//! again, `measure …`), so CPU seconds and peak RSS are that method's own.

mod backend;
mod csv;
mod lookup;
mod measure;
mod pipelined;
mod sqlite;
mod stream;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use extdata::{QueryOptions, Statement};

use crate::backend::Backend;
use crate::measure::{Measurement, load, median, run_child};

const USAGE: &str = "usage:
  extdata-bench seed    --backend pg|mysql|clickhouse|hive --rows N
  extdata-bench w1      --backend B --rows N [--reps 3] [--methods cli,sqlx,…,extdata]
                        (also cli-csv,extdata-csv: the server's client and the extdata CLI writing CSV)
                        (also arrow-N, arrow-columnar-N, connectorx-N: loads into Arrow on N partitions)
  extdata-bench w2      --backend B --rows N[,N…] [--methods extdata,…]
  extdata-bench lookup  --backend B --rows N [--iterations 10000] [--concurrency 1,16] [--cached true]
                        [--clients extdata,raw]   (also extdata-ro; PostgreSQL: tokio-postgres,
                         tp-reset, tp-reset-pipelined, tp-ro, tp-ro-pipelined)
  extdata-bench measure --backend B --method M --rows N      (one child measurement)
  extdata-bench stream-sqlite ROWS [ROWS…]
  extdata-bench seed-arrow --rows N                   (ClickHouse; EXTDATA_BENCH_CLICKHOUSE=26 for 26.x)
  extdata-bench arrow-ch --rows N [--reps 3]          (row path vs columnar path into Arrow)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(message) = run(&args) {
        eprintln!("extdata-bench: {message}");
        std::process::exit(1);
    }
}

/// `--key value` pairs after the subcommand.
fn flags(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut flags = BTreeMap::new();
    let mut iter = args.iter();
    while let Some(key) = iter.next() {
        let name = key
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected `{key}`\n{USAGE}"))?;
        let value = iter
            .next()
            .ok_or_else(|| format!("--{name} needs a value"))?;
        flags.insert(name.to_owned(), value.clone());
    }
    Ok(flags)
}

fn flag<'a>(flags: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, String> {
    flags
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("--{name} is required\n{USAGE}"))
}

fn numbers(text: &str) -> Result<Vec<u64>, String> {
    text.split(',')
        .map(|n| {
            n.trim()
                .replace('_', "")
                .parse()
                .map_err(|_| format!("`{n}` is not a number"))
        })
        .collect()
}

fn run(args: &[String]) -> Result<(), String> {
    let command = args.first().map(String::as_str).unwrap_or("");
    if command == "stream-sqlite" || command == "stream-sqlite-once" {
        return sqlite::main(command, &args[1..]);
    }
    let flags = flags(args.get(1..).unwrap_or_default())?;
    match command {
        "seed" => seed(
            Backend::parse(flag(&flags, "backend")?)?,
            numbers(flag(&flags, "rows")?)?,
        ),
        "seed-arrow" => seed_arrow(numbers(flag(&flags, "rows")?)?[0]),
        "arrow-ch" => {
            let rows = numbers(flag(&flags, "rows")?)?[0];
            let reps = flags.get("reps").map_or(Ok(vec![3]), |r| numbers(r))?[0];
            arrow_ch(rows, reps)
        }
        "measure" => {
            let backend = Backend::parse(flag(&flags, "backend")?)?;
            let rows = numbers(flag(&flags, "rows")?)?[0];
            let m = stream::measure(backend, flag(&flags, "method")?, rows)?;
            println!("{}", m.line());
            Ok(())
        }
        "w1" => {
            let backend = Backend::parse(flag(&flags, "backend")?)?;
            let rows = numbers(flag(&flags, "rows")?)?[0];
            let reps = flags.get("reps").map_or(Ok(vec![3]), |r| numbers(r))?[0];
            let methods = flags
                .get("methods")
                .map_or_else(|| default_methods(backend), |m| m.clone());
            w1(backend, rows, reps, &methods)
        }
        "w2" => {
            let backend = Backend::parse(flag(&flags, "backend")?)?;
            let sizes = numbers(flag(&flags, "rows")?)?;
            let methods = flags
                .get("methods")
                .cloned()
                .unwrap_or_else(|| "extdata".into());
            w2(backend, &sizes, &methods)
        }
        "lookup" => {
            let backend = Backend::parse(flag(&flags, "backend")?)?;
            let rows = numbers(flag(&flags, "rows")?)?[0];
            let iterations = flags
                .get("iterations")
                .map_or(Ok(vec![10_000]), |r| numbers(r))?[0];
            let concurrency = flags
                .get("concurrency")
                .map_or(Ok(vec![1, 16]), |r| numbers(r))?;
            if flags.get("cached").is_some_and(|c| c == "true") {
                lookup::cached_lookups(backend, rows, iterations, &concurrency)
            } else {
                let clients = flags
                    .get("clients")
                    .map_or("extdata,raw", String::as_str)
                    .split(',')
                    .collect::<Vec<_>>();
                lookup::lookups(backend, rows, iterations, &concurrency, &clients)
            }
        }
        _ => Err(USAGE.into()),
    }
}

fn default_methods(backend: Backend) -> String {
    match backend {
        Backend::Postgres => "cli,sqlx,tokio-postgres,extdata",
        Backend::Mysql => "cli,sqlx,extdata",
        Backend::ClickHouse => "cli,rowbinary,native,extdata",
        Backend::Hive => "cli,extdata",
    }
    .into()
}

/// Creates and fills the standard table of each size on the server.
fn seed(backend: Backend, sizes: Vec<u64>) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        let source = stream::connect(backend, 1).await?;
        let options = QueryOptions::default().with_timeout(Duration::from_secs(3600));
        for rows in sizes {
            let started = Instant::now();
            for sql in backend.seed_statements(rows) {
                source
                    .execute(&Statement::new(sql.clone()), &options)
                    .await
                    .map_err(|e| format!("{e}\nin: {sql}"))?;
            }
            let count = source
                .query(
                    &Statement::new(format!("SELECT count(*) FROM {}", backend.table(rows))),
                    &options,
                )
                .await
                .map_err(|e| e.to_string())?;
            let counted = count
                .rows
                .first()
                .and_then(|r| r.get(0))
                .and_then(|v| v.as_i64().or_else(|| v.to_text_lossless().parse().ok()));
            if counted != Some(rows as i64) {
                return Err(format!(
                    "{} holds {counted:?} rows after seeding, not {rows}",
                    backend.table(rows)
                ));
            }
            println!(
                "seeded {} {} ({rows} rows) in {:.1} s",
                backend.name(),
                backend.table(rows),
                started.elapsed().as_secs_f64()
            );
        }
        source.close().await;
        Ok(())
    })
}

/// Creates and fills the ClickHouse table of the Arrow comparison.
fn seed_arrow(rows: u64) -> Result<(), String> {
    let backend = Backend::ClickHouse;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        let source = stream::connect(backend, 1).await?;
        let options = QueryOptions::default().with_timeout(Duration::from_secs(3600));
        for sql in backend.arrow_seed_statements(rows) {
            source
                .execute(&Statement::new(sql.clone()), &options)
                .await
                .map_err(|e| format!("{e}\nin: {sql}"))?;
        }
        println!("seeded {}", backend.arrow_table(rows));
        source.close().await;
        Ok(())
    })
}

/// The ClickHouse row path against the columnar path producing Arrow batches, `reps`
/// interleaved runs each (fresh child processes); medians and their ratios.
fn arrow_ch(rows: u64, reps: u64) -> Result<(), String> {
    let backend = Backend::ClickHouse;
    let methods = ["arrow-rows", "arrow-columnar"];
    let load_before = load();
    let mut results: BTreeMap<&str, Vec<Measurement>> = BTreeMap::new();
    for _ in 0..reps {
        for method in methods {
            let m = run_child(&child_args(backend, method, rows))?;
            eprintln!("{}", m.line());
            results.entry(method).or_default().push(m);
        }
    }
    let load_after = load();
    let summary = |method: &str, key: &str| -> f64 {
        let mut values: Vec<f64> = results
            .get(method)
            .map(|ms| ms.iter().map(|m| m.num(key)).collect())
            .unwrap_or_default();
        median(&mut values)
    };
    println!(
        "arrow-ch {} ({rows} rows), median of {reps}, load {load_before} → {load_after}",
        backend.arrow_table(rows)
    );
    println!();
    println!("| path | wall s | CPU s | peak RSS MiB | wall / row path | CPU / row path |");
    println!("|---|---:|---:|---:|---:|---:|");
    let (row_wall, row_cpu) = (summary("arrow-rows", "wall"), summary("arrow-rows", "cpu"));
    for method in methods {
        let (wall, cpu) = (summary(method, "wall"), summary(method, "cpu"));
        println!(
            "| {method} | {wall:.3} | {cpu:.3} | {:.1} | {:.2} | {:.2} |",
            summary(method, "hwm_kib") / 1024.0,
            wall / row_wall,
            cpu / row_cpu,
        );
    }
    Ok(())
}

fn child_args(backend: Backend, method: &str, rows: u64) -> Vec<String> {
    vec![
        "measure".into(),
        "--backend".into(),
        backend.name().into(),
        "--method".into(),
        method.into(),
        "--rows".into(),
        rows.to_string(),
    ]
}

/// W1: every method `reps` times, interleaved; medians; ratios of extdata to the others.
fn w1(backend: Backend, rows: u64, reps: u64, methods: &str) -> Result<(), String> {
    let methods: Vec<&str> = methods.split(',').collect();
    let load_before = load();
    let mut results: BTreeMap<&str, Vec<Measurement>> = BTreeMap::new();
    for _ in 0..reps {
        for method in &methods {
            let m = run_child(&child_args(backend, method, rows))?;
            eprintln!("{}", m.line());
            results.entry(method).or_default().push(m);
        }
    }
    let load_after = load();
    let summary = |method: &str, key: &str| -> f64 {
        let mut values: Vec<f64> = results
            .get(method)
            .map(|ms| ms.iter().map(|m| m.num(key)).collect())
            .unwrap_or_default();
        median(&mut values)
    };
    // The payload of the decoded values (the same table for every method).
    let payload = summary("extdata", "payload");
    println!(
        "W1 {} streaming {} ({rows} rows, payload {:.1} MB), median of {reps}, load {load_before} → {load_after}",
        backend.name(),
        backend.table(rows),
        payload / 1e6
    );
    println!();
    println!(
        "| method | wall s | rows/s | MB/s | CPU s per 1M rows | peak RSS MiB | wall extdata/this | CPU extdata/this |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let (ext_wall, ext_cpu) = (summary("extdata", "wall"), summary("extdata", "cpu"));
    for method in &methods {
        let wall = summary(method, "wall");
        let cpu = summary(method, "cpu");
        let rss = summary(method, "hwm_kib") / 1024.0;
        let rss = if *method == "cli" {
            "—".to_owned()
        } else {
            format!("{rss:.1}")
        };
        let label = if *method == "cli" {
            format!("(a) {}", cli_label(backend))
        } else if *method == "extdata" {
            "(c) extdata stream".to_owned()
        } else if let Some(n) = method.strip_prefix("partitioned-") {
            format!("extdata stream_partitioned, N = {n}")
        } else {
            format!("(b) {method}")
        };
        println!(
            "| {label} | {wall:.2} | {:.0} | {:.1} | {:.2} | {rss} | {:.2} | {:.2} |",
            rows as f64 / wall,
            payload / 1e6 / wall,
            cpu / (rows as f64 / 1e6),
            ext_wall / wall,
            ext_cpu / cpu,
        );
    }
    Ok(())
}

fn cli_label(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "psql COPY binary",
        Backend::Mysql => "mariadb --quick",
        Backend::ClickHouse => "clickhouse-client Native",
        Backend::Hive => "beeline tsv2",
    }
}

/// W2: peak RSS of one child streaming each table size.
fn w2(backend: Backend, sizes: &[u64], methods: &str) -> Result<(), String> {
    println!(
        "W2 {} peak RSS (VmHWM of the child), load {}",
        backend.name(),
        load()
    );
    println!();
    println!("| method | rows | wall s | rows/s | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|");
    let mut peaks: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for method in methods.split(',') {
        for &rows in sizes {
            let m = run_child(&child_args(backend, method, rows))?;
            let wall = m.num("wall");
            let rss = m.num("hwm_kib") / 1024.0;
            println!(
                "| {method} | {rows} | {wall:.2} | {:.0} | {rss:.1} |",
                rows as f64 / wall
            );
            peaks.entry(method.to_owned()).or_default().push(rss);
        }
    }
    println!();
    for (method, rss) in peaks {
        if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
            println!(
                "{method}: RSS(largest) − RSS(smallest) = {:.1} MiB",
                last - first
            );
        }
    }
    println!("load after: {}", load());
    Ok(())
}
