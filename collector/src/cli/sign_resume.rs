//! `egress-collector sign-resume`: after the signer refused to sign a head
//! inconsistent with one it signed before, an operator who has found out
//! why lets it sign again. The resume is journaled (with the reason and the
//! operator's uid) before it takes effect.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use egress_collector::control::server::Request;

#[derive(Debug, Args)]
pub struct SignResumeArgs {
    /// The running collector's control socket.
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// The Odoo database whose signing to resume.
    #[arg(long)]
    db: String,
    /// Why it is safe to sign again (journaled with the resume).
    #[arg(long)]
    reason: String,
}

pub fn main(args: SignResumeArgs) -> anyhow::Result<ExitCode> {
    let reply = super::one_reply(
        &args.control,
        &Request::SignResume {
            db: args.db.clone(),
            reason: args.reason,
        },
    )?;
    println!(
        "signing of {} resumed; journaled at seq {}",
        args.db, reply["seq"]
    );
    Ok(ExitCode::SUCCESS)
}
