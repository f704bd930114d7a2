//! The shared conformance suite against the real PostgreSQL server, over TCP, over the
//! unix socket and over TLS with `verify = full`.

mod support;

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use extdata_conformance::{Capabilities, Harness, TypeCase, decimal};
use extdata_core::{
    ConnectorConfig, ExternalSource, Interval, PoolConfig, QueryOptions, Scalar, Statement, Value,
};
use extdata_postgres::{PostgresSource, SPEC};

fn type_cases() -> Vec<TypeCase> {
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).expect("date");
    let time = NaiveTime::from_hms_micro_opt(13, 14, 15, 123_456).expect("time");
    let plus_0530 = FixedOffset::east_opt(5 * 3600 + 1800).expect("offset");
    let instant = DateTime::parse_from_rfc3339("2024-02-29T23:59:59.999999-08:00").expect("ts");
    vec![
        TypeCase::exact("BOOLEAN", [Value::Bool(true), Value::Bool(false)]),
        TypeCase::exact("SMALLINT", [Value::I16(i16::MIN), Value::I16(i16::MAX)]),
        TypeCase::exact("INTEGER", [Value::I32(i32::MIN), Value::I32(i32::MAX)]),
        TypeCase::exact("BIGINT", [Value::I64(i64::MIN), Value::I64(i64::MAX)]),
        TypeCase::exact(
            "REAL",
            [
                Value::F32(1.5),
                Value::F32(f32::NAN),
                Value::F32(f32::NEG_INFINITY),
            ],
        ),
        TypeCase::exact(
            "DOUBLE PRECISION",
            [
                Value::F64(f64::MIN_POSITIVE),
                Value::F64(f64::MAX),
                Value::F64(f64::NAN),
                Value::F64(f64::INFINITY),
            ],
        ),
        TypeCase::exact(
            "NUMERIC",
            [
                decimal("123456789012345678901234567890123456789012345.678901234567890123"),
                decimal("-0.000000000000000000000000000000000000000001"),
                decimal("0.00"),
                decimal("NaN"),
                decimal("Infinity"),
                decimal("-Infinity"),
            ],
        ),
        TypeCase::exact(
            "NUMERIC(65,30)",
            [decimal(
                "-12345678901234567890123456789012345.123456789012345678901234567890",
            )],
        )
        .with_conversion(decimal("1.5"), decimal("1.500000000000000000000000000000")),
        TypeCase::converted(
            "NUMERIC(20,0)",
            [(Value::U64(u64::MAX), decimal("18446744073709551615"))],
        ),
        TypeCase::exact(
            "TEXT",
            [Value::Text("héllo wörld ✓ 'quoted' \"double\"".into())],
        ),
        TypeCase::exact("VARCHAR(10)", [Value::Text("abc".into())]),
        TypeCase::converted(
            "CHAR(5)",
            [(Value::Text("ab".into()), Value::Text("ab   ".into()))],
        ),
        TypeCase::exact(
            "BYTEA",
            [
                Value::Bytes(vec![0, 1, 127, 128, 255]),
                Value::Bytes(vec![]),
            ],
        ),
        TypeCase::exact("DATE", [Value::Date(date)]),
        TypeCase::exact("TIME", [Value::Time(time)]),
        TypeCase::exact("TIMETZ", [Value::TimeTz(time, plus_0530)]),
        TypeCase::exact("TIMESTAMP", [Value::Timestamp(date.and_time(time))]),
        // An instant: the offset it was bound with is not stored (UTC comes back).
        TypeCase::exact("TIMESTAMPTZ", [Value::TimestampTz(instant)]),
        TypeCase::exact(
            "INTERVAL",
            [Value::Interval(Interval {
                months: 14,
                days: -3,
                microseconds: 3_723_000_001,
            })],
        ),
        TypeCase::exact(
            "UUID",
            [Value::Uuid(
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
                    .parse()
                    .expect("uuid"),
            )],
        ),
        TypeCase::exact(
            "JSON",
            [Value::Json(
                serde_json::json!({"a": [1, 2.5, null], "b": "x"}),
            )],
        ),
        TypeCase::exact(
            "JSONB",
            [Value::Json(serde_json::json!({"k": {"nested": true}}))],
        ),
        // A masked inet (`10.1.0.0/16`) reads back as `IpNetwork`, which does not match
        // the column's announced `Ip`: tested in tests/postgres.rs instead.
        TypeCase::exact(
            "INET",
            [
                Value::Ip("192.0.2.1".parse().expect("ip")),
                Value::Ip("2001:db8::1".parse().expect("ip")),
            ],
        ),
        TypeCase::exact(
            "CIDR",
            [Value::IpNetwork("10.0.0.0".parse().expect("ip"), 8)],
        ),
        TypeCase::exact(
            "INTEGER[]",
            [Value::Array(vec![
                Value::I32(1),
                Value::Null,
                Value::I32(-3),
            ])],
        ),
        TypeCase::exact(
            "TEXT[]",
            [Value::Array(vec![
                Value::Text("a".into()),
                Value::Text("b, c".into()),
            ])],
        ),
    ]
}

fn capabilities() -> Capabilities {
    Capabilities::new()
        .with_type_cases(type_cases())
        .with_sleep_sql(|secs| format!("SELECT pg_sleep({secs})"))
        .with_series_sql(|n| format!("SELECT generate_series(1, {n}) AS n"))
        .with_running_probe(
            |source: Arc<dyn ExternalSource>, marker: String| async move {
                let probe = Statement::new(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE query LIKE :pattern AND state = 'active' AND pid <> pg_backend_pid()",
                )
                .bind("pattern", format!("%{marker}%"));
                let rows = source.query(&probe, &QueryOptions::default()).await?;
                Ok(rows.rows[0].get(0).and_then(|v| v.as_i64()) != Some(0))
            },
        )
        .with_timeout_repeats(50)
        // PostgreSQL text cannot hold U+0000 (the backend refuses it as a parameter).
        .with_text_allows_nul(false)
        .with_unique_violation_sql_state("23505")
        // `END` and `ABORT` are PostgreSQL's spellings of `COMMIT` and `ROLLBACK`.
        .with_batch_transaction_control(["/* c */ end", "abort"])
}

fn factory(config: &ConnectorConfig) -> extdata_core::Result<Arc<dyn ExternalSource>> {
    let valid = config.validate_with(Some(&SPEC))?;
    Ok(Arc::new(PostgresSource::build(valid)?))
}

async fn harness(config: impl FnOnce(&support::TestServer) -> ConnectorConfig) -> Option<Harness> {
    let server = support::server().await?;
    // Two warm connections: under a parallel debug-build run a SCRAM handshake can take
    // long enough that the running-query probe would first see the query after its 1 s
    // timeout already cancelled it.
    let config = config(&server).with_pool(PoolConfig {
        min_idle: Some(Scalar::Int(2)),
        ..Default::default()
    });
    let harness = Harness::new(config, capabilities(), factory).expect("valid test config");
    harness.source().ping().await.expect("ping the test server");
    Some(harness)
}

extdata_conformance::test_server_conformance_tests!(harness);
