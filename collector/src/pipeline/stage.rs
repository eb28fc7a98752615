//! The types that flow between stages: `RawCall → AttributedCall →
//! RedactedEntry → ChainedRow`. A stage can only be skipped by building the
//! next type by hand, which nothing outside its stage does.
//!
//! Everything a worker sends (calls, drop reports, setting changes) travels
//! the same path in the same order, and losses inside the collector travel
//! in-band as `Item::Lost`, so the chain appender sees every worker's events
//! in the order they were sent and can account for each one exactly once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use actix::Message;
use egress_proto::{Call, ConfigChange, Drops, Hello, JournalRow};

use crate::stats::Stats;

/// Who sent a datagram, according to the kernel (SCM_CREDENTIALS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    pub pid: i64,
    pub uid: i64,
}

/// A decoded, credential-checked call with its database name normalised.
#[derive(Debug, Clone)]
pub struct RawCall {
    pub call: Call,
    pub sender: Sender,
}

/// A call with the addon that caused it.
#[derive(Debug, Clone)]
pub struct AttributedCall {
    pub raw: RawCall,
    /// The attributed addon: innermost addon frame that is not plumbing.
    pub addon: Option<String>,
    /// Every addon on the stack, innermost first.
    pub addon_path: Vec<String>,
    pub self_egress: bool,
    /// The Egress Components catalogue entry the destination matched.
    pub component: Option<String>,
    pub class: crate::pipeline::catalogue::Class,
    /// Origin of each stack frame (addon name, `odoo`, `stdlib`,
    /// `site-packages`), aligned with `raw.call.stack`.
    pub frame_origins: Vec<String>,
}

/// A call reduced to what may reach disk. `row` lacks only its chain
/// position (seq, recorded_at, collector), which the appender assigns.
#[derive(Debug, Clone)]
pub struct RedactedEntry {
    pub database: String,
    pub worker_id: u64,
    pub worker_seq: u64,
    pub row: JournalRow,
    /// Set when this call is not journaled: its sequence number is
    /// accounted (the `suppressed` counter), nothing else is kept. This
    /// collector never sets it (the worker applies capture off and disabled
    /// channels, `policy::Settings`); entries spooled by an older collector
    /// may carry it.
    pub suppressed: Option<&'static str>,
}

/// What an appender learnt of its database.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub enum DatabaseState {
    /// A batch committed: the database is real; its slot is for good.
    Exists(String),
    /// The server says it does not exist: the appender stopped, `lost`
    /// calls with it.
    Missing { database: String, lost: u64 },
}

/// A row as appended: its position in the chain is fixed (the chain stage's
/// output, written by `db::store` and shown by the control socket).
#[derive(Debug, Clone)]
pub struct ChainedRow {
    pub row: JournalRow,
    pub prev_hash: [u8; 32],
    pub row_hash: [u8; 32],
}

/// What the appender needs to account for a call it never received.
pub trait Traceable {
    fn database(&self) -> &str;
    fn worker_id(&self) -> u64;
    fn worker_seq(&self) -> u64;
}

impl Traceable for RawCall {
    fn database(&self) -> &str {
        &self.call.database
    }
    fn worker_id(&self) -> u64 {
        self.call.worker_id
    }
    fn worker_seq(&self) -> u64 {
        self.call.seq
    }
}

impl Traceable for AttributedCall {
    fn database(&self) -> &str {
        self.raw.database()
    }
    fn worker_id(&self) -> u64 {
        self.raw.worker_id()
    }
    fn worker_seq(&self) -> u64 {
        self.raw.worker_seq()
    }
}

impl Traceable for RedactedEntry {
    fn database(&self) -> &str {
        &self.database
    }
    fn worker_id(&self) -> u64 {
        self.worker_id
    }
    fn worker_seq(&self) -> u64 {
        self.worker_seq
    }
}

/// One thing flowing down the pipeline, at stage `C`.
#[derive(Debug, Clone)]
pub enum Item<C> {
    Hello(Sender, Hello),
    Call(C),
    Drops(Sender, Drops),
    ConfigChange(Sender, ConfigChange),
    Lost(LossSummary),
}

/// A batch of items handed from one stage to the next, with the ticket that
/// counts it as in flight until the next stage is done with it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Batch<C: 'static>(pub Vec<Item<C>>, pub Ticket);

/// Counts a batch in its sender's in-flight counter, and its calls in
/// `Stats::in_mailboxes`, until it is dropped: a link knows the next stage's
/// mailbox is full without offering it a batch (a refused offer would cost
/// moving the batch out and back), and ingest knows how many calls are on
/// their way between stages.
#[derive(Debug, Default)]
pub struct Ticket(Option<Counted>);

#[derive(Debug)]
struct Counted {
    in_flight: Arc<AtomicUsize>,
    calls: usize,
    stats: Arc<Stats>,
}

impl Ticket {
    pub fn new(in_flight: &Arc<AtomicUsize>, calls: usize, stats: &Arc<Stats>) -> Ticket {
        in_flight.fetch_add(1, Relaxed);
        stats.in_mailboxes.fetch_add(calls, Relaxed);
        Ticket(Some(Counted {
            in_flight: in_flight.clone(),
            calls,
            stats: stats.clone(),
        }))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(counted) = &self.0 {
            counted.in_flight.fetch_sub(1, Relaxed);
            counted.stats.in_mailboxes.fetch_sub(counted.calls, Relaxed);
        }
    }
}

/// Stop accepting new work upstream has been done: flush everything held,
/// then reply.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// What one worker lost, for one database, at one point of the pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerLoss {
    /// Calls the collector dropped, with the range of their sequence numbers.
    pub calls: u64,
    pub seq_range: Option<(u64, u64)>,
    /// Running totals the worker reported in `Drops` messages we then dropped.
    pub reported: BTreeMap<String, u64>,
    /// Highest sequence cursor from those dropped `Drops` messages.
    pub cursor: Option<u64>,
    /// Other messages (setting changes) dropped.
    pub other: u64,
}

/// Losses inside the collector since the last batch that got through,
/// keyed by (database, worker), with the reason they were lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LossSummary {
    pub reason: &'static str,
    pub workers: BTreeMap<(String, u64), WorkerLoss>,
}

impl LossSummary {
    pub fn new(reason: &'static str) -> Self {
        LossSummary {
            reason,
            workers: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Accounts every item of a batch that could not be delivered.
    pub fn absorb<C: Traceable>(&mut self, items: Vec<Item<C>>) {
        for item in items {
            match item {
                Item::Call(call) => {
                    let loss = self.entry(call.database(), call.worker_id());
                    let seq = call.worker_seq();
                    loss.calls = loss.calls.saturating_add(1);
                    loss.seq_range = Some(match loss.seq_range {
                        None => (seq, seq),
                        Some((lo, hi)) => (lo.min(seq), hi.max(seq)),
                    });
                }
                Item::Drops(_, drops) => {
                    for count in drops.counts {
                        // Reports carry running totals: keep the highest.
                        let loss = self.entry(&count.database, drops.worker_id);
                        let total = loss.reported.entry(count.reason).or_default();
                        *total = (*total).max(count.count);
                    }
                    for cursor in drops.cursors {
                        let loss = self.entry(&cursor.database, drops.worker_id);
                        loss.cursor = Some(loss.cursor.unwrap_or(0).max(cursor.last_seq));
                    }
                }
                Item::ConfigChange(_, change) => {
                    let loss = self.entry(&change.database, change.worker_id);
                    loss.other = loss.other.saturating_add(1);
                }
                Item::Lost(earlier) => self.merge(earlier),
                // A lost Hello costs nothing: the worker repeats it every minute.
                Item::Hello(..) => {}
            }
        }
    }

    /// Folds in a summary from further upstream; the losses take this
    /// summary's reason (the point where they are finally accounted).
    pub fn merge(&mut self, other: LossSummary) {
        for ((database, worker), loss) in other.workers {
            let mine = self.entry(&database, worker);
            mine.calls = mine.calls.saturating_add(loss.calls);
            mine.seq_range = match (mine.seq_range, loss.seq_range) {
                (None, r) | (r, None) => r,
                (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            };
            for (reason, total) in loss.reported {
                let mine_total = mine.reported.entry(reason).or_default();
                *mine_total = (*mine_total).max(total);
            }
            mine.cursor = mine.cursor.max(loss.cursor);
            mine.other = mine.other.saturating_add(loss.other);
        }
    }

    /// Splits per database, for the router.
    pub fn split_by_database(self) -> BTreeMap<String, LossSummary> {
        let mut out: BTreeMap<String, LossSummary> = BTreeMap::new();
        for ((database, worker), loss) in self.workers {
            out.entry(database.clone())
                .or_insert_with(|| LossSummary::new(self.reason))
                .workers
                .insert((database, worker), loss);
        }
        out
    }

    fn entry(&mut self, database: &str, worker: u64) -> &mut WorkerLoss {
        self.workers
            .entry((database.to_owned(), worker))
            .or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(db: &str, worker: u64, seq: u64) -> Item<RawCall> {
        Item::Call(RawCall {
            call: Call {
                database: db.into(),
                worker_id: worker,
                seq,
                ..Call::default()
            },
            sender: Sender { pid: 1, uid: 0 },
        })
    }

    #[test]
    fn a_ticket_counts_its_calls_between_stages_until_dropped() {
        let stats = Arc::new(Stats::default());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let first = Ticket::new(&in_flight, 5, &stats);
        let second = Ticket::new(&in_flight, 3, &stats);
        assert_eq!(in_flight.load(Relaxed), 2);
        assert_eq!(stats.in_mailboxes.load(Relaxed), 8);
        drop(first);
        assert_eq!(in_flight.load(Relaxed), 1);
        assert_eq!(stats.in_mailboxes.load(Relaxed), 3);
        drop(second);
        assert_eq!(stats.in_mailboxes.load(Relaxed), 0);
        // Batches sent at shutdown carry no count.
        drop(Ticket::default());
        assert_eq!(stats.in_mailboxes.load(Relaxed), 0);
    }

    #[test]
    fn absorbing_counts_calls_and_reported_drops_per_worker() {
        let mut summary = LossSummary::new("mailbox_full");
        summary.absorb(vec![
            call("a", 1, 5),
            call("a", 1, 6),
            call("b", 2, 1),
            Item::Drops(
                Sender { pid: 1, uid: 0 },
                Drops {
                    worker_id: 1,
                    counts: vec![egress_proto::DropCount {
                        database: "a".into(),
                        reason: "buffer_full".into(),
                        count: 4,
                    }],
                    cursors: vec![egress_proto::SeqCursor {
                        database: "a".into(),
                        last_seq: 9,
                    }],
                },
            ),
        ]);
        let a = &summary.workers[&("a".to_string(), 1)];
        assert_eq!((a.calls, a.seq_range, a.cursor), (2, Some((5, 6)), Some(9)));
        assert_eq!(a.reported["buffer_full"], 4);
        let split = summary.split_by_database();
        assert_eq!(split.len(), 2);
        assert_eq!(split["b"].workers[&("b".to_string(), 2)].calls, 1);
    }

    #[test]
    fn merging_widens_ranges_and_adds_counts() {
        let mut first = LossSummary::new("mailbox_full");
        first.absorb(vec![call("a", 1, 3)]);
        let mut later = LossSummary::new("database_unavailable");
        later.absorb(vec![call("a", 1, 8)]);
        let mut merged = LossSummary::new("database_unavailable");
        merged.merge(first);
        merged.merge(later);
        assert_eq!(
            merged.workers[&("a".to_string(), 1)].seq_range,
            Some((3, 8))
        );
        assert_eq!(merged.workers[&("a".to_string(), 1)].calls, 2);
    }
}

#[cfg(test)]
mod count_properties {
    use super::*;
    use proptest::prelude::*;

    fn loss(calls: u64, other: u64, reported: u64, lo: u64, hi: u64) -> LossSummary {
        let mut summary = LossSummary::new("mailbox_full");
        summary.workers.insert(
            ("db".into(), 1),
            WorkerLoss {
                calls,
                seq_range: Some((lo.min(hi), lo.max(hi))),
                reported: [("buffer_full".to_string(), reported)].into(),
                cursor: Some(hi),
                other,
            },
        );
        summary
    }

    proptest! {
        #[test]
        fn merged_losses_saturate_and_never_shrink(
            a in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            b in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        ) {
            let mut merged = LossSummary::new("database_unavailable");
            merged.merge(loss(a.0, a.1, a.2, a.3, a.4));
            merged.merge(loss(b.0, b.1, b.2, b.3, b.4));
            let m = &merged.workers[&("db".to_string(), 1)];
            prop_assert_eq!(m.calls, a.0.saturating_add(b.0));
            prop_assert_eq!(m.other, a.1.saturating_add(b.1));
            prop_assert_eq!(m.reported["buffer_full"], a.2.max(b.2));
            let (lo, hi) = m.seq_range.unwrap();
            prop_assert!(lo <= hi);
            prop_assert_eq!(hi, a.3.max(a.4).max(b.3).max(b.4));
            prop_assert_eq!(m.cursor, Some(a.4.max(b.4)));
        }
    }
}
