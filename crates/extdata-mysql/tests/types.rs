//! Every MySQL/MariaDB type of the README's table comes back exactly, from a table
//! column and as a bound parameter.

mod support;

use chrono::{DateTime, NaiveDate, NaiveTime};
use extdata_core::{Decimal, ExternalSource, Interval, QueryOptions, Statement, Value};

use support::{execute_sql, source};

/// A column whose value comes back as it was bound: (column, bound, expected).
fn same(column: &str, value: Value) -> (&str, Value, Value) {
    (column, value.clone(), value)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[tokio::test]
async fn every_type_round_trips_exactly() {
    let server = server!();
    let source = source(server.tcp());
    let opts = QueryOptions::default();
    execute_sql(&source, "DROP TABLE IF EXISTS type_round_trip").await;
    execute_sql(
        &source,
        "CREATE TABLE type_round_trip (
                    t_tiny TINYINT, t_utiny TINYINT UNSIGNED, t_bool BOOL,
                    t_small SMALLINT, t_usmall SMALLINT UNSIGNED,
                    t_medium MEDIUMINT, t_umedium MEDIUMINT UNSIGNED,
                    t_int INT, t_uint INT UNSIGNED, t_big BIGINT, t_ubig BIGINT UNSIGNED,
                    t_dec DECIMAL(65,30), t_float FLOAT, t_double DOUBLE, t_bit BIT(12),
                    t_char CHAR(5), t_varchar VARCHAR(50), t_text TEXT,
                    t_bin_text VARCHAR(20) COLLATE utf8mb4_bin,
                    t_binary BINARY(4), t_varbinary VARBINARY(20), t_blob BLOB,
                    t_date DATE, t_time TIME(6), t_neg_time TIME, t_long_time TIME,
                    t_datetime DATETIME(6), t_timestamp TIMESTAMP(6) NULL,
                    t_year YEAR, t_json JSON, t_enum ENUM('red','green'),
                    t_set SET('a','b','c'), t_null INT
                 )",
    )
    .await;
    let decimal: Decimal = "-12345678901234567890123456789012345.123456789012345678901234567890"
        .parse()
        .unwrap();
    let ts = DateTime::parse_from_rfc3339("2024-02-29T23:59:58.123456+00:00").unwrap();
    let datetime = date(9999, 12, 31)
        .and_hms_micro_opt(23, 59, 59, 999_999)
        .unwrap();
    let time = NaiveTime::from_hms_micro_opt(13, 14, 15, 16).unwrap();
    let neg_time = Interval {
        months: 0,
        days: 0,
        microseconds: -(838 * 3600 + 59 * 60 + 59) * 1_000_000,
    };
    let long_time = Interval {
        months: 0,
        days: 0,
        microseconds: 100 * 3_600_000_000,
    };
    let json = serde_json::json!({"a": [1, 2.5, "x"], "b": null});
    let values: Vec<(&str, Value, Value)> = vec![
        same("t_tiny", Value::I8(-128)),
        same("t_utiny", Value::U8(255)),
        ("t_bool", Value::Bool(true), Value::I8(1)),
        same("t_small", Value::I16(i16::MIN)),
        same("t_usmall", Value::U16(u16::MAX)),
        same("t_medium", Value::I32(-8_388_608)),
        same("t_umedium", Value::U32(16_777_215)),
        same("t_int", Value::I32(i32::MIN)),
        same("t_uint", Value::U32(u32::MAX)),
        same("t_big", Value::I64(i64::MIN)),
        same("t_ubig", Value::U64(u64::MAX)),
        same("t_dec", Value::Decimal(decimal.clone())),
        same("t_float", Value::F32(1.5e-7)),
        same("t_double", Value::F64(-1.7976931348623157e308)),
        same("t_bit", Value::U64(0b1010_0000_0101)),
        same("t_char", Value::Text("ab".into())),
        same("t_varchar", Value::Text("Grüße ✓ '\" \\".into())),
        same("t_text", Value::Text("x".repeat(5000))),
        same("t_bin_text", Value::Text("Case".into())),
        (
            "t_binary",
            Value::Bytes(vec![0, 1, 2]),
            Value::Bytes(vec![0, 1, 2, 0]),
        ),
        same("t_varbinary", Value::Bytes(vec![0, 255, 10])),
        same("t_blob", Value::Bytes((0..=255).collect())),
        same("t_date", Value::Date(date(1000, 1, 1))),
        (
            "t_time",
            Value::Time(time),
            Value::Interval(Interval {
                months: 0,
                days: 0,
                microseconds: (13 * 3600 + 14 * 60 + 15) * 1_000_000 + 16,
            }),
        ),
        same("t_neg_time", Value::Interval(neg_time)),
        same("t_long_time", Value::Interval(long_time)),
        same("t_datetime", Value::Timestamp(datetime)),
        same("t_timestamp", Value::TimestampTz(ts)),
        same("t_year", Value::U16(2155)),
        // MariaDB's JSON is LONGTEXT: the document comes back as its text.
        (
            "t_json",
            Value::Json(json.clone()),
            Value::Text(json.to_string()),
        ),
        same("t_enum", Value::Text("green".into())),
        same("t_set", Value::Text("a,c".into())),
        same("t_null", Value::Null),
    ];
    let names: Vec<&str> = values.iter().map(|(n, _, _)| *n).collect();
    let mut insert = Statement::new(format!(
        "INSERT INTO type_round_trip ({}) VALUES ({})",
        names.join(", "),
        names
            .iter()
            .map(|n| format!(":{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for (name, value, _) in &values {
        insert.set(*name, value.clone());
    }
    assert_eq!(source.execute(&insert, &opts).await.unwrap(), 1);

    let select = Statement::new(format!("SELECT {} FROM type_round_trip", names.join(", ")));
    let result = source.query(&select, &opts).await.unwrap();
    let row = &result.rows[0];
    for (i, (name, _, expected)) in values.iter().enumerate() {
        assert_eq!(&row.values()[i], expected, "{name}");
    }
    // describe agrees with what came back, without running the query.
    let columns = source.describe(&select, &opts).await.unwrap();
    for (column, (name, _, expected)) in columns.iter().zip(&values) {
        let kind = match (name, expected) {
            (_, Value::Null) => continue,
            (_, v) => v.kind(),
        };
        assert_eq!(column.value_kind, kind, "{name}: {column:?}");
    }

    // The same values as bound parameters selected back.
    for (name, value, _) in &values {
        let cast = match *name {
            "t_dec" => "CAST(:v AS DECIMAL(65,30))",
            _ => continue,
        };
        let result = source
            .query(
                &Statement::new(format!("SELECT {cast}")).bind("v", value.clone()),
                &opts,
            )
            .await
            .unwrap();
        assert_eq!(&result.rows[0].values()[0], value, "{name} as a parameter");
    }
}

#[tokio::test]
async fn literals_decode_exactly() {
    let server = server!();
    let source = source(server.tcp());
    let opts = QueryOptions::default();
    let cases: Vec<(&str, Value)> = vec![
        (
            "SELECT CAST(18446744073709551615 AS UNSIGNED)",
            Value::U64(u64::MAX),
        ),
        (
            "SELECT CAST('12345678901234567890123456789012345.000000000000000000000000000001' AS DECIMAL(65,30))",
            Value::Decimal(
                "12345678901234567890123456789012345.000000000000000000000000000001"
                    .parse()
                    .unwrap(),
            ),
        ),
        (
            "SELECT CAST('-0.5' AS DECIMAL(3,2))",
            Value::Decimal("-0.50".parse().unwrap()),
        ),
        (
            "SELECT CAST('2024-01-02 03:04:05.678901' AS DATETIME(6))",
            Value::Timestamp(
                date(2024, 1, 2)
                    .and_hms_micro_opt(3, 4, 5, 678_901)
                    .unwrap(),
            ),
        ),
        (
            "SELECT CAST('-01:00:00' AS TIME)",
            Value::Interval(Interval {
                months: 0,
                days: 0,
                microseconds: -3_600_000_000,
            }),
        ),
        (
            "SELECT CAST('2024-03-01' AS DATE)",
            Value::Date(date(2024, 3, 1)),
        ),
        ("SELECT X'00FF'", Value::Bytes(vec![0, 255])),
        ("SELECT 'text'", Value::Text("text".into())),
        ("SELECT NULL", Value::Null),
        ("SELECT b'101'", Value::Bytes(vec![5])),
        (
            "SELECT FROM_UNIXTIME(1700000000.5)",
            Value::Decimal("0".parse().unwrap()),
        ),
    ];
    for (sql, expected) in cases {
        let result = source.query(&Statement::new(sql), &opts).await.unwrap();
        let got = &result.rows[0].values()[0];
        if sql.starts_with("SELECT FROM_UNIXTIME") {
            // A DATETIME in the session zone (+00:00).
            assert_eq!(
                got,
                &Value::Timestamp(
                    DateTime::from_timestamp(1_700_000_000, 500_000_000)
                        .unwrap()
                        .naive_utc()
                ),
                "{sql}"
            );
            continue;
        }
        assert_eq!(got, &expected, "{sql}");
    }
}

#[tokio::test]
async fn parameters_bind_with_their_types() {
    let server = server!();
    let source = source(server.tcp());
    let opts = QueryOptions::default();
    let ts = DateTime::parse_from_rfc3339("2024-06-01T12:00:00.25+02:00").unwrap();
    let cases: Vec<(&str, Value, Value)> = vec![
        ("SELECT :v", Value::U64(u64::MAX), Value::U64(u64::MAX)),
        ("SELECT :v", Value::I64(i64::MIN), Value::I64(i64::MIN)),
        (
            "SELECT :v",
            Value::Text("a'b\\c".into()),
            Value::Text("a'b\\c".into()),
        ),
        ("SELECT :v IS NULL", Value::Null, Value::I32(1)),
        ("SELECT :v + 0", Value::Bool(true), Value::I64(1)),
        (
            "SELECT HEX(:v)",
            Value::Bytes(vec![0xde, 0xad]),
            Value::Text("DEAD".into()),
        ),
        (
            "SELECT CAST(:v AS DATE)",
            Value::Date(date(2000, 2, 29)),
            Value::Date(date(2000, 2, 29)),
        ),
        (
            // An instant is sent in the session's zone (+00:00): 10:00 UTC.
            "SELECT CAST(:v AS DATETIME(6))",
            Value::TimestampTz(ts),
            Value::Timestamp(
                date(2024, 6, 1)
                    .and_hms_micro_opt(10, 0, 0, 250_000)
                    .unwrap(),
            ),
        ),
        (
            "SELECT JSON_VALUE(:v, '$.a')",
            Value::Json(serde_json::json!({"a": "x"})),
            Value::Text("x".into()),
        ),
        (
            "SELECT CAST(:v AS DECIMAL(45,20))",
            Value::U128(u128::from(u64::MAX) * 10),
            Value::Decimal(
                "184467440737095516150.00000000000000000000"
                    .parse()
                    .unwrap(),
            ),
        ),
    ];
    for (sql, value, expected) in cases {
        let result = source
            .query(&Statement::new(sql).bind("v", value.clone()), &opts)
            .await
            .unwrap_or_else(|e| panic!("{sql} with {value:?}: {e}"));
        let got = &result.rows[0].values()[0];
        let same =
            got == &expected || (got.as_i64().is_some() && got.as_i64() == expected.as_i64());
        assert!(
            same,
            "{sql} with {value:?}: got {got:?}, expected {expected:?}"
        );
    }
    let err = source
        .query(
            &Statement::new("SELECT :v").bind("v", Value::Decimal("NaN".parse().unwrap())),
            &opts,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), extdata_core::ErrorKind::Parameter, "{err}");
}
