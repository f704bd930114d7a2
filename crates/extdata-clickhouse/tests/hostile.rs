//! Hostile accounts and subscribers against the live servers, each test on 18.16 and on
//! 26.x: values — rendered client-side on 18.16 (no server-side parameters), sent as
//! server-side parameters on 26.x — never leave their place whatever the template looks
//! like, come back exactly, and a read-only connector writes nothing.
//!
//! The property test runs `EXTDATA_PROPTEST_CASES` cases (default 300); see the README's
//! "long run".

#[macro_use]
mod support;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate};
use extdata_conformance::support::{Call, call_error, expect_kind, unique_name};
use extdata_core::{Decimal, ErrorKind, QueryOptions, Statement, Value};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

use support::{Server, expected, hostile_text, proptest_cases, proptest_seed, row};

on_every_server!(
    hostile_values_in_every_template_shape_come_back_exactly,
    every_byte_comes_back_in_strings_and_bytes,
    numbers_dates_and_arrays_round_trip_exactly,
    null_parameters_of_every_kind_select_as_null,
    sub_second_timestamps_are_bound_exactly,
    read_only_connector_refuses_every_write_and_setting_override,
);

/// Templates whose placeholders the lexer places with certainty: each selects the value
/// `:v` as its first column and the text `after` as its second, with strings, escaped
/// identifiers and comments around the placeholder that a value would have to leave.
const SHAPES: &[&str] = &[
    "SELECT :v AS v, 'after' AS tail",
    "SELECT /* :no */ :v AS v, 'after' AS tail /* :no */",
    r"SELECT :v AS `a\` :no `, 'after' AS tail",
    r"SELECT :v AS `a`` :no`, 'after' AS tail",
    r#"SELECT :v AS "v\" :no", 'after' AS tail"#,
    r"SELECT :v AS v, 'after' AS tail WHERE 'x\' :no' != ''",
    "SELECT :v AS v -- :no\r :no\n, 'after' AS tail",
    "SELECT :v AS v --:no\n, 'after' AS tail",
    "SELECT :v AS v // :no\n, 'after' AS tail",
    "SELECT :v AS v /*/ :no */, 'after' AS tail",
    "SELECT :v AS v, 'after' AS tail WHERE 'a''b :no' != ''",
    "SELECT v, tail FROM (SELECT :v AS v, 'after' AS tail) WHERE v = :v",
    "SELECT :v AS v, concat('after', '') AS tail --",
];

/// Templates whose placeholders cannot be placed with certainty: refused.
const DOUBTFUL: &[&str] = &[
    "SELECT :v AS v /* /* */, 'after' AS tail",
    "SELECT 1e--1, :v",
    "SELECT $$ :v $$",
    "SELECT :v, 'unterminated",
    r"SELECT :v AS `unterminated\`",
    "SELECT :v /* unterminated",
];

/// What ends or starts strings, identifiers and comments.
const PIECES: &[&str] = &[
    "'", "\\", "`", "\"", "*/", "/*", "--", "//", "#", "$$", "\n", "\r", "\0", ":v", "?", ")", ";",
    " ", "é🎉", "\u{7f}", "\u{2028}", "x",
];

/// A text or byte value (bytes that are not UTF-8 come back as `Bytes`, others as text).
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => hostile_text(PIECES).prop_map(Value::Text),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
    ]
}

async fn hostile_values_in_every_template_shape_come_back_exactly(server: Server) {
    let (settings, _) = source_or_skip!(server);
    let source = support::build(&settings.http("ch-hostile-shapes")).unwrap();
    let cases = proptest_cases(300);
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &proptest_seed()),
    );
    let strategy = (0..SHAPES.len(), hostile_value());
    let inputs: Vec<(usize, Value)> = (0..cases)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let started = std::time::Instant::now();
    let checked = futures::stream::iter(inputs)
        .map(|(shape, value)| {
            let source = Arc::clone(&source);
            async move {
                let statement = Statement::new(SHAPES[shape]).bind("v", value.clone());
                let values = row(source.as_ref(), &statement).await;
                assert_eq!(values.len(), 2, "{:?} changed the columns", SHAPES[shape]);
                assert_eq!(values[0], expected(&value), "{:?}", SHAPES[shape]);
                assert_eq!(
                    values[1],
                    Value::Text("after".into()),
                    "{:?}",
                    SHAPES[shape]
                );
            }
        })
        .buffer_unordered(8)
        .count()
        .await;
    eprintln!(
        "{checked} hostile values in {} template shapes came back exactly in {:?}",
        SHAPES.len(),
        started.elapsed()
    );
    for sql in DOUBTFUL {
        call_error(
            source.as_ref(),
            Call::Query,
            Statement::new(*sql).bind("v", "x"),
            ErrorKind::Parameter,
        )
        .await;
    }
}

async fn every_byte_comes_back_in_strings_and_bytes(server: Server) {
    let (_, source) = source_or_skip!(server);
    let all: Vec<u8> = (0..=255).collect();
    let values = row(
        source.as_ref(),
        &Statement::new("SELECT :b, length(:b), :t")
            .bind("b", all.clone())
            .bind(
                "t",
                (1..=0x7f_u8)
                    .map(char::from)
                    .chain(['é', '\u{10FFFF}'])
                    .collect::<String>(),
            ),
    )
    .await;
    assert_eq!(values[0], Value::Bytes(all));
    assert_eq!(values[1], Value::U64(256));
    assert_eq!(
        values[2],
        Value::Text(
            (1..=0x7f_u8)
                .map(char::from)
                .chain(['é', '\u{10FFFF}'])
                .collect()
        )
    );
    for byte in 0..=255_u8 {
        let values = row(
            source.as_ref(),
            &Statement::new("SELECT :b").bind("b", vec![byte]),
        )
        .await;
        assert_eq!(
            values[0],
            expected(&Value::Bytes(vec![byte])),
            "byte {byte}"
        );
    }
}

async fn numbers_dates_and_arrays_round_trip_exactly(server: Server) {
    let (_, source) = source_or_skip!(server);
    let ints = [
        Value::I8(i8::MIN),
        Value::I8(i8::MAX),
        Value::I16(i16::MIN),
        Value::I32(i32::MIN),
        Value::I64(i64::MIN),
        Value::I64(i64::MAX),
        Value::U8(u8::MAX),
        Value::U16(u16::MAX),
        Value::U32(u32::MAX),
        Value::U64(u64::MAX),
        Value::U64(0),
        Value::Bool(true),
    ];
    for value in ints {
        let got = row(
            source.as_ref(),
            &Statement::new("SELECT :v").bind("v", value.clone()),
        )
        .await;
        let want = match value {
            // 18.16 has no Bool: UInt8.
            Value::Bool(b) if server == Server::V18 => Value::U8(u8::from(b)),
            other => other,
        };
        assert_eq!(got[0], want);
    }
    // Floats: random bit patterns (normal, subnormal, ±0, ±inf, NaN), bit for bit.
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &proptest_seed());
    let mut floats: Vec<f64> = (0..2000).map(|_| f64::from_bits(rng.next_u64())).collect();
    floats.extend([
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
        f64::MAX,
        f64::MIN,
        0.1,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ]);
    for chunk in floats.chunks(500) {
        let array = Value::Array(chunk.iter().map(|f| Value::F64(*f)).collect());
        let got = row(
            source.as_ref(),
            &Statement::new("SELECT :a").bind("a", array),
        )
        .await;
        let Value::Array(got) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(got.len(), chunk.len());
        for (g, want) in got.iter().zip(chunk) {
            match g {
                Value::F64(g) if want.is_nan() => assert!(g.is_nan()),
                Value::F64(g) => assert_eq!(g.to_bits(), want.to_bits(), "{want:e}"),
                other => panic!("{other:?}"),
            }
        }
    }
    let floats32: Vec<Value> = (0..500)
        .map(|_| f32::from_bits(rng.next_u32()))
        .filter(|f| !f.is_nan())
        .chain([f32::MIN_POSITIVE / 8.0, -0.0, f32::MAX])
        .map(Value::F32)
        .collect();
    let got = row(
        source.as_ref(),
        &Statement::new("SELECT :a").bind("a", Value::Array(floats32.clone())),
    )
    .await;
    assert_eq!(got[0], Value::Array(floats32));
    // Decimals go as text on 18.x (see the README), as Decimal(76, S) parameters on
    // 26.x; a cast reads them exactly.
    let decimal: Decimal = "-1234567890123456789012345678.0123456789".parse().unwrap();
    let got = row(
        source.as_ref(),
        &Statement::new("SELECT CAST(:d AS Decimal(38, 10))").bind("d", decimal.clone()),
    )
    .await;
    assert_eq!(got[0], Value::Decimal(decimal));
    let date = NaiveDate::from_ymd_opt(2105, 12, 31).unwrap();
    let timestamp = date.and_hms_opt(23, 59, 59).unwrap();
    let got = row(
        source.as_ref(),
        &Statement::new("SELECT :d, :t, [:i, :i], :u")
            .bind("d", date)
            .bind("t", Value::Timestamp(timestamp))
            .bind("i", -7_i32)
            .bind(
                "u",
                uuid::Uuid::from_u128(0x61f0c404_5cb3_11e7_907b_a6006ad3dba0),
            ),
    )
    .await;
    assert_eq!(got[0], Value::Date(date));
    assert_eq!(got[1], Value::Timestamp(timestamp));
    assert_eq!(got[2], Value::Array(vec![Value::I32(-7), Value::I32(-7)]));
    let uuid = "61f0c404-5cb3-11e7-907b-a6006ad3dba0";
    match server {
        Server::V18 => assert_eq!(got[3], Value::Text(uuid.into()), "18.x: UUIDs go as text"),
        Server::V26 => assert_eq!(got[3], Value::Uuid(uuid.parse().unwrap())),
    }
    let old = NaiveDate::from_ymd_opt(1969, 12, 31).unwrap();
    let result = source
        .query(
            &Statement::new("SELECT :d").bind("d", old),
            &QueryOptions::default(),
        )
        .await;
    match server {
        Server::V18 => {
            let too_old = result.expect_err("18.16's Date starts in 1970");
            assert_eq!(too_old.kind(), ErrorKind::Parameter, "{too_old}");
        }
        // A Date32 parameter: 1900 to 2299.
        Server::V26 => assert_eq!(result.unwrap().rows[0].get(0), Some(&Value::Date(old))),
    }
    // Outside what the server's types hold: refused, never another value.
    let far = [
        Value::Date(NaiveDate::from_ymd_opt(1899, 12, 31).unwrap()),
        Value::Date(NaiveDate::from_ymd_opt(2300, 1, 1).unwrap()),
        Value::Timestamp(
            NaiveDate::from_ymd_opt(1899, 12, 31)
                .unwrap()
                .and_hms_opt(23, 59, 59)
                .unwrap(),
        ),
    ];
    for value in far {
        expect_kind(
            source
                .query(
                    &Statement::new("SELECT :d").bind("d", value.clone()),
                    &QueryOptions::default(),
                )
                .await,
            ErrorKind::Parameter,
            &format!("{value:?} out of range"),
        );
    }
}

async fn null_parameters_of_every_kind_select_as_null(server: Server) {
    let (_, source) = source_or_skip!(server);
    let values = row(
        source.as_ref(),
        &Statement::new(
            "SELECT :n AS a, [:n] AS b, :n + 1 AS c, coalesce(:n, 5) AS d, \
             CAST(:n AS Nullable(String)) AS e, [] AS f, isNull(:n) AS g",
        )
        .bind("n", Value::Null),
    )
    .await;
    assert_eq!(
        values,
        [
            Value::Null,
            Value::Array(vec![Value::Null]),
            Value::Null,
            Value::U8(5),
            Value::Null,
            Value::Array(vec![]),
            Value::U8(1),
        ]
    );
    let result = source
        .query(
            &Statement::new("SELECT :n AS a").bind("n", Value::Null),
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.columns[0].database_type, "Nullable(Nothing)");
    // NULL into a column of each type.
    let table = unique_name("nulls");
    source
        .execute(
            &Statement::new(format!(
                "CREATE TABLE {table} (i Nullable(Int64), s Nullable(String), \
                 d Nullable(Date), t Nullable(DateTime), f Nullable(Float64), \
                 x Nullable(Decimal(18, 4))) ENGINE = Memory"
            )),
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    source
        .execute(
            &Statement::new(format!(
                "INSERT INTO {table} VALUES (:n, :n, :n, :n, :n, :n)"
            ))
            .bind("n", Value::Null),
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let values = row(
        source.as_ref(),
        &Statement::new(format!(
            "SELECT * FROM {table} WHERE i IS NULL AND s IS NULL"
        )),
    )
    .await;
    assert!(values.iter().all(Value::is_null), "{values:?}");
    support::exec(source.as_ref(), format!("DROP TABLE {table}")).await;
}

async fn sub_second_timestamps_are_bound_exactly(server: Server) {
    let (_, source) = source_or_skip!(server);
    let naive = NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_nano_opt(23, 59, 58, 123_456_789)
        .unwrap();
    let zoned = DateTime::parse_from_rfc3339("2024-03-01T05:29:58.5+05:30").unwrap();
    // `sql` with `:a` bound to the naive and `:b` to the zoned timestamp.
    let bound = |sql: &str| {
        Statement::new(sql)
            .bind("a", Value::Timestamp(naive))
            .bind("b", Value::TimestampTz(zoned))
    };
    if server == Server::V26 {
        // DateTime64 parameters with the digits the value needs.
        let sql = "SELECT :a, :b, toTypeName(:a), toTypeName(:b)";
        let values = row(source.as_ref(), &bound(sql)).await;
        assert_eq!(values[0], Value::Timestamp(naive));
        assert_eq!(values[1], Value::TimestampTz(zoned));
        assert_eq!(values[2], Value::Text("DateTime64(9)".into()));
        assert_eq!(values[3], Value::Text("DateTime64(3, 'UTC')".into()));
        return;
    }
    let sql = "SELECT :a, :b, toDateTime(substring(:a, 1, 19)) AS c";
    let values = row(source.as_ref(), &bound(sql)).await;
    // 18.16 has no sub-second type: the exact text, never a rounded DateTime.
    assert_eq!(
        values[0],
        Value::Text("2024-02-29 23:59:58.123456789".into())
    );
    assert_eq!(values[1], Value::Text("2024-02-29 23:59:58.500".into()));
    assert_eq!(values[2], Value::Timestamp(naive.with_nanosecond_zero()));
}

trait WithoutNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl WithoutNanos for chrono::NaiveDateTime {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap()
    }
}

async fn read_only_connector_refuses_every_write_and_setting_override(server: Server) {
    let (settings, writer) = source_or_skip!(server);
    let table = unique_name("ro_target");
    writer
        .execute(
            &Statement::new(format!("CREATE TABLE {table} (a Int64) ENGINE = Memory")),
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let reader = support::build(&settings.http("ch-ro-hostile").with_read_only(true)).unwrap();
    let writes = [
        format!("INSERT INTO {table} VALUES (1)"),
        format!("INSERT INTO {table} SELECT 1 SETTINGS readonly = 0"),
        format!("INSERT INTO {table} SELECT number FROM numbers(1) SETTINGS readonly = 0"),
        format!("CREATE TABLE {table}_2 (a Int8) ENGINE = Memory"),
        format!("CREATE TABLE {table}_3 ENGINE = Memory AS SELECT 1 AS a SETTINGS readonly = 0"),
        format!("ALTER TABLE {table} ADD COLUMN b Int8"),
        format!("ALTER TABLE {table} DELETE WHERE 1"),
        format!("DROP TABLE {table}"),
        format!("TRUNCATE TABLE {table}"),
        format!("RENAME TABLE {table} TO {table}_renamed"),
        format!("DETACH TABLE {table}"),
        "SELECT 1 SETTINGS readonly = 0".to_owned(),
        "SET readonly = 0".to_owned(),
        "/* x */ SET readonly = 0".to_owned(),
        "SYSTEM DROP DNS CACHE".to_owned(),
        "INSERT INTO FUNCTION url('http://127.0.0.1:9/', TSV, 'a String') VALUES ('x')".to_owned(),
    ];
    for sql in &writes {
        for call in ["query", "execute"] {
            let statement = Statement::new(sql.as_str());
            let error = if call == "query" {
                reader
                    .query(&statement, &QueryOptions::default())
                    .await
                    .map(|_| ())
                    .expect_err(sql)
            } else {
                reader
                    .execute(&statement, &QueryOptions::default())
                    .await
                    .map(|_| ())
                    .expect_err(sql)
            };
            assert_eq!(error.kind(), ErrorKind::ReadOnly, "{call} {sql}: {error}");
        }
    }
    let count = row(
        writer.as_ref(),
        &Statement::new(format!(
            "SELECT count(), groupArray(name) FROM system.columns WHERE table = '{table}'"
        )),
    )
    .await;
    assert_eq!(count[0], Value::U64(1), "the table kept its one column");
    let rows = row(
        writer.as_ref(),
        &Statement::new(format!("SELECT count() FROM {table}")),
    )
    .await;
    assert_eq!(rows[0], Value::U64(0), "nothing was written");
    // Reading still works.
    assert_eq!(
        row(reader.as_ref(), &Statement::new("SELECT 1")).await,
        [Value::U8(1)]
    );
    support::exec(writer.as_ref(), format!("DROP TABLE {table}")).await;
}
