//! The journal as `COPY … TO STDOUT (FORMAT binary)` data, decoded straight
//! into each row's canonical encoding (docs/JOURNAL_FORMAT.md §2) for
//! `verify`. PostgreSQL's binary integers are big-endian like the canonical
//! ones, and a text, bytes or array item is a 4-byte length then its bytes,
//! as in the canonical encoding: a row is re-encoded by copying slices, with
//! no allocation per field. The tests check it byte for byte against
//! `JournalRow::canonical` (the reference).

use egress_proto::fields::{self, column_index, Kind, SqlType, COLUMN_COUNT};
use egress_proto::journal::CANONICAL_VERSION;

use crate::db::store::{COPY_HEADER, PG_EPOCH_US};

/// The start of every binary COPY stream (then flags and the length of a
/// header extension).
const SIGNATURE: &[u8] = COPY_HEADER.split_at(11).0;

/// How each column goes into the canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// 8 bytes, big-endian, as they come.
    Int,
    /// 8 bytes of microseconds since 2000, moved to 1970.
    Time,
    /// A text or bytes value: its 4-byte length and bytes, as they come.
    Length,
    Bool,
    List,
    /// Not part of the encoding (prev_hash, row_hash).
    Skip,
}

#[derive(Debug, Clone, Copy)]
struct Column {
    encoding: Encoding,
    /// One of the five fields with no presence byte (never NULL).
    required: bool,
}

/// The columns the chain check reads besides the encoding, by position in
/// proto's `fields::COLUMNS` (`seq` is also a field, at its place).
const SEQ: usize = column_index("seq");
const PREV_HASH: usize = column_index("prev_hash");
const ROW_HASH: usize = column_index("row_hash");
const DATABASE: usize = column_index("database");
const KIND: usize = column_index("kind");
const DETAIL: usize = column_index("detail");

/// The plan for `store::columns()`, from proto's field table.
fn columns() -> &'static [Column; COLUMN_COUNT] {
    static PLAN: std::sync::OnceLock<[Column; COLUMN_COUNT]> = std::sync::OnceLock::new();
    PLAN.get_or_init(|| {
        std::array::from_fn(|i| match fields::COLUMNS[i] {
            fields::Column::Hash(_) => Column {
                encoding: Encoding::Skip,
                required: true,
            },
            fields::Column::Field(f) => Column {
                encoding: match (f.sql, f.kind) {
                    (SqlType::Timestamptz, _) => Encoding::Time,
                    (_, Kind::Int) => Encoding::Int,
                    (_, Kind::Text | Kind::Bytes) => Encoding::Length,
                    (_, Kind::Bool) => Encoding::Bool,
                    (_, Kind::List) => Encoding::List,
                },
                required: f.required,
            },
        })
    })
}

/// One row as decoded, borrowing from the COPY data.
#[derive(Debug, PartialEq, Eq)]
pub struct CopiedRow<'a> {
    pub seq: i64,
    pub prev_hash: &'a [u8],
    pub row_hash: &'a [u8],
    pub database: &'a str,
    pub kind: &'a str,
    pub detail: Option<&'a str>,
}

/// Decodes a binary COPY stream of `store::columns()`, fed in pieces of any size.
#[derive(Debug, Default)]
pub struct CopyDecoder {
    /// The start of a row cut off at the end of the previous piece.
    pending: Vec<u8>,
    header_seen: bool,
    /// The end-of-data marker was read.
    pub finished: bool,
    canonical: Vec<u8>,
}

impl CopyDecoder {
    /// Decodes every complete row of `piece` (following the pieces before
    /// it), calling `visit` with the row and its canonical encoding until it
    /// returns false. Returns whether to go on; an error names what is wrong
    /// with the data.
    pub fn feed(
        &mut self,
        piece: &[u8],
        mut visit: impl FnMut(&CopiedRow, &[u8]) -> bool,
    ) -> Result<bool, String> {
        let mut joined = std::mem::take(&mut self.pending);
        let data = if joined.is_empty() {
            piece
        } else {
            joined.extend_from_slice(piece);
            &joined
        };
        let mut at = 0;
        if !self.header_seen {
            match header_len(data)? {
                Some(len) => {
                    at = len;
                    self.header_seen = true;
                }
                None => {
                    self.pending = data.to_vec();
                    return Ok(true);
                }
            }
        }
        while !self.finished && at < data.len() {
            let mut canonical = std::mem::take(&mut self.canonical);
            let decoded = decode_row(&data[at..], &mut canonical);
            let going = match decoded {
                Ok(Some((Some(row), len))) => {
                    at += len;
                    visit(&row, &canonical)
                }
                Ok(Some((None, len))) => {
                    at += len;
                    self.finished = true;
                    true
                }
                Ok(None) => {
                    self.canonical = canonical;
                    break;
                }
                Err(e) => return Err(e),
            };
            self.canonical = canonical;
            if !going {
                return Ok(false);
            }
        }
        if self.finished {
            if at < data.len() {
                return Err("data after the end of the COPY stream".into());
            }
        } else {
            self.pending = data[at..].to_vec();
        }
        Ok(true)
    }
}

/// The header's length, or None if `data` does not hold all of it yet.
fn header_len(data: &[u8]) -> Result<Option<usize>, String> {
    let n = SIGNATURE.len();
    if data.len() < n + 8 {
        return Ok(None);
    }
    if &data[..n] != SIGNATURE {
        return Err("not a binary COPY stream".into());
    }
    // Flags (4 bytes), then the length of a header extension to skip.
    let extension = be_i32(&data[n + 4..]) as usize;
    Ok((data.len() >= n + 8 + extension).then_some(n + 8 + extension))
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// One row from the start of `data` into `out`: Ok(None) if `data` ends
/// before the row does; Ok(Some((None, len))) at the end-of-data marker.
#[allow(clippy::type_complexity)]
fn decode_row<'a>(
    data: &'a [u8],
    out: &mut Vec<u8>,
) -> Result<Option<(Option<CopiedRow<'a>>, usize)>, String> {
    let Some(count) = data.get(..2) else {
        return Ok(None);
    };
    let count = i16::from_be_bytes([count[0], count[1]]);
    if count == -1 {
        return Ok(Some((None, 2)));
    }
    let plan = columns();
    if count as usize != plan.len() {
        return Err(format!("a row of {count} columns, not {}", plan.len()));
    }
    out.clear();
    out.push(CANONICAL_VERSION);
    // The fields the chain check reads besides the encoding.
    let mut kept: [Option<&[u8]>; 5] = [None; 5];
    let mut seq = 0;
    let mut at = 2;
    for (i, column) in plan.iter().enumerate() {
        let Some(len) = data.get(at..at + 4).map(be_i32) else {
            return Ok(None);
        };
        let value = if len >= 0 {
            let Some(value) = data.get(at + 4..at + 4 + len as usize) else {
                return Ok(None);
            };
            Some(value)
        } else if len == -1 {
            None
        } else {
            return Err(format!("a field of length {len}"));
        };
        let field = &data[at..at + 4 + value.map_or(0, <[u8]>::len)];
        at += field.len();
        if i == SEQ {
            match value {
                Some(v) if v.len() == 8 => seq = be_i64(v),
                _ => return Err("a row without a valid seq".into()),
            }
        }
        let slot = match i {
            PREV_HASH => Some(0),
            ROW_HASH => Some(1),
            DATABASE => Some(2),
            KIND => Some(3),
            DETAIL => Some(4),
            _ => None,
        };
        if let Some(slot) = slot {
            kept[slot] = value;
        }
        if column.encoding == Encoding::Skip {
            continue;
        }
        match (value, column.required) {
            (None, true) => return Err(format!("row seq {seq}: column {i} is NULL")),
            (None, false) => {
                out.push(0);
                continue;
            }
            (Some(_), false) => out.push(1),
            (Some(_), true) => {}
        }
        encode(column.encoding, field, out)
            .map_err(|e| format!("row seq {seq}, column {i}: {e}"))?;
    }
    let text = |v: Option<&'a [u8]>| -> Result<Option<&'a str>, String> {
        v.map(std::str::from_utf8)
            .transpose()
            .map_err(|_| format!("row seq {seq}: a text column is not UTF-8"))
    };
    let hash = |v: Option<&'a [u8]>, what: &str| -> Result<&'a [u8], String> {
        v.ok_or_else(|| format!("row seq {seq}: {what} is NULL"))
    };
    let row = CopiedRow {
        seq,
        prev_hash: hash(kept[0], "prev_hash")?,
        row_hash: hash(kept[1], "row_hash")?,
        database: text(kept[2])?.unwrap_or_default(),
        kind: text(kept[3])?.unwrap_or_default(),
        detail: text(kept[4])?,
    };
    Ok(Some((Some(row), at)))
}

/// One non-NULL field (its 4-byte length, then its value) in its canonical
/// encoding.
fn encode(encoding: Encoding, field: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let value = &field[4..];
    let fixed = |n: usize| {
        if value.len() == n {
            Ok(())
        } else {
            Err(format!("{} bytes where {n} were expected", value.len()))
        }
    };
    match encoding {
        Encoding::Int => {
            fixed(8)?;
            out.extend_from_slice(value);
        }
        Encoding::Time => {
            fixed(8)?;
            out.extend_from_slice(&be_i64(value).wrapping_add(PG_EPOCH_US).to_be_bytes());
        }
        Encoding::Bool => {
            fixed(1)?;
            out.push(u8::from(value[0] != 0));
        }
        // A non-negative i32 length is the same 4 bytes as the u32 one.
        Encoding::Length => out.extend_from_slice(field),
        Encoding::List => list(value, out)?,
        Encoding::Skip => {}
    }
    Ok(())
}

/// A one-dimensional text array: its item count as an integer, then the
/// items, each already a 4-byte length and its bytes in the COPY data.
fn list(value: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let short = || "a truncated array".to_owned();
    let header = value.get(..12).ok_or_else(short)?;
    let dimensions = be_i32(header);
    let items = match dimensions {
        0 => 0,
        1 => be_i32(value.get(12..16).ok_or_else(short)?),
        _ => return Err(format!("an array of {dimensions} dimensions")),
    };
    let start = if dimensions == 0 { 12 } else { 20 };
    let body = value.get(start..).ok_or_else(short)?;
    let mut at = 0;
    for _ in 0..items {
        let len = be_i32(body.get(at..at + 4).ok_or_else(short)?);
        if len < 0 {
            return Err("a NULL array item".into());
        }
        at += 4 + len as usize;
    }
    if at != body.len() || items < 0 {
        return Err("an array whose items do not fill it".into());
    }
    out.extend_from_slice(&i64::from(items).to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::store::encode_row;
    use crate::pipeline::stage::ChainedRow;
    use egress_proto::JournalRow;

    /// The rows of `proto/vectors/journal_chain.json` with their canonical
    /// encodings (the arbiter), and one with what the vectors lack, with the
    /// reference's encoding: negative numbers, a time before 1970, an empty
    /// text and list, non-ASCII text.
    fn rows() -> Vec<(ChainedRow, Vec<u8>)> {
        let vectors: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../../proto/vectors/journal_chain.json"))
                .unwrap();
        let mut rows: Vec<(JournalRow, Vec<u8>)> = vectors
            .iter()
            .map(|v| {
                let canonical = hex::decode(v["canonical_hex"].as_str().unwrap()).unwrap();
                (serde_json::from_value(v["row"].clone()).unwrap(), canonical)
            })
            .collect();
        let edges = JournalRow {
            seq: 4,
            worker_id: Some(-1),
            started_at_us: Some(-5),
            path: Some(String::new()),
            header_names: Some(vec![]),
            stack: Some(vec!["ünïcode.py:3 h".into()]),
            ..rows[0].0.clone()
        };
        let canonical = edges.canonical();
        rows.push((edges, canonical));
        let every = every_field();
        let canonical = every.canonical();
        rows.push((every, canonical));
        rows.into_iter()
            .map(|(row, canonical)| {
                let (prev_hash, row_hash) = ([row.seq as u8; 32], [row.seq as u8 + 1; 32]);
                let chained = ChainedRow {
                    row,
                    prev_hash,
                    row_hash,
                };
                (chained, canonical)
            })
            .collect()
    }

    /// A row with every field set, each to a value no other field has,
    /// written from proto's field table: a field that `encode_row` writes
    /// out of place or as another kind changes its canonical encoding.
    fn every_field() -> JournalRow {
        let row: serde_json::Map<String, serde_json::Value> = fields::FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let value = match f.kind {
                    Kind::Int => serde_json::json!(1000 + i),
                    Kind::Text => serde_json::json!(format!("{}-{i}", f.name)),
                    Kind::List => serde_json::json!([f.name, i.to_string()]),
                    Kind::Bool => serde_json::json!([true, false, false][i % 3]),
                    Kind::Bytes => serde_json::json!([i, 255]),
                };
                (f.name.to_string(), value)
            })
            .collect();
        serde_json::from_value(row.into()).unwrap()
    }

    /// A binary COPY stream of `rows` as the collector writes one for
    /// PostgreSQL (the same format comes back), with a header extension.
    fn stream(rows: &[&ChainedRow]) -> Vec<u8> {
        let mut data = bytes::BytesMut::new();
        data.extend_from_slice(&COPY_HEADER[..15]);
        data.extend_from_slice(&4i32.to_be_bytes());
        data.extend_from_slice(b"ext!");
        for row in rows {
            encode_row(&mut data, row);
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        data.to_vec()
    }

    #[test]
    fn rows_are_encoded_as_the_vectors_and_the_reference_encode_them() {
        let rows = rows();
        let data = stream(&rows.iter().map(|(r, _)| r).collect::<Vec<_>>());
        // Fed whole, and a byte at a time.
        for piece in [data.len(), 1] {
            let mut decoder = CopyDecoder::default();
            let mut seen = Vec::new();
            for chunk in data.chunks(piece) {
                let going = decoder
                    .feed(chunk, |row, canonical| {
                        seen.push((row.seq, row.row_hash.to_vec(), canonical.to_vec()));
                        true
                    })
                    .unwrap();
                assert!(going);
            }
            assert!(decoder.finished);
            let expected: Vec<_> = rows
                .iter()
                .map(|(r, canonical)| (r.row.seq, r.row_hash.to_vec(), canonical.clone()))
                .collect();
            assert_eq!(seen, expected);
        }
    }

    #[test]
    fn what_the_reference_could_not_read_is_refused() {
        let rows = rows();
        let mut data = stream(&[&rows[0].0]);
        // Column 4 (kind, "call") becomes NULL: its length -1, its 4 bytes gone.
        let at = 23 + 2 + (4 + 8) + 2 * (4 + 32) + (4 + "prod_db".len());
        assert_eq!(&data[at..at + 8], b"\0\0\0\x04call");
        data.splice(at..at + 8, (-1i32).to_be_bytes());
        let err = CopyDecoder::default().feed(&data, |_, _| true).unwrap_err();
        assert!(err.contains("column 4 is NULL"), "{err}");
        assert!(CopyDecoder::default()
            .feed(b"PGCOPY\nnot a binary COPY stream", |_, _| true)
            .is_err());
    }
}
