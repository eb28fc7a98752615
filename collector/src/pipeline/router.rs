//! Router actor: splits batches by Odoo database and hands each part to that
//! database's chain appender, starting appenders on first use. A worker's
//! latest `Hello` goes, in order, ahead of its first event in each database
//! (and to the databases it names), so each appender knows who its workers are.
//!
//! Database names come from senders, so slots are guarded: a name whose
//! database has not answered yet may take at most half of
//! `database.max_databases`, and an appender that finds its database does
//! not exist gives its slot back (`DatabaseState::Missing`); that name's
//! events are then dropped for `RETRY_MISSING`, counted per name in `status`
//! (`router.unknown_databases`) and logged at most every `WARN_EVERY`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Recipient, ResponseFuture};
use egress_proto::{Drops, Hello};
use tracing::warn;

use crate::pipeline::link::{HandsOn, Link};
use crate::pipeline::peers::PeerTable;
use crate::pipeline::stage::{Batch, DatabaseState, Drain, Item, RedactedEntry, Sender};
use crate::pipeline::streams::announcing_workers;
use crate::stats::Stats;

/// How long a database found missing is not tried again.
const RETRY_MISSING: Duration = Duration::from_secs(60);
/// Most names remembered as missing (the oldest is forgotten first).
const MAX_MISSING: usize = 1024;
/// Log unknown databases' losses at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Starts the appender of one database, which reports its database's state
/// to the recipient; returns where the appender takes batches and drains.
pub type SpawnAppender = Box<
    dyn FnMut(
        &str,
        Recipient<DatabaseState>,
    ) -> (Recipient<Batch<RedactedEntry>>, Recipient<Drain>),
>;

pub struct Router {
    appenders: HashMap<String, Link<RedactedEntry>>,
    /// Databases that answered (a batch committed).
    confirmed: HashSet<String>,
    /// Databases found missing, and when.
    missing: HashMap<String, Instant>,
    /// Calls dropped for missing databases since the last warning.
    unwarned: u64,
    warned_at: Option<Instant>,
    hellos: Hellos,
    spawn: SpawnAppender,
    max_databases: usize,
    mailbox: usize,
    stats: Arc<Stats>,
    /// A retry of what the links hold is scheduled (`HandsOn`).
    retry_scheduled: bool,
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
            confirmed: HashSet::new(),
            missing: HashMap::new(),
            unwarned: 0,
            warned_at: None,
            hellos: Hellos::default(),
            spawn,
            max_databases,
            mailbox,
            stats,
            retry_scheduled: false,
        }
    }

    fn link(
        &mut self,
        database: &str,
        ctx: &mut Context<Self>,
    ) -> Option<&mut Link<RedactedEntry>> {
        if !self.appenders.contains_key(database) {
            if self.appenders.len() >= self.max_databases {
                return None;
            }
            // Names not yet answered for may hold half the slots at most,
            // so a flood of made-up names never locks a real one out.
            let unconfirmed = self
                .appenders
                .keys()
                .filter(|d| !self.confirmed.contains(*d))
                .count();
            if !self.confirmed.contains(database) && unconfirmed >= (self.max_databases / 2).max(1)
            {
                return None;
            }
            let (batches, drain) = (self.spawn)(database, ctx.address().recipient());
            let link =
                Link::new(batches, drain, "router", self.stats.clone()).with_capacity(self.mailbox);
            self.appenders.insert(database.to_owned(), link);
        }
        self.appenders.get_mut(database)
    }
}

impl Actor for Router {
    type Context = Context<Self>;
}

impl HandsOn for Router {
    fn flush_links(&mut self) {
        for link in self.appenders.values_mut() {
            link.flush();
        }
    }

    fn links_holding(&self) -> bool {
        self.appenders.values().any(Link::is_holding)
    }

    fn retry_scheduled(&mut self) -> &mut bool {
        &mut self.retry_scheduled
    }
}

impl Router {
    /// Counts calls lost to a database that does not exist, per name, and
    /// logs them at most every `WARN_EVERY`.
    fn lost_to_missing(&mut self, database: &str, calls: u64, now: Instant) {
        self.stats.count_unknown_database(database, calls);
        self.unwarned = self.unwarned.saturating_add(calls);
        if self.unwarned > 0
            && self
                .warned_at
                .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY)
        {
            self.warned_at = Some(now);
            warn!(db = %database, calls = self.unwarned, names = self.missing.len(),
                "Events name databases that do not exist; they cannot be journaled and are counted per name in `status` (router.unknown_databases). Check the senders' database names.");
            self.unwarned = 0;
        }
    }
}

impl Handler<DatabaseState> for Router {
    type Result = ();

    fn handle(&mut self, state: DatabaseState, _: &mut Context<Self>) {
        match state {
            DatabaseState::Exists(database) => {
                self.missing.remove(&database);
                self.confirmed.insert(database);
            }
            DatabaseState::Missing { database, lost } => {
                let now = Instant::now();
                let held = self
                    .appenders
                    .remove(&database)
                    .map_or(0, |link| link.held_calls() as u64);
                self.confirmed.remove(&database);
                self.stats.remove_database(&database);
                if self.missing.len() >= MAX_MISSING {
                    if let Some(oldest) = self
                        .missing
                        .iter()
                        .min_by_key(|(_, at)| **at)
                        .map(|(name, _)| name.clone())
                    {
                        self.missing.remove(&oldest);
                    }
                }
                self.missing.insert(database.clone(), now);
                self.lost_to_missing(&database, lost.saturating_add(held), now);
            }
        }
    }
}

/// Start these databases' appenders now (their spools hold events).
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct OpenDatabases(pub Vec<String>);

impl Handler<OpenDatabases> for Router {
    type Result = ();

    fn handle(&mut self, OpenDatabases(names): OpenDatabases, ctx: &mut Context<Self>) {
        for database in names {
            if self.link(&database, ctx).is_none() {
                warn!(db = %database, max_databases = self.max_databases,
                    "A spool waits for this database but database.max_databases are in use; it is replayed once one is free.");
            }
        }
    }
}

impl Handler<Batch<RedactedEntry>> for Router {
    type Result = ();

    fn handle(&mut self, Batch(items, _ticket): Batch<RedactedEntry>, ctx: &mut Context<Self>) {
        let mut parts: BTreeMap<String, Vec<Item<RedactedEntry>>> = BTreeMap::new();
        for item in items {
            match item {
                Item::Call(entry) => {
                    let hello = self.hellos.before_event(entry.worker_id, &entry.database);
                    let part = parts.entry(entry.database.clone()).or_default();
                    part.extend(hello);
                    part.push(Item::Call(entry));
                }
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
                Item::Hello(sender, hello) => {
                    let appenders = &self.appenders;
                    let served = |database: &str| appenders.contains_key(database);
                    for (database, item) in self.hellos.heard(sender, hello, served, Instant::now())
                    {
                        parts.entry(database).or_default().push(item);
                    }
                }
            }
        }
        let now = Instant::now();
        for (database, part) in parts {
            if self
                .missing
                .get(&database)
                .is_some_and(|at| now.saturating_duration_since(*at) < RETRY_MISSING)
            {
                let calls = part.iter().filter(|i| matches!(i, Item::Call(_))).count() as u64;
                self.lost_to_missing(&database, calls, now);
                continue;
            }
            match self.link(&database, ctx) {
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
        self.retry_while_holding(ctx);
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

/// Each worker's latest `Hello`, and the databases that have had it
/// (bounded per uid, forgotten when silent: `peers`).
#[derive(Default)]
struct Hellos {
    workers: PeerTable<KnownWorker>,
}

/// Most databases remembered as having had a worker's `Hello` (names come
/// from the worker; beyond it, they get it again).
const MAX_DELIVERED: usize = 64;

/// A worker's latest `Hello`, and the databases it was handed to.
struct KnownWorker {
    sender: Sender,
    hello: Hello,
    delivered: HashSet<String>,
}

impl Hellos {
    /// Keeps a `Hello` (attribution took its addons paths) and returns it
    /// for each database it names that is `served` already; every other
    /// database gets it ahead of the worker's next event there.
    fn heard(
        &mut self,
        sender: Sender,
        mut hello: Hello,
        served: impl Fn(&str) -> bool,
        now: Instant,
    ) -> Vec<(String, Item<RedactedEntry>)> {
        let mut delivered = HashSet::new();
        let mut out = Vec::new();
        for database in std::mem::take(&mut hello.databases) {
            if served(&database) && !delivered.contains(&database) {
                out.push((database.clone(), Item::Hello(sender, hello.clone())));
                delivered.insert(database);
            }
        }
        self.workers.insert(
            hello.worker_id,
            sender.uid,
            KnownWorker {
                sender,
                hello,
                delivered,
            },
            now,
        );
        out
    }

    /// The worker's latest `Hello`, if `database` has not had it yet.
    fn before_event(&mut self, worker: u64, database: &str) -> Option<Item<RedactedEntry>> {
        let worker = announcing_workers(worker)
            .into_iter()
            .find(|worker| self.workers.get(*worker).is_some())?;
        let known = self.workers.get_mut(worker)?;
        if known.delivered.contains(database) {
            return None;
        }
        if known.delivered.len() >= MAX_DELIVERED {
            known.delivered.clear();
        }
        known.delivered.insert(database.to_owned());
        Some(Item::Hello(known.sender, known.hello.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::peers::FORGET;

    const SENDER: Sender = Sender { pid: 7, uid: 1000 };

    fn hello(worker_id: u64, databases: &[&str]) -> Hello {
        Hello {
            worker_id,
            hook_mode: "python".into(),
            databases: databases.iter().map(|d| d.to_string()).collect(),
            ..Hello::default()
        }
    }

    fn is_hello(item: Option<Item<RedactedEntry>>) -> bool {
        matches!(item, Some(Item::Hello(_, h)) if h.hook_mode == "python")
    }

    #[test]
    fn a_hello_goes_to_the_served_databases_it_names_and_before_a_first_event_elsewhere() {
        let mut hellos = Hellos::default();
        let now = Instant::now();
        let sent = hellos.heard(SENDER, hello(1, &["a", "b", "a"]), |d| d == "a", now);
        let to: Vec<&str> = sent.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(to, ["a"]);
        assert!(hellos.before_event(1, "a").is_none());
        assert!(is_hello(hellos.before_event(1, "b")));
        assert!(hellos.before_event(1, "b").is_none());
        assert!(hellos.before_event(2, "b").is_none(), "never said Hello");
        // The next Hello (a minute on) goes again, once per database.
        hellos.heard(SENDER, hello(1, &[]), |_| true, now);
        assert!(is_hello(hellos.before_event(1, "a")));
        assert!(hellos.before_event(1, "a").is_none());
    }

    #[test]
    fn a_workers_stream_for_no_database_brings_its_hello_too() {
        let mut hellos = Hellos::default();
        hellos.heard(SENDER, hello(1, &[]), |_| false, Instant::now());
        let unnamed = crate::pipeline::streams::unnamed_database_stream(1);
        assert!(is_hello(hellos.before_event(unnamed, "a")));
        assert!(hellos.before_event(1, "a").is_none(), "once per database");
    }

    #[test]
    fn a_silent_worker_is_forgotten() {
        let mut hellos = Hellos::default();
        let now = Instant::now();
        hellos.heard(SENDER, hello(1, &[]), |_| false, now);
        hellos.heard(SENDER, hello(2, &[]), |_| false, now + FORGET);
        assert!(hellos.before_event(1, "a").is_none());
        assert!(is_hello(hellos.before_event(2, "a")));
    }
}
