//! Per-value conversion of each backend, from the driver's bytes to [`Value`], without a
//! server (the hooks are `#[doc(hidden)]` functions of the backends):
//!
//! ```sh
//! cargo bench -p extdata-bench --bench convert
//! ```
//!
//! MySQL's conversion reads sqlx rows, which exist only with a server: it is measured
//! by the W1 streaming benchmark instead.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// PostgreSQL built-in type OIDs.
const BOOL: u32 = 16;
const INT8: u32 = 20;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const FLOAT8: u32 = 701;
const DATE: u32 = 1082;
const TIMESTAMPTZ: u32 = 1184;
const NUMERIC: u32 = 1700;
const UUID: u32 = 2950;

fn long_text() -> String {
    "0123456789abcdef0123456789abcdef".repeat(6) + "00000042"
}

fn postgres(c: &mut Criterion) {
    // numeric 12345.6789: 3 base-10000 digits, weight 1, positive, scale 4.
    let numeric: Vec<u8> = [3u16, 1, 0, 4, 1, 2345, 6789]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect();
    let long = long_text();
    let cases: Vec<(&str, u32, Vec<u8>)> = vec![
        ("int4", INT4, 42i32.to_be_bytes().to_vec()),
        ("int8", INT8, 2_654_435_761i64.to_be_bytes().to_vec()),
        ("float8", FLOAT8, 0.5f64.to_be_bytes().to_vec()),
        ("numeric(18,4)", NUMERIC, numeric),
        ("text 10 B", TEXT, b"user-12345".to_vec()),
        ("text 200 B", TEXT, long.into_bytes()),
        ("bool", BOOL, vec![1]),
        ("date", DATE, 1234i32.to_be_bytes().to_vec()),
        (
            "timestamptz",
            TIMESTAMPTZ,
            631_152_000_000_000i64.to_be_bytes().to_vec(),
        ),
        ("uuid", UUID, (0u8..16).collect()),
    ];
    let mut group = c.benchmark_group("postgres");
    for (name, oid, bytes) in &cases {
        assert!(
            extdata::postgres::decode_binary_for_bench(*oid, bytes).is_ok(),
            "{name} decodes"
        );
        group.bench_function(*name, |b| {
            b.iter(|| extdata::postgres::decode_binary_for_bench(black_box(*oid), black_box(bytes)))
        });
    }
    group.finish();
}

fn clickhouse(c: &mut Criterion) {
    let long = long_text();
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("Int32", "Int32", 42i32.to_le_bytes().to_vec()),
        ("Int64", "Int64", 2_654_435_761i64.to_le_bytes().to_vec()),
        ("Float64", "Float64", 0.5f64.to_le_bytes().to_vec()),
        (
            "Decimal(18, 4)",
            "Decimal(18, 4)",
            123_456_789i64.to_le_bytes().to_vec(),
        ),
        ("String 10 B", "String", b"user-12345".to_vec()),
        ("String 200 B", "String", long.into_bytes()),
        ("UInt8", "UInt8", vec![1]),
        ("Date", "Date", 1234u16.to_le_bytes().to_vec()),
        (
            "DateTime('UTC')",
            "DateTime('UTC')",
            1_577_836_800u32.to_le_bytes().to_vec(),
        ),
        ("UUID", "UUID", (0u8..16).collect()),
    ];
    let mut group = c.benchmark_group("clickhouse");
    for (name, type_name, bytes) in &cases {
        assert!(
            extdata::clickhouse::decode_scalar_for_bench(type_name, bytes).is_ok(),
            "{name} decodes"
        );
        group.bench_function(*name, |b| {
            b.iter(|| {
                extdata::clickhouse::decode_scalar_for_bench(black_box(type_name), black_box(bytes))
            })
        });
    }
    group.finish();
}

fn hive(c: &mut Criterion) {
    // Thrift TTypeId values of the types the server sends as text.
    const STRING: i32 = 7;
    const TIMESTAMP: i32 = 8;
    const DECIMAL: i32 = 15;
    const DATE: i32 = 17;
    let long = long_text();
    let cases: Vec<(&str, i32, Option<u32>, String)> = vec![
        ("string 10 B", STRING, None, "user-12345".into()),
        ("string 200 B", STRING, None, long),
        ("decimal(18,4)", DECIMAL, Some(4), "12345.6789".into()),
        ("date", DATE, None, "2003-05-19".into()),
        ("timestamp", TIMESTAMP, None, "2020-01-01 00:00:42".into()),
    ];
    let mut group = c.benchmark_group("hive");
    for (name, type_id, scale, text) in &cases {
        assert!(
            extdata::hive::decode_text_for_bench(*type_id, *scale, text.clone()).is_ok(),
            "{name} decodes"
        );
        // The text arrives owned from Thrift; the clone stands for that allocation.
        group.bench_function(*name, |b| {
            b.iter(|| {
                extdata::hive::decode_text_for_bench(
                    black_box(*type_id),
                    *scale,
                    black_box(text.clone()),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, postgres, clickhouse, hive);
criterion_main!(benches);
