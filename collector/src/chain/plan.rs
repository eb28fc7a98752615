//! Turning what reached the appender into journal rows: gap accounting over
//! per-worker sequence numbers, then chaining (seq, prev_hash, row_hash).
//! Pure functions, so every accounting rule is unit-tested without a database.

use std::collections::{BTreeMap, HashMap};

use egress_proto::{EntryKind, JournalRow, GENESIS_HASH};
use serde_json::json;

use crate::pipeline::stage::ChainedRow;
use crate::pipeline::stage::{Item, RedactedEntry, Sender};

pub const SEQUENCE_JUMP: &str = "sequence_jump";
/// A call whose (worker, seq) was already accounted: sent twice.
pub const DUPLICATE_SEQ: &str = "duplicate_seq";
/// A call whose seq is below the worker's last accounted one.
pub const BACKWARD_SEQ: &str = "backward_seq";

/// What has been accounted for one worker: its last sequence number, and the
/// running totals of losses it reported, by reason (workers report totals,
/// so a lost report is made good by the next one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub last_seq: u64,
    pub reported: BTreeMap<String, u64>,
}

/// Rows to append, with the accounting that goes with them.
#[derive(Debug, Default)]
pub struct Plan {
    pub rows: Vec<JournalRow>,
    /// For each row, the index of the item it was moved out of (calls).
    pub sources: Vec<Option<usize>>,
    /// worker → what is now accounted for (the workers this plan touched).
    pub cursors: HashMap<u64, Account>,
    pub gap_entries: u64,
    pub events_in_gaps: u64,
    /// Calls accounted but not journaled, by the database's settings.
    pub suppressed: u64,
    /// Calls refused because their (worker, seq) was accounted before
    /// (sent twice, or a seq gone backwards): counted, never stored.
    pub duplicates: u64,
}

/// Walks items in arrival order. `known` holds each worker's last accounted
/// sequence number (absent: never seen, so 0). Every sequence number up to a
/// worker's newest is either a row or counted in exactly one gap entry.
pub fn plan(
    database: &str,
    items: &mut [Item<RedactedEntry>],
    known: &HashMap<u64, Account>,
) -> Plan {
    let mut walk = Walk {
        known,
        plan: Plan::default(),
        gaps: BTreeMap::new(),
        duplicates: BTreeMap::new(),
        pids: HashMap::new(),
    };
    for (index, item) in items.iter_mut().enumerate() {
        match item {
            Item::Call(entry) => {
                walk.note_pid(entry.worker_id, entry.row.worker_pid);
                // Exactly once per (worker, database, seq): a number already
                // accounted (a row, a gap or a cursor) is never stored again.
                let last = walk.last(entry.worker_id);
                if last > 0 && entry.worker_seq <= last {
                    let reason = if entry.worker_seq == last {
                        DUPLICATE_SEQ
                    } else {
                        BACKWARD_SEQ
                    };
                    walk.duplicate(entry.worker_id, reason);
                    continue;
                }
                walk.advance_to(entry.worker_id, entry.worker_seq, 1);
                if entry.suppressed.is_some() {
                    walk.plan.suppressed += 1;
                    continue;
                }
                let mut row = std::mem::take(&mut entry.row);
                row.kind = "call".into();
                walk.push(row, Some(index));
            }
            Item::Drops(sender, drops) => {
                walk.note_sender(drops.worker_id, sender);
                for count in &drops.counts {
                    walk.reported(drops.worker_id, &reason_label(&count.reason), count.count);
                }
                for cursor in &drops.cursors {
                    walk.advance_to(drops.worker_id, cursor.last_seq, 0);
                }
            }
            Item::ConfigChange(sender, change) => {
                walk.note_sender(change.worker_id, sender);
                walk.push(JournalRow {
                    kind: "config_change".into(),
                    worker_id: Some(change.worker_id as i64),
                    worker_pid: Some(sender.pid),
                    worker_uid: Some(sender.uid),
                    odoo_uid: change.uid,
                    detail: Some(
                        json!({
                            "key": change.key,
                            "old": change.old_value,
                            "new": change.new_value,
                            "user": change.user_login,
                            // worker 0: the collector saw the change in the
                            // database; otherwise Odoo reported it.
                            "reported_by": if change.worker_id == 0 { "collector" } else { "odoo" },
                            "changed_at_us": change.changed_at_us,
                        })
                        .to_string(),
                    ),
                    ..JournalRow::default()
                }, None);
            }
            Item::Lost(summary) => {
                for ((_, worker), loss) in &summary.workers {
                    if let Some((low, high)) = loss.seq_range {
                        // Anything between what we accounted and the first
                        // lost call vanished before reaching us.
                        walk.advance_to(*worker, low, 1);
                        walk.raise(*worker, high);
                    }
                    walk.gap(
                        *worker,
                        summary.reason,
                        loss.calls.saturating_add(loss.other),
                    );
                    for (reason, total) in &loss.reported {
                        walk.reported(*worker, &reason_label(reason), *total);
                    }
                    if let Some(cursor) = loss.cursor {
                        walk.advance_to(*worker, cursor, 0);
                    }
                }
            }
            Item::Hello(..) => {}
        }
    }
    walk.finish(database)
}

struct Walk<'a> {
    known: &'a HashMap<u64, Account>,
    plan: Plan,
    /// (worker, reason) → events, in a stable order for the rows.
    gaps: BTreeMap<(u64, String), u64>,
    /// (worker, reason) → calls refused as already accounted.
    duplicates: BTreeMap<(u64, &'static str), u64>,
    pids: HashMap<u64, i64>,
}

impl Walk<'_> {
    /// The worker's account as this plan has it so far.
    fn account(&mut self, worker: u64) -> &mut Account {
        let known = self.known;
        self.plan
            .cursors
            .entry(worker)
            .or_insert_with(|| known.get(&worker).cloned().unwrap_or_default())
    }

    fn last(&mut self, worker: u64) -> u64 {
        self.account(worker).last_seq
    }

    /// A reported running total: only what exceeds the total already
    /// accounted is a new loss.
    fn reported(&mut self, worker: u64, reason: &str, total: u64) {
        let account = self.account(worker);
        let before = account.reported.get(reason).copied().unwrap_or(0);
        if total > before {
            account.reported.insert(reason.to_owned(), total);
            self.gap(worker, reason, total - before);
        }
    }

    /// Accounts `seq`: a call (`consumes` = 1) or a cursor (0). Numbers skipped
    /// since the last accounted one become a `sequence_jump` gap.
    fn advance_to(&mut self, worker: u64, seq: u64, consumes: u64) {
        let last = self.last(worker);
        // Counts come from the wire: nothing here may wrap, even at u64::MAX.
        if seq > last.saturating_add(consumes) {
            self.gap(worker, SEQUENCE_JUMP, seq - last - consumes);
        }
        self.raise(worker, seq);
    }

    /// A call that arrives after a later one was accounted (possible only
    /// when an in-band loss summary overtook it) is journaled without a gap.
    fn raise(&mut self, worker: u64, seq: u64) {
        let account = self.account(worker);
        account.last_seq = account.last_seq.max(seq);
    }

    fn push(&mut self, row: JournalRow, source: Option<usize>) {
        self.plan.rows.push(row);
        self.plan.sources.push(source);
    }

    fn gap(&mut self, worker: u64, reason: &str, count: u64) {
        if count > 0 {
            let total = self.gaps.entry((worker, reason.to_owned())).or_default();
            *total = total.saturating_add(count);
        }
    }

    fn duplicate(&mut self, worker: u64, reason: &'static str) {
        let total = self.duplicates.entry((worker, reason)).or_default();
        *total = total.saturating_add(1);
        self.plan.duplicates = self.plan.duplicates.saturating_add(1);
    }

    fn note_pid(&mut self, worker: u64, pid: Option<i64>) {
        if let Some(pid) = pid {
            self.pids.insert(worker, pid);
        }
    }

    fn note_sender(&mut self, worker: u64, sender: &Sender) {
        self.pids.insert(worker, sender.pid);
    }

    fn finish(mut self, database: &str) -> Plan {
        for ((worker, reason), count) in std::mem::take(&mut self.gaps) {
            self.plan.gap_entries += 1;
            self.plan.events_in_gaps = self.plan.events_in_gaps.saturating_add(count);
            self.push(
                JournalRow {
                    kind: EntryKind::Gap.as_str().into(),
                    worker_id: Some(worker as i64),
                    worker_pid: self.pids.get(&worker).copied(),
                    gap_count: Some(count_column(count)),
                    gap_reason: Some(reason),
                    ..JournalRow::default()
                },
                None,
            );
        }
        for ((worker, reason), count) in std::mem::take(&mut self.duplicates) {
            self.push(
                JournalRow {
                    kind: EntryKind::Duplicate.as_str().into(),
                    worker_id: Some(worker as i64),
                    worker_pid: self.pids.get(&worker).copied(),
                    gap_count: Some(count_column(count)),
                    gap_reason: Some(reason.to_owned()),
                    ..JournalRow::default()
                },
                None,
            );
        }
        for row in &mut self.plan.rows {
            row.database = database.to_owned();
        }
        self.plan
    }
}

/// A count in a `bigint` column: never negative, saturating at its top.
pub fn count_column(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Moves rows back into the items they came from (after a failed write).
pub fn restore(
    items: &mut [Item<RedactedEntry>],
    rows: Vec<JournalRow>,
    sources: &[Option<usize>],
) {
    for (row, source) in rows.into_iter().zip(sources) {
        if let Some(Item::Call(entry)) = source.and_then(|i| items.get_mut(i)) {
            entry.row = row;
        }
    }
}

/// Reasons come from senders: keep them short and plain.
fn reason_label(reason: &str) -> String {
    let label: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    if label.is_empty() {
        "unspecified".into()
    } else {
        label
    }
}

/// Gives rows their chain positions after `head` (seq, row_hash).
pub fn chain(
    rows: Vec<JournalRow>,
    head: Option<(i64, [u8; 32])>,
    collector: &str,
    now_us: i64,
) -> Vec<ChainedRow> {
    let (mut seq, mut prev) = head.unwrap_or((0, GENESIS_HASH));
    rows.into_iter()
        .map(|mut row| {
            seq += 1;
            row.seq = seq;
            row.recorded_at_us = now_us;
            row.collector = collector.to_owned();
            let row_hash = row.hash_after(&prev);
            let chained = ChainedRow {
                row,
                prev_hash: prev,
                row_hash,
            };
            prev = row_hash;
            chained
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stage::LossSummary;
    use egress_proto::{DropCount, Drops, SeqCursor};

    const W: u64 = 7;
    const SENDER: Sender = Sender {
        pid: 100,
        uid: 1000,
    };

    fn call(seq: u64) -> Item<RedactedEntry> {
        Item::Call(RedactedEntry {
            database: "db".into(),
            worker_id: W,
            worker_seq: seq,
            row: JournalRow {
                worker_seq: Some(seq as i64),
                ..JournalRow::default()
            },
            suppressed: None,
        })
    }

    fn gaps(plan: &Plan) -> Vec<(String, i64)> {
        plan.rows
            .iter()
            .filter(|r| r.kind == "gap")
            .map(|r| (r.gap_reason.clone().unwrap(), r.gap_count.unwrap()))
            .collect()
    }

    fn lost(seqs: &[u64], reason: &'static str) -> Item<RedactedEntry> {
        let mut summary = LossSummary::new(reason);
        summary.absorb(seqs.iter().map(|s| call(*s)).collect());
        Item::Lost(summary)
    }

    #[test]
    fn a_gapless_run_has_no_gap() {
        let plan = plan("db", &mut [call(1), call(2), call(3)], &HashMap::new());
        assert!(gaps(&plan).is_empty());
        assert_eq!(plan.cursors[&W].last_seq, 3);
    }

    #[test]
    fn a_jump_counts_exactly_the_missing_numbers() {
        let plan = plan("db", &mut [call(1), call(5)], &HashMap::new());
        assert_eq!(gaps(&plan), [("sequence_jump".into(), 3)]);
    }

    #[test]
    fn a_restart_resumes_from_the_stored_cursor() {
        let known = HashMap::from([(
            W,
            Account {
                last_seq: 10,
                ..Account::default()
            },
        )]);
        let plan = plan("db", &mut [call(14)], &known);
        assert_eq!(gaps(&plan), [("sequence_jump".into(), 3)]);
    }

    #[test]
    fn collector_losses_are_counted_once_not_again_as_a_jump() {
        let mut items = [call(1), lost(&[2, 3], "mailbox_full"), call(4)];
        let plan = plan("db", &mut items, &HashMap::new());
        assert_eq!(gaps(&plan), [("mailbox_full".into(), 2)]);
    }

    #[test]
    fn losses_before_a_summary_are_a_jump_then_the_summary_counts_its_own() {
        let known = HashMap::from([(
            W,
            Account {
                last_seq: 1,
                ..Account::default()
            },
        )]);
        let plan = plan("db", &mut [lost(&[5, 6], "mailbox_full"), call(7)], &known);
        assert_eq!(
            gaps(&plan),
            [("mailbox_full".into(), 2), ("sequence_jump".into(), 3)]
        );
    }

    #[test]
    fn reported_drops_and_cursors_reveal_trailing_losses() {
        let drops = Drops {
            worker_id: W,
            counts: vec![DropCount {
                database: "db".into(),
                reason: "socket_missing".into(),
                count: 4,
            }],
            cursors: vec![SeqCursor {
                database: "db".into(),
                last_seq: 5,
            }],
        };
        let plan = plan(
            "db",
            &mut [call(1), call(2), Item::Drops(SENDER, drops)],
            &HashMap::new(),
        );
        assert_eq!(
            gaps(&plan),
            [("sequence_jump".into(), 3), ("socket_missing".into(), 4)]
        );
        assert_eq!(plan.events_in_gaps, 7);
        assert_eq!(plan.cursors[&W].last_seq, 5);
    }

    #[test]
    fn reported_totals_count_once_even_when_a_report_was_lost() {
        let report = |total| {
            Item::Drops(
                SENDER,
                Drops {
                    worker_id: W,
                    counts: vec![DropCount {
                        database: "db".into(),
                        reason: "buffer_full".into(),
                        count: total,
                    }],
                    cursors: vec![],
                },
            )
        };
        // The report of 4 was lost in a crash; the next one says 9 in all.
        let known = HashMap::from([(
            W,
            Account {
                last_seq: 0,
                reported: [("buffer_full".to_string(), 0)].into(),
            },
        )]);
        let first = plan("db", &mut [report(9)], &known);
        assert_eq!(gaps(&first), [("buffer_full".into(), 9)]);
        // The same total again (a report repeated) adds nothing.
        let again = plan("db", &mut [report(9), report(7)], &first.cursors);
        assert!(gaps(&again).is_empty());
    }

    #[test]
    fn a_cursor_already_accounted_adds_nothing() {
        let drops = Drops {
            worker_id: W,
            counts: vec![],
            cursors: vec![SeqCursor {
                database: "db".into(),
                last_seq: 2,
            }],
        };
        let plan = plan(
            "db",
            &mut [call(1), call(2), Item::Drops(SENDER, drops)],
            &HashMap::new(),
        );
        assert!(gaps(&plan).is_empty());
    }

    #[test]
    fn suppressed_calls_are_accounted_without_a_row() {
        let mut hidden = call(2);
        if let Item::Call(entry) = &mut hidden {
            entry.suppressed = Some("capture_disabled");
        }
        let plan = plan("db", &mut [call(1), hidden, call(3)], &HashMap::new());
        assert!(gaps(&plan).is_empty());
        assert_eq!((plan.rows.len(), plan.suppressed), (2, 1));
    }

    #[test]
    fn a_failed_write_gives_every_row_back_to_its_item() {
        let mut items = [call(1), call(5)];
        for item in &mut items {
            if let Item::Call(entry) = item {
                entry.row.path = Some(format!("/p{}", entry.worker_seq));
            }
        }
        let mut plan = plan("db", &mut items, &HashMap::new());
        assert!(items
            .iter()
            .all(|i| matches!(i, Item::Call(e) if e.row.path.is_none())));
        let sources = std::mem::take(&mut plan.sources);
        restore(&mut items, std::mem::take(&mut plan.rows), &sources);
        let paths: Vec<_> = items
            .iter()
            .map(|i| match i {
                Item::Call(e) => e.row.path.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(paths, [Some("/p1".to_string()), Some("/p5".to_string())]);
    }

    fn duplicates(plan: &Plan) -> Vec<(String, i64)> {
        plan.rows
            .iter()
            .filter(|r| r.kind == "duplicate")
            .map(|r| (r.gap_reason.clone().unwrap(), r.gap_count.unwrap()))
            .collect()
    }

    #[test]
    fn a_replayed_or_backward_seq_is_counted_and_not_stored() {
        let mut items = [call(1), call(2), call(2), call(3), call(1), call(2)];
        let plan = plan("db", &mut items, &HashMap::new());
        let calls = plan.rows.iter().filter(|r| r.kind == "call").count();
        assert_eq!(calls, 3);
        assert!(gaps(&plan).is_empty());
        assert_eq!(
            duplicates(&plan),
            [("backward_seq".into(), 2), ("duplicate_seq".into(), 1)]
        );
        assert_eq!(plan.duplicates, 3);
    }

    #[test]
    fn a_seq_replayed_after_a_restart_is_refused_by_the_stored_cursor() {
        let known = HashMap::from([(
            W,
            Account {
                last_seq: 10,
                ..Account::default()
            },
        )]);
        let plan = plan("db", &mut [call(10), call(4), call(11)], &known);
        assert_eq!(plan.rows.iter().filter(|r| r.kind == "call").count(), 1);
        assert_eq!(plan.duplicates, 2);
        assert!(gaps(&plan).is_empty());
    }

    #[test]
    fn u64_extremes_never_wrap_nor_go_negative() {
        let plan1 = plan("db", &mut [call(1), call(u64::MAX)], &HashMap::new());
        assert_eq!(gaps(&plan1), [("sequence_jump".into(), i64::MAX)]);
        assert_eq!(plan1.cursors[&W].last_seq, u64::MAX);
        // At the top of the range, the same seq again is a duplicate, not seq 0.
        let again = plan("db", &mut [call(u64::MAX)], &plan1.cursors);
        assert_eq!(again.duplicates, 1);
        let report = |total| {
            Item::Drops(
                SENDER,
                Drops {
                    worker_id: W,
                    counts: vec![DropCount {
                        database: "db".into(),
                        reason: "buffer_full".into(),
                        count: total,
                    }],
                    cursors: vec![],
                },
            )
        };
        let drops = plan(
            "db",
            &mut [report(u64::MAX), call(u64::MAX)],
            &HashMap::new(),
        );
        for (_, count) in gaps(&drops) {
            assert!(count > 0, "{:?}", gaps(&drops));
        }
        assert_eq!(drops.events_in_gaps, u64::MAX);
    }

    #[test]
    fn chaining_links_each_row_to_the_previous_hash() {
        let rows = vec![JournalRow::default(), JournalRow::default()];
        let chained = chain(rows, Some((41, [9; 32])), "host", 5);
        assert_eq!(chained[0].row.seq, 42);
        assert_eq!(chained[0].prev_hash, [9; 32]);
        assert_eq!(chained[1].prev_hash, chained[0].row_hash);
        assert_eq!(
            chained[1].row_hash,
            chained[1].row.hash_after(&chained[0].row_hash)
        );
    }
}

#[cfg(test)]
mod count_properties {
    use super::*;
    use proptest::prelude::*;

    fn call(seq: u64) -> Item<RedactedEntry> {
        Item::Call(RedactedEntry {
            database: "db".into(),
            worker_id: 7,
            worker_seq: seq,
            row: JournalRow::default(),
            suppressed: None,
        })
    }

    /// Seqs as a hostile or broken worker sends them: repeats, steps back,
    /// jumps, and the top of the range.
    fn seqs() -> impl Strategy<Value = Vec<u64>> {
        prop::collection::vec(
            prop_oneof![
                8 => 1u64..200,
                1 => Just(u64::MAX),
                1 => Just(u64::MAX - 1),
                1 => any::<u64>(),
            ],
            0..60,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn every_count_is_positive_and_each_seq_is_stored_at_most_once(seqs in seqs(), last in 0u64..100) {
            let known = HashMap::from([(7, Account { last_seq: last, ..Account::default() })]);
            let mut items: Vec<_> = seqs.iter().map(|s| call(*s)).collect();
            let plan = plan("db", &mut items, &known);
            let stored: Vec<i64> = plan.rows.iter().filter(|r| r.kind == "call").map(|r| r.seq).collect();
            prop_assert_eq!(stored.len() as u64 + plan.duplicates, seqs.len() as u64);
            for row in &plan.rows {
                if let Some(count) = row.gap_count {
                    prop_assert!(count > 0, "{:?}", row);
                }
            }
            // Stored calls are exactly the seqs that rose above all before.
            let mut high = last;
            let mut expected = 0u64;
            let mut jumped = 0u64;
            for s in &seqs {
                if *s > high || (high == 0 && *s == 0) {
                    jumped = jumped.saturating_add(s.saturating_sub(high).saturating_sub(1));
                    high = high.max(*s);
                    expected += 1;
                }
            }
            prop_assert_eq!(stored.len() as u64, expected);
            prop_assert_eq!(plan.events_in_gaps, jumped);
            prop_assert_eq!(plan.cursors.get(&7).map_or(last, |a| a.last_seq), high);
        }
    }
}
