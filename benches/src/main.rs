//! Benchmarks of extdata (run with `--release`).
//!
//! `stream-sqlite`: streams a generated result of N rows from SQLite through
//! `ExternalSource::stream` and reports rows/s and the process's peak RSS. Each row
//! count runs in a fresh child process, so each peak is that size's own:
//!
//! ```sh
//! cargo run --release -p extdata-bench -- stream-sqlite 100000 1000000
//! ```
//!
//! Memory must not grow with the row count: the stream is back-pressured.

use std::process::Command;
use std::time::Instant;

use extdata::{ConnectorConfig, DbKind, QueryOptions, Statement, Value};
use futures::StreamExt;

fn usage() -> ! {
    eprintln!("usage: extdata-bench stream-sqlite ROWS [ROWS...]");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stream-sqlite") if args.len() > 1 => compare_sizes(&args[1..]),
        Some("stream-sqlite-once") if args.len() == 2 => {
            let rows: u64 = args[1].parse().unwrap_or_else(|_| usage());
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            runtime.block_on(stream_once(rows));
        }
        _ => usage(),
    }
}

/// Runs one child process per size and prints a table.
fn compare_sizes(sizes: &[String]) {
    let exe = std::env::current_exe().expect("own path");
    println!("| rows | seconds | rows/s | peak RSS (MiB) |");
    println!("|---:|---:|---:|---:|");
    for size in sizes {
        let output = Command::new(&exe)
            .args(["stream-sqlite-once", size])
            .output()
            .expect("run child");
        if !output.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&output.stderr));
            std::process::exit(1);
        }
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
}

async fn stream_once(rows: u64) {
    let config = ConnectorConfig::new("bench", DbKind::Sqlite).with_database(":memory:");
    let source = extdata::connect(&config).expect("connect");
    let statement = Statement::new(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) \
         SELECT i AS id, 'customer' || i || '@example.com' AS email, i * 0.5 AS score, \
                CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || i END AS note FROM n",
    )
    .bind("rows", rows as i64);
    let options = QueryOptions::default().with_timeout(std::time::Duration::from_secs(600));
    let started = Instant::now();
    let mut stream = source.stream(&statement, &options).await.expect("stream");
    let mut count = 0u64;
    let mut checksum = 0i64;
    while let Some(row) = stream.next().await {
        let row = row.expect("row");
        if let Some(Value::I64(id)) = row.get(0) {
            checksum = checksum.wrapping_add(*id);
        }
        count += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(count, rows, "every row must arrive");
    let expected = (rows as i64) * (rows as i64 + 1) / 2;
    assert_eq!(checksum, expected, "rows must arrive intact");
    println!(
        "| {rows} | {seconds:.2} | {:.0} | {:.1} |",
        rows as f64 / seconds,
        peak_rss_mib()
    );
}

/// The process's peak resident set size (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
