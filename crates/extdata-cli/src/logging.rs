//! `-v`: tracing logs on stderr, filtered by `EXTDATA_LOG`, as text or JSON lines
//! (`--log-format`).
//!
//! The facade's instrumentation never records parameter values or secrets, so logs are
//! safe to share.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// The variable holding the log filter (`tracing_subscriber::EnvFilter` syntax).
pub(crate) const FILTER_VARIABLE: &str = "EXTDATA_LOG";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The filter for `-v` (extdata's own spans and events) and `-vv` (drivers too).
fn default_filter(verbosity: u8) -> &'static str {
    match verbosity {
        0 | 1 => "warn,extdata=debug",
        _ => "debug,extdata=trace",
    }
}

/// Installs the stderr logger when `-v` is given or `EXTDATA_LOG` is set, writing
/// `format`.
pub(crate) fn init(verbosity: u8, format: LogFormat) {
    let from_env = std::env::var(FILTER_VARIABLE)
        .ok()
        .filter(|v| !v.trim().is_empty());
    if verbosity == 0 && from_env.is_none() {
        return;
    }
    let filter = match from_env.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => filter,
        Some(Err(error)) => {
            eprintln!("warning: ignoring {FILTER_VARIABLE}: {error}");
            EnvFilter::new(default_filter(verbosity))
        }
        None => EnvFilter::new(default_filter(verbosity)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
            .is_ok(),
        // No colour codes inside JSON strings.
        LogFormat::Json => builder.json().with_ansi(false).try_init().is_ok(),
    };
    ENABLED.store(installed, Ordering::Relaxed);
}

/// Whether logs are being written to stderr (then no progress spinner is drawn there).
pub(crate) fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
