//! Process measurements: CPU time, peak RSS and load from `/proc`, and the result line a
//! measuring child prints for its parent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`; 100 on every Linux
/// this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) of this process and of its reaped children.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cpu {
    /// This process, all its threads.
    pub(crate) own: f64,
    /// Children this process has waited for (the command-line clients).
    pub(crate) children: f64,
}

impl Cpu {
    /// Reads `/proc/self/stat` (`utime stime cutime cstime`, fields 14–17).
    pub(crate) fn now() -> Cpu {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // The command name (field 2) may hold spaces: count fields after its `)`.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<f64> = rest
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|f| f.parse().unwrap_or(f64::NAN))
            .collect();
        if fields.len() < 4 {
            return Cpu {
                own: f64::NAN,
                children: f64::NAN,
            };
        }
        Cpu {
            own: (fields[0] + fields[1]) / TICKS_PER_SECOND,
            children: (fields[2] + fields[3]) / TICKS_PER_SECOND,
        }
    }

    /// The CPU spent since `earlier`.
    pub(crate) fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            own: self.own - earlier.own,
            children: self.children - earlier.children,
        }
    }
}

/// The process's peak resident set size (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kib() -> f64 {
    status_kib("VmHWM:")
}

/// The process's current resident set size (`VmRSS`), in KiB.
pub(crate) fn rss_kib() -> f64 {
    status_kib("VmRSS:")
}

/// The `field` line of `/proc/self/status` (a size in kB), in KiB; NaN when missing.
fn status_kib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(f64::NAN)
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` has them.
pub(crate) fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One measurement, printed by a child as `RESULT key=value …` and parsed by its parent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measurement {
    pub(crate) fields: BTreeMap<String, String>,
}

impl Measurement {
    /// Sets a field.
    pub(crate) fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.fields.insert(key.to_owned(), value.to_string());
        self
    }

    /// A numeric field (NaN when missing).
    pub(crate) fn num(&self, key: &str) -> f64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// The `RESULT …` line.
    pub(crate) fn line(&self) -> String {
        let mut line = String::from("RESULT");
        for (key, value) in &self.fields {
            let _ = write!(line, " {key}={value}");
        }
        line
    }

    /// Parses the last `RESULT …` line of a child's output.
    pub(crate) fn parse(output: &str) -> Option<Measurement> {
        let line = output.lines().rev().find(|l| l.starts_with("RESULT"))?;
        let fields = line
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Measurement { fields })
    }
}

/// Runs this program again with `args` and returns the measurement it printed.
pub(crate) fn run_child(args: &[String]) -> Result<Measurement, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let output = Command::new(exe)
        .args(args)
        .output()
        .map_err(|e| format!("run child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "child {args:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Measurement::parse(&stdout).ok_or_else(|| format!("child {args:?} printed no RESULT line"))
}

/// The median of `values` (NaN for none).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `q`-quantile (0..=1) of sorted `values`, nearest rank.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_round_trips() {
        let mut m = Measurement::default();
        m.set("method", "extdata").set("wall", 1.5);
        let parsed = Measurement::parse(&format!("noise\n{}\n", m.line())).expect("parsed");
        assert_eq!(parsed.fields["method"], "extdata");
        assert_eq!(parsed.num("wall"), 1.5);
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let sorted: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile(&sorted, 0.5), 500.0);
        assert_eq!(quantile(&sorted, 0.99), 990.0);
        assert_eq!(quantile(&sorted, 0.999), 999.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn own_cpu_is_read() {
        let cpu = Cpu::now();
        assert!(cpu.own >= 0.0 && cpu.children >= 0.0, "{cpu:?}");
    }
}
