//! The signed export file (docs/EXPORT_FORMAT.md §3–4): rows with their chain
//! positions and hashes, the anchor, the signed heads, the public key, and an
//! HMAC and an Ed25519 signature over a digest of all of it.

use egress_proto::fields;
use egress_proto::{JournalRow, GENESIS_HASH};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::encode::Input;
use crate::head::{hmac_sha256, SignedHead};
use crate::hexbytes;
use crate::keys::Keys;
use ed25519_dalek::Signer;
use std::io::Write;

/// Value of the file's `format` field.
pub const EXPORT_FORMAT: &str = "egress-audit-export";
/// Value of the file's `version` field, and first byte of the digest input.
pub const EXPORT_VERSION: u32 = 2;
/// Domain of the digest input.
pub const EXPORT_DOMAIN: &str = "egress-audit export";

/// An export file. `R` is `Vec<ExportRow>` for a file held in memory; the
/// streaming verifier reads the rows into per-row check results instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFile<R = Vec<ExportRow>> {
    pub format: String,
    pub version: u32,
    pub database: String,
    /// Microseconds since the Unix epoch.
    pub exported_at_us: i64,
    pub range: ExportRange,
    /// `prev_hash` of the first exported row: the genesis hash when the export
    /// starts at seq 1, otherwise the row_hash of the row before it.
    #[serde(with = "hexbytes")]
    pub anchor: [u8; 32],
    #[serde(with = "hexbytes")]
    pub public_key: [u8; 32],
    /// The latest signed head of the database when exported, in range or not.
    pub latest_head: Option<HeadEntry>,
    /// Every signed head whose seq is within the range, oldest first.
    pub signed_heads: Vec<HeadEntry>,
    pub rows: R,
    /// SHA-256 of the digest input (docs/EXPORT_FORMAT.md §4).
    #[serde(with = "hexbytes")]
    pub digest: [u8; 32],
    /// HMAC-SHA256 of `digest` with the database's HMAC key.
    #[serde(with = "hexbytes")]
    pub hmac: [u8; 32],
    /// Ed25519 signature of `digest`.
    #[serde(with = "hexbytes")]
    pub signature: [u8; 64],
}

/// The file's fields but the rows, read by serde from the text before and
/// after the rows array with `[]` in its place, if they form an export whose
/// `rows` is exactly that `[]`.
pub(crate) fn header_around(before: &[u8], after: &[u8]) -> Option<ExportFile<()>> {
    let mut rest = Vec::with_capacity(before.len() + 2 + after.len());
    rest.extend_from_slice(before);
    rest.extend_from_slice(b"[]");
    rest.extend_from_slice(after);
    let file: ExportFile<&RawValue> = serde_json::from_slice(&rest).ok()?;
    let rows = file.rows.get().as_bytes();
    if rows != b"[]" || rows.as_ptr() as usize - rest.as_ptr() as usize != before.len() {
        return None;
    }
    Some(file.with_rows(()))
}

/// Which part of the chain the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRange {
    /// Seq of the first row.
    pub from: i64,
    /// Seq of the last row (`from - 1` when there are none).
    pub to: i64,
    /// The export claims to run to the end of the journal as it was at export
    /// time, so a signed head beyond `to` means the log was truncated.
    pub to_end: bool,
}

/// A signed head inside an export (its database is the file's). Version 2
/// names its signer: the public key that signed it and the collector that
/// holds that key (several collectors sign one database's heads); in a
/// version 1 file both are absent and the file's public key signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadEntry {
    pub seq: i64,
    #[serde(with = "hexbytes")]
    pub row_hash: [u8; 32],
    pub signed_at_us: i64,
    #[serde(with = "hexbytes")]
    pub hmac: [u8; 32],
    #[serde(with = "hexbytes")]
    pub signature: [u8; 64],
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "hexbytes::option"
    )]
    pub public_key: Option<[u8; 32]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
}

impl HeadEntry {
    pub fn from_signed(head: &SignedHead) -> HeadEntry {
        HeadEntry {
            seq: head.seq,
            row_hash: head.row_hash,
            signed_at_us: head.signed_at_us,
            hmac: head.hmac,
            signature: head.signature,
            public_key: Some(head.public_key),
            collector: Some(head.collector.clone().unwrap_or_default()),
        }
    }

    /// The key that signed this head: its own, else (version 1) the file's.
    pub fn key<'a>(&'a self, file_key: &'a [u8; 32]) -> &'a [u8; 32] {
        self.public_key.as_ref().unwrap_or(file_key)
    }

    /// The full head, with the file's database (and, version 1, its key).
    pub fn to_signed(&self, database: &str, public_key: &[u8; 32]) -> SignedHead {
        SignedHead {
            database: database.to_owned(),
            seq: self.seq,
            row_hash: self.row_hash,
            signed_at_us: self.signed_at_us,
            hmac: self.hmac,
            signature: self.signature,
            public_key: *self.key(public_key),
            collector: self.collector.clone(),
        }
    }
}

/// One journal row with its chain hashes. In JSON: the `JournalRow` fields
/// (NULL ones left out, `fingerprint` as hex) plus `prev_hash` and `row_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub row: JournalRow,
    pub prev_hash: [u8; 32],
    pub row_hash: [u8; 32],
}

/// Builds and signs an export of `database`.
///
/// `rows`: the journal rows in seq order, exactly as stored (a tampered row
/// is exported as it is: finding it is the verifier's job). `heads`: the
/// database's signed heads (any order; those within the rows' range go in
/// `signed_heads`, the one of the highest seq in `latest_head`). `from`:
/// the first seq asked for, used only when there are no rows. `to`: `None`
/// when the rows run to the journal's end; `Some(n)` for an export that stops
/// at `n` (if the rows end before `n`, the export reaches the journal's end).
///
/// The reference for `ExportStream`, which writes the same bytes without
/// holding the rows.
pub fn build_export(
    database: &str,
    rows: &[(JournalRow, [u8; 32], [u8; 32])],
    heads: &[SignedHead],
    keys: &Keys,
    exported_at_us: i64,
    from: i64,
    to: Option<i64>,
) -> ExportFile {
    let bounds = match (rows.first(), rows.last()) {
        (Some(f), Some(l)) => Some(RowBounds {
            first: f.0.seq,
            last: l.0.seq,
            anchor: f.1,
        }),
        _ => None,
    };
    let header = export_header(database, bounds, heads, keys, exported_at_us, from, to);
    let mut file = header.with_rows(
        rows.iter()
            .map(|(row, prev_hash, row_hash)| ExportRow {
                row: row.clone(),
                prev_hash: *prev_hash,
                row_hash: *row_hash,
            })
            .collect(),
    );
    sign_export(&mut file, keys);
    file
}

/// The exported rows' first and last seq, and the first row's `prev_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowBounds {
    pub first: i64,
    pub last: i64,
    pub anchor: [u8; 32],
}

/// Everything of an export but its rows and signatures, which is all known
/// before the first row is written: the range, the anchor and the heads.
/// `bounds`: `None` when no row is exported; the other arguments are those
/// of `build_export`.
pub fn export_header(
    database: &str,
    bounds: Option<RowBounds>,
    heads: &[SignedHead],
    keys: &Keys,
    exported_at_us: i64,
    from: i64,
    to: Option<i64>,
) -> ExportFile<()> {
    let (first, last) = bounds.map_or((from, from - 1), |b| (b.first, b.last));
    let anchor = bounds.map_or(GENESIS_HASH, |b| b.anchor);
    let mut in_range: Vec<&SignedHead> = heads
        .iter()
        .filter(|h| (first..=last).contains(&h.seq))
        .collect();
    in_range.sort_by_key(|h| (h.seq, h.signed_at_us));
    let latest = heads.iter().max_by_key(|h| (h.seq, h.signed_at_us));
    ExportFile {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        database: database.into(),
        exported_at_us,
        range: ExportRange {
            from: first,
            to: last,
            to_end: match to {
                None => true,
                Some(n) => last < n,
            },
        },
        anchor,
        public_key: keys.public_key(),
        latest_head: latest.map(HeadEntry::from_signed),
        signed_heads: in_range.into_iter().map(HeadEntry::from_signed).collect(),
        rows: (),
        digest: [0; 32],
        hmac: [0; 32],
        signature: [0; 64],
    }
}

impl<R> ExportFile<R> {
    /// The same file with `rows` in place of its rows.
    pub fn with_rows<T>(self, rows: T) -> ExportFile<T> {
        ExportFile {
            format: self.format,
            version: self.version,
            database: self.database,
            exported_at_us: self.exported_at_us,
            range: self.range,
            anchor: self.anchor,
            public_key: self.public_key,
            latest_head: self.latest_head,
            signed_heads: self.signed_heads,
            rows,
            digest: self.digest,
            hmac: self.hmac,
            signature: self.signature,
        }
    }
}

/// (Re)computes the digest and both signatures of `file`.
pub fn sign_export(file: &mut ExportFile, keys: &Keys) {
    file.public_key = keys.public_key();
    let hashes = file.rows.iter().map(|r| &r.row_hash);
    (file.digest, file.hmac, file.signature) = export_signatures(file, hashes, keys);
}

/// The digest of `file` with these row hashes, its HMAC and its Ed25519
/// signature (`file.public_key` must be that of `keys`).
pub fn export_signatures<'a, R>(
    file: &ExportFile<R>,
    row_hashes: impl ExactSizeIterator<Item = &'a [u8; 32]>,
    keys: &Keys,
) -> ([u8; 32], [u8; 32], [u8; 64]) {
    let digest = export_digest(file, row_hashes);
    let hmac = hmac_sha256(keys.hmac_key(), &digest);
    let signature = keys.signing_key().sign(&digest).to_bytes();
    (digest, hmac, signature)
}

/// SHA-256 of the digest input (docs/EXPORT_FORMAT.md §4). Rows enter it by
/// their `row_hash` only: a verifier that has checked the chain has checked
/// that every row's fields, seq and prev_hash are those hashed into it.
pub fn export_digest<'a, R>(
    file: &ExportFile<R>,
    row_hashes: impl ExactSizeIterator<Item = &'a [u8; 32]>,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    digest_input(file, row_hashes, |bytes| hasher.update(bytes));
    hasher.finalize().into()
}

/// The digest input itself, whole (for vectors and the worked example).
pub fn export_digest_input(file: &ExportFile) -> Vec<u8> {
    let mut input = Vec::new();
    digest_input(file, file.rows.iter().map(|r| &r.row_hash), |b| {
        input.extend_from_slice(b)
    });
    input
}

fn digest_input<'a, R>(
    file: &ExportFile<R>,
    row_hashes: impl ExactSizeIterator<Item = &'a [u8; 32]>,
    mut sink: impl FnMut(&[u8]),
) {
    let mut head = Input::with_capacity(256);
    head.byte(file.version as u8);
    head.text(EXPORT_DOMAIN);
    head.text(&file.database);
    head.int(file.exported_at_us);
    head.int(file.range.from);
    head.int(file.range.to);
    head.byte(u8::from(file.range.to_end));
    head.raw(&file.anchor);
    head.raw(&file.public_key);
    head.int(row_hashes.len() as i64);
    sink(&head.into_bytes());
    for hash in row_hashes {
        sink(hash);
    }
    let mut tail = Input::with_capacity(64 + 144 * (file.signed_heads.len() + 1));
    tail.int(file.signed_heads.len() as i64);
    for h in &file.signed_heads {
        head_entry(&mut tail, h);
    }
    match &file.latest_head {
        None => tail.byte(0),
        Some(h) => {
            tail.byte(1);
            head_entry(&mut tail, h);
        }
    }
    sink(&tail.into_bytes());
}

fn head_entry(input: &mut Input, h: &HeadEntry) {
    input.int(h.seq);
    input.raw(&h.row_hash);
    input.int(h.signed_at_us);
    input.raw(&h.hmac);
    input.raw(&h.signature);
    // Version 2: the signer, so that nobody can move a head to another
    // collector's name unnoticed.
    if let Some(key) = &h.public_key {
        input.raw(key);
        input.text(h.collector.as_deref().unwrap_or_default());
    }
}

impl ExportFile {
    /// Writes the file as exported: one field per line, one row or head per
    /// line, so that a person can read it and `diff` two exports. The layout
    /// is that of `write_opening`, `write_row` and `write_closing`, which
    /// `ExportStream` writes too.
    pub fn write_json(&self, mut out: impl Write) -> std::io::Result<()> {
        write_opening(self, &mut out)?;
        for (index, row) in self.rows.iter().enumerate() {
            write_row(&mut out, index, row)?;
        }
        write_closing(self, self.rows.len(), &mut out)
    }

    /// The file as exported (see `write_json`).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out).expect("writing to memory");
        String::from_utf8(out).expect("JSON is UTF-8")
    }
}

fn json_value(v: &impl Serialize) -> String {
    serde_json::to_string(v).expect("export values always serialise")
}

/// The file up to the opening of its `rows` array (the rest of that line is
/// written by the first row, or by `write_closing` if there is none).
pub fn write_opening<R>(file: &ExportFile<R>, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{{")?;
    writeln!(out, "  \"format\": {},", json_value(&file.format))?;
    writeln!(out, "  \"version\": {},", file.version)?;
    writeln!(out, "  \"database\": {},", json_value(&file.database))?;
    writeln!(out, "  \"exported_at_us\": {},", file.exported_at_us)?;
    writeln!(out, "  \"range\": {},", json_value(&file.range))?;
    writeln!(out, "  \"anchor\": \"{}\",", hex::encode(file.anchor))?;
    writeln!(
        out,
        "  \"public_key\": \"{}\",",
        hex::encode(file.public_key)
    )?;
    writeln!(out, "  \"latest_head\": {},", json_value(&file.latest_head))?;
    write!(out, "  \"signed_heads\": [")?;
    for (index, head) in file.signed_heads.iter().enumerate() {
        write_item(out, index, head)?;
    }
    close_list(out, file.signed_heads.len())?;
    write!(out, "  \"rows\": [")
}

/// Row number `index` (from 0) of the `rows` array, on a line of its own
/// (after the comma that ends the previous one).
pub fn write_row(out: &mut impl Write, index: usize, row: &ExportRow) -> std::io::Result<()> {
    write_item(out, index, row)
}

/// The end of the `rows` array (of `rows` rows) and the fields after it.
pub fn write_closing<R>(
    file: &ExportFile<R>,
    rows: usize,
    out: &mut impl Write,
) -> std::io::Result<()> {
    close_list(out, rows)?;
    writeln!(out, "  \"digest\": \"{}\",", hex::encode(file.digest))?;
    writeln!(out, "  \"hmac\": \"{}\",", hex::encode(file.hmac))?;
    writeln!(out, "  \"signature\": \"{}\"", hex::encode(file.signature))?;
    writeln!(out, "}}")
}

fn write_item(out: &mut impl Write, index: usize, item: &impl Serialize) -> std::io::Result<()> {
    let separator = if index == 0 { "" } else { "," };
    write!(out, "{separator}\n    ")?;
    serde_json::to_writer(&mut *out, item)?;
    Ok(())
}

fn close_list(out: &mut impl Write, items: usize) -> std::io::Result<()> {
    let close = if items == 0 { "" } else { "\n  " };
    writeln!(out, "{close}],")
}

// ---- row JSON -------------------------------------------------------------

/// A row's fields in the order they are written (`RowOut`): seq, the two
/// hashes, then the journal's fields in canonical order — proto's
/// `fields::COLUMNS`, by their names in a row.
pub const ROW_FIELDS: [&str; fields::COLUMN_COUNT] = {
    let mut out = [""; fields::COLUMN_COUNT];
    let mut i = 0;
    while i < fields::COLUMN_COUNT {
        out[i] = fields::COLUMNS[i].name();
        i += 1;
    }
    out
};

/// A row as written. Destructuring `JournalRow` without `..` below makes a new
/// journal field a compile error here rather than a silently unexported one.
#[derive(Serialize)]
struct RowOut<'a> {
    seq: i64,
    #[serde(with = "hexbytes")]
    prev_hash: [u8; 32],
    #[serde(with = "hexbytes")]
    row_hash: [u8; 32],
    database: &'a str,
    kind: &'a str,
    recorded_at_us: i64,
    collector: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_pid: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_uid: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at_us: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_us: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_keys: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_names: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_out: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_in: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addon: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addon_path: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    odoo_uid: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    self_egress: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gap_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gap_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl Serialize for ExportRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let JournalRow {
            seq,
            database,
            kind,
            recorded_at_us,
            collector,
            worker_id,
            worker_pid,
            worker_uid,
            worker_seq,
            started_at_us,
            duration_us,
            channel,
            protocol,
            direction,
            method,
            host,
            port,
            path,
            query_keys,
            header_names,
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            tls,
            status,
            error_class,
            bytes_out,
            bytes_in,
            fingerprint,
            addon,
            addon_path,
            stack,
            trigger_kind,
            trigger_name,
            odoo_uid,
            component,
            class,
            self_egress,
            gap_count,
            gap_reason,
            detail,
        } = &self.row;
        RowOut {
            seq: *seq,
            prev_hash: self.prev_hash,
            row_hash: self.row_hash,
            database,
            kind,
            recorded_at_us: *recorded_at_us,
            collector,
            worker_id: *worker_id,
            worker_pid: *worker_pid,
            worker_uid: *worker_uid,
            worker_seq: *worker_seq,
            started_at_us: *started_at_us,
            duration_us: *duration_us,
            channel: channel.as_deref(),
            protocol: protocol.as_deref(),
            direction: direction.as_deref(),
            method: method.as_deref(),
            host: host.as_deref(),
            port: *port,
            path: path.as_deref(),
            query_keys: query_keys.as_deref(),
            header_names: header_names.as_deref(),
            src_ip: src_ip.as_deref(),
            src_port: *src_port,
            dst_ip: dst_ip.as_deref(),
            dst_port: *dst_port,
            tls: *tls,
            status: *status,
            error_class: error_class.as_deref(),
            bytes_out: *bytes_out,
            bytes_in: *bytes_in,
            fingerprint: fingerprint.as_deref().map(hex::encode),
            addon: addon.as_deref(),
            addon_path: addon_path.as_deref(),
            stack: stack.as_deref(),
            trigger_kind: trigger_kind.as_deref(),
            trigger_name: trigger_name.as_deref(),
            odoo_uid: *odoo_uid,
            component: component.as_deref(),
            class: class.as_deref(),
            self_egress: *self_egress,
            gap_count: *gap_count,
            gap_reason: gap_reason.as_deref(),
            detail: detail.as_deref(),
        }
        .serialize(s)
    }
}

/// A row as read: the first five journal fields and both hashes are
/// required; an absent optional field is NULL; an unknown field is an error
/// (it would be content no hash covers).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowIn {
    seq: i64,
    #[serde(with = "hexbytes")]
    prev_hash: [u8; 32],
    #[serde(with = "hexbytes")]
    row_hash: [u8; 32],
    database: String,
    kind: String,
    recorded_at_us: i64,
    collector: String,
    worker_id: Option<i64>,
    worker_pid: Option<i64>,
    worker_uid: Option<i64>,
    worker_seq: Option<i64>,
    started_at_us: Option<i64>,
    duration_us: Option<i64>,
    channel: Option<String>,
    protocol: Option<String>,
    direction: Option<String>,
    method: Option<String>,
    host: Option<String>,
    port: Option<i64>,
    path: Option<String>,
    query_keys: Option<Vec<String>>,
    header_names: Option<Vec<String>>,
    src_ip: Option<String>,
    src_port: Option<i64>,
    dst_ip: Option<String>,
    dst_port: Option<i64>,
    tls: Option<bool>,
    status: Option<i64>,
    error_class: Option<String>,
    bytes_out: Option<i64>,
    bytes_in: Option<i64>,
    #[serde(default, deserialize_with = "hex_vec")]
    fingerprint: Option<Vec<u8>>,
    addon: Option<String>,
    addon_path: Option<Vec<String>>,
    stack: Option<Vec<String>>,
    trigger_kind: Option<String>,
    trigger_name: Option<String>,
    odoo_uid: Option<i64>,
    component: Option<String>,
    class: Option<String>,
    self_egress: Option<bool>,
    gap_count: Option<i64>,
    gap_reason: Option<String>,
    detail: Option<String>,
}

fn hex_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let text = <Option<String>>::deserialize(d)?;
    text.map(|t| {
        // Even length and hex digits only; no whitespace, no prefix.
        hex::decode(&t).map_err(|e| serde::de::Error::custom(format!("fingerprint: {e}")))
    })
    .transpose()
}

impl<'de> Deserialize<'de> for ExportRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RowIn::deserialize(d)?;
        Ok(ExportRow {
            prev_hash: r.prev_hash,
            row_hash: r.row_hash,
            row: JournalRow {
                seq: r.seq,
                database: r.database,
                kind: r.kind,
                recorded_at_us: r.recorded_at_us,
                collector: r.collector,
                worker_id: r.worker_id,
                worker_pid: r.worker_pid,
                worker_uid: r.worker_uid,
                worker_seq: r.worker_seq,
                started_at_us: r.started_at_us,
                duration_us: r.duration_us,
                channel: r.channel,
                protocol: r.protocol,
                direction: r.direction,
                method: r.method,
                host: r.host,
                port: r.port,
                path: r.path,
                query_keys: r.query_keys,
                header_names: r.header_names,
                src_ip: r.src_ip,
                src_port: r.src_port,
                dst_ip: r.dst_ip,
                dst_port: r.dst_port,
                tls: r.tls,
                status: r.status,
                error_class: r.error_class,
                bytes_out: r.bytes_out,
                bytes_in: r.bytes_in,
                fingerprint: r.fingerprint,
                addon: r.addon,
                addon_path: r.addon_path,
                stack: r.stack,
                trigger_kind: r.trigger_kind,
                trigger_name: r.trigger_name,
                odoo_uid: r.odoo_uid,
                component: r.component,
                class: r.class,
                self_egress: r.self_egress,
                gap_count: r.gap_count,
                gap_reason: r.gap_reason,
                detail: r.detail,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_written_with_their_fields_in_the_order_of_row_fields() {
        let vectors: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../proto/vectors/journal_chain.json")).unwrap();
        let call: JournalRow = serde_json::from_value(vectors[0]["row"].clone()).unwrap();
        // Every field set, so that every one is written.
        let row = ExportRow {
            row: JournalRow {
                component: Some("c".into()),
                class: Some("vendor".into()),
                gap_count: Some(1),
                gap_reason: Some("r".into()),
                detail: Some("d".into()),
                ..call
            },
            prev_hash: [0; 32],
            row_hash: [1; 32],
        };
        let text = serde_json::to_string(&row).unwrap();
        let at: Vec<usize> = ROW_FIELDS
            .iter()
            .map(|name| text.find(&format!("\"{name}\":")).expect(name))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(text.matches("\":").count(), ROW_FIELDS.len(), "{text}");
    }
}
