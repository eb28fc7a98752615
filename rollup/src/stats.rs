//! Counters of the rollups, per database, shown by `egress-collector status`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Default, Serialize)]
pub struct DbStats {
    /// The last journal seq in the rollups, and the head seen with it.
    pub watermark: i64,
    pub head: i64,
    /// Rows added from the appender's deltas, and folded from the journal.
    pub applied_rows: u64,
    pub folded_rows: u64,
    pub flushes: u64,
    pub pending_segments: usize,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Deltas the rollup's mailbox could not take; their rows are folded
    /// from the journal instead, so nothing is lost.
    pub messages_dropped: AtomicU64,
    /// Deltas forgotten to bound memory while a database was unreachable.
    pub segments_forgotten: AtomicU64,
    databases: Mutex<BTreeMap<String, DbStats>>,
}

impl Stats {
    pub fn update(&self, database: &str, update: impl FnOnce(&mut DbStats)) {
        let mut map = self.databases.lock().unwrap_or_else(|p| p.into_inner());
        update(map.entry(database.to_owned()).or_default());
    }

    pub fn database(&self, database: &str) -> Option<DbStats> {
        let map = self.databases.lock().unwrap_or_else(|p| p.into_inner());
        map.get(database).cloned()
    }

    pub fn snapshot(&self) -> Value {
        let databases = self
            .databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        json!({
            "messages_dropped": self.messages_dropped.load(Relaxed),
            "segments_forgotten": self.segments_forgotten.load(Relaxed),
            "databases": databases,
        })
    }
}
