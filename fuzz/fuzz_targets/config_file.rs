#![no_main]
//! See `extdata_fuzz::config_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| extdata_fuzz::config_file(data));
