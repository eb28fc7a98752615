//! `egress-collector verify`: exit 0 when the chain is intact, 1 when it is
//! broken (naming the first bad seq, or a head signed outside the pinned
//! keyring) or, with `--pubkey`/`--keyring`, when no head signed with a key
//! of the keyring covers it, 2 when it could not be checked (the egress
//! schema not as setup left it included). Reads only relations owned by
//! `egress_owner`, schema-qualified, with `search_path` pinned to
//! `pg_catalog, pg_temp`, so that run as a superuser it executes nothing of
//! Odoo's role. The outcome is appended to `egress.verify_result` (for the
//! Trust Report) when the role may; a pruned journal is checked from its
//! anchor.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use egress_collector::db::journal_copy::CopyDecoder;
use egress_collector::db::setup::connect;
use egress_collector::db::startup::Target;
use egress_collector::db::store;
use egress_collector::error::{chain_text, Error};
use egress_collector::proof::verify::{ChainCheck, RowFacts};
use egress_proto::chain_hash;
use egress_signer::Keyring;

const EXIT_TAMPERED: u8 = 1;
const EXIT_UNCHECKED: u8 = 2;
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The Odoo database whose journal to verify (any role that may read
    /// egress.journal, e.g. the collector's).
    #[arg(long, env = "EGRESS_VERIFY_DATABASE_URL")]
    database_url: String,
    /// Require every signed head to be signed with this Ed25519 public key
    /// (hex, from `egress-collector pubkey`), so a re-signed journal is
    /// caught too. Repeat it for every collector that signs the database.
    #[arg(long, value_name = "HEX")]
    pubkey: Vec<String>,
    /// A keyring file: one public key a line, optionally followed by a name
    /// (`egress-collector keys --db NAME` lists them). Every signed head must
    /// be signed with a key of the keyring (or of --pubkey).
    #[arg(long, value_name = "FILE")]
    keyring: Vec<std::path::PathBuf>,
    /// Do not record the outcome in egress.verify_result.
    #[arg(long)]
    no_record: bool,
    /// Rows read per COPY statement; a verification that finds a break
    /// reads at most this many rows past it on each connection.
    #[arg(long, default_value_t = 20_000, hide = true)]
    chunk_rows: u32,
    /// Connections reading the journal at once (default: one per CPU, at
    /// most 4), each on the same snapshot.
    #[arg(long)]
    connections: Option<usize>,
}

pub fn main(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let pinned = match Keyring::from_args(&args.pubkey, &args.keyring) {
        Ok(ring) => ring,
        Err(e) => {
            eprintln!("Could not verify the chain: {e}");
            return Ok(ExitCode::from(EXIT_UNCHECKED));
        }
    };
    let runtime = super::runtime()?;
    let connections = args
        .connections
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
    match runtime.block_on(check(
        &args.database_url,
        pinned,
        args.chunk_rows,
        connections,
    )) {
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
            let text = match (err.downcast_ref::<Error>(), args.database_url.parse()) {
                (Some(Error::Db { source, .. }), Ok(config)) => {
                    Target::of(&config).query_problem(source)
                }
                _ => chain_text(err.as_ref()),
            };
            eprintln!("Could not verify the chain: {text}");
            Ok(ExitCode::from(EXIT_UNCHECKED))
        }
    }
}

async fn check(
    url: &str,
    pinned: Option<Keyring>,
    chunk_rows: u32,
    connections: usize,
) -> anyhow::Result<(ChainCheck, tokio_postgres::Client)> {
    let mut client = connect(url).await?;
    let database: tokio_postgres::Config = url.parse().map_err(|e| {
        egress_collector::error::Error::Config(format!("database URL does not parse: {e}"))
    })?;
    // Nothing is read from a relation until every one relied on is as
    // `setup` left it: run as a superuser, a view or function of Odoo's
    // role in their place would run with the verifier's rights.
    if !store::egress_schema_exists(&client).await? {
        let name = database.get_dbname().unwrap_or("(default)");
        anyhow::bail!(
            "database {name:?} has no egress schema: {}",
            egress_collector::db::startup::setup_hint(name)
        );
    }
    let problems = store::egress_objects_problems(&client).await?;
    if !problems.is_empty() {
        anyhow::bail!(
            "the egress schema is not as `egress-collector setup` left it ({}); \
             nothing was read. Find out who changed it, then run setup again",
            problems.join("; ")
        );
    }
    let mut heads = Vec::new();
    for head in store::signed_heads(&client).await? {
        match head {
            Ok(head) => heads.push(head),
            Err(damage) => eprintln!("warning: {damage}"),
        }
    }
    let check = ChainCheck::new(database.get_dbname().map(str::to_owned)).with_heads(heads, pinned);
    // The journal in chunks of rows, read over `connections` connections on
    // one snapshot (connection i reads chunks i, i + n, …, so that as many
    // PostgreSQL backends work at once), and checked in chain order by
    // another thread as the data arrives.
    let share = connections > 1 && store::can_export_snapshot(&client).await?;
    if connections > 1 && !share {
        eprintln!(
            "note: the server cannot share its snapshot between connections: reading over one"
        );
    }
    let (first, snapshot) = store::snapshot_reader(&mut client, None, share).await?;
    let ends = store::chunk_ends(&first, chunk_rows).await?;
    // One connection alone where the server cannot share its snapshot.
    let mut others = Vec::new();
    for _ in 1..snapshot.as_ref().map_or(1, |_| connections) {
        others.push(connect(url).await?);
    }
    let mut readers = vec![first];
    for other in &mut others {
        readers.push(
            store::snapshot_reader(other, snapshot.as_deref(), false)
                .await?
                .0,
        );
    }
    let (mut senders, receivers): (Vec<_>, Vec<_>) = (0..=ends.len())
        .map(|_| tokio::sync::mpsc::unbounded_channel::<Vec<u8>>())
        .unzip();
    let (at, at_chunk) = tokio::sync::watch::channel(0);
    let checker = std::thread::spawn(move || check_chunks(check, receivers, at));
    let n = readers.len();
    let mut shares: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
    for (k, sender) in senders.drain(..).enumerate() {
        shares[k % n].push((k, sender));
    }
    let reads = readers
        .iter()
        .zip(shares)
        .map(|(tx, share)| read_chunks(tx, share, &ends, n, at_chunk.clone()));
    let read = futures_util::future::try_join_all(reads).await;
    drop(readers);
    let (mut check, decoded) = checker.join().expect("the chain checker panicked");
    read?;
    decoded?;
    check.finish();
    // The Trust Report's sums, against the journal they sum (the collector's
    // role may update them: this is what holds them to the journal).
    if check.broken.is_none() {
        let pruned = check.first_seq.is_some_and(|first| first > 1);
        check.rollups = store::rollup_problem(&client, pruned).await?;
    }
    Ok((check, client))
}

/// Pieces of COPY data per batch handed to the checker thread.
const BATCH_BYTES: usize = 1 << 20;

/// One connection's share of the chunks (their numbers and where their data
/// goes), each read once the checker is close enough behind: `n` chunks in
/// flight at most. Stops early when the checker does.
async fn read_chunks(
    tx: &tokio_postgres::Transaction<'_>,
    share: Vec<(usize, tokio::sync::mpsc::UnboundedSender<Vec<u8>>)>,
    ends: &[i64],
    n: usize,
    mut at_chunk: tokio::sync::watch::Receiver<usize>,
) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    for (k, sender) in share {
        if at_chunk.wait_for(|at| k < at + n).await.is_err() {
            return Ok(()); // the checker is done
        }
        let after = k.checked_sub(1).map(|j| ends[j]);
        let stream = store::copy_chunk(tx, after, ends.get(k).copied()).await?;
        futures_util::pin_mut!(stream);
        let mut batch = Vec::with_capacity(BATCH_BYTES);
        let mut going = true;
        while let Some(piece) = stream.next().await {
            // After a stop, the rest of the chunk is drained, not sent.
            let piece = piece?;
            if going {
                batch.extend_from_slice(&piece);
                if batch.len() >= BATCH_BYTES {
                    going = sender.send(std::mem::take(&mut batch)).is_ok();
                }
            }
        }
        if !going || (!batch.is_empty() && sender.send(batch).is_err()) {
            return Ok(());
        }
    }
    Ok(())
}

/// The checker thread: each chunk's rows decoded into their canonical
/// encoding, hashed and fed to the chain check, chunk after chunk, until
/// the journal ends or the chain breaks.
fn check_chunks(
    mut check: ChainCheck,
    chunks: Vec<tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>>,
    at: tokio::sync::watch::Sender<usize>,
) -> (ChainCheck, anyhow::Result<()>) {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    for (k, mut chunk) in chunks.into_iter().enumerate() {
        let _ = at.send(k);
        let mut decoder = CopyDecoder::default();
        while let Some(batch) = chunk.blocking_recv() {
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
        if !decoder.finished {
            return (check, Err(anyhow::anyhow!("a COPY stream ended early")));
        }
    }
    (check, Ok(()))
}

/// What `verify --pubkey`/`--keyring` says when no head signed with a key of
/// the keyring covers
/// any row of a journal that has rows.
fn nothing_signed(check: &ChainCheck) -> String {
    format!(
        "nothing signed: no head signed with a pinned public key matches any of the {} rows \
         (seq {} to {}): the chain links, but nothing proves who wrote it",
        check.rows,
        check.first_seq.unwrap_or(1),
        check.head_seq()
    )
}

fn outcome(check: &ChainCheck) -> store::VerifyOutcome {
    if let (None, Some(problem)) = (&check.broken, &check.rollups) {
        return store::VerifyOutcome {
            verified: false,
            rows: check.rows as i64,
            first_seq: check.first_seq,
            last_seq: Some(check.head_seq()),
            broken_seq: None,
            message: format!("the rollups do not match the journal: {problem}"),
        };
    }
    if check.broken.is_none() && check.nothing_signed {
        return store::VerifyOutcome {
            verified: false,
            rows: check.rows as i64,
            first_seq: check.first_seq,
            last_seq: Some(check.head_seq()),
            broken_seq: None,
            message: nothing_signed(check),
        };
    }
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
        None if check.rollups.is_some() || check.nothing_signed => {
            if let Some(problem) = &check.rollups {
                println!(
                    "TAMPERED: the rollups (the Trust Report's sums) do not match the journal: {problem}."
                );
            }
            if check.nothing_signed {
                println!("NOT VERIFIED: {}.", nothing_signed(check));
            }
            ExitCode::from(EXIT_TAMPERED)
        }
        None => {
            println!("Audit chain verified OK — no tampering detected.");
            println!(
                "{}, seq {} to {}; {} checked.",
                super::count(check.rows, "row", "rows"),
                check.first_seq.unwrap_or(1),
                check.head_seq(),
                super::count(check.heads_checked as u64, "signed head", "signed heads")
            );
            // Who signed: worth saying with several signers, or a keyring pinned.
            if check.signers.len() > 1 || check.keyring_pinned() {
                let signers: Vec<String> = check
                    .signers
                    .iter()
                    .map(|((collector, key), n)| format!("{collector} (key {key}): {n}"))
                    .collect();
                println!("Signed by: {}.", signers.join(", "));
            }
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
                    println!(
                        "{} before the anchor cannot be checked: their rows were pruned.",
                        super::count(unchecked as u64, "signed head", "signed heads")
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Some(broken) => {
            println!(
                "TAMPERED: the chain breaks at seq {}: {}.",
                broken.seq, broken.reason
            );
            println!(
                "{} before it verified.",
                super::count(check.rows, "row", "rows")
            );
            ExitCode::from(EXIT_TAMPERED)
        }
    }
}
