//! The columnar read path (feature `arrow`) against the real servers (18.16 and 26.x,
//! each test on both): `ClickHouseSource::stream_batches` gives exactly the record
//! batches the row path gives (`BatchStream::from_rows` over `stream`) for every type of
//! the backend's type table, NULLs, results of many blocks, empty results and zoned
//! `DateTime`/`DateTime64` columns; its errors, timeouts and cancel are the row path's.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use extdata_arrow::{BatchLimits, BatchStream, RecordBatch};
use extdata_clickhouse::ClickHouseSource;
use extdata_conformance::columnar::{ONE_ROW, Paths, all_batches};
use extdata_conformance::support::unique_name;
use extdata_core::{ErrorKind, ExternalSource, QueryOptions, Statement, Value};
use futures::StreamExt;

use support::Server;

on_every_server!(
    every_type_reads_as_the_row_path_reads_it,
    many_blocks_read_as_the_row_path_reads_them,
    empty_results_have_the_row_paths_schema,
    zoned_table_columns_read_as_the_row_path_reads_them,
    errors_are_the_row_paths,
    batches_are_bounded_and_a_dropped_stream_stops_the_query,
);

/// The source of `server` as a `ClickHouseSource`.
async fn clickhouse(server: Server) -> Option<std::sync::Arc<dyn ExternalSource>> {
    let (_, source) = support::source_of(server).await?;
    Some(source)
}

fn concrete(source: &dyn ExternalSource) -> &ClickHouseSource {
    source
        .as_any()
        .and_then(|any| any.downcast_ref::<ClickHouseSource>())
        .expect("a ClickHouse source")
}

/// The source read both ways: by its rows and by `ClickHouseSource::stream_batches`.
fn paths<'a>(source: &'a (dyn ExternalSource + 'static)) -> Paths<'a, dyn ExternalSource> {
    Paths::new(source, |source, statement, options, limits| {
        Box::pin(concrete(source).stream_batches(statement, options, limits))
    })
}

/// Every type of the type table the server has, as a column of `n` rows, NULL in every
/// third row where the type can be `Nullable`.
fn typed_columns(server: Server) -> Vec<(&'static str, &'static str)> {
    let mut columns = vec![
        ("u8", "toUInt8(number)"),
        ("u16", "toUInt16(number * 300)"),
        ("u32", "toUInt32(number * 70000)"),
        ("u64", "toUInt64(number) * 1000000000007"),
        ("umax", "bitXor(toUInt64('18446744073709551615'), number)"),
        ("i8", "toInt8(number) - 100"),
        ("i16", "toInt16(number) * -300"),
        ("i32", "toInt32(number) * -70000"),
        ("i64", "toInt64(number) * -1000000000007"),
        ("f32", "toFloat32(number) / 3"),
        ("f64", "toFloat64(number) / 7"),
        ("d32", "toDecimal32(number, 2) / 3"),
        ("d64", "toDecimal64(toInt64(number) * 12345 - 99999, 4)"),
        ("d128", "toDecimal128(toInt64(number) * -7, 10) / 3"),
        ("s", "concat('text ', toString(number), ' Zoë ✓')"),
        ("fs", "toFixedString(toString(number), 5)"),
        ("bytes", "unhex(concat('FF', hex(number)))"),
        ("uuid", "toUUID(UUIDNumToString(MD5(toString(number))))"),
        ("day", "toDate(17000 + number)"),
        ("plain", "toDateTime(1700000000 + number * 3601)"),
        (
            "tokyo",
            "toDateTime(1700000000 + number * 3601, 'Asia/Tokyo')",
        ),
        (
            "york",
            "toDateTime(1700000000 + number * 3601, 'America/New_York')",
        ),
        (
            "e8",
            "CAST(if(number % 2 = 0, 'a', 'b') AS Enum8('a' = 1, 'b' = -2))",
        ),
        ("arr", "[number, number + 1]"),
        ("arr_s", "[toString(number), '']"),
        ("tup", "(number, toString(number))"),
        ("n_u64", "if(number % 3 = 0, NULL, number)"),
        ("n_i32", "if(number % 3 = 1, NULL, toInt32(number) - 5)"),
        ("n_f64", "if(number % 3 = 2, NULL, number / 4)"),
        (
            "n_dec",
            "if(number % 3 = 0, NULL, toDecimal64(number, 4) / 7)",
        ),
        ("n_s", "if(number % 3 = 0, NULL, toString(number))"),
        (
            "n_uuid",
            "if(number % 3 = 0, NULL, toUUID(UUIDNumToString(MD5(toString(number)))))",
        ),
        ("n_day", "if(number % 3 = 0, NULL, toDate(17000 + number))"),
        (
            "n_plain",
            "if(number % 3 = 0, NULL, toDateTime(1700000000 + number))",
        ),
        (
            "n_tokyo",
            "if(number % 3 = 0, NULL, toDateTime(1700000000 + number, 'Asia/Tokyo'))",
        ),
        ("nothing", "NULL"),
    ];
    if server.modern() {
        columns.extend([
            ("b", "number % 2 = 0"),
            ("i128", "toInt128('-170141183460469231731687303715884105') * number"),
            ("u128", "toUInt128('3402823669209384634633746074317682114') * number"),
            ("i256", "toInt256('-578960446186580977117854925043439539266') * number"),
            ("u256", "toUInt256('1157920892373161954235709850086879078532') * number"),
            ("d256", "toDecimal256(toString(number), 36) / 7"),
            ("bf16", "toBFloat16(number)"),
            ("d32x", "toDate32('1901-06-01') + number"),
            ("dt64", "toDateTime64(1700000000 + number / 1000, 3)"),
            ("dt64tz", "toDateTime64(1700000000 + number / 1000000, 6, 'Asia/Tokyo')"),
            ("dt64ns", "toDateTime64(toDateTime(1700000000 + number, 'UTC'), 9, 'UTC')"),
            ("n_dt64", "if(number % 3 = 0, NULL, toDateTime64(1700000000 + number, 3, 'Europe/Berlin'))"),
            ("lc", "CAST(toString(number % 4) AS LowCardinality(String))"),
            ("lcn", "CAST(if(number % 3 = 0, NULL, toString(number % 4)) AS LowCardinality(Nullable(String)))"),
            ("e16", "CAST(if(number % 2 = 0, 'x', 'y') AS Enum16('x' = -1000, 'y' = 1000))"),
            ("ip4", "toIPv4(toUInt32(number) * 16777259)"),
            ("ip6", "toIPv6(concat('2001:db8::', hex(number)))"),
            ("m", "map('k', number, 'l', number + 1)"),
            ("an", "[toNullable(number), NULL]"),
            ("iv", "toIntervalDay(number)"),
            ("json", "CAST(concat('{\"a\": ', toString(number), ', \"b\": [1, \"x\"]}') AS JSON)"),
        ]);
    }
    columns
}

/// Every type of the table, computed by the server (top-level `DateTime('Zone')` too,
/// whose header drops the zone), NULLs included, in one block and in blocks of 7 rows.
async fn every_type_reads_as_the_row_path_reads_it(server: Server) {
    let Some(source) = clickhouse(server).await else {
        return;
    };
    let list: Vec<String> = typed_columns(server)
        .iter()
        .map(|(name, expression)| format!("{expression} AS {name}"))
        .collect();
    for settings in ["", " SETTINGS max_block_size = 7"] {
        let sql = format!("SELECT {} FROM numbers(50){settings}", list.join(", "));
        assert_eq!(
            paths(source.as_ref())
                .assert_same_at(&sql, &[ONE_ROW])
                .await,
            50,
            "{sql}"
        );
    }
}

/// Results of many blocks (blocks of 1, 3 and 1,000 rows; 100,000 rows in the
/// default blocks) read the same, and each batch stays within its block and limits.
async fn many_blocks_read_as_the_row_path_reads_them(server: Server) {
    let Some(source) = clickhouse(server).await else {
        return;
    };
    for (rows, block) in [(10_u64, 1_u64), (100, 3), (5_000, 1_000)] {
        let sql = format!(
            "SELECT number AS n, toString(number) AS s, if(number % 5 = 0, NULL, toDecimal64(number, 4)) AS d \
             FROM numbers({rows}) SETTINGS max_block_size = {block}"
        );
        assert_eq!(
            paths(source.as_ref())
                .assert_same_at(&sql, &[ONE_ROW])
                .await as u64,
            rows
        );
    }
    let limits = BatchLimits {
        rows: 1_000,
        ..BatchLimits::default()
    };
    let statement = Statement::new(
        "SELECT number AS n, toString(number) AS s, toDateTime(number, 'UTC') AS t \
         FROM numbers(100000)",
    );
    let (by_rows, by_columns) = paths(source.as_ref()).both(&statement, limits).await;
    let (by_rows, by_columns) = (by_rows.unwrap(), by_columns.unwrap());
    let sizes: Vec<usize> = by_columns.iter().map(RecordBatch::num_rows).collect();
    assert!(sizes.iter().all(|&n| n > 0 && n <= 1_000), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 100_000);
    // The same rows in the same order, batch boundaries aside.
    let mut offset = 0;
    let mut row_batches = by_rows.iter();
    let mut current = row_batches.next().unwrap().clone();
    for batch in &by_columns {
        let mut done = 0;
        while done < batch.num_rows() {
            if offset == current.num_rows() {
                current = row_batches.next().unwrap().clone();
                offset = 0;
            }
            let n = (batch.num_rows() - done).min(current.num_rows() - offset);
            assert_eq!(batch.slice(done, n), current.slice(offset, n));
            done += n;
            offset += n;
        }
    }
}

/// A result without rows sends no block: both paths take the columns from the result's
/// `DESCRIBE`, and give no batch.
async fn empty_results_have_the_row_paths_schema(server: Server) {
    let Some(source) = clickhouse(server).await else {
        return;
    };
    let sql = "SELECT number AS n, toString(number) AS s, toDateTime(number, 'Asia/Tokyo') AS t, \
               if(number = 0, NULL, toDecimal64(number, 4)) AS d FROM numbers(10) WHERE n > 100";
    let (by_rows, by_columns) = paths(source.as_ref())
        .both(&Statement::new(sql), ONE_ROW)
        .await;
    assert!(by_rows.unwrap().is_empty() && by_columns.unwrap().is_empty());
    let batches = concrete(source.as_ref())
        .stream_batches(&Statement::new(sql), &QueryOptions::default(), ONE_ROW)
        .await
        .unwrap();
    let types: Vec<String> = batches
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "UInt64",
            "Utf8",
            "Timestamp(µs, \"+00:00\")",
            "Decimal128(18, 4)"
        ]
    );
}

/// Table columns of zoned and plain `DateTime`/`DateTime64`, `Nullable` and not (the
/// header names a top-level `DateTime('Zone')` without its zone), read the same.
async fn zoned_table_columns_read_as_the_row_path_reads_them(server: Server) {
    let Some(source) = clickhouse(server).await else {
        return;
    };
    let table = unique_name("columnar_zoned");
    let sixty_four = if server.modern() {
        ", t64 DateTime64(6, 'Asia/Tokyo'), p64 DateTime64(3), n64 Nullable(DateTime64(3, 'UTC'))"
    } else {
        ""
    };
    support::exec(
        source.as_ref(),
        format!(
            "CREATE TABLE {table} (id UInt32, tokyo DateTime('Asia/Tokyo'), plain DateTime, \
             maybe Nullable(DateTime('Europe/Moscow')){sixty_four}) ENGINE = Memory"
        ),
    )
    .await;
    let values = if server.modern() {
        "SELECT number, 1700000000 + number, 1700000000 - number, \
         if(number % 2 = 0, NULL, toDateTime(number, 'Europe/Moscow')), \
         toDateTime64(1700000000 + number / 7, 6, 'Asia/Tokyo'), toDateTime64(number, 3), \
         if(number % 3 = 0, NULL, toDateTime64(number, 3, 'UTC')) FROM numbers(100)"
    } else {
        "SELECT toUInt32(number), toDateTime(1700000000 + number, 'Asia/Tokyo'), \
         toDateTime(1700000000 - number), \
         if(number % 2 = 0, NULL, toDateTime(number, 'Europe/Moscow')) FROM numbers(100)"
    };
    support::exec(source.as_ref(), format!("INSERT INTO {table} {values}")).await;
    let sql = format!("SELECT * FROM {table} ORDER BY id SETTINGS max_block_size = 9");
    // Twice: the second call describes the statement while it runs.
    for _ in 0..2 {
        assert_eq!(
            paths(source.as_ref())
                .assert_same_at(&sql, &[ONE_ROW])
                .await,
            100
        );
    }
    support::exec(source.as_ref(), format!("DROP TABLE {table}")).await;
}

/// A statement the server refuses, a type without a reader, (26.x) a timestamp with
/// nanoseconds, and a `Decimal(9, 2)` holding ten digits — what an account's SQL gets
/// from 18.16's wrapping conversion, or from 26.x with `decimal_check_overflow = 0` —
/// fail the columnar path with the row path's error kind, naming the connector, rather
/// than make an array with more digits than its type; the bound values are not in its
/// errors.
async fn errors_are_the_row_paths(server: Server) {
    let Some(source) = clickhouse(server).await else {
        return;
    };
    let options = QueryOptions::default();
    let mut cases = vec![
        (
            Statement::new("SELECT no_such_column, :secret AS v").bind("secret", "hidden-4821"),
            ErrorKind::Query,
        ),
        (
            Statement::new("SELECT uniqState(1) AS x"),
            ErrorKind::Decode,
        ),
    ];
    if server.modern() {
        cases.push((
            Statement::new("SELECT toDateTime64('2024-01-01 00:00:00.123456789', 9) AS t"),
            ErrorKind::Decode,
        ));
        cases.push((
            Statement::new(
                "SELECT toDecimal32(5000000, 2) * 1000 AS d SETTINGS decimal_check_overflow = 0",
            ),
            ErrorKind::Decode,
        ));
    } else {
        cases.push((
            Statement::new("SELECT toDecimal32(99999999.99, 2) AS d"),
            ErrorKind::Decode,
        ));
    }
    for (statement, kind) in cases {
        let rows = match source.stream(&statement, &options).await {
            Err(e) => e,
            Ok(rows) => BatchStream::from_rows(rows, ONE_ROW)
                .collect_all()
                .await
                .expect_err("the row path fails"),
        };
        let columns = paths(source.as_ref())
            .columnar(&statement, &options, ONE_ROW)
            .await
            .expect_err("the columnar path fails");
        assert_eq!(rows.kind(), kind, "{}: {rows}", statement.sql());
        assert_eq!(columns.kind(), kind, "{}: {columns}", statement.sql());
        // The row path's Arrow error (a timestamp with nanoseconds) comes from
        // extdata-arrow, which does not know the connector; the columnar one names it.
        assert_eq!(columns.connector(), Some("ch-probe"), "{columns}");
        assert!(!columns.to_string().contains("hidden-4821"), "{columns}");
        assert!(
            !format!("{columns:?}").contains("hidden-4821"),
            "{columns:?}"
        );
    }
}

/// Whether a query whose SQL holds `marker` still runs on the server.
async fn running(source: &dyn ExternalSource, marker: &str) -> bool {
    let sql = format!(
        "SELECT count() FROM system.processes WHERE query LIKE '%{marker}%' \
         AND query NOT LIKE '%system.processes%'"
    );
    let values = support::row(source, &Statement::new(sql)).await;
    !matches!(values.first(), Some(Value::U64(0)))
}

/// Bounded batches; dropping the batch stream before its end and letting the wait for
/// a block run out both stop the query on the server.
async fn batches_are_bounded_and_a_dropped_stream_stops_the_query(server: Server) {
    let Some(source) = clickhouse(server).await else {
        return;
    };
    let clickhouse = concrete(source.as_ref());
    let marker = unique_name("columnar_drop");
    let statement = Statement::new(format!(
        "SELECT number AS n, '{marker}' AS m FROM system.numbers"
    ));
    let mut batches = clickhouse
        .stream_batches(&statement, &QueryOptions::default(), BatchLimits::default())
        .await
        .unwrap();
    let first = batches.next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0 && first.num_rows() <= 8192);
    assert!(running(source.as_ref(), &marker).await, "the query runs");
    drop(batches);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(source.as_ref(), &marker).await {
        assert!(
            Instant::now() < deadline,
            "the query still runs 10 s after the drop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Blocks that take longer than the timeout (sleep() is capped at 3 s a block): the
    // call or the stream fails with Timeout and the query is killed.
    let slow = unique_name("columnar_slow");
    let statement = Statement::new(format!(
        "SELECT sleep(2), '{slow}' AS m FROM numbers(10) SETTINGS max_block_size = 1"
    ));
    let options = QueryOptions::default().with_timeout(Duration::from_millis(1500));
    let outcome =
        all_batches(clickhouse.stream_batches(&statement, &options, BatchLimits::default())).await;
    assert_eq!(outcome.unwrap_err().kind(), ErrorKind::Timeout);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(source.as_ref(), &slow).await {
        assert!(
            Instant::now() < deadline,
            "the slow query still runs 10 s later"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
