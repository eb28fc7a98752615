//! Reading an export's rows fast: each row is parsed borrowing its strings
//! from the file, encoded canonically into a reused buffer and hashed, and
//! only its seq and hashes are kept. Big files are split at row boundaries
//! and checked on every core.
//!
//! The encoder here is the journal's canonical encoding again, written over
//! borrowed fields so that a million rows cost no million allocations; the
//! tests check it byte for byte against `JournalRow::canonical` (the
//! reference, docs/JOURNAL_FORMAT.md).

use std::borrow::Cow;
use std::fmt;

use egress_proto::journal::CANONICAL_VERSION;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use crate::checked::CheckedRows;
use crate::hexbytes;
use crate::scan::RowScanner;

impl<'de> Deserialize<'de> for CheckedRows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rows;
        impl<'de> Visitor<'de> for Rows {
            type Value = CheckedRows;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of rows")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CheckedRows, A::Error> {
                let mut checked = CheckedRows::default();
                let mut buf = Vec::with_capacity(2048);
                while let Some(row) = seq.next_element::<RowRef<'de>>()? {
                    row.canonical_into(&mut buf);
                    let mut hasher = Sha256::new();
                    hasher.update(row.prev_hash);
                    hasher.update(&buf);
                    let content_ok = <[u8; 32]>::from(hasher.finalize()) == row.row_hash;
                    checked.push(
                        &row.database.0,
                        row.seq,
                        row.prev_hash,
                        row.row_hash,
                        content_ok,
                    );
                }
                Ok(checked)
            }
        }
        d.deserialize_seq(Rows)
    }
}

/// Checks the rows array at `buf[range]` (JSON text that serde_json has
/// already found to be one well-formed value).
///
/// A JSON string never holds a raw newline, so every newline lies between
/// tokens: when the array has one row per line (as `ExportFile::write_json`
/// writes it), it is cut at line starts into one part per core, in place:
/// the `,` ending a part becomes `]` and the blank before the next part's
/// `{` becomes `[`, so each part is an array of its own, parsed on its own
/// thread with no copy. A part is accepted only if it parses as a list of
/// rows by itself; should any cut fall inside a row, that part cannot parse,
/// the bytes are put back and the whole array is read in one piece.
pub(crate) fn check_rows_in_place(
    buf: &mut [u8],
    range: std::ops::Range<usize>,
) -> serde_json::Result<CheckedRows> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let cuts = if threads > 1 && range.len() > 1 << 20 {
        find_cuts(&buf[range.clone()], threads)
    } else {
        Vec::new()
    };
    if !cuts.is_empty() {
        let mut starts = vec![range.start];
        let mut ends = Vec::new();
        let saved: Vec<u8> = cuts
            .iter()
            .map(|&(_, brace)| buf[range.start + brace - 1])
            .collect();
        for &(comma, brace) in &cuts {
            buf[range.start + comma] = b']';
            buf[range.start + brace - 1] = b'[';
            ends.push(range.start + comma + 1);
            starts.push(range.start + brace - 1);
        }
        ends.push(range.end);
        let text: &[u8] = buf;
        let results: Vec<serde_json::Result<CheckedRows>> = std::thread::scope(|s| {
            let handles: Vec<_> = starts
                .iter()
                .zip(&ends)
                .map(|(&start, &end)| s.spawn(move || serde_json::from_slice(&text[start..end])))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("row checker panicked"))
                .collect()
        });
        if results.iter().all(Result::is_ok) {
            let mut all = CheckedRows::default();
            all.rows
                .reserve(results.iter().flatten().map(|r| r.rows.len()).sum());
            for part in results.into_iter().flatten() {
                all.extend(part);
            }
            return Ok(all);
        }
        for (&(comma, brace), &blank) in cuts.iter().zip(&saved) {
            buf[range.start + comma] = b',';
            buf[range.start + brace - 1] = blank;
        }
    }
    serde_json::from_slice(&buf[range])
}

/// Reads the rows array `array` (its text from `[` to `]`) with the
/// hand-written scanner (`scan`), cut at line starts into one part per core
/// as `check_rows_in_place` cuts it, but with no change to the text: a part
/// is the rows between two cuts, and each must hold at least one row. None
/// if the scanner left any part to serde.
pub(crate) fn scan_rows(array: &[u8]) -> Option<CheckedRows> {
    let inner = array.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let cuts = if threads > 1 && inner.len() > 1 << 20 {
        find_cuts(inner, threads)
    } else {
        Vec::new()
    };
    let mut parts = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &(comma, brace) in &cuts {
        parts.push(&inner[start..comma]);
        start = brace;
    }
    parts.push(&inner[start..]);
    let several = parts.len() > 1;
    let results: Vec<Option<CheckedRows>> = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .map(|&part| {
                s.spawn(move || {
                    let mut rows = CheckedRows::default();
                    let n = RowScanner::default().scan(part, &mut rows)?;
                    (n > 0 || !several).then_some(rows)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("row scanner panicked"))
            .collect()
    });
    let mut all = CheckedRows::default();
    all.rows
        .reserve(results.iter().flatten().map(|r| r.rows.len()).sum());
    for part in results {
        all.extend(part?);
    }
    Some(all)
}

/// Cut points splitting the array text into about `n` parts: pairs (offset
/// of a `,` ending a line, offset of the `{` starting the next line).
fn find_cuts(array: &[u8], n: usize) -> Vec<(usize, usize)> {
    let mut cuts: Vec<(usize, usize)> = Vec::with_capacity(n);
    for k in 1..n {
        let from = (array.len() * k / n).max(cuts.last().map_or(1, |c| c.1));
        match find_cut(array, from) {
            Some(cut) => cuts.push(cut),
            None => break,
        }
    }
    cuts
}

/// From `from` on, the first `,\n` whose next line starts with `{`: returns
/// (position of the comma, position of the `{`). Only JSON whitespace lies
/// between them.
fn find_cut(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i < bytes.len() {
        let nl = i + bytes[i..].iter().position(|&b| b == b'\n')?;
        if let Some(cut) = cut_at(bytes, nl) {
            return Some(cut);
        }
        i = nl + 1;
    }
    None
}

/// The last cut (as `find_cut`) whose `{` lies in `bytes`.
pub(crate) fn rfind_cut(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut end = bytes.len();
    loop {
        let nl = bytes[..end].iter().rposition(|&b| b == b'\n')?;
        if let Some(cut) = cut_at(bytes, nl) {
            return Some(cut);
        }
        end = nl;
    }
}

/// The cut around the newline at `nl`, if the line before ends with `,` and
/// the next one starts with `{`.
fn cut_at(bytes: &[u8], nl: usize) -> Option<(usize, usize)> {
    let comma = bytes[..nl].iter().rposition(|b| !json_whitespace(*b))?;
    let brace = nl + bytes[nl..].iter().position(|b| !json_whitespace(*b))?;
    (bytes[comma] == b',' && bytes[brace] == b'{').then_some((comma, brace))
}

/// Whitespace as JSON has it (not form feed, as `is_ascii_whitespace` would).
fn json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

/// A string of the file, borrowed unless it held escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A row as read, borrowing. Same fields and rules as `export::RowIn`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowRef<'a> {
    seq: i64,
    #[serde(with = "hexbytes")]
    prev_hash: [u8; 32],
    #[serde(with = "hexbytes")]
    row_hash: [u8; 32],
    #[serde(borrow)]
    database: Str<'a>,
    #[serde(borrow)]
    kind: Str<'a>,
    recorded_at_us: i64,
    #[serde(borrow)]
    collector: Str<'a>,
    worker_id: Option<i64>,
    worker_pid: Option<i64>,
    worker_uid: Option<i64>,
    worker_seq: Option<i64>,
    started_at_us: Option<i64>,
    duration_us: Option<i64>,
    #[serde(borrow)]
    channel: Option<Str<'a>>,
    #[serde(borrow)]
    protocol: Option<Str<'a>>,
    #[serde(borrow)]
    direction: Option<Str<'a>>,
    #[serde(borrow)]
    method: Option<Str<'a>>,
    #[serde(borrow)]
    host: Option<Str<'a>>,
    port: Option<i64>,
    #[serde(borrow)]
    path: Option<Str<'a>>,
    #[serde(borrow)]
    query_keys: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    header_names: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    src_ip: Option<Str<'a>>,
    src_port: Option<i64>,
    #[serde(borrow)]
    dst_ip: Option<Str<'a>>,
    dst_port: Option<i64>,
    tls: Option<bool>,
    status: Option<i64>,
    #[serde(borrow)]
    error_class: Option<Str<'a>>,
    bytes_out: Option<i64>,
    bytes_in: Option<i64>,
    #[serde(default, deserialize_with = "hex_opt")]
    fingerprint: Option<Vec<u8>>,
    #[serde(borrow)]
    addon: Option<Str<'a>>,
    #[serde(borrow)]
    addon_path: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    stack: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    trigger_kind: Option<Str<'a>>,
    #[serde(borrow)]
    trigger_name: Option<Str<'a>>,
    odoo_uid: Option<i64>,
    #[serde(borrow)]
    component: Option<Str<'a>>,
    #[serde(borrow)]
    class: Option<Str<'a>>,
    self_egress: Option<bool>,
    gap_count: Option<i64>,
    #[serde(borrow)]
    gap_reason: Option<Str<'a>>,
    #[serde(borrow)]
    detail: Option<Str<'a>>,
}

/// Bytes as hex of any even length (the `fingerprint`).
fn hex_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let text = <Option<Str<'de>>>::deserialize(d)?;
    text.map(|t| {
        hex::decode(t.0.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("fingerprint: {e}")))
    })
    .transpose()
}

struct Out<'b>(&'b mut Vec<u8>);

impl Out<'_> {
    fn int(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn bytes(&mut self, v: &[u8]) {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(v);
    }

    fn text(&mut self, v: &Str) {
        self.bytes(v.0.as_bytes());
    }

    fn opt<T>(&mut self, v: &Option<T>, write: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                write(self, v);
            }
        }
    }

    fn opt_int(&mut self, v: Option<i64>) {
        self.opt(&v, |o, v| o.int(*v));
    }

    fn opt_text(&mut self, v: &Option<Str>) {
        self.opt(v, |o, v| o.text(v));
    }

    fn opt_list(&mut self, v: &Option<Vec<Str>>) {
        self.opt(v, |o, items| {
            o.int(items.len() as i64);
            for item in items {
                o.text(item);
            }
        });
    }

    fn opt_bool(&mut self, v: Option<bool>) {
        self.opt(&v, |o, v| o.0.push(u8::from(*v)));
    }
}

impl RowRef<'_> {
    /// The canonical encoding (docs/JOURNAL_FORMAT.md §2), into `buf`.
    fn canonical_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        let mut o = Out(buf);
        o.0.push(CANONICAL_VERSION);
        o.int(self.seq);
        o.text(&self.database);
        o.text(&self.kind);
        o.int(self.recorded_at_us);
        o.text(&self.collector);
        o.opt_int(self.worker_id);
        o.opt_int(self.worker_pid);
        o.opt_int(self.worker_uid);
        o.opt_int(self.worker_seq);
        o.opt_int(self.started_at_us);
        o.opt_int(self.duration_us);
        o.opt_text(&self.channel);
        o.opt_text(&self.protocol);
        o.opt_text(&self.direction);
        o.opt_text(&self.method);
        o.opt_text(&self.host);
        o.opt_int(self.port);
        o.opt_text(&self.path);
        o.opt_list(&self.query_keys);
        o.opt_list(&self.header_names);
        o.opt_text(&self.src_ip);
        o.opt_int(self.src_port);
        o.opt_text(&self.dst_ip);
        o.opt_int(self.dst_port);
        o.opt_bool(self.tls);
        o.opt_int(self.status);
        o.opt_text(&self.error_class);
        o.opt_int(self.bytes_out);
        o.opt_int(self.bytes_in);
        o.opt(&self.fingerprint, |o, v| o.bytes(v));
        o.opt_text(&self.addon);
        o.opt_list(&self.addon_path);
        o.opt_list(&self.stack);
        o.opt_text(&self.trigger_kind);
        o.opt_text(&self.trigger_name);
        o.opt_int(self.odoo_uid);
        o.opt_text(&self.component);
        o.opt_text(&self.class);
        o.opt_bool(self.self_egress);
        o.opt_int(self.gap_count);
        o.opt_text(&self.gap_reason);
        o.opt_text(&self.detail);
    }
}
