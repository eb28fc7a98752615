//! `egress-collector pubkey`: the Ed25519 public key an auditor needs to check
//! a database's signed heads and exports without trusting us.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use egress_collector::control::server::Request;

#[derive(Debug, Args)]
pub struct PubkeyArgs {
    /// The running collector's control socket.
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// The Odoo database.
    #[arg(long)]
    db: String,
}

pub fn main(args: PubkeyArgs) -> anyhow::Result<ExitCode> {
    let reply = super::one_reply(&args.control, &Request::Pubkey { db: args.db })?;
    println!("{}", reply["public_key"].as_str().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}
