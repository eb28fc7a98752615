//! Every statement of forensic capture. Journal entries are appended as the
//! chain appender appends (the chain's lock, the head, the hash, one COPY),
//! in one transaction with the state they record.

use egress_proto::JournalRow;
use tokio_postgres::Client;

use crate::chain::appender::head_hash;
use crate::chain::plan;
use crate::db::store::{self, to_micros};
use crate::error::{Error, Result};
use crate::pipeline::stage::ChainedRow;

fn db_err(stmt: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |source| Error::Db { stmt, source }
}

/// `egress.forensic_state`, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StateRow {
    pub entry_seq: i64,
    pub active: bool,
    pub host: Option<String>,
    pub addon: Option<String>,
    pub channel: Option<String>,
    pub expires_at_us: Option<i64>,
    pub max_body_bytes: i64,
    pub changed_by: String,
    pub changed_at_us: i64,
}

pub async fn read_state(client: &Client) -> Result<Option<StateRow>> {
    let row = client
        .query_opt(
            "SELECT entry_seq, active, host, addon, channel, expires_at, max_body_bytes, \
             changed_by, changed_at FROM egress.forensic_state",
            &[],
        )
        .await
        .map_err(db_err("read forensic state"))?;
    Ok(row.map(|r| StateRow {
        entry_seq: r.get(0),
        active: r.get(1),
        host: r.get(2),
        addon: r.get(3),
        channel: r.get(4),
        expires_at_us: r.get::<_, Option<std::time::SystemTime>>(5).map(to_micros),
        max_body_bytes: r.get(6),
        changed_by: r.get(7),
        changed_at_us: to_micros(r.get(8)),
    }))
}

/// Appends `row` to the chain and commits; with `state`, the state row is
/// written in the same transaction (its `entry_seq` set to the new row's).
/// Only after this returns is the entry durable.
pub async fn append_entry(
    client: &mut deadpool_postgres::Object,
    row: JournalRow,
    state: Option<StateRow>,
    collector: &str,
    now_us: i64,
) -> Result<ChainedRow> {
    let tx = client
        .transaction()
        .await
        .map_err(db_err("begin forensic entry"))?;
    let head = head_hash(store::lock_and_read_head(&tx).await?)?;
    let chained = plan::chain(vec![row], head, collector, now_us)
        .pop()
        .expect("one row in, one row out");
    store::copy_rows(&tx, std::slice::from_ref(&chained)).await?;
    if let Some(state) = state {
        tx.execute(
            "INSERT INTO egress.forensic_state (id, entry_seq, active, host, addon, channel, \
             expires_at, max_body_bytes, changed_by, changed_at) \
             VALUES (true, $1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET entry_seq = EXCLUDED.entry_seq, \
             active = EXCLUDED.active, host = EXCLUDED.host, addon = EXCLUDED.addon, \
             channel = EXCLUDED.channel, expires_at = EXCLUDED.expires_at, \
             max_body_bytes = EXCLUDED.max_body_bytes, changed_by = EXCLUDED.changed_by, \
             changed_at = EXCLUDED.changed_at",
            &[
                &chained.row.seq,
                &state.active,
                &state.host,
                &state.addon,
                &state.channel,
                &state.expires_at_us.map(store::to_system_time),
                &state.max_body_bytes,
                &state.changed_by,
                &store::to_system_time(state.changed_at_us),
            ],
        )
        .await
        .map_err(db_err("write forensic state"))?;
    }
    tx.commit().await.map_err(db_err("commit forensic entry"))?;
    Ok(chained)
}

/// The journaled call a body names, as the collector attributed it.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub seq: i64,
    pub row_hash: Vec<u8>,
    pub worker_pid: Option<i64>,
    pub host: Option<String>,
    pub addon: Option<String>,
    pub channel: Option<String>,
    pub recorded_at_us: i64,
}

/// How far back from the head a body's call is looked for: bodies follow
/// their call within moments, and the look-up must stay a short range scan.
const CALL_LOOKBACK_ROWS: i64 = 100_000;

pub async fn find_call(
    client: &Client,
    worker_id: u64,
    worker_seq: u64,
) -> Result<Option<CallRow>> {
    let row = client
        .query_opt(
            "SELECT seq, row_hash, worker_pid, host, addon, channel, recorded_at \
             FROM egress.journal \
             WHERE seq > (SELECT coalesce(max(seq), 0) FROM egress.journal) - $3 \
               AND kind = 'call' AND worker_id = $1 AND worker_seq = $2",
            &[
                &(worker_id as i64),
                &(worker_seq as i64),
                &CALL_LOOKBACK_ROWS,
            ],
        )
        .await
        .map_err(db_err("find the call of a forensic body"))?;
    Ok(row.map(|r| CallRow {
        seq: r.get(0),
        row_hash: r.get(1),
        worker_pid: r.get(2),
        host: r.get(3),
        addon: r.get(4),
        channel: r.get(5),
        recorded_at_us: to_micros(r.get(6)),
    }))
}

/// A sealed body to store.
pub struct NewBody<'a> {
    pub journal_seq: i64,
    pub part: &'a str,
    pub key_id: &'a str,
    pub nonce: &'a [u8],
    pub ciphertext: &'a [u8],
    pub captured_len: i64,
    pub total_len: i64,
    pub truncated: bool,
}

/// Stores a body; the first one stored for a call's part wins. Whether it
/// was stored.
pub async fn insert_body(client: &Client, body: &NewBody<'_>) -> Result<bool> {
    let n = client
        .execute(
            "INSERT INTO egress.forensic_body (journal_seq, part, key_id, nonce, ciphertext, \
             captured_len, total_len, truncated, stored_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) ON CONFLICT DO NOTHING",
            &[
                &body.journal_seq,
                &body.part,
                &body.key_id,
                &body.nonce,
                &body.ciphertext,
                &body.captured_len,
                &body.total_len,
                &body.truncated,
            ],
        )
        .await
        .map_err(db_err("store a forensic body"))?;
    Ok(n == 1)
}

/// A stored body with the row hash of the call it is stored under.
pub struct StoredBody {
    pub part: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub captured_len: i64,
    pub total_len: i64,
    pub truncated: bool,
    pub row_hash: Vec<u8>,
}

pub async fn bodies_of(client: &Client, seq: i64) -> Result<Vec<StoredBody>> {
    let rows = client
        .query(
            "SELECT b.part, b.key_id, b.nonce, b.ciphertext, b.captured_len, b.total_len, \
             b.truncated, j.row_hash \
             FROM egress.forensic_body b JOIN egress.journal j ON j.seq = b.journal_seq \
             WHERE b.journal_seq = $1 ORDER BY b.part DESC",
            &[&seq],
        )
        .await
        .map_err(db_err("read forensic bodies"))?;
    Ok(rows
        .iter()
        .map(|r| StoredBody {
            part: r.get(0),
            key_id: r.get(1),
            nonce: r.get(2),
            ciphertext: r.get(3),
            captured_len: r.get(4),
            total_len: r.get(5),
            truncated: r.get(6),
            row_hash: r.get(7),
        })
        .collect())
}

/// The forensic entries (switches and reads) recorded since `since_us`, newest first.
#[allow(dead_code)]
pub async fn entries_since(
    client: &Client,
    since_us: i64,
    limit: i64,
) -> Result<Vec<(i64, String, i64, Option<String>)>> {
    let rows = client
        .query(
            "SELECT seq, kind, recorded_at, detail FROM egress.journal \
             WHERE kind IN ('forensic_capture', 'forensic_read') AND recorded_at >= $1 \
             ORDER BY seq DESC LIMIT $2",
            &[&store::to_system_time(since_us), &limit],
        )
        .await
        .map_err(db_err("read forensic entries"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), to_micros(r.get(2)), r.get(3)))
        .collect())
}
