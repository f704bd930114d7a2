#![no_main]
//! See `extdata_fuzz::hive_literal`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| extdata_fuzz::hive_literal(data));
