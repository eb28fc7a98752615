//! `egress-collector verify`: exit 0 when the chain is intact, 1 when it is
//! broken (naming the first bad seq), 2 when it could not be checked. The
//! outcome is appended to `egress.verify_result` (for the Trust Report)
//! when the role may; a pruned journal is checked from its anchor.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use egress_collector::journal_copy::CopyDecoder;
use egress_collector::setup::connect;
use egress_collector::store;
use egress_collector::verify::{ChainCheck, RowFacts};
use egress_proto::chain_hash;

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
    /// Do not record the outcome in egress.verify_result.
    #[arg(long)]
    no_record: bool,
    /// Rows read per COPY statement; a verification that finds a break
    /// reads at most this many rows past it.
    #[arg(long, default_value_t = 100_000, hide = true)]
    chunk_rows: u32,
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
    let runtime = super::runtime()?;
    match runtime.block_on(check(&args.database_url, pinned, args.chunk_rows)) {
        Ok((check, client)) => {
            if !args.no_record {
                if let Err(e) =
                    runtime.block_on(store::record_verify_result(&client, &outcome(&check)))
                {
                    eprintln!("note: the outcome was not recorded for the Trust Report ({e}); --no-record silences this");
                }
            }
            Ok(report(&check))
        }
        Err(err) => {
            eprintln!("Could not verify the chain: {err}");
            Ok(ExitCode::from(EXIT_UNCHECKED))
        }
    }
}

async fn check(
    url: &str,
    pinned: Option<[u8; 32]>,
    chunk_rows: u32,
) -> anyhow::Result<(ChainCheck, tokio_postgres::Client)> {
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
    let check = ChainCheck::new(database.get_dbname().map(str::to_owned)).with_heads(heads, pinned);
    // This thread reads; another decodes, hashes and checks, so that the
    // two overlap. Pieces go over in batches; `true` marks the first batch
    // of each COPY stream.
    let (batches, received) = std::sync::mpsc::sync_channel::<(bool, Vec<u8>)>(BATCHES_IN_FLIGHT);
    let checker = std::thread::spawn(move || check_batches(check, received));
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut starts = false;
    let read = store::copy_journal_out(&mut client, chunk_rows, |piece, first| {
        if first || batch.len() >= BATCH_BYTES {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_BYTES));
            if (!full.is_empty() || starts) && batches.send((starts, full)).is_err() {
                return false; // the checker stopped: the chain is broken
            }
            starts = first;
        }
        batch.extend_from_slice(piece);
        true
    })
    .await;
    if !batch.is_empty() || starts {
        let _ = batches.send((starts, batch));
    }
    drop(batches);
    let (mut check, decoded) = checker.join().expect("the chain checker panicked");
    read?;
    decoded?;
    check.finish();
    Ok((check, client))
}

/// Pieces of COPY data per batch handed to the checker thread.
const BATCH_BYTES: usize = 1 << 20;
const BATCHES_IN_FLIGHT: usize = 8;

/// The checker thread: decodes each row into its canonical encoding, hashes
/// it and feeds the chain check, until the data ends or the chain breaks.
fn check_batches(
    mut check: ChainCheck,
    batches: std::sync::mpsc::Receiver<(bool, Vec<u8>)>,
) -> (ChainCheck, anyhow::Result<()>) {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut decoder: Option<CopyDecoder> = None;
    for (first, batch) in batches {
        if first {
            if decoder.as_ref().is_some_and(|d| !d.finished) {
                return (check, Err(anyhow::anyhow!("a COPY stream ended early")));
            }
            decoder = Some(CopyDecoder::default());
        }
        let Some(decoder) = decoder.as_mut() else {
            return (check, Err(anyhow::anyhow!("COPY data before its start")));
        };
        let going = decoder.feed(&batch, |row, canonical| {
            let content_ok = <[u8; 32]>::try_from(row.prev_hash)
                .is_ok_and(|prev| chain_hash(&prev, canonical).as_slice() == row.row_hash);
            check.feed_facts(&RowFacts {
                seq: row.seq,
                prev_hash: row.prev_hash,
                row_hash: row.row_hash,
                content_ok,
                database: row.database,
                kind: row.kind,
                detail: row.detail,
            })
        });
        match going {
            Ok(true) => {}
            Ok(false) => return (check, Ok(())),
            Err(e) => return (check, Err(anyhow::anyhow!("unreadable journal data: {e}"))),
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            let rate = check.rows as f64 / started.elapsed().as_secs_f64();
            eprintln!("verified {} rows ({rate:.0} rows/s)…", check.rows);
        }
    }
    if decoder.is_some_and(|d| !d.finished) {
        return (check, Err(anyhow::anyhow!("a COPY stream ended early")));
    }
    (check, Ok(()))
}

fn outcome(check: &ChainCheck) -> store::VerifyOutcome {
    store::VerifyOutcome {
        verified: check.broken.is_none(),
        rows: check.rows as i64,
        first_seq: check.first_seq,
        last_seq: (check.rows > 0).then(|| check.head_seq()),
        broken_seq: check.broken.as_ref().map(|b| b.seq),
        message: match &check.broken {
            None => "Audit chain verified OK — no tampering detected.".into(),
            Some(b) => format!("the chain breaks at seq {}: {}", b.seq, b.reason),
        },
    }
}

fn report(check: &ChainCheck) -> ExitCode {
    match &check.broken {
        None => {
            println!("Audit chain verified OK — no tampering detected.");
            println!(
                "{} rows, seq {} to {}; {} signed heads checked.",
                check.rows,
                check.first_seq.unwrap_or(1),
                check.head_seq(),
                check.heads_checked
            );
            if let Some(anchor) = &check.anchor {
                println!(
                    "Started from the anchor {} (prev_hash of seq {}): rows 1 to {} were removed \
                     by retention, as the vacuum entry at seq {} records{}.",
                    hex::encode(&anchor.prev_hash),
                    anchor.first_seq,
                    anchor.first_seq - 1,
                    anchor.vouched_by.unwrap_or_default(),
                    if anchor.clock_override {
                        " (that vacuum ran with a clock set by its caller)"
                    } else {
                        ""
                    }
                );
                let unchecked = check.heads_before_anchor();
                if unchecked > 0 {
                    println!("{unchecked} signed heads before the anchor cannot be checked: their rows were pruned.");
                }
            }
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
