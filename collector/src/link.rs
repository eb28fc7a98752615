//! A bounded hand-off between two stages. A full mailbox never blocks the
//! sender: the batch is summarised as a loss and that summary rides, in
//! order, at the head of the next batch that gets through, so the appender
//! turns it into a gap entry with the exact count (DESIGN §1.3).

use std::sync::Arc;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler};

use crate::stage::{Batch, Drain, Item, LossSummary, Traceable};
use crate::stats::Stats;

pub struct Link<C: 'static, A: Actor> {
    to: Addr<A>,
    pending: LossSummary,
    /// Counter name in `status`, e.g. "attribution".
    name: &'static str,
    stats: Arc<Stats>,
    _stage: std::marker::PhantomData<C>,
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
            pending: LossSummary::new("mailbox_full"),
            name,
            stats,
            _stage: std::marker::PhantomData,
        }
    }

    /// Hands a batch on, or accounts for it as lost if the next stage is full.
    pub fn send(&mut self, mut items: Vec<Item<C>>) {
        if !self.pending.is_empty() {
            let summary = std::mem::replace(&mut self.pending, LossSummary::new("mailbox_full"));
            items.insert(0, Item::Lost(summary));
        }
        if items.is_empty() {
            return;
        }
        if let Err(err) = self.to.try_send(Batch(items)) {
            let Batch(items) = match err {
                actix::prelude::SendError::Full(batch) => batch,
                actix::prelude::SendError::Closed(batch) => batch,
            };
            let calls = items.iter().filter(|i| matches!(i, Item::Call(_))).count() as u64;
            self.stats.count_dropped(self.name, "mailbox_full", calls);
            self.pending.absorb(items);
        }
    }

    /// At shutdown: deliver what is pending even if that means waiting, then
    /// drain the next stage. Returns a future that owns what it needs.
    pub fn drain(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let to = self.to.clone();
        let pending = std::mem::replace(&mut self.pending, LossSummary::new("mailbox_full"));
        async move {
            if !pending.is_empty() {
                let _ = to.send(Batch(vec![Item::<C>::Lost(pending)])).await;
            }
            let _ = to.send(Drain).await;
        }
    }
}
