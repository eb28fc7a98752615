//! Writes the journal that `scripts/bench-verify.sh` times the verifiers on:
//! `EGRESS_BENCH_ROWS` (default 1,000,000) realistic rows (the signer
//! benchmark's, `signer/tests/common/rows.rs`), chained by the collector's
//! own `chain` (the rows of a batch of 10,000 share one `recorded_at`) and
//! appended with its binary COPY, and a head signed every
//! 10,000 rows with the database's keys in `EGRESS_BENCH_STATE` (created
//! there if missing), so that a collector started on that state directory
//! exports the journal. Not a timing itself.
//!
//! `EGRESS_BENCH_DATABASE_URL`: the prepared database (after `setup`), as a
//! role that may append (the collector's or a superuser); its dbname is the
//! rows' `database`. `EGRESS_BENCH_PROFILE=compact`: gap rows only.

#[path = "../../signer/tests/common/rows.rs"]
#[allow(dead_code)]
mod rows;

use std::time::Instant;

use egress_collector::chain::plan::chain;
use egress_collector::db::store::{copy_rows, record_signed_head};
use egress_proto::GENESIS_HASH;
use egress_signer::{sign_head, KeyStore};

const BATCH: i64 = 10_000;

fn main() -> anyhow::Result<()> {
    let var = |name: &str| std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set"));
    let url = var("EGRESS_BENCH_DATABASE_URL")?;
    let state = var("EGRESS_BENCH_STATE")?;
    let n: i64 = std::env::var("EGRESS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let compact = std::env::var("EGRESS_BENCH_PROFILE").as_deref() == Ok("compact");
    let config: tokio_postgres::Config = url.parse()?;
    let db = config
        .get_dbname()
        .ok_or_else(|| anyhow::anyhow!("the URL names no database"))?
        .to_owned();
    let keys = KeyStore::open(&state)?.keys(&db)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // A pooled connection: the collector's COPY path prepares its
        // statement once per pooled connection.
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig::default(),
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(1)
            .build()?;
        let mut client = pool.get().await?;
        let t = Instant::now();
        let mut prev = GENESIS_HASH;
        let mut seq = 1;
        while seq <= n {
            let end = (seq + BATCH - 1).min(n);
            let fresh = (seq..=end)
                .map(|s| {
                    if compact {
                        rows::gap_row_in(&db, s)
                    } else {
                        rows::row_in(&db, s)
                    }
                })
                .collect();
            let after = (seq > 1).then_some((seq - 1, prev));
            let batch = chain(fresh, after, "odoo-host-1", rows::T0 + end * 1_000);
            prev = batch.last().expect("a batch has rows").row_hash;
            let tx = client.transaction().await?;
            copy_rows(&tx, &batch).await?;
            tx.commit().await?;
            // A head every 10,000 rows: every 10 minutes at ~17 rows/s.
            if end % BATCH == 0 {
                let head = sign_head(&keys, &db, end, &prev, rows::T0 + end * 1_000);
                record_signed_head(&client, &head, "bench").await?;
            }
            seq = end + 1;
        }
        eprintln!(
            "wrote {n} rows and {} signed heads to {db} in {:.1} s",
            n / BATCH,
            t.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    })
}
