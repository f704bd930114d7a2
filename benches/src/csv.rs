//! `extdata-csv`: the `extdata` command-line program (`extdata query … --format csv`,
//! release build, next to this program) writing the whole standard table as CSV to a
//! pipe this process drains, measured like the server's own client (`cli-csv` in
//! `stream.rs`): wall time from start to exit, the child's CPU, the bytes written.
//!
//! Build both first: `cargo build --release -p extdata-bench -p extdata-cli`.

use std::process::Command;

use crate::backend::{Backend, Server};
use crate::stream::{Outcome, drain};

/// Runs `extdata query bench '<sql>' --format csv` against `backend` with a connector
/// file written for it in a temporary directory.
pub(crate) fn extdata_cli(backend: Backend, _server: &Server, sql: &str) -> Outcome {
    let program = std::env::current_exe()
        .map_err(|e| format!("where is this program: {e}"))?
        .with_file_name("extdata");
    if !program.exists() {
        return Err(format!(
            "{} is missing: cargo build --release -p extdata-cli",
            program.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("extdata-bench-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = dir.join("extdata.toml");
    std::fs::write(&config, backend.connector_toml("bench", 1)?)
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let mut command = Command::new(program);
    command.arg("--config").arg(&config).args([
        "query",
        "bench",
        sql,
        "--format",
        "csv",
        "--timeout",
        "10m",
    ]);
    let outcome = drain(command, "the extdata program");
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}
