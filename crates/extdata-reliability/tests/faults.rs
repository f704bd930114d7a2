//! Faults between the client and each live server, injected by the [`FaultProxy`]:
//! a path that goes silent mid-query, a server that refuses or never answers, a reset
//! in the middle of a stream, latency. Every call must end within its bound, with an
//! error that says what happened, and the source must serve again once the path heals.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use extdata::{ConnectorConfig, ErrorKind, ExternalSource, PoolConfig, QueryOptions, Statement};
use extdata_conformance::support::{block_on, error_texts, unique_name};
use extdata_reliability::{Backend, Fault, FaultProxy, Server, source};
use futures::StreamExt as _;

/// Tests of one backend run one at a time (their bounds are wall-clock bounds, and the
/// Spark server shares the two cores with everything else); backends run in parallel.
/// Hive's servers (one per transport) count as one backend: their JVMs share the cores.
fn exclusive(backend: Backend) -> MutexGuard<'static, ()> {
    static LOCKS: [Mutex<()>; Backend::LIVE.len()] =
        [const { Mutex::new(()) }; Backend::LIVE.len()];
    let backend = if backend.is_hive() {
        Backend::Hive
    } else {
        backend
    };
    let index = Backend::LIVE
        .iter()
        .position(|b| *b == backend)
        .unwrap_or_default();
    LOCKS[index]
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Bound on any single await of these tests: a hang fails the test instead of the run.
const HANG: Duration = Duration::from_secs(30);

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {HANG:?}"))
}

fn pool(acquire_timeout: &str) -> PoolConfig {
    PoolConfig {
        max_size: Some(2.into()),
        acquire_timeout: Some(acquire_timeout.into()),
        ..PoolConfig::default()
    }
}

/// How long until `SELECT 1` answers again (tried every 100 ms, each bounded to 2 s).
async fn time_until_serving(source: &Arc<dyn ExternalSource>, within: Duration) -> Duration {
    let started = Instant::now();
    let opts = QueryOptions::default().with_timeout(Duration::from_secs(2));
    loop {
        let outcome = bounded("SELECT 1", source.query(&Statement::new("SELECT 1"), &opts)).await;
        match outcome {
            Ok(_) => return started.elapsed(),
            Err(error) if started.elapsed() > within => {
                panic!("the source does not serve {within:?} after the fault ended: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    BlackholeMidQuery,
    RefusedConnect,
    SilentConnect,
    SlowPath,
}

/// Checks `elapsed` against the issue's `required` bound.
fn assert_bound(backend: Backend, case: Case, elapsed: Duration, required: Duration, what: &str) {
    assert!(
        elapsed < required,
        "{} {case:?}: {what}: {elapsed:?}, bound {required:?}",
        backend.kind()
    );
}

/// What a fault case gets: its backend, the server and a proxy in front of it.
struct Setup {
    backend: Backend,
    server: Server,
    proxy: FaultProxy,
}

impl Setup {
    /// The server's connector, through the proxy.
    fn through(&self) -> ConnectorConfig {
        self.server.through(&self.proxy)
    }
}

/// Runs the fault case `case` against `backend` (one at a time per backend) through a
/// fresh [`FaultProxy`] to its server, then prints the figures it measured.
fn run<F: Future<Output = String>>(backend: Backend, case: &str, body: impl FnOnce(Setup) -> F) {
    let _one = exclusive(backend);
    block_on(async {
        let Some(server) = backend.server() else {
            return;
        };
        let proxy = server.proxy().await;
        let figures = body(Setup {
            backend,
            server,
            proxy,
        })
        .await;
        eprintln!("measured: {} {case}: {figures}", backend.kind());
    });
}

/// Pings `setup`'s server through its proxy, which lets no connection through, with a 2 s acquire
/// timeout and a longer (5 s) connect timeout on purpose: the acquire timeout must bound
/// the call (+250 ms). The source, the error and how long the ping took.
async fn ping_fails_within_acquire_timeout(
    setup: &Setup,
    case: Case,
) -> (Arc<dyn ExternalSource>, extdata::Error, Duration) {
    let acquire_timeout = Duration::from_secs(2);
    let config = setup
        .through()
        .with_connect_timeout(Duration::from_secs(5))
        .with_pool(pool("2s"));
    let source = source(&config);
    let started = Instant::now();
    let error = bounded(&format!("ping ({case:?})"), source.ping())
        .await
        .expect_err("the server cannot be reached");
    let elapsed = started.elapsed();
    assert_bound(
        setup.backend,
        case,
        elapsed,
        acquire_timeout + Duration::from_millis(250),
        &format!("acquiring failed ({error})"),
    );
    (source, error, elapsed)
}

async fn blackhole_mid_query_fails_within_query_timeout(setup: Setup) -> String {
    let query_timeout = Duration::from_secs(2);
    let config = setup
        .through()
        .with_query_timeout(query_timeout)
        .with_pool(pool("2s"));
    let source = source(&config);
    bounded("warm-up ping", source.ping()).await.expect("ping");

    let marker = unique_name("blackhole");
    let statement = Statement::new(setup.backend.sleep_sql(6, &marker));
    let started = Instant::now();
    let call = tokio::spawn({
        let source = Arc::clone(&source);
        async move { source.query(&statement, &QueryOptions::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    setup.proxy.set(Fault::Blackhole);
    let outcome = bounded("the blackholed query", call)
        .await
        .expect("query task");
    let elapsed = started.elapsed();
    let error = outcome.expect_err("a query over a silent path cannot succeed");
    assert!(
        matches!(error.kind(), ErrorKind::Timeout | ErrorKind::Connect),
        "expected Timeout or Connect, got {}: {error}",
        error.kind()
    );
    assert_bound(
        setup.backend,
        Case::BlackholeMidQuery,
        elapsed,
        query_timeout + Duration::from_secs(1),
        &format!("the call returned ({error})"),
    );
    setup.proxy.set(Fault::Pass);
    let recovered = time_until_serving(&source, Duration::from_secs(10)).await;
    format!(
        "failed after {elapsed:?} ({}), serving again {recovered:?} after the path healed",
        error.kind()
    )
}

async fn refused_connect_fails_within_acquire_timeout_and_says_why(setup: Setup) -> String {
    setup.proxy.refuse().await;
    let (source, error, elapsed) =
        ping_fails_within_acquire_timeout(&setup, Case::RefusedConnect).await;
    assert!(
        matches!(error.kind(), ErrorKind::Connect | ErrorKind::Timeout),
        "{}: {error}",
        error.kind()
    );
    let texts = error_texts(&error).join("\n").to_lowercase();
    assert!(
        texts.contains("refused"),
        "the error does not say the connection was refused: {error}"
    );
    setup.proxy.accept().await.expect("listen again");
    let recovered = time_until_serving(&source, Duration::from_secs(10)).await;
    format!("failed after {elapsed:?}: {error}; serving {recovered:?} after it listened again")
}

async fn silent_server_fails_within_acquire_timeout(setup: Setup) -> String {
    setup.proxy.set(Fault::Blackhole);
    let (source, error, elapsed) =
        ping_fails_within_acquire_timeout(&setup, Case::SilentConnect).await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    let texts = error_texts(&error).join("\n").to_lowercase();
    assert!(
        texts.contains("within 2"),
        "the error does not name the acquire budget it ran out of: {error}"
    );
    assert!(
        ["timed out", "timeout", "did not answer"]
            .iter()
            .any(|words| texts.contains(words)),
        "the error does not say the server did not answer in time: {error}"
    );
    setup.proxy.set(Fault::Pass);
    let recovered = time_until_serving(&source, Duration::from_secs(10)).await;
    format!("failed after {elapsed:?}: {error}; serving {recovered:?} after it answered")
}

async fn reset_mid_stream_ends_with_an_error(setup: Setup) -> String {
    let config = setup.through().with_pool(pool("5s"));
    let source = source(&config);
    let total = setup.backend.long_stream_rows();
    // Opening is not what this test measures. A Spark server may still be finishing the
    // job of this backend's previous fault test (a blackholed or slowed query runs on
    // to its end on the server, holding its two task slots): Hive gets a minute.
    let open_within = if setup.backend.is_hive() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    };
    let mut stream = tokio::time::timeout(
        open_within + Duration::from_secs(5),
        source.stream(
            &Statement::new(setup.backend.series_sql(total)),
            &QueryOptions::default().with_timeout(open_within),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("opening the stream hung for {open_within:?}"))
    .expect("the stream opens");
    let mut rows = 0u64;
    while rows < 1_000 {
        match bounded("the first rows", stream.next()).await {
            Some(Ok(_)) => rows += 1,
            Some(Err(error)) => panic!("error before the reset, after {rows} rows: {error}"),
            None => panic!("the stream ended after {rows} rows before the reset"),
        }
    }
    setup.proxy.reset_all();
    let reset_at = Instant::now();
    let error = loop {
        match bounded("the stream after the reset", stream.next()).await {
            Some(Ok(_)) => rows += 1,
            Some(Err(error)) => break error,
            None => panic!(
                "the stream ended without error after {rows} of {total} rows: a reset \
                 connection must not look like a complete result"
            ),
        }
    };
    let noticed = reset_at.elapsed();
    assert!(rows < total, "all rows arrived despite the reset");
    drop(stream);
    let recovered = time_until_serving(&source, Duration::from_secs(10)).await;
    format!(
        "error after {rows} rows, {noticed:?} after the reset ({}): {error}; serving again {recovered:?} later",
        error.kind()
    )
}

async fn latency_slows_calls_and_a_slower_path_times_out(setup: Setup) -> String {
    let config = setup.through().with_pool(pool("5s"));
    let source = source(&config);
    bounded("warm-up ping", source.ping()).await.expect("ping");
    let delay = Duration::from_millis(100);
    setup.proxy.set(Fault::Delay(delay));
    let started = Instant::now();
    let rows = bounded(
        "a query over a slow path",
        source.query(&Statement::new("SELECT 1"), &QueryOptions::default()),
    )
    .await
    .expect("latency alone must not fail a call");
    let slow = started.elapsed();
    assert_eq!(rows.rows.len(), 1);
    assert!(slow >= delay, "the delay was not applied ({slow:?})");

    setup.proxy.set(Fault::Delay(Duration::from_secs(3)));
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let error = bounded(
        "a query over a path slower than its timeout",
        source.query(
            &Statement::new("SELECT 1"),
            &QueryOptions::default().with_timeout(timeout),
        ),
    )
    .await
    .expect_err("a path slower than the timeout must time out");
    let elapsed = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_bound(
        setup.backend,
        Case::SlowPath,
        elapsed,
        timeout + Duration::from_secs(1),
        "timed out",
    );
    setup.proxy.set(Fault::Pass);
    let recovered = time_until_serving(&source, Duration::from_secs(15)).await;
    format!(
        "SELECT 1 with 100 ms per chunk took {slow:?}; with 3 s per chunk timed out after {elapsed:?}; serving again {recovered:?} later"
    )
}

macro_rules! fault_tests {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn blackhole_mid_query_fails_within_query_timeout_plus_1s() {
                run(
                    $backend,
                    "blackhole mid-query",
                    blackhole_mid_query_fails_within_query_timeout,
                );
            }

            #[test]
            fn refused_connect_fails_within_acquire_timeout_and_says_why() {
                run(
                    $backend,
                    "server refusing",
                    super::refused_connect_fails_within_acquire_timeout_and_says_why,
                );
            }

            #[test]
            fn silent_server_fails_within_acquire_timeout() {
                run(
                    $backend,
                    "server silent at connect",
                    super::silent_server_fails_within_acquire_timeout,
                );
            }

            #[test]
            fn reset_mid_stream_ends_with_an_error_not_a_shorter_result() {
                run(
                    $backend,
                    "reset mid-stream",
                    reset_mid_stream_ends_with_an_error,
                );
            }

            #[test]
            fn latency_slows_calls_and_a_slower_path_times_out() {
                run(
                    $backend,
                    "latency",
                    super::latency_slows_calls_and_a_slower_path_times_out,
                );
            }
        }
    };
}

fault_tests!(postgres, Backend::Postgres);
fault_tests!(mysql, Backend::MySql);
fault_tests!(clickhouse, Backend::ClickHouse);
fault_tests!(clickhouse26, Backend::ClickHouse26);
fault_tests!(hive, Backend::Hive);
fault_tests!(hive_http, Backend::HiveHttp);
fault_tests!(hive_https, Backend::HiveHttps);

/// The proxy itself: forwards, refuses, listens again on the same port, resets.
#[test]
fn proxy_forwards_refuses_and_resets() {
    block_on(async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = FaultProxy::start(upstream).await.unwrap();
        let mut client = tokio::net::TcpStream::connect(proxy.address())
            .await
            .unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"ping");
        assert_eq!(proxy.open_connections(), 1);

        proxy.set(Fault::Blackhole);
        client.write_all(b"lost").await.unwrap();
        let silent =
            tokio::time::timeout(Duration::from_millis(300), client.read(&mut answer)).await;
        assert!(silent.is_err(), "a blackholed path answered");
        proxy.set(Fault::Pass);
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(
            &answer, b"lost",
            "held data is delivered once the path heals"
        );

        proxy.reset_all();
        let after_reset = tokio::time::timeout(Duration::from_secs(2), client.read(&mut answer))
            .await
            .expect("a reset connection does not hang");
        let reset = after_reset.expect_err("a reset is an error, not an end of file");
        assert_eq!(reset.kind(), std::io::ErrorKind::ConnectionReset);

        proxy.refuse().await;
        let refused = tokio::net::TcpStream::connect(proxy.address())
            .await
            .expect_err("refusing");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        proxy.accept().await.unwrap();
        let mut again = tokio::net::TcpStream::connect(proxy.address())
            .await
            .unwrap();
        again.write_all(b"back").await.unwrap();
        again.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"back");

        assert!(
            FaultProxy::start("192.0.2.1:5432".parse().unwrap())
                .await
                .is_err(),
            "the proxy forwards to loopback only"
        );
    });
}
