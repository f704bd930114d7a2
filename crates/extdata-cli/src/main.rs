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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
