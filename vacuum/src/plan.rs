//! What a vacuum decides and records, as pure functions: the cutoff from
//! the retention setting and the clock, and the `vacuum` journal entry
//! whose `detail` names the removed range and the new anchor
//! (docs/JOURNAL_FORMAT.md §6). Verification reads the entry back with
//! `VacuumDetail::parse` to vouch for the anchor it starts from.

use egress_proto::{EntryKind, JournalRow};
use serde::{Deserialize, Serialize};

pub const DAY_US: i64 = 86_400_000_000;

/// Odoo's setting: days to keep; 0 (or absent, or not a number) keeps all.
pub use egress_proto::settings::KEY_RETENTION;

/// The same reading as the collector's policy: a non-negative whole number.
pub fn retention_days(value: Option<&str>) -> u32 {
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Rows recorded before this instant may go; None keeps everything.
pub fn cutoff_us(now_us: i64, retention_days: u32) -> Option<i64> {
    (retention_days > 0).then(|| now_us.saturating_sub(i64::from(retention_days) * DAY_US))
}

/// The `detail` of a `vacuum` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VacuumDetail {
    /// The removed rows: `first_seq..=last_seq`, `rows` of them.
    pub first_seq: i64,
    pub last_seq: i64,
    pub rows: i64,
    /// Hex of the row_hash of `last_seq`: the `prev_hash` the first
    /// remaining row must carry, where verification now starts.
    pub anchor: String,
    /// Rows recorded before this were eligible.
    pub cutoff_us: i64,
    pub retention_days: u32,
    /// The latest signed head when pruning: nothing at or after it went.
    pub signed_head_seq: i64,
    /// The vacuum ran with a clock set by its caller (tests, drills), not
    /// the collector's own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clock_override: bool,
}

impl VacuumDetail {
    /// The detail of a `vacuum` row, or None for any other row.
    pub fn parse(row: &JournalRow) -> Option<VacuumDetail> {
        Self::parse_parts(&row.kind, row.detail.as_deref())
    }

    /// As `parse`, from a row's `kind` and `detail` alone.
    pub fn parse_parts(kind: &str, detail: Option<&str>) -> Option<VacuumDetail> {
        if kind != EntryKind::Vacuum.as_str() {
            return None;
        }
        serde_json::from_str(detail?).ok()
    }

    pub fn anchor_bytes(&self) -> Option<[u8; 32]> {
        hex::decode(&self.anchor).ok()?.try_into().ok()
    }

    /// The entry to journal, without its chain position (seq, hashes).
    pub fn entry(&self, database: &str, collector: &str, recorded_at_us: i64) -> JournalRow {
        JournalRow {
            database: database.to_owned(),
            kind: EntryKind::Vacuum.as_str().to_owned(),
            recorded_at_us,
            collector: collector.to_owned(),
            detail: Some(serde_json::to_string(self).unwrap_or_default()),
            ..JournalRow::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail() -> VacuumDetail {
        VacuumDetail {
            first_seq: 1,
            last_seq: 99,
            rows: 99,
            anchor: hex::encode([7u8; 32]),
            cutoff_us: 5,
            retention_days: 30,
            signed_head_seq: 120,
            clock_override: false,
        }
    }

    #[test]
    fn zero_or_garbage_retention_keeps_everything() {
        assert_eq!(retention_days(None), 0);
        assert_eq!(retention_days(Some("abc")), 0);
        assert_eq!(retention_days(Some(" 30 ")), 30);
        assert_eq!(cutoff_us(100 * DAY_US, 0), None);
        assert_eq!(cutoff_us(100 * DAY_US, 30), Some(70 * DAY_US));
    }

    #[test]
    fn the_entry_carries_its_detail_and_reads_back() {
        let row = detail().entry("odoo", "host-1", 42);
        assert_eq!(row.kind, "vacuum");
        assert_eq!((row.database.as_str(), row.recorded_at_us), ("odoo", 42));
        assert_eq!(VacuumDetail::parse(&row), Some(detail()));
        assert_eq!(detail().anchor_bytes(), Some([7u8; 32]));
        assert!(!row.detail.unwrap().contains("clock_override"));
        let call = JournalRow {
            kind: "call".into(),
            detail: Some("{}".into()),
            ..JournalRow::default()
        };
        assert_eq!(VacuumDetail::parse(&call), None);
    }
}
