//! Per-stage counters shown by `egress-collector status`. Hot-path counters
//! are atomics; reason maps sit behind a mutex because they move only when
//! something goes wrong.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{json, Value};

/// What one database's chain appender has done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbStats {
    pub head_seq: i64,
    pub appended: u64,
    pub gap_entries: u64,
    pub events_in_gaps: u64,
    /// Calls not journaled because the database's settings exclude them.
    pub suppressed: u64,
    /// Calls refused as already accounted (a replayed or backward seq).
    pub duplicates: u64,
    /// Rows of `egress.worker_seen` written (workers seen, throttled).
    pub worker_rows: u64,
    pub queued: u64,
    /// Events written to the spool (the database could not take them).
    pub spooled: u64,
    /// Of those, made durable (fsync'd).
    pub spool_synced: u64,
    /// Records in the spool waiting to be journaled, and its size.
    pub spool_pending: u64,
    pub spool_bytes: u64,
    /// Spooled records journaled since start (this run's and earlier ones').
    pub replayed: u64,
    /// Calls shed because the spool was full or unwritable (journaled as a
    /// `spool_full` / `spool_unwritable` gap once the database is back).
    pub shed: u64,
    pub last_error: Option<String>,
    /// The latest head this collector signed.
    pub signed_head_seq: Option<i64>,
    pub signed_at_us: Option<i64>,
    /// Why signing is suspended (the journal was rewritten or cut), until
    /// an operator resumes it.
    pub signing_refused: Option<String>,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub datagrams: AtomicU64,
    pub accepted: AtomicU64,
    pub attributed: AtomicU64,
    pub redacted: AtomicU64,
    /// Header names and query keys that carried a value, cut to the name.
    pub names_cut: AtomicU64,
    pub workers_seen: AtomicU64,
    /// Calls attributed to the audit addon itself: should stay zero.
    pub self_egress: AtomicU64,
    pub watchers: AtomicU64,
    /// Reads of a database's settings and catalogue (first load, notified
    /// change, safety poll): a flood of notifications must not move it much.
    pub policy_reloads: AtomicU64,
    /// Names the server said are no database, as the policy watcher
    /// remembers them (at most `MISSING_REMEMBERED`).
    pub policy_missing_names: AtomicU64,
    /// Change notifications heard, whoever sent them.
    pub policy_notifications: AtomicU64,
    /// Databases whose change notifications are being listened to now.
    pub policy_listeners: AtomicU64,
    /// Calls held by all links together: ingest stops reading above a bound.
    pub held_in_links: std::sync::atomic::AtomicUsize,
    /// Calls in batches a link handed to the next stage's mailbox and that
    /// stage has not finished with: counted with `held_in_links`, so what
    /// is already on its way can never overfill a link further on.
    pub in_mailboxes: std::sync::atomic::AtomicUsize,
    /// Items healthy appenders hold beyond one batch each (they keep up
    /// with less): counted with `held_in_links` against the same bound.
    pub appender_backlog: std::sync::atomic::AtomicUsize,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// stage → reason → calls dropped on the way out of that stage.
    dropped: Mutex<BTreeMap<&'static str, BTreeMap<&'static str, u64>>>,
    databases: Mutex<BTreeMap<String, DbStats>>,
    /// Database name → calls lost because no such database exists
    /// (at most `MAX_UNKNOWN_NAMES` names; the rest under `(other)`).
    unknown_databases: Mutex<BTreeMap<String, u64>>,
}

/// Most database names `status` counts losses for one by one.
const MAX_UNKNOWN_NAMES: usize = 256;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the counters down with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Stats {
    pub fn count_rejected(&self, reason: &'static str) {
        *lock(&self.rejected).entry(reason).or_default() += 1;
    }

    pub fn count_dropped(&self, stage: &'static str, reason: &'static str, calls: u64) {
        *lock(&self.dropped)
            .entry(stage)
            .or_default()
            .entry(reason)
            .or_default() += calls;
    }

    pub fn count_unknown_database(&self, database: &str, calls: u64) {
        let mut names = lock(&self.unknown_databases);
        let key = if names.contains_key(database) || names.len() < MAX_UNKNOWN_NAMES {
            database
        } else {
            "(other)"
        };
        let total = names.entry(key.to_owned()).or_default();
        *total = total.saturating_add(calls);
    }

    pub fn update_database(&self, database: &str, update: impl FnOnce(&mut DbStats)) {
        update(
            lock(&self.databases)
                .entry(database.to_owned())
                .or_default(),
        );
    }

    /// Forgets a database's counters (its name turned out not to exist).
    pub fn remove_database(&self, database: &str) {
        lock(&self.databases).remove(database);
    }

    pub fn database_names(&self) -> Vec<String> {
        lock(&self.databases).keys().cloned().collect()
    }

    pub fn rejected_total(&self) -> u64 {
        lock(&self.rejected).values().sum()
    }

    pub fn snapshot(&self) -> Value {
        let databases = lock(&self.databases).clone();
        let dropped = lock(&self.dropped).clone();
        let dropped_at = |stage: &str| json!(dropped.get(stage).cloned().unwrap_or_default());
        let sum = |f: fn(&DbStats) -> u64| databases.values().map(f).sum::<u64>();
        json!({
            "ingest": {
                "datagrams": self.datagrams.load(Relaxed),
                "accepted": self.accepted.load(Relaxed),
                "rejected": lock(&self.rejected).clone(),
                "dropped": dropped_at("ingest"),
                "workers_seen": self.workers_seen.load(Relaxed),
            },
            "attribution": {
                "processed": self.attributed.load(Relaxed),
                "self_egress": self.self_egress.load(Relaxed),
                "dropped": dropped_at("attribution"),
            },
            "redaction": {
                "processed": self.redacted.load(Relaxed),
                "names_cut": self.names_cut.load(Relaxed),
                "dropped": dropped_at("redaction"),
            },
            "router": {
                "dropped": dropped_at("router"),
                "unknown_databases": lock(&self.unknown_databases).clone(),
            },
            "chain": {
                "appended": sum(|d| d.appended),
                "gap_entries": sum(|d| d.gap_entries),
                "events_in_gaps": sum(|d| d.events_in_gaps),
                "suppressed": sum(|d| d.suppressed),
                "duplicates": sum(|d| d.duplicates),
                "queued": sum(|d| d.queued),
                "spooled": sum(|d| d.spooled),
                "spool_pending": sum(|d| d.spool_pending),
                "spool_bytes": sum(|d| d.spool_bytes),
                "replayed": sum(|d| d.replayed),
                "shed": sum(|d| d.shed),
            },
            "policy": {
                "reloads": self.policy_reloads.load(Relaxed),
                "missing_names": self.policy_missing_names.load(Relaxed),
                "notifications": self.policy_notifications.load(Relaxed),
                "listening": self.policy_listeners.load(Relaxed),
            },
            "databases": databases,
            "watchers": self.watchers.load(Relaxed),
        })
    }
}
