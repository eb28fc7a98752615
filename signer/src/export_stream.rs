//! An export file written as its rows come, for journals too large to hold:
//! the same bytes as `build_export(..).write_json(..)` (the reference), with
//! only each row's hash kept (32 bytes) until the end. That works because
//! everything before the rows (range, anchor, heads) is decided before the
//! first row is read, and everything that depends on all rows (the digest and
//! its signatures) is written after the last one.

use std::io::Write;

use crate::export::{
    export_signatures, write_closing, write_opening, write_row, ExportFile, ExportRow,
};
use crate::keys::Keys;

/// An export being written: `start`, then `row` for each row in seq order,
/// then `finish`. Each call writes to the `out` it is given, so that the
/// caller can send what it wrote before the next call.
#[derive(Debug)]
pub struct ExportStream {
    header: ExportFile<()>,
    /// The digest input needs the number of rows before the hashes, so the
    /// hashes wait here until the last row.
    row_hashes: Vec<[u8; 32]>,
}

impl ExportStream {
    /// Writes the file up to its rows. `header`: from `export_header`.
    pub fn start(header: ExportFile<()>, out: &mut impl Write) -> std::io::Result<ExportStream> {
        write_opening(&header, out)?;
        Ok(ExportStream {
            header,
            row_hashes: Vec::new(),
        })
    }

    /// Writes the next row.
    pub fn row(&mut self, row: &ExportRow, out: &mut impl Write) -> std::io::Result<()> {
        write_row(out, self.row_hashes.len(), row)?;
        self.row_hashes.push(row.row_hash);
        Ok(())
    }

    /// The rows written so far.
    pub fn rows(&self) -> usize {
        self.row_hashes.len()
    }

    /// Signs what was written and writes the end of the file; returns the
    /// file's fields (without its rows) as written.
    pub fn finish(mut self, keys: &Keys, out: &mut impl Write) -> std::io::Result<ExportFile<()>> {
        self.header.public_key = keys.public_key();
        let (digest, hmac, signature) =
            export_signatures(&self.header, self.row_hashes.iter(), keys);
        (self.header.digest, self.header.hmac, self.header.signature) = (digest, hmac, signature);
        write_closing(&self.header, self.row_hashes.len(), out)?;
        Ok(self.header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{build_export, export_header, RowBounds};
    use crate::head::{sign_head, SignedHead};
    use egress_proto::JournalRow;

    type Row = (JournalRow, [u8; 32], [u8; 32]);
    /// A case: its name, rows, heads, `from` and `to`.
    type Case<'a> = (&'a str, &'a [Row], &'a [SignedHead], i64, Option<i64>);

    fn keys() -> Keys {
        Keys::from_secrets([0x4b; 32], *b"egress-audit test vector seed 01")
    }

    /// The rows of `proto/vectors/journal_chain.json` (a call, a gap, a
    /// config change), then rows with every optional field, with none, and
    /// with non-ASCII and escaped text, chained by fake hashes (the writer
    /// does not check the chain).
    fn rows() -> Vec<Row> {
        let vectors: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../proto/vectors/journal_chain.json")).unwrap();
        let mut rows: Vec<JournalRow> = vectors
            .iter()
            .map(|v| serde_json::from_value(v["row"].clone()).unwrap())
            .collect();
        let call = rows[0].clone();
        rows.push(JournalRow {
            seq: 4,
            component: Some("c".into()),
            class: Some("vendor".into()),
            gap_count: Some(1),
            gap_reason: Some("r".into()),
            detail: Some("d".into()),
            worker_id: Some(-1),
            started_at_us: Some(-5),
            fingerprint: Some(vec![0, 1, 0xfe]),
            ..call.clone()
        });
        rows.push(JournalRow {
            seq: 5,
            database: call.database.clone(),
            kind: "gap".into(),
            recorded_at_us: call.recorded_at_us,
            collector: call.collector.clone(),
            ..JournalRow::default()
        });
        rows.push(JournalRow {
            seq: 6,
            path: Some("/ünïcode/\"quoted\"\\\n\u{1}/日本".into()),
            header_names: Some(vec![]),
            stack: Some(vec!["ünïcode.py:3 h".into(), String::new()]),
            ..call
        });
        rows.into_iter()
            .map(|row| {
                let (prev, hash) = ([row.seq as u8 - 1; 32], [row.seq as u8; 32]);
                (row, prev, hash)
            })
            .collect()
    }

    fn head(seq: i64, at: i64) -> SignedHead {
        sign_head(&keys(), "prod_db", seq, &[seq as u8; 32], at)
    }

    /// What `ExportStream` writes for `rows`, with the header the collector
    /// would decide from the same rows.
    fn streamed(rows: &[Row], heads: &[SignedHead], from: i64, to: Option<i64>) -> String {
        let bounds = rows.first().zip(rows.last()).map(|(f, l)| RowBounds {
            first: f.0.seq,
            last: l.0.seq,
            anchor: f.1,
        });
        let header = export_header("prod_db", bounds, heads, &keys(), 77, from, to);
        let mut out = Vec::new();
        let mut stream = ExportStream::start(header, &mut out).unwrap();
        for (row, prev_hash, row_hash) in rows {
            let row = ExportRow {
                row: row.clone(),
                prev_hash: *prev_hash,
                row_hash: *row_hash,
            };
            stream.row(&row, &mut out).unwrap();
        }
        assert_eq!(stream.rows(), rows.len());
        stream.finish(&keys(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_the_bytes_of_the_reference() {
        let rows = rows();
        let heads = [head(2, 10), head(3, 20), head(3, 15), head(9, 30)];
        let cases: [Case; 8] = [
            ("empty journal", &[], &[], 1, None),
            ("empty range after the heads", &[], &heads, 10, None),
            ("one row, no head", &rows[..1], &[], 1, None),
            ("one row, heads out of range", &rows[..1], &heads, 1, None),
            (
                "every shape of row, heads in and out",
                &rows,
                &heads,
                1,
                None,
            ),
            ("to before the end", &rows[..3], &heads, 1, Some(3)),
            ("to after the end", &rows, &heads, 1, Some(100)),
            ("from after the start", &rows[2..], &heads[..2], 3, None),
        ];
        for (name, rows, heads, from, to) in cases {
            let reference = build_export("prod_db", rows, heads, &keys(), 77, from, to).to_json();
            assert_eq!(streamed(rows, heads, from, to), reference, "{name}");
        }
    }
}
