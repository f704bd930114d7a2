#![doc = include_str!("../README.md")]

mod cli;
mod commands;
mod failure;
mod logging;
mod output;
mod params;
mod progress;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.verbose, cli.log_format);
    // A command that runs one statement gets a runtime of one thread: the driver's
    // connection and the output are polled by the same thread, so a streamed result
    // costs no wake-up across threads per network read (on ClickHouse, ~40 % of the
    // CPU of `query --format csv` on two threads). Imports and the scheduler run jobs
    // side by side and keep a thread per core.
    let mut builder = if cli.command.runs_one_statement() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(failure::RUNTIME);
        }
    };
    // Imports and the scheduler stop on Ctrl-C/SIGTERM themselves, after the batch
    // being committed; the other commands are simply dropped.
    let handles_signals = cli.command.handles_signals();
    let (outcome, interrupted) = runtime.block_on(async {
        if handles_signals {
            return (commands::run(cli).await, false);
        }
        tokio::select! {
            outcome = commands::run(cli) => (outcome, false),
            // Dropping the command drops its row stream and sources, which stops the
            // query on the server instead of leaving it running behind a dead client.
            _ = tokio::signal::ctrl_c() => (Err(failure::Failure::interrupted()), true),
        }
    });
    if interrupted {
        runtime.block_on(settle(CANCEL_GRACE));
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            failure.exit_code()
        }
    }
}

/// How long an interrupted command waits for the cancels its dropped streams started.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Runs the runtime's tasks until none is left or `grace` has passed. A stream dropped
/// by Ctrl-C starts the query's cancel on the server (PostgreSQL's cancel request,
/// MySQL's `KILL QUERY`, ClickHouse's `KILL QUERY`, Hive's `CloseSession`) as a task of
/// this runtime; without this wait the runtime would be dropped before that task sent
/// anything, leaving the query running behind a client that is gone.
async fn settle(grace: Duration) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = tokio::time::Instant::now() + grace;
    while metrics.num_alive_tasks() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
