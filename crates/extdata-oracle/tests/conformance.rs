//! The shared conformance suite against the Oracle server named by
//! `EXTDATA_TEST_ORACLE_{HOST,PORT,DATABASE,USER,PASSWORD}`;
//! without one every case prints that it was skipped, and fails instead when
//! `EXTDATA_TEST_REQUIRE` names oracle.

mod support;

use chrono::{DateTime, NaiveDate, NaiveTime};
use extdata_conformance::{Capabilities, Harness, TypeCase, decimal};
use extdata_core::{Interval, QueryOptions, Statement, Value};

fn type_cases() -> Vec<TypeCase> {
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let time = NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap();
    let timestamp = date.and_time(time);
    let midnight = date.and_hms_opt(23, 59, 58).unwrap();
    let with_offset = DateTime::parse_from_rfc3339("2024-03-01T05:29:58.123456+05:30").unwrap();
    let utc = DateTime::parse_from_rfc3339("2024-02-29T23:59:58.123456+00:00").unwrap();
    vec![
        TypeCase::exact(
            "NUMBER(18)",
            [
                Value::I64(i64::MIN + 1),
                Value::I64(999_999_999_999_999_999),
            ],
        )
        .with_conversion(Value::I32(-7), Value::I64(-7))
        .with_conversion(Value::Bool(true), Value::I64(1)),
        TypeCase::exact(
            "NUMBER(38)",
            [Value::I128(
                99_999_999_999_999_999_999_999_999_999_999_999_999,
            )],
        )
        .with_conversion(Value::U64(u64::MAX), Value::I128(u64::MAX.into())),
        TypeCase::exact(
            "NUMBER(38,10)",
            [
                decimal("1234567890123456789012345678.1234567890"),
                decimal("-0.0000000001"),
            ],
        )
        .with_conversion(decimal("1.5"), decimal("1.5000000000")),
        TypeCase::exact("NUMBER", [decimal("3.14159265358979323846264338327950288")]),
        TypeCase::exact("BINARY_FLOAT", [Value::F32(1.5), Value::F32(-3.25e-5)]),
        TypeCase::exact("BINARY_DOUBLE", [Value::F64(f64::MAX), Value::F64(-1e-300)]),
        TypeCase::exact("VARCHAR2(100)", [Value::Text("a'b\"c\\d".into())]),
        TypeCase::exact("NVARCHAR2(50)", [Value::Text("zürich ✓ 中文".into())]),
        TypeCase::converted(
            "CHAR(5)",
            [(Value::Text("ab".into()), Value::Text("ab   ".into()))],
        ),
        TypeCase::exact("CLOB", [Value::Text("ü".repeat(30_000))]),
        TypeCase::exact("NCLOB", [Value::Text("✓".repeat(5_000))]),
        TypeCase::exact("RAW(16)", [Value::Bytes(vec![0, 255, 16])]),
        TypeCase::exact(
            "BLOB",
            [Value::Bytes((0..=255).cycle().take(50_000).collect())],
        ),
        // DATE has a time part (seconds).
        TypeCase::exact("DATE", [Value::Timestamp(midnight)]).with_conversion(
            Value::Date(date),
            Value::Timestamp(date.and_hms_opt(0, 0, 0).unwrap()),
        ),
        TypeCase::exact("TIMESTAMP(6)", [Value::Timestamp(timestamp)]),
        TypeCase::exact(
            "TIMESTAMP(6) WITH TIME ZONE",
            [Value::TimestampTz(with_offset)],
        ),
        // The session runs at UTC: LOCAL TIME ZONE values come back at +00:00.
        TypeCase::converted(
            "TIMESTAMP(6) WITH LOCAL TIME ZONE",
            [(Value::TimestampTz(with_offset), Value::TimestampTz(utc))],
        ),
        TypeCase::exact(
            "INTERVAL DAY(3) TO SECOND(6)",
            [Value::Interval(Interval {
                months: 0,
                days: 3,
                microseconds: 4 * 3_600_000_000 + 5_500_000,
            })],
        ),
        TypeCase::exact(
            "INTERVAL YEAR(3) TO MONTH",
            [Value::Interval(Interval {
                months: 14,
                days: 0,
                microseconds: 0,
            })],
        ),
    ]
}

fn sleep(secs: u64) -> String {
    // DBMS_SESSION.SLEEP (18c+) inside a WITH function: a query that really waits.
    format!(
        "WITH FUNCTION extdata_sleep(s NUMBER) RETURN NUMBER IS BEGIN DBMS_SESSION.SLEEP(s); RETURN s; END; \
         SELECT extdata_sleep({secs}) AS n FROM dual"
    )
}

fn series(n: u64) -> String {
    format!("SELECT LEVEL AS n FROM dual CONNECT BY LEVEL <= {n}")
}

fn drop_table(table: &str) -> String {
    format!(
        "BEGIN EXECUTE IMMEDIATE 'DROP TABLE {table} PURGE'; \
         EXCEPTION WHEN OTHERS THEN IF SQLCODE != -942 THEN RAISE; END IF; END;"
    )
}

fn capabilities() -> Capabilities {
    Capabilities::new()
        .with_integer_type("NUMBER(18)")
        // VARCHAR2 stops at 4000 bytes unless the server runs with
        // MAX_STRING_SIZE = EXTENDED; a CLOB could not be compared with `=`.
        .with_text_type("VARCHAR2(4000)")
        .with_type_cases(type_cases())
        .with_select(|list| format!("SELECT {list} FROM dual"))
        .with_drop_table(drop_table)
        .with_sleep_sql(sleep)
        .with_series_sql(series)
        // The statement is running while an active session other than the probe's has it
        // as its current SQL (the test user needs SELECT on V$SESSION and V$SQL, e.g.
        // SELECT_CATALOG_ROLE). V$SQL keeps the text's comments, hence the marker.
        .with_running_probe(|source, marker| async move {
            let probe = Statement::new(
                "SELECT CAST(COUNT(*) AS NUMBER(18)) AS n FROM v$session s JOIN v$sql q \
                 ON q.sql_id = s.sql_id AND q.child_number = s.sql_child_number \
                 WHERE s.status = 'ACTIVE' AND q.sql_text LIKE :pattern \
                 AND s.sid <> TO_NUMBER(SYS_CONTEXT('USERENV', 'SID'))",
            )
            .bind("pattern", format!("%{marker}%"));
            let rows = source.query(&probe, &QueryOptions::default()).await?;
            Ok(rows.rows[0].get(0).and_then(Value::as_i64) != Some(0))
        })
        .with_empty_string_is_null(true)
        .with_text_allows_nul(true)
}

async fn over_tcp() -> Option<Harness> {
    let server = support::server("conformance (tcp)")?;
    Some(
        Harness::new(
            server.config("ora-conformance"),
            capabilities(),
            support::build,
        )
        .expect("valid test config"),
    )
}

extdata_conformance::conformance_tests!(tcp => over_tcp);
