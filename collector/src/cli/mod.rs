//! Command-line interface: one file per subcommand.
//!
//! Exit codes: 0 success; 1 the journal is tampered (`verify`) or the
//! command failed; 2 `verify` could not check.

mod export;
mod forensic;
mod keys;
mod pubkey;
mod report;
mod run;
mod setup;
mod sign_now;
mod sign_resume;
mod status;
mod time;
mod vacuum_now;
mod verify;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub const EXIT_FAILURE: u8 = 1;

/// Network-egress auditor for Odoo: journals every outbound call of the Odoo
/// workers in a hash-chained, append-only journal you can verify.
#[derive(Debug, Parser)]
#[command(name = "egress-collector", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create roles, schema, journal and grants in an Odoo database (run once
    /// per database, as a PostgreSQL superuser; running it again changes nothing).
    Setup(setup::SetupArgs),
    /// Run the collector service.
    Run(Box<run::RunArgs>),
    /// Tail journal rows live as the collector commits them.
    Watch(watch::WatchArgs),
    /// Show the running collector's counters.
    Status(status::StatusArgs),
    /// Recompute the whole chain of a database's journal and check its signed heads.
    Verify(verify::VerifyArgs),
    /// Have the running collector sign a database's chain head now.
    SignNow(sign_now::SignNowArgs),
    /// Let the collector sign again after it refused an inconsistent head
    /// (journaled with your reason).
    SignResume(sign_resume::SignResumeArgs),
    /// Print a database's Ed25519 public key (for auditors).
    Pubkey(pubkey::PubkeyArgs),
    /// List every collector that appends to or signs a database, with its
    /// key and whether it is alive; `--keyring` prints the keyring to pin.
    Keys(keys::KeysArgs),
    /// Write a signed export of a database's journal.
    Export(export::ExportArgs),
    /// The Trust Report: who the Odoo workers talked to, from the rollups.
    Report(report::ReportArgs),
    /// Have the running collector prune a database's journal to its retention now.
    VacuumNow(vacuum_now::VacuumNowArgs),
    /// Forensic body capture: enable, disable, status, read (every switch
    /// and every read is journaled).
    Forensic(forensic::ForensicArgs),
}

/// Parses the command line, with each `run` flag's default in its help.
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command().mut_subcommand("run", run::with_defaults);
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Setup(args) => setup::main(args),
        Command::Run(args) => run::main(*args),
        Command::Watch(args) => watch::main(args),
        Command::Status(args) => status::main(args),
        Command::Verify(args) => verify::main(args),
        Command::SignNow(args) => sign_now::main(args),
        Command::SignResume(args) => sign_resume::main(args),
        Command::Pubkey(args) => pubkey::main(args),
        Command::Keys(args) => keys::main(args),
        Command::Export(args) => export::main(args),
        Command::Report(args) => report::main(args),
        Command::VacuumNow(args) => vacuum_now::main(args),
        Command::Forensic(args) => forensic::main(args),
    }
}

/// A current-thread runtime for the short-lived subcommands.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Talks to the running collector's control socket: sends one request line,
/// returns a reader over the reply lines.
async fn control_request(
    path: &std::path::Path,
    request: &egress_collector::control::server::Request,
) -> anyhow::Result<tokio::io::Lines<tokio::io::BufReader<tokio::net::UnixStream>>> {
    use anyhow::Context;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(path)
        .await
        .with_context(|| {
            format!(
            "cannot reach the collector at {} (is `egress-collector run` running? pass --control)",
            path.display()
        )
        })?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes()).await?;
    Ok(tokio::io::BufReader::new(stream).lines())
}

/// Sends one request and returns its one JSON reply, or the collector's
/// refusal as an error.
fn one_reply(
    path: &std::path::Path,
    request: &egress_collector::control::server::Request,
) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    let line = runtime()?.block_on(async {
        let mut lines = control_request(path, request).await?;
        lines
            .next_line()
            .await?
            .context("the collector closed the connection without a reply")
    })?;
    let value: serde_json::Value = serde_json::from_str(&line).context("unreadable reply")?;
    if value["type"] == "error" {
        anyhow::bail!("{}", value["message"].as_str().unwrap_or("refused"));
    }
    Ok(value)
}

/// `n` and the noun that agrees with it: "1 row", "2 rows", "0 rows".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

const DEFAULT_CONTROL: &str = "/run/egress-collector/control.sock";
