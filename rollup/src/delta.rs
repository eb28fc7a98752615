//! What journal rows add to the rollups: sums per group, as pure functions.
//! The same rules are written once more in SQL (`store::FOLD_*`), for rows
//! folded straight from the journal; the end-to-end invariant test holds
//! the two to each other.

use std::collections::HashMap;

use egress_proto::JournalRow;

pub const DAY_US: i64 = 86_400_000_000;

/// A row's UTC day, as days since 1970-01-01 (`date '1970-01-01' + day`).
pub fn day_of(recorded_at_us: i64) -> i32 {
    // Saturates far outside any real journal's years rather than wrap.
    i32::try_from(recorded_at_us.div_euclid(DAY_US)).unwrap_or(i32::MAX)
}

/// The group of a call. Absent text is `""` and an absent class is
/// `unknown`, as in the table (key columns cannot be NULL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey {
    pub day: i32,
    pub addon: String,
    pub component: String,
    pub class: String,
    pub channel: String,
    pub host: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSums {
    pub calls: i64,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub errors: i64,
    pub self_egress: i64,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
}

impl CallSums {
    fn absorb(&mut self, other: &CallSums) {
        self.calls = self.calls.saturating_add(other.calls);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.errors = self.errors.saturating_add(other.errors);
        self.self_egress = self.self_egress.saturating_add(other.self_egress);
        self.first_seen_us = self.first_seen_us.min(other.first_seen_us);
        self.last_seen_us = self.last_seen_us.max(other.last_seen_us);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GapKey {
    pub day: i32,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapSums {
    pub entries: i64,
    pub events: i64,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
}

impl GapSums {
    fn absorb(&mut self, other: &GapSums) {
        self.entries = self.entries.saturating_add(other.entries);
        self.events = self.events.saturating_add(other.events);
        self.first_seen_us = self.first_seen_us.min(other.first_seen_us);
        self.last_seen_us = self.last_seen_us.max(other.last_seen_us);
    }
}

/// A row kept whole: settings changes and vacuums are rare and matter one
/// by one (capture on/off history, what retention removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    pub recorded_at_us: i64,
    pub kind: String,
    pub detail: Option<String>,
}

/// Kinds kept as events.
pub const EVENT_KINDS: [&str; 5] = [
    "config_change",
    "vacuum",
    "alarm",
    "forensic_capture",
    "forensic_read",
];

/// What a run of journal rows adds to the rollups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub calls: HashMap<CallKey, CallSums>,
    pub gaps: HashMap<GapKey, GapSums>,
    pub events: Vec<Event>,
    /// Rows this delta covers (of every kind).
    pub rows: u64,
}

/// A call is an error when it failed (an exception class) or was answered
/// with a status of 400 or more (HTTP errors, SMTP 4xx/5xx replies).
pub fn is_error(row: &JournalRow) -> bool {
    row.error_class.is_some() || row.status.is_some_and(|s| s >= 400)
}

impl Delta {
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a JournalRow>) -> Delta {
        let mut delta = Delta::default();
        for row in rows {
            delta.add(row);
        }
        delta
    }

    pub fn add(&mut self, row: &JournalRow) {
        self.rows += 1;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let at = row.recorded_at_us;
        match row.kind.as_str() {
            "call" => {
                let key = CallKey {
                    day: day_of(at),
                    addon: text(&row.addon),
                    component: text(&row.component),
                    class: row.class.clone().unwrap_or_else(|| "unknown".into()),
                    channel: text(&row.channel),
                    host: text(&row.host),
                };
                let sums = CallSums {
                    calls: 1,
                    bytes_out: row.bytes_out.unwrap_or(0),
                    bytes_in: row.bytes_in.unwrap_or(0),
                    errors: i64::from(is_error(row)),
                    self_egress: i64::from(row.self_egress == Some(true)),
                    first_seen_us: at,
                    last_seen_us: at,
                };
                self.calls
                    .entry(key)
                    .and_modify(|s| s.absorb(&sums))
                    .or_insert(sums);
            }
            "gap" => {
                let key = GapKey {
                    day: day_of(at),
                    reason: text(&row.gap_reason),
                };
                let sums = GapSums {
                    entries: 1,
                    events: row.gap_count.unwrap_or(0),
                    first_seen_us: at,
                    last_seen_us: at,
                };
                self.gaps
                    .entry(key)
                    .and_modify(|s| s.absorb(&sums))
                    .or_insert(sums);
            }
            kind if EVENT_KINDS.contains(&kind) => self.events.push(Event {
                seq: row.seq,
                recorded_at_us: at,
                kind: kind.to_owned(),
                detail: row.detail.clone(),
            }),
            // A kind this version does not know adds nothing (nor does the
            // SQL fold): the rollups stay equal to the journal's aggregate.
            _ => {}
        }
    }

    /// Adds `other`, which covers the rows right after this one's.
    pub fn merge(&mut self, other: Delta) {
        for (key, sums) in other.calls {
            self.calls
                .entry(key)
                .and_modify(|s| s.absorb(&sums))
                .or_insert(sums);
        }
        for (key, sums) in other.gaps {
            self.gaps
                .entry(key)
                .and_modify(|s| s.absorb(&sums))
                .or_insert(sums);
        }
        self.events.extend(other.events);
        self.rows += other.rows;
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at: i64, host: &str, out: i64) -> JournalRow {
        JournalRow {
            kind: "call".into(),
            recorded_at_us: at,
            addon: Some("sale".into()),
            component: Some("Odoo IAP".into()),
            class: Some("third_party".into()),
            channel: Some("http".into()),
            host: Some(host.into()),
            bytes_out: Some(out),
            bytes_in: Some(1),
            ..JournalRow::default()
        }
    }

    #[test]
    fn days_are_utc_and_floor_before_the_epoch() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_US - 1), 0);
        assert_eq!(day_of(DAY_US), 1);
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn calls_of_one_group_add_up_and_keep_first_and_last_seen() {
        let rows = [
            call(10, "iap.odoo.com", 5),
            call(30, "iap.odoo.com", 7),
            call(20, "iap.odoo.com", 1),
        ];
        let delta = Delta::of(&rows);
        assert_eq!(delta.calls.len(), 1);
        let sums = delta.calls.values().next().unwrap();
        assert_eq!((sums.calls, sums.bytes_out, sums.bytes_in), (3, 13, 3));
        assert_eq!((sums.first_seen_us, sums.last_seen_us), (10, 30));
    }

    #[test]
    fn day_host_and_absent_values_make_separate_groups() {
        let mut bare = call(0, "x", 0);
        bare.addon = None;
        bare.class = None;
        let rows = [call(0, "a", 0), call(DAY_US, "a", 0), call(0, "b", 0), bare];
        let delta = Delta::of(&rows);
        assert_eq!(delta.calls.len(), 4);
        let bare_key = delta.calls.keys().find(|k| k.host == "x").unwrap();
        assert_eq!(
            (bare_key.addon.as_str(), bare_key.class.as_str()),
            ("", "unknown")
        );
    }

    #[test]
    fn errors_and_self_egress_are_counted() {
        let mut failed = call(0, "a", 0);
        failed.error_class = Some("ConnectionError".into());
        let mut refused = call(0, "a", 0);
        refused.status = Some(503);
        let mut ok = call(0, "a", 0);
        ok.status = Some(200);
        ok.self_egress = Some(true);
        let sums = *Delta::of(&[failed, refused, ok])
            .calls
            .values()
            .next()
            .unwrap();
        assert_eq!((sums.errors, sums.self_egress), (2, 1));
    }

    #[test]
    fn gaps_events_and_unknown_kinds() {
        let gap = JournalRow {
            kind: "gap".into(),
            gap_count: Some(17),
            gap_reason: Some("socket_missing".into()),
            ..JournalRow::default()
        };
        let change = JournalRow {
            seq: 9,
            kind: "config_change".into(),
            detail: Some("{}".into()),
            ..JournalRow::default()
        };
        let future = JournalRow {
            kind: "something_new".into(),
            ..JournalRow::default()
        };
        let delta = Delta::of(&[gap.clone(), gap, change, future]);
        let sums = delta.gaps.values().next().unwrap();
        assert_eq!((sums.entries, sums.events), (2, 34));
        assert_eq!(delta.events.len(), 1);
        assert_eq!(delta.events[0].seq, 9);
        assert_eq!(delta.rows, 4);
        assert!(delta.calls.is_empty());
    }

    #[test]
    fn merging_equals_adding_everything_at_once() {
        let rows: Vec<JournalRow> = (0..10)
            .map(|i| call(i * DAY_US / 3, if i % 2 == 0 { "a" } else { "b" }, i))
            .collect();
        let mut merged = Delta::of(&rows[..4]);
        merged.merge(Delta::of(&rows[4..]));
        assert_eq!(merged, Delta::of(&rows));
    }
}
