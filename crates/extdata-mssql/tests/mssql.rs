//! SQL Server–specific behaviour against a real server: the type table read from
//! literals, ATTENTION cancel keeping the connection, error numbers and kinds,
//! `describe`'s full type names, the application name.
//!
//! Skipped (printed by name) unless `EXTDATA_TEST_MSSQL_HOST` names a server; see the
//! crate README.

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate};
use extdata_conformance::decimal;
use extdata_conformance::support::{
    Call, assert_elapsed_below, call_error, expect_kind, timed_out,
};
use extdata_core::{
    ConnectorConfig, ErrorKind, ExternalSource, PoolConfig, QueryOptions, Scalar, Statement, Value,
    ValueKind,
};

fn one_connection(config: ConnectorConfig) -> ConnectorConfig {
    config.with_pool(PoolConfig {
        max_size: Some(Scalar::Int(1)),
        ..Default::default()
    })
}

#[tokio::test]
async fn ping_reports_the_sql_server_version() {
    let server = server!();
    let source = support::source(server.tcp());
    let info = source.ping().await.expect("ping");
    assert!(info.version.contains("SQL Server"), "{}", info.version);
}

#[tokio::test]
async fn every_type_of_the_table_reads_back_from_literals() {
    let server = server!();
    let source = support::source(server.tcp());
    let sql = "SELECT \
        CAST(1 AS bit) AS c_bit, CAST(255 AS tinyint) AS c_tinyint, \
        CAST(-32768 AS smallint) AS c_smallint, CAST(2147483647 AS int) AS c_int, \
        CAST(-9223372036854775808 AS bigint) AS c_bigint, \
        CAST('99999999999999999999999999999999999999' AS decimal(38,0)) AS c_decimal38, \
        CAST('-0.12345678901234567890123456789012345678' AS numeric(38,38)) AS c_numeric, \
        CAST(123456789.1234 AS money) AS c_money, CAST(-214748.3648 AS smallmoney) AS c_smallmoney, \
        CAST(1.5 AS real) AS c_real, CAST(0.1 AS float) AS c_float, \
        CAST('ab' AS char(4)) AS c_char, CAST('x' AS varchar(10)) AS c_varchar, \
        CAST(N'é' AS nchar(2)) AS c_nchar, CAST(N'✓ 😀' AS nvarchar(max)) AS c_nvarchar, \
        CAST('t' AS text) AS c_text, CAST(N'ü' AS ntext) AS c_ntext, \
        CAST(0x01FF AS binary(3)) AS c_binary, CAST(0x AS varbinary(max)) AS c_varbinary, \
        CAST(0x07 AS image) AS c_image, CAST('2024-02-29' AS date) AS c_date, \
        CAST('13:14:15.1234567' AS time(7)) AS c_time, \
        CAST('2024-02-29T13:14:15.997' AS datetime) AS c_datetime, \
        CAST('2024-02-29T13:14:15.1234567' AS datetime2(7)) AS c_datetime2, \
        CAST('2024-02-29T13:14:00' AS smalldatetime) AS c_smalldatetime, \
        CAST('2024-02-29T23:59:59.9999999-08:00' AS datetimeoffset(7)) AS c_datetimeoffset, \
        CAST('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11' AS uniqueidentifier) AS c_uuid, \
        CAST('<a b=\"1\"/>' AS xml) AS c_xml, CAST(NULL AS int) AS c_null";
    let result = source
        .query(&Statement::new(sql), &QueryOptions::default())
        .await
        .expect("query");
    let leap = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let expected = [
        Value::Bool(true),
        Value::U8(255),
        Value::I16(i16::MIN),
        Value::I32(i32::MAX),
        Value::I64(i64::MIN),
        decimal("99999999999999999999999999999999999999"),
        decimal("-0.12345678901234567890123456789012345678"),
        decimal("123456789.1234"),
        decimal("-214748.3648"),
        Value::F32(1.5),
        Value::F64(0.1),
        Value::Text("ab  ".into()),
        Value::Text("x".into()),
        Value::Text("é ".into()),
        Value::Text("✓ 😀".into()),
        Value::Text("t".into()),
        Value::Text("ü".into()),
        Value::Bytes(vec![1, 255, 0]),
        Value::Bytes(vec![]),
        Value::Bytes(vec![7]),
        Value::Date(leap),
        Value::Time(chrono::NaiveTime::from_hms_nano_opt(13, 14, 15, 123_456_700).unwrap()),
        Value::Timestamp(leap.and_hms_milli_opt(13, 14, 15, 997).unwrap()),
        Value::Timestamp(leap.and_hms_nano_opt(13, 14, 15, 123_456_700).unwrap()),
        Value::Timestamp(leap.and_hms_opt(13, 14, 0).unwrap()),
        Value::TimestampTz(
            DateTime::parse_from_rfc3339("2024-02-29T23:59:59.9999999-08:00").unwrap(),
        ),
        Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".parse().unwrap()),
        Value::Text("<a b=\"1\"/>".into()),
        Value::Null,
    ];
    let row = &result.rows[0];
    for ((column, value), expected) in row.columns().iter().zip(row.values()).zip(expected) {
        assert_eq!(value, &expected, "{}", column.name);
        if !value.is_null() {
            assert_eq!(
                value.kind(),
                column.value_kind,
                "{} announces its kind",
                column.name
            );
        }
    }
}

#[tokio::test]
async fn timeout_cancels_with_attention_and_keeps_the_connection() {
    let server = server!();
    let source = support::source(one_connection(server.tcp()));
    let spid = support::scalar(&source, "SELECT @@SPID").await;
    let started = Instant::now();
    let wait = "WAITFOR DELAY '00:00:30'";
    timed_out(&source, Call::Query, wait, Duration::from_secs(1)).await;
    assert_elapsed_below(started, Duration::from_secs(3), "the timed-out query");
    // The server acknowledged the ATTENTION: the same session serves the next call.
    assert_eq!(support::scalar(&source, "SELECT @@SPID").await, spid);
    timed_out(&source, Call::Execute, wait, Duration::from_millis(300)).await;
    assert_eq!(support::scalar(&source, "SELECT 1").await, Value::I32(1));
}

#[tokio::test]
async fn server_errors_carry_their_number_and_kind() {
    let server = server!();
    let source = support::source(server.tcp());
    let cases = [
        ("SELEC 1", "102"),
        ("SELECT * FROM extdata_no_such_table", "208"),
        ("SELECT no_such_column FROM sys.objects", "207"),
    ];
    for (sql, number) in cases {
        let err = call_error(&source, Call::Query, sql, ErrorKind::Query).await;
        assert_eq!(err.sql_state(), Some(number), "{sql}: {err}");
        assert!(!err.is_temporary());
    }
    let missing_db = support::source(server.tcp().with_database("extdata_no_such_database"));
    expect_kind(
        missing_db.ping().await,
        ErrorKind::Database,
        "no such database",
    );
    let wrong = support::source(server.tcp().with_password("extdata-wrong-Pw-1"));
    let err = expect_kind(wrong.ping().await, ErrorKind::Auth, "wrong password");
    assert_eq!(err.sql_state(), Some("18456"));
    assert!(!format!("{err:?}").contains("extdata-wrong-Pw-1"));
}

#[tokio::test]
async fn describe_reports_full_type_names_without_running() {
    let server = server!();
    let source = support::source(server.tcp());
    let columns = source
        .describe(
            &Statement::new(
                "SELECT CAST(1 AS decimal(38,10)) AS d, CAST(N'x' AS nvarchar(20)) AS s, \
                 :p AS p, SYSDATETIMEOFFSET() AS t",
            )
            .bind("p", 5_i64),
            &QueryOptions::default(),
        )
        .await
        .expect("describe");
    let seen: Vec<(&str, &str, ValueKind)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.database_type.as_str(), c.value_kind))
        .collect();
    assert_eq!(
        seen,
        [
            ("d", "decimal(38,10)", ValueKind::Decimal),
            ("s", "nvarchar(20)", ValueKind::Text),
            ("p", "bigint", ValueKind::I64),
            ("t", "datetimeoffset(7)", ValueKind::TimestampTz),
        ]
    );
}

#[tokio::test]
async fn application_name_and_intent_reach_the_server() {
    let server = server!();
    let source = support::source(
        server
            .tcp()
            .with_option("application_name", "extdata-live-test"),
    );
    assert_eq!(
        support::scalar(&source, "SELECT APP_NAME()").await,
        Value::Text("extdata-live-test".into())
    );
}

#[tokio::test]
async fn read_only_connector_is_not_enforced_by_the_server() {
    // Documents the gap the validation warning names: ApplicationIntent=ReadOnly on a
    // server that is not an availability-group secondary accepts writes.
    let server = server!();
    let source = support::source(server.tcp().with_read_only(true));
    let written = source
        .execute(
            &Statement::new(
                "CREATE TABLE #extdata_ro (id int); INSERT INTO #extdata_ro VALUES (1)",
            ),
            &QueryOptions::default(),
        )
        .await
        .expect("a read-only intent does not refuse writes");
    assert_eq!(written, 1);
}
