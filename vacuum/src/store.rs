//! All SQL of the vacuum: the retention setting, and one prune: the
//! privileged function and the `vacuum` entry, in one transaction.

use std::time::SystemTime;

use tokio_postgres::Client;

use crate::error::{db, Error, Result};
use crate::plan::{VacuumDetail, KEY_RETENTION};

pub use egress_proto::time::to_micros;
use egress_proto::time::to_system_time;

/// The database's `retention_days` as Odoo stores it; None when Odoo's
/// settings table is not there (the default then applies: keep all).
pub async fn read_retention(client: &Client) -> Result<Option<String>> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('public.ir_config_parameter') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db("look for ir_config_parameter"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT value FROM public.ir_config_parameter WHERE key = $1",
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

/// Removes at most `max_rows` of the oldest rows recorded before
/// `cutoff_us` (and strictly below the latest signed head, and already in
/// the rollups: the function enforces both), then appends the `vacuum`
/// entry after the head, in the same transaction and under the chain lock
/// the function took: a crash leaves both or neither.
#[allow(clippy::too_many_arguments)]
pub async fn prune_once(
    client: &mut Client,
    database: &str,
    collector: &str,
    cutoff_us: i64,
    max_rows: i64,
    retention_days: u32,
    clock_override: bool,
) -> Result<Option<Pruned>> {
    let tx = client.transaction().await.map_err(db("begin vacuum"))?;
    let removed = tx
        .query_opt(
            "SELECT first_seq, last_seq, removed, anchor, signed_seq \
             FROM egress.vacuum_journal($1, $2)",
            &[&to_system_time(cutoff_us), &max_rows],
        )
        .await
        .map_err(db("vacuum the journal"))?;
    let Some(removed) = removed else {
        return Ok(None);
    };
    let anchor: Vec<u8> = removed.get(3);
    let detail = VacuumDetail {
        first_seq: removed.get(0),
        last_seq: removed.get(1),
        rows: removed.get(2),
        anchor: hex::encode(&anchor),
        cutoff_us,
        retention_days,
        signed_head_seq: removed.get(4),
        clock_override,
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
