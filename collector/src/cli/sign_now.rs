//! `egress-collector sign-now`: the running collector signs a database's
//! chain head immediately (it alone reads the keys).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use egress_collector::control::server::Request;

#[derive(Debug, Args)]
pub struct SignNowArgs {
    /// The running collector's control socket.
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// The Odoo database whose head to sign.
    #[arg(long)]
    db: String,
}

pub fn main(args: SignNowArgs) -> anyhow::Result<ExitCode> {
    let reply = super::one_reply(&args.control, &Request::SignNow { db: args.db })?;
    let head = &reply["head"];
    println!(
        "signed {} at seq {} (row_hash {}), public key {}",
        head["database"].as_str().unwrap_or("?"),
        head["seq"],
        head["row_hash"].as_str().unwrap_or("?"),
        head["public_key"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}
