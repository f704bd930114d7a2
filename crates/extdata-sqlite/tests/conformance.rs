//! The shared conformance suite against SQLite: a fresh database file per test.
//!
//! SQLite is embedded, so it is always available: this suite never skips.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime};
use extdata_conformance::{Capabilities, Harness, TypeCase};
use extdata_core::{ConnectorConfig, DbKind, ExternalSource, Value};
use extdata_sqlite::{SPEC, SqliteSource};

fn build(config: &ConnectorConfig) -> extdata_core::Result<Arc<dyn ExternalSource>> {
    let valid = config.validate_with(Some(&SPEC))?;
    Ok(Arc::new(SqliteSource::build(valid)?))
}

/// A query that runs until it is interrupted: counting an endless recursive CTE.
fn endless(_seconds: u64) -> String {
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"
        .to_owned()
}

fn type_cases() -> Vec<TypeCase> {
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let time = NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap();
    let timestamp = date.and_time(time);
    let with_offset = DateTime::parse_from_rfc3339("2024-02-29T23:59:58.123456+05:30").unwrap();
    let uuid = uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
    vec![
        TypeCase::exact(
            "INTEGER",
            [Value::I64(i64::MIN), Value::I64(0), Value::I64(i64::MAX)],
        )
        .with_conversion(Value::I32(-7), Value::I64(-7))
        .with_conversion(Value::U64(i64::MAX as u64), Value::I64(i64::MAX)),
        TypeCase::exact(
            "REAL",
            [Value::F64(1.5), Value::F64(-1e-300), Value::F64(f64::MAX)],
        ),
        TypeCase::exact(
            "TEXT",
            [Value::Text(String::new()), Value::Text("zürich ✓".into())],
        ),
        TypeCase::exact(
            "BLOB",
            [Value::Bytes(vec![]), Value::Bytes(vec![0, 1, 255])],
        ),
        TypeCase::exact("BOOLEAN", [Value::Bool(true), Value::Bool(false)]),
        TypeCase::exact("DATE", [Value::Date(date)]),
        TypeCase::exact("TIME", [Value::Time(time)]),
        TypeCase::exact("DATETIME", [Value::Timestamp(timestamp)]),
        TypeCase::exact("TIMESTAMPTZ", [Value::TimestampTz(with_offset)]),
        // NUMERIC affinity keeps 15 significant digits (as a REAL): trailing zeros go.
        TypeCase::exact(
            "DECIMAL(10,2)",
            [Value::Decimal("-123.45".parse().unwrap())],
        )
        .with_conversion(
            Value::Decimal("1.10".parse().unwrap()),
            Value::Decimal("1.1".parse().unwrap()),
        )
        .with_conversion(Value::I64(42), Value::Decimal("42".parse().unwrap())),
        TypeCase::exact(
            "JSON",
            [
                Value::Json(serde_json::json!({"a": [1, "x", null]})),
                Value::Json(serde_json::json!(5)),
            ],
        ),
        TypeCase::exact("UUID", [Value::Uuid(uuid)]),
    ]
}

async fn setup() -> Option<Harness> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("conformance.db");
    // Connectors open existing files only; an empty file is an empty database.
    std::fs::write(&path, "").expect("a database file");
    let config = ConnectorConfig::new("sqlite-conformance", DbKind::Sqlite)
        .with_database(path.to_str().expect("UTF-8 temp path"))
        .with_options("journal_mode=wal");
    let capabilities = Capabilities::new()
        .with_type_cases(type_cases())
        .with_sleep_sql(endless)
        .with_stream_rows(1_000_000)
        .with_passwords(false);
    Some(
        Harness::new(config, capabilities, build)
            .expect("valid test config")
            .with_guard(dir),
    )
}

extdata_conformance::conformance_tests!(setup);
