//! `execute_batch` checks only PostgreSQL can make. What every backend whose batches are
//! atomic must do — commit all or nothing, stop a timed-out or dropped batch on the
//! server, refuse transaction control, leave the connection out of any transaction — is
//! checked by the conformance suite (`tests/conformance.rs`, the `batch_*` cases).

mod support;

use std::time::Duration;

use extdata_core::{ErrorKind, ExternalSource, QueryOptions, Statement, Value};

use support::{bounded_pool, scalar};

/// Timed-out batches on a one-connection pool give the connection back: the pool's own
/// state shows none in use and no second one opened.
#[tokio::test]
async fn timed_out_batches_return_their_connection_to_the_pool() {
    let server = server!();
    let pg = bounded_pool(server.tcp(), 1, "5s");
    for round in 0..3 {
        let err = pg
            .execute_batch(
                &[Statement::new("SELECT pg_sleep(30)")],
                &QueryOptions::default().with_timeout(Duration::from_secs(1)),
            )
            .await
            .expect_err("the batch must time out");
        assert_eq!(err.kind(), ErrorKind::Timeout, "round {round}: {err}");
    }
    assert_eq!(
        scalar(&pg, "SELECT 1").await,
        Value::I32(1),
        "the pool serves"
    );
    let state = pg.pool_state().expect("pool in use");
    assert_eq!(state.in_use, 0, "{state:?}");
    assert!(state.open <= 1, "{state:?}");
}
