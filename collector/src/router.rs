//! Router actor: splits batches by Odoo database and hands each part to that
//! database's chain appender, starting appenders on first use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext, Context, Handler, ResponseFuture};
use egress_proto::Drops;
use tracing::warn;

use crate::appender::ChainAppender;
use crate::link::Link;
use crate::stage::{Batch, Drain, Item, RedactedEntry};
use crate::stats::Stats;

/// Starts the appender of one database.
pub type SpawnAppender = Box<dyn FnMut(&str) -> Addr<ChainAppender>>;

pub struct Router {
    appenders: HashMap<String, Link<RedactedEntry, ChainAppender>>,
    spawn: SpawnAppender,
    max_databases: usize,
    mailbox: usize,
    stats: Arc<Stats>,
}

impl Router {
    /// `mailbox`: how many batches each appender's mailbox takes.
    pub fn new(
        spawn: SpawnAppender,
        max_databases: usize,
        mailbox: usize,
        stats: Arc<Stats>,
    ) -> Self {
        Router {
            appenders: HashMap::new(),
            spawn,
            max_databases,
            mailbox,
            stats,
        }
    }

    fn link(&mut self, database: &str) -> Option<&mut Link<RedactedEntry, ChainAppender>> {
        if !self.appenders.contains_key(database) {
            if self.appenders.len() >= self.max_databases {
                return None;
            }
            let addr = (self.spawn)(database);
            let link = Link::new(addr, "router", self.stats.clone()).with_capacity(self.mailbox);
            self.appenders.insert(database.to_owned(), link);
        }
        self.appenders.get_mut(database)
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Hand on what appenders could not take yet.
        ctx.run_interval(crate::link::RETRY_EVERY, |act, _| {
            for link in act.appenders.values_mut() {
                link.flush();
            }
        });
    }
}

impl Handler<Batch<RedactedEntry>> for Router {
    type Result = ();

    fn handle(&mut self, Batch(items, _ticket): Batch<RedactedEntry>, _: &mut Context<Self>) {
        let mut parts: BTreeMap<String, Vec<Item<RedactedEntry>>> = BTreeMap::new();
        for item in items {
            match item {
                Item::Call(entry) => parts
                    .entry(entry.database.clone())
                    .or_default()
                    .push(Item::Call(entry)),
                Item::ConfigChange(sender, change) => parts
                    .entry(change.database.clone())
                    .or_default()
                    .push(Item::ConfigChange(sender, change)),
                Item::Drops(sender, drops) => {
                    for (database, part) in split_drops(drops) {
                        parts
                            .entry(database)
                            .or_default()
                            .push(Item::Drops(sender, part));
                    }
                }
                Item::Lost(summary) => {
                    for (database, part) in summary.split_by_database() {
                        parts.entry(database).or_default().push(Item::Lost(part));
                    }
                }
                Item::Hello(..) => {}
            }
        }
        for (database, part) in parts {
            match self.link(&database) {
                Some(link) => link.send(part),
                None => {
                    let calls = part.iter().filter(|i| matches!(i, Item::Call(_))).count() as u64;
                    self.stats
                        .count_dropped("router", "too_many_databases", calls);
                    warn!(db = %database, max = self.max_databases,
                        "Events for one database more than the configured maximum were dropped; raise database.max_databases.");
                }
            }
        }
    }
}

impl Handler<Drain> for Router {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        let drains: Vec<_> = self
            .appenders
            .values_mut()
            .map(|link| link.drain())
            .collect();
        Box::pin(async move {
            futures_util::future::join_all(drains).await;
        })
    }
}

/// One `Drops` message per database it mentions.
fn split_drops(drops: Drops) -> BTreeMap<String, Drops> {
    fn part<'a>(
        out: &'a mut BTreeMap<String, Drops>,
        database: &str,
        worker_id: u64,
    ) -> &'a mut Drops {
        out.entry(database.to_owned()).or_insert_with(|| Drops {
            worker_id,
            ..Drops::default()
        })
    }
    let mut out = BTreeMap::new();
    for count in drops.counts {
        part(&mut out, &count.database.clone(), drops.worker_id)
            .counts
            .push(count);
    }
    for cursor in drops.cursors {
        part(&mut out, &cursor.database.clone(), drops.worker_id)
            .cursors
            .push(cursor);
    }
    out
}
