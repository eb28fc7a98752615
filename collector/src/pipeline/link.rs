//! A bounded hand-off between two stages. The sender never waits: what the
//! next stage's mailbox cannot take now is held here, in order, and retried
//! with the next send or `flush`. Only beyond `max_held` items are events
//! dropped, summarised as a loss that rides, in order, ahead of what comes
//! after it, so the appender turns it into a gap entry with the exact count
//! (DESIGN §1.3).
//!
//! A link knows the next stage only as recipients of `Batch<C>` and
//! `Drain` (STYLE: peers as `Recipient`), so no stage names the next one's
//! type; `Link::to` builds one from an actor's address.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::ToEnvelope;
use actix::prelude::SendError;
use actix::{Actor, Addr, AsyncContext, Context, Handler, Recipient};

use crate::pipeline::stage::{Batch, Drain, Item, LossSummary, Ticket, Traceable};
use crate::stats::Stats;

/// Items a link holds while the next stage is busy, by default.
pub const DEFAULT_MAX_HELD: usize = 20_000;
/// How often owners retry what their link holds (only while it holds
/// something: `HandsOn::retry_while_holding`).
pub const RETRY_EVERY: Duration = Duration::from_millis(2);
/// Batches a next stage's mailbox takes, unless told otherwise (the
/// collector's `ingest.mailbox_batches` default).
const DEFAULT_CAPACITY: usize = 64;
/// Most items handed on in one message: bounds what a refused try moves.
const MAX_BATCH: usize = 4096;

pub struct Link<C: Send + 'static> {
    /// The next stage: its batches, and its drain at shutdown.
    to: Recipient<Batch<C>>,
    drain: Recipient<Drain>,
    held: VecDeque<Item<C>>,
    /// Calls among `held` (markers and reports do not count).
    held_calls: usize,
    max_held: usize,
    /// Losses since the held queue was last below its bound.
    pending: LossSummary,
    /// Set when the next stage refused a batch: no retry before then.
    retry_at: Option<Instant>,
    /// Batches sent and not yet done with by the next stage, and how many
    /// its mailbox takes.
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
    /// Counter name in `status`, e.g. "attribution".
    name: &'static str,
    stats: Arc<Stats>,
}

impl<C> Link<C>
where
    C: Traceable + Send + 'static,
{
    /// A link to the stage at `to`.
    pub fn to<A>(to: Addr<A>, name: &'static str, stats: Arc<Stats>) -> Self
    where
        A: Actor + Handler<Batch<C>> + Handler<Drain>,
        A::Context: ToEnvelope<A, Batch<C>> + ToEnvelope<A, Drain>,
    {
        Link::new(to.clone().recipient(), to.recipient(), name, stats)
    }

    pub fn new(
        to: Recipient<Batch<C>>,
        drain: Recipient<Drain>,
        name: &'static str,
        stats: Arc<Stats>,
    ) -> Self {
        Link {
            to,
            drain,
            held: VecDeque::new(),
            held_calls: 0,
            max_held: DEFAULT_MAX_HELD,
            pending: LossSummary::new("mailbox_full"),
            retry_at: None,
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity: DEFAULT_CAPACITY,
            name,
            stats,
        }
    }

    /// How many batches the next stage's mailbox takes.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    pub fn with_max_held(mut self, max_held: usize) -> Self {
        self.max_held = max_held.max(1);
        self
    }

    /// Queues `items` behind what is held and hands on as much as the next
    /// stage takes now.
    pub fn send(&mut self, items: Vec<Item<C>>) {
        for item in items {
            let is_call = matches!(item, Item::Call(_));
            if is_call && self.held_calls >= self.max_held {
                self.stats.count_dropped(self.name, "mailbox_full", 1);
                self.pending.absorb(vec![item]);
                continue;
            }
            if !self.pending.is_empty() {
                let summary =
                    std::mem::replace(&mut self.pending, LossSummary::new("mailbox_full"));
                self.held.push_back(Item::Lost(summary));
            }
            if is_call {
                self.add_held(1);
            }
            self.held.push_back(item);
        }
        self.flush();
    }

    /// Hands on what is held, `MAX_BATCH` items at a time, until the next
    /// stage's mailbox is full; then waits `RETRY_EVERY` before trying again,
    /// so a busy stage costs the sender nothing but a clock read.
    pub fn flush(&mut self) {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        self.retry_at = None;
        while !self.held.is_empty() || !self.pending.is_empty() {
            if self.in_flight.load(Relaxed) >= self.capacity {
                self.retry_at = Some(Instant::now() + RETRY_EVERY);
                return;
            }
            let take = self.held.len().min(MAX_BATCH);
            let mut batch: Vec<Item<C>> = self.held.drain(..take).collect();
            if self.held.is_empty() && !self.pending.is_empty() {
                let summary =
                    std::mem::replace(&mut self.pending, LossSummary::new("mailbox_full"));
                batch.push(Item::Lost(summary));
            }
            let calls = batch.iter().filter(|i| matches!(i, Item::Call(_))).count();
            match self.to.try_send(Batch(
                batch,
                Ticket::new(&self.in_flight, calls, &self.stats),
            )) {
                Ok(()) => self.remove_held(calls),
                Err(SendError::Full(Batch(batch, _)) | SendError::Closed(Batch(batch, _))) => {
                    // Back to the front, in order: only this batch moves.
                    for item in batch.into_iter().rev() {
                        self.held.push_front(item);
                    }
                    self.retry_at = Some(Instant::now() + RETRY_EVERY);
                    return;
                }
            }
        }
    }

    fn add_held(&mut self, calls: usize) {
        self.held_calls += calls;
        self.stats.held_in_links.fetch_add(calls, Relaxed);
    }

    fn remove_held(&mut self, calls: usize) {
        self.held_calls -= calls;
        self.stats.held_in_links.fetch_sub(calls, Relaxed);
    }

    /// Whether anything waits to be handed on (the owner then retries soon).
    /// Calls held, not yet handed on.
    pub fn held_calls(&self) -> usize {
        self.held_calls
    }

    pub fn is_holding(&self) -> bool {
        !self.held.is_empty() || !self.pending.is_empty()
    }

    /// At shutdown: deliver what is held even if that means waiting, then
    /// drain the next stage. Returns a future that owns what it needs.
    pub fn drain(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let (to, drain) = (self.to.clone(), self.drain.clone());
        let mut batch: Vec<Item<C>> = self.held.drain(..).collect();
        self.remove_held(self.held_calls);
        self.retry_at = None;
        if !self.pending.is_empty() {
            let summary = std::mem::replace(&mut self.pending, LossSummary::new("mailbox_full"));
            batch.push(Item::Lost(summary));
        }
        async move {
            if !batch.is_empty() {
                let _ = to.send(Batch(batch, Ticket::default())).await;
            }
            let _ = drain.send(Drain).await;
        }
    }
}

/// A stage that hands batches on through links. What a link holds is
/// retried every `RETRY_EVERY`, and only while it holds something: no timer
/// runs for an empty link, so an idle collector sleeps (a wake-up every few
/// milliseconds per stage cost it 2 % of a core, docs/PERFORMANCE-odoo.md).
pub trait HandsOn: Actor<Context = Context<Self>> {
    /// Retries what the stage's links hold.
    fn flush_links(&mut self);
    /// Whether any of its links holds something.
    fn links_holding(&self) -> bool;
    /// The stage's flag: a retry is scheduled.
    fn retry_scheduled(&mut self) -> &mut bool;

    /// Schedules a retry if a link holds something and none is scheduled;
    /// each retry schedules the next while something is still held. Called
    /// after every send.
    fn retry_while_holding(&mut self, ctx: &mut Context<Self>) {
        if *self.retry_scheduled() || !self.links_holding() {
            return;
        }
        *self.retry_scheduled() = true;
        ctx.run_later(RETRY_EVERY, |act, ctx| {
            *act.retry_scheduled() = false;
            act.flush_links();
            act.retry_while_holding(ctx);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stage::{RawCall, Sender};
    use actix::Context;
    use egress_proto::{Call, ConfigChange};
    use std::sync::Mutex;

    /// A next stage that keeps what it is given, tickets and all, so that
    /// its batches count as in flight until the test lets them go.
    struct Keeper {
        batches: Arc<Mutex<Vec<Batch<RawCall>>>>,
        drained: Arc<AtomicUsize>,
    }

    impl Actor for Keeper {
        type Context = Context<Self>;
    }

    impl Handler<Batch<RawCall>> for Keeper {
        type Result = ();

        fn handle(&mut self, batch: Batch<RawCall>, _: &mut Context<Self>) {
            self.batches.lock().unwrap().push(batch);
        }
    }

    impl Handler<Drain> for Keeper {
        type Result = ();

        fn handle(&mut self, _: Drain, _: &mut Context<Self>) {
            self.drained.fetch_add(1, Relaxed);
        }
    }

    struct Fixture {
        link: Link<RawCall>,
        batches: Arc<Mutex<Vec<Batch<RawCall>>>>,
        drained: Arc<AtomicUsize>,
        stats: Arc<Stats>,
    }

    fn fixture(mailbox: usize, capacity: usize, max_held: usize) -> Fixture {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let drained = Arc::new(AtomicUsize::new(0));
        let keeper = Keeper {
            batches: batches.clone(),
            drained: drained.clone(),
        };
        let keeper = Keeper::create(move |ctx: &mut Context<Keeper>| {
            ctx.set_mailbox_capacity(mailbox);
            keeper
        });
        let stats = Arc::new(Stats::default());
        let link = Link::to(keeper, "ingest", stats.clone())
            .with_capacity(capacity)
            .with_max_held(max_held);
        Fixture {
            link,
            batches,
            drained,
            stats,
        }
    }

    fn call(seq: u64) -> Item<RawCall> {
        Item::Call(RawCall {
            call: Call {
                database: "db".into(),
                worker_id: 7,
                seq,
                ..Call::default()
            },
            sender: Sender { pid: 1, uid: 0 },
        })
    }

    /// What the next stage received, batch by batch: a call by its seq, a
    /// loss as `lost:<calls>:<first>-<last>`, anything else by its kind.
    fn received(batches: &Mutex<Vec<Batch<RawCall>>>) -> Vec<Vec<String>> {
        let batches = batches.lock().unwrap();
        let show = |item: &Item<RawCall>| match item {
            Item::Call(c) => c.call.seq.to_string(),
            Item::Lost(loss) => {
                let w = &loss.workers[&("db".to_string(), 7)];
                let (lo, hi) = w.seq_range.unwrap();
                format!("lost:{}:{lo}-{hi}", w.calls)
            }
            Item::ConfigChange(..) => "config".into(),
            _ => "other".into(),
        };
        batches
            .iter()
            .map(|b| b.0.iter().map(show).collect())
            .collect()
    }

    fn dropped(stats: &Stats) -> u64 {
        stats.snapshot()["ingest"]["dropped"]["mailbox_full"]
            .as_u64()
            .unwrap_or(0)
    }

    #[actix::test]
    async fn nothing_is_lost_while_the_next_stage_keeps_up() {
        // Each send fits the bound, and the next stage takes each at once.
        let mut f = fixture(64, 64, 10);
        for first in (1..=25).step_by(5) {
            f.link.send((first..first + 5).map(call).collect());
            assert!(!f.link.is_holding());
        }
        f.link.drain().await;
        let all: Vec<String> = received(&f.batches).concat();
        let expected: Vec<String> = (1..=25).map(|s| s.to_string()).collect();
        assert_eq!(all, expected);
        assert_eq!(dropped(&f.stats), 0);
        assert_eq!(f.drained.load(Relaxed), 1);
    }

    #[actix::test]
    async fn calls_beyond_the_bound_become_one_counted_loss_in_order() {
        // The next stage takes one batch and keeps it: the rest is held,
        // up to three calls; the calls after those are dropped.
        let mut f = fixture(64, 1, 3);
        f.link.send(vec![call(1)]);
        f.link.send((2..=7).map(call).collect());
        assert_eq!(f.link.held_calls(), 3);
        assert_eq!(f.stats.held_in_links.load(Relaxed), 3);
        assert_eq!(dropped(&f.stats), 3);
        // What comes next rides behind the loss, which rides behind what
        // was held before it: the appender sees them in the order sent.
        let change = ConfigChange {
            database: "db".into(),
            worker_id: 7,
            ..ConfigChange::default()
        };
        f.link
            .send(vec![Item::ConfigChange(Sender { pid: 1, uid: 0 }, change)]);
        f.link.drain().await;
        assert_eq!(
            received(&f.batches),
            [vec!["1"], vec!["2", "3", "4", "lost:3:5-7", "config"]]
        );
        assert_eq!(f.link.held_calls(), 0);
        assert_eq!(f.stats.held_in_links.load(Relaxed), 0);
    }

    #[actix::test]
    async fn a_loss_with_nothing_after_it_is_still_handed_on() {
        let mut f = fixture(64, 1, 1);
        f.link.send(vec![call(1)]);
        f.link.send((2..=4).map(call).collect());
        assert_eq!(dropped(&f.stats), 2);
        f.link.drain().await;
        assert_eq!(received(&f.batches), [vec!["1"], vec!["2", "lost:2:3-4"]]);
    }

    #[actix::test]
    async fn a_batch_the_mailbox_refuses_is_kept_in_order() {
        // A mailbox of one message that the stage has not read yet: the
        // second batch is refused whole and held, nothing is dropped.
        let mut f = fixture(1, 64, 100);
        f.link.send(vec![call(1)]);
        f.link.send(vec![call(2), call(3)]);
        f.link.send(vec![call(4)]);
        assert!(f.link.is_holding());
        assert_eq!(f.link.held_calls(), 3);
        f.link.drain().await;
        assert_eq!(received(&f.batches), [vec!["1"], vec!["2", "3", "4"]]);
        assert_eq!(dropped(&f.stats), 0);
    }
}
