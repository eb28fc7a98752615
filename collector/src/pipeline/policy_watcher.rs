//! Policy watcher actor: loads each database's audit settings and components
//! catalogue when the database is first seen, re-reads them when the
//! database notifies a change (`policy_listener`) and, as a safety net,
//! every `interval`; applies changes and journals every change it detects
//! — unless Odoo already reported that same change with its user.
//!
//! Re-reads are coalesced per database: one in flight at a time, and at
//! least `MIN_SPACING` between the starts of two, so whoever floods the
//! notification channel (anybody may) costs a few re-reads, no more.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, WrapFuture,
};
use egress_proto::ConfigChange;
use tracing::{debug, info, warn};

use crate::db::databases::Databases;
use crate::db::store;
use crate::error::{Error, Result};
use crate::pipeline::catalogue::{Catalogue, Component};
use crate::pipeline::policy::{Policy, PolicyMap, Settings};
use crate::pipeline::policy_listener::{PolicyChanged, PolicyListener, RereadRequest};
use crate::pipeline::stage::{Batch, Item, RawCall, Sender, Ticket};
use crate::stats::Stats;

/// How long the first load of a database may take before its events go on
/// under the fail-closed policy.
const FIRST_LOAD_TIMEOUT: Duration = Duration::from_secs(3);
/// A change Odoo reported is not journaled again if detected within this.
const REPORTED_WINDOW: Duration = Duration::from_secs(30);
/// Least time between the starts of two reads of one database.
const MIN_SPACING: Duration = Duration::from_millis(100);
/// A read that failed, or whose change could not be journaled yet, is
/// tried again this soon, not at the next safety poll: until then the
/// database is under the fail-closed policy or an older one.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Names the server said are no database, remembered at most (the oldest
/// is forgotten: its policy and pool too, so a call naming it again asks
/// anew). Names come from the senders; real databases are never forgotten.
const MISSING_REMEMBERED: usize = 1024;

/// Start watching a database (sent by attribution on first sight).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchDatabase(pub String);

/// A database's policy is in the map (sent to attribution).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PolicyReady(pub String);

/// (database, key) → (new value, when Odoo reported it).
type Reports = HashMap<(String, String), (Option<String>, Instant)>;

/// Changes Odoo reported itself, so the watcher does not journal them twice.
#[derive(Clone, Default)]
pub struct ReportedChanges(Arc<Mutex<Reports>>);

/// What one read of a database returns: its settings parameters (`None`
/// without Odoo's table) and its catalogue.
type Read = (Option<BTreeMap<String, String>>, Vec<Component>);

impl ReportedChanges {
    pub fn record(&self, change: &ConfigChange) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, at)| at.elapsed() < REPORTED_WINDOW);
        map.insert(
            (change.database.clone(), change.key.clone()),
            (change.new_value.clone(), Instant::now()),
        );
    }

    fn was_reported(&self, database: &str, key: &str, new: &Option<String>) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(database.to_owned(), key.to_owned()))
            .is_some_and(|(value, at)| value == new && at.elapsed() < REPORTED_WINDOW)
    }
}

/// When one database is read again: one read in flight at a time, and
/// `MIN_SPACING` at least between the starts of two.
#[derive(Default)]
struct Pacing {
    loading: bool,
    /// A read was asked for while one was in flight: that one may have
    /// started before the change was committed, so another follows.
    read_again: bool,
    /// A read is scheduled (waiting out `MIN_SPACING`, or a retry).
    scheduled: bool,
    read_started: Option<Instant>,
}

/// What to do about a read asked for.
#[derive(Debug, PartialEq)]
enum Next {
    Read,
    ReadIn(Duration),
    /// One in flight or scheduled covers it.
    Nothing,
}

impl Pacing {
    fn ask(&mut self, now: Instant) -> Next {
        if self.loading {
            self.read_again = true;
            return Next::Nothing;
        }
        if self.scheduled {
            return Next::Nothing;
        }
        let wait = self.read_started.map_or(Duration::ZERO, |at| {
            MIN_SPACING.saturating_sub(now.saturating_duration_since(at))
        });
        if wait.is_zero() {
            Next::Read
        } else {
            self.scheduled = true;
            Next::ReadIn(wait)
        }
    }

    /// A retry in `wait` (unless a read is already scheduled).
    fn retry(&mut self, wait: Duration) -> Next {
        if self.scheduled {
            return Next::Nothing;
        }
        self.scheduled = true;
        Next::ReadIn(wait)
    }

    /// A read starts, unless one is in flight.
    fn start(&mut self, now: Instant) -> bool {
        if self.loading {
            return false;
        }
        self.loading = true;
        self.read_started = Some(now);
        true
    }

    /// The read ended; true when another was asked for meanwhile.
    fn finish(&mut self) -> bool {
        self.loading = false;
        std::mem::take(&mut self.read_again)
    }
}

/// What was last read from one database.
#[derive(Default)]
struct Seen {
    parameters: Option<BTreeMap<String, String>>,
    components: Option<Vec<Component>>,
    pacing: Pacing,
    /// The database's change notifications are listened to (from the
    /// first successful read on: a name that is no database gets none).
    request: Option<RereadRequest>,
    last_warned: Option<Instant>,
    /// The server said there is no such database: not read again, on a
    /// timer or by the safety net. Names come from the senders, so a flood
    /// of made-up ones would otherwise cost PostgreSQL a connection attempt
    /// per name every `RETRY_AFTER`, for good. (The router probes such a
    /// name again when a call names it; its policy here stays the
    /// fail-closed one.)
    missing: bool,
}

pub struct PolicyWatcher {
    databases: Arc<Databases>,
    policies: PolicyMap,
    reported: ReportedChanges,
    ready: Recipient<PolicyReady>,
    journal: Recipient<Batch<RawCall>>,
    interval: Duration,
    stats: Arc<Stats>,
    seen: HashMap<String, Seen>,
    /// The names marked missing, oldest first (`MISSING_REMEMBERED`).
    missing: VecDeque<String>,
}

impl PolicyWatcher {
    pub fn new(
        databases: Arc<Databases>,
        policies: PolicyMap,
        reported: ReportedChanges,
        ready: Recipient<PolicyReady>,
        journal: Recipient<Batch<RawCall>>,
        interval: Duration,
        stats: Arc<Stats>,
    ) -> Self {
        PolicyWatcher {
            databases,
            policies,
            reported,
            ready,
            journal,
            interval,
            stats,
            seen: HashMap::new(),
            missing: VecDeque::new(),
        }
    }

    /// Remembers `database` as missing, forgetting the oldest such name
    /// beyond `MISSING_REMEMBERED`.
    fn remember_missing(&mut self, database: &str) {
        self.missing.push_back(database.to_owned());
        while self.missing.len() > MISSING_REMEMBERED {
            let Some(oldest) = self.missing.pop_front() else {
                break;
            };
            if self.seen.get(&oldest).is_some_and(|seen| seen.missing) {
                self.seen.remove(&oldest);
                self.policies.remove(&oldest);
                self.databases.forget(&oldest);
            }
        }
        let remembered = self.seen.values().filter(|seen| seen.missing).count();
        self.stats
            .policy_missing_names
            .store(remembered as u64, Ordering::Relaxed);
    }

    fn load(&mut self, database: String, ctx: &mut Context<Self>) {
        let seen = self.seen.entry(database.clone()).or_default();
        if !seen.pacing.start(Instant::now()) {
            return;
        }
        self.stats.policy_reloads.fetch_add(1, Ordering::Relaxed);
        let first = seen.parameters.is_none() && seen.components.is_none();
        let pool = self.databases.pool(&database);
        let name = database.clone();
        let read = async move {
            let client = crate::db::databases::connect(pool, &name).await?;
            let parameters = store::read_settings(&client).await?;
            let components = store::read_components(&client).await?;
            Ok::<_, Error>((parameters, components))
        };
        let timed = async move {
            match tokio::time::timeout(FIRST_LOAD_TIMEOUT, read).await {
                Ok(result) => result,
                Err(_) => Err(Error::Control("timed out reading settings".into())),
            }
        };
        ctx.spawn(timed.into_actor(self).map(move |result, act, ctx| {
            let retry = act.loaded(&database, first, result);
            act.after_read(&database, retry, ctx);
        }));
    }

    /// Reads `database` again as soon as the coalescing rules allow.
    fn read_soon(&mut self, database: &str, ctx: &mut Context<Self>) {
        if let Some(seen) = self.seen.get_mut(database) {
            let next = seen.pacing.ask(Instant::now());
            self.follow(database, next, ctx);
        }
    }

    fn follow(&mut self, database: &str, next: Next, ctx: &mut Context<Self>) {
        match next {
            Next::Read => self.load(database.to_owned(), ctx),
            Next::ReadIn(wait) => {
                let database = database.to_owned();
                ctx.run_later(wait, move |act, ctx| {
                    if let Some(seen) = act.seen.get_mut(&database) {
                        seen.pacing.scheduled = false;
                    }
                    act.load(database, ctx);
                });
            }
            Next::Nothing => {}
        }
    }

    /// After a read: listen to the database once it answered, and read
    /// again if a change was notified meanwhile or the read must be retried.
    fn after_read(&mut self, database: &str, retry: bool, ctx: &mut Context<Self>) {
        let Some(seen) = self.seen.get_mut(database) else {
            return;
        };
        let next = if seen.pacing.finish() {
            seen.pacing.ask(Instant::now())
        } else if retry {
            seen.pacing.retry(RETRY_AFTER)
        } else {
            Next::Nothing
        };
        if seen.request.is_none() && seen.parameters.is_some() {
            let request = RereadRequest::new(database.to_owned(), ctx.address().recipient());
            seen.request = Some(request.clone());
            let listener = PolicyListener::new(self.databases.clone(), request, self.stats.clone());
            ctx.spawn(listener.run().into_actor(self));
        }
        self.follow(database, next, ctx);
    }

    /// Applies and journals what a read found; true when it must be tried
    /// again (the read failed, or the pipeline could not take the change).
    fn loaded(&mut self, database: &str, first: bool, result: Result<Read>) -> bool {
        let seen = self.seen.entry(database.to_owned()).or_default();
        let (parameters, components) = match result {
            Ok(read) => read,
            Err(error) => {
                let was_missing = seen.missing;
                seen.missing = matches!(error, Error::NoSuchDatabase { .. });
                if seen.missing {
                    // The router says so, rate-limited, for every such name.
                    debug!(db = %database, "No such database: its settings are not read again.");
                } else if seen
                    .last_warned
                    .is_none_or(|at| at.elapsed() > Duration::from_secs(60))
                {
                    seen.last_warned = Some(Instant::now());
                    warn!(db = %database, error = %error,
                        "Cannot read the audit settings; applying strict redaction until they can be read.");
                }
                let missing = seen.missing;
                if first && self.policies.get(database).is_none() {
                    self.policies.set(database, Arc::new(Policy::fail_closed()));
                    let _ = self.ready.try_send(PolicyReady(database.to_owned()));
                }
                if missing && !was_missing {
                    self.remember_missing(database);
                }
                return !missing;
            }
        };
        seen.missing = false;
        // Odoo not initialised yet: no settings to honour, the defaults apply.
        let parameters = parameters.unwrap_or_default();
        let mut changes = Vec::new();
        if let Some(previous) = &seen.parameters {
            changes.extend(setting_changes(previous, &parameters));
        }
        if let Some(previous) = &seen.components {
            changes.extend(catalogue_changes(previous, &components));
        }
        let unreported: Vec<ConfigChange> = changes
            .into_iter()
            .filter(|(key, _, new)| !self.reported.was_reported(database, key, new))
            .map(|(key, old_value, new_value)| ConfigChange {
                worker_id: 0,
                database: database.to_owned(),
                changed_at_us: store::to_micros(SystemTime::now()),
                key,
                old_value,
                new_value,
                user_login: String::new(),
                uid: None,
            })
            .collect();
        if !unreported.is_empty() {
            let me = Sender {
                pid: i64::from(std::process::id()),
                uid: i64::from(nix::unistd::getuid().as_raw()),
            };
            let items = unreported
                .into_iter()
                .map(|c| Item::ConfigChange(me, c))
                .collect();
            if self
                .journal
                .try_send(Batch(items, Ticket::default()))
                .is_err()
            {
                // Not recorded yet: leave `seen` as it was so the next read
                // detects the same change again.
                warn!(db = %database, "Pipeline full; will journal the settings change on the next read.");
                return true;
            }
            info!(db = %database, "Audit settings or catalogue changed; journaled.");
        }
        let settings = Settings::from_parameters(&parameters);
        let policy = Policy {
            settings,
            catalogue: Catalogue::new(with_database_host(&self.databases, components.clone())),
            loaded: true,
        };
        self.policies.set(database, Arc::new(policy));
        seen.parameters = Some(parameters);
        seen.components = Some(components);
        if first {
            let _ = self.ready.try_send(PolicyReady(database.to_owned()));
        }
        false
    }
}

impl Actor for PolicyWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The safety net behind notifications: a database set up before
        // them, or a notification lost with its connection.
        ctx.run_interval(self.interval, |act, ctx| {
            let databases: Vec<String> = act
                .seen
                .iter()
                .filter(|(_, seen)| !seen.missing)
                .map(|(name, _)| name.clone())
                .collect();
            for database in databases {
                act.read_soon(&database, ctx);
            }
        });
    }
}

impl Handler<WatchDatabase> for PolicyWatcher {
    type Result = ();

    fn handle(&mut self, WatchDatabase(database): WatchDatabase, ctx: &mut Context<Self>) {
        if !self.seen.contains_key(&database) {
            self.load(database, ctx);
        }
    }
}

impl Handler<PolicyChanged> for PolicyWatcher {
    type Result = ();

    fn handle(&mut self, PolicyChanged(database): PolicyChanged, ctx: &mut Context<Self>) {
        if let Some(request) = self.seen.get(&database).and_then(|s| s.request.as_ref()) {
            request.taken();
        }
        self.read_soon(&database, ctx);
    }
}

/// A database's catalogue plus the collector's own database endpoint.
fn with_database_host(databases: &Databases, mut components: Vec<Component>) -> Vec<Component> {
    components.extend(crate::pipeline::catalogue::database_host_component(
        &databases.tcp_endpoints(),
    ));
    components
}

type Change = (String, Option<String>, Option<String>);

/// (key, old, new) for every audit setting that differs.
fn setting_changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<Change> {
    crate::pipeline::policy::SETTING_KEYS
        .iter()
        .filter(|key| old.get(**key) != new.get(**key))
        .map(|key| {
            (
                key.to_string(),
                old.get(*key).cloned(),
                new.get(*key).cloned(),
            )
        })
        .collect()
}

/// (`egress.component:<name>`, old JSON, new JSON) for every component
/// added, removed or edited.
fn catalogue_changes(old: &[Component], new: &[Component]) -> Vec<Change> {
    let by_name = |list: &[Component]| -> BTreeMap<String, String> {
        list.iter()
            .map(|c| (c.name.clone(), serde_json::to_string(c).unwrap_or_default()))
            .collect()
    };
    let (old, new) = (by_name(old), by_name(new));
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .map(|name| {
            (
                format!("egress.component:{name}"),
                old.get(name).cloned(),
                new.get(name).cloned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::catalogue::Class;

    #[test]
    fn a_flood_of_asks_gives_one_read_in_flight_and_one_after_it() {
        let t0 = Instant::now();
        let mut pacing = Pacing::default();
        assert_eq!(pacing.ask(t0), Next::Read);
        assert!(pacing.start(t0));
        for _ in 0..10_000 {
            assert_eq!(pacing.ask(t0), Next::Nothing);
        }
        assert!(!pacing.start(t0), "one read in flight");
        // The read in flight may predate the change: one more, spaced.
        assert!(pacing.finish());
        let t1 = t0 + Duration::from_millis(30);
        assert_eq!(pacing.ask(t1), Next::ReadIn(Duration::from_millis(70)));
        for _ in 0..10_000 {
            assert_eq!(pacing.ask(t1), Next::Nothing);
        }
        pacing.scheduled = false; // what the scheduled read does first
        assert!(pacing.start(t0 + MIN_SPACING));
        assert!(!pacing.finish(), "nothing asked meanwhile: no further read");
    }

    #[test]
    fn an_ask_after_the_spacing_reads_at_once_and_a_retry_is_not_doubled() {
        let t0 = Instant::now();
        let mut pacing = Pacing::default();
        assert!(pacing.start(t0));
        assert!(!pacing.finish());
        assert_eq!(pacing.ask(t0 + MIN_SPACING), Next::Read);
        assert_eq!(pacing.retry(RETRY_AFTER), Next::ReadIn(RETRY_AFTER));
        assert_eq!(pacing.retry(RETRY_AFTER), Next::Nothing);
        assert_eq!(pacing.ask(t0 + RETRY_AFTER), Next::Nothing);
    }

    #[test]
    fn reports_each_changed_setting_with_old_and_new() {
        let old = BTreeMap::from([(
            crate::pipeline::policy::KEY_STRICT.to_string(),
            "False".to_string(),
        )]);
        let new = BTreeMap::from([
            (
                crate::pipeline::policy::KEY_STRICT.to_string(),
                "True".to_string(),
            ),
            (
                crate::pipeline::policy::KEY_ENABLED.to_string(),
                "True".to_string(),
            ),
        ]);
        let changes = setting_changes(&old, &new);
        assert_eq!(changes.len(), 2);
        assert!(changes.contains(&(
            crate::pipeline::policy::KEY_STRICT.into(),
            Some("False".into()),
            Some("True".into())
        )));
    }

    #[test]
    fn reports_added_removed_and_edited_components() {
        let c = |name: &str, host: &str| Component {
            name: name.into(),
            owner: String::new(),
            purpose: String::new(),
            class: Class::ThirdParty,
            hosts: vec![host.into()],
            cidrs: vec![],
            ports: vec![],
        };
        let changes = catalogue_changes(&[c("a", "x"), c("b", "y")], &[c("a", "x2"), c("c", "z")]);
        let keys: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            keys,
            [
                "egress.component:a",
                "egress.component:b",
                "egress.component:c"
            ]
        );
        assert!(changes[1].2.is_none() && changes[2].1.is_none());
    }
}
