//! Inclusive cursors: rows that arrive with the saved cursor value (while imports run)
//! reach every sink kind exactly once; rows read again unchanged are written nowhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use extdata::ExternalSource;
use extdata_conformance::require_or_skip;
use extdata_conformance::support::{env, unique_name};
use extdata_jobs::Jobs;

mod support;
use support::*;

/// The four sink kinds, one import each: (import name, sink table).
const SINKS: [&str; 4] = ["to-sqlite", "to-postgres", "to-jsonl", "to-csv"];

/// How a backend holds the source table `(id, seq, updated_at)`, where `updated_at` is
/// the cursor and a function of `seq`.
struct Source {
    /// `[[connectors]]` body (name `src`).
    connector: String,
    create: fn(&str) -> String,
    /// The `updated_at` literal of stamp `n`.
    stamp: fn(u32) -> String,
    initial: &'static str,
}

fn sqlite_source() -> Source {
    Source {
        connector: "[[connectors]]\nname = \"src\"\ntype = \"sqlite\"\ndatabase = \"src.db\"\n"
            .into(),
        create: |t| format!("CREATE TABLE {t} (id INTEGER, seq INTEGER, updated_at INTEGER)"),
        stamp: |n| n.to_string(),
        initial: "0",
    }
}

fn postgres_source() -> Option<Source> {
    Some(Source {
        connector: server_connector("POSTGRES", "postgres", "postgresql", "")?,
        create: |t| format!("CREATE TABLE {t} (id BIGINT, seq BIGINT, updated_at TIMESTAMPTZ)"),
        // Microseconds apart: the values differ only in their fraction.
        stamp: |n| format!("TIMESTAMPTZ '2024-03-31 01:00:00+00' + INTERVAL '{n} microseconds'"),
        initial: "\"1970-01-01T00:00:00Z\"",
    })
}

/// The PostgreSQL sink's URL, or a skip (a failure when PostgreSQL is required).
fn postgres_sink() -> Option<()> {
    match env("EXTDATA_TEST_POSTGRES_URL") {
        Some(_) => Some(()),
        None => require_or_skip("postgres", "EXTDATA_TEST_POSTGRES_URL is not set"),
    }
}

/// An import by account 9 of `table` (`id`, `seq`, `updated_at`) in `mode`, its cursor
/// starting at `initial`; `fields` are its other lines.
fn table_import(name: &str, table: &str, initial: &str, mode: &str, fields: &str) -> String {
    config_entry(
        "imports",
        name,
        SRC,
        &format!(
            "SELECT id, seq, updated_at FROM {table} WHERE updated_at >= :cursor ORDER BY updated_at"
        ),
        &format!(
            "key = \"id\"\ncursor = {{ column = \"updated_at\", initial = {initial} }}\nmode = \"{mode}\"\n{fields}"
        ),
    )
}

/// A config with one import per sink kind over `table`, in `mode`.
fn config(source: &Source, table: &str, pg_table: &str, mode: &str, batch_size: usize) -> String {
    let mut body = source_account(&source.connector);
    for name in SINKS {
        let sink = match name {
            "to-sqlite" => "{ type = \"sqlite\", path = \"sink.db\", table = \"rows\" }".to_owned(),
            "to-postgres" => format!(
                "{{ type = \"postgresql\", url = {{ env = \"EXTDATA_TEST_POSTGRES_URL\" }}, table = \"{pg_table}\" }}"
            ),
            "to-jsonl" => "{ type = \"jsonl\", path = \"rows.jsonl\" }".to_owned(),
            _ => "{ type = \"csv\", path = \"rows.csv\" }".to_owned(),
        };
        body.push_str(&table_import(
            name,
            table,
            source.initial,
            mode,
            &format!("batch_size = {batch_size}\nsink = {sink}"),
        ));
    }
    body
}

/// The ids (with their `seq`) each sink holds, one entry per row written (a row written
/// twice appears twice).
async fn sink_contents(fixture: &Fixture, pg_table: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut found = BTreeMap::new();
    let sqlite = sqlite_file(&fixture.path("sink.db"));
    found.insert(
        "to-sqlite",
        rows(sqlite.as_ref(), "SELECT id, seq FROM rows ORDER BY id").await,
    );
    sqlite.close().await;
    let pg = test_postgres();
    found.insert(
        "to-postgres",
        rows(
            pg.as_ref(),
            &format!("SELECT id, seq FROM {pg_table} ORDER BY id"),
        )
        .await,
    );
    pg.close().await;
    let jsonl = std::fs::read_to_string(fixture.path("rows.jsonl")).unwrap_or_default();
    let mut lines: Vec<(i64, String)> = jsonl
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = row["id"].as_i64().unwrap();
            (id, format!("{id}|{}", row["seq"]))
        })
        .collect();
    lines.sort();
    found.insert("to-jsonl", lines.into_iter().map(|(_, l)| l).collect());
    let csv = std::fs::read_to_string(fixture.path("rows.csv")).unwrap_or_default();
    let mut lines: Vec<(i64, String)> = csv
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (
                fields[0].parse().unwrap(),
                format!("{}|{}", fields[0], fields[1]),
            )
        })
        .collect();
    lines.sort();
    found.insert("to-csv", lines.into_iter().map(|(_, l)| l).collect());
    found
}

async fn run_all(jobs: &Jobs) -> Vec<extdata_jobs::ImportSummary> {
    let runs = SINKS.map(|name| try_import(jobs, name));
    futures::future::join_all(runs)
        .await
        .into_iter()
        .zip(SINKS)
        .map(|(outcome, name)| outcome.unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

async fn drop_tables(source: &dyn ExternalSource, table: &str, pg_table: &str) {
    sql(source, &format!("DROP TABLE {table}")).await;
    let pg = test_postgres();
    sql(pg.as_ref(), &format!("DROP TABLE IF EXISTS {pg_table}")).await;
    pg.close().await;
}

/// Step by step: rows at the saved cursor value are imported once; rows read again
/// unchanged are counted as such and written to no sink; a row changed without a new
/// cursor value is imported again.
async fn late_rows_at_the_saved_cursor(source: Source) {
    let fixture = Fixture::new();
    let (table, pg_table) = (unique_name("cur"), unique_name("cursink"));
    let jobs = fixture.jobs(&config(&source, &table, &pg_table, "add_and_update", 2));
    let src = jobs.registry().source("9", "src").unwrap();
    sql(src.as_ref(), &(source.create)(&table)).await;
    let insert = |rows: &[(u32, u32)]| {
        let values: Vec<String> = rows
            .iter()
            .map(|(id, seq)| format!("({id}, {seq}, {})", (source.stamp)(*seq)))
            .collect();
        format!("INSERT INTO {table} VALUES {}", values.join(", "))
    };
    sql(src.as_ref(), &insert(&[(1, 1), (2, 1)])).await;
    for summary in run_all(&jobs).await {
        assert_eq!((summary.counts.read, summary.counts.inserted), (2, 2));
    }
    // Row 3 arrives with the saved cursor value: `> :cursor` would never read it.
    sql(src.as_ref(), &insert(&[(3, 1), (4, 2)])).await;
    for summary in run_all(&jobs).await {
        let c = &summary.counts;
        assert_eq!(
            (c.read, c.unchanged, c.inserted, c.updated),
            (4, 2, 2, 0),
            "{summary:?}"
        );
    }
    // Nothing new: the rows at the saved value are read again and written nowhere.
    for summary in run_all(&jobs).await {
        let c = &summary.counts;
        assert_eq!((c.read, c.unchanged, c.inserted, c.updated), (1, 1, 0, 0));
    }
    let expected = ["1|1", "2|1", "3|1", "4|2"];
    for (sink, found) in sink_contents(&fixture, &pg_table).await {
        assert_eq!(found, expected, "{sink}");
    }
    // Row 4 changes without a new cursor value: a new version, imported again.
    sql(
        src.as_ref(),
        &format!("UPDATE {table} SET seq = 20 WHERE id = 4"),
    )
    .await;
    for summary in run_all(&jobs).await {
        let c = &summary.counts;
        assert_eq!((c.read, c.unchanged, c.updated), (1, 0, 1), "{summary:?}");
    }
    let found = sink_contents(&fixture, &pg_table).await;
    assert_eq!(found["to-sqlite"], ["1|1", "2|1", "3|1", "4|20"]);
    assert_eq!(found["to-postgres"], ["1|1", "2|1", "3|1", "4|20"]);
    // Files are logs of row versions: the new one is appended.
    assert_eq!(found["to-jsonl"], ["1|1", "2|1", "3|1", "4|2", "4|20"]);
    assert_eq!(found["to-csv"], ["1|1", "2|1", "3|1", "4|2", "4|20"]);
    drop_tables(src.as_ref(), &table, &pg_table).await;
    jobs.close().await;
}

#[tokio::test]
async fn sqlite_source_rows_at_the_saved_cursor_reach_every_sink_once() {
    if postgres_sink().is_none() {
        return;
    }
    late_rows_at_the_saved_cursor(sqlite_source()).await;
}

#[tokio::test]
async fn postgres_source_rows_at_the_saved_cursor_reach_every_sink_once() {
    let (Some(()), Some(source)) = (postgres_sink(), postgres_source()) else {
        return;
    };
    late_rows_at_the_saved_cursor(source).await;
}

/// `add_only` and `update_only` on files keep a key index: a row read again at the
/// saved cursor is neither written again nor counted as skipped by the mode.
#[tokio::test]
async fn key_index_modes_do_not_write_rows_read_again() {
    let fixture = Fixture::new();
    let source = sqlite_source();
    let table = unique_name("cur");
    let mut body = source_account(&source.connector);
    for (name, mode) in [("first", "add_only"), ("changes", "update_only")] {
        body.push_str(&table_import(
            name,
            &table,
            "0",
            mode,
            &format!("sink = {{ type = \"jsonl\", path = \"{name}.jsonl\" }}"),
        ));
    }
    let jobs = fixture.jobs(&body);
    let src = jobs.registry().source("9", "src").unwrap();
    sql(src.as_ref(), &(source.create)(&table)).await;
    sql(
        src.as_ref(),
        &format!("INSERT INTO {table} VALUES (1, 1, 5), (2, 2, 5)"),
    )
    .await;
    let first = import(&jobs, "first").await;
    assert_eq!((first.counts.inserted, first.counts.skipped), (2, 0));
    // The update_only file has no key yet: both rows are left out by the mode.
    let changes = import(&jobs, "changes").await;
    assert_eq!((changes.counts.inserted, changes.counts.skipped), (0, 2));
    sql(
        src.as_ref(),
        &format!("INSERT INTO {table} VALUES (3, 3, 5)"),
    )
    .await;
    let first = import(&jobs, "first").await;
    let c = &first.counts;
    assert_eq!((c.read, c.unchanged, c.inserted, c.skipped), (3, 2, 1, 0));
    let written = std::fs::read_to_string(fixture.path("first.jsonl")).unwrap();
    assert_eq!(written.lines().count(), 3, "{written}");
    jobs.close().await;
}

/// Rows written while the imports run, many of them with a cursor value an import has
/// already saved: every sink ends with every row exactly once.
async fn concurrent_writer(source: Source, rows_total: u32) {
    let fixture = Fixture::new();
    let (table, pg_table) = (unique_name("cur"), unique_name("cursink"));
    let jobs = Arc::new(fixture.jobs(&config(&source, &table, &pg_table, "add_and_update", 3)));
    let src = jobs.registry().source("9", "src").unwrap();
    sql(src.as_ref(), &(source.create)(&table)).await;
    let done = Arc::new(AtomicBool::new(false));
    let sink_db = fixture.path("sink.db");
    // Created ahead, so that the writer can look at it before the first import.
    let sink = sqlite_file(&sink_db);
    sql(
        sink.as_ref(),
        "CREATE TABLE rows (id INTEGER UNIQUE, seq INTEGER, updated_at)",
    )
    .await;
    sink.close().await;
    let writer = {
        let (src, done, table) = (src.clone(), done.clone(), table.clone());
        let stamp = source.stamp;
        tokio::spawn(async move {
            let sink = sqlite_file(&sink_db);
            let (mut seq, mut at_seq, mut late_at_seq, mut late) = (1, 0, 0, 0);
            let mut written = Vec::new();
            for id in 1..=rows_total {
                // The value moves on after three rows arrived behind an import that had
                // saved it, or after sixty rows.
                if late_at_seq >= 3 || at_seq >= 60 {
                    seq += 1;
                    (at_seq, late_at_seq) = (0, 0);
                }
                // Does a sink already hold rows at this cursor value? Then this row
                // arrives after an import saved it as its cursor.
                let imported = rows(sink.as_ref(), "SELECT COALESCE(MAX(seq), 0) FROM rows").await;
                if imported.first().map(String::as_str) == Some(&seq.to_string()) {
                    late += 1;
                    late_at_seq += 1;
                }
                sql(
                    src.as_ref(),
                    &format!("INSERT INTO {table} VALUES ({id}, {seq}, {})", stamp(seq)),
                )
                .await;
                written.push(format!("{id}|{seq}"));
                at_seq += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            done.store(true, Ordering::SeqCst);
            sink.close().await;
            (late, written)
        })
    };
    let mut runs = 0;
    let mut unchanged = 0;
    loop {
        let finished = done.load(Ordering::SeqCst);
        for summary in run_all(&jobs).await {
            unchanged += summary.counts.unchanged;
        }
        runs += 1;
        if finished {
            break;
        }
    }
    let (late, expected) = writer.await.unwrap();
    eprintln!(
        "{rows_total} rows, {late} written at a cursor value already imported, {runs} rounds of 4 imports, {unchanged} rows read again unchanged"
    );
    assert!(
        late > 0,
        "no row arrived at an imported cursor value: the test proved nothing"
    );
    for (sink, found) in sink_contents(&fixture, &pg_table).await {
        assert_eq!(found.len(), expected.len(), "{sink}: rows");
        assert_eq!(found, expected, "{sink}");
    }
    drop_tables(src.as_ref(), &table, &pg_table).await;
    jobs.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_source_written_during_imports_reaches_every_sink_exactly_once() {
    if postgres_sink().is_none() {
        return;
    }
    concurrent_writer(sqlite_source(), 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_written_during_imports_reaches_every_sink_exactly_once() {
    let (Some(()), Some(source)) = (postgres_sink(), postgres_source()) else {
        return;
    };
    concurrent_writer(source, 400).await;
}
