//! The `egress-collector` command: the service and its tools.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("egress-collector: {err:#}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}
