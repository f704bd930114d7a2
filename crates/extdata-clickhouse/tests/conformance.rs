//! The shared conformance suite against the real ClickHouse servers: 18.16 over HTTP
//! and over HTTPS with full verification, and 26.x over HTTP (it has no HTTPS listener)
//! with every type of the backend's type table that a column can hold with NULL.

mod support;

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate};
use extdata_conformance::{Capabilities, Harness, TypeCase, decimal, require_or_skip};
use extdata_core::{QueryOptions, Statement, Value};
use support::Server;
use uuid::Uuid;

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

/// Types 26.x adds to those of 18.16: the rest of the backend's type table, each in a
/// `Nullable` column (arrays, tuples and maps cannot be `Nullable`: they are in
/// `tests/clickhouse.rs`).
fn modern_type_cases() -> Vec<TypeCase> {
    let nines = "9".repeat(76);
    let tokyo = DateTime::parse_from_rfc3339("2024-03-01T05:29:58.123+09:00").unwrap();
    let utc_micros = DateTime::parse_from_rfc3339("1900-01-01T00:00:00.000001+00:00").unwrap();
    let nanos = NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_nano_opt(23, 59, 58, 123_456_789)
        .unwrap();
    let ip = |text: &str| Value::Ip(text.parse::<IpAddr>().unwrap());
    vec![
        TypeCase::exact("Bool", [Value::Bool(true), Value::Bool(false)]),
        TypeCase::exact("Int128", [Value::I128(i128::MIN), Value::I128(i128::MAX)]),
        TypeCase::exact("UInt128", [Value::U128(u128::MAX), Value::U128(0)]),
        // Int256/UInt256 read as decimals of scale 0; a bound decimal has at most 76
        // digits (Decimal256), the columns' extremes are read in tests/clickhouse.rs.
        TypeCase::exact(
            "Int256",
            [decimal(&format!("-{nines}")), decimal(&nines), decimal("0")],
        ),
        TypeCase::exact("UInt256", [decimal(&nines), decimal("0")]),
        TypeCase::exact(
            "Decimal(76, 20)",
            [
                decimal(
                    "12345678901234567890123456789012345678901234567890123456.01234567890123456789",
                ),
                decimal("-0.00000000000000000001"),
            ],
        ),
        TypeCase::exact(
            "Date32",
            [
                Value::Date(NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()),
                Value::Date(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
                Value::Date(NaiveDate::from_ymd_opt(2299, 12, 31).unwrap()),
            ],
        ),
        TypeCase::exact("DateTime64(9)", [Value::Timestamp(nanos)]),
        TypeCase::exact("DateTime64(3, 'Asia/Tokyo')", [Value::TimestampTz(tokyo)]),
        TypeCase::exact("DateTime64(6, 'UTC')", [Value::TimestampTz(utc_micros)]),
        TypeCase::exact(
            "IPv4",
            [ip("192.0.2.1"), ip("0.0.0.0"), ip("255.255.255.255")],
        ),
        TypeCase::exact(
            "IPv6",
            [ip("2001:db8::1"), ip("::"), ip("::ffff:192.0.2.1")],
        ),
        TypeCase::exact(
            "Enum16('low' = -32768, 'high' = 32767)",
            [Value::Text("low".into()), Value::Text("high".into())],
        ),
        TypeCase::exact(
            "LowCardinality(String)",
            [Value::Text("a'b\\c\0é".into()), Value::Text(String::new())],
        ),
    ]
}

fn create_table(table: &str, columns: &[(&str, &str)]) -> String {
    let columns: Vec<String> = columns
        .iter()
        .map(
            |(name, sql_type)| match sql_type.strip_prefix("LowCardinality(") {
                // Nullable goes inside LowCardinality.
                Some(inner) => format!("{name} LowCardinality(Nullable({inner})"),
                None => format!("{name} Nullable({sql_type})"),
            },
        )
        .collect();
    format!(
        "CREATE TABLE {table} ({}) ENGINE = Memory",
        columns.join(", ")
    )
}

/// Steps of 0.2 s, each its own block, so that KILL QUERY stops it within 0.2 s (the
/// probe on 26.x must see it gone within 1 s, on a loaded machine too); one row at the
/// end (26.x sends each block as soon as it is made).
fn sleep(secs: u64) -> String {
    format!(
        "SELECT sum(sleep(0.2)) AS n FROM numbers({}) SETTINGS max_block_size = 1",
        secs * 5
    )
}

fn series(n: u64) -> String {
    format!("SELECT number + 1 AS n FROM system.numbers LIMIT {n}")
}

fn text_parameter(name: &str) -> String {
    format!("CAST(:{name} AS Nullable(String))")
}

fn capabilities(server: Server) -> Capabilities {
    let capabilities = Capabilities::new()
        .with_integer_type("Int64")
        .with_text_type("String")
        .with_create_table(create_table)
        .with_sleep_sql(sleep)
        .with_series_sql(series)
        .with_streams_lazily(true)
        // The backend does not read the written rows (X-ClickHouse-Summary; 18.16's HTTP
        // interface does not report them at all).
        .with_reports_affected_rows(false)
        // 18.16 has no UPDATE/DELETE statements (only ALTER … mutations); newer servers
        // have them on MergeTree tables only, and the suite's tables are Memory tables.
        .with_supports_update(false)
        // A bare NULL parameter in a select list has the type `Nullable(Nothing)`, which
        // the clickhouse crate cannot decode; a text parameter is written with its type,
        // as ClickHouse users do.
        .with_text_parameter(text_parameter);
    match server {
        // No running-query probe: 18.16 keeps only the parsed part of a query in
        // system.processes, so the suite's trailing `/* marker */` is not there. The
        // server-side cancel is checked in tests/clickhouse.rs with a marker inside the
        // query instead.
        Server::V18 => capabilities.with_type_cases(type_cases()),
        Server::V26 => capabilities
            .with_type_cases(type_cases().into_iter().chain(modern_type_cases()))
            // 26.x keeps the query's whole text, comments included.
            .with_running_probe(|source, marker| async move {
                let probe = Statement::new(
                    "SELECT count() FROM system.processes WHERE query LIKE :pattern \
                     AND query NOT LIKE '%system.processes%'",
                )
                .bind("pattern", format!("%{marker}%"));
                let rows = source.query(&probe, &QueryOptions::default()).await?;
                Ok(rows.rows[0].get(0).and_then(Value::as_i64) != Some(0))
            }),
    }
}

async fn setup_on(server: Server) -> Option<Harness> {
    let (settings, _) = support::source_of(server).await?;
    Some(
        Harness::new(
            settings.http("ch-conformance"),
            capabilities(server),
            support::build,
        )
        .expect("valid config"),
    )
}

async fn setup() -> Option<Harness> {
    setup_on(Server::V18).await
}

async fn setup_26() -> Option<Harness> {
    setup_on(Server::V26).await
}

async fn setup_https() -> Option<Harness> {
    let (settings, _) = support::source_of(Server::V18).await?;
    let Some(ca) = settings.ca.clone() else {
        return require_or_skip(Server::V18.kind(), "EXTDATA_TEST_CA is not set");
    };
    Some(
        Harness::new(
            settings
                .https("ch-conformance-tls", &ca)
                .expect("18.16 has an HTTPS port"),
            capabilities(Server::V18),
            support::build,
        )
        .expect("valid config"),
    )
}

extdata_conformance::conformance_tests!(setup);
extdata_conformance::conformance_tests!(over_https => setup_https);
extdata_conformance::conformance_tests!(on_26 => setup_26);
