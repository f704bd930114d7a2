//! Latency sampling for the backends' `*_lookup_latency` examples: calls of one
//! statement at a time on a warm source, several lookups interleaved round by round so
//! that all of them see the same machine load, and their percentiles.

use std::fmt;
use std::time::{Duration, Instant};

use extdata_core::{ExternalSource, QueryOptions, Result, Statement};

/// One lookup to time: a label, the source it runs on and its `n`th statement.
pub struct Lookup<'a> {
    /// Printed in the report.
    pub label: &'a str,
    /// Where the statement runs.
    pub source: &'a dyn ExternalSource,
    /// The statement of the `n`th call (each must return exactly one row).
    pub statement: Box<dyn Fn(usize) -> Statement + 'a>,
}

impl fmt::Debug for Lookup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lookup")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// The `q` quantile (0.0–1.0) of `sorted`, which must not be empty.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

/// Times `calls` calls of each lookup in each of `rounds` rounds, the lookups taking
/// turns within a round; every round starts with `warm_up` untimed calls (the first
/// with ten times as many). Returns each lookup's times, sorted.
///
/// # Panics
/// When a call returns other than one row.
pub async fn sample(
    lookups: &[Lookup<'_>],
    calls: usize,
    rounds: usize,
    warm_up: usize,
) -> Result<Vec<Vec<Duration>>> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); lookups.len()];
    for round in 0..rounds {
        for (lookup, times) in lookups.iter().zip(&mut samples) {
            let warm_up = if round == 0 { warm_up * 10 } else { warm_up };
            for n in 0..warm_up {
                let statement = (lookup.statement)(n);
                lookup
                    .source
                    .query(&statement, &QueryOptions::default())
                    .await?;
            }
            for n in 0..calls {
                let statement = (lookup.statement)(n * 7919);
                let started = Instant::now();
                let result = lookup
                    .source
                    .query(&statement, &QueryOptions::default())
                    .await?;
                times.push(started.elapsed());
                assert_eq!(result.rows.len(), 1, "{}: one row per call", lookup.label);
            }
        }
    }
    for times in &mut samples {
        times.sort();
    }
    Ok(samples)
}

/// Prints each lookup's call count, p50, p99 and p99.9 (`samples` from [`sample`]) and
/// returns the p50s.
pub fn report(lookups: &[Lookup<'_>], samples: &[Vec<Duration>]) -> Vec<Duration> {
    lookups
        .iter()
        .zip(samples)
        .map(|(lookup, times)| {
            println!(
                "{:>22}: {} calls, p50 {:>5} µs, p99 {:>5} µs, p99.9 {:>5} µs",
                lookup.label,
                times.len(),
                quantile(times, 0.50).as_micros(),
                quantile(times, 0.99).as_micros(),
                quantile(times, 0.999).as_micros(),
            );
            quantile(times, 0.50)
        })
        .collect()
}
