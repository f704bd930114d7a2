//! The shared conformance suite against the real ClickHouse server over HTTP and over
//! HTTPS with full verification.

mod support;

use chrono::{DateTime, NaiveDate};
use extdata_conformance::{Capabilities, Harness, TypeCase, require_or_skip};
use extdata_core::{Decimal, Value};
use uuid::Uuid;

fn decimal(text: &str) -> Value {
    Value::Decimal(text.parse::<Decimal>().expect("decimal literal"))
}

/// Types 18.16 has (Bool, Int128/256, Date32, DateTime64, Map, IPv4/IPv6 are newer; the
/// decoder's handling of those is unit-tested in `types.rs`).
fn type_cases() -> Vec<TypeCase> {
    let timestamp = NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_opt(23, 59, 58)
        .unwrap();
    let instant = DateTime::parse_from_rfc3339("2024-03-01T05:29:58+05:30").unwrap();
    vec![
        TypeCase::exact("Int8", [Value::I8(i8::MIN), Value::I8(i8::MAX)]),
        TypeCase::exact("Int16", [Value::I16(i16::MIN), Value::I16(i16::MAX)]),
        TypeCase::exact("Int32", [Value::I32(i32::MIN), Value::I32(i32::MAX)]),
        TypeCase::exact("Int64", [Value::I64(i64::MIN), Value::I64(i64::MAX)]),
        TypeCase::exact("UInt8", [Value::U8(0), Value::U8(u8::MAX)]),
        TypeCase::exact("UInt16", [Value::U16(u16::MAX)]),
        TypeCase::exact("UInt32", [Value::U32(u32::MAX)]),
        TypeCase::exact("UInt64", [Value::U64(0), Value::U64(u64::MAX)]),
        TypeCase::exact("Float32", [Value::F32(1.5), Value::F32(-3.25e-5)]),
        TypeCase::exact(
            "Float64",
            [Value::F64(f64::MAX), Value::F64(-1e-300), Value::F64(0.1)],
        ),
        TypeCase::exact(
            "Decimal(38, 10)",
            [
                decimal("1234567890123456789012345678.0123456789"),
                decimal("-0.0000000001"),
            ],
        )
        .with_conversion(decimal("1.5"), decimal("1.5000000000")),
        TypeCase::exact(
            "String",
            [
                Value::Text(String::new()),
                Value::Text("a'b\"c\\d\n\t\0 zürich ✓ 🎉".into()),
            ],
        ),
        TypeCase::exact("FixedString(3)", [Value::Text("abc".into())])
            .with_conversion(Value::Text("ab".into()), Value::Text("ab\0".into())),
        TypeCase::exact(
            "UUID",
            [Value::Uuid(
                Uuid::parse_str("61f0c404-5cb3-11e7-907b-a6006ad3dba0").unwrap(),
            )],
        ),
        TypeCase::exact(
            "Date",
            [Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())],
        ),
        // The server's zone is UTC here: the wall clock comes back as it went in.
        TypeCase::exact("DateTime", [Value::Timestamp(timestamp)]),
        TypeCase::exact("DateTime('Asia/Tokyo')", [Value::TimestampTz(instant)]),
        TypeCase::exact(
            "Enum8('red' = 1, 'green' = -2)",
            [Value::Text("green".into())],
        ),
    ]
}

fn create_table(table: &str, columns: &[(&str, &str)]) -> String {
    let columns: Vec<String> = columns
        .iter()
        .map(|(name, sql_type)| format!("{name} Nullable({sql_type})"))
        .collect();
    format!(
        "CREATE TABLE {table} ({}) ENGINE = Memory",
        columns.join(", ")
    )
}

/// Half-second steps, each its own block, so that KILL QUERY stops it within 0.5 s.
fn sleep(secs: u64) -> String {
    format!(
        "SELECT sleep(0.5) FROM numbers({}) SETTINGS max_block_size = 1",
        secs * 2
    )
}

fn series(n: u64) -> String {
    format!("SELECT number + 1 AS n FROM system.numbers LIMIT {n}")
}

fn text_parameter(name: &str) -> String {
    format!("CAST(:{name} AS Nullable(String))")
}

fn capabilities() -> Capabilities {
    Capabilities::new()
        .with_integer_type("Int64")
        .with_text_type("String")
        .with_type_cases(type_cases())
        .with_create_table(create_table)
        .with_sleep_sql(sleep)
        .with_series_sql(series)
        .with_streams_lazily(true)
        // The HTTP interface of 18.16 does not report written rows.
        .with_reports_affected_rows(false)
        // 18.16 has no UPDATE/DELETE statements (only ALTER … mutations).
        .with_supports_update(false)
        // A bare NULL parameter in a select list has the type `Nullable(Nothing)`, which
        // the clickhouse crate cannot decode; a text parameter is written with its type,
        // as ClickHouse users do.
        .with_text_parameter(text_parameter)
    // No running-query probe: 18.16 keeps only the parsed part of a query in
    // system.processes, so the suite's trailing `/* marker */` is not there. The
    // server-side cancel is checked in tests/clickhouse.rs with a marker inside the
    // query instead.
}

async fn setup() -> Option<Harness> {
    let settings = support::settings()?;
    support::reachable(&settings).await?;
    Some(
        Harness::new(
            settings.http("ch-conformance"),
            capabilities(),
            support::build,
        )
        .expect("valid config"),
    )
}

async fn setup_https() -> Option<Harness> {
    let settings = support::settings()?;
    support::reachable(&settings).await?;
    let Some(ca) = settings.ca.clone() else {
        return require_or_skip(support::KIND, "EXTDATA_TEST_CA is not set");
    };
    Some(
        Harness::new(
            settings.https("ch-conformance-tls", &ca),
            capabilities(),
            support::build,
        )
        .expect("valid config"),
    )
}

extdata_conformance::conformance_tests!(setup);
extdata_conformance::conformance_tests!(over_https => setup_https);
