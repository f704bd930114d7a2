//! `extdata check`: validate the whole file, report every problem at once.

use std::path::Path;

use extdata::SecretPolicy;

use crate::failure::{Failure, USAGE};

/// Prints each problem as `<connector>: <field>: <problem>` on stdout and fails with exit
/// 2; when valid, prints the warnings (`warning: …`) and a summary.
pub(super) fn run(config: &Path, policy: &SecretPolicy) -> Result<(), Failure> {
    match super::load(config, policy) {
        Ok(loaded) => {
            let (registry, jobs) = (loaded.registry(), loaded.config());
            for connector in registry.connectors() {
                for warning in &connector.warnings {
                    println!("warning: {warning}");
                }
            }
            for warning in jobs.warnings() {
                println!("warning: {warning}");
            }
            let connectors = registry.connectors().count();
            let accounts = registry.accounts().count();
            let [imports, segments, syncs, lookups] = jobs.counts();
            let mut jobs_summary = String::new();
            for (count, what) in [
                (imports, "import"),
                (segments, "segment"),
                (syncs, "segment sync"),
                (lookups, "lookup"),
            ] {
                if count > 0 {
                    jobs_summary.push_str(&format!(", {count} {what}{}", plural(count)));
                }
            }
            println!(
                "ok: `{}` is valid: {connectors} connector{}, {accounts} account{}{jobs_summary}",
                config.display(),
                plural(connectors),
                plural(accounts)
            );
            Ok(())
        }
        Err(problems) => {
            for problem in problems.iter() {
                println!("{problem}");
            }
            let count = problems.0.len();
            eprintln!(
                "error: `{}` has {count} problem{}",
                config.display(),
                plural(count)
            );
            Err(Failure::silent(USAGE))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
