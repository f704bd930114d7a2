//! `stream-sqlite`: streams a generated result of N rows from SQLite through
//! `ExternalSource::stream` and reports rows/s and the process's peak RSS. Each row
//! count runs in a fresh child process, so each peak is that size's own.
//!
//! Memory must not grow with the row count: the stream is back-pressured.

use std::process::Command;
use std::time::Instant;

use extdata::{ConnectorConfig, DbKind, QueryOptions, Statement, Value};
use futures::StreamExt;

use crate::measure::peak_rss_kib;

/// `stream-sqlite ROWS…` (parent) or `stream-sqlite-once ROWS` (child).
pub(crate) fn main(command: &str, args: &[String]) -> Result<(), String> {
    match (command, args) {
        ("stream-sqlite", [_, ..]) => compare_sizes(args),
        ("stream-sqlite-once", [rows]) => {
            let rows: u64 = rows
                .parse()
                .map_err(|_| format!("`{rows}` is not a number"))?;
            let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("runtime: {e}"))?;
            runtime.block_on(stream_once(rows))
        }
        _ => Err("usage: extdata-bench stream-sqlite ROWS [ROWS...]".into()),
    }
}

/// Runs one child process per size and prints a table.
fn compare_sizes(sizes: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    println!("| rows | seconds | rows/s | peak RSS (MiB) |");
    println!("|---:|---:|---:|---:|");
    for size in sizes {
        let output = Command::new(&exe)
            .args(["stream-sqlite-once", size])
            .output()
            .map_err(|e| format!("run child: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
    Ok(())
}

async fn stream_once(rows: u64) -> Result<(), String> {
    let config = ConnectorConfig::new("bench", DbKind::Sqlite).with_database(":memory:");
    let source = extdata::connect(&config).map_err(|e| e.to_string())?;
    let statement = Statement::new(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) \
         SELECT i AS id, 'customer' || i || '@example.com' AS email, i * 0.5 AS score, \
                CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || i END AS note FROM n",
    )
    .bind("rows", rows as i64);
    let options = QueryOptions::default().with_timeout(std::time::Duration::from_secs(600));
    let started = Instant::now();
    let mut stream = source
        .stream(&statement, &options)
        .await
        .map_err(|e| e.to_string())?;
    let mut count = 0u64;
    let mut checksum = 0i64;
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| e.to_string())?;
        if let Some(Value::I64(id)) = row.get(0) {
            checksum = checksum.wrapping_add(*id);
        }
        count += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    if count != rows {
        return Err(format!("{count} rows arrived, not {rows}"));
    }
    let expected = (rows as i64) * (rows as i64 + 1) / 2;
    if checksum != expected {
        return Err("rows arrived damaged (checksum)".into());
    }
    println!(
        "| {rows} | {seconds:.2} | {:.0} | {:.1} |",
        rows as f64 / seconds,
        peak_rss_kib() / 1024.0
    );
    Ok(())
}
