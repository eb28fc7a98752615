//! The Odoo workers seen sending events for one database, and their hook
//! mode: the ledger behind `egress.worker_seen` (the Trust Report's capture
//! coverage). Writing a worker's row with every batch would double the
//! appender's statements, so the ledger says which rows are due: a worker's
//! first, one whose `Hello` changed, and one last written `REFRESH` ago.
//! Pure (time is a parameter), so the throttle is tested without a database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use egress_proto::Hello;

use crate::pipeline::stage::{Item, RedactedEntry, Sender};

/// Least time between two writes of one worker's row (unless its `Hello`
/// changed): `last_seen` trails the worker's last event by at most this.
pub const REFRESH: Duration = Duration::from_secs(30);
/// A worker neither seen nor written for this long is forgotten; if it comes
/// back, its row is written at once.
const FORGET: Duration = Duration::from_secs(600);
/// Longest hook text kept: it is the worker's own account.
const MAX_TEXT: usize = 64;

/// What a worker said of itself in its latest `Hello`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookInfo {
    /// `native`, `python` or `rust` (`Hello::hook_mode`).
    pub mode: String,
    pub version: String,
    pub odoo_version: String,
}

impl HookInfo {
    pub fn from_hello(hello: &Hello) -> HookInfo {
        HookInfo {
            mode: label(&hello.hook_mode),
            version: label(&hello.hook_version),
            odoo_version: label(&hello.odoo_version),
        }
    }
}

/// Printable, short: what reaches the table and the report.
fn label(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// What is known of one worker since its row was last written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// The kernel's pid and uid for its latest event.
    pub pid: Option<i64>,
    pub uid: Option<i64>,
    pub calls: u64,
}

impl Seen {
    fn merge(&mut self, later: Seen) {
        self.pid = later.pid.or(self.pid);
        self.uid = later.uid.or(self.uid);
        self.calls += later.calls;
    }
}

/// The workers of one batch, by worker id.
pub type Sightings = HashMap<u64, Seen>;

/// The calls of a batch, per worker (before `chain::plan` moves the rows).
pub fn sightings(items: &[Item<RedactedEntry>]) -> Sightings {
    let mut seen = Sightings::new();
    for item in items {
        if let Item::Call(entry) = item {
            seen.entry(entry.worker_id).or_default().merge(Seen {
                pid: entry.row.worker_pid,
                uid: entry.row.worker_uid,
                calls: 1,
            });
        }
    }
    seen
}

/// One row of `egress.worker_seen` to upsert: `calls` are added to the
/// stored count, the rest replaces what is stored (absent: kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRow {
    pub worker_id: u64,
    pub seen: Seen,
    pub hook: Option<HookInfo>,
}

#[derive(Debug)]
struct Written {
    at: Instant,
    hook: Option<HookInfo>,
}

#[derive(Debug, Default)]
pub struct WorkerLedger {
    /// worker → its latest `Hello`.
    hooks: HashMap<u64, HookInfo>,
    /// worker → what its row does not show yet.
    unwritten: HashMap<u64, Seen>,
    /// worker → when its row was last written, and with which hook info.
    written: HashMap<u64, Written>,
    /// After a failed write (no table yet, no grant): none before then.
    paused_until: Option<Instant>,
    pruned_at: Option<Instant>,
}

impl WorkerLedger {
    /// A `Hello` reached this database's appender: the worker is there,
    /// and says what it is.
    pub fn hello(&mut self, sender: Sender, hello: &Hello) {
        self.hooks
            .insert(hello.worker_id, HookInfo::from_hello(hello));
        self.unwritten
            .entry(hello.worker_id)
            .or_default()
            .merge(Seen {
                pid: Some(sender.pid),
                uid: Some(sender.uid),
                calls: 0,
            });
    }

    /// The rows to write with a batch of these sightings at `now`. Due: a
    /// worker never written, one whose `Hello` changed, one last written
    /// `REFRESH` ago or more; once one is due, the others last written half
    /// as long ago come along, so writes bunch up instead of spreading over
    /// every batch. `all` (shutdown): every worker with anything unwritten.
    pub fn due(&self, batch: &Sightings, now: Instant, all: bool) -> Vec<WorkerRow> {
        if self.paused_until.is_some_and(|until| now < until) {
            return Vec::new();
        }
        // None: never written, or its Hello changed since.
        let age = |worker: &u64| -> Option<Duration> {
            let written = self.written.get(worker)?;
            (written.hook.as_ref() == self.hooks.get(worker))
                .then(|| now.saturating_duration_since(written.at))
        };
        let overdue = |worker: &u64| age(worker).is_none_or(|a| a >= REFRESH);
        if !all && !self.unwritten.keys().chain(batch.keys()).any(overdue) {
            return Vec::new();
        }
        let mut candidates: HashMap<u64, Seen> = self.unwritten.clone();
        for (worker, seen) in batch {
            candidates.entry(*worker).or_default().merge(*seen);
        }
        let mut rows: Vec<WorkerRow> = candidates
            .into_iter()
            .filter(|(worker, _)| all || age(worker).is_none_or(|a| a >= REFRESH / 2))
            .map(|(worker_id, seen)| WorkerRow {
                worker_id,
                seen,
                hook: self.hooks.get(&worker_id).cloned(),
            })
            .collect();
        rows.sort_unstable_by_key(|r| r.worker_id);
        rows
    }

    /// A batch committed with these sightings, and `rows` (from `due`) with
    /// it, `stored` or not (their write failed; the batch did not).
    pub fn committed(&mut self, batch: Sightings, rows: &[WorkerRow], stored: bool, now: Instant) {
        for (worker, seen) in batch {
            self.unwritten.entry(worker).or_default().merge(seen);
        }
        if !stored {
            self.paused_until = Some(now + REFRESH);
            return;
        }
        for row in rows {
            // A `Hello` that came meanwhile adds no call: the row just
            // written shows the worker as seen now.
            let rest = self
                .unwritten
                .get(&row.worker_id)
                .map_or(0, |s| s.calls.saturating_sub(row.seen.calls));
            if rest == 0 {
                self.unwritten.remove(&row.worker_id);
            } else if let Some(seen) = self.unwritten.get_mut(&row.worker_id) {
                seen.calls = rest;
            }
            self.written.insert(
                row.worker_id,
                Written {
                    at: now,
                    hook: row.hook.clone(),
                },
            );
        }
    }

    /// Forgets workers gone for `FORGET`; runs at most every tenth of it.
    pub fn prune(&mut self, now: Instant) {
        if self
            .pruned_at
            .is_some_and(|at| now.saturating_duration_since(at) < FORGET / 10)
        {
            return;
        }
        self.pruned_at = Some(now);
        let unwritten = &self.unwritten;
        self.written.retain(|worker, written| {
            unwritten.contains_key(worker) || now.saturating_duration_since(written.at) < FORGET
        });
        let written = &self.written;
        self.hooks
            .retain(|worker, _| written.contains_key(worker) || unwritten.contains_key(worker));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENDER: Sender = Sender { pid: 40, uid: 1000 };

    fn hello(worker_id: u64, mode: &str) -> Hello {
        Hello {
            worker_id,
            hook_mode: mode.into(),
            hook_version: "0.1.0".into(),
            odoo_version: "18.0".into(),
            ..Hello::default()
        }
    }

    fn calls(worker: u64, n: u64) -> Sightings {
        Sightings::from([(
            worker,
            Seen {
                pid: Some(40),
                uid: Some(1000),
                calls: n,
            },
        )])
    }

    /// `due`, then `committed` as stored: what was written.
    fn flush(ledger: &mut WorkerLedger, batch: Sightings, now: Instant) -> Vec<WorkerRow> {
        let rows = ledger.due(&batch, now, false);
        ledger.committed(batch, &rows, true, now);
        rows
    }

    #[test]
    fn a_new_worker_is_written_at_once_then_at_most_every_refresh() {
        let t0 = Instant::now();
        let mut ledger = WorkerLedger::default();
        let first = flush(&mut ledger, calls(1, 3), t0);
        assert_eq!((first.len(), first[0].seen.calls), (1, 3));
        assert!(flush(&mut ledger, calls(1, 2), t0 + REFRESH / 3).is_empty());
        assert!(flush(&mut ledger, calls(1, 4), t0 + REFRESH / 2).is_empty());
        // Every call is counted once, in the write that comes due.
        let later = flush(&mut ledger, calls(1, 1), t0 + REFRESH);
        assert_eq!(later[0].seen.calls, 7);
        assert!(flush(&mut ledger, Sightings::new(), t0 + REFRESH * 2).is_empty());
    }

    #[test]
    fn calls_left_unwritten_are_written_by_a_later_empty_flush() {
        let t0 = Instant::now();
        let mut ledger = WorkerLedger::default();
        flush(&mut ledger, calls(1, 1), t0);
        flush(&mut ledger, calls(1, 5), t0 + Duration::from_secs(1));
        let rows = flush(&mut ledger, Sightings::new(), t0 + REFRESH);
        assert_eq!(rows[0].seen.calls, 5);
    }

    #[test]
    fn a_hello_gives_the_hook_mode_and_a_changed_hello_is_written_at_once() {
        let t0 = Instant::now();
        let mut ledger = WorkerLedger::default();
        flush(&mut ledger, calls(1, 1), t0);
        ledger.hello(SENDER, &hello(1, "python"));
        let rows = flush(&mut ledger, Sightings::new(), t0 + Duration::from_secs(1));
        assert_eq!(rows[0].hook.as_ref().unwrap().mode, "python");
        assert_eq!(rows[0].seen.calls, 0);
        // The same Hello a minute on is a sighting, written when due.
        ledger.hello(SENDER, &hello(1, "python"));
        assert!(ledger
            .due(&Sightings::new(), t0 + Duration::from_secs(2), false)
            .is_empty());
        assert_eq!(
            ledger.due(&Sightings::new(), t0 + REFRESH * 2, false).len(),
            1
        );
    }

    #[test]
    fn once_one_worker_is_due_those_written_half_a_refresh_ago_come_along() {
        let t0 = Instant::now();
        let mut ledger = WorkerLedger::default();
        flush(&mut ledger, calls(1, 1), t0);
        flush(&mut ledger, calls(2, 1), t0 + REFRESH / 2);
        flush(
            &mut ledger,
            calls(3, 1),
            t0 + REFRESH - Duration::from_secs(1),
        );
        let mut batch = calls(1, 1);
        batch.extend(calls(2, 1));
        batch.extend(calls(3, 1));
        let ids: Vec<u64> = flush(&mut ledger, batch, t0 + REFRESH)
            .iter()
            .map(|r| r.worker_id)
            .collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn a_failed_write_keeps_the_counts_and_pauses_writes() {
        let t0 = Instant::now();
        let mut ledger = WorkerLedger::default();
        let rows = ledger.due(&calls(1, 2), t0, false);
        ledger.committed(calls(1, 2), &rows, false, t0);
        assert!(ledger.due(&Sightings::new(), t0, true).is_empty());
        let rows = flush(&mut ledger, calls(1, 1), t0 + REFRESH);
        assert_eq!(rows[0].seen.calls, 3);
    }

    #[test]
    fn shutdown_writes_everything_unwritten() {
        let t0 = Instant::now();
        let mut ledger = WorkerLedger::default();
        flush(&mut ledger, calls(1, 1), t0);
        flush(&mut ledger, calls(1, 4), t0 + Duration::from_secs(1));
        let rows = ledger.due(&Sightings::new(), t0 + Duration::from_secs(2), true);
        assert_eq!(rows[0].seen.calls, 4);
    }

    #[test]
    fn workers_gone_for_long_are_forgotten() {
        let t0 = Instant::now();
        let mut ledger = WorkerLedger::default();
        ledger.hello(SENDER, &hello(1, "native"));
        flush(&mut ledger, calls(1, 1), t0);
        ledger.prune(t0 + FORGET * 2);
        assert!(ledger.written.is_empty() && ledger.hooks.is_empty());
    }

    #[test]
    fn hook_text_is_short_and_printable() {
        let mut h = hello(1, "native\n");
        h.hook_version = "x".repeat(500);
        let info = HookInfo::from_hello(&h);
        assert_eq!(info.mode, "native");
        assert_eq!(info.version.len(), MAX_TEXT);
    }
}
