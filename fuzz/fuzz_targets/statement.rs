#![no_main]
//! See `extdata_fuzz::statement`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| extdata_fuzz::statement(data));
