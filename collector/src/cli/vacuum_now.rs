//! `egress-collector vacuum-now`: the running collector prunes a database's
//! journal to its `retention_days` now (it alone may: the privileged
//! database function is granted to its role) and journals what it removed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use egress_collector::control::server::Request;

#[derive(Debug, Args)]
pub struct VacuumNowArgs {
    /// The running collector's control socket.
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// The Odoo database to prune.
    #[arg(long)]
    db: String,
    /// Take this instant (microseconds since the epoch) as "now" when
    /// computing the cutoff: for tests and drills. The vacuum entry records
    /// that the clock was overridden.
    #[arg(long)]
    now_us: Option<i64>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub fn main(args: VacuumNowArgs) -> anyhow::Result<ExitCode> {
    let reply = super::one_reply(
        &args.control,
        &Request::VacuumNow {
            db: args.db.clone(),
            now_us: args.now_us,
        },
    )?;
    let outcome = &reply["outcome"];
    if args.json {
        println!("{outcome}");
        return Ok(ExitCode::SUCCESS);
    }
    let days = outcome["retention_days"].as_u64().unwrap_or(0);
    if outcome["cutoff_us"].is_null() {
        println!(
            "{}: retention_days is 0, everything is kept; nothing pruned.",
            args.db
        );
        return Ok(ExitCode::SUCCESS);
    }
    let batches = outcome["batches"].as_array().cloned().unwrap_or_default();
    match (batches.first(), batches.last()) {
        (Some(first), Some(last)) => println!(
            "{}: removed seq {} to {} ({}, older than {}) in {}; \
             journaled as vacuum entries up to seq {}; verification now starts from anchor {}.",
            args.db,
            first["detail"]["first_seq"],
            last["detail"]["last_seq"],
            super::count(outcome["removed"].as_u64().unwrap_or(0), "row", "rows"),
            super::count(days, "day", "days"),
            super::count(batches.len() as u64, "transaction", "transactions"),
            last["entry_seq"],
            last["detail"]["anchor"].as_str().unwrap_or("?")
        ),
        _ => println!(
            "{}: nothing to prune (no row older than {days} day(s) lies below the latest signed head and in the rollups).",
            args.db
        ),
    }
    Ok(ExitCode::SUCCESS)
}
