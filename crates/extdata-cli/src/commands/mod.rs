//! One module per subcommand, and what they share: loading the configuration and
//! picking a connector's source for the account.

mod check;
mod describe;
mod jobs;
mod ping;
mod query;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use extdata::{ConfigDocument, ExternalSource, Problems, SecretPolicy};
use extdata_jobs::Jobs;

use crate::cli::{Cli, Command};
use crate::failure::Failure;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    let policy = cli.secret_policy();
    match cli.command {
        Command::Check => check::run(&cli.config, &policy),
        Command::Ping(args) => {
            let context = Context::load(&cli.config, cli.account, &policy)?;
            let outcome = context.as_account(ping::run(&context, &args)).await;
            context.close().await;
            outcome
        }
        Command::Query(args) => {
            let context = Context::load(&cli.config, cli.account, &policy)?;
            let outcome = context.as_account(query::run(&context, args)).await;
            context.close().await;
            outcome
        }
        Command::Describe(args) => {
            let context = Context::load(&cli.config, cli.account, &policy)?;
            let outcome = context.as_account(describe::run(&context, args)).await;
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

/// Reads and validates the file ([`Jobs::load`]): every problem of the document
/// (unknown sections, connectors, accounts, jobs), or the registry and the jobs when
/// there is none. Secrets are read under `policy` (the command line's grants) plus the
/// file's `[secrets]`.
fn load(path: &Path, policy: &SecretPolicy) -> Result<Jobs, Problems> {
    Jobs::load(&ConfigDocument::from_path(path)?.with_secret_policy(policy.clone()))
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
        let jobs = load(config, policy).map_err(|problems| Failure::config(config, &problems))?;
        Ok(Context {
            config: config.to_path_buf(),
            jobs: Arc::new(jobs),
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

    /// Runs `work` for `--account`, when given: its calls' metrics and spans carry the
    /// account. (The jobs label each call with their own account themselves.)
    async fn as_account<F: Future>(&self, work: F) -> F::Output {
        match &self.account {
            Some(account) => extdata::for_account(account, work).await,
            None => work.await,
        }
    }

    /// Closes every source the command opened (pools, SQLite files, the state store).
    async fn close(&self) {
        self.jobs.close().await;
    }
}
