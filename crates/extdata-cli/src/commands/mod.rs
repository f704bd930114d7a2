//! One module per subcommand, and what they share: loading the configuration and
//! picking a connector's source for the account.

mod check;
mod describe;
mod jobs;
mod ping;
mod query;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use extdata::{ConfigDocument, ExternalSource, Problems, Registry, SecretPolicy};
use extdata_jobs::{Jobs, JobsConfig};

use crate::cli::{Cli, Command};
use crate::failure::Failure;

/// The top-level sections this command understands: the registry's and the jobs'.
fn known_sections() -> Vec<&'static str> {
    extdata_jobs::known_sections()
}

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    let policy = cli.secret_policy();
    match cli.command {
        Command::Check => check::run(&cli.config, &policy),
        Command::Ping(args) => {
            let context = Context::load(&cli.config, cli.account, &policy)?;
            let outcome = ping::run(&context, &args).await;
            context.close().await;
            outcome
        }
        Command::Query(args) => {
            let context = Context::load(&cli.config, cli.account, &policy)?;
            let outcome = query::run(&context, args).await;
            context.close().await;
            outcome
        }
        Command::Describe(args) => {
            let context = Context::load(&cli.config, cli.account, &policy)?;
            let outcome = describe::run(&context, args).await;
            context.close().await;
            outcome
        }
        command => {
            let context = Context::load(&cli.config, cli.account, &policy)?;
            let outcome = jobs::run(&context, command).await;
            context.close().await;
            outcome
        }
    }
}

/// Reads and validates the file: every problem of the document (unknown sections,
/// connectors, accounts, jobs), the registry and the jobs when there is none. Secrets
/// are read under `policy` (the command line's grants) plus the file's `[secrets]`.
fn load(path: &Path, policy: &SecretPolicy) -> Result<(Registry, JobsConfig), Problems> {
    let document = ConfigDocument::from_path(path)?.with_secret_policy(policy.clone());
    let mut problems = document.unknown_sections(&known_sections());
    let registry = match Registry::from_document(&document) {
        Ok(registry) => Some(registry),
        Err(more) => {
            problems.extend(more);
            None
        }
    };
    // Jobs are checked even when connectors have problems, so one run reports all.
    let jobs = match JobsConfig::from_document(&document, registry.as_ref()) {
        Ok(jobs) => Some(jobs),
        Err(more) => {
            problems.extend(more);
            None
        }
    };
    match (registry, jobs) {
        (Some(registry), Some(jobs)) if problems.is_empty() => Ok((registry, jobs)),
        _ => Err(problems),
    }
}

/// The loaded configuration and the account the command acts for.
#[derive(Debug)]
pub(crate) struct Context {
    config: PathBuf,
    jobs: Arc<Jobs>,
    account: Option<String>,
}

impl Context {
    /// Loads the file; an invalid file is a usage failure listing every problem.
    fn load(
        config: &Path,
        account: Option<String>,
        policy: &SecretPolicy,
    ) -> Result<Self, Failure> {
        let (registry, jobs) =
            load(config, policy).map_err(|problems| Failure::config(config, &problems))?;
        Ok(Context {
            config: config.to_path_buf(),
            jobs: Arc::new(Jobs::new(Arc::new(registry), jobs)),
            account,
        })
    }

    /// The source of connector `name`: with `--account`, only a connector assigned to
    /// that account ([`extdata::ErrorKind::Forbidden`] otherwise, exit 1).
    fn source(&self, name: &str) -> Result<Arc<dyn ExternalSource>, Failure> {
        let registry = self.jobs.registry();
        let source = match &self.account {
            Some(account) => registry.source(account, name),
            None => registry.source_unchecked(name),
        };
        source.map_err(|error| {
            // Without an account, an unknown name is a typo on the command line.
            if self.account.is_none() && registry.connector(name).is_none() {
                let known: Vec<&str> = registry.connectors().map(|c| c.name.as_str()).collect();
                Failure::usage(format!(
                    "no connector named `{name}` in `{}`; known connectors: {}",
                    self.config.display(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            } else {
                Failure::from(error)
            }
        })
    }

    /// Closes every source the command opened (pools, SQLite files, the state store).
    async fn close(&self) {
        self.jobs.close().await;
    }
}
