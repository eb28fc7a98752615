//! The signed export file (docs/EXPORT_FORMAT.md §3–4): rows with their chain
//! positions and hashes, the anchor, the signed heads, the public key, and an
//! HMAC and an Ed25519 signature over a digest of all of it.

use egress_proto::{JournalRow, GENESIS_HASH};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::encode::Input;
use crate::head::{hmac_sha256, SignedHead};
use crate::hexbytes;
use crate::keys::Keys;
use ed25519_dalek::Signer;

/// Value of the file's `format` field.
pub const EXPORT_FORMAT: &str = "egress-audit-export";
/// Value of the file's `version` field, and first byte of the digest input.
pub const EXPORT_VERSION: u32 = 1;
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

/// A signed head inside an export (its database and public key are the file's).
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
}

impl HeadEntry {
    pub fn from_signed(head: &SignedHead) -> HeadEntry {
        HeadEntry {
            seq: head.seq,
            row_hash: head.row_hash,
            signed_at_us: head.signed_at_us,
            hmac: head.hmac,
            signature: head.signature,
        }
    }

    /// The full head, with the file's database and public key.
    pub fn to_signed(&self, database: &str, public_key: &[u8; 32]) -> SignedHead {
        SignedHead {
            database: database.to_owned(),
            seq: self.seq,
            row_hash: self.row_hash,
            signed_at_us: self.signed_at_us,
            hmac: self.hmac,
            signature: self.signature,
            public_key: *public_key,
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
pub fn build_export(
    database: &str,
    rows: &[(JournalRow, [u8; 32], [u8; 32])],
    heads: &[SignedHead],
    keys: &Keys,
    exported_at_us: i64,
    from: i64,
    to: Option<i64>,
) -> ExportFile {
    let (first, last) = match (rows.first(), rows.last()) {
        (Some(f), Some(l)) => (f.0.seq, l.0.seq),
        _ => (from, from - 1),
    };
    let anchor = rows.first().map_or(GENESIS_HASH, |r| r.1);
    let mut in_range: Vec<&SignedHead> = heads
        .iter()
        .filter(|h| (first..=last).contains(&h.seq))
        .collect();
    in_range.sort_by_key(|h| (h.seq, h.signed_at_us));
    let latest = heads.iter().max_by_key(|h| (h.seq, h.signed_at_us));
    let mut file = ExportFile {
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
        rows: rows
            .iter()
            .map(|(row, prev_hash, row_hash)| ExportRow {
                row: row.clone(),
                prev_hash: *prev_hash,
                row_hash: *row_hash,
            })
            .collect(),
        digest: [0; 32],
        hmac: [0; 32],
        signature: [0; 64],
    };
    sign_export(&mut file, keys);
    file
}

/// (Re)computes the digest and both signatures of `file`.
pub fn sign_export(file: &mut ExportFile, keys: &Keys) {
    file.public_key = keys.public_key();
    file.digest = export_digest(file, file.rows.iter().map(|r| &r.row_hash));
    file.hmac = hmac_sha256(keys.hmac_key(), &file.digest);
    file.signature = keys.signing_key().sign(&file.digest).to_bytes();
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
    head.byte(EXPORT_VERSION as u8);
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
}

impl ExportFile {
    /// Writes the file as exported: one field per line, one row or head per
    /// line, so that a person can read it and `diff` two exports.
    pub fn write_json(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        fn value(v: &impl Serialize) -> String {
            serde_json::to_string(v).expect("export values always serialise")
        }
        fn list<T: Serialize>(
            out: &mut impl std::io::Write,
            name: &str,
            items: &[T],
        ) -> std::io::Result<()> {
            write!(out, "  \"{name}\": [")?;
            for (i, item) in items.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                write!(out, "{sep}\n    ")?;
                serde_json::to_writer(&mut *out, item)?;
            }
            let close = if items.is_empty() { "" } else { "\n  " };
            writeln!(out, "{close}],")
        }
        writeln!(out, "{{")?;
        writeln!(out, "  \"format\": {},", value(&self.format))?;
        writeln!(out, "  \"version\": {},", self.version)?;
        writeln!(out, "  \"database\": {},", value(&self.database))?;
        writeln!(out, "  \"exported_at_us\": {},", self.exported_at_us)?;
        writeln!(out, "  \"range\": {},", value(&self.range))?;
        writeln!(out, "  \"anchor\": \"{}\",", hex::encode(self.anchor))?;
        writeln!(
            out,
            "  \"public_key\": \"{}\",",
            hex::encode(self.public_key)
        )?;
        writeln!(out, "  \"latest_head\": {},", value(&self.latest_head))?;
        list(&mut out, "signed_heads", &self.signed_heads)?;
        list(&mut out, "rows", &self.rows)?;
        writeln!(out, "  \"digest\": \"{}\",", hex::encode(self.digest))?;
        writeln!(out, "  \"hmac\": \"{}\",", hex::encode(self.hmac))?;
        writeln!(out, "  \"signature\": \"{}\"", hex::encode(self.signature))?;
        writeln!(out, "}}")
    }

    /// The file as exported (see `write_json`).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out).expect("writing to memory");
        String::from_utf8(out).expect("JSON is UTF-8")
    }
}

// ---- row JSON -------------------------------------------------------------

/// A row's fields in the order they are written (`RowOut`): seq, the two
/// hashes, then the journal's fields in canonical order.
pub const ROW_FIELDS: [&str; 44] = [
    "seq",
    "prev_hash",
    "row_hash",
    "database",
    "kind",
    "recorded_at_us",
    "collector",
    "worker_id",
    "worker_pid",
    "worker_uid",
    "worker_seq",
    "started_at_us",
    "duration_us",
    "channel",
    "protocol",
    "direction",
    "method",
    "host",
    "port",
    "path",
    "query_keys",
    "header_names",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "tls",
    "status",
    "error_class",
    "bytes_out",
    "bytes_in",
    "fingerprint",
    "addon",
    "addon_path",
    "stack",
    "trigger_kind",
    "trigger_name",
    "odoo_uid",
    "component",
    "class",
    "self_egress",
    "gap_count",
    "gap_reason",
    "detail",
];

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
