//! The journal row, its canonical encoding and the chain hash
//! `row_hash = SHA-256(prev_hash ‖ canonical(row))` (docs/JOURNAL_FORMAT.md).
//!
//! The canonical encoding is deliberately simple (presence byte, big-endian
//! integers, length-prefixed text) so that a verifier in any language can be
//! written from the spec alone. Every column a reader sees is hashed: a value
//! changed in the database breaks the chain at that row.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first row of every chain.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];
/// First byte of every canonical encoding; bumped if the field list changes.
pub const CANONICAL_VERSION: u8 = 1;
/// PostgreSQL advisory lock (transaction-scoped) that every writer of a
/// database's chain holds from reading the head to committing: appenders of
/// every collector, and the retention vacuum. Fixed, so writers built from
/// different crates (and the vacuum's SQL function) serialise on one key.
pub const CHAIN_LOCK_KEY: i64 = 0x6567_7265_7373; // "egress"

/// What a journal row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// One outbound network call.
    Call,
    /// Events that were lost, with how many and why.
    Gap,
    /// An audit setting changed.
    ConfigChange,
    /// Retention removed the rows before this database's anchor; `detail`
    /// says which (docs/JOURNAL_FORMAT.md §6).
    Vacuum,
    /// Calls refused because their (worker, seq) was already accounted:
    /// `gap_count` of them, `gap_reason` `duplicate_seq` or `backward_seq`.
    /// Not a loss: the events were journaled (or counted) the first time.
    Duplicate,
    /// The signer refused to sign a head inconsistent with one it signed
    /// before, or an operator resumed signing; `detail` says which.
    Alarm,
    /// Forensic body capture was enabled, changed, disabled or expired;
    /// `detail` says by whom, for which scope and until when.
    ForensicCapture,
    /// A captured body was read; `detail` names the call's seq and the
    /// reader. Committed before the body is released.
    ForensicRead,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Call => "call",
            EntryKind::Gap => "gap",
            EntryKind::ConfigChange => "config_change",
            EntryKind::Vacuum => "vacuum",
            EntryKind::Duplicate => "duplicate",
            EntryKind::Alarm => "alarm",
            EntryKind::ForensicCapture => "forensic_capture",
            EntryKind::ForensicRead => "forensic_read",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "call" => Some(EntryKind::Call),
            "gap" => Some(EntryKind::Gap),
            "config_change" => Some(EntryKind::ConfigChange),
            "vacuum" => Some(EntryKind::Vacuum),
            "duplicate" => Some(EntryKind::Duplicate),
            "alarm" => Some(EntryKind::Alarm),
            "forensic_capture" => Some(EntryKind::ForensicCapture),
            "forensic_read" => Some(EntryKind::ForensicRead),
            _ => None,
        }
    }
}

/// One row of `egress.journal`, as hashed. Fields are in canonical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct JournalRow {
    pub seq: i64,
    pub database: String,
    /// `call`, `gap`, `config_change`, `vacuum`, `duplicate`, `alarm`,
    /// `forensic_capture` or `forensic_read` (`EntryKind`).
    pub kind: String,
    /// Microseconds since the Unix epoch, when the collector appended the row.
    pub recorded_at_us: i64,
    /// Host name of the collector that appended the row.
    pub collector: String,
    pub worker_id: Option<i64>,
    /// The kernel's pid and uid of the sender, never the sender's claim.
    pub worker_pid: Option<i64>,
    pub worker_uid: Option<i64>,
    pub worker_seq: Option<i64>,
    pub started_at_us: Option<i64>,
    pub duration_us: Option<i64>,
    pub channel: Option<String>,
    pub protocol: Option<String>,
    pub direction: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub path: Option<String>,
    pub query_keys: Option<Vec<String>>,
    pub header_names: Option<Vec<String>>,
    pub src_ip: Option<String>,
    pub src_port: Option<i64>,
    pub dst_ip: Option<String>,
    pub dst_port: Option<i64>,
    pub tls: Option<bool>,
    pub status: Option<i64>,
    pub error_class: Option<String>,
    pub bytes_out: Option<i64>,
    pub bytes_in: Option<i64>,
    /// HMAC of the payload digest with the database's salt; never the digest.
    pub fingerprint: Option<Vec<u8>>,
    pub addon: Option<String>,
    /// Addons on the stack, innermost first.
    pub addon_path: Option<Vec<String>>,
    /// `file:line function`, innermost first.
    pub stack: Option<Vec<String>>,
    pub trigger_kind: Option<String>,
    pub trigger_name: Option<String>,
    pub odoo_uid: Option<i64>,
    pub component: Option<String>,
    pub class: Option<String>,
    pub self_egress: Option<bool>,
    pub gap_count: Option<i64>,
    pub gap_reason: Option<String>,
    /// Free-form JSON text for entries other than calls (e.g. config changes).
    pub detail: Option<String>,
}

/// Appends canonical encodings of values to a buffer.
struct Canonical(Vec<u8>);

impl Canonical {
    fn int(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn bytes(&mut self, value: &[u8]) {
        // Lengths are capped far below 4 GiB by the collector; saturate rather
        // than wrap so an impossible length can never alias a shorter one.
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(value);
    }

    fn text(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    fn opt<T: ?Sized>(&mut self, value: Option<&T>, write: impl FnOnce(&mut Self, &T)) {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                write(self, v);
            }
        }
    }

    fn opt_int(&mut self, value: Option<i64>) {
        self.opt(value.as_ref(), |c, v| c.int(*v));
    }

    fn opt_text(&mut self, value: &Option<String>) {
        self.opt(value.as_deref(), |c, v| c.text(v));
    }

    fn opt_list(&mut self, value: &Option<Vec<String>>) {
        self.opt(value.as_deref(), |c, items| {
            c.int(items.len() as i64);
            for item in items {
                c.text(item);
            }
        });
    }

    fn opt_bool(&mut self, value: Option<bool>) {
        self.opt(value.as_ref(), |c, v| c.0.push(u8::from(*v)));
    }
}

impl JournalRow {
    /// The canonical encoding hashed into the chain (docs/JOURNAL_FORMAT.md).
    pub fn canonical(&self) -> Vec<u8> {
        let mut c = Canonical(Vec::with_capacity(512));
        c.0.push(CANONICAL_VERSION);
        c.int(self.seq);
        c.text(&self.database);
        c.text(&self.kind);
        c.int(self.recorded_at_us);
        c.text(&self.collector);
        c.opt_int(self.worker_id);
        c.opt_int(self.worker_pid);
        c.opt_int(self.worker_uid);
        c.opt_int(self.worker_seq);
        c.opt_int(self.started_at_us);
        c.opt_int(self.duration_us);
        c.opt_text(&self.channel);
        c.opt_text(&self.protocol);
        c.opt_text(&self.direction);
        c.opt_text(&self.method);
        c.opt_text(&self.host);
        c.opt_int(self.port);
        c.opt_text(&self.path);
        c.opt_list(&self.query_keys);
        c.opt_list(&self.header_names);
        c.opt_text(&self.src_ip);
        c.opt_int(self.src_port);
        c.opt_text(&self.dst_ip);
        c.opt_int(self.dst_port);
        c.opt_bool(self.tls);
        c.opt_int(self.status);
        c.opt_text(&self.error_class);
        c.opt_int(self.bytes_out);
        c.opt_int(self.bytes_in);
        c.opt(self.fingerprint.as_deref(), |c, v| c.bytes(v));
        c.opt_text(&self.addon);
        c.opt_list(&self.addon_path);
        c.opt_list(&self.stack);
        c.opt_text(&self.trigger_kind);
        c.opt_text(&self.trigger_name);
        c.opt_int(self.odoo_uid);
        c.opt_text(&self.component);
        c.opt_text(&self.class);
        c.opt_bool(self.self_egress);
        c.opt_int(self.gap_count);
        c.opt_text(&self.gap_reason);
        c.opt_text(&self.detail);
        c.0
    }

    /// This row's hash when chained after `prev_hash`.
    pub fn hash_after(&self, prev_hash: &[u8; 32]) -> [u8; 32] {
        chain_hash(prev_hash, &self.canonical())
    }
}

/// `SHA-256(prev_hash ‖ canonical)`.
pub fn chain_hash(prev_hash: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_empty_values_hash_differently() {
        let base = JournalRow {
            seq: 1,
            database: "d".into(),
            kind: "call".into(),
            ..Default::default()
        };
        let with_empty = JournalRow {
            path: Some(String::new()),
            ..base.clone()
        };
        let with_empty_list = JournalRow {
            query_keys: Some(vec![]),
            ..base.clone()
        };
        assert_ne!(base.canonical(), with_empty.canonical());
        assert_ne!(base.canonical(), with_empty_list.canonical());
        assert_ne!(with_empty.canonical(), with_empty_list.canonical());
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let a = JournalRow {
            host: Some("ab".into()),
            path: Some("c".into()),
            ..Default::default()
        };
        let b = JournalRow {
            host: Some("a".into()),
            path: Some("bc".into()),
            ..Default::default()
        };
        assert_ne!(a.hash_after(&GENESIS_HASH), b.hash_after(&GENESIS_HASH));
    }

    #[test]
    fn the_chain_depends_on_the_previous_hash() {
        let row = JournalRow {
            seq: 2,
            ..Default::default()
        };
        assert_ne!(row.hash_after(&GENESIS_HASH), row.hash_after(&[1u8; 32]));
    }
}
