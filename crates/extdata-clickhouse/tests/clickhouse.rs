//! ClickHouse-specific behaviour against the real servers (18.16 and 26.x, each test on
//! both): types, streaming memory, server-side cancel, mid-stream errors, error kinds,
//! TLS and hostile strings.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use extdata_conformance::support::{
    Call, assert_error_has_no_secret, call_error, expect_kind, unique_name,
};
use extdata_core::{ErrorKind, ExternalSource, QueryOptions, Statement, Value, ValueKind};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

use support::Server;

on_every_server!(
    server_types_decode_exactly,
    unsupported_type_is_a_decode_error_not_a_wrong_value,
    streaming_ten_million_rows_keeps_memory_flat,
    streamed_rows_keep_their_order_across_chunks_and_blocks,
    timeout_cancels_query_on_server,
    error_after_streaming_began_is_an_error,
    connection_errors_are_classified_without_password,
    read_only_connector_gets_the_servers_refusal,
    hostile_strings_round_trip_through_binding,
    composite_columns_round_trip_exactly,
    composite_parameters_round_trip_exactly,
    top_level_zoned_datetime_keeps_its_zone,
);

/// The cases that stream millions of rows or assert wall-clock bounds run one at a time
/// (on 18.16 and 26.x alike): the memory test reads the whole process's RSS.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn one(source: &dyn ExternalSource, sql: &str) -> Vec<Value> {
    let result = source
        .query(&Statement::new(sql), &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    result.rows.first().expect("one row").values().to_vec()
}

async fn server_types_decode_exactly(server: Server) {
    let (_, source) = source_or_skip!(server);
    let values = one(
        source.as_ref(),
        "SELECT toUInt64('18446744073709551615') AS u, toInt64('-9223372036854775808') AS i, \
         toDecimal128('-12345678901234567890123456.0123456789', 10) AS d, \
         toDateTime('2024-01-02 03:04:05', 'Asia/Tokyo') AS tz, \
         CAST('b' AS Enum8('a' = 1, 'b' = -2)) AS e, [1, 2, 3] AS a, (1, 'x') AS t, \
         toNullable(7) AS n, CAST('x' AS LowCardinality(String)) AS lc, \
         toFixedString('ab', 3) AS f, toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS uu, \
         [[1], []] AS nested, CAST(NULL AS Nullable(String)) AS ns",
    )
    .await;
    let tokyo = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05+09:00").unwrap();
    assert_eq!(values[0], Value::U64(u64::MAX));
    assert_eq!(values[1], Value::I64(i64::MIN));
    assert_eq!(
        values[2],
        Value::Decimal("-12345678901234567890123456.0123456789".parse().unwrap())
    );
    assert_eq!(values[3], Value::TimestampTz(tokyo));
    assert_eq!(values[4], Value::Text("b".into()));
    assert_eq!(
        values[5],
        Value::Array(vec![Value::U8(1), Value::U8(2), Value::U8(3)])
    );
    assert_eq!(
        values[6],
        Value::Tuple(vec![Value::U8(1), Value::Text("x".into())])
    );
    assert_eq!(values[7], Value::U8(7));
    assert_eq!(values[8], Value::Text("x".into()));
    assert_eq!(values[9], Value::Text("ab\0".into()));
    assert_eq!(
        values[10],
        Value::Uuid("61f0c404-5cb3-11e7-907b-a6006ad3dba0".parse().unwrap())
    );
    assert_eq!(
        values[11],
        Value::Array(vec![Value::Array(vec![Value::U8(1)]), Value::Array(vec![])])
    );
    assert_eq!(values[12], Value::Null);
}

async fn unsupported_type_is_a_decode_error_not_a_wrong_value(server: Server) {
    let (_, source) = source_or_skip!(server);
    // AggregateFunction states have no reader in the clickhouse crate.
    call_error(
        source.as_ref(),
        Call::Query,
        "SELECT uniqState(1) AS x",
        ErrorKind::Decode,
    )
    .await;
    // `NULL` alone is Nullable(Nothing), which the crate cannot read either: it is
    // read through a cast, and comes back as NULL.
    let values = one(source.as_ref(), "SELECT NULL AS x, [] AS y").await;
    assert_eq!(values, [Value::Null, Value::Array(vec![])]);
}

async fn streaming_ten_million_rows_keeps_memory_flat(server: Server) {
    let (_, source) = source_or_skip!(server);
    let _heavy = HEAVY.lock().await;
    let statement =
        Statement::new("SELECT number, toString(number) FROM system.numbers LIMIT 10000000");
    let mut stream = source
        .stream(
            &statement,
            &QueryOptions::default().with_timeout(Duration::from_secs(60)),
        )
        .await
        .expect("stream");
    let started = Instant::now();
    let mut count: u64 = 0;
    let mut rss_after_first_million = 0;
    let mut peak = 0;
    while let Some(row) = stream.next().await {
        let row = row.expect("row");
        if count.is_multiple_of(1_000_000) {
            assert_eq!(row.get(0), Some(&Value::U64(count)));
            assert_eq!(row.get(1), Some(&Value::Text(count.to_string())));
            let rss = rss_kib();
            peak = peak.max(rss);
            if count == 1_000_000 {
                rss_after_first_million = rss;
            }
        }
        count += 1;
    }
    assert_eq!(count, 10_000_000);
    eprintln!(
        "streamed {count} rows in {:?}; RSS after 1M rows {rss_after_first_million} KiB, \
         peak sampled {peak} KiB",
        started.elapsed()
    );
    // Flat: the result is ~190 MB as text; the process must not grow by anything near it.
    assert!(
        peak < rss_after_first_million + 64 * 1024,
        "memory grew from {rss_after_first_million} KiB to {peak} KiB while streaming"
    );
}

async fn streamed_rows_keep_their_order_across_chunks_and_blocks(server: Server) {
    let (_, source) = source_or_skip!(server);
    // Blocks of 3,000 rows are handed over 1,024 rows at a time: chunk ends fall
    // inside blocks and block ends inside chunks; a first block of one row too.
    for (rows, block) in [(10_000_u64, 3_000_u64), (2_049, 1), (1, 65_536)] {
        let statement = Statement::new(format!(
            "SELECT number, toString(number), [number, number + 1] FROM numbers({rows}) \
             SETTINGS max_block_size = {block}"
        ));
        let mut stream = source
            .stream(&statement, &QueryOptions::default())
            .await
            .expect("stream");
        let mut count: u64 = 0;
        while let Some(row) = stream.next().await {
            let row = row.expect("row");
            assert_eq!(row.get(0), Some(&Value::U64(count)), "row {count}");
            assert_eq!(row.get(1), Some(&Value::Text(count.to_string())));
            assert_eq!(
                row.get(2),
                Some(&Value::Array(vec![
                    Value::U64(count),
                    Value::U64(count + 1)
                ]))
            );
            count += 1;
        }
        assert_eq!(count, rows, "max_block_size = {block}");
    }
}

/// The types 26.x has and 18.16 lacks, computed by the server (table columns of each
/// are round-tripped by the conformance suite's type cases and
/// [`composite_columns_round_trip_exactly`]).
#[test]
fn modern_types_decode_exactly_on_26() {
    extdata_conformance::support::block_on(async {
        let (_, source) = source_or_skip!(Server::V26);
        let values = one(
            source.as_ref(),
            "SELECT toDateTime64('2024-01-02 03:04:05.123456', 6, 'Asia/Tokyo') AS dt64tz, \
             toDateTime64('1900-01-01 00:00:00.123456789', 9) AS dt64, \
             toInt256('-57896044618658097711785492504343953926634992332820282019728792003956564819968') AS i256, \
             toUInt256('115792089237316195423570985008687907853269984665640564039457584007913129639935') AS u256, \
             toInt128('-170141183460469231731687303715884105728') AS i128, \
             toUInt128('340282366920938463463374607431768211455') AS u128, \
             toDecimal256('-1234567890123456789012345678901234567890.123456789012345678901234567890123456', 36) AS d256, \
             true AS b, toDate32('1900-01-01') AS d32, \
             map('a', 1, 'b', 2) AS m, toIPv4('192.0.2.1') AS ip4, toIPv6('2001:db8::1') AS ip6, \
             [1, NULL, 3] AS an, tuple(1, 'x', NULL) AS t, \
             CAST('y' AS LowCardinality(String)) AS lc, \
             CAST('z' AS Enum16('z' = -1000)) AS e16, \
             toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS u",
        )
        .await;
        let tokyo =
            chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456+09:00").unwrap();
        match &values[0] {
            Value::TimestampTz(ts) => {
                assert_eq!(*ts, tokyo);
                assert_eq!(ts.offset().local_minus_utc(), 9 * 3600, "the zone is kept");
            }
            other => panic!("DateTime64 with a zone: {other:?}"),
        }
        let nanos = chrono::NaiveDate::from_ymd_opt(1900, 1, 1)
            .unwrap()
            .and_hms_nano_opt(0, 0, 0, 123_456_789)
            .unwrap();
        assert_eq!(values[1], Value::Timestamp(nanos));
        let decimal = |text: &str| Value::Decimal(text.parse().unwrap());
        assert_eq!(
            values[2],
            decimal(
                "-57896044618658097711785492504343953926634992332820282019728792003956564819968"
            )
        );
        assert_eq!(
            values[3],
            decimal(
                "115792089237316195423570985008687907853269984665640564039457584007913129639935"
            )
        );
        assert_eq!(values[4], Value::I128(i128::MIN));
        assert_eq!(values[5], Value::U128(u128::MAX));
        assert_eq!(
            values[6],
            decimal(
                "-1234567890123456789012345678901234567890.123456789012345678901234567890123456"
            )
        );
        assert_eq!(values[7], Value::Bool(true));
        assert_eq!(
            values[8],
            Value::Date(chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap())
        );
        assert_eq!(
            values[9],
            Value::Map(vec![
                (Value::Text("a".into()), Value::U8(1)),
                (Value::Text("b".into()), Value::U8(2)),
            ])
        );
        assert_eq!(values[10], Value::Ip("192.0.2.1".parse().unwrap()));
        assert_eq!(values[11], Value::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(
            values[12],
            Value::Array(vec![Value::U8(1), Value::Null, Value::U8(3)])
        );
        assert_eq!(
            values[13],
            Value::Tuple(vec![Value::U8(1), Value::Text("x".into()), Value::Null])
        );
        assert_eq!(values[14], Value::Text("y".into()));
        assert_eq!(values[15], Value::Text("z".into()));
        assert_eq!(
            values[16],
            Value::Uuid("61f0c404-5cb3-11e7-907b-a6006ad3dba0".parse().unwrap())
        );
        // JSON: the clickhouse crate cannot read the column; the backend reads it as
        // its text (`toJSONString`, one more round trip for the types) into `Json`.
        let result = source
            .query(
                &Statement::new(r#"SELECT '{"a": 1, "b": {"c": ["x", "y"]}}'::JSON AS j, 7 AS n"#),
                &QueryOptions::default(),
            )
            .await
            .expect("a JSON column");
        assert_eq!(result.columns[0].database_type, "JSON");
        assert_eq!(result.columns[0].value_kind, extdata_core::ValueKind::Json);
        assert_eq!(
            result.rows[0].values(),
            [
                Value::Json(serde_json::json!({"a": 1, "b": {"c": ["x", "y"]}})),
                Value::U8(7)
            ]
        );
    });
}

/// Arrays (of Nullable, nested, of LowCardinality), tuples, `Nested` and (26.x) maps and
/// `JSON` in table columns, bound as parameters and read back exactly.
async fn composite_columns_round_trip_exactly(server: Server) {
    let (_, source) = source_or_skip!(server);
    let text = |t: &str| Value::Text(t.to_owned());
    let mut columns = vec![
        (
            "Array(Nullable(Int32))",
            Value::Array(vec![Value::I32(1), Value::Null, Value::I32(-3)]),
        ),
        (
            "Array(String)",
            Value::Array(vec![text("a'b"), text("\\"), text("*/`\0"), text("")]),
        ),
        (
            "Array(Array(Nullable(String)))",
            Value::Array(vec![
                Value::Array(vec![text("x"), Value::Null]),
                Value::Array(vec![]),
            ]),
        ),
        (
            "Array(LowCardinality(String))",
            Value::Array(vec![text("p"), text("q"), text("p")]),
        ),
        (
            "Tuple(Int64, String, Nullable(Float64))",
            Value::Tuple(vec![Value::I64(-1), text("t"), Value::Null]),
        ),
        (
            "Nested(k Int32, s String)",
            // A Nested column is one array per field: `n.k` and `n.s` below.
            Value::Null,
        ),
    ];
    if server == Server::V26 {
        columns.push((
            "Map(String, Nullable(Int64))",
            Value::Map(vec![
                (text("a"), Value::I64(i64::MIN)),
                (text("b'\\"), Value::Null),
            ]),
        ));
        columns.push((
            "JSON",
            Value::Json(serde_json::json!({"k": "v'\\`*/", "n": [1, 2], "o": {"p": true}})),
        ));
        columns.push((
            "Map(LowCardinality(String), Array(Nullable(UInt8)))",
            Value::Map(vec![(
                text("k"),
                Value::Array(vec![Value::U8(255), Value::Null]),
            )]),
        ));
    }
    let table = unique_name("composite");
    let definitions: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (sql_type, _))| {
            if sql_type.starts_with("Nested") {
                format!("n {sql_type}")
            } else {
                format!("c{i} {sql_type}")
            }
        })
        .collect();
    source
        .execute(
            &Statement::new(format!(
                "CREATE TABLE {table} (id Int64, {}) ENGINE = Memory",
                definitions.join(", ")
            )),
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let mut names = vec!["id".to_owned()];
    let mut statement_values = vec![("id".to_owned(), Value::I64(1))];
    let mut expected = vec![Value::I64(1)];
    for (i, (sql_type, value)) in columns.iter().enumerate() {
        if sql_type.starts_with("Nested") {
            let keys = Value::Array(vec![Value::I32(7), Value::I32(-8)]);
            let strings = Value::Array(vec![text("s'1"), text("")]);
            names.extend(["`n.k`".to_owned(), "`n.s`".to_owned()]);
            statement_values.push(("nk".to_owned(), keys.clone()));
            statement_values.push(("ns".to_owned(), strings.clone()));
            expected.extend([keys, strings]);
        } else {
            names.push(format!("c{i}"));
            statement_values.push((format!("c{i}"), value.clone()));
            expected.push(value.clone());
        }
    }
    let placeholders: Vec<String> = statement_values
        .iter()
        .map(|(name, _)| format!(":{name}"))
        .collect();
    let mut insert = Statement::new(format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        placeholders.join(", ")
    ));
    for (name, value) in statement_values {
        insert = insert.bind(name, value);
    }
    source
        .execute(&insert, &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let values = one(
        source.as_ref(),
        &format!("SELECT {} FROM {table}", names.join(", ")),
    )
    .await;
    assert_eq!(values, expected);
    support::exec(source.as_ref(), format!("DROP TABLE {table}")).await;
}

/// Strings with everything that ends a quoted string, an array, a tuple or a map, or an
/// escaped field.
fn hostile_texts() -> Vec<Value> {
    [
        "",
        "it's",
        "\\",
        "\\'",
        "a\tb\nc\rd\0e",
        "*/ /* -- # `x` \"y\"",
        "],[NULL,'",
        "}{':,)(",
        "NULL",
        "\\N",
        "\x01\x7f é 🎉",
        "\\x41\\t",
    ]
    .into_iter()
    .map(|text| Value::Text(text.to_owned()))
    .collect()
}

/// Arrays, tuples and maps bound as parameters — on 26.x server-side `{name:Type}`
/// parameters of the type their values join to, on 18.16 literals — come back exactly,
/// hostile strings, NULLs and nesting included.
async fn composite_parameters_round_trip_exactly(server: Server) {
    let (_, source) = source_or_skip!(server);
    let array = Value::Array;
    let hostile = hostile_texts();
    let mut with_nulls = hostile.clone();
    with_nulls.insert(1, Value::Null);
    with_nulls.push(Value::Null);
    // (value, its parameter type on 26.x)
    let mut cases = vec![
        (array(hostile.clone()), "Array(String)"),
        (array(with_nulls), "Array(Nullable(String))"),
        (
            array(vec![
                array(hostile.clone()),
                array(vec![]),
                array(vec![Value::Text("x".into())]),
            ]),
            "Array(Array(String))",
        ),
        (
            array(vec![
                Value::I64(i64::MIN),
                Value::I64(0),
                Value::I64(i64::MAX),
            ]),
            "Array(Int64)",
        ),
        (
            Value::Tuple(vec![
                Value::I64(-1),
                Value::Text("t'\\\t".into()),
                array(vec![Value::U8(1), Value::U8(2)]),
            ]),
            "Tuple(Int64, String, Array(UInt8))",
        ),
    ];
    if server == Server::V26 {
        let at = |text: &str| {
            Value::Timestamp(
                chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap(),
            )
        };
        let zoned =
            |text: &str| Value::TimestampTz(chrono::DateTime::parse_from_rfc3339(text).unwrap());
        let decimal = |text: &str| Value::Decimal(text.parse().unwrap());
        let map = Value::Map;
        cases.extend([
            (
                array(vec![
                    array(vec![Value::I64(1), Value::Null]),
                    array(vec![]),
                    array(vec![Value::Null]),
                ]),
                "Array(Array(Nullable(Int64)))",
            ),
            (
                array(vec![
                    decimal("-1.500"),
                    decimal("123.001"),
                    decimal("0.000"),
                ]),
                "Array(Decimal(76, 3))",
            ),
            (
                array(vec![
                    at("2024-02-29 23:59:58"),
                    at("1900-01-01 00:00:00.000001"),
                    Value::Null,
                ]),
                "Array(Nullable(DateTime64(6)))",
            ),
            (
                array(vec![zoned("2024-03-01T05:29:58.5+05:30")]),
                "Array(DateTime64(3, 'UTC'))",
            ),
            (
                array(vec![
                    Value::Date(chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()),
                    Value::Null,
                ]),
                "Array(Nullable(Date32))",
            ),
            (
                array(vec![
                    Value::Uuid("61f0c404-5cb3-11e7-907b-a6006ad3dba0".parse().unwrap()),
                    Value::Null,
                ]),
                "Array(Nullable(UUID))",
            ),
            (
                array(vec![Value::Ip("::ffff:1.2.3.4".parse().unwrap())]),
                "Array(IPv6)",
            ),
            (
                array(vec![Value::Ip("10.0.0.1".parse().unwrap())]),
                "Array(IPv4)",
            ),
            (
                array(vec![Value::Bool(true), Value::Bool(false)]),
                "Array(Bool)",
            ),
            (
                array(vec![Value::I128(i128::MIN), Value::I128(i128::MAX)]),
                "Array(Int128)",
            ),
            (
                array(vec![
                    Value::F64(f64::INFINITY),
                    Value::F64(f64::NEG_INFINITY),
                    Value::F64(5e-324),
                    Value::F64(0.1),
                ]),
                "Array(Float64)",
            ),
            (
                array(vec![Value::Bytes(vec![0xFF, 0x00, b'\'', b'\\'])]),
                "Array(String)",
            ),
            (
                map(vec![
                    (
                        Value::Text("k'\\".into()),
                        array(vec![Value::U8(255), Value::Null]),
                    ),
                    (Value::Text("],{".into()), array(vec![])),
                ]),
                "Map(String, Array(Nullable(UInt8)))",
            ),
            (
                map(hostile
                    .iter()
                    .enumerate()
                    .map(|(i, text)| {
                        let value = if i % 2 == 0 {
                            text.clone()
                        } else {
                            Value::Null
                        };
                        (text.clone(), value)
                    })
                    .collect()),
                "Map(String, Nullable(String))",
            ),
            (map(vec![]), "Map(Nothing, Nothing)"),
            (
                Value::Tuple(vec![
                    Value::Null,
                    map(vec![(Value::I32(-1), Value::Text("v".into()))]),
                    Value::Decimal("-0.5".parse().unwrap()),
                ]),
                "Tuple(Nullable(Nothing), Map(Int32, String), Decimal(76, 1))",
            ),
        ]);
    }
    for (value, parameter_type) in cases {
        let [echoed, type_name] =
            support::echo_with_tail(source.as_ref(), "toTypeName", value.clone(), parameter_type)
                .await;
        // Bytes that are not UTF-8 come back as bytes; every other value as it went.
        assert_eq!(echoed, value, "{parameter_type}");
        if server.server_parameters() {
            assert_eq!(type_name, Value::Text(parameter_type.into()));
        }
    }
}

/// A top-level, non-`Nullable` `DateTime('Zone')` — a table column or a computed value —
/// comes back as a `TimestampTz` with the zone's offset, though a Native header over
/// HTTP names it plain `DateTime`; a `DateTime` without a zone stays a `Timestamp`.
async fn top_level_zoned_datetime_keeps_its_zone(server: Server) {
    let (_, source) = source_or_skip!(server);
    let table = unique_name("zoned");
    support::exec(
        source.as_ref(),
        format!(
            "CREATE TABLE {table} (id UInt8, tokyo DateTime('Asia/Tokyo'), plain DateTime, \
             maybe Nullable(DateTime('Asia/Tokyo'))) ENGINE = Memory"
        ),
    )
    .await;
    support::exec(
        source.as_ref(),
        format!(
            "INSERT INTO {table} VALUES (1, 1700000000, 1700000000, 1700000000), (2, 0, 0, NULL)"
        ),
    )
    .await;
    let instant = |seconds: i64, offset_hours: i32| {
        let offset = chrono::FixedOffset::east_opt(offset_hours * 3600).unwrap();
        Value::TimestampTz(
            chrono::DateTime::from_timestamp(seconds, 0)
                .unwrap()
                .with_timezone(&offset),
        )
    };
    // The server's zone is UTC here.
    let wall = |seconds: i64| {
        Value::Timestamp(
            chrono::DateTime::from_timestamp(seconds, 0)
                .unwrap()
                .naive_utc(),
        )
    };
    let sql = format!(
        "SELECT tokyo, plain, maybe, toDateTime(tokyo, 'America/New_York') AS york \
         FROM {table} ORDER BY id"
    );
    let expected = [
        vec![
            instant(1_700_000_000, 9),
            wall(1_700_000_000),
            instant(1_700_000_000, 9),
            instant(1_700_000_000, -5),
        ],
        vec![instant(0, 9), wall(0), Value::Null, instant(0, -5)],
    ];
    let result = source
        .query(&Statement::new(sql.clone()), &QueryOptions::default())
        .await
        .unwrap();
    let rows: Vec<Vec<Value>> = result.rows.iter().map(|r| r.values().to_vec()).collect();
    assert_eq!(rows, expected);
    let types: Vec<(&str, ValueKind)> = result
        .columns
        .iter()
        .map(|c| (c.database_type.as_str(), c.value_kind))
        .collect();
    assert_eq!(
        types,
        [
            ("DateTime('Asia/Tokyo')", ValueKind::TimestampTz),
            ("DateTime", ValueKind::Timestamp),
            ("Nullable(DateTime('Asia/Tokyo'))", ValueKind::TimestampTz),
            ("DateTime('America/New_York')", ValueKind::TimestampTz),
        ]
    );
    // The stream reads them the same way, block after block.
    let stream = source
        .stream(&Statement::new(sql.clone()), &QueryOptions::default())
        .await
        .unwrap();
    let streamed: Vec<Vec<Value>> = stream
        .map(|row| row.unwrap().values().to_vec())
        .collect()
        .await;
    assert_eq!(streamed, expected);
    // The source now describes this statement while it runs; the description is
    // fresh on every call: the same SQL over a table whose column changed zone, then
    // lost it, reads the new types.
    for (column, expected_type, expected_value) in [
        (
            "DateTime('Europe/Berlin')",
            ("DateTime('Europe/Berlin')", ValueKind::TimestampTz),
            instant(1_700_000_000, 1),
        ),
        (
            "DateTime",
            ("DateTime", ValueKind::Timestamp),
            wall(1_700_000_000),
        ),
        (
            "DateTime('Asia/Tokyo')",
            ("DateTime('Asia/Tokyo')", ValueKind::TimestampTz),
            instant(1_700_000_000, 9),
        ),
    ] {
        support::exec(source.as_ref(), format!("DROP TABLE {table}")).await;
        support::exec(
            source.as_ref(),
            format!(
                "CREATE TABLE {table} (id UInt8, tokyo {column}, plain DateTime, \
                 maybe Nullable(DateTime('Asia/Tokyo'))) ENGINE = Memory"
            ),
        )
        .await;
        support::exec(
            source.as_ref(),
            format!("INSERT INTO {table} VALUES (1, 1700000000, 1700000000, NULL)"),
        )
        .await;
        for _ in 0..2 {
            let result = source
                .query(&Statement::new(sql.clone()), &QueryOptions::default())
                .await
                .unwrap();
            let first = &result.columns[0];
            assert_eq!(
                (first.database_type.as_str(), first.value_kind),
                expected_type
            );
            assert_eq!(result.rows[0].values()[0], expected_value, "{column}");
        }
    }
    support::exec(source.as_ref(), format!("DROP TABLE {table}")).await;
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn running(source: &dyn ExternalSource, marker: &str) -> bool {
    let values = one(
        source,
        &format!(
            "SELECT count() FROM system.processes WHERE query LIKE '%{marker}%' \
             AND query NOT LIKE '%system.processes%'"
        ),
    )
    .await;
    values[0].as_i64().unwrap_or(0) > 0
}

async fn timeout_cancels_query_on_server(server: Server) {
    let (_, source) = source_or_skip!(server);
    let _heavy = HEAVY.lock().await;
    let marker = unique_name("sleep");
    // sleep() is capped at 3 s per block: chained blocks run past the timeout, and
    // the marker sits inside the query (18.16 drops trailing comments).
    let statement = Statement::new(format!(
        "SELECT sleep(0.5), '{marker}' FROM numbers(20) SETTINGS max_block_size = 1"
    ));
    let task = tokio::spawn({
        let source = source.clone();
        async move {
            let started = Instant::now();
            let result = source
                .query(
                    &statement,
                    &QueryOptions::default().with_timeout(Duration::from_secs(1)),
                )
                .await;
            (result, started.elapsed())
        }
    });
    let mut seen = false;
    while !task.is_finished() {
        if running(source.as_ref(), &marker).await {
            seen = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (result, elapsed) = task.await.unwrap();
    let error = result.expect_err("must time out");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(seen, "the query was never seen running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !running(source.as_ref(), &marker).await,
        "the query still runs 1 s after its timeout"
    );
    eprintln!("timeout returned after {elapsed:?}");
}

async fn error_after_streaming_began_is_an_error(server: Server) {
    let (_, source) = source_or_skip!(server);
    let sql = "SELECT number, throwIf(number = 900000) FROM system.numbers LIMIT 1000000 \
               SETTINGS max_block_size = 1000";
    // query: buffered on the server, so the server's own error comes back.
    let error = expect_kind(
        source
            .query(
                &Statement::new(sql),
                &QueryOptions::default().with_max_rows(2_000_000),
            )
            .await,
        ErrorKind::Query,
        "throwIf must fail the query",
    );
    assert_eq!(error.sql_state(), Some("395"), "{error}");
    // stream: rows arrive first, then the stream must end with an error.
    let mut stream = source
        .stream(&Statement::new(sql), &QueryOptions::default())
        .await
        .expect("the first rows arrive");
    let mut rows = 0u64;
    let mut failed = None;
    while let Some(row) = stream.next().await {
        match row {
            Ok(_) => rows += 1,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let error =
        failed.unwrap_or_else(|| panic!("the stream ended after {rows} rows without error"));
    assert!(rows > 0 && rows < 1_000_000, "{rows} rows before the error");
    assert_eq!(error.kind(), ErrorKind::Query, "{error}");
}

async fn connection_errors_are_classified_without_password(server: Server) {
    let (settings, _) = source_or_skip!(server);
    let secret = "wrong-password-sentinel-1234";
    let wrong = support::build(&settings.http("ch-wrong-pw").with_password(secret)).unwrap();
    let error = expect_kind(wrong.ping().await, ErrorKind::Auth, "wrong password");
    assert_error_has_no_secret(&error, secret, "wrong password");
    assert!(!format!("{wrong:?}").contains(secret));

    let database =
        support::build(&settings.http("ch-no-db").with_database("no_such_db_x")).unwrap();
    expect_kind(
        database.ping().await,
        ErrorKind::Database,
        "unknown database",
    );

    // 26.x here has no HTTPS listener: TLS is the 18.16 server's.
    if let Some(config) = settings
        .wrong_ca
        .as_ref()
        .and_then(|wrong_ca| settings.https("ch-wrong-ca", wrong_ca))
    {
        let tls = support::build(&config).unwrap();
        let error = expect_kind(tls.ping().await, ErrorKind::Tls, "wrong CA");
        assert_error_has_no_secret(&error, &settings.password, "wrong CA");
    }

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = support::build(&settings.http("ch-closed").with_port(port)).unwrap();
    let error = expect_kind(refused.ping().await, ErrorKind::Connect, "closed port");
    assert_error_has_no_secret(&error, &settings.password, "closed port");

    let source = support::build(&settings.http("ch-syntax")).unwrap();
    let error = call_error(source.as_ref(), Call::Query, "SELEC 1", ErrorKind::Query).await;
    assert_eq!(error.sql_state(), Some("62"));
}

async fn read_only_connector_gets_the_servers_refusal(server: Server) {
    let (settings, _) = source_or_skip!(server);
    let source = support::build(&settings.http("ch-ro").with_read_only(true)).unwrap();
    let table = unique_name("ro");
    let error = call_error(
        source.as_ref(),
        Call::Execute,
        format!("CREATE TABLE {table} (a Int8) ENGINE = Memory"),
        ErrorKind::ReadOnly,
    )
    .await;
    assert_eq!(error.sql_state(), Some("164"));
    assert_eq!(one(source.as_ref(), "SELECT 1").await, vec![Value::U8(1)]);
}

/// Any string, bound as a parameter, comes back as itself: no value leaves its literal.
fn hostile_strings() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just("'".to_owned()),
                Just("\\".to_owned()),
                Just("\0".to_owned()),
                Just("\n".to_owned()),
                Just("\r".to_owned()),
                Just("\"".to_owned()),
                Just("`".to_owned()),
                Just("?".to_owned()),
                Just(":p".to_owned()),
                Just("/*".to_owned()),
                Just("--".to_owned()),
                Just("')".to_owned()),
                Just("\\'".to_owned()),
                Just("é🎉".to_owned()),
                Just("\u{7f}".to_owned()),
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

async fn hostile_strings_round_trip_through_binding(server: Server) {
    let (settings, _) = source_or_skip!(server);
    let source = support::build(&settings.http("ch-hostile")).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    let mut cases = Vec::new();
    let strategy = hostile_strings();
    for _ in 0..200 {
        cases.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    for text in cases {
        let what = format!("{text:?}");
        let [echoed, length] =
            support::echo_with_tail(source.as_ref(), "length", text.clone(), &what).await;
        assert_eq!(echoed, Value::Text(text.clone()), "{what}");
        assert_eq!(length, Value::U64(text.len() as u64), "{what}");
    }
}
