//! The conformance suite against the live servers, one per transport × authentication
//! combination that runs here: Spark's Thrift server with
//! `hive.server2.authentication=NONE` (SASL PLAIN), with `NOSASL` (raw Thrift), with
//! `LDAP` over TLS (SASL PLAIN, the password checked by the test OpenLDAP server), and
//! with the HTTP transport: NONE over plain HTTP, LDAP over HTTPS (HTTP Basic), and —
//! with the `gssapi` feature, in the test KDC's Kerberos environment (`scripts/test.sh`
//! runs `spnego::` so) — KERBEROS over HTTP (SPNEGO).

mod common;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::NaiveDate;
use common::{Mode, build, config};
use extdata_conformance::{Capabilities, Harness, TypeCase};
use extdata_core::{Decimal, Value};

fn decimal(text: &str) -> Value {
    Value::Decimal(text.parse::<Decimal>().expect("a decimal"))
}

/// What Spark's Thrift server can do, and how its SQL is spelled.
pub fn capabilities() -> Capabilities {
    let timestamp = |s: &str| {
        Value::Timestamp(
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").expect("timestamp"),
        )
    };
    Capabilities::new()
        .with_integer_type("INT")
        .with_text_type("STRING")
        // Parquet: Hive's default text format cannot hold newlines in values.
        .with_create_table(|table, columns| {
            let columns: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
            format!(
                "CREATE TABLE {table} ({}) USING parquet",
                columns.join(", ")
            )
        })
        // Counting a range: ~1e9 rows a second on two cores, and the range operator
        // checks for a kill, so a cancel stops it at once.
        .with_sleep_sql(|secs| {
            format!(
                "SELECT count(*) AS n FROM range({})",
                secs.max(1) * 1_000_000_000
            )
        })
        // One partition: rows arrive in order.
        .with_series_sql(|count| format!("SELECT id + 1 AS n FROM range(0, {count}, 1, 1)"))
        // Spark computes the whole result before the operation is FINISHED
        // (unless spark.sql.thriftServer.incrementalCollect=true).
        .with_streams_lazily(false)
        .with_timeout_repeats(5)
        // Spark stops cancelled tasks in the background; on a busy machine its next job
        // waits for their task slots (seen: SELECT 1 in 34 s at load 10 on 2 cores).
        .with_recovery_slack(Duration::from_secs(30))
        // Spark's Thrift server does not report modified rows; Parquet tables have no
        // UPDATE/DELETE.
        .with_reports_affected_rows(false)
        .with_supports_update(false)
        // NONE and NOSASL accept any password (`harness` sets it for LDAP).
        .with_passwords(false)
        .with_type_cases([
            TypeCase::exact("BOOLEAN", [Value::Bool(true), Value::Bool(false)]),
            TypeCase::exact(
                "TINYINT",
                [Value::I8(i8::MIN), Value::I8(0), Value::I8(i8::MAX)],
            ),
            TypeCase::exact("SMALLINT", [Value::I16(i16::MIN), Value::I16(i16::MAX)]),
            TypeCase::exact(
                "INT",
                [Value::I32(i32::MIN), Value::I32(-1), Value::I32(i32::MAX)],
            ),
            TypeCase::exact("BIGINT", [Value::I64(i64::MIN), Value::I64(i64::MAX)]),
            TypeCase::exact(
                "FLOAT",
                [Value::F32(1.1), Value::F32(-3.4e38), Value::F32(f32::NAN)],
            ),
            TypeCase::exact(
                "DOUBLE",
                [
                    Value::F64(0.1),
                    Value::F64(-1.7976931348623157e308),
                    Value::F64(f64::INFINITY),
                ],
            ),
            TypeCase::exact(
                "DECIMAL(38,10)",
                [
                    decimal("1234567890123456789012345678.1234567890"),
                    decimal("-9999999999999999999999999999.9999999999"),
                    decimal("0.0000000001"),
                    decimal("0.0000000000"),
                ],
            )
            .with_conversion(decimal("1.5"), decimal("1.5000000000")),
            TypeCase::exact(
                "STRING",
                [
                    Value::Text(String::new()),
                    Value::Text("it's \\ \"q\" ${x} ✓ 🦀\n\ttab".into()),
                ],
            ),
            TypeCase::exact("VARCHAR(20)", [Value::Text("varchar ✓".into())]),
            TypeCase::exact("BINARY", [Value::Bytes(vec![0, 1, 0xff, b'\'', b'\\'])]),
            TypeCase::exact(
                "DATE",
                [
                    Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).expect("date")),
                    Value::Date(NaiveDate::from_ymd_opt(1, 1, 1).expect("date")),
                ],
            ),
            TypeCase::exact(
                "TIMESTAMP",
                [
                    timestamp("2024-02-29 23:59:59.123456"),
                    timestamp("1999-12-31 00:00:00"),
                ],
            ),
        ])
}

fn harness(mode: Mode) -> Option<Harness> {
    let mut config = config(mode)?;
    // The server-side cancel is proved from the server's log (Spark has no activity
    // view over SQL): the statement is seen running, then closed with its jobs.
    let capabilities = capabilities()
        // NONE and NOSASL accept any password; LDAP checks it.
        .with_passwords(mode.checks_passwords())
        .with_running_probe(move |_source, marker| common::running_on_server(mode, marker));
    // 48 concurrent calls share the pool's sessions, each a Spark job: on a busy machine
    // the last ones wait longer than the default (the connect timeout, 10 s).
    config.pool.acquire_timeout = Some("60s".to_owned());
    Some(
        Harness::new(config, capabilities, build)
            .unwrap_or_else(|e| panic!("the hive {mode:?} config is invalid: {e}")),
    )
}

/// The Spark servers share this machine's two cores, so cases run one at a time: a
/// case's time bounds then measure the client, not a queue of other cases' Spark jobs.
static SPARK: LazyLock<Arc<tokio::sync::Mutex<()>>> = LazyLock::new(Default::default);

async fn one_at_a_time(mode: Mode) -> Option<Harness> {
    let turn = SPARK.clone().lock_owned().await;
    Some(harness(mode)?.with_guard(turn))
}

async fn setup_plain() -> Option<Harness> {
    one_at_a_time(Mode::Plain).await
}

async fn setup_nosasl() -> Option<Harness> {
    one_at_a_time(Mode::NoSasl).await
}

async fn setup_http() -> Option<Harness> {
    one_at_a_time(Mode::Http).await
}

async fn setup_ldap() -> Option<Harness> {
    one_at_a_time(Mode::Ldap).await
}

async fn setup_ldap_http() -> Option<Harness> {
    one_at_a_time(Mode::LdapHttp).await
}

extdata_conformance::conformance_tests!(sasl_plain => setup_plain);
extdata_conformance::conformance_tests!(nosasl => setup_nosasl);
extdata_conformance::conformance_tests!(ldap => setup_ldap);
extdata_conformance::conformance_tests!(http => setup_http);
extdata_conformance::conformance_tests!(ldap_http => setup_ldap_http);

#[cfg(feature = "gssapi")]
async fn setup_spnego() -> Option<Harness> {
    one_at_a_time(Mode::Spnego).await
}

#[cfg(feature = "gssapi")]
extdata_conformance::conformance_tests!(spnego => setup_spnego);
