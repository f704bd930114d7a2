#![no_main]
//! The CLI's `--param` parser (`crates/extdata-cli/src/params.rs`, compiled in here
//! since the CLI is a binary): any argument parses or fails with a message that names
//! the parameter; a failing typed value is never quoted; parsing is bounded.

#[path = "../../crates/extdata-cli/src/params.rs"]
#[allow(dead_code, unreachable_pub)]
mod params;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Some((kind, value)) = text.split_once('=') else {
        return;
    };
    match params::parse_param(&format!("p:{kind}={value}")) {
        Ok(param) => {
            if let extdata::Value::Decimal(d) = &param.value {
                assert!(d.scale() <= extdata::Decimal::MAX_SCALE);
            }
        }
        Err(message) => {
            assert!(!message.trim().is_empty(), "a failure without a message");
            // Typed values are not quoted (text values cannot fail). Only values with a
            // character no message uses are looked for, so a value that happens to be
            // words of a message is not a false alarm.
            let value = value.trim();
            if value.len() >= 4
                && value.contains(['@', '#', '$', '%', '&', '*', '!', '?', ';', '|', '~'])
            {
                assert!(!message.contains(value), "the value is quoted: {message}");
            }
        }
    }
});
