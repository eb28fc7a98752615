//! All SQL of the vacuum: the retention setting, and one prune: the
//! privileged function and the `vacuum` entry, in one transaction.

use std::time::SystemTime;

use tokio_postgres::Client;

use crate::error::{db, Error, Result};
use crate::plan::{VacuumDetail, KEY_RETENTION};

pub use egress_proto::time::to_micros;
use egress_proto::time::to_system_time;

/// The database's `retention_days` as Odoo last handed it over (the
/// egress-owned inbox, never Odoo's own tables); None when Odoo never set
/// it (the default then applies: keep all). `egress.prune_journal` reads
/// the same value itself: this one is for the outcome shown to people.
pub async fn read_retention(client: &Client) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "SELECT value FROM egress.current_setting WHERE key = $1",
            &[&KEY_RETENTION],
        )
        .await
        .map_err(db("read retention_days"))?;
    Ok(row.and_then(|r| r.get(0)))
}

/// One pruned range, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub detail: VacuumDetail,
    /// The seq of the `vacuum` entry that records it.
    pub entry_seq: i64,
}

/// Removes at most `max_rows` of the oldest rows that the configured
/// retention lets go (and strictly below the latest signed head, and
/// already in the rollups: `egress.prune_journal` enforces all three, and
/// refuses a clock of the caller's unless a superuser allowed one), then
/// appends the `vacuum` entry after the head, in the same transaction and
/// under the chain lock the function took: a crash leaves both or neither,
/// and the database refuses to commit the prune without its entry.
pub async fn prune_once(
    client: &mut Client,
    database: &str,
    collector: &str,
    now_us: Option<i64>,
    max_rows: i64,
) -> Result<Option<Pruned>> {
    let tx = client.transaction().await.map_err(db("begin vacuum"))?;
    let removed = tx
        .query_opt(
            "SELECT first_seq, last_seq, removed, anchor, signed_seq, cutoff, retention_days, \
             clock_override FROM egress.prune_journal($1, $2)",
            &[&max_rows, &now_us.map(to_system_time)],
        )
        .await
        .map_err(db("vacuum the journal"))?;
    let Some(removed) = removed else {
        return Ok(None);
    };
    let anchor: Vec<u8> = removed.get(3);
    let cutoff: SystemTime = removed.get(5);
    let retention_days: i32 = removed.get(6);
    let detail = VacuumDetail {
        first_seq: removed.get(0),
        last_seq: removed.get(1),
        rows: removed.get(2),
        anchor: hex::encode(&anchor),
        cutoff_us: to_micros(cutoff),
        retention_days: retention_days.max(0) as u32,
        signed_head_seq: removed.get(4),
        clock_override: removed.get(7),
    };
    let head = tx
        .query_one(
            "SELECT seq, row_hash FROM egress.journal ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(db("read chain head"))?;
    let (head_seq, head_hash): (i64, Vec<u8>) = (head.get(0), head.get(1));
    let prev: [u8; 32] = head_hash.try_into().map_err(|_| {
        Error::Journal(format!(
            "the journal head (seq {head_seq}) has a row_hash that is not 32 bytes: run `egress-collector verify`"
        ))
    })?;
    let mut row = detail.entry(database, collector, to_micros(SystemTime::now()));
    row.seq = head_seq + 1;
    let row_hash = row.hash_after(&prev);
    // Only these columns: every other one of a vacuum entry is NULL, as in
    // its canonical encoding.
    tx.execute(
        "INSERT INTO egress.journal (seq, prev_hash, row_hash, database, kind, recorded_at, \
         collector, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &row.seq,
            &prev.as_slice(),
            &row_hash.as_slice(),
            &row.database,
            &row.kind,
            &to_system_time(row.recorded_at_us),
            &row.collector,
            &row.detail,
        ],
    )
    .await
    .map_err(db("journal the vacuum"))?;
    tx.commit().await.map_err(db("commit vacuum"))?;
    Ok(Some(Pruned {
        detail,
        entry_seq: row.seq,
    }))
}
