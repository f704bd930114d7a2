//! The PostgreSQL sink's password in no error, history, `Debug` or log line.
//!
//! Alone in its test binary, with the process-wide subscriber of `captured_logs`:
//! tracing caches each log call site's interest when the call site is first reached, and
//! a call site first reached by a concurrent test with no subscriber would stay silent.

use std::time::Duration;

use extdata::ErrorKind;
use extdata_conformance::support::{
    SENTINEL_PASSWORD, assert_error_has_no_secret, assert_no_secret, captured_logs, env,
};

mod support;
use support::*;

/// A PostgreSQL sink that cannot connect (closed port; and, with the test server, a
/// wrong password) fails the import without its URL's password in the error, its
/// source chain, the run history, any `Debug` output or any log line.
#[tokio::test]
async fn postgres_sink_password_is_in_no_error_debug_or_log_line() {
    captured_logs();

    let mut urls = vec![format!(
        "postgresql://extdata_pw:{SENTINEL_PASSWORD}@127.0.0.1:1/extdata_test"
    )];
    if let (Some(port), Some(user), Some(database), Some(ca)) = (
        env("EXTDATA_TEST_POSTGRES_PORT"),
        env("EXTDATA_TEST_POSTGRES_USER"),
        env("EXTDATA_TEST_POSTGRES_DATABASE"),
        env("EXTDATA_TEST_CA"),
    ) {
        // The server's certificate names `localhost`; the sink verifies it in full.
        urls.push(format!(
            "postgresql://{user}:{SENTINEL_PASSWORD}@localhost:{port}/{database}\
             ?sslrootcert={ca}"
        ));
    }
    for url in urls {
        let fields = format!(
            "retry = {{ attempts = 1 }}\nsink = {{ type = \"postgresql\", url = \"{url}\", table = \"nowhere\" }}"
        );
        let (_fixture, jobs) = seeded_import("to-pg", "id, email, created_at", &fields).await;
        let started = std::time::Instant::now();
        let error = try_import(&jobs, "to-pg")
            .await
            .expect_err("the sink cannot connect");
        let elapsed = started.elapsed();
        eprintln!("sink failed after {elapsed:?}: {error}");
        assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
        assert!(
            matches!(error.kind(), ErrorKind::Connect | ErrorKind::Auth),
            "{error}"
        );
        assert_error_has_no_secret(&error, SENTINEL_PASSWORD, "the sink's connect error");
        let history = jobs.history(None, "to-pg", 10).await.unwrap();
        assert_eq!(history.len(), 1, "{history:?}");
        assert!(history[0].error.is_some(), "{history:?}");
        assert_no_secret(
            &format!("{history:?}"),
            SENTINEL_PASSWORD,
            "the run history",
        );
        assert_no_secret(&format!("{jobs:?}"), SENTINEL_PASSWORD, "Debug of the jobs");
        assert_no_secret(
            &format!("{:?}", jobs.config()),
            SENTINEL_PASSWORD,
            "Debug of the config",
        );
        jobs.close().await;
    }
    let logs = captured_logs();
    assert!(!logs.is_empty(), "the subscriber saw the runs' logs");
    assert_no_secret(&logs, SENTINEL_PASSWORD, "the log lines");
}
