//! The `egress-collector` command: the service and its tools.

mod cli;

use std::process::ExitCode;

// Events are allocated on the ingest thread and freed on the appender's:
// mimalloc's cross-thread frees cost a fraction of glibc's (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    egress_collector::allocator::keep_freed_memory();
    let args = cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(err) => {
            // One line, each cause once (many messages already quote their source).
            let text = egress_collector::error::chain_text(err.as_ref());
            eprintln!("egress-collector: {text}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}
