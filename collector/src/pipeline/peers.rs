//! Bounded per-peer state: what the collector remembers of each worker (its
//! addons paths, its latest `Hello`) is kept for at most `MAX_WORKERS_PER_UID`
//! workers per sender uid, and forgotten once a worker has not been heard
//! from for `FORGET`. Worker ids are the senders' own claims, so a flood of
//! fresh ids from one uid evicts that uid's oldest workers, never another
//! uid's, and memory stays bounded (docs/CONFIGURATION.md, "Memory").
//! Time is a parameter, so the rules are tested without waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Workers remembered per sender uid. An Odoo host runs a few dozen.
pub const MAX_WORKERS_PER_UID: usize = 1024;
/// Workers repeat their `Hello` every minute: one silent this long is gone.
pub const FORGET: Duration = Duration::from_secs(600);

/// Most addons paths kept per worker, and the longest path kept: a real
/// Odoo has a handful of short ones; a hostile `Hello` must not make the
/// collector hold kilobytes per worker id, in flight or remembered.
pub const MAX_ADDONS_PATHS: usize = 64;
pub const MAX_ADDONS_PATH_LEN: usize = 512;
/// Most databases a `Hello` may name, and the longest text field kept.
const MAX_HELLO_DATABASES: usize = 64;
const MAX_HELLO_TEXT: usize = 64;

/// Cuts a `Hello` down to what the collector keeps, as it is received.
pub fn bound_hello(hello: &mut egress_proto::Hello) {
    hello
        .addons_paths
        .retain(|p| p.len() <= MAX_ADDONS_PATH_LEN);
    hello.addons_paths.truncate(MAX_ADDONS_PATHS);
    hello.addons_paths.shrink_to_fit();
    hello.databases.truncate(MAX_HELLO_DATABASES);
    hello.databases.shrink_to_fit();
    for text in [
        &mut hello.odoo_version,
        &mut hello.python_version,
        &mut hello.hook_mode,
        &mut hello.hook_version,
    ] {
        if text.len() > MAX_HELLO_TEXT {
            let cut = (0..=MAX_HELLO_TEXT)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            text.truncate(cut);
            text.shrink_to_fit();
        }
    }
}

#[derive(Debug)]
struct Peer<V> {
    uid: i64,
    heard_at: Instant,
    value: V,
}

#[derive(Debug)]
pub struct PeerTable<V> {
    peers: HashMap<u64, Peer<V>>,
    per_uid: HashMap<i64, usize>,
    max_per_uid: usize,
    forget: Duration,
    pruned_at: Option<Instant>,
}

impl<V> Default for PeerTable<V> {
    fn default() -> Self {
        PeerTable::new(MAX_WORKERS_PER_UID, FORGET)
    }
}

impl<V> PeerTable<V> {
    pub fn new(max_per_uid: usize, forget: Duration) -> Self {
        PeerTable {
            peers: HashMap::new(),
            per_uid: HashMap::new(),
            max_per_uid: max_per_uid.max(1),
            forget,
            pruned_at: None,
        }
    }

    /// Remembers `value` for `worker` (sent by `uid`), heard `now`; returns
    /// whether the worker is new. Makes room by forgetting the uid's
    /// least recently heard worker.
    pub fn insert(&mut self, worker: u64, uid: i64, value: V, now: Instant) -> bool {
        self.prune(now);
        if let Some(peer) = self.peers.get_mut(&worker) {
            let old_uid = peer.uid;
            peer.uid = uid;
            peer.heard_at = now;
            peer.value = value;
            if old_uid != uid {
                self.uncount(old_uid);
                *self.per_uid.entry(uid).or_default() += 1;
            }
            return false;
        }
        if self.per_uid.get(&uid).copied().unwrap_or(0) >= self.max_per_uid {
            let oldest = self
                .peers
                .iter()
                .filter(|(_, p)| p.uid == uid)
                .min_by_key(|(_, p)| p.heard_at)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.remove(id);
            }
        }
        self.peers.insert(
            worker,
            Peer {
                uid,
                heard_at: now,
                value,
            },
        );
        *self.per_uid.entry(uid).or_default() += 1;
        true
    }

    pub fn get(&self, worker: u64) -> Option<&V> {
        self.peers.get(&worker).map(|p| &p.value)
    }

    pub fn get_mut(&mut self, worker: u64) -> Option<&mut V> {
        self.peers.get_mut(&worker).map(|p| &mut p.value)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn remove(&mut self, worker: u64) -> Option<V> {
        let peer = self.peers.remove(&worker)?;
        self.uncount(peer.uid);
        Some(peer.value)
    }

    fn uncount(&mut self, uid: i64) {
        if let Some(n) = self.per_uid.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                self.per_uid.remove(&uid);
            }
        }
    }

    /// Forgets workers not heard from for `forget`; runs at most every
    /// tenth of it.
    fn prune(&mut self, now: Instant) {
        if self
            .pruned_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.forget / 10)
        {
            return;
        }
        self.pruned_at = Some(now);
        let forget = self.forget;
        let gone: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.heard_at) >= forget)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_fresh_ids_evicts_only_its_own_uids_oldest_workers() {
        let t0 = Instant::now();
        let mut table = PeerTable::new(3, FORGET);
        table.insert(1, 100, "odoo worker", t0);
        for id in 10..1000 {
            table.insert(id, 666, "flood", t0 + Duration::from_millis(id));
        }
        assert_eq!(table.len(), 4);
        assert_eq!(table.get(1), Some(&"odoo worker"));
        assert!(table.get(997).is_some() && table.get(996).is_none());
    }

    #[test]
    fn a_hello_is_cut_to_what_is_kept() {
        let mut hello = egress_proto::Hello {
            addons_paths: (0..1000).map(|i| format!("/a{i}")).collect(),
            databases: (0..1000).map(|i| format!("d{i}")).collect(),
            hook_version: "é".repeat(100),
            ..egress_proto::Hello::default()
        };
        hello.addons_paths.insert(0, "x".repeat(10_000));
        bound_hello(&mut hello);
        assert_eq!(hello.addons_paths.len(), MAX_ADDONS_PATHS);
        assert_eq!(hello.addons_paths[0], "/a0");
        assert_eq!(hello.databases.len(), MAX_HELLO_DATABASES);
        assert!(hello.hook_version.len() <= MAX_HELLO_TEXT);
    }

    #[test]
    fn workers_not_heard_from_are_forgotten_and_come_back_as_new() {
        let t0 = Instant::now();
        let mut table = PeerTable::new(10, FORGET);
        assert!(table.insert(1, 100, (), t0));
        assert!(!table.insert(1, 100, (), t0 + FORGET / 2));
        table.insert(2, 100, (), t0 + FORGET * 2);
        assert!(table.get(1).is_none());
        assert!(table.insert(1, 100, (), t0 + FORGET * 2));
    }
}
