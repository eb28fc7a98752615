//! The messages a hook sends to the collector. No type here but
//! `ForensicBody` has a body field: a payload travels only as its SHA-256
//! digest (DESIGN §1.2), unless forensic capture is on for the call.
//!
//! Field order is part of the wire format (bincode encodes fields in
//! declaration order): append new fields only behind a new format version.

use serde::{Deserialize, Serialize};

/// Sent when a worker starts and every minute: who is sending, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Hello {
    /// Random id of this worker process, new after every fork.
    pub worker_id: u64,
    /// The pid the worker believes it has; the collector records the kernel's.
    pub pid: u32,
    /// Microseconds since the Unix epoch.
    pub sent_at_us: i64,
    pub odoo_version: String,
    pub python_version: String,
    /// `native` (PyO3), `python` (fallback encoder) or `rust` (the Rust API).
    pub hook_mode: String,
    pub hook_version: String,
    /// The worker's addons paths, so stack frames can be mapped to addons.
    pub addons_paths: Vec<String>,
    /// Databases the worker serves, if known.
    pub databases: Vec<String>,
}

/// One frame of the Python stack that led to a call, innermost first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StackFrame {
    pub file: String,
    pub function: String,
    pub line: u32,
}

/// What inside Odoo caused the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Trigger {
    /// `http`, `cron`, `queue_job`, `shell`, or empty when unknown.
    pub kind: String,
    /// The HTTP route, cron job or queue job name.
    pub name: String,
    /// The Odoo user id, when there is one.
    pub uid: Option<i64>,
}

/// The channels the hook reports (`Call::channel`), as `watch --channel`
/// accepts them; the Python interceptor's `CHANNELS` is the same list.
pub const CHANNELS: &[&str] = &["http", "smtp", "imap", "pop3", "socket", "dns"];

/// One logical outbound network call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Call {
    pub worker_id: u64,
    /// Per worker and database, from 1, gapless on the sender side: a jump
    /// seen by the collector is a loss nobody reported.
    pub seq: u64,
    /// The Odoo database the call was made for; empty when unknown.
    pub database: String,
    pub started_at_us: i64,
    pub duration_us: u64,
    /// `http`, `smtp`, `imap`, `pop3`, `socket`, `dns`, ...
    pub channel: String,
    /// `https`, `http`, `smtp`, `tcp`, `udp`, ...
    pub protocol: String,
    /// `outbound` for every call we capture today.
    pub direction: String,
    /// HTTP method or protocol command (`GET`, `EHLO`, `connect`, ...).
    pub method: String,
    pub host: String,
    pub port: u16,
    /// URL path only: never the query string, fragment or userinfo.
    pub path: String,
    /// Names of the query keys; their values never leave the worker.
    pub query_keys: Vec<String>,
    /// Names of the request headers; their values never leave the worker.
    pub header_names: Vec<String>,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_ip: String,
    pub dst_port: u16,
    pub tls: bool,
    pub status: Option<u32>,
    /// Exception class name when the call failed, else empty.
    pub error_class: String,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// SHA-256 of the request payload, when one was sent. The collector keeps
    /// only a salted HMAC of it.
    pub payload_sha256: Option<[u8; 32]>,
    /// Innermost first, bounded by the sender.
    pub stack: Vec<StackFrame>,
    pub trigger: Trigger,
}

/// How many events of one database a worker has failed to send since it
/// started, and why: a running total, never reset, so a lost report is made
/// good by the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DropCount {
    pub database: String,
    /// `socket_missing`, `buffer_full`, `too_large`, `send_error`, ...
    pub reason: String,
    pub count: u64,
}

/// The last sequence number a worker assigned for a database, so trailing
/// losses are visible even when the worker sends nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SeqCursor {
    pub database: String,
    pub last_seq: u64,
}

/// The sender's own account of what it could not deliver, as running
/// totals. Dropped events do not consume sequence numbers, so these counts
/// and sequence jumps never describe the same loss twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Drops {
    pub worker_id: u64,
    pub counts: Vec<DropCount>,
    pub cursors: Vec<SeqCursor>,
}

/// An audit setting changed inside Odoo, and who changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConfigChange {
    pub worker_id: u64,
    pub database: String,
    pub changed_at_us: i64,
    pub key: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub user_login: String,
    pub uid: Option<i64>,
}

/// Bytes of body carried by one `ForensicBody` datagram at most: with the
/// other fields (and a database name of 255 bytes) it stays well under
/// `MAX_DATAGRAM_SIZE` (docs/WIRE_FORMAT.md §4).
pub const FORENSIC_CHUNK: usize = 15 * 1024;

/// The parts of a call whose body forensic capture copies.
pub const FORENSIC_PARTS: &[&str] = &["request", "response"];

/// One chunk of a body copied by forensic capture (DESIGN §7), sent only
/// while capture is on for the call's database and the call is in its
/// scope. It names the call by (worker, database, seq): sent right after
/// the `Call` it belongs to was accepted, so `seq` is that call's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ForensicBody {
    pub worker_id: u64,
    pub database: String,
    /// `Call.seq` of the call this body belongs to.
    pub seq: u64,
    /// `request` or `response` (`FORENSIC_PARTS`).
    pub part: String,
    /// Length of the whole body, before the cap.
    pub total_len: u64,
    /// Bytes captured: `min(total_len, cap)`; the chunks carry exactly these.
    pub captured_len: u64,
    /// The body was longer than the cap: only its beginning is carried.
    pub truncated: bool,
    /// SHA-256 of the whole body (`total_len` bytes), cap or not.
    pub sha256: [u8; 32],
    /// Where this chunk starts in the captured bytes.
    pub offset: u64,
    /// At most `FORENSIC_CHUNK` bytes.
    pub data: Vec<u8>,
}

impl ForensicBody {
    /// The datagrams' worth of `captured` (already capped), chunk by chunk,
    /// in order; an empty body is one chunk with no data.
    #[allow(clippy::too_many_arguments)]
    pub fn chunks(
        worker_id: u64,
        database: &str,
        seq: u64,
        part: &str,
        total_len: u64,
        truncated: bool,
        sha256: [u8; 32],
        captured: &[u8],
    ) -> Vec<ForensicBody> {
        let mut out = Vec::with_capacity(captured.len() / FORENSIC_CHUNK + 1);
        let mut offset = 0;
        loop {
            let end = (offset + FORENSIC_CHUNK).min(captured.len());
            out.push(ForensicBody {
                worker_id,
                database: database.to_owned(),
                seq,
                part: part.to_owned(),
                total_len,
                captured_len: captured.len() as u64,
                truncated,
                sha256,
                offset: offset as u64,
                data: captured[offset..end].to_vec(),
            });
            offset = end;
            if offset >= captured.len() {
                return out;
            }
        }
    }
}
