//! A bounded hand-off between two stages. The sender never waits: what the
//! next stage's mailbox cannot take now is held here, in order, and retried
//! with the next send or `flush`. Only beyond `max_held` items are events
//! dropped, summarised as a loss that rides, in order, ahead of what comes
//! after it, so the appender turns it into a gap entry with the exact count
//! (DESIGN §1.3).

use std::collections::VecDeque;
use std::sync::Arc;

use actix::dev::ToEnvelope;
use actix::prelude::SendError;
use actix::{Actor, Addr, Handler};

use crate::stage::{Batch, Drain, Item, LossSummary, Traceable};
use crate::stats::Stats;

/// Items a link holds while the next stage is busy, by default.
pub const DEFAULT_MAX_HELD: usize = 20_000;
/// How often owners retry what their link holds.
pub const RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(2);

pub struct Link<C: 'static, A: Actor> {
    to: Addr<A>,
    held: VecDeque<Item<C>>,
    /// Calls among `held` (markers and reports do not count).
    held_calls: usize,
    max_held: usize,
    /// Losses since the held queue was last below its bound.
    pending: LossSummary,
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
            name,
            stats,
        }
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
            self.held_calls += usize::from(is_call);
            self.held.push_back(item);
        }
        self.flush();
    }

    /// Tries to hand on everything held; keeps it if the mailbox is full.
    pub fn flush(&mut self) {
        if self.held.is_empty() && self.pending.is_empty() {
            return;
        }
        let mut batch: Vec<Item<C>> = self.held.drain(..).collect();
        if !self.pending.is_empty() {
            let summary = std::mem::replace(&mut self.pending, LossSummary::new("mailbox_full"));
            batch.push(Item::Lost(summary));
        }
        match self.to.try_send(Batch(batch)) {
            Ok(()) => self.held_calls = 0,
            Err(SendError::Full(Batch(batch)) | SendError::Closed(Batch(batch))) => {
                self.held = batch.into();
            }
        }
    }

    /// Whether anything waits to be handed on (the owner then retries soon).
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty() || !self.pending.is_empty()
    }

    /// At shutdown: deliver what is held even if that means waiting, then
    /// drain the next stage. Returns a future that owns what it needs.
    pub fn drain(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let to = self.to.clone();
        let mut batch: Vec<Item<C>> = self.held.drain(..).collect();
        self.held_calls = 0;
        if !self.pending.is_empty() {
            let summary = std::mem::replace(&mut self.pending, LossSummary::new("mailbox_full"));
            batch.push(Item::Lost(summary));
        }
        async move {
            if !batch.is_empty() {
                let _ = to.send(Batch(batch)).await;
            }
            let _ = to.send(Drain).await;
        }
    }
}
