//! What checking an export's rows leaves of each: its seq, its hashes and
//! whether its content and database hold, filled in by the serde reader
//! (`rowcheck`), the fast scanner (`scan`) or a row held in memory.

use crate::export::ExportRow;

/// One row reduced to what the chain check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowCheck {
    pub seq: i64,
    pub prev_hash: [u8; 32],
    pub row_hash: [u8; 32],
    /// `SHA-256(prev_hash ‖ canonical(row)) == row_hash`.
    pub content_ok: bool,
    /// Same `database` as the first row of the file.
    pub same_database: bool,
}

/// The rows of a file, reduced.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CheckedRows {
    pub rows: Vec<RowCheck>,
    pub first_database: Option<String>,
}

impl CheckedRows {
    /// A row held in memory, hashed with the reference encoder.
    pub fn push_row(&mut self, row: &ExportRow) {
        let content_ok = row.row.hash_after(&row.prev_hash) == row.row_hash;
        self.push(
            &row.row.database,
            row.row.seq,
            row.prev_hash,
            row.row_hash,
            content_ok,
        );
    }

    pub fn push(
        &mut self,
        database: &str,
        seq: i64,
        prev_hash: [u8; 32],
        row_hash: [u8; 32],
        content_ok: bool,
    ) {
        let first = self
            .first_database
            .get_or_insert_with(|| database.to_owned());
        let same_database = first == database;
        self.rows.push(RowCheck {
            seq,
            prev_hash,
            row_hash,
            content_ok,
            same_database,
        });
    }

    /// Appends the rows of a later part of the same file.
    pub fn extend(&mut self, other: CheckedRows) {
        let Some(theirs) = other.first_database else {
            return;
        };
        let first = self.first_database.get_or_insert_with(|| theirs.clone());
        let same = *first == theirs;
        self.rows.extend(other.rows.into_iter().map(|mut r| {
            r.same_database &= same;
            r
        }));
    }

    /// The row at `seq`: where it should be, else the first one carrying it.
    pub fn at(&self, from: i64, seq: i64) -> Option<&RowCheck> {
        let direct = usize::try_from(seq.wrapping_sub(from))
            .ok()
            .and_then(|i| self.rows.get(i))
            .filter(|r| r.seq == seq);
        direct.or_else(|| self.rows.iter().find(|r| r.seq == seq))
    }
}
