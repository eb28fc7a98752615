//! `egress-collector verify`: exit 0 when the chain is intact, 1 when it is
//! broken (naming the first bad seq), 2 when it could not be checked.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use egress_collector::setup::connect;
use egress_collector::store;
use egress_collector::verify::ChainCheck;

const EXIT_TAMPERED: u8 = 1;
const EXIT_UNCHECKED: u8 = 2;
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The Odoo database whose journal to verify (any role that may read
    /// egress.journal, e.g. the collector's).
    #[arg(long, env = "EGRESS_VERIFY_DATABASE_URL")]
    database_url: String,
}

pub fn main(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    match super::runtime()?.block_on(check(&args.database_url)) {
        Ok(check) => Ok(report(&check)),
        Err(err) => {
            eprintln!("Could not verify the chain: {err}");
            Ok(ExitCode::from(EXIT_UNCHECKED))
        }
    }
}

async fn check(url: &str) -> egress_collector::error::Result<ChainCheck> {
    let mut client = connect(url).await?;
    let database: tokio_postgres::Config = url.parse().map_err(|e| {
        egress_collector::error::Error::Config(format!("database URL does not parse: {e}"))
    })?;
    let mut check = ChainCheck::new(database.get_dbname().map(str::to_owned));
    let started = Instant::now();
    let mut last_progress = Instant::now();
    store::for_each_row(&mut client, |row| {
        let going = check.feed(&row);
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            let rate = check.rows as f64 / started.elapsed().as_secs_f64();
            eprintln!("verified {} rows ({rate:.0} rows/s)…", check.rows);
        }
        going
    })
    .await?;
    Ok(check)
}

fn report(check: &ChainCheck) -> ExitCode {
    match &check.broken {
        None => {
            println!("Audit chain verified OK — no tampering detected.");
            println!("{} rows, seq 1 to {}.", check.rows, check.head_seq());
            ExitCode::SUCCESS
        }
        Some(broken) => {
            println!(
                "TAMPERED: the chain breaks at seq {}: {}.",
                broken.seq, broken.reason
            );
            println!("{} rows before it verified.", check.rows);
            ExitCode::from(EXIT_TAMPERED)
        }
    }
}
