//! Chain appender actor, one per Odoo database: the chain's single writer in
//! this collector. Buffers what arrives, and in one transaction at a time
//! plans gaps, takes the chain lock, reads the head, hashes, COPYs the rows
//! and moves the worker cursors; then hands their sums to the rollup
//! (without waiting) and publishes the rows to watchers.
//! Database down: the buffer is kept (bounded), retried with backoff, and
//! whatever overflows becomes a gap entry with the exact count.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, ResponseFuture, WrapFuture};
use deadpool_postgres::Pool;
use egress_rollup::Feed;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::chain::{self, Account};
use crate::config::ChainConfig;
use crate::databases::Databases;
use crate::error::{Error, Result};
use crate::stage::{Batch, Drain, Item, LossSummary, RedactedEntry, Traceable};
use crate::stats::Stats;
use crate::store::{self, ChainedRow};
use crate::watch_hub::{Committed, WatchHub};

/// How long shutdown waits for a database that does not answer.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Repeat a "database still down" warning at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

pub struct ChainAppender {
    database: String,
    databases: Arc<Databases>,
    config: ChainConfig,
    collector: String,
    stats: Arc<Stats>,
    watch: WatchHub,
    rollup: Feed,
    buffer: VecDeque<Item<RedactedEntry>>,
    /// Losses from a full buffer, kept in order behind the buffer.
    overflow: LossSummary,
    /// worker → what is accounted for it, as committed.
    cursors: HashMap<u64, Account>,
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
    last_warned: Option<Instant>,
    drain_waiters: Vec<oneshot::Sender<()>>,
}

impl ChainAppender {
    pub fn new(
        database: String,
        databases: Arc<Databases>,
        config: ChainConfig,
        collector: String,
        stats: Arc<Stats>,
        watch: WatchHub,
        rollup: Feed,
    ) -> Self {
        ChainAppender {
            database,
            databases,
            config,
            collector,
            stats,
            watch,
            rollup,
            buffer: VecDeque::new(),
            overflow: LossSummary::new("database_unavailable"),
            cursors: HashMap::new(),
            in_flight: false,
            failures: 0,
            retry_at: None,
            last_warned: None,
            drain_waiters: Vec::new(),
        }
    }

    fn enqueue(&mut self, items: Vec<Item<RedactedEntry>>) {
        for item in items {
            if self.buffer.len() >= self.config.queue_max {
                let reason = if self.failures > 0 {
                    "database_unavailable"
                } else {
                    "queue_full"
                };
                if self.overflow.is_empty() {
                    self.overflow = LossSummary::new(reason);
                    error!(db = %self.database, reason, queue_max = self.config.queue_max,
                        "Journal queue full, events are being dropped and counted as a gap.");
                }
                self.overflow.absorb(vec![item]);
                continue;
            }
            if !self.overflow.is_empty() {
                let summary = std::mem::replace(&mut self.overflow, LossSummary::new(""));
                self.buffer.push_back(Item::Lost(summary));
            }
            self.buffer.push_back(item);
        }
        self.report_queue();
    }

    fn report_queue(&self) {
        let queued = self.buffer.len() as u64;
        self.stats
            .update_database(&self.database, |d| d.queued = queued);
    }

    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        if self.buffer.is_empty() && self.overflow.is_empty() {
            self.notify_drained();
            return;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let take = self.buffer.len().min(self.config.batch_max_rows);
        let mut items: Vec<_> = self.buffer.drain(..take).collect();
        if self.buffer.is_empty() && !self.overflow.is_empty() {
            let summary = std::mem::replace(&mut self.overflow, LossSummary::new(""));
            items.push(Item::Lost(summary));
        }
        let mut known = HashMap::new();
        let mut unknown = Vec::new();
        for worker in workers_in(&items) {
            match self.cursors.get(&worker) {
                Some(account) => drop(known.insert(worker, account.clone())),
                None => unknown.push(worker),
            }
        }
        self.in_flight = true;
        let pool = self.databases.pool(&self.database);
        let write = write_batch(
            pool,
            self.database.clone(),
            items,
            known,
            unknown,
            self.collector.clone(),
        );
        ctx.spawn(
            write
                .into_actor(self)
                .map(|result, act, ctx| act.finish_flush(result, ctx)),
        );
    }

    fn finish_flush(&mut self, result: Result<Written, Failed>, ctx: &mut Context<Self>) {
        self.in_flight = false;
        match result {
            Ok(written) => self.committed(written),
            Err(Failed { items, error }) if error.is_data_rejection() => {
                // Retrying rows the database refuses would stall the chain
                // forever: account for them as a gap instead, and say so.
                error!(db = %self.database, error = %error,
                    "Database refused a batch of rows; recording them as a gap.");
                let mut summary = LossSummary::new("database_rejected");
                summary.absorb(items);
                self.buffer.push_front(Item::Lost(summary));
            }
            Err(Failed { items, error }) => self.failed(items, error),
        }
        self.report_queue();
        let draining = !self.drain_waiters.is_empty();
        if !self.buffer.is_empty() && (draining || self.buffer.len() >= self.config.batch_max_rows)
        {
            self.maybe_flush(ctx);
        }
        self.notify_drained();
    }

    fn committed(&mut self, written: Written) {
        if self.failures > 0 {
            info!(db = %self.database, after_failures = self.failures, "Journal writable again.");
        }
        self.failures = 0;
        self.retry_at = None;
        self.cursors.extend(written.cursors);
        let head_seq = written.rows.last().map(|r| r.row.seq);
        self.stats.update_database(&self.database, |d| {
            d.appended += written.rows.len() as u64;
            d.gap_entries += written.gap_entries;
            d.events_in_gaps += written.events_in_gaps;
            d.suppressed += written.suppressed;
            d.head_seq = head_seq.unwrap_or(d.head_seq);
            d.last_error = None;
        });
        self.rollup
            .committed(&self.database, written.rows.iter().map(|c| &c.row));
        self.watch.publish(Committed {
            database: self.database.clone(),
            rows: written.rows,
        });
    }

    fn failed(&mut self, items: Vec<Item<RedactedEntry>>, error: Error) {
        for item in items.into_iter().rev() {
            self.buffer.push_front(item);
        }
        self.failures += 1;
        let backoff = Duration::from_millis(100 * 2u64.pow(self.failures.min(6))).min(MAX_BACKOFF);
        self.retry_at = Some(Instant::now() + backoff);
        if self.last_warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            self.last_warned = Some(Instant::now());
            warn!(db = %self.database, error = %error, queued = self.buffer.len(),
                "Cannot write the journal; keeping events and retrying. Check the database and run `egress-collector setup` on it if it was never set up.");
        }
        let message = error.to_string();
        self.stats
            .update_database(&self.database, |d| d.last_error = Some(message));
    }

    fn notify_drained(&mut self) {
        if !self.in_flight && self.buffer.is_empty() && self.overflow.is_empty() {
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Actor for ChainAppender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.config.flush_interval(), |act, ctx| {
            act.maybe_flush(ctx)
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if !self.buffer.is_empty() {
            error!(db = %self.database, items = self.buffer.len(),
                "Stopped with events not journaled; their workers' next events will show them as a gap.");
        }
    }
}

impl Handler<Batch<RedactedEntry>> for ChainAppender {
    type Result = ();

    fn handle(&mut self, Batch(items, _ticket): Batch<RedactedEntry>, ctx: &mut Context<Self>) {
        self.enqueue(items);
        if self.buffer.len() >= self.config.batch_max_rows {
            self.maybe_flush(ctx);
        }
    }
}

impl Handler<Drain> for ChainAppender {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        self.drain_waiters.push(done);
        self.retry_at = None;
        self.maybe_flush(ctx);
        self.notify_drained();
        Box::pin(async move {
            let _ = tokio::time::timeout(DRAIN_DEADLINE, wait).await;
        })
    }
}

/// A committed batch.
struct Written {
    rows: Vec<ChainedRow>,
    cursors: HashMap<u64, Account>,
    gap_entries: u64,
    events_in_gaps: u64,
    suppressed: u64,
}

/// A batch that did not commit, returned intact.
struct Failed {
    items: Vec<Item<RedactedEntry>>,
    error: Error,
}

fn workers_in(items: &[Item<RedactedEntry>]) -> Vec<u64> {
    let mut workers: Vec<u64> = items
        .iter()
        .flat_map(|item| -> Vec<u64> {
            match item {
                Item::Call(entry) => vec![entry.worker_id()],
                Item::Drops(_, drops) => vec![drops.worker_id],
                Item::Lost(summary) => summary.workers.keys().map(|(_, w)| *w).collect(),
                Item::ConfigChange(..) | Item::Hello(..) => vec![],
            }
        })
        .collect();
    workers.sort_unstable();
    workers.dedup();
    workers
}

async fn write_batch(
    pool: Result<Pool>,
    database: String,
    mut items: Vec<Item<RedactedEntry>>,
    known: HashMap<u64, Account>,
    unknown: Vec<u64>,
    collector: String,
) -> Result<Written, Failed> {
    let (mut client, known) = match connect(pool, &database, known, &unknown).await {
        Ok(ready) => ready,
        Err(error) => return Err(Failed { items, error }),
    };
    // Rows move out of the items; on failure they move back, so a retry
    // finds every item as it was.
    let mut plan = chain::plan(&database, &mut items, &known);
    let sources = std::mem::take(&mut plan.sources);
    match commit(
        &mut client,
        std::mem::take(&mut plan.rows),
        &plan.cursors,
        &collector,
    )
    .await
    {
        Ok(rows) => Ok(Written {
            rows,
            cursors: plan.cursors,
            gap_entries: plan.gap_entries,
            events_in_gaps: plan.events_in_gaps,
            suppressed: plan.suppressed,
        }),
        Err((rows, error)) => {
            chain::restore(&mut items, rows, &sources);
            Err(Failed { items, error })
        }
    }
}

/// A connection, and the stored accounts of workers not seen since start.
async fn connect(
    pool: Result<Pool>,
    database: &str,
    mut known: HashMap<u64, Account>,
    unknown: &[u64],
) -> Result<(deadpool_postgres::Object, HashMap<u64, Account>)> {
    let client = crate::databases::connect(pool, database).await?;
    if !unknown.is_empty() {
        let ids: Vec<i64> = unknown.iter().map(|w| *w as i64).collect();
        let mut stored = store::fetch_accounts(&client, &ids).await?;
        for worker in unknown {
            known.insert(*worker, stored.remove(worker).unwrap_or_default());
        }
    }
    Ok((client, known))
}

/// One transaction: lock the chain, read its head, chain the rows after it,
/// COPY them and move the cursors. On failure the rows come back unchained.
async fn commit(
    client: &mut deadpool_postgres::Object,
    rows: Vec<egress_proto::JournalRow>,
    accounts: &HashMap<u64, Account>,
    collector: &str,
) -> Result<Vec<ChainedRow>, (Vec<egress_proto::JournalRow>, Error)> {
    let tx = match client.transaction().await {
        Ok(tx) => tx,
        Err(source) => {
            return Err((
                rows,
                Error::Db {
                    stmt: "begin",
                    source,
                },
            ))
        }
    };
    let head = match store::lock_and_read_head(&tx).await.and_then(head_hash) {
        Ok(head) => head,
        Err(error) => return Err((rows, error)),
    };
    let chained = chain::chain(rows, head, collector, store::to_micros(SystemTime::now()));
    let written = async {
        store::copy_rows(&tx, &chained).await?;
        store::upsert_accounts(&tx, accounts).await?;
        tx.commit().await.map_err(|source| Error::Db {
            stmt: "commit",
            source,
        })
    };
    match written.await {
        Ok(()) => Ok(chained),
        Err(error) => Err((chained.into_iter().map(|c| c.row).collect(), error)),
    }
}

fn head_hash(head: Option<(i64, Vec<u8>)>) -> Result<Option<(i64, [u8; 32])>> {
    let Some((seq, hash)) = head else {
        return Ok(None);
    };
    let hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
        Error::Config(format!(
            "the journal head (seq {seq}) has a row_hash that is not 32 bytes: run `egress-collector verify`"
        ))
    })?;
    Ok(Some((seq, hash)))
}
