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

use egress_proto::journal::CANONICAL_VERSION;
use sha2::{Digest, Sha256};

use crate::hexbytes;
use crate::rowcheck::CheckedRows;

/// The 42 journal fields in canonical order, then the two hashes.
const FIELDS: usize = 44;
const PREV_HASH: usize = 42;
const ROW_HASH: usize = 43;
/// The fields that must be present and not null: seq, database, kind,
/// recorded_at_us, collector and the two hashes.
const REQUIRED: u64 = 0b11111 | 1 << PREV_HASH | 1 << ROW_HASH;

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

/// Each field's type, by number.
const TYPES: [Type; FIELDS] = [
    Int, Text, Text, Int, Text, // seq, database, kind, recorded_at_us, collector
    Int, Int, Int, Int, Int, Int, // worker_id … duration_us
    Text, Text, Text, Text, Text, Int, Text, // channel … path
    List, List, Text, Int, Text, Int, Bool, Int, Text, Int, Int, // query_keys … bytes_in
    Bytes, Text, List, List, Text, Text, Int, Text, Text, Bool, // fingerprint … self_egress
    Int, Text, Text, // gap_count, gap_reason, detail
    Hash, Hash,
];

/// A field's number from its name (docs/JOURNAL_FORMAT.md §2).
fn field_number(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"seq" => 0,
        b"database" => 1,
        b"kind" => 2,
        b"recorded_at_us" => 3,
        b"collector" => 4,
        b"worker_id" => 5,
        b"worker_pid" => 6,
        b"worker_uid" => 7,
        b"worker_seq" => 8,
        b"started_at_us" => 9,
        b"duration_us" => 10,
        b"channel" => 11,
        b"protocol" => 12,
        b"direction" => 13,
        b"method" => 14,
        b"host" => 15,
        b"port" => 16,
        b"path" => 17,
        b"query_keys" => 18,
        b"header_names" => 19,
        b"src_ip" => 20,
        b"src_port" => 21,
        b"dst_ip" => 22,
        b"dst_port" => 23,
        b"tls" => 24,
        b"status" => 25,
        b"error_class" => 26,
        b"bytes_out" => 27,
        b"bytes_in" => 28,
        b"fingerprint" => 29,
        b"addon" => 30,
        b"addon_path" => 31,
        b"stack" => 32,
        b"trigger_kind" => 33,
        b"trigger_name" => 34,
        b"odoo_uid" => 35,
        b"component" => 36,
        b"class" => 37,
        b"self_egress" => 38,
        b"gap_count" => 39,
        b"gap_reason" => 40,
        b"detail" => 41,
        b"prev_hash" => PREV_HASH,
        b"row_hash" => ROW_HASH,
        _ => return None,
    })
}

/// Bytes of the row's text, or of the scanner's scratch buffer (a string
/// with escapes, decoded; a fingerprint, decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    scratch: bool,
}

#[derive(Debug, Clone, Copy, Default)]
enum Value {
    #[default]
    Null,
    Int(i64),
    Bool(bool),
    Text(Span),
    /// Items `first..first + count` of the scanner's list items.
    List(usize, usize),
}

/// Reads rows, reusing its buffers from row to row.
#[derive(Default)]
pub(crate) struct RowScanner {
    scratch: Vec<u8>,
    items: Vec<Span>,
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

    fn row(&mut self, p: &mut Cursor, out: &mut CheckedRows) -> Option<()> {
        self.scratch.clear();
        self.items.clear();
        let mut values = [Value::Null; FIELDS];
        let mut hashes = [[0u8; 32]; 2];
        let mut seen = 0u64;
        p.expect(b'{')?;
        p.ws();
        if !p.eat(b'}') {
            loop {
                let name = p.plain_string()?;
                let n = field_number(name)?;
                if seen & 1 << n != 0 {
                    return None;
                }
                seen |= 1 << n;
                p.ws();
                p.expect(b':')?;
                p.ws();
                let ty = TYPES[n];
                if ty == Hash {
                    let text = std::str::from_utf8(p.plain_string()?).ok()?;
                    hashes[n - PREV_HASH] = hexbytes::parse::<32>(text).ok()?;
                } else if p.eat_literal(b"null") {
                    // Absent and null are both NULL, for an optional field.
                    if REQUIRED & 1 << n != 0 {
                        return None;
                    }
                } else {
                    values[n] = self.value(p, ty)?;
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
        if seen & REQUIRED != REQUIRED {
            return None;
        }
        let Value::Int(seq) = values[0] else {
            return None;
        };
        let Value::Text(database) = values[1] else {
            return None;
        };
        self.encode(p.s, &values);
        let [prev_hash, row_hash] = hashes;
        let mut hasher = Sha256::new();
        hasher.update(prev_hash);
        hasher.update(&self.canonical);
        let content_ok = <[u8; 32]>::from(hasher.finalize()) == row_hash;
        let database = std::str::from_utf8(self.bytes(p.s, database)).ok()?;
        out.push(database, seq, prev_hash, row_hash, content_ok);
        Some(())
    }

    fn value(&mut self, p: &mut Cursor, ty: Type) -> Option<Value> {
        Some(match ty {
            Int => Value::Int(p.int()?),
            Bool => {
                if p.eat_literal(b"true") {
                    Value::Bool(true)
                } else if p.eat_literal(b"false") {
                    Value::Bool(false)
                } else {
                    return None;
                }
            }
            Text => Value::Text(self.string(p)?),
            List => {
                let first = self.items.len();
                p.expect(b'[')?;
                p.ws();
                if !p.eat(b']') {
                    loop {
                        let item = self.string(p)?;
                        self.items.push(item);
                        p.ws();
                        if p.eat(b',') {
                            p.ws();
                            continue;
                        }
                        p.expect(b']')?;
                        break;
                    }
                }
                Value::List(first, self.items.len() - first)
            }
            Bytes => {
                // As `rowcheck::hex_opt` reads it.
                let digits = p.plain_string()?;
                let start = self.scratch.len();
                self.scratch.resize(start + digits.len() / 2, 0);
                hex::decode_to_slice(digits, &mut self.scratch[start..]).ok()?;
                Value::Text(Span {
                    start,
                    end: self.scratch.len(),
                    scratch: true,
                })
            }
            Hash => return None,
        })
    }

    /// A string value: borrowed if it has no escape, else decoded into the
    /// scratch buffer.
    fn string(&mut self, p: &mut Cursor) -> Option<Span> {
        p.expect(b'"')?;
        let start = p.i;
        let stop = p.string_stop()?;
        if p.s[stop] == b'"' {
            p.i = stop + 1;
            return Some(Span {
                start,
                end: stop,
                scratch: false,
            });
        }
        let from = self.scratch.len();
        self.scratch.extend_from_slice(&p.s[start..stop]);
        p.i = stop;
        loop {
            // At a backslash: one escape, then plain text up to the next stop.
            p.i += 1;
            let c = *p.s.get(p.i)?;
            p.i += 1;
            match c {
                b'"' | b'\\' | b'/' => self.scratch.push(c),
                b'b' => self.scratch.push(0x08),
                b'f' => self.scratch.push(0x0c),
                b'n' => self.scratch.push(b'\n'),
                b'r' => self.scratch.push(b'\r'),
                b't' => self.scratch.push(b'\t'),
                b'u' => {
                    let digits = p.s.get(p.i..p.i + 4)?;
                    // Not from_str_radix alone: it accepts a sign.
                    if !digits.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    let code = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
                    p.i += 4;
                    // None for a surrogate: serde reads pairs, refuses lone ones.
                    let c = char::from_u32(code)?;
                    let mut utf8 = [0u8; 4];
                    self.scratch
                        .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                _ => return None,
            }
            let plain = p.i;
            let stop = p.string_stop()?;
            self.scratch.extend_from_slice(&p.s[plain..stop]);
            p.i = stop;
            if p.s[stop] == b'"' {
                p.i += 1;
                return Some(Span {
                    start: from,
                    end: self.scratch.len(),
                    scratch: true,
                });
            }
        }
    }

    fn bytes<'a>(&'a self, text: &'a [u8], span: Span) -> &'a [u8] {
        let source = if span.scratch { &self.scratch } else { text };
        &source[span.start..span.end]
    }

    /// The canonical encoding (docs/JOURNAL_FORMAT.md §2) into `canonical`.
    fn encode(&mut self, text: &[u8], values: &[Value; FIELDS]) {
        let mut out = std::mem::take(&mut self.canonical);
        out.clear();
        out.push(CANONICAL_VERSION);
        let length = |out: &mut Vec<u8>, len: usize| {
            let len = u32::try_from(len).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
        };
        for (n, value) in values[..PREV_HASH].iter().enumerate() {
            // The first five fields have no presence byte.
            if n >= 5 {
                out.push(u8::from(!matches!(value, Value::Null)));
            }
            match *value {
                Value::Null => {}
                Value::Int(v) => out.extend_from_slice(&v.to_be_bytes()),
                Value::Bool(v) => out.push(u8::from(v)),
                Value::Text(span) => {
                    let bytes = self.bytes(text, span);
                    length(&mut out, bytes.len());
                    out.extend_from_slice(bytes);
                }
                Value::List(first, count) => {
                    out.extend_from_slice(&(count as i64).to_be_bytes());
                    for item in &self.items[first..first + count] {
                        let bytes = self.bytes(text, *item);
                        length(&mut out, bytes.len());
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
        self.canonical = out;
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
        let mut prev = GENESIS_HASH;
        let mut rows: Vec<ExportRow> = shapes
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
            .collect();
        rows[1].row.gap_count = Some(18);
        rows
    }

    #[test]
    fn rows_are_read_as_serde_reads_them() {
        let rows = rows();
        let compact: Vec<String> = rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        let compact = compact.join(",\n");
        // Keys in another order (sorted), other whitespace, nulls for absent
        // fields, and escapes where the collector writes none.
        let values: Vec<serde_json::Value> = serde_json::from_str(&format!("[{compact}]")).unwrap();
        let pretty = values
            .iter()
            .map(|v| {
                serde_json::to_string_pretty(v)
                    .unwrap()
                    .replace("  ", "\t \r")
            })
            .collect::<Vec<_>>()
            .join(" ,\n ");
        let nulls = compact.replace(
            r#""seq":2,"#,
            r#""seq":2,"host":null,"tls":null,"stack":null,"#,
        );
        let escaped = compact
            .replace("openai", r"\u006fpenai")
            .replace("/v1", r"\/v1")
            .replace("ünïcode", r"\u00fcn\u00EFcode");
        for text in [&compact, &pretty, &nulls, &escaped] {
            let by_serde: CheckedRows = serde_json::from_str(&format!("[{text}]")).unwrap();
            assert_eq!(scan(text).as_ref(), Some(&by_serde), "{text}");
        }
        let by_serde: CheckedRows = serde_json::from_str(&format!("[{compact}]")).unwrap();
        let ok: Vec<bool> = by_serde.rows.iter().map(|r| r.content_ok).collect();
        assert_eq!(ok, [true, false, true]);
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
