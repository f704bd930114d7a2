//! Behaviour against the live HiveServer2 servers (Spark Thrift server, NONE and NOSASL).

mod common;

use std::time::Instant;

use common::{Mode, build, config};
use extdata_conformance::support::{block_on, ok};
use extdata_core::{QueryOptions, Statement, Value};

#[test]
fn smoke_query_both_modes() {
    block_on(async {
        for mode in [Mode::Plain, Mode::NoSasl] {
            let Some(config) = config(mode) else { return };
            let source = build(&config).unwrap();
            let started = Instant::now();
            let info = ok(source.ping().await, "ping");
            eprintln!(
                "{mode:?}: version {} in {:?}",
                info.version,
                started.elapsed()
            );
            let rows = ok(
                source
                    .query(
                        &Statement::new("SELECT 1 AS one, 'x' AS s"),
                        &QueryOptions::default(),
                    )
                    .await,
                "query",
            );
            assert_eq!(
                rows.rows[0].values(),
                &[Value::I32(1), Value::Text("x".into())]
            );
            source.close().await;
        }
    });
}
