//! What the command-line tests share: the binary, a temporary folder with a config
//! file, the `extdata` command on it, and a run that must succeed.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use extdata::{ConnectorConfig, DbKind, ExternalSource};
pub use extdata_conformance::support::assert_contains_all;
use tempfile::TempDir;

/// The `extdata` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_extdata");

/// A temporary folder holding the config file `extdata.toml`.
pub struct Folder {
    _dir: TempDir,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Folder {
    /// A new folder whose `extdata.toml` holds `config`.
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().to_path_buf();
        let folder = Folder {
            _dir: dir,
            config: path.join("extdata.toml"),
            dir: path,
        };
        folder.write("extdata.toml", config);
        folder
    }

    /// The binary with `--config` set and no stray environment.
    pub fn cmd(&self) -> Command {
        let mut cmd = extdata(&self.config);
        cmd.timeout(Duration::from_secs(300));
        cmd
    }

    /// Writes `text` to `name` in the folder; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

/// The binary with `--config config` and no stray environment.
pub fn command(config: &Path) -> StdCommand {
    let mut cmd = StdCommand::new(BIN);
    cmd.env_remove("EXTDATA_CONFIG")
        .env_remove("EXTDATA_LOG")
        .arg("--config")
        .arg(config);
    cmd
}

/// [`command`], to be asserted on.
pub fn extdata(config: &Path) -> Command {
    Command::from_std(command(config))
}

/// Starts `extdata run` (the scheduler) on `config`, its log written to `log`.
pub fn start_runner(config: &Path, log: &Path) -> std::process::Child {
    command(config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log).expect("log file")))
        .spawn()
        .expect("extdata run starts")
}

/// A folder with SQLite connector `crm` (an empty `crm.db`) of account 42 and an import
/// `ticks` of `query` into `ticks.jsonl`, due every second.
pub fn ticking_folder(query: &str) -> Folder {
    let import = extdata_conformance::support::config_entry(
        "imports",
        "ticks",
        ("42", "crm"),
        query,
        "key = \"id\"\nschedule = { cron = \"* * * * * *\", timezone = \"UTC\" }\n\
         sink = { type = \"jsonl\", path = \"ticks.jsonl\" }",
    );
    let folder = Folder::new(&format!(
        "{}{import}",
        extdata_conformance::support::CRM_ACCOUNT
    ));
    // An empty file is an empty SQLite database.
    folder.write("crm.db", "");
    folder
}

/// `extdata --config config check`, run.
pub fn check(config: &Path) -> Assert {
    extdata(config).arg("check").assert()
}

/// Runs `command` with no input; asserts that it succeeded (`what` and its output
/// name the failure).
pub fn succeeded(command: &mut StdCommand, what: &str) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what} does not run: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}{}",
        stderr_of(&output),
        stdout_of(&output)
    );
    output
}

pub fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A SQLite file as a source, created when missing (`mode=rwc`): to set a database up.
pub fn sqlite(path: &Path) -> Arc<dyn ExternalSource> {
    extdata::connect(
        &ConnectorConfig::new("setup", DbKind::Sqlite)
            .with_database(path.to_string_lossy())
            .with_options("mode=rwc"),
    )
    .expect("sqlite source")
}

/// Runs `future` to its end on a runtime of its own.
pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}
