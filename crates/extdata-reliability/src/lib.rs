#![doc = include_str!("../README.md")]

mod proxy;
mod servers;

pub use proxy::{Fault, FaultProxy};
pub use servers::{Backend, Server, hive_cancelled_jobs, source, test_secret_policy};

use proptest::prelude::*;

/// Strings made to break out of a literal: quotes, backslashes (also trailing), NUL,
/// newlines, comment openers, placeholders and `${…}`, long Unicode.
pub fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => proptest::collection::vec(
            proptest::sample::select(vec![
                "'", "''", "\\", "\\'", "\"", "`", "\0", "\n", "\r\n", "\t", "--", "/*", "*/",
                "#", ";", ":p", ":x", "?", "$1", "${", "}", "${env:HOME}", "${hiveconf:x}",
                "');DROP TABLE t;--", "é", "日本語", "🦀", "\u{202e}", "\u{2028}", "\u{7f}",
                "\u{feff}", " ", "a",
            ]),
            0..16,
        )
        .prop_map(|parts| parts.concat()),
        1 => any::<String>(),
        1 => ("[\\PC]{1,8}", 100..600usize).prop_map(|(unit, n)| unit.repeat(n)),
    ]
}

/// How many cases a property test on a live server runs: `EXTDATA_RELIABILITY_CASES`
/// when set (the long run uses 10 000), else `default`.
pub fn case_count(default: u32) -> u32 {
    extdata_conformance::support::env("EXTDATA_RELIABILITY_CASES")
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
