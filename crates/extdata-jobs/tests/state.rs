//! The state store opens files written by older versions.

use extdata_jobs::Stop;

mod support;
use support::*;

/// A state file from before `unchanged` and `attempts` keeps its history and gains both.
#[tokio::test]
async fn an_older_state_file_gains_the_new_history_columns() {
    let fixture = Fixture::new();
    let old = sqlite_file(&fixture.path("extdata-state.db"));
    sql(
        old.as_ref(),
        "CREATE TABLE import_run (
            id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started_at TEXT NOT NULL,
            ended_at TEXT, rows_read INTEGER NOT NULL DEFAULT 0, inserted INTEGER NOT NULL DEFAULT 0,
            updated INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0, error TEXT)",
    )
    .await;
    sql(
        old.as_ref(),
        "INSERT INTO import_run (job, started_at, ended_at, rows_read, inserted)
         VALUES ('orders', '2024-01-01T00:00:00+00:00', '2024-01-01T00:00:01+00:00', 7, 7)",
    )
    .await;
    old.close().await;
    let jobs = fixture.jobs(
        r#"
[[imports]]
name = "orders"
account = "42"
connector = "crm"
query = "SELECT id, email, created_at FROM orders WHERE created_at >= :cursor ORDER BY created_at"
key = "id"
cursor = { column = "created_at", initial = 0 }
sink = { type = "csv", path = "orders.csv" }
"#,
    );
    seed_orders(&jobs).await;
    jobs.run_import(None, "orders", Stop::never(), &|_| {})
        .await
        .unwrap();
    let history = jobs.history(None, "orders", 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].counts.inserted, history[0].attempts), (4, 1));
    let before = &history[1];
    assert_eq!(
        (before.counts.read, before.counts.unchanged, before.attempts),
        (7, 0, 1)
    );
    jobs.close().await;
}
