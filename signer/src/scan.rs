//! A hand-written reader of export rows, for speed. It reads rows as the
//! collector writes them and either yields exactly what serde would read from
//! the same text (`rowcheck::RowRef`, the reference), or gives up (`None`) and
//! leaves the text to serde, which reads it or says what is wrong with it. So
//! it never decides that a file is bad, and a file it cannot read is checked
//! exactly as before, only slower.
//!
//! It gives up on anything the collector does not write: a field that is
//! unknown, repeated, missing or of the wrong type; a number serde would
//! refuse (fractions, exponents, `-0`, leading zeros, beyond 64 bits); an
//! escape in a key, a hash or a fingerprint; a `\u` escape of a surrogate; a
//! raw control character in a string; text that is not UTF-8.

use egress_proto::fields::{self, Kind};
use egress_proto::journal::CANONICAL_VERSION;
use sha2::{Digest, Sha256};

use crate::checked::CheckedRows;
use crate::export::ROW_FIELDS;
use crate::hexbytes;

/// The 42 journal fields in canonical order, then the two hashes.
const FIELDS: usize = fields::COLUMN_COUNT;
const PREV_HASH: usize = fields::FIELD_COUNT;
const ROW_HASH: usize = fields::FIELD_COUNT + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Int,
    Text,
    List,
    Bool,
    /// Hex of any even length (the fingerprint).
    Bytes,
    /// Exactly 64 hex digits.
    Hash,
}

use Type::{Bool, Bytes, Hash, Int, List, Text};

/// Each field's type, by number: from proto's field table, then the hashes.
const TYPES: [Type; FIELDS] = {
    let mut out = [Hash; FIELDS];
    let mut n = 0;
    while n < fields::FIELD_COUNT {
        out[n] = match fields::FIELDS[n].kind {
            Kind::Int => Int,
            Kind::Text => Text,
            Kind::List => List,
            Kind::Bool => Bool,
            Kind::Bytes => Bytes,
        };
        n += 1;
    }
    out
};

/// A field's number from its name.
fn field_number(name: &[u8]) -> Option<usize> {
    (0..FIELDS).find(|&n| self::name(n) == name)
}

/// A field's name by number.
const fn name(n: usize) -> &'static [u8] {
    ROW_FIELDS[written_position(n)].as_bytes()
}

/// The order the collector writes the fields in: seq, the hashes, then the
/// rest in canonical order.
const fn written_position(n: usize) -> usize {
    match n {
        0 => 0,
        PREV_HASH => 1,
        ROW_HASH => 2,
        n => n + 2,
    }
}

/// The field written at `position` (inverse of `written_position`).
fn written_field(position: usize) -> usize {
    match position {
        0 => 0,
        1 => PREV_HASH,
        2 => ROW_HASH,
        p => p - 2,
    }
}

/// Reads rows, reusing its buffer from row to row.
#[derive(Default)]
pub(crate) struct RowScanner {
    canonical: Vec<u8>,
}

impl RowScanner {
    /// Reads `text`, rows separated by commas (whitespace allowed around
    /// them), into `out`. Returns how many rows it read, or None to leave
    /// the text to serde.
    pub fn scan(&mut self, text: &[u8], out: &mut CheckedRows) -> Option<usize> {
        // Serde checks UTF-8 inside strings and refuses any other non-ASCII
        // byte: all of the text must be UTF-8 for it to read.
        std::str::from_utf8(text).ok()?;
        let mut p = Cursor { s: text, i: 0 };
        let mut rows = 0;
        p.ws();
        if p.i == text.len() {
            return Some(0);
        }
        loop {
            self.row(&mut p, out)?;
            rows += 1;
            p.ws();
            if p.i == text.len() {
                return Some(rows);
            }
            p.expect(b',')?;
            p.ws();
        }
    }

    /// One row, encoded canonically (docs/JOURNAL_FORMAT.md §2) as its
    /// fields come. They must come in canonical order (the hashes anywhere):
    /// a row written otherwise is left to serde.
    fn row(&mut self, p: &mut Cursor, out: &mut CheckedRows) -> Option<()> {
        // `prev_hash ‖ canonical(row)`, hashed in one piece: the first 32
        // bytes are filled in at the end.
        let c = &mut self.canonical;
        c.clear();
        c.extend_from_slice(&[0; 32]);
        c.push(CANONICAL_VERSION);
        // The next field of the encoding, and the next one the collector
        // would write (for `key`'s guess).
        let mut next = 0;
        let mut written = 0;
        let mut hashes = [[0u8; 32]; 2];
        let mut hashes_seen = [false; 2];
        let mut seq = 0;
        let mut database = 0..0;
        p.expect(b'{')?;
        p.ws();
        if !p.eat(b'}') {
            loop {
                let n = key(p, written)?;
                written = written_position(n) + 1;
                if n >= PREV_HASH {
                    let seen = &mut hashes_seen[n - PREV_HASH];
                    if *seen {
                        return None;
                    }
                    *seen = true;
                    hashes[n - PREV_HASH] = hexbytes::parse_bytes::<32>(p.plain_string()?)?;
                } else {
                    // Repeated, or out of canonical order: serde's to read.
                    if n < next {
                        return None;
                    }
                    null_fields(c, next, n)?;
                    next = n + 1;
                    if p.eat_literal(b"null") {
                        // As absent, for an optional field.
                        if n < 5 {
                            return None;
                        }
                        c.push(0);
                    } else {
                        if n >= 5 {
                            c.push(1);
                        }
                        let at = c.len();
                        value(p, TYPES[n], c)?;
                        match n {
                            0 => seq = i64::from_be_bytes(c[at..].try_into().ok()?),
                            1 => database = at + 4..c.len(),
                            _ => {}
                        }
                    }
                }
                p.ws();
                if p.eat(b',') {
                    p.ws();
                    continue;
                }
                p.expect(b'}')?;
                break;
            }
        }
        null_fields(c, next, PREV_HASH)?;
        if hashes_seen != [true, true] {
            return None;
        }
        let [prev_hash, row_hash] = hashes;
        c[..32].copy_from_slice(&prev_hash);
        let content_ok = <[u8; 32]>::from(Sha256::digest(&*c)) == row_hash;
        let database = std::str::from_utf8(&c[database]).ok()?;
        out.push(database, seq, prev_hash, row_hash, content_ok);
        Some(())
    }
}

/// NULL for the fields `from..to`, absent from the row; None if one of them
/// is required.
fn null_fields(c: &mut Vec<u8>, from: usize, to: usize) -> Option<()> {
    if from < to {
        if from < 5 {
            return None;
        }
        c.resize(c.len() + to - from, 0);
    }
    Some(())
}

/// Each field's `name":` as 16 bytes (little-endian) and the mask of the
/// bytes that count, to compare a key in place in one step.
const KEYS: [(u128, u128); FIELDS] = {
    let mut keys = [(0, 0); FIELDS];
    let mut n = 0;
    while n < FIELDS {
        let name = name(n);
        let (mut bytes, mut mask) = ([0u8; 16], [0u8; 16]);
        let mut i = 0;
        while i < name.len() + 2 {
            bytes[i] = if i < name.len() {
                name[i]
            } else {
                b"\":"[i - name.len()]
            };
            mask[i] = 0xff;
            i += 1;
        }
        keys[n] = (u128::from_le_bytes(bytes), u128::from_le_bytes(mask));
        n += 1;
    }
    keys
};

/// The next key and its colon: the field number. The collector writes
/// `"name":` with the fields in order, most of them present, so the names
/// from the one after the last are tried in place first; any other key is
/// read as a string and looked up.
fn key(p: &mut Cursor, written: usize) -> Option<usize> {
    if let Some(text) = p.s.get(p.i..p.i + 17).filter(|t| t[0] == b'"') {
        let text = u128::from_le_bytes(text[1..].try_into().expect("16 bytes"));
        for position in written..FIELDS {
            let n = written_field(position);
            let (expected, mask) = KEYS[n];
            if (text ^ expected) & mask == 0 {
                p.i += name(n).len() + 3;
                p.ws();
                return Some(n);
            }
        }
    }
    let n = field_number(p.plain_string()?)?;
    p.ws();
    p.expect(b':')?;
    p.ws();
    Some(n)
}

/// A non-null value of type `ty`, encoded into `c`.
fn value(p: &mut Cursor, ty: Type, c: &mut Vec<u8>) -> Option<()> {
    match ty {
        Int => c.extend_from_slice(&p.int()?.to_be_bytes()),
        Bool => {
            if p.eat_literal(b"true") {
                c.push(1);
            } else if p.eat_literal(b"false") {
                c.push(0);
            } else {
                return None;
            }
        }
        Text => string(p, c)?,
        List => {
            let at = c.len();
            c.extend_from_slice(&[0; 8]);
            let mut count: i64 = 0;
            p.expect(b'[')?;
            p.ws();
            if !p.eat(b']') {
                loop {
                    string(p, c)?;
                    count += 1;
                    p.ws();
                    if p.eat(b',') {
                        p.ws();
                        continue;
                    }
                    p.expect(b']')?;
                    break;
                }
            }
            c[at..at + 8].copy_from_slice(&count.to_be_bytes());
        }
        Bytes => {
            // As `rowcheck::hex_opt` reads it: hex of any even length.
            let digits = p.plain_string()?;
            length(c, digits.len() / 2);
            hexbytes::decode_into(digits, c).ok()?;
        }
        Hash => return None,
    }
    Some(())
}

/// 4-byte big-endian length, saturated as the reference encoder does.
fn length(c: &mut Vec<u8>, len: usize) {
    c.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

/// A string value as canonical text: its length, then its bytes, with
/// escapes decoded.
fn string(p: &mut Cursor, c: &mut Vec<u8>) -> Option<()> {
    p.expect(b'"')?;
    let start = p.i;
    let stop = p.string_stop()?;
    if p.s[stop] == b'"' {
        p.i = stop + 1;
        length(c, stop - start);
        c.extend_from_slice(&p.s[start..stop]);
        return Some(());
    }
    let at = c.len();
    c.extend_from_slice(&[0; 4]);
    c.extend_from_slice(&p.s[start..stop]);
    p.i = stop;
    loop {
        // At a backslash: one escape, then plain text up to the next stop.
        let escaped = *p.s.get(p.i + 1)?;
        p.i += 2;
        match escaped {
            b'"' | b'\\' | b'/' => c.push(escaped),
            b'b' => c.push(0x08),
            b'f' => c.push(0x0c),
            b'n' => c.push(b'\n'),
            b'r' => c.push(b'\r'),
            b't' => c.push(b'\t'),
            b'u' => {
                let digits = p.s.get(p.i..p.i + 4)?;
                // Not from_str_radix alone: it accepts a sign.
                if !digits.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let code = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
                p.i += 4;
                // None for a surrogate: serde reads pairs, refuses lone ones.
                let decoded = char::from_u32(code)?;
                let mut utf8 = [0u8; 4];
                c.extend_from_slice(decoded.encode_utf8(&mut utf8).as_bytes());
            }
            _ => return None,
        }
        let plain = p.i;
        let stop = p.string_stop()?;
        c.extend_from_slice(&p.s[plain..stop]);
        p.i = stop;
        if p.s[stop] == b'"' {
            p.i += 1;
            let len = c.len() - at - 4;
            let len = u32::try_from(len).unwrap_or(u32::MAX);
            c[at..at + 4].copy_from_slice(&len.to_be_bytes());
            return Some(());
        }
    }
}

/// A position in the text.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    /// Skips JSON whitespace (as serde: space, tab, newline, return).
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.s.get(self.i) == Some(&b);
        self.i += usize::from(found);
        found
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    fn eat_literal(&mut self, word: &[u8]) -> bool {
        let found = self.s[self.i..].starts_with(word);
        if found {
            self.i += word.len();
        }
        found
    }

    /// A string without escapes; the cursor moves past its closing quote.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        let stop = self.string_stop()?;
        if self.s[stop] != b'"' {
            return None;
        }
        self.i = stop + 1;
        Some(&self.s[start..stop])
    }

    /// From the cursor (inside a string), where the next `"` or `\` is.
    /// None at a raw control character or the end of the text.
    fn string_stop(&self) -> Option<usize> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let s = self.s;
        let mut i = self.i;
        // Eight bytes at a time: a byte of a word is flagged if it is `"`,
        // `\` or below 0x20. A borrow can flag bytes above a flagged one,
        // never below it, so the lowest flag is the first such byte.
        while let Some(chunk) = s.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let quote = w ^ (ONES * b'"' as u64);
            let backslash = w ^ (ONES * b'\\' as u64);
            let flags = (quote.wrapping_sub(ONES) & !quote
                | backslash.wrapping_sub(ONES) & !backslash
                | w.wrapping_sub(ONES * 0x20) & !w)
                & HIGHS;
            if flags != 0 {
                i += flags.trailing_zeros() as usize / 8;
                return (s[i] >= 0x20).then_some(i);
            }
            i += 8;
        }
        while let Some(&b) = s.get(i) {
            match b {
                b'"' | b'\\' => return Some(i),
                0..=0x1f => return None,
                _ => i += 1,
            }
        }
        None
    }

    /// An integer as serde reads an i64, or None for anything it refuses.
    fn int(&mut self) -> Option<i64> {
        let negative = self.eat(b'-');
        let start = self.i;
        let mut magnitude: u64 = 0;
        while let Some(&d) = self.s.get(self.i).filter(|d| d.is_ascii_digit()) {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && self.s[start] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.s.get(self.i) {
            return None;
        }
        if negative {
            // Serde reads `-0` as a float.
            (magnitude != 0 && magnitude <= 1 << 63).then(|| (magnitude as i64).wrapping_neg())
        } else {
            i64::try_from(magnitude).ok()
        }
    }
}

/// Where the value of the file's top-level `rows` lies, if it is an array:
/// from its `[` to the last `]` of the file. A guess, for files laid out as
/// the collector writes them (`rows` after everything but the digest and
/// signatures); the caller checks it (see `verify::read_fast`).
pub(crate) fn rows_array(json: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = rows_start(json)?;
    let end = json.iter().rposition(|&b| b == b']')?;
    (end > start).then_some(start..end + 1)
}

/// Where the `[` of the file's top-level `rows` array lies: the fields
/// before it are skipped, not checked. None if it is not found in `json`
/// (or `rows` is not an array).
pub(crate) fn rows_start(json: &[u8]) -> Option<usize> {
    let mut p = Cursor { s: json, i: 0 };
    p.ws();
    p.expect(b'{')?;
    loop {
        p.ws();
        let name = p.plain_string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        if name == b"rows" {
            return (p.s.get(p.i) == Some(&b'[')).then_some(p.i);
        }
        skip_value(&mut p)?;
        p.ws();
        p.expect(b',')?;
    }
}

/// Moves past one value without checking it (serde checks it later).
fn skip_value(p: &mut Cursor) -> Option<()> {
    let mut depth = 0usize;
    loop {
        match *p.s.get(p.i)? {
            b'"' => {
                p.i += 1;
                loop {
                    p.i = p.string_stop()?;
                    if p.s[p.i] == b'"' {
                        break;
                    }
                    p.i += 2; // a backslash and the character it escapes
                }
                p.i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                p.i += 1;
                continue;
            }
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                p.i += 1;
            }
            // The end of a number or literal.
            b',' | b'}' | b']' | b' ' | b'\n' | b'\t' | b'\r' if depth == 0 => return Some(()),
            _ => {
                p.i += 1;
                continue;
            }
        }
        if depth == 0 {
            return Some(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::ExportRow;
    use egress_proto::{JournalRow, GENESIS_HASH};

    fn scan(text: &str) -> Option<CheckedRows> {
        let mut rows = CheckedRows::default();
        RowScanner::default().scan(text.as_bytes(), &mut rows)?;
        Some(rows)
    }

    /// Rows of every shape, chained; the second is altered after hashing.
    fn rows() -> Vec<ExportRow> {
        let strings = |items: &[&str]| Some(items.iter().map(|s| s.to_string()).collect());
        let base = JournalRow {
            database: "prod_db".into(),
            collector: "odoo-host-1".into(),
            recorded_at_us: 1_764_288_000_500_000,
            ..JournalRow::default()
        };
        let shapes = vec![
            JournalRow {
                kind: "call".into(),
                worker_id: Some(-1),
                worker_pid: Some(i64::MAX),
                worker_uid: Some(i64::MIN),
                host: Some("api.openai.com".into()),
                path: Some("/v1/chat/completions".into()),
                port: Some(0),
                query_keys: strings(&["model"]),
                header_names: Some(vec![]),
                tls: Some(true),
                self_egress: Some(false),
                fingerprint: Some(vec![0x5a, 0xa5, 0, 255]),
                stack: strings(&["/mnt/ünïcode/addon.py:1 f", "tab\there \"quoted\" \\ end"]),
                addon_path: strings(&[""]),
                ..base.clone()
            },
            JournalRow {
                kind: "gap".into(),
                gap_count: Some(17),
                gap_reason: Some("socket_missing".into()),
                ..base.clone()
            },
            JournalRow {
                kind: "config_change".into(),
                detail: Some(r#"{"key":"a/b","old":"9\u00e9","new":"\n"}"#.into()),
                fingerprint: Some(vec![]),
                ..base.clone()
            },
        ];
        let mut rows = chained(shapes);
        rows[1].row.gap_count = Some(18);
        rows
    }

    /// `shapes` numbered from 1 and chained from the genesis.
    fn chained(shapes: Vec<JournalRow>) -> Vec<ExportRow> {
        let mut prev = GENESIS_HASH;
        shapes
            .into_iter()
            .enumerate()
            .map(|(i, mut row)| {
                row.seq = i as i64 + 1;
                let row_hash = row.hash_after(&prev);
                let exported = ExportRow {
                    row,
                    prev_hash: prev,
                    row_hash,
                };
                prev = row_hash;
                exported
            })
            .collect()
    }

    #[test]
    fn rows_are_read_as_serde_reads_them() {
        let rows = rows();
        let compact: Vec<String> = rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        let compact = compact.join(",\n");
        // Other whitespace, nulls for absent fields, escapes where the
        // collector writes none, the hashes last.
        let spaced = rows
            .iter()
            .map(|r| {
                serde_json::to_string_pretty(r)
                    .unwrap()
                    .replace("  ", "\t \r")
            })
            .collect::<Vec<_>>()
            .join(" ,\n ");
        let nulls = compact
            .replace(
                r#""gap_count":18"#,
                r#""host":null,"tls":null,"stack":null,"gap_count":18"#,
            )
            .replace(r#""socket_missing""#, r#""socket_missing","detail":null"#);
        let escaped = compact
            .replace("openai", r"\u006fpenai")
            .replace("/v1", r"\/v1")
            .replace("ünïcode", r"\u00fcn\u00EFcode");
        let hashes_last: Vec<String> = rows
            .iter()
            .map(|r| {
                let text = serde_json::to_string(r).unwrap();
                let (start, end) = (
                    text.find(",\"prev_hash\"").unwrap(),
                    text.find(",\"database\"").unwrap(),
                );
                format!(
                    "{}{}{}}}",
                    &text[..start],
                    &text[end..text.len() - 1],
                    &text[start..end]
                )
            })
            .collect();
        let hashes_last = hashes_last.join(",");
        for text in [&compact, &spaced, &nulls, &escaped, &hashes_last] {
            let by_serde: CheckedRows = serde_json::from_str(&format!("[{text}]")).unwrap();
            assert_eq!(scan(text).as_ref(), Some(&by_serde), "{text}");
        }
        // Keys in another order (sorted): left to serde.
        let values: Vec<serde_json::Value> = serde_json::from_str(&format!("[{compact}]")).unwrap();
        let sorted: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        assert!(scan(&sorted.join(",")).is_none());
        let by_serde: CheckedRows = serde_json::from_str(&format!("[{compact}]")).unwrap();
        let ok: Vec<bool> = by_serde.rows.iter().map(|r| r.content_ok).collect();
        assert_eq!(ok, [true, false, true]);
    }

    /// Rows written from proto's field table, chained: one with every field
    /// set, each to a value no other field has, then one per optional field
    /// with only that field set.
    fn table_rows() -> Vec<ExportRow> {
        let value = |i: usize| {
            let f = &fields::FIELDS[i];
            match f.kind {
                Kind::Int => serde_json::json!(1000 + i),
                Kind::Text => serde_json::json!(format!("{}-{i}", f.name)),
                Kind::List => serde_json::json!([f.name, i.to_string()]),
                Kind::Bool => serde_json::json!([true, false, false][i % 3]),
                Kind::Bytes => serde_json::json!([i, 255]),
            }
        };
        let row = |set: &dyn Fn(usize) -> bool| -> JournalRow {
            let map: serde_json::Map<String, serde_json::Value> = fields::FIELDS
                .iter()
                .enumerate()
                .filter(|&(i, f)| f.required || set(i))
                .map(|(i, f)| (f.name.to_string(), value(i)))
                .collect();
            serde_json::from_value(map.into()).unwrap()
        };
        let mut shapes = vec![row(&|_| true)];
        shapes.extend((0..fields::FIELD_COUNT).map(|i| row(&|n| n == i)));
        chained(shapes)
    }

    #[test]
    fn every_field_of_the_table_is_written_and_read_at_its_place() {
        // Written by `RowOut`, read back by `RowIn`, hashed by `RowRef` and
        // by this scanner: a field any of them names, places or types
        // otherwise than proto's table breaks a hash or the round trip.
        let rows = table_rows();
        let text: Vec<String> = rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        let text = text.join(",");
        let by_serde: CheckedRows = serde_json::from_str(&format!("[{text}]")).unwrap();
        assert_eq!(by_serde.rows.len(), rows.len());
        let broken: Vec<i64> = by_serde
            .rows
            .iter()
            .filter(|r| !r.content_ok)
            .map(|r| r.seq)
            .collect();
        assert!(broken.is_empty(), "rows hashed otherwise: {broken:?}");
        assert_eq!(scan(&text).as_ref(), Some(&by_serde), "{text}");
        let read: Vec<ExportRow> = serde_json::from_str(&format!("[{text}]")).unwrap();
        let read: Vec<&JournalRow> = read.iter().map(|r| &r.row).collect();
        let written: Vec<&JournalRow> = rows.iter().map(|r| &r.row).collect();
        assert_eq!(read, written);
    }

    #[test]
    fn names_and_numbers_agree() {
        for n in 0..FIELDS {
            let name = name(n);
            assert_eq!(field_number(name), Some(n));
            assert_eq!(written_field(written_position(n)), n);
            // The key compared in place: `name":` and nothing after it.
            let mut text = format!("\"{}\":", std::str::from_utf8(name).unwrap()).into_bytes();
            text.resize(17, b'x');
            let mut p = Cursor { s: &text, i: 0 };
            assert_eq!(key(&mut p, 0), Some(n));
            assert_eq!(p.i, name.len() + 3);
        }
    }

    #[test]
    fn integers_are_read_as_serde_reads_an_i64() {
        let int = |t: &str| {
            Cursor {
                s: t.as_bytes(),
                i: 0,
            }
            .int()
        };
        assert_eq!(int("0,"), Some(0));
        assert_eq!(int("-1}"), Some(-1));
        assert_eq!(int("9223372036854775807 "), Some(i64::MAX));
        assert_eq!(int("-9223372036854775808"), Some(i64::MIN));
        for refused in [
            "-0",
            "01",
            "1.0",
            "1e3",
            "1E3",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "-",
            "+1",
            "",
        ] {
            assert_eq!(int(refused), None, "{refused}");
        }
    }

    #[test]
    fn strings_stop_at_quotes_backslashes_and_control_characters() {
        let stop = |t: &str| {
            Cursor {
                s: t.as_bytes(),
                i: 0,
            }
            .string_stop()
        };
        assert_eq!(stop("abcdefghijklmnop\"x"), Some(16));
        assert_eq!(stop("abc\"defghijklmnop"), Some(3));
        assert_eq!(stop("abcdefgh\\ijklmnop\""), Some(8));
        assert_eq!(stop("ünïcödé and more\""), Some("ünïcödé and more".len()));
        assert_eq!(stop("abcdefg\u{1f}\""), None);
        assert_eq!(stop("ab\ncd\""), None);
        assert_eq!(stop("abc"), None);
    }

    #[test]
    fn what_serde_would_refuse_is_left_to_serde() {
        let row = r#"{"seq":1,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","row_hash":"0000000000000000000000000000000000000000000000000000000000000000","database":"d","kind":"gap","recorded_at_us":5,"collector":"c""#;
        assert!(scan(&format!("{row}}}")).is_some());
        for tail in [
            r#","seq":2}"#,             // repeated
            r#","color":"red"}"#,       // unknown
            r#","tls":1}"#,             // wrong type
            r#","port":"443"}"#,        // wrong type
            r#","stack":["a",null]}"#,  // null item
            r#","fingerprint":"abc"}"#, // odd hex
            r#","host":"a\ud800b"}"#,   // lone surrogate
            r#","host":"tab	inside"}"#, // raw control character
            r#","host":"a\x"}"#,        // unknown escape
            r#","se\u0071":1}"#,        // escaped key
            r#","port":1.0}"#,          // not an integer
            r#"}{"#,                    // no comma
            r#"},"#,                    // trailing comma
        ] {
            assert!(scan(&format!("{row}{tail}")).is_none(), "{tail}");
        }
        let missing = row.replace(r#","collector":"c""#, "");
        assert!(scan(&format!("{missing}}}")).is_none());
        let null = row.replace(r#""kind":"gap""#, r#""kind":null"#);
        assert!(scan(&format!("{null}}}")).is_none());
    }
}
