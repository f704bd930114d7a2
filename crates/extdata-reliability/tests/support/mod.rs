//! What several reliability suites share.
#![allow(dead_code, unused_imports, unused_macros)]

/// One `#[test]` per line, `name => body;`: the same case run against each backend,
/// each under its own name (so that a failure names the backend).
macro_rules! tests {
    ($($name:ident => $body:expr;)+) => {
        $(
            #[test]
            fn $name() {
                $body
            }
        )+
    };
}
pub(crate) use tests;

/// The `extdata` binary beside the test binary; `None` (by the require-or-skip rule)
/// when it is not built.
pub(crate) fn extdata_binary() -> Option<std::path::PathBuf> {
    let binary = std::env::current_exe()
        .ok()?
        .parent()?
        .parent()?
        .join("extdata");
    if binary.is_file() {
        Some(binary)
    } else {
        extdata_conformance::require_or_skip(
            "reliability",
            format!(
                "{} is not built (cargo build -p extdata-cli)",
                binary.display()
            ),
        )
    }
}

/// Runs `command`: its exit code, and its stdout and stderr, one after the other.
pub(crate) fn exit_and_output(command: &mut std::process::Command) -> (Option<i32>, String) {
    let output = command.output().expect("run extdata");
    (
        output.status.code(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}
