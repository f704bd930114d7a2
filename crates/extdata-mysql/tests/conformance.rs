//! The shared conformance suite against MariaDB/MySQL over TCP, the unix socket and TLS
//! with full verification.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime};
use extdata_conformance::{Capabilities, Harness, TypeCase, decimal};
use extdata_core::{ConnectorConfig, ExternalSource, Interval, QueryOptions, Statement, Value};
use extdata_mysql::{MySqlSource, SPEC};

fn build(config: &ConnectorConfig) -> extdata_core::Result<Arc<dyn ExternalSource>> {
    let valid = config.validate_with(Some(&SPEC))?;
    Ok(Arc::new(MySqlSource::build(valid)?))
}

fn type_cases() -> Vec<TypeCase> {
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let time = NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap();
    let timestamp = date.and_time(time);
    let utc = DateTime::parse_from_rfc3339("2024-02-29T23:59:58.123456+00:00").unwrap();
    let with_offset = DateTime::parse_from_rfc3339("2024-03-01T05:29:58.123456+05:30").unwrap();
    let json = serde_json::json!({"a": [1, "x", null]});
    vec![
        TypeCase::exact("TINYINT", [Value::I8(i8::MIN), Value::I8(i8::MAX)]),
        TypeCase::exact("TINYINT UNSIGNED", [Value::U8(0), Value::U8(u8::MAX)]),
        // BOOL is TINYINT(1): it comes back as the number it stores.
        TypeCase::converted(
            "BOOLEAN",
            [
                (Value::Bool(true), Value::I8(1)),
                (Value::Bool(false), Value::I8(0)),
            ],
        )
        .with_value(Value::I8(-5)),
        TypeCase::exact("SMALLINT", [Value::I16(i16::MIN), Value::I16(i16::MAX)]),
        TypeCase::exact("SMALLINT UNSIGNED", [Value::U16(u16::MAX)]),
        TypeCase::exact("MEDIUMINT", [Value::I32(-8_388_608), Value::I32(8_388_607)]),
        TypeCase::exact("MEDIUMINT UNSIGNED", [Value::U32(16_777_215)]),
        TypeCase::exact("INT", [Value::I32(i32::MIN), Value::I32(i32::MAX)]),
        TypeCase::exact("INT UNSIGNED", [Value::U32(u32::MAX)]),
        TypeCase::exact("BIGINT", [Value::I64(i64::MIN), Value::I64(i64::MAX)])
            .with_conversion(Value::I32(-7), Value::I64(-7)),
        TypeCase::exact("BIGINT UNSIGNED", [Value::U64(0), Value::U64(u64::MAX)]),
        TypeCase::exact(
            "DECIMAL(65,30)",
            [
                decimal("12345678901234567890123456789012345.123456789012345678901234567890"),
                decimal("-0.000000000000000000000000000001"),
            ],
        )
        .with_conversion(decimal("1.5"), decimal("1.500000000000000000000000000000")),
        TypeCase::exact("FLOAT", [Value::F32(1.5), Value::F32(-3.25e-5)]),
        TypeCase::exact("DOUBLE", [Value::F64(f64::MAX), Value::F64(-1e-300)]),
        TypeCase::exact("BIT(64)", [Value::U64(u64::MAX), Value::U64(5)]),
        TypeCase::exact("CHAR(20)", [Value::Text("zürich ✓".into())]),
        TypeCase::exact(
            "VARCHAR(100)",
            [Value::Text(String::new()), Value::Text("a'b\"c\\d".into())],
        ),
        TypeCase::exact(
            "VARCHAR(20) COLLATE utf8mb4_bin",
            [Value::Text("Case".into())],
        ),
        TypeCase::exact("TEXT", [Value::Text("ü".repeat(3000))]),
        TypeCase::exact(
            "VARBINARY(10)",
            [Value::Bytes(vec![]), Value::Bytes(vec![0, 255])],
        ),
        TypeCase::converted(
            "BINARY(3)",
            [(Value::Bytes(vec![1]), Value::Bytes(vec![1, 0, 0]))],
        ),
        TypeCase::exact("BLOB", [Value::Bytes((0..=255).collect())]),
        TypeCase::exact("DATE", [Value::Date(date)]),
        // TIME is a signed duration (±838:59:59.999999), read as an interval.
        TypeCase::converted(
            "TIME(6)",
            [(
                Value::Time(time),
                Value::Interval(Interval {
                    months: 0,
                    days: 0,
                    microseconds: 86_398_123_456,
                }),
            )],
        )
        .with_value(Value::Interval(Interval {
            months: 0,
            days: 0,
            microseconds: -(838 * 3600 + 59 * 60 + 59) * 1_000_000,
        })),
        TypeCase::exact("DATETIME(6)", [Value::Timestamp(timestamp)]),
        // Exact instants: the session runs at +00:00.
        TypeCase::exact("TIMESTAMP(6) NULL", [Value::TimestampTz(utc)])
            .with_conversion(Value::TimestampTz(with_offset), Value::TimestampTz(utc)),
        TypeCase::exact("YEAR", [Value::U16(1901), Value::U16(2155)]),
        // MariaDB's JSON is a LONGTEXT alias: the document comes back as its text.
        TypeCase::converted(
            "JSON",
            [(Value::Json(json.clone()), Value::Text(json.to_string()))],
        ),
        TypeCase::exact("ENUM('red','green')", [Value::Text("green".into())]),
        TypeCase::exact("SET('a','b','c')", [Value::Text("a,c".into())]),
    ]
}

fn sleep(secs: u64) -> String {
    format!("SELECT SLEEP({secs})")
}

/// MariaDB's sequence engine streams: the first row comes before the last is made.
fn series(n: u64) -> String {
    format!("SELECT seq AS n FROM seq_1_to_{n}")
}

fn capabilities() -> Capabilities {
    Capabilities::new()
        .with_type_cases(type_cases())
        .with_sleep_sql(sleep)
        .with_series_sql(series)
        .with_running_probe(|source, marker| async move {
            let probe = Statement::new(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE :pattern AND ID <> CONNECTION_ID()",
            )
            .bind("pattern", format!("%{marker}%"));
            let rows = source.query(&probe, &QueryOptions::default()).await?;
            Ok(rows.rows[0].get(0).and_then(Value::as_i64) != Some(0))
        })
        .with_unique_violation_sql_state("23000")
        // A timed-out batch is stopped with `KILL QUERY` and then rolled back: 2 s of slack.
        .with_batch_timeout_slack(Duration::from_secs(2))
        // `#` comments, `START TRANSACTION`, and `LOCK TABLES`, which commits implicitly.
        .with_batch_transaction_control([
            "# c\nrollback",
            "/* c */ START TRANSACTION",
            "LOCK TABLES t WRITE",
        ])
}

async fn harness(config: fn(&support::TestServer) -> ConnectorConfig) -> Option<Harness> {
    let server = support::server().await?;
    Some(Harness::new(config(&server), capabilities(), build).expect("valid test config"))
}

extdata_conformance::test_server_conformance_tests!(harness);
