//! Chain appender actor, one per Odoo database: the chain's single writer in
//! this collector. Buffers what arrives, and in one transaction at a time
//! plans gaps, takes the chain lock, reads the head, hashes, COPYs the rows
//! and moves the worker cursors; then hands their sums to the rollup
//! (without waiting) and publishes the rows to watchers. The workers seen
//! (`egress.worker_seen`) ride along when their ledger says they are due.
//! Database down, full or failing: what it could not take goes to this
//! database's durable spool (`chain::spool`), and so does everything that
//! arrives until the spool is replayed, in order, through this same writer
//! (before anything newer); so does what is held when the collector stops.
//! Only beyond `spool.max_bytes` are events shed, as a `spool_full` gap with
//! the exact count. A database that does not exist is not spooled for (a
//! hostile sender can name any): its events are held in a bounded buffer
//! whose overflow becomes a gap entry.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Recipient, ResponseFuture,
    SpawnHandle, WrapFuture,
};
use deadpool_postgres::Pool;
use egress_rollup::Feed;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::chain::plan::{self as chain, Account};
use crate::chain::spool::{self, AppendError, Replay, Spool};
use crate::chain::workers::{self, Sightings, WorkerLedger, WorkerRow};
use crate::config::ChainConfig;
use crate::control::watch_hub::{Committed, WatchHub};
use crate::db::databases::Databases;
use crate::db::store;
use crate::error::{Error, Result};
use crate::pipeline::stage::{
    Batch, ChainedRow, DatabaseState, Drain, Item, LossSummary, RedactedEntry, Traceable,
};
use crate::stats::Stats;

/// How long shutdown waits for a database that does not answer.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Room the spool must have again before shedding stops.
const SHED_HYSTERESIS: u64 = 1 << 20;
/// Repeat a "database still down" warning at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// How often an appender with nothing to write looks again (for the
/// workers' rows that fall due, `workers::REFRESH`): an idle collector
/// wakes every 5 s per database, not at every `flush_interval`.
const IDLE_TICK: Duration = Duration::from_secs(5);

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
    /// The workers seen, and which of their rows are due.
    workers: WorkerLedger,
    in_flight: bool,
    /// What this appender adds to `Stats::appender_backlog`.
    backlog: usize,
    failures: u32,
    retry_at: Option<Instant>,
    last_warned: Option<Instant>,
    drain_waiters: Vec<oneshot::Sender<()>>,
    /// What the database cannot take yet; older than nothing in `buffer`
    /// (the buffer is written first), newer than everything committed.
    spool: Spool,
    /// The spooled batch being written, to move past once it commits.
    replaying: Option<Replay>,
    /// The last failure said the database does not exist: not spooled for.
    missing: bool,
    /// Told whether the database exists (its slot is kept or given back).
    router: Option<Recipient<DatabaseState>>,
    /// The router was told the database exists.
    confirmed: bool,
    /// The next look at what to write, and when (`schedule_tick`).
    tick: Option<(Instant, SpawnHandle)>,
}

impl ChainAppender {
    // Each argument is a distinct dependency handed over by `topology`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        database: String,
        databases: Arc<Databases>,
        config: ChainConfig,
        collector: String,
        stats: Arc<Stats>,
        watch: WatchHub,
        rollup: Feed,
        spool: Spool,
    ) -> Self {
        if let Some(why) = spool.broken() {
            error!(db = %database, error = why,
                "Cannot open the spool; events the database cannot take will be counted as a gap. Check the state directory.");
        }
        if let Some(corrupt) = spool.corruption() {
            error!(db = %database, at = corrupt.at, bytes = corrupt.bytes, why = %corrupt.why,
                "The spool's tail is torn or corrupt (a crash while writing?); it was cut off and is journaled as a spool_corrupt gap.");
        }
        if spool.pending() > 0 {
            info!(db = %database, records = spool.pending(), bytes = spool.bytes(),
                "Spooled events found; replaying them before anything newer.");
        }
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
            workers: WorkerLedger::default(),
            in_flight: false,
            backlog: 0,
            failures: 0,
            retry_at: None,
            last_warned: None,
            drain_waiters: Vec::new(),
            spool,
            replaying: None,
            missing: false,
            router: None,
            confirmed: false,
            tick: None,
        }
    }

    /// Reports to the router whether the database exists.
    pub fn reporting_to(mut self, router: Recipient<DatabaseState>) -> Self {
        self.router = Some(router);
        self
    }

    /// The database does not exist and nothing of it is spooled: give the
    /// slot back, and the router counts what was held as lost.
    fn give_up(&mut self, ctx: &mut Context<Self>) {
        let Some(router) = self.router.clone() else {
            return;
        };
        let mut lost = 0u64;
        for item in self.buffer.drain(..) {
            match item {
                Item::Call(_) => lost += 1,
                Item::Lost(summary) => {
                    lost += summary.workers.values().map(|l| l.calls).sum::<u64>()
                }
                _ => {}
            }
        }
        lost += self.overflow.workers.values().map(|l| l.calls).sum::<u64>();
        self.overflow = LossSummary::new("");
        let _ = router.try_send(DatabaseState::Missing {
            database: self.database.clone(),
            lost,
        });
        self.notify_drained();
        ctx.stop();
    }

    /// Whether what arrives goes to the spool: it holds older items, or the
    /// database is failing (and exists).
    fn spooling(&self) -> bool {
        self.spool.has_pending() || (self.failures > 0 && !self.missing)
    }

    /// Appends items to the spool in order; what does not fit is shed into
    /// `overflow`, which goes to the spool (forced: it is the accounting)
    /// ahead of the next item that fits.
    fn spool_items(&mut self, items: impl IntoIterator<Item = Item<RedactedEntry>>) {
        let mut spooled = 0u64;
        let mut shed = 0u64;
        for item in items {
            if matches!(item, Item::Hello(..)) {
                continue;
            }
            // Once shedding, shed until there is room again for more than
            // the summary: one summary per episode, not one per event.
            if !self.overflow.is_empty() && self.spool.has_room(SHED_HYSTERESIS) {
                let summary = std::mem::replace(&mut self.overflow, LossSummary::new(""));
                if let Err(e) = self.spool.append(&Item::Lost(summary.clone()), true) {
                    warn!(db = %self.database, error = ?e, "Cannot spool a loss summary yet.");
                    self.overflow = summary;
                }
            }
            let result = if self.overflow.is_empty() {
                self.spool.append(&item, matches!(item, Item::Lost(_)))
            } else {
                Err(AppendError::Full)
            };
            match result {
                Ok(()) => spooled += 1,
                Err(error) => {
                    if self.overflow.is_empty() {
                        let reason = match &error {
                            AppendError::Full => spool::SPOOL_FULL,
                            AppendError::Io(_) => spool::SPOOL_UNWRITABLE,
                        };
                        self.overflow = LossSummary::new(reason);
                        match &error {
                            AppendError::Full => error!(db = %self.database,
                                max_bytes = self.spool.max_bytes(),
                                "Spool full (spool.max_bytes); events are being shed and counted as a spool_full gap."),
                            AppendError::Io(e) => error!(db = %self.database, error = %e,
                                "Cannot write the spool; events are being shed and counted as a spool_unwritable gap. Check the state directory's disk."),
                        }
                    }
                    shed += u64::from(matches!(item, Item::Call(_)));
                    self.overflow.absorb(vec![item]);
                }
            }
        }
        self.stats.update_database(&self.database, |d| {
            d.spooled = d.spooled.saturating_add(spooled);
            d.shed = d.shed.saturating_add(shed);
        });
    }

    /// Moves everything held in memory to the spool, oldest first, and
    /// makes it durable (the database is failing, or the collector stops).
    fn spool_held(&mut self) {
        let held: Vec<_> = self.buffer.drain(..).collect();
        self.spool_items(held);
        if !self.overflow.is_empty() {
            let summary = std::mem::replace(&mut self.overflow, LossSummary::new(""));
            if let Err(e) = self.spool.append(&Item::Lost(summary.clone()), true) {
                self.overflow = summary;
                error!(db = %self.database, error = ?e, "Cannot spool a loss summary.");
            }
        }
        self.sync_spool();
    }

    fn sync_spool(&mut self) {
        match self.spool.sync() {
            Ok(true) => {
                let (pending, bytes) = (self.spool.pending(), self.spool.bytes());
                self.stats.update_database(&self.database, |d| {
                    d.spool_pending = pending;
                    d.spool_bytes = bytes;
                    d.spool_synced = d.spooled;
                });
            }
            Ok(false) => {}
            Err(e) => {
                error!(db = %self.database, error = %e,
                    "Cannot fsync the spool; what it holds may not survive a crash. Check the state directory's disk.");
            }
        }
    }

    fn enqueue(&mut self, items: Vec<Item<RedactedEntry>>) {
        if self.spooling() {
            self.spool_items(items);
            self.report_queue();
            return;
        }
        for item in items {
            if self.buffer.len() >= self.config.queue_max {
                let reason = if self.missing {
                    "database_missing"
                } else if self.failures > 0 {
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

    fn report_queue(&mut self) {
        let queued = self.buffer.len() as u64;
        let (pending, bytes) = (self.spool.pending(), self.spool.bytes());
        self.stats.update_database(&self.database, |d| {
            d.queued = queued;
            d.spool_pending = pending;
            d.spool_bytes = bytes;
        });
        // Beyond a batch, a healthy appender is behind its database: ingest
        // then sheds load at the socket (senders count it) rather than have
        // the events decoded, attributed and redacted only to overflow this
        // queue. A failing database is not counted: its queue is the buffer
        // that rides out the outage (and its overflow a gap entry).
        let backlog = if self.failures == 0 {
            self.buffer.len().saturating_sub(self.config.batch_max_rows)
        } else {
            0
        };
        if backlog >= self.backlog {
            self.stats
                .appender_backlog
                .fetch_add(backlog - self.backlog, Relaxed);
        } else {
            self.stats
                .appender_backlog
                .fetch_sub(self.backlog - backlog, Relaxed);
        }
        self.backlog = backlog;
    }

    /// Whether anything waits to be written, is being written or retried.
    fn has_work(&self) -> bool {
        !self.buffer.is_empty()
            || !self.overflow.is_empty()
            || self.spool.has_pending()
            || self.in_flight
            || self.retry_at.is_some()
            || !self.drain_waiters.is_empty()
    }

    /// The next look at what to write: `flush_interval` after now while
    /// there is work (the interval gathers a batch), `IDLE_TICK` after now
    /// when there is none. An earlier look already scheduled is kept.
    fn schedule_tick(&mut self, ctx: &mut Context<Self>) {
        let delay = if self.has_work() {
            self.config.flush_interval()
        } else {
            IDLE_TICK
        };
        let at = Instant::now() + delay;
        if let Some((due, handle)) = self.tick {
            if due <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(delay, |act, ctx| {
            act.tick = None;
            act.maybe_flush(ctx);
            act.schedule_tick(ctx);
        });
        self.tick = Some((at, handle));
    }

    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        let now = Instant::now();
        let draining = !self.drain_waiters.is_empty();
        if self.spooling() {
            // Durable before anything else is tried: a crash from here on
            // loses nothing the spool took.
            self.sync_spool();
        }
        if self.buffer.is_empty() && self.spool.has_pending() {
            if self.retry_at.is_some_and(|at| now < at) {
                return;
            }
            let (items, replay) = match self.spool.read_batch(self.config.batch_max_rows) {
                Ok(read) => read,
                Err(e) => {
                    error!(db = %self.database, error = %e, "Cannot read the spool; retrying.");
                    self.retry_at = Some(now + MAX_BACKOFF);
                    return;
                }
            };
            let seen = workers::sightings(&items);
            let due = self.workers.due(&seen, now, false);
            self.replaying = Some(replay);
            self.spawn_write(items, seen, due, ctx);
            return;
        }
        if self.buffer.is_empty() && self.overflow.is_empty() {
            // Workers seen whose rows are due, without rows to append: a
            // worker that went quiet (or stops) still has its last calls shown.
            self.workers.prune(now);
            let due = match self.retry_at {
                Some(at) if now < at => Vec::new(),
                _ => self.workers.due(&Sightings::new(), now, draining),
            };
            if due.is_empty() {
                self.notify_drained();
                return;
            }
            self.spawn_write(Vec::new(), Sightings::new(), due, ctx);
            return;
        }
        if self.retry_at.is_some_and(|at| now < at) {
            return;
        }
        let take = self.buffer.len().min(self.config.batch_max_rows);
        let mut items: Vec<_> = self.buffer.drain(..take).collect();
        if self.buffer.is_empty() && !self.overflow.is_empty() {
            let summary = std::mem::replace(&mut self.overflow, LossSummary::new(""));
            items.push(Item::Lost(summary));
        }
        let seen = workers::sightings(&items);
        let due = self
            .workers
            .due(&seen, now, draining && self.buffer.is_empty());
        self.spawn_write(items, seen, due, ctx);
    }

    fn spawn_write(
        &mut self,
        items: Vec<Item<RedactedEntry>>,
        seen: Sightings,
        due: Vec<WorkerRow>,
        ctx: &mut Context<Self>,
    ) {
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
            due,
            self.collector.clone(),
        );
        ctx.spawn(
            write
                .into_actor(self)
                .map(|result, act, ctx| act.finish_flush(result, seen, ctx)),
        );
    }

    fn finish_flush(
        &mut self,
        result: Result<Written, Failed>,
        seen: Sightings,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight = false;
        let replayed = self.replaying.take();
        match (result, replayed) {
            (Ok(written), Some(replay)) => {
                if let Err(e) = self.spool.consumed(replay) {
                    // Replayed again after a restart: refused as duplicates.
                    error!(db = %self.database, error = %e, "Cannot record the spool's replay position.");
                }
                self.stats.update_database(&self.database, |d| {
                    d.replayed = d.replayed.saturating_add(replay.records());
                });
                if !self.spool.has_pending() {
                    info!(db = %self.database, "Spool replayed.");
                }
                self.committed(written, seen);
            }
            (Err(Failed { items, error }), Some(replay)) if error.is_data_rejection() => {
                error!(db = %self.database, error = %error,
                    "Database refused a batch of spooled rows; recording them as a gap.");
                let _ = self.spool.consumed(replay);
                let mut summary = LossSummary::new("database_rejected");
                summary.absorb(items);
                self.buffer.push_front(Item::Lost(summary));
            }
            // Still in the spool: retried from there.
            (Err(Failed { error, .. }), Some(_)) => self.note_failure(&error),
            (Ok(written), None) => self.committed(written, seen),
            (Err(Failed { items, error }), None) if error.is_data_rejection() => {
                // Retrying rows the database refuses would stall the chain
                // forever: account for them as a gap instead, and say so.
                error!(db = %self.database, error = %error,
                    "Database refused a batch of rows; recording them as a gap.");
                let mut summary = LossSummary::new("database_rejected");
                summary.absorb(items);
                self.buffer.push_front(Item::Lost(summary));
            }
            (Err(Failed { items, error }), None) => {
                self.failed(items, error);
                if self.missing && !self.spool.has_pending() && self.router.is_some() {
                    self.report_queue();
                    self.give_up(ctx);
                    return;
                }
            }
        }
        self.report_queue();
        // Draining, even with nothing buffered: the workers' rows not written yet.
        let draining = !self.drain_waiters.is_empty();
        if draining || self.buffer.len() >= self.config.batch_max_rows {
            self.maybe_flush(ctx);
        }
        self.notify_drained();
    }

    fn committed(&mut self, written: Written, seen: Sightings) {
        if self.failures > 0 {
            info!(db = %self.database, after_failures = self.failures, "Journal writable again.");
        }
        self.failures = 0;
        self.retry_at = None;
        if !self.confirmed {
            if let Some(router) = &self.router {
                self.confirmed = router
                    .try_send(DatabaseState::Exists(self.database.clone()))
                    .is_ok();
            }
        }
        self.cursors.extend(written.cursors);
        let stored = written.workers_error.is_none();
        if let Some(error) = &written.workers_error {
            // Paused by the ledger for a while: at most one warning per pause.
            warn!(db = %self.database, error = %error,
                "Cannot record the workers seen (the journal is unaffected); run `egress-collector setup` on this database.");
        }
        self.workers
            .committed(seen, &written.workers, stored, Instant::now());
        let worker_rows = if stored { written.workers.len() } else { 0 } as u64;
        let head_seq = written.rows.last().map(|r| r.row.seq);
        self.stats.update_database(&self.database, |d| {
            d.appended += written.rows.len() as u64;
            d.gap_entries += written.gap_entries;
            d.events_in_gaps = d.events_in_gaps.saturating_add(written.events_in_gaps);
            d.suppressed += written.suppressed;
            d.duplicates = d.duplicates.saturating_add(written.duplicates);
            d.worker_rows += worker_rows;
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
        self.note_failure(&error);
        if self.spooling() {
            self.spool_held();
            self.report_queue();
        }
    }

    fn note_failure(&mut self, error: &Error) {
        self.missing = matches!(error, Error::NoSuchDatabase { .. });
        self.failures += 1;
        let backoff = Duration::from_millis(100 * 2u64.pow(self.failures.min(6))).min(MAX_BACKOFF);
        self.retry_at = Some(Instant::now() + backoff);
        if self.last_warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            self.last_warned = Some(Instant::now());
            let spooled = self.spool.pending();
            if error.is_disk_full() {
                error!(db = %self.database, error = %error, spooled,
                    "The database's disk is full; spooling events and retrying. Free space on the database server.");
            } else if self.missing {
                warn!(db = %self.database, error = %error, queued = self.buffer.len(),
                    "The database does not exist; its events cannot be journaled and its slot is given back. Create it and run `egress-collector setup` on it if it should.");
            } else {
                warn!(db = %self.database, error = %error, spooled, queued = self.buffer.len(),
                    "Cannot write the journal; spooling events and retrying. Check the database and run `egress-collector setup` on it if it was never set up.");
            }
        }
        let message = error.to_string();
        self.stats
            .update_database(&self.database, |d| d.last_error = Some(message));
    }

    fn notify_drained(&mut self) {
        // A failing database's spool waits for the next start; a healthy
        // one is replayed before the drain is over (within the deadline).
        let spool_done = !self.spool.has_pending() || self.failures > 0;
        if !self.in_flight && self.buffer.is_empty() && self.overflow.is_empty() && spool_done {
            self.sync_spool();
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Actor for ChainAppender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.schedule_tick(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stats.appender_backlog.fetch_sub(self.backlog, Relaxed);
        self.keep_what_is_held();
    }
}

impl Drop for ChainAppender {
    fn drop(&mut self) {
        // An actor dropped with its system may never see `stopped`.
        self.keep_what_is_held();
    }
}

impl Handler<Batch<RedactedEntry>> for ChainAppender {
    type Result = ();

    fn handle(&mut self, Batch(items, _ticket): Batch<RedactedEntry>, ctx: &mut Context<Self>) {
        // A Hello is not journaled: it only tells the ledger who the worker is.
        let mut items = items;
        items.retain(|item| match item {
            Item::Hello(sender, hello) => {
                self.workers.hello(*sender, hello);
                false
            }
            _ => true,
        });
        self.enqueue(items);
        if self.buffer.len() >= self.config.batch_max_rows {
            self.maybe_flush(ctx);
        }
        self.schedule_tick(ctx);
    }
}

impl Handler<Drain> for ChainAppender {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        self.drain_waiters.push(done);
        if self.failures > 0 && !self.missing {
            // The database is failing: what is held waits in the spool for
            // the next start rather than for a database that may not come.
            self.spool_held();
        } else {
            self.retry_at = None;
            self.maybe_flush(ctx);
        }
        self.schedule_tick(ctx);
        // Whatever the deadline leaves in memory goes to the spool.
        ctx.run_later(
            DRAIN_DEADLINE.saturating_sub(Duration::from_secs(1)),
            |act, _| {
                act.keep_what_is_held();
                act.notify_drained();
            },
        );
        self.notify_drained();
        Box::pin(async move {
            let _ = tokio::time::timeout(DRAIN_DEADLINE, wait).await;
        })
    }
}

impl ChainAppender {
    /// At stop: nothing held in memory may vanish. It goes to the spool
    /// (fsync'd) unless this database does not exist.
    fn keep_what_is_held(&mut self) {
        if self.buffer.is_empty() && self.overflow.is_empty() {
            self.sync_spool();
            return;
        }
        if self.missing {
            error!(db = %self.database, items = self.buffer.len(),
                "Stopped with events for a database that does not exist; they are not journaled.");
            return;
        }
        let held = self.buffer.len();
        self.spool_held();
        warn!(db = %self.database, items = held, spooled = self.spool.pending(),
            "Stopped with events not journaled yet; they are in the spool and will be journaled at the next start.");
    }
}

/// A committed batch.
struct Written {
    rows: Vec<ChainedRow>,
    cursors: HashMap<u64, Account>,
    gap_entries: u64,
    events_in_gaps: u64,
    suppressed: u64,
    duplicates: u64,
    /// The worker rows written with the batch, or tried: see `workers_error`.
    workers: Vec<WorkerRow>,
    /// Why the worker rows could not be written (the batch still was).
    workers_error: Option<Error>,
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
    workers: Vec<WorkerRow>,
    collector: String,
) -> Result<Written, Failed> {
    let (mut client, known) = match connect(pool, &database, known, &unknown).await {
        Ok(ready) => ready,
        Err(error) => return Err(Failed { items, error }),
    };
    if items.is_empty() {
        // Only workers' rows: no chain lock, one statement.
        let now_us = store::to_micros(SystemTime::now());
        let stored = store::upsert_workers(&**client, &workers, &collector, now_us).await;
        return Ok(Written {
            rows: Vec::new(),
            cursors: HashMap::new(),
            gap_entries: 0,
            events_in_gaps: 0,
            suppressed: 0,
            duplicates: 0,
            workers,
            workers_error: stored.err(),
        });
    }
    // Rows move out of the items; on failure they move back, so a retry
    // finds every item as it was.
    let mut plan = chain::plan(&database, &mut items, &known);
    let sources = std::mem::take(&mut plan.sources);
    match commit(
        &mut client,
        std::mem::take(&mut plan.rows),
        &plan.cursors,
        &workers,
        &collector,
    )
    .await
    {
        Ok((rows, workers_error)) => Ok(Written {
            rows,
            cursors: plan.cursors,
            gap_entries: plan.gap_entries,
            events_in_gaps: plan.events_in_gaps,
            suppressed: plan.suppressed,
            duplicates: plan.duplicates,
            workers,
            workers_error,
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
    let client = crate::db::databases::connect(pool, database).await?;
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
/// COPY them, move the cursors and record the workers due. On failure the
/// rows come back unchained. The workers are written under a savepoint: a
/// database without their table (setup not re-run) still takes the rows.
async fn commit(
    client: &mut deadpool_postgres::Object,
    rows: Vec<egress_proto::JournalRow>,
    accounts: &HashMap<u64, Account>,
    workers: &[WorkerRow],
    collector: &str,
) -> Result<(Vec<ChainedRow>, Option<Error>), (Vec<egress_proto::JournalRow>, Error)> {
    let mut tx = match client.transaction().await {
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
    let now_us = store::to_micros(SystemTime::now());
    let chained = chain::chain(rows, head, collector, now_us);
    let written = async {
        store::copy_rows(&tx, &chained).await?;
        store::upsert_accounts(&tx, accounts).await?;
        let workers_error = if workers.is_empty() {
            None
        } else {
            upsert_workers(&mut tx, workers, collector, now_us).await?
        };
        tx.commit().await.map_err(|source| Error::Db {
            stmt: "commit",
            source,
        })?;
        Ok(workers_error)
    };
    match written.await {
        Ok(workers_error) => Ok((chained, workers_error)),
        Err(error) => Err((chained.into_iter().map(|c| c.row).collect(), error)),
    }
}

/// The workers' upsert inside `tx`, under a savepoint: `Ok(Some(error))`
/// when only it failed (rolled back to the savepoint, the batch goes on).
async fn upsert_workers(
    tx: &mut tokio_postgres::Transaction<'_>,
    workers: &[WorkerRow],
    collector: &str,
    now_us: i64,
) -> Result<Option<Error>> {
    let db = |stmt| move |source| Error::Db { stmt, source };
    let savepoint = tx.savepoint("workers").await.map_err(db("savepoint"))?;
    match store::upsert_workers(&savepoint, workers, collector, now_us).await {
        Ok(()) => {
            savepoint.commit().await.map_err(db("release savepoint"))?;
            Ok(None)
        }
        Err(error) => {
            savepoint
                .rollback()
                .await
                .map_err(db("rollback to savepoint"))?;
            Ok(Some(error))
        }
    }
}

pub(crate) fn head_hash(head: Option<(i64, Vec<u8>)>) -> Result<Option<(i64, [u8; 32])>> {
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
