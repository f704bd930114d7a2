//! The command line: global flags and one subcommand per job.
//!
//! A new subcommand is a variant of [`Command`], its arguments struct here, and a module
//! in `commands/`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use extdata::{SecretPolicy, Statement};

use crate::failure::Failure;
use crate::output::Format;
use crate::params::{self, Param, parse_param};

/// Check, ping, query and describe the external SQL databases named in a connector file,
/// and run its imports, segments and lookups.
#[derive(Debug, Parser)]
#[command(name = "extdata", version, propagate_version = true)]
pub(crate) struct Cli {
    /// The configuration file (TOML; JSON when the name ends in `.json`).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "EXTDATA_CONFIG",
        default_value = "extdata.toml",
        value_name = "FILE"
    )]
    pub(crate) config: PathBuf,

    /// Act as this account: a connector, import, segment or lookup that is not its own
    /// is refused. Names are per account: when several accounts have an import (segment,
    /// lookup) of the given name, this says whose.
    #[arg(long, global = true, value_name = "ID")]
    pub(crate) account: Option<String>,

    /// Let connectors read secret files inside DIR (`password = { file = "…" }`,
    /// `ssl.key`, `ssl.*_file`); repeatable. Adds to `dirs` of the file's `[secrets]`
    /// section. Without a grant, connectors take literal secrets only.
    #[arg(long = "secrets-dir", global = true, value_name = "DIR")]
    pub(crate) secrets_dirs: Vec<PathBuf>,

    /// Let connectors read the environment variables whose names start with PREFIX
    /// (`{ env = "…" }`); repeatable. Adds to `env_prefixes` of the `[secrets]` section.
    #[arg(long = "secrets-env-prefix", global = true, value_name = "PREFIX")]
    pub(crate) secrets_env_prefixes: Vec<String>,

    /// Log to stderr; `-vv` also logs the drivers. `EXTDATA_LOG` sets the filter
    /// (e.g. `EXTDATA_LOG=extdata=trace`). Logs never contain secrets or parameter values.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// How logs are written: `text` (one readable line per event) or `json` (one JSON
    /// object per line, for a log collector).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate the whole configuration file and report every problem
    /// (exit 0 when valid, 2 when not).
    Check,
    /// Make a real round trip to a connector's server: prints its version and the time
    /// taken, or the stage that failed (resolve, connect, TLS, authentication, database).
    Ping(PingArgs),
    /// Run a query and print its rows.
    Query(QueryArgs),
    /// Print the columns a query returns (name, database type, value type, nullable)
    /// without fetching its rows. A placeholder without a `--param` is described with
    /// NULL bound to it.
    Describe(DescribeArgs),
    /// Run an import (`[[imports]]`): with `--once`, one run now; without, on its
    /// schedule until Ctrl-C or SIGTERM (the batch being committed is finished first).
    Import(ImportArgs),
    /// Run the scheduler: every scheduled import (of `--account`, or all), until Ctrl-C
    /// or SIGTERM.
    Run(RunArgs),
    /// Print the runs of an import, newest first, one per line.
    History(HistoryArgs),
    /// Print a segment's member keys, one per line (cached for its `cache_ttl`); the
    /// count goes to stderr.
    Segment(SegmentArgs),
    /// Render a template with `{{ lookup("name", param=subscriber.field) }}` calls.
    Render(RenderArgs),
}

/// `extdata import NAME [--once]`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The import's name.
    pub(crate) name: String,

    /// Run once now and exit, instead of following the schedule.
    #[arg(long)]
    pub(crate) once: bool,
}

/// `extdata history NAME`.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The import's name.
    pub(crate) name: String,

    /// Print at most this many runs.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub(crate) limit: usize,

    /// `text`: one line per run; `json`: one JSON object per line (JSON lines), for
    /// scripts and monitoring.
    #[arg(long, short = 'f', value_enum, default_value_t = HistoryFormat::Text)]
    pub(crate) format: HistoryFormat,
}

/// Output of `extdata history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum HistoryFormat {
    /// One line per run.
    Text,
    /// One JSON object per run and line.
    Json,
}

/// `extdata segment NAME [--output FILE] [--refresh] [--sync]`.
#[derive(Debug, Args)]
pub(crate) struct SegmentArgs {
    /// The segment's name (with `--sync`: the segment sync's name).
    pub(crate) name: String,

    /// Write the keys to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,

    /// Run the query even when a cached result is still fresh.
    #[arg(long)]
    pub(crate) refresh: bool,

    /// Run the segment sync NAME (`[[segment_sync]]`): on_add / on_remove for the keys
    /// that joined or left since its last run.
    #[arg(long, conflicts_with_all = ["output", "refresh"])]
    pub(crate) sync: bool,
}

/// `extdata render TEMPLATE --subscriber FILE`.
#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// The template file (minijinja).
    pub(crate) template: PathBuf,

    /// The subscriber, a JSON object file (`-` reads stdin); the template sees it as
    /// `subscriber`.
    #[arg(long, value_name = "FILE")]
    pub(crate) subscriber: PathBuf,
}

/// How an operator of this command grants secrets, appended to a refusal.
const GRANT_HINT: &str = "grant it with --secrets-dir / --secrets-env-prefix, or in the \
config file's [secrets] section (dirs = [...], env_prefixes = [...])";

impl Cli {
    /// What the command line grants connectors: `--secrets-dir` and
    /// `--secrets-env-prefix` (the file's `[secrets]` section adds to it).
    pub(crate) fn secret_policy(&self) -> SecretPolicy {
        let mut policy = SecretPolicy::deny_all().with_grant_hint(GRANT_HINT);
        for dir in &self.secrets_dirs {
            policy = policy.with_file_root(dir.clone());
        }
        for prefix in &self.secrets_env_prefixes {
            policy = policy.with_env_prefix(prefix.clone());
        }
        policy
    }
}

impl Command {
    /// Whether the command handles Ctrl-C and SIGTERM itself (to stop cleanly).
    pub(crate) fn handles_signals(&self) -> bool {
        matches!(self, Command::Import(_) | Command::Run(_))
    }

    /// Whether the command runs one statement at a time (`query`, `describe`, `ping`),
    /// so that one thread runs it best.
    pub(crate) fn runs_one_statement(&self) -> bool {
        matches!(
            self,
            Command::Query(_) | Command::Describe(_) | Command::Ping(_)
        )
    }
}

/// The format of the logs on stderr (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields`, `target`, `span`,
    /// `spans`.
    Json,
}

/// `extdata run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Serve the metrics in Prometheus' text format over HTTP at ADDR (any path), e.g.
    /// `127.0.0.1:9464`: `extdata_calls_total`, `extdata_call_duration_seconds` and
    /// `extdata_rows_total` by account, connector, type and operation (each call
    /// labelled with the account of the job that made it). Without it, no port is
    /// opened.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
}

/// `extdata ping NAME`.
#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    /// The connector's name.
    pub(crate) name: String,
}

/// `NAME SQL --param ...`: a statement on a connector, as `query` and `describe` take it.
#[derive(Debug, Args)]
pub(crate) struct StatementArgs {
    /// The connector's name.
    pub(crate) name: String,

    /// The SQL, with `:name` placeholders for the parameters.
    pub(crate) sql: String,

    /// A parameter: `name=value` (text), `name:type=value` with type one of int, float,
    /// bool, decimal, date, timestamp, bytes (base64), text; or `name:null`.
    #[arg(long = "param", short = 'p', value_name = "NAME[:TYPE]=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<Param>,
}

impl StatementArgs {
    /// The statement with every `--param` bound; a usage error when a parameter is
    /// given twice.
    pub(crate) fn bind(&self) -> Result<Statement, Failure> {
        params::bind_all(&self.sql, &self.params).map_err(Failure::usage)
    }
}

/// `extdata query NAME SQL`.
#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    pub(crate) statement: StatementArgs,

    /// Output format; `csv`, `jsonl`, `arrow` (Arrow IPC stream) and `parquet` stream
    /// the rows as they arrive. The binary formats are refused on a terminal.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,

    /// Write the output to this file instead of stdout (created once the server
    /// accepted the query).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,

    /// Print at most this many rows (default 10000 for table and json, no bound for the
    /// streamed formats). A cut result is reported on stderr.
    #[arg(long, value_name = "N")]
    pub(crate) max_rows: Option<usize>,

    /// Bound on the query (default: the connector's `query_timeout`); for the streamed
    /// formats, on the wait for each row.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,
}

/// `extdata describe NAME SQL`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    #[command(flatten)]
    pub(crate) statement: StatementArgs,

    /// Output format of the column list.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,

    /// Bound on the call (default: the connector's `query_timeout`).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,
}

/// `"5s"`, `"500ms"`, `"2m"`; zero is refused (it would fail every call).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = extdata::parse_duration(text)?;
    if duration.is_zero() {
        return Err("the timeout must be greater than zero".to_owned());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn query_arguments_parse() {
        let cli = Cli::try_parse_from([
            "extdata",
            "--config",
            "x.toml",
            "--account",
            "42",
            "query",
            "crm",
            "SELECT :a",
            "--param",
            "a:int=5",
            "-p",
            "b=x",
            "--format",
            "jsonl",
            "--max-rows",
            "3",
            "--timeout",
            "2s",
            "-o",
            "out.jsonl",
        ])
        .unwrap();
        assert_eq!(cli.account.as_deref(), Some("42"));
        let Command::Query(q) = cli.command else {
            panic!("not a query")
        };
        assert_eq!(q.statement.params.len(), 2);
        assert_eq!(q.format, Format::Jsonl);
        assert_eq!(q.max_rows, Some(3));
        assert_eq!(q.timeout, Some(Duration::from_secs(2)));
        assert_eq!(q.output.as_deref(), Some(std::path::Path::new("out.jsonl")));
        for (name, format) in [("arrow", Format::Arrow), ("parquet", Format::Parquet)] {
            let cli =
                Cli::try_parse_from(["extdata", "query", "crm", "SELECT 1", "-f", name]).unwrap();
            let Command::Query(q) = cli.command else {
                panic!("not a query")
            };
            assert_eq!(q.format, format);
            assert!(format.streams() && format.is_binary());
        }
    }

    #[test]
    fn bad_param_and_timeout_are_usage_errors() {
        for args in [
            &["extdata", "query", "crm", "SELECT 1", "--param", "a:int=x"][..],
            &["extdata", "query", "crm", "SELECT 1", "--timeout", "soon"][..],
            &["extdata", "query", "crm", "SELECT 1", "--timeout", "0s"][..],
            &["extdata", "query", "crm", "SELECT 1", "--format", "xml"][..],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
