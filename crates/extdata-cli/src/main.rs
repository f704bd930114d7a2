#![doc = include_str!("../README.md")]

mod cli;
mod commands;
mod failure;
mod logging;
mod output;
mod params;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.verbose);
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
    let outcome = runtime.block_on(async {
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
