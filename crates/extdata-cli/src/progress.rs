//! A spinner with rows, rate and elapsed time on stderr, shared by the commands that
//! read many rows (`query` with csv/jsonl, `import`, `segment`).

use std::io::{self, IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A spinner with rows and rate on stderr, shown only when stderr is a terminal (and
/// logs are not being written there).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    pub(crate) fn start(allowed: bool) -> Self {
        let bar = (allowed && io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {human_pos} rows  {rate}  {elapsed}")
            {
                bar.set_style(style.with_key(
                    "rate",
                    |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{:.0} rows/s", state.per_sec());
                    },
                ));
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    /// Whether the bar is drawn (stderr is a terminal and no logs go there).
    pub(crate) fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    pub(crate) fn set(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(rows);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// A closing line on the terminal; nothing when stderr is redirected.
    pub(crate) fn summary(&self, rows: u64) {
        if self.bar.is_some() {
            let seconds = self.started.elapsed().as_secs_f64();
            let _ = writeln!(
                io::stderr(),
                "{rows} rows in {seconds:.2} s ({:.0} rows/s)",
                rows as f64 / seconds.max(1e-9)
            );
        }
    }
}
