//! A bounded hand-off between two stages. The sender never waits: what the
//! next stage's mailbox cannot take now is held here, in order, and retried
//! with the next send or `flush`. Only beyond `max_held` items are events
//! dropped, summarised as a loss that rides, in order, ahead of what comes
//! after it, so the appender turns it into a gap entry with the exact count
//! (DESIGN §1.3).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::ToEnvelope;
use actix::prelude::SendError;
use actix::{Actor, Addr, Handler};

use crate::pipeline::stage::{Batch, Drain, Item, LossSummary, Ticket, Traceable};
use crate::stats::Stats;

/// Items a link holds while the next stage is busy, by default.
pub const DEFAULT_MAX_HELD: usize = 20_000;
/// How often owners retry what their link holds.
pub const RETRY_EVERY: Duration = Duration::from_millis(2);
/// Batches a next stage's mailbox takes, unless told otherwise (the
/// collector's `ingest.mailbox_batches` default).
const DEFAULT_CAPACITY: usize = 64;
/// Most items handed on in one message: bounds what a refused try moves.
const MAX_BATCH: usize = 4096;

pub struct Link<C: 'static, A: Actor> {
    to: Addr<A>,
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

impl<C, A> Link<C, A>
where
    C: Traceable + Send + 'static,
    A: Actor + Handler<Batch<C>> + Handler<Drain>,
    A::Context: ToEnvelope<A, Batch<C>> + ToEnvelope<A, Drain>,
{
    pub fn new(to: Addr<A>, name: &'static str, stats: Arc<Stats>) -> Self {
        Link {
            to,
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
        let to = self.to.clone();
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
            let _ = to.send(Drain).await;
        }
    }
}
