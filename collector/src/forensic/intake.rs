//! The intake of `ForensicBody` chunks: a task fed by ingest through a
//! bounded channel (a full one drops the chunk, counted, never blocks
//! ingest). It reassembles each body, checks its digest, waits for the
//! call's journal row, checks that capture was on and the call in scope as
//! the collector itself attributed it, seals the body to that row and
//! stores it. Bodies live only in memory until sealed: never in the spool,
//! never in a log.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_proto::{ForensicBody, FORENSIC_PARTS};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::forensic::seal::Position;
use crate::forensic::service::{Forensic, IntakeStats};
use crate::forensic::sql::{self, NewBody};
use crate::pipeline::stage::Sender;

/// Chunks waiting for the intake task at most.
const CHANNEL_CHUNKS: usize = 1024;
/// Bytes of incomplete bodies held at most; the oldest go first beyond it.
const PENDING_BYTES_MAX: usize = 64 << 20;
/// An incomplete body is given up after this long.
const PENDING_TTL: Duration = Duration::from_secs(30);
/// How long a complete body waits for its call's row to be committed.
const ROW_WAIT: Duration = Duration::from_secs(30);
const ROW_POLL: Duration = Duration::from_millis(200);

/// What ingest holds: `try_send` only.
pub type IntakeSender = mpsc::Sender<(Sender, ForensicBody)>;

type BodyKey = (u64, String, u64, String);

struct Pending {
    sender: Sender,
    first: ForensicBody,
    data: Vec<u8>,
    filled: usize,
    started: Instant,
}

pub fn spawn_intake(forensic: Arc<Forensic>) -> IntakeSender {
    let stats = forensic.intake.clone();
    let (tx, mut rx) = mpsc::channel::<(Sender, ForensicBody)>(CHANNEL_CHUNKS);
    actix_rt::spawn(async move {
        let mut pending: HashMap<BodyKey, Pending> = HashMap::new();
        let mut held = 0usize;
        while let Some((sender, chunk)) = rx.recv().await {
            stats.chunks.fetch_add(1, Relaxed);
            pending.retain(|_, p| {
                let keep = p.started.elapsed() < PENDING_TTL;
                if !keep {
                    held -= p.data.len();
                    stats.refused.fetch_add(1, Relaxed);
                }
                keep
            });
            match take(&forensic, &mut pending, &mut held, sender, chunk) {
                Taken::Complete(body) => {
                    let forensic = forensic.clone();
                    let stats = stats.clone();
                    actix_rt::spawn(async move { store(&forensic, &stats, body).await });
                }
                Taken::Waiting => {}
                Taken::Refused(reason) => {
                    debug!(reason, "Forensic chunk refused.");
                    stats.refused.fetch_add(1, Relaxed);
                }
            }
        }
    });
    tx
}

enum Taken {
    Complete(Pending),
    Waiting,
    Refused(&'static str),
}

fn take(
    forensic: &Forensic,
    pending: &mut HashMap<BodyKey, Pending>,
    held: &mut usize,
    sender: Sender,
    chunk: ForensicBody,
) -> Taken {
    if !FORENSIC_PARTS.contains(&chunk.part.as_str()) {
        return Taken::Refused("bad_part");
    }
    let now = crate::db::store::to_micros(std::time::SystemTime::now());
    let Some(state) = forensic.active_state(&chunk.database, now) else {
        return Taken::Refused("capture_off");
    };
    let cap = state.max_body_bytes.max(0) as u64;
    let captured = chunk.captured_len;
    if captured > cap
        || captured > chunk.total_len
        || (captured < chunk.total_len) != chunk.truncated
    {
        return Taken::Refused("bad_length");
    }
    let end = chunk.offset.checked_add(chunk.data.len() as u64);
    if end.is_none_or(|end| end > captured) {
        return Taken::Refused("bad_offset");
    }
    let key = (
        chunk.worker_id,
        chunk.database.clone(),
        chunk.seq,
        chunk.part.clone(),
    );
    if !pending.contains_key(&key) {
        if *held + captured as usize > PENDING_BYTES_MAX {
            return Taken::Refused("memory_full");
        }
        *held += captured as usize;
        let first = ForensicBody {
            data: Vec::new(),
            ..chunk.clone()
        };
        pending.insert(
            key.clone(),
            Pending {
                sender,
                first,
                data: vec![0; captured as usize],
                filled: 0,
                started: Instant::now(),
            },
        );
    }
    let entry = pending.get_mut(&key).expect("inserted above");
    let same = entry.first.total_len == chunk.total_len
        && entry.first.captured_len == captured
        && entry.first.sha256 == chunk.sha256
        && entry.sender.pid == sender.pid;
    if !same {
        return Taken::Refused("inconsistent_chunks");
    }
    let at = chunk.offset as usize;
    entry.data[at..at + chunk.data.len()].copy_from_slice(&chunk.data);
    entry.filled += chunk.data.len();
    if entry.filled < captured as usize {
        return Taken::Waiting;
    }
    let done = pending.remove(&key).expect("present");
    *held -= done.data.len();
    if !done.first.truncated && <[u8; 32]>::from(Sha256::digest(&done.data)) != done.first.sha256 {
        return Taken::Refused("digest_mismatch");
    }
    Taken::Complete(done)
}

async fn store(forensic: &Forensic, stats: &IntakeStats, body: Pending) {
    let meta = &body.first;
    let database = meta.database.as_str();
    let refuse = |reason: &str| {
        stats.refused.fetch_add(1, Relaxed);
        debug!(db = %database, reason, "Forensic body not stored.");
    };
    // A pooled connection is taken per look-up and given back while
    // waiting: the appender that commits the call needs the same pool.
    let deadline = Instant::now() + ROW_WAIT;
    let call = loop {
        let found = match forensic.databases_client(database).await {
            Ok(client) => sql::find_call(&client, meta.worker_id, meta.seq).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(Some(call)) => break call,
            Ok(None) if Instant::now() < deadline => tokio::time::sleep(ROW_POLL).await,
            Ok(None) => return refuse("no_call_row"),
            Err(e) if Instant::now() < deadline => {
                debug!(db = %database, error = %e, "Forensic body waits for the database.");
                tokio::time::sleep(ROW_POLL).await
            }
            Err(e) => {
                warn!(db = %database, error = %e, "Forensic body lost: cannot look up its call.");
                return refuse("database");
            }
        }
    };
    // The body's sender must be the process whose call it names.
    if call.worker_pid != Some(body.sender.pid) {
        return refuse("other_process");
    }
    let Some(state) = forensic.active_state(database, call.recorded_at_us) else {
        return refuse("capture_off");
    };
    let scope = crate::forensic::Scope {
        host: state.host.clone(),
        addon: state.addon.clone(),
        channel: state.channel.clone(),
    };
    if !scope.covers(
        call.host.as_deref(),
        call.addon.as_deref(),
        call.channel.as_deref(),
    ) {
        return refuse("out_of_scope");
    }
    let key = match forensic.key(database) {
        Ok(key) => key,
        Err(e) => {
            warn!(db = %database, error = %e, "Forensic body lost: no sealing key.");
            return refuse("key");
        }
    };
    let at = Position {
        database,
        seq: call.seq,
        row_hash: &call.row_hash,
        part: &meta.part,
    };
    let (nonce, ciphertext) = match key.seal(&at, &meta.sha256, &body.data) {
        Ok(sealed) => sealed,
        Err(e) => {
            warn!(db = %database, error = %e, "Forensic body lost: cannot seal it.");
            return refuse("seal");
        }
    };
    let new = NewBody {
        journal_seq: call.seq,
        part: &meta.part,
        key_id: &key.id(),
        nonce: &nonce,
        ciphertext: &ciphertext,
        captured_len: meta.captured_len as i64,
        total_len: meta.total_len as i64,
        truncated: meta.truncated,
    };
    let stored = match forensic.databases_client(database).await {
        Ok(client) => sql::insert_body(&client, &new).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(true) => {
            stats.stored.fetch_add(1, Relaxed);
        }
        Ok(false) => refuse("already_stored"),
        Err(e) => {
            warn!(db = %database, seq = call.seq, error = %e, "Forensic body lost: cannot store it.");
            refuse("database");
        }
    }
}
