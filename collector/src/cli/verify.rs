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
    /// Require every signed head to carry this Ed25519 public key (hex, from
    /// `egress-collector pubkey`), so a re-signed journal is caught too.
    #[arg(long)]
    pubkey: Option<String>,
}

pub fn main(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let pinned = match &args.pubkey {
        Some(text) => match hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            Some(key) => Some(key),
            None => {
                eprintln!("Could not verify the chain: --pubkey is not 64 hex digits");
                return Ok(ExitCode::from(EXIT_UNCHECKED));
            }
        },
        None => None,
    };
    match super::runtime()?.block_on(check(&args.database_url, pinned)) {
        Ok(check) => Ok(report(&check)),
        Err(err) => {
            eprintln!("Could not verify the chain: {err}");
            Ok(ExitCode::from(EXIT_UNCHECKED))
        }
    }
}

async fn check(url: &str, pinned: Option<[u8; 32]>) -> egress_collector::error::Result<ChainCheck> {
    let mut client = connect(url).await?;
    let database: tokio_postgres::Config = url.parse().map_err(|e| {
        egress_collector::error::Error::Config(format!("database URL does not parse: {e}"))
    })?;
    let mut heads = Vec::new();
    for head in store::signed_heads(&client).await? {
        match head {
            Ok(head) => heads.push(head),
            Err(damage) => eprintln!("warning: {damage}"),
        }
    }
    // Odoo's mirror outlives rows deleted from the heads table.
    if let Some(mirror) = store::mirrored_head(&client).await {
        match serde_json::from_str::<egress_signer::SignedHead>(&mirror) {
            Ok(head) if !heads.contains(&head) => heads.push(head),
            Ok(_) => {}
            Err(e) => {
                eprintln!("warning: the signed head in ir_config_parameter does not parse: {e}")
            }
        }
    }
    let mut check =
        ChainCheck::new(database.get_dbname().map(str::to_owned)).with_heads(heads, pinned);
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
    check.finish();
    Ok(check)
}

fn report(check: &ChainCheck) -> ExitCode {
    match &check.broken {
        None => {
            println!("Audit chain verified OK — no tampering detected.");
            println!(
                "{} rows, seq 1 to {}; {} signed heads checked.",
                check.rows,
                check.head_seq(),
                check.heads_checked
            );
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
