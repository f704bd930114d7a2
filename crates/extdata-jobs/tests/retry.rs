//! Retries: a run that fails with a temporary error is tried again after a growing,
//! jittered wait, from its last checkpoint, within its bounds; other errors fail at once.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use extdata::ErrorKind;
use extdata_jobs::{Jobs, Stop};

mod support;
use support::*;

/// An import of the four seeded orders into a JSON-lines file, one row per batch.
fn body(retry: &str) -> String {
    format!(
        r#"
[[imports]]
name = "orders"
account = "42"
connector = "crm"
query = "SELECT id, email, total, created_at FROM orders WHERE created_at >= :cursor ORDER BY created_at"
key = "id"
cursor = {{ column = "created_at", initial = 0 }}
batch_size = 1
retry = {retry}
sink = {{ type = "jsonl", path = "orders.jsonl" }}
"#
    )
}

fn jobs(fixture: &Fixture, retry: &str) -> Jobs {
    fixture.jobs(&body(retry))
}

fn ids_written(fixture: &Fixture) -> Vec<i64> {
    let text = std::fs::read_to_string(fixture.path("orders.jsonl")).unwrap_or_default();
    text.lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn temporary_errors_are_retried_with_growing_waits_and_counted_in_history() {
    let fixture = Fixture::new();
    let plain = jobs(
        &fixture,
        r#"{ attempts = 4, backoff = "100ms", max_backoff = "150ms" }"#,
    );
    seed_orders(&plain).await;
    let (jobs, left, streams) = flaky(plain, 2, ErrorKind::Connect, 0);
    let started = Instant::now();
    let summary = jobs
        .run_import(None, "orders", Stop::never(), &|_| {})
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(summary.attempts, 3);
    assert_eq!(streams.load(Ordering::SeqCst), 3);
    assert_eq!(left.load(Ordering::SeqCst), 0);
    assert_eq!(summary.counts.inserted, 4);
    // Waits: 50–100 ms, then 75–150 ms (doubled, capped at max_backoff, upper half).
    assert!(elapsed >= Duration::from_millis(125), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let history = jobs.history(None, "orders", 10).await.unwrap();
    assert_eq!(history.len(), 1, "the retries are one run: {history:?}");
    assert_eq!(
        (history[0].attempts, history[0].error.as_deref()),
        (3, None)
    );
    assert_eq!(ids_written(&fixture), [1, 2, 3, 4]);
    jobs.close().await;
}

#[tokio::test]
async fn a_retry_after_an_error_mid_result_resumes_at_the_checkpoint_without_duplicates() {
    let fixture = Fixture::new();
    let plain = jobs(&fixture, r#"{ attempts = 3, backoff = "10ms" }"#);
    seed_orders(&plain).await;
    // The first try reads two rows (two committed batches), then the connection drops.
    let (jobs, _, streams) = flaky(plain, 1, ErrorKind::Connect, 2);
    let summary = jobs
        .run_import(None, "orders", Stop::never(), &|_| {})
        .await
        .unwrap();
    assert_eq!((summary.attempts, streams.load(Ordering::SeqCst)), (2, 2));
    assert_eq!(ids_written(&fixture), [1, 2, 3, 4]);
    assert_eq!(summary.counts.inserted, 4);
    jobs.close().await;
}

#[tokio::test]
async fn a_permanent_error_fails_the_run_at_once() {
    let fixture = Fixture::new();
    let plain = jobs(&fixture, r#"{ attempts = 5, backoff = "1s" }"#);
    seed_orders(&plain).await;
    let (jobs, _, streams) = flaky(plain, 1, ErrorKind::Query, 0);
    let started = Instant::now();
    let error = jobs
        .run_import(None, "orders", Stop::never(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Query);
    assert!(!error.to_string().contains("attempts"), "{error}");
    assert_eq!(streams.load(Ordering::SeqCst), 1);
    assert!(started.elapsed() < Duration::from_millis(900));
    let history = jobs.history(None, "orders", 10).await.unwrap();
    assert_eq!(history[0].attempts, 1);
    assert!(history[0].error.is_some());
    jobs.close().await;
}

#[tokio::test]
async fn retries_end_after_their_attempts() {
    let fixture = Fixture::new();
    let plain = jobs(&fixture, r#"{ attempts = 3, backoff = "10ms" }"#);
    seed_orders(&plain).await;
    let (jobs, _, streams) = flaky(plain, usize::MAX, ErrorKind::Timeout, 0);
    let error = jobs
        .run_import(None, "orders", Stop::never(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(
        error.to_string().starts_with("gave up after 3 attempts: "),
        "{error}"
    );
    assert_eq!(streams.load(Ordering::SeqCst), 3);
    let history = jobs.history(None, "orders", 10).await.unwrap();
    assert_eq!(history[0].attempts, 3);
    assert!(
        history[0]
            .error
            .as_deref()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{history:?}"
    );
    jobs.close().await;
}

#[tokio::test]
async fn retries_end_when_the_next_would_start_after_max_time() {
    let fixture = Fixture::new();
    let plain = jobs(
        &fixture,
        r#"{ attempts = 100, backoff = "100ms", max_backoff = "100ms", max_time = "450ms" }"#,
    );
    seed_orders(&plain).await;
    let (jobs, _, streams) = flaky(plain, usize::MAX, ErrorKind::Connect, 0);
    let started = Instant::now();
    jobs.run_import(None, "orders", Stop::never(), &|_| {})
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    // Waits of 50–100 ms within 450 ms: 5 to 10 tries, never a wait past the bound.
    let tries = streams.load(Ordering::SeqCst);
    assert!((5..=10).contains(&tries), "{tries} tries");
    assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
    jobs.close().await;
}

#[tokio::test]
async fn a_stop_during_the_wait_ends_the_run_at_once() {
    let fixture = Fixture::new();
    let plain = jobs(
        &fixture,
        r#"{ attempts = 5, backoff = "30s", max_backoff = "30s" }"#,
    );
    seed_orders(&plain).await;
    let (jobs, _, streams) = flaky(plain, usize::MAX, ErrorKind::Connect, 0);
    let (raise, stop) = Stop::channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = raise.send(true);
    });
    let started = Instant::now();
    let summary = jobs
        .run_import(None, "orders", stop, &|_| {})
        .await
        .unwrap();
    assert!(summary.stopped);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(streams.load(Ordering::SeqCst), 1);
    // A stop is not a failure: the history says "stopped", with no error.
    let history = jobs.history(None, "orders", 1).await.unwrap();
    assert_eq!(
        history[0].status(),
        extdata_jobs::RunStatus::Stopped,
        "{history:?}"
    );
    assert_eq!(history[0].error, None, "{history:?}");
    jobs.close().await;
}

#[test]
fn retry_settings_are_checked() {
    let fixture = Fixture::new();
    let config = fixture.dir.join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "{SQLITE_CONNECTORS}\n{}",
            body(r#"{ attempts = 0, backof = "1s", max_time = "soon", backoff = "2s", max_backoff = "1s" }"#)
        ),
    )
    .unwrap();
    let problems = Jobs::from_path(&config).unwrap_err().to_string();
    for expected in [
        "retry.attempts: must be a whole number from 1",
        "retry.backof: unknown field; did you mean `backoff`?",
        "retry.max_time:",
        "retry.max_backoff: must not be shorter than retry.backoff",
    ] {
        assert!(problems.contains(expected), "{expected}\n{problems}");
    }
}
