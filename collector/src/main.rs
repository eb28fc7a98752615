//! The `egress-collector` command: the service and its tools.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// Events are allocated on the ingest thread and freed on the appender's:
// mimalloc's cross-thread frees cost a fraction of glibc's (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    egress_collector::allocator::keep_freed_memory();
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("egress-collector: {err:#}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}
