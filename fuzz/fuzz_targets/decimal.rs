#![no_main]
//! See `extdata_fuzz::decimal`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| extdata_fuzz::decimal(data));
