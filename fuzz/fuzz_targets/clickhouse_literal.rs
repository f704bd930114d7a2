#![no_main]
//! See `extdata_fuzz::clickhouse_literal`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| extdata_fuzz::clickhouse_literal(data));
