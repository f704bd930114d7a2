//! One module per subcommand, and what they share: loading the configuration and
//! picking a connector's source for the account.

mod check;
mod describe;
mod ping;
mod query;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use extdata::{ConfigDocument, ExternalSource, Problems, REGISTRY_SECTIONS, Registry};

use crate::cli::{Cli, Command};
use crate::failure::Failure;

/// The top-level sections this command understands; commands that read more sections
/// (imports, segments) add theirs here.
const KNOWN_SECTIONS: &[&str] = REGISTRY_SECTIONS;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Check => check::run(&cli.config),
        Command::Ping(args) => {
            let context = Context::load(&cli.config, cli.account)?;
            let outcome = ping::run(&context, &args).await;
            context.close().await;
            outcome
        }
        Command::Query(args) => {
            let context = Context::load(&cli.config, cli.account)?;
            let outcome = query::run(&context, args).await;
            context.close().await;
            outcome
        }
        Command::Describe(args) => {
            let context = Context::load(&cli.config, cli.account)?;
            let outcome = describe::run(&context, args).await;
            context.close().await;
            outcome
        }
    }
}

/// Reads and validates the file: every problem of the document (unknown sections,
/// connectors, accounts), the registry when there is none.
fn load(path: &Path) -> Result<Registry, Problems> {
    let document = ConfigDocument::from_path(path)?;
    let mut problems = document.unknown_sections(KNOWN_SECTIONS);
    match Registry::from_document(&document) {
        Ok(registry) if problems.is_empty() => Ok(registry),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

/// The loaded configuration and the account the command acts for.
#[derive(Debug)]
pub(crate) struct Context {
    config: PathBuf,
    registry: Registry,
    account: Option<String>,
}

impl Context {
    /// Loads the file; an invalid file is a usage failure listing every problem.
    fn load(config: &Path, account: Option<String>) -> Result<Self, Failure> {
        let registry = load(config).map_err(|problems| Failure::config(config, &problems))?;
        Ok(Context {
            config: config.to_path_buf(),
            registry,
            account,
        })
    }

    /// The source of connector `name`: with `--account`, only a connector assigned to
    /// that account ([`extdata::ErrorKind::Forbidden`] otherwise, exit 1).
    fn source(&self, name: &str) -> Result<Arc<dyn ExternalSource>, Failure> {
        let source = match &self.account {
            Some(account) => self.registry.source(account, name),
            None => self.registry.source_unchecked(name),
        };
        source.map_err(|error| {
            // Without an account, an unknown name is a typo on the command line.
            if self.account.is_none() && self.registry.connector(name).is_none() {
                let known: Vec<&str> = self
                    .registry
                    .connectors()
                    .map(|c| c.name.as_str())
                    .collect();
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

    /// Closes every source the command opened (pools, SQLite files).
    async fn close(&self) {
        self.registry.close().await;
    }
}
