#![doc = include_str!("../README.md")]

mod proxy;
mod servers;

pub use proxy::{Fault, FaultProxy};
pub use servers::{Backend, Server, hive_cancelled_jobs, source};

/// How many cases a property test on a live server runs: `EXTDATA_RELIABILITY_CASES`
/// when set (the long run uses 10 000), else `default`.
pub fn case_count(default: u32) -> u32 {
    extdata_conformance::support::env("EXTDATA_RELIABILITY_CASES")
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
