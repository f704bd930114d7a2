//! Without Oracle's client libraries the first call fails fast with a `Connect`
//! error that says what is missing and how to install it. This runs wherever
//! Oracle Instant Client is not installed (CI, these machines); where it is
//! installed the test says so and checks nothing about the message.

mod support;

use std::time::{Duration, Instant};

use extdata_core::{ConnectorConfig, DbKind, ErrorKind, ExternalSource};
use extdata_oracle::{OracleSource, SPEC};

const PASSWORD: &str = "Sentinel-Pw-9c41";

fn source() -> OracleSource {
    // A port nobody listens on: even with a client library, nothing is reached.
    let config = ConnectorConfig::new("ora-missing-client", DbKind::Oracle)
        .with_host("127.0.0.1")
        .with_port(9)
        .with_database("FREEPDB1")
        .with_username("app")
        .with_password(PASSWORD)
        .with_connect_timeout(Duration::from_secs(3))
        .with_query_timeout(Duration::from_secs(5));
    OracleSource::build(config.validate_with(Some(&SPEC)).expect("valid config"))
        .expect("build does no I/O")
}

#[tokio::test]
async fn missing_client_library_is_a_clear_connect_error() {
    if support::client_library_installed() {
        eprintln!(
            "skipped: missing_client_library_is_a_clear_connect_error: an Oracle Client library is installed here"
        );
        return;
    }
    let source = source();
    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(20), source.ping())
        .await
        .expect("ping must not hang without a client library")
        .expect_err("ping cannot succeed without a client library");
    let elapsed = started.elapsed();
    println!("{error}");
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert!(!error.is_temporary(), "installing a library is not a retry");
    assert_eq!(error.sql_state(), Some("DPI-1047"));
    let text = error.to_string();
    assert!(
        text.starts_with(
            "connector `ora-missing-client`: Oracle Client libraries not found (DPI-1047)"
        ),
        "{text}"
    );
    for needle in ["Instant Client", "LD_LIBRARY_PATH", "libclntsh"] {
        assert!(text.contains(needle), "`{needle}` missing from: {text}");
    }
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    for shown in [text, format!("{error:?}"), format!("{source:?}")] {
        assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
    }
    // A second call fails the same way (no cached broken state, no hang).
    let again = source.ping().await.expect_err("still no client library");
    assert_eq!(again.kind(), ErrorKind::Connect);
    assert_eq!(again.sql_state(), Some("DPI-1047"));
}

#[tokio::test]
async fn build_loads_no_library_and_needs_no_runtime() {
    // Built outside any runtime, before any call: must not touch ODPI-C.
    let source = std::thread::spawn(source)
        .join()
        .expect("build in a plain thread");
    assert_eq!(source.name(), "ora-missing-client");
    let debug = format!("{source:?}");
    assert!(debug.contains("127.0.0.1:9/FREEPDB1"), "{debug}");
    assert!(!debug.contains(PASSWORD), "{debug}");
}
