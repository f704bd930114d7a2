//! The shared conformance suite against a real SQL Server, over TCP and (when
//! `EXTDATA_TEST_MSSQL_CA` is set) over TLS with `verify = full`.
//!
//! Without `EXTDATA_TEST_MSSQL_HOST` every case prints
//! `skipped: … (<module>::<case>: …)` and returns: such a run is not evidence.

mod support;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime};
use extdata_conformance::{Capabilities, Harness, TypeCase, decimal, require_or_skip};
use extdata_core::{
    ConnectorConfig, ExternalSource, PoolConfig, QueryOptions, Scalar, Statement, Value,
};
use extdata_mssql::{MsSqlSource, SPEC};

fn type_cases() -> Vec<TypeCase> {
    let leap = NaiveDate::from_ymd_opt(2024, 2, 29).expect("date");
    let time = NaiveTime::from_hms_nano_opt(13, 14, 15, 123_456_700).expect("time");
    let offset = DateTime::parse_from_rfc3339("2024-02-29T23:59:59.9999999-08:00").expect("ts");
    let india = DateTime::parse_from_rfc3339("2024-03-01T05:30:00+05:30").expect("ts");
    vec![
        TypeCase::exact("BIT", [Value::Bool(true), Value::Bool(false)]),
        TypeCase::exact("TINYINT", [Value::U8(0), Value::U8(255)]),
        TypeCase::exact("SMALLINT", [Value::I16(i16::MIN), Value::I16(i16::MAX)]),
        TypeCase::exact("INT", [Value::I32(i32::MIN), Value::I32(i32::MAX)]),
        TypeCase::exact("BIGINT", [Value::I64(i64::MIN), Value::I64(i64::MAX)]),
        TypeCase::exact(
            "DECIMAL(38,0)",
            [
                decimal("99999999999999999999999999999999999999"),
                decimal("-99999999999999999999999999999999999999"),
            ],
        )
        .with_conversion(Value::U64(u64::MAX), decimal("18446744073709551615")),
        TypeCase::exact(
            "DECIMAL(38,10)",
            [
                decimal("1234567890123456789012345678.0123456789"),
                decimal("-0.0000000001"),
                decimal("0.0000000000"),
            ],
        )
        .with_conversion(decimal("1.5"), decimal("1.5000000000")),
        TypeCase::exact("NUMERIC(5,2)", [decimal("-999.99")]),
        // money comes through tiberius as f64: exact below ~112 billion (README).
        TypeCase::exact("MONEY", [decimal("123456789.1234"), decimal("-0.0001")]),
        TypeCase::exact(
            "SMALLMONEY",
            [decimal("214748.3647"), decimal("-214748.3648")],
        ),
        TypeCase::exact("REAL", [Value::F32(1.5), Value::F32(f32::MAX)]),
        TypeCase::exact(
            "FLOAT",
            [
                Value::F64(f64::MIN_POSITIVE),
                Value::F64(f64::MAX),
                Value::F64(-0.1),
            ],
        ),
        TypeCase::converted(
            "CHAR(5)",
            [(Value::Text("ab".into()), Value::Text("ab   ".into()))],
        ),
        TypeCase::exact("VARCHAR(40)", [Value::Text("plain ascii 'quoted'".into())]),
        TypeCase::converted(
            "NCHAR(3)",
            [(Value::Text("é".into()), Value::Text("é  ".into()))],
        ),
        TypeCase::exact(
            "NVARCHAR(MAX)",
            [Value::Text("héllo wörld ✓ 😀 'quoted' \"double\"".into())],
        ),
        TypeCase::exact("TEXT", [Value::Text("legacy text".into())]),
        TypeCase::exact("NTEXT", [Value::Text("legacy ntext ✓".into())]),
        TypeCase::converted(
            "BINARY(4)",
            [(Value::Bytes(vec![1, 2]), Value::Bytes(vec![1, 2, 0, 0]))],
        ),
        TypeCase::exact(
            "VARBINARY(MAX)",
            [
                Value::Bytes(vec![0, 1, 127, 128, 255]),
                Value::Bytes(vec![]),
            ],
        ),
        TypeCase::exact("IMAGE", [Value::Bytes(vec![9, 8, 7])]),
        TypeCase::exact(
            "DATE",
            [
                Value::Date(leap),
                Value::Date(NaiveDate::from_ymd_opt(1, 1, 1).expect("date")),
                Value::Date(NaiveDate::from_ymd_opt(9999, 12, 31).expect("date")),
            ],
        ),
        TypeCase::exact("TIME(7)", [Value::Time(time)]),
        // datetime ticks are 1/300 s: .003 and .997 are exact, as SQL Server shows them.
        TypeCase::exact(
            "DATETIME",
            [
                Value::Timestamp(leap.and_hms_milli_opt(13, 14, 15, 3).expect("ts")),
                Value::Timestamp(leap.and_hms_milli_opt(23, 59, 59, 997).expect("ts")),
            ],
        ),
        TypeCase::exact("DATETIME2(7)", [Value::Timestamp(leap.and_time(time))]),
        TypeCase::exact(
            "SMALLDATETIME",
            [Value::Timestamp(leap.and_hms_opt(13, 14, 0).expect("ts"))],
        ),
        // The offset is stored: it comes back as written.
        TypeCase::exact(
            "DATETIMEOFFSET(7)",
            [Value::TimestampTz(offset), Value::TimestampTz(india)],
        ),
        TypeCase::exact(
            "UNIQUEIDENTIFIER",
            [Value::Uuid(
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
                    .parse()
                    .expect("uuid"),
            )],
        ),
        TypeCase::exact("XML", [Value::Text("<a b=\"1\">x</a>".into())]),
    ]
}

fn capabilities() -> Capabilities {
    Capabilities::new()
        .with_integer_type("INT")
        // TEXT cannot be compared with `=`; NVARCHAR(MAX) holds any string.
        .with_text_type("NVARCHAR(MAX)")
        .with_type_cases(type_cases())
        .with_sleep_sql(|secs| {
            format!(
                "WAITFOR DELAY '{:02}:{:02}:{:02}'",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            )
        })
        // A recursive CTE works on any TDS server (a cross join of sys.all_objects does not
        // reach 200k rows on Babelfish); BIGINT like ROW_NUMBER's.
        .with_series_sql(|n| {
            format!(
                "WITH series (n) AS (SELECT CAST(1 AS BIGINT) UNION ALL \
                 SELECT n + 1 FROM series WHERE n < {n}) \
                 SELECT n FROM series ORDER BY n OPTION (MAXRECURSION 0)"
            )
        })
        .with_running_probe(
            |source: Arc<dyn ExternalSource>, marker: String| async move {
                let probe = Statement::new(
                    "SELECT COUNT(*) AS n FROM sys.dm_exec_requests r \
                 CROSS APPLY sys.dm_exec_sql_text(r.sql_handle) t \
                 WHERE t.text LIKE :pattern AND r.session_id <> @@SPID",
                )
                .bind("pattern", format!("%{marker}%"));
                let rows = source.query(&probe, &QueryOptions::default()).await?;
                Ok(rows.rows[0].get(0).and_then(|v| v.as_i64()) != Some(0))
            },
        )
        .with_timeout_repeats(50)
        // ApplicationIntent=ReadOnly routes, it does not refuse writes (README): a
        // read-only login is how SQL Server enforces it.
        .with_read_only_enforced(false)
}

fn factory(config: &ConnectorConfig) -> extdata_core::Result<Arc<dyn ExternalSource>> {
    let valid = config.validate_with(Some(&SPEC))?;
    Ok(Arc::new(MsSqlSource::build(valid)?))
}

async fn harness(config: ConnectorConfig) -> Option<Harness> {
    let config = config.with_pool(PoolConfig {
        min_idle: Some(Scalar::Int(2)),
        ..Default::default()
    });
    let harness = Harness::new(config, capabilities(), factory).expect("valid test config");
    harness.source().ping().await.expect("ping the test server");
    Some(harness)
}

async fn over_tcp() -> Option<Harness> {
    let server = support::server().await?;
    harness(server.tcp()).await
}

async fn over_verified_tls() -> Option<Harness> {
    let server = support::server().await?;
    match server.tls() {
        Some(config) => harness(config).await,
        None => require_or_skip(
            "mssql-tls",
            format!(
                "{}: EXTDATA_TEST_MSSQL_CA (the PEM CA of the server's certificate) is not set",
                std::thread::current().name().unwrap_or("<unnamed test>")
            ),
        ),
    }
}

extdata_conformance::conformance_tests!(tcp => over_tcp);
extdata_conformance::conformance_tests!(tls_verify_full => over_verified_tls);
