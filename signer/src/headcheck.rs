//! The one check of a signed head against a journal, and its messages:
//! used by `egress-collector verify` (the database), `egress-verify` (an
//! export), the collector's export and the signer's own continuity check
//! before it signs again. A head is good when its signatures are valid for
//! the key the verifier trusts and the row it names is there with the hash
//! it signed; a head beyond the journal's end means rows were removed
//! after it was signed.

use crate::export::HeadEntry;
use crate::head::{ed25519_valid, head_input, hmac_valid, SignedHead};

/// Where the row a head names stands in the journal being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAt {
    /// Present, with this stored `row_hash`.
    Hash([u8; 32]),
    /// Before the first remaining row: pruned by retention, uncheckable.
    Pruned,
    /// After the last row, which is `last` (0: empty journal).
    Beyond { last: i64 },
    /// Inside the range, yet absent.
    Missing,
}

/// The fields of a head that its check reads.
#[derive(Debug, Clone, Copy)]
pub struct HeadView<'a> {
    pub database: &'a str,
    pub seq: i64,
    pub row_hash: &'a [u8; 32],
    pub signed_at_us: i64,
    pub hmac: &'a [u8; 32],
    pub signature: &'a [u8; 64],
}

impl<'a> HeadView<'a> {
    pub fn of(head: &'a SignedHead) -> Self {
        HeadView {
            database: &head.database,
            seq: head.seq,
            row_hash: &head.row_hash,
            signed_at_us: head.signed_at_us,
            hmac: &head.hmac,
            signature: &head.signature,
        }
    }

    /// An export's head entry, signed for the export's database.
    pub fn of_entry(database: &'a str, head: &'a HeadEntry) -> Self {
        HeadView {
            database,
            seq: head.seq,
            row_hash: &head.row_hash,
            signed_at_us: head.signed_at_us,
            hmac: &head.hmac,
            signature: &head.signature,
        }
    }
}

pub(crate) fn short(bytes: &[u8]) -> String {
    hex::encode(&bytes[..bytes.len().min(8)])
}

/// The signatures alone: is this head what the holder of `public_key`
/// (and of `hmac_key`, when given) signed for `database`?
pub fn signature_problem(
    database: &str,
    head: &HeadView<'_>,
    public_key: &[u8; 32],
    hmac_key: Option<&[u8; 32]>,
) -> Option<String> {
    if head.database != database {
        return Some(format!("it was signed for database {:?}", head.database));
    }
    let input = head_input(head.database, head.seq, head.row_hash, head.signed_at_us);
    if !ed25519_valid(public_key, &input, head.signature) {
        return Some(format!(
            "its Ed25519 signature is not valid for public key {}…: forged or altered",
            short(public_key)
        ));
    }
    if hmac_key.is_some_and(|k| !hmac_valid(k, &input, head.hmac)) {
        return Some("its HMAC is not valid for the given key: forged or altered".to_owned());
    }
    None
}

/// The row alone: does the journal still hold, at the head's seq, the hash
/// that was signed?
pub fn row_problem(head: &HeadView<'_>, row: RowAt) -> Option<String> {
    match row {
        RowAt::Pruned => None,
        RowAt::Hash(hash) if &hash == head.row_hash => None,
        RowAt::Hash(hash) => Some(format!(
            "the log was altered at or before seq {} after that head was signed: row {} has hash {}…, the head signed {}…",
            head.seq,
            head.seq,
            short(&hash),
            short(head.row_hash)
        )),
        RowAt::Beyond { last } => Some(format!(
            "the log was truncated or altered after signed head seq {}: that head was signed, but the journal ends at seq {last}",
            head.seq
        )),
        RowAt::Missing => Some(format!("the journal has no row seq {}", head.seq)),
    }
}

/// A head against a journal: its signatures first (a head that does not
/// verify proves nothing about any row), then its row.
pub fn head_problem(
    database: &str,
    head: &HeadView<'_>,
    public_key: &[u8; 32],
    hmac_key: Option<&[u8; 32]>,
    row: RowAt,
) -> Option<String> {
    signature_problem(database, head, public_key, hmac_key).or_else(|| row_problem(head, row))
}

/// Where a row stands in a journal whose rows run `first..=last` (`None`:
/// empty), given the stored hash of a row in that range.
pub fn row_at(
    seq: i64,
    rows: Option<(i64, i64)>,
    hash_at: impl FnOnce(i64) -> Option<[u8; 32]>,
) -> RowAt {
    let (first, last) = rows.unwrap_or((1, 0));
    if seq > last {
        RowAt::Beyond { last }
    } else if seq < first {
        RowAt::Pruned
    } else {
        hash_at(seq).map_or(RowAt::Missing, RowAt::Hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::sign_head;
    use crate::keys::Keys;

    fn keys() -> Keys {
        Keys::from_secrets([1; 32], [2; 32])
    }

    #[test]
    fn a_good_head_over_its_row_passes() {
        let k = keys();
        let head = sign_head(&k, "db", 3, &[7; 32], 3);
        let view = HeadView::of(&head);
        let problem = head_problem(
            "db",
            &view,
            &k.public_key(),
            Some(k.hmac_key()),
            RowAt::Hash([7; 32]),
        );
        assert_eq!(problem, None);
        assert_eq!(
            head_problem("db", &view, &k.public_key(), None, RowAt::Pruned),
            None
        );
    }

    #[test]
    fn a_head_signed_by_another_key_is_forged() {
        let k = keys();
        let other = Keys::from_secrets([3; 32], [4; 32]);
        let head = sign_head(&other, "db", 3, &[7; 32], 3);
        let problem = head_problem(
            "db",
            &HeadView::of(&head),
            &k.public_key(),
            None,
            RowAt::Hash([7; 32]),
        )
        .unwrap();
        assert!(problem.contains("forged or altered"), "{problem}");
    }

    #[test]
    fn a_rewritten_row_and_a_truncated_journal_are_named() {
        let k = keys();
        let head = sign_head(&k, "db", 3, &[7; 32], 3);
        let view = HeadView::of(&head);
        let altered =
            head_problem("db", &view, &k.public_key(), None, RowAt::Hash([8; 32])).unwrap();
        assert!(altered.contains("altered at or before seq 3"), "{altered}");
        let cut = head_problem(
            "db",
            &view,
            &k.public_key(),
            None,
            RowAt::Beyond { last: 2 },
        )
        .unwrap();
        assert!(
            cut.contains("truncated or altered after signed head seq 3"),
            "{cut}"
        );
        assert!(signature_problem("other", &view, &k.public_key(), None)
            .unwrap()
            .contains("signed for database"));
    }

    #[test]
    fn rows_are_placed_against_the_journal() {
        let at = |_| Some([1; 32]);
        assert_eq!(row_at(5, Some((1, 4)), at), RowAt::Beyond { last: 4 });
        assert_eq!(row_at(1, None, at), RowAt::Beyond { last: 0 });
        assert_eq!(row_at(2, Some((3, 9)), at), RowAt::Pruned);
        assert_eq!(row_at(4, Some((3, 9)), at), RowAt::Hash([1; 32]));
        assert_eq!(row_at(4, Some((3, 9)), |_| None), RowAt::Missing);
    }
}
