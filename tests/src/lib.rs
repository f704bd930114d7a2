#![doc = include_str!("../README.md")]

mod capabilities;
pub mod cases;
#[cfg(feature = "arrow")]
pub mod columnar;
mod harness;
pub mod latency;
pub mod support;

pub use capabilities::{Capabilities, RunningProbe, TypeCase, decimal};
pub use harness::{Harness, SourceFactory};
pub use support::require_or_skip;

/// Used by [`conformance_tests!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::harness::run_case;
    pub use crate::support::{block_on, exclusive};
}

/// [`conformance_tests!`] over each transport of a [`support::TestServer`]: modules
/// `tcp`, `unix_socket` and `tls_verify_full`. `$harness` is the backend's
/// `async fn(fn(&TestServer) -> ConnectorConfig) -> Option<Harness>`.
#[macro_export]
macro_rules! test_server_conformance_tests {
    ($harness:path) => {
        async fn over_tcp() -> Option<$crate::Harness> {
            $harness($crate::support::TestServer::tcp).await
        }

        async fn over_unix_socket() -> Option<$crate::Harness> {
            $harness($crate::support::TestServer::unix).await
        }

        async fn over_verified_tls() -> Option<$crate::Harness> {
            $harness($crate::support::TestServer::tls).await
        }

        $crate::conformance_tests!(tcp => over_tcp);
        $crate::conformance_tests!(unix_socket => over_unix_socket);
        $crate::conformance_tests!(tls_verify_full => over_verified_tls);
    };
}

/// The names of the cases [`conformance_tests!`] generates, in order.
pub const CASES: &[&str] = &[
    "ping_returns_server_version",
    "values_round_trip_exactly",
    "nulls_round_trip_in_every_column_type",
    "parameters_are_bound_by_name",
    "missing_or_unused_parameter_is_rejected",
    "hostile_parameter_is_bound_not_spliced",
    "hostile_value_in_insert_cannot_drop_table",
    "errors_have_kind_and_connector",
    "timeout_returns_promptly_and_cancels_on_server",
    "repeated_timeouts_do_not_leak_connections",
    "connector_query_timeout_applies",
    "stream_delivers_every_row_in_order",
    "stream_starts_before_result_is_complete",
    "dropped_stream_leaves_source_usable",
    "query_max_rows_truncates",
    "execute_reports_affected_rows",
    "batch_is_atomic_where_supported",
    "batch_commits_every_statement_and_returns_their_counts",
    "failed_batch_statement_leaves_no_row",
    "timed_out_batch_is_cancelled_on_server_and_leaves_no_row",
    "dropped_batch_call_is_cancelled_not_pooled_inside_its_transaction",
    "batch_refuses_transaction_control_before_running",
    "describe_reports_columns_without_running",
    "read_only_connector_refuses_writes",
    "wrong_password_is_auth_error_without_secret",
    "closed_source_refuses_calls",
    "concurrent_calls_get_their_own_results",
];

/// Generates one `#[test]` per conformance case in a module (`conformance` unless
/// named), each running the case against the harness of `setup`.
///
/// The cases that assert wall-clock bounds or burn CPU (see [`support::TIMING_CASES`])
/// run one at a time within a test process, so they do not slow each other down.
///
/// `setup` is an `async fn() -> Option<Harness>` visible where the macro is invoked;
/// `None` means the backend is not configured here (build it with
/// [`require_or_skip`], which fails instead when `EXTDATA_TEST_REQUIRE` names the
/// backend). Each test gets a fresh harness and its own runtime; tables a case
/// created are dropped afterwards, whether the case passed or not.
///
/// ```no_run
/// // crates/extdata-<db>/tests/conformance.rs
/// use extdata_conformance::{Harness, require_or_skip};
///
/// async fn setup() -> Option<Harness> {
///     // Read EXTDATA_TEST_* settings and build the harness; when they are missing:
///     require_or_skip("example", "EXTDATA_TEST_EXAMPLE_HOST is not set")
/// }
/// extdata_conformance::conformance_tests!(setup);
///
/// // A second configuration of the same backend gets a module of its own:
/// async fn setup_tls() -> Option<Harness> {
///     require_or_skip("example", "no TLS server here")
/// }
/// extdata_conformance::conformance_tests!(over_tls => setup_tls);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident => $setup:path) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_test!($setup; ping_returns_server_version);
            $crate::__conformance_test!($setup; values_round_trip_exactly);
            $crate::__conformance_test!($setup; nulls_round_trip_in_every_column_type);
            $crate::__conformance_test!($setup; parameters_are_bound_by_name);
            $crate::__conformance_test!($setup; missing_or_unused_parameter_is_rejected);
            $crate::__conformance_test!($setup; hostile_parameter_is_bound_not_spliced);
            $crate::__conformance_test!($setup; hostile_value_in_insert_cannot_drop_table);
            $crate::__conformance_test!($setup; errors_have_kind_and_connector);
            $crate::__conformance_test!($setup; timeout_returns_promptly_and_cancels_on_server);
            $crate::__conformance_test!($setup; repeated_timeouts_do_not_leak_connections);
            $crate::__conformance_test!($setup; connector_query_timeout_applies);
            $crate::__conformance_test!($setup; stream_delivers_every_row_in_order);
            $crate::__conformance_test!($setup; stream_starts_before_result_is_complete);
            $crate::__conformance_test!($setup; dropped_stream_leaves_source_usable);
            $crate::__conformance_test!($setup; query_max_rows_truncates);
            $crate::__conformance_test!($setup; execute_reports_affected_rows);
            $crate::__conformance_test!($setup; batch_is_atomic_where_supported);
            $crate::__conformance_test!($setup; batch_commits_every_statement_and_returns_their_counts);
            $crate::__conformance_test!($setup; failed_batch_statement_leaves_no_row);
            $crate::__conformance_test!($setup; timed_out_batch_is_cancelled_on_server_and_leaves_no_row);
            $crate::__conformance_test!($setup; dropped_batch_call_is_cancelled_not_pooled_inside_its_transaction);
            $crate::__conformance_test!($setup; batch_refuses_transaction_control_before_running);
            $crate::__conformance_test!($setup; describe_reports_columns_without_running);
            $crate::__conformance_test!($setup; read_only_connector_refuses_writes);
            $crate::__conformance_test!($setup; wrong_password_is_auth_error_without_secret);
            $crate::__conformance_test!($setup; closed_source_refuses_calls);
            $crate::__conformance_test!($setup; concurrent_calls_get_their_own_results);
        }
    };
    ($setup:path) => {
        $crate::conformance_tests!(conformance => $setup);
    };
}

/// The value of an `Option`, or `return` from the enclosing test: how a backend's test
/// takes a server that [`require_or_skip`] let it skip.
///
/// ```
/// async fn server() -> Option<u16> {
///     None
/// }
/// async fn a_test() {
///     let port = extdata_conformance::some_or_return!(server().await);
///     unreachable!("skipped before using {port}");
/// }
/// # extdata_conformance::support::block_on(a_test());
/// ```
#[macro_export]
macro_rules! some_or_return {
    ($option:expr) => {
        match $option {
            ::std::option::Option::Some(value) => value,
            ::std::option::Option::None => return,
        }
    };
}

/// One test of [`conformance_tests!`]; not part of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($setup:path; $case:ident) => {
        #[test]
        pub(super) fn $case() {
            let _exclusive = $crate::__private::exclusive(stringify!($case));
            $crate::__private::block_on(async {
                if let ::std::option::Option::Some(harness) = $setup().await {
                    $crate::__private::run_case(&harness, $crate::cases::$case(&harness)).await;
                }
            });
        }
    };
}
