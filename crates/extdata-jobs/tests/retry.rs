//! Retries: a run that fails with a temporary error is tried again after a growing,
//! jittered wait, from its last checkpoint, within its bounds; other errors fail at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use extdata::ErrorKind;
use extdata_jobs::{Jobs, Stop};

mod support;
use support::*;

/// An import of the four seeded orders into a JSON-lines file, one row per batch.
fn body(retry: &str) -> String {
    orders_import(
        "orders",
        "id, email, total, created_at",
        &format!(
            "batch_size = 1\nretry = {retry}\nsink = {{ type = \"jsonl\", path = \"orders.jsonl\" }}"
        ),
    )
}

/// The import of [`body`] over the seeded orders, its source made [`flaky`].
struct Flaky {
    fixture: Fixture,
    jobs: Jobs,
    /// The failures left.
    left: Arc<AtomicUsize>,
    /// The streams opened.
    streams: Arc<AtomicUsize>,
}

/// A [`Flaky`] import with `retry` whose source fails `failures` streams with `kind`,
/// each after `after_rows` rows.
async fn flaky_import(retry: &str, failures: usize, kind: ErrorKind, after_rows: usize) -> Flaky {
    let fixture = Fixture::new();
    let plain = fixture.seeded(&body(retry)).await;
    let (jobs, left, streams) = flaky(plain, failures, kind, after_rows);
    Flaky {
        fixture,
        jobs,
        left,
        streams,
    }
}

impl Flaky {
    /// The ids in the sink file, in the order written.
    fn ids_written(&self) -> Vec<i64> {
        let text = std::fs::read_to_string(self.fixture.path("orders.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    }
}

#[tokio::test]
async fn temporary_errors_are_retried_with_growing_waits_and_counted_in_history() {
    let retry = r#"{ attempts = 4, backoff = "100ms", max_backoff = "150ms" }"#;
    let run = flaky_import(retry, 2, ErrorKind::Connect, 0).await;
    let started = Instant::now();
    let summary = import(&run.jobs, "orders").await;
    let elapsed = started.elapsed();
    assert_eq!(summary.attempts, 3);
    assert_eq!(run.streams.load(Ordering::SeqCst), 3);
    assert_eq!(run.left.load(Ordering::SeqCst), 0);
    assert_eq!(summary.counts.inserted, 4);
    // Waits: 50–100 ms, then 75–150 ms (doubled, capped at max_backoff, upper half).
    assert!(elapsed >= Duration::from_millis(125), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let history = run.jobs.history(None, "orders", 10).await.unwrap();
    assert_eq!(history.len(), 1, "the retries are one run: {history:?}");
    assert_eq!(
        (history[0].attempts, history[0].error.as_deref()),
        (3, None)
    );
    assert_eq!(run.ids_written(), [1, 2, 3, 4]);
    run.jobs.close().await;
}

#[tokio::test]
async fn a_retry_after_an_error_mid_result_resumes_at_the_checkpoint_without_duplicates() {
    // The first try reads two rows (two committed batches), then the connection drops.
    let retry = r#"{ attempts = 3, backoff = "10ms" }"#;
    let run = flaky_import(retry, 1, ErrorKind::Connect, 2).await;
    let summary = import(&run.jobs, "orders").await;
    assert_eq!(
        (summary.attempts, run.streams.load(Ordering::SeqCst)),
        (2, 2)
    );
    assert_eq!(run.ids_written(), [1, 2, 3, 4]);
    assert_eq!(summary.counts.inserted, 4);
    run.jobs.close().await;
}

#[tokio::test]
async fn a_permanent_error_fails_the_run_at_once() {
    let retry = r#"{ attempts = 5, backoff = "1s" }"#;
    let run = flaky_import(retry, 1, ErrorKind::Query, 0).await;
    let started = Instant::now();
    let error = try_import(&run.jobs, "orders").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Query);
    assert!(!error.to_string().contains("attempts"), "{error}");
    assert_eq!(run.streams.load(Ordering::SeqCst), 1);
    assert!(started.elapsed() < Duration::from_millis(900));
    let history = run.jobs.history(None, "orders", 10).await.unwrap();
    assert_eq!(history[0].attempts, 1);
    assert!(history[0].error.is_some());
    run.jobs.close().await;
}

#[tokio::test]
async fn retries_end_after_their_attempts() {
    let retry = r#"{ attempts = 3, backoff = "10ms" }"#;
    let run = flaky_import(retry, usize::MAX, ErrorKind::Timeout, 0).await;
    let error = try_import(&run.jobs, "orders").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(
        error.to_string().starts_with("gave up after 3 attempts: "),
        "{error}"
    );
    assert_eq!(run.streams.load(Ordering::SeqCst), 3);
    let history = run.jobs.history(None, "orders", 10).await.unwrap();
    assert_eq!(history[0].attempts, 3);
    assert!(
        history[0]
            .error
            .as_deref()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{history:?}"
    );
    run.jobs.close().await;
}

#[tokio::test]
async fn retries_end_when_the_next_would_start_after_max_time() {
    let retry =
        r#"{ attempts = 100, backoff = "100ms", max_backoff = "100ms", max_time = "450ms" }"#;
    let run = flaky_import(retry, usize::MAX, ErrorKind::Connect, 0).await;
    let started = Instant::now();
    try_import(&run.jobs, "orders").await.unwrap_err();
    let elapsed = started.elapsed();
    // Waits of 50–100 ms within 450 ms: 5 to 10 tries, never a wait past the bound.
    let tries = run.streams.load(Ordering::SeqCst);
    assert!((5..=10).contains(&tries), "{tries} tries");
    assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
    run.jobs.close().await;
}

#[tokio::test]
async fn a_stop_during_the_wait_ends_the_run_at_once() {
    let retry = r#"{ attempts = 5, backoff = "30s", max_backoff = "30s" }"#;
    let run = flaky_import(retry, usize::MAX, ErrorKind::Connect, 0).await;
    let (raise, stop) = Stop::channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = raise.send(true);
    });
    let started = Instant::now();
    let summary = run
        .jobs
        .run_import(None, "orders", stop, &|_| {})
        .await
        .unwrap();
    assert!(summary.stopped);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(run.streams.load(Ordering::SeqCst), 1);
    // A stop is not a failure: the history says "stopped", with no error.
    let history = run.jobs.history(None, "orders", 1).await.unwrap();
    assert_eq!(
        history[0].status(),
        extdata_jobs::RunStatus::Stopped,
        "{history:?}"
    );
    assert_eq!(history[0].error, None, "{history:?}");
    run.jobs.close().await;
}

#[test]
fn retry_settings_are_checked() {
    let retry =
        r#"{ attempts = 0, backof = "1s", max_time = "soon", backoff = "2s", max_backoff = "1s" }"#;
    let problems = config_problems(&format!("{SQLITE_CONNECTORS}\n{}", body(retry)));
    assert_contains_all(
        &problems,
        &[
            "retry.attempts: must be a whole number from 1",
            "retry.backof: unknown field; did you mean `backoff`?",
            "retry.max_time:",
            "retry.max_backoff: must not be shorter than retry.backoff",
        ],
    );
}
