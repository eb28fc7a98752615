//! Chain verification: recomputes every row's hash from its columns and
//! checks each link, naming the first position where the chain breaks; then
//! checks every signed head against the chain, which catches what a chain
//! alone cannot: a journal truncated after a signed head.
//!
//! After retention pruned the oldest rows, the chain starts from the first
//! remaining row's `prev_hash` (the anchor). An anchor proves nothing by
//! itself (anyone who deleted a prefix would leave one), so it is accepted
//! only if a `vacuum` entry further on, itself inside the verified chain,
//! recorded removing exactly the rows before it and that same anchor.

use std::collections::BTreeMap;

use egress_proto::GENESIS_HASH;
use egress_signer::headcheck::{self, HeadView, RowAt};
use egress_signer::{Keyring, SignedHead};
use egress_vacuum::VacuumDetail;

use crate::db::store::StoredRow;

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub reason: String,
}

/// Feed rows in `seq` order; stops at the first break.
#[derive(Debug)]
pub struct ChainCheck {
    database: Option<String>,
    expected_seq: i64,
    prev_hash: Vec<u8>,
    pub rows: u64,
    pub broken: Option<Break>,
    /// Signed heads by seq, checked as their row passes.
    heads: BTreeMap<i64, Vec<SignedHead>>,
    /// The public keys heads must be signed with, when the auditor pins a
    /// keyring (one key per collector that signs this database).
    keyring: Option<Keyring>,
    pub heads_checked: usize,
    /// Heads checked per signer: (collector, key id) → heads.
    pub signers: BTreeMap<(String, String), usize>,
    /// The first row's seq.
    pub first_seq: Option<i64>,
    /// Set when the journal starts after seq 1: where, and from what hash.
    pub anchor: Option<Anchor>,
    /// The `last_seq` of every vacuum entry passed, to name what a missing
    /// prefix lacks.
    vacuum_ends: Vec<i64>,
    /// A key was pinned, the journal has rows, and no head signed with that
    /// key matched any of them: nothing is proven (`verify` exits 1).
    pub nothing_signed: bool,
    /// Where the rollups contradict the journal (set by the caller, which
    /// reads them).
    pub rollups: Option<String>,
}

/// Where a pruned journal starts, and the vacuum entry that vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub first_seq: i64,
    pub prev_hash: Vec<u8>,
    /// The seq of the vacuum entry that recorded removing the rows before
    /// `first_seq` with this anchor, once seen.
    pub vouched_by: Option<i64>,
    /// That entry's vacuum ran with a clock set by its caller.
    pub clock_override: bool,
    /// A vacuum entry for this range recorded another anchor (its seq).
    pub contradicted_by: Option<i64>,
}

impl ChainCheck {
    /// `database`: the name every row must carry, when known.
    pub fn new(database: Option<String>) -> Self {
        ChainCheck {
            database,
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_vec(),
            rows: 0,
            broken: None,
            heads: BTreeMap::new(),
            keyring: None,
            heads_checked: 0,
            signers: BTreeMap::new(),
            first_seq: None,
            anchor: None,
            vacuum_ends: Vec::new(),
            nothing_signed: false,
            rollups: None,
        }
    }

    /// Signed heads to check (from `egress.signed_head`), and the keys
    /// they must be signed with if the auditor pinned a keyring.
    pub fn with_heads(mut self, heads: Vec<SignedHead>, keyring: Option<Keyring>) -> Self {
        for head in heads {
            self.heads.entry(head.seq).or_default().push(head);
        }
        self.keyring = keyring;
        self
    }

    /// After the last row: a signed head beyond the journal's end means rows
    /// were removed after it was signed.
    pub fn finish(&mut self) {
        if self.broken.is_some() {
            return;
        }
        if let Some(anchor) = self.anchor.as_ref().filter(|a| a.vouched_by.is_none()) {
            let first = anchor.first_seq;
            self.broken = Some(match anchor.contradicted_by {
                Some(entry) => Break {
                    seq: first,
                    reason: format!(
                        "its prev_hash is not the anchor that the vacuum entry at seq {entry} \
                         recorded for it: rows before it were replaced"
                    ),
                },
                None => {
                    // The rows after the last vacuum that did happen.
                    let from = self
                        .vacuum_ends
                        .iter()
                        .filter(|end| **end < first)
                        .max()
                        .map_or(1, |end| end + 1);
                    Break {
                        seq: from,
                        reason: format!(
                            "rows {from} to {} are missing: the journal starts at seq {first} \
                             and no vacuum entry records their removal",
                            first - 1
                        ),
                    }
                }
            });
            return;
        }
        let end = self.head_seq();
        let beyond = self
            .heads
            .range(end + 1..)
            .flat_map(|(_, heads)| heads)
            .find_map(|head| self.head_problem(head, RowAt::Beyond { last: end }));
        if let Some(reason) = beyond {
            self.broken = Some(Break {
                seq: end + 1,
                reason,
            });
            return;
        }
        // With a pinned keyring, a journal that no head signed with one of
        // its keys covers proves nothing: say so rather than OK. (Every
        // head is checked against the keyring, so any head checked counts.)
        if self.keyring.is_some() && self.rows > 0 && self.heads_checked == 0 {
            self.nothing_signed = true;
        }
    }

    /// Checks the heads signed at `seq` against the row that is there, with
    /// the rules every verifier shares (`egress_signer::headcheck`).
    fn check_heads(&mut self, seq: i64, row_hash: &[u8]) -> Option<String> {
        let row = <[u8; 32]>::try_from(row_hash).map_or(RowAt::Missing, RowAt::Hash);
        let problem = self
            .heads
            .get(&seq)
            .into_iter()
            .flatten()
            .find_map(|head| self.head_problem(head, row));
        if problem.is_none() {
            for head in self.heads.get(&seq).into_iter().flatten() {
                self.heads_checked += 1;
                let signer = (
                    head.collector.clone().unwrap_or_default(),
                    egress_signer::key_id(&head.public_key),
                );
                *self.signers.entry(signer).or_default() += 1;
            }
        }
        problem
    }

    /// One head against its row: signed with a key of the pinned keyring
    /// (else with the key it carries, which shows alteration but not who
    /// signed), for this database, over the hash the row still has.
    fn head_problem(&self, head: &SignedHead, row: RowAt) -> Option<String> {
        let database = self.database.as_deref().unwrap_or(&head.database);
        self.keyring
            .as_ref()
            .and_then(|ring| ring.outside(&head.public_key, head.collector.as_deref()))
            .or_else(|| {
                headcheck::head_problem(database, &HeadView::of(head), &head.public_key, None, row)
            })
            .map(|problem| format!("the head signed at seq {}: {problem}", head.seq))
    }

    /// Whether a keyring was pinned.
    pub fn keyring_pinned(&self) -> bool {
        self.keyring.is_some()
    }

    /// Signed heads below the anchor: their rows were pruned, so they can no
    /// longer be checked.
    pub fn heads_before_anchor(&self) -> usize {
        match &self.anchor {
            Some(anchor) => self
                .heads
                .range(..anchor.first_seq)
                .map(|(_, h)| h.len())
                .sum(),
            None => 0,
        }
    }

    /// A journal that starts after seq 1 starts from its first row's
    /// prev_hash, provisionally: `finish` requires a vacuum entry for it.
    fn start(&mut self, row: &RowFacts) {
        let seq = row.seq;
        self.first_seq = Some(seq);
        if seq > 1 {
            self.expected_seq = seq;
            self.prev_hash = row.prev_hash.to_vec();
            self.anchor = Some(Anchor {
                first_seq: seq,
                prev_hash: row.prev_hash.to_vec(),
                vouched_by: None,
                clock_override: false,
                contradicted_by: None,
            });
        }
    }

    /// A verified vacuum entry: does it vouch for the anchor?
    fn saw_vacuum(&mut self, seq: i64, detail: &VacuumDetail) {
        self.vacuum_ends.push(detail.last_seq);
        if let Some(anchor) = self.anchor.as_mut() {
            if detail.last_seq + 1 == anchor.first_seq && anchor.vouched_by.is_none() {
                if detail
                    .anchor_bytes()
                    .is_some_and(|a| a.as_slice() == anchor.prev_hash)
                {
                    anchor.vouched_by = Some(seq);
                    anchor.clock_override = detail.clock_override;
                } else {
                    anchor.contradicted_by.get_or_insert(seq);
                }
            }
        }
    }

    /// Checks one row; false once the chain is broken.
    pub fn feed(&mut self, stored: &StoredRow) -> bool {
        self.feed_facts(&RowFacts {
            seq: stored.row.seq,
            prev_hash: &stored.prev_hash,
            row_hash: &stored.row_hash,
            content_ok: content_matches(stored),
            database: &stored.row.database,
            kind: &stored.row.kind,
            detail: stored.row.detail.as_deref(),
        })
    }

    /// Checks one row given what the check needs of it; false once the
    /// chain is broken.
    pub fn feed_facts(&mut self, row: &RowFacts) -> bool {
        if self.first_seq.is_none() {
            self.start(row);
        }
        let seq = row.seq;
        let expected = self.expected_seq;
        let reason = if seq > expected {
            Some(format!(
                "row {expected} is missing: the journal jumps from seq {} to seq {seq}",
                expected - 1
            ))
        } else if seq < expected {
            Some(format!(
                "seq {seq} appears again after seq {}",
                expected - 1
            ))
        } else if row.prev_hash != self.prev_hash {
            Some(format!(
                "its prev_hash does not match the row_hash of seq {}",
                expected - 1
            ))
        } else if !row.content_ok {
            Some("its contents do not match its row_hash: the row was altered".to_owned())
        } else if self.database.as_ref().is_some_and(|d| d != row.database) {
            Some(format!(
                "it belongs to database {:?}, not this one",
                row.database
            ))
        } else {
            self.check_heads(seq, row.row_hash)
        };
        if let Some(reason) = reason {
            self.broken = Some(Break {
                seq: expected.min(seq.max(1)),
                reason,
            });
            return false;
        }
        if let Some(detail) = VacuumDetail::parse_parts(row.kind, row.detail) {
            self.saw_vacuum(seq, &detail);
        }
        self.prev_hash.clear();
        self.prev_hash.extend_from_slice(row.row_hash);
        self.expected_seq += 1;
        self.rows += 1;
        true
    }

    pub fn head_seq(&self) -> i64 {
        self.expected_seq - 1
    }
}

/// What the check needs of one row, borrowed from wherever it was read.
#[derive(Debug)]
pub struct RowFacts<'a> {
    pub seq: i64,
    pub prev_hash: &'a [u8],
    pub row_hash: &'a [u8],
    /// `SHA-256(prev_hash ‖ canonical(row)) == row_hash`, with the row's
    /// own `prev_hash` (false if that is not 32 bytes): the chain check
    /// compares it with the previous row's hash first, so this is the hash
    /// after the previous row whenever it is consulted.
    pub content_ok: bool,
    pub database: &'a str,
    pub kind: &'a str,
    pub detail: Option<&'a str>,
}

/// Whether the row's stored hash is the hash of its columns after its own
/// `prev_hash`.
fn content_matches(stored: &StoredRow) -> bool {
    <[u8; 32]>::try_from(stored.prev_hash.as_slice())
        .is_ok_and(|prev| stored.row.hash_after(&prev).as_slice() == stored.row_hash.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::plan::chain;
    use egress_proto::JournalRow;

    fn journal(n: usize) -> Vec<StoredRow> {
        let rows = (0..n)
            .map(|i| JournalRow {
                database: "db".into(),
                kind: "call".into(),
                bytes_out: Some(i as i64),
                ..JournalRow::default()
            })
            .collect();
        chain(rows, None, "host", 1)
            .into_iter()
            .map(|c| StoredRow {
                row: c.row,
                prev_hash: c.prev_hash.to_vec(),
                row_hash: c.row_hash.to_vec(),
            })
            .collect()
    }

    fn check(rows: &[StoredRow]) -> Option<Break> {
        check_with(rows, vec![])
    }

    fn check_with(rows: &[StoredRow], heads: Vec<SignedHead>) -> Option<Break> {
        let mut check = ChainCheck::new(Some("db".into())).with_heads(heads, None);
        for row in rows {
            if !check.feed(row) {
                break;
            }
        }
        check.finish();
        check.broken
    }

    fn head(rows: &[StoredRow], seq: usize, secret: u8) -> SignedHead {
        let keys = egress_signer::Keys::from_secrets([secret; 32], [secret; 32]);
        let hash: [u8; 32] = rows[seq - 1].row_hash.clone().try_into().unwrap();
        egress_signer::sign_head(&keys, "db", seq as i64, &hash, 1)
    }

    #[test]
    fn signed_heads_that_match_pass() {
        let rows = journal(5);
        let heads = vec![head(&rows, 2, 1), head(&rows, 5, 1)];
        assert_eq!(check_with(&rows, heads), None);
    }

    #[test]
    fn a_truncated_tail_is_caught_by_the_signed_head() {
        let mut rows = journal(5);
        let heads = vec![head(&rows, 5, 1)];
        rows.truncate(3);
        let broken = check_with(&rows, heads).unwrap();
        assert_eq!(broken.seq, 4);
        assert!(broken.reason.contains("truncated"), "{}", broken.reason);
    }

    #[test]
    fn a_forged_head_is_caught() {
        let rows = journal(3);
        let mut forged = head(&rows, 2, 1);
        forged.row_hash[0] ^= 1;
        let broken = check_with(&rows, vec![forged]).unwrap();
        assert!(
            broken.reason.contains("forged or altered"),
            "{}",
            broken.reason
        );
    }

    #[test]
    fn a_clean_chain_passes() {
        assert_eq!(check(&journal(5)), None);
    }

    #[test]
    fn an_edited_value_names_its_row() {
        let mut rows = journal(5);
        rows[2].row.bytes_out = Some(999);
        assert_eq!(check(&rows).unwrap().seq, 3);
    }

    #[test]
    fn a_deleted_row_names_the_missing_position() {
        let mut rows = journal(5);
        rows.remove(1);
        let broken = check(&rows).unwrap();
        assert_eq!(broken.seq, 2);
        assert!(broken.reason.contains("missing"), "{}", broken.reason);
    }

    fn stored(chained: Vec<crate::pipeline::stage::ChainedRow>) -> Vec<StoredRow> {
        chained
            .into_iter()
            .map(|c| StoredRow {
                row: c.row,
                prev_hash: c.prev_hash.to_vec(),
                row_hash: c.row_hash.to_vec(),
            })
            .collect()
    }

    /// `n` calls, then a vacuum entry recording the removal of rows
    /// `1..=removed` with `anchor` (their last row_hash unless given), then
    /// two more calls; the removed rows are gone.
    fn pruned(n: usize, removed: usize, anchor: Option<[u8; 32]>) -> Vec<StoredRow> {
        let mut rows = journal(n);
        let last = &rows[n - 1];
        let detail = VacuumDetail {
            first_seq: 1,
            last_seq: removed as i64,
            rows: removed as i64,
            anchor: hex::encode(
                anchor.unwrap_or_else(|| rows[removed - 1].row_hash.clone().try_into().unwrap()),
            ),
            cutoff_us: 0,
            retention_days: 1,
            signed_head_seq: removed as i64 + 1,
            clock_override: false,
        };
        let head = (last.row.seq, last.row_hash.clone().try_into().unwrap());
        let more = vec![
            detail.entry("db", "host", 1),
            JournalRow {
                database: "db".into(),
                kind: "call".into(),
                ..JournalRow::default()
            },
        ];
        rows.extend(stored(chain(more, Some(head), "host", 1)));
        rows.drain(..removed);
        rows
    }

    #[test]
    fn a_pruned_journal_starts_from_the_anchor_its_vacuum_entry_recorded() {
        let rows = pruned(10, 4, None);
        let keys = egress_signer::Keys::from_secrets([1; 32], [1; 32]);
        let hash: [u8; 32] = rows[6].row_hash.clone().try_into().unwrap();
        let heads = vec![egress_signer::sign_head(&keys, "db", 11, &hash, 1)];
        let mut check = ChainCheck::new(Some("db".into())).with_heads(heads, None);
        for row in &rows {
            assert!(check.feed(row), "{:?}", check.broken);
        }
        check.finish();
        assert_eq!(check.broken, None);
        let anchor = check.anchor.clone().unwrap();
        assert_eq!((anchor.first_seq, anchor.vouched_by), (5, Some(11)));
        assert_eq!(
            (check.first_seq, check.head_seq(), check.rows),
            (Some(5), 12, 8)
        );
        assert_eq!((check.heads_checked, check.heads_before_anchor()), (1, 0));
    }

    #[test]
    fn a_prefix_deleted_without_a_vacuum_entry_is_caught() {
        let mut rows = journal(6);
        rows.drain(..2);
        let broken = check(&rows).unwrap();
        assert_eq!(broken.seq, 1);
        assert!(
            broken.reason.contains("no vacuum entry"),
            "{}",
            broken.reason
        );
    }

    #[test]
    fn rows_deleted_after_a_real_vacuum_are_named_from_where_it_stopped() {
        let mut rows = pruned(10, 4, None);
        // Rows 5 and 6 go too, without an entry.
        rows.drain(..2);
        let broken = check(&rows).unwrap();
        assert_eq!(broken.seq, 5);
        assert!(broken.reason.contains("rows 5 to 6"), "{}", broken.reason);
    }

    #[test]
    fn an_anchor_other_than_the_recorded_one_is_caught() {
        let rows = pruned(10, 4, Some([9; 32]));
        let broken = check(&rows).unwrap();
        assert_eq!(broken.seq, 5);
        assert!(
            broken.reason.contains("vacuum entry at seq 11"),
            "{}",
            broken.reason
        );
    }

    #[test]
    fn signed_heads_below_the_anchor_are_counted_not_checked() {
        let full = journal(10);
        let early = head(&full, 2, 1);
        let rows = pruned(10, 4, None);
        let mut check = ChainCheck::new(Some("db".into())).with_heads(vec![early], None);
        for row in &rows {
            check.feed(row);
        }
        check.finish();
        assert_eq!(check.broken, None);
        assert_eq!((check.heads_checked, check.heads_before_anchor()), (0, 1));
    }

    #[test]
    fn a_rehashed_row_still_breaks_the_next_link() {
        let mut rows = journal(5);
        rows[1].row.bytes_out = Some(999);
        rows[1].row_hash = rows[1]
            .row
            .hash_after(&rows[0].row_hash.clone().try_into().unwrap())
            .to_vec();
        assert_eq!(check(&rows).unwrap().seq, 3);
    }
}
