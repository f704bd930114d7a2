//! The harness and the macro, checked against a recording fake source (no database).

use std::sync::{Arc, Mutex};

use extdata_conformance::{Capabilities, Harness};
use extdata_core::{
    Column, ConnectorConfig, DbKind, ExternalSource, QueryOptions, Result, RowStream, ServerInfo,
    Statement, async_trait, closed_error,
};

/// Records the SQL it is asked to execute; answers every query with no rows.
#[derive(Debug, Default)]
struct RecordingSource {
    executed: Mutex<Vec<String>>,
}

#[async_trait]
impl ExternalSource for RecordingSource {
    fn name(&self) -> &str {
        "fake"
    }

    fn kind(&self) -> DbKind {
        DbKind::Sqlite
    }

    async fn ping(&self) -> Result<ServerInfo> {
        Ok(ServerInfo {
            version: "fake 1".to_owned(),
        })
    }

    async fn stream(&self, _: &Statement, _: &QueryOptions) -> Result<RowStream> {
        Ok(RowStream::new(
            Arc::from(Vec::new()),
            futures::stream::empty(),
        ))
    }

    async fn execute(&self, statement: &Statement, _: &QueryOptions) -> Result<u64> {
        self.executed
            .lock()
            .unwrap()
            .push(statement.sql().to_owned());
        Ok(0)
    }

    async fn describe(&self, _: &Statement, _: &QueryOptions) -> Result<Vec<Column>> {
        Err(closed_error("fake"))
    }

    async fn close(&self) {}
}

fn harness() -> (Harness, Arc<RecordingSource>) {
    let fake = Arc::new(RecordingSource::default());
    let shared = fake.clone();
    let config = ConnectorConfig::new("fake", DbKind::Sqlite).with_password("pw-in-config");
    let harness = Harness::new(config, Capabilities::new(), move |_| {
        Ok(shared.clone() as Arc<dyn ExternalSource>)
    })
    .expect("the fake factory cannot fail");
    (harness, fake)
}

#[test]
fn tables_are_dropped_even_when_the_case_panics() {
    let (harness, fake) = harness();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        extdata_conformance::__private::block_on(async {
            extdata_conformance::__private::run_case(&harness, async {
                let table = harness.create_table("t", &[("id", "INTEGER")]).await;
                assert!(table.starts_with("ect_t_"), "{table}");
                panic!("the case failed");
            })
            .await;
        })
    }));
    assert!(outcome.is_err(), "the case's panic must reach the test");
    let executed = fake.executed.lock().unwrap().clone();
    assert_eq!(executed.len(), 2, "{executed:?}");
    assert!(
        executed[0].starts_with("CREATE TABLE ect_t_"),
        "{executed:?}"
    );
    let table = executed[0]
        .trim_start_matches("CREATE TABLE ")
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(executed[1], format!("DROP TABLE IF EXISTS {table}"));
}

#[test]
fn harness_reads_the_config_password_for_secret_checks() {
    let (harness, _) = harness();
    assert_eq!(harness.password().as_deref(), Some("pw-in-config"));
    assert!(!format!("{harness:?}").contains("pw-in-config"));
}

#[test]
fn a_failing_case_fails_against_a_non_conforming_source() {
    // The fake keeps answering after close() and returns no rows for `SELECT`: the
    // cases must notice, or they could not fail at all.
    let (harness, _) = harness();
    for case in ["close", "params"] {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            extdata_conformance::__private::block_on(async {
                if case == "close" {
                    extdata_conformance::cases::closed_source_refuses_calls(&harness).await;
                } else {
                    extdata_conformance::cases::parameters_are_bound_by_name(&harness).await;
                }
            })
        }));
        assert!(
            outcome.is_err(),
            "case `{case}` passed against a fake source"
        );
    }
}

async fn unconfigured() -> Option<Harness> {
    None
}

// The macro expands in a test crate of its own (as in a backend's tests/conformance.rs)
// and names one test per case.
extdata_conformance::conformance_tests!(unconfigured);

#[test]
fn the_macro_generates_one_test_per_case() {
    let generated: &[fn()] = &[
        conformance::ping_returns_server_version,
        conformance::values_round_trip_exactly,
        conformance::nulls_round_trip_in_every_column_type,
        conformance::parameters_are_bound_by_name,
        conformance::missing_or_unused_parameter_is_rejected,
        conformance::hostile_parameter_is_bound_not_spliced,
        conformance::hostile_value_in_insert_cannot_drop_table,
        conformance::errors_have_kind_and_connector,
        conformance::timeout_returns_promptly_and_cancels_on_server,
        conformance::repeated_timeouts_do_not_leak_connections,
        conformance::connector_query_timeout_applies,
        conformance::stream_delivers_every_row_in_order,
        conformance::stream_starts_before_result_is_complete,
        conformance::dropped_stream_leaves_source_usable,
        conformance::query_max_rows_truncates,
        conformance::execute_reports_affected_rows,
        conformance::batch_is_atomic_where_supported,
        conformance::batch_commits_every_statement_and_returns_their_counts,
        conformance::failed_batch_statement_leaves_no_row,
        conformance::timed_out_batch_is_cancelled_on_server_and_leaves_no_row,
        conformance::dropped_batch_call_is_cancelled_not_pooled_inside_its_transaction,
        conformance::batch_refuses_transaction_control_before_running,
        conformance::describe_reports_columns_without_running,
        conformance::read_only_connector_refuses_writes,
        conformance::wrong_password_is_auth_error_without_secret,
        conformance::closed_source_refuses_calls,
        conformance::concurrent_calls_get_their_own_results,
    ];
    assert_eq!(generated.len(), extdata_conformance::CASES.len());
}
