#![doc = include_str!("../README.md")]

mod cli;
mod commands;
mod failure;
mod logging;
mod output;
mod params;
mod progress;

use std::process::ExitCode;

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
    let outcome = runtime.block_on(async {
        if handles_signals {
            return commands::run(cli).await;
        }
        tokio::select! {
            outcome = commands::run(cli) => outcome,
            // Dropping the command drops its row stream and sources, which stops the
            // query on the server instead of leaving it running behind a dead client.
            _ = tokio::signal::ctrl_c() => Err(failure::Failure::interrupted()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            failure.exit_code()
        }
    }
}
