//! One worker's sending state: socket, per-database sequence numbers, drop
//! counts, and the `Drops` reports that account for them.
//!
//! Every method runs under the worker's lock, so assigning a sequence number,
//! sending the datagram and recording the outcome are one step: a number is
//! consumed only by a datagram the kernel accepted, and a drop never shows up
//! at the collector as a sequence jump as well as a drop count.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use egress_proto::{
    encode, Call, ConfigChange, DropCount, Drops, ForensicBody, Hello, Message, SeqCursor,
};
use nix::sys::socket::{setsockopt, sockopt};

use crate::body::CapturedBody;
use crate::fit;
use crate::reason::DropReason;

/// Entries (counts plus cursors) per `Drops` datagram. Each entry is at most
/// ~300 bytes (database names are capped at 255), so a report always fits.
const REPORT_CHUNK: usize = 40;

/// Lifetime totals of one worker, for `HookClient::stats`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Totals {
    pub calls_sent: u64,
    pub calls_dropped: u64,
    pub calls_dropped_by_reason: BTreeMap<DropReason, u64>,
    pub other_sent: u64,
    pub other_dropped: u64,
    pub reports_sent: u64,
}

pub(crate) struct State {
    worker_id: u64,
    /// Created on first use and again after a failed creation; never bound.
    /// Connected to the collector's path while `connected`: a send on a
    /// connected socket skips the path look-up an unconnected `sendto` makes
    /// for every datagram (about 40 % of a send's system time here).
    socket: Option<UnixDatagram>,
    /// The socket is connected to the collector bound at the path now. A
    /// collector that went away (a restart) makes the next send fail with
    /// `ECONNREFUSED`; the socket then connects again, to whatever collector
    /// is bound at the path by then, and the send is tried once more.
    connected: bool,
    /// Last sequence number the kernel accepted, per database.
    last_seq: BTreeMap<String, u64>,
    /// Drops not yet acknowledged by an accepted `Drops` datagram: they make
    /// a report due.
    pending: BTreeMap<(String, DropReason), u64>,
    /// Running totals of drops since this worker started, never cleared:
    /// every report carries them, so a report lost on the way (a collector
    /// killed before it journaled it) is made good by the next one.
    drop_totals: BTreeMap<(String, DropReason), u64>,
    last_report: Option<Instant>,
    totals: Totals,
}

impl State {
    pub fn new(worker_id: u64) -> Self {
        State {
            worker_id,
            socket: None,
            connected: false,
            last_seq: BTreeMap::new(),
            pending: BTreeMap::new(),
            drop_totals: BTreeMap::new(),
            last_report: None,
            totals: Totals::default(),
        }
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    pub fn pending_drops(&self) -> u64 {
        self.pending.values().sum()
    }

    /// Sends a call; with `patient`, a call refused for a full buffer is
    /// handed back, uncounted, for a later try (the sender thread can wait;
    /// the audited call cannot). `call.database` must already be truncated
    /// to `fit::DATABASE_MAX`, so that the name keying the sequence is the
    /// one on the wire.
    pub fn send_call(
        &mut self,
        mut call: Call,
        path: &Path,
        every: Duration,
        patient: bool,
    ) -> Option<Call> {
        // At the top of its range a seq stays there, never wraps to a low one
        // (the collector counts a repeat as a duplicate).
        let seq = self
            .last_seq
            .get(&call.database)
            .map_or(1, |last| last.saturating_add(1));
        call.worker_id = self.worker_id;
        call.seq = seq;
        let mut message = Message::Call(call);
        let result = self.send(&mut message, path);
        let Message::Call(call) = message else {
            return None;
        };
        match result {
            Ok(()) => {
                match self.last_seq.get_mut(&call.database) {
                    Some(last) => *last = seq,
                    None => {
                        self.last_seq.insert(call.database, seq);
                    }
                }
                self.totals.calls_sent += 1;
                self.report_if_due(path, every);
            }
            Err(DropReason::BufferFull) if patient => return Some(call),
            Err(reason) => self.count_call_drop(call.database, reason),
        }
        None
    }

    /// The last sequence number the kernel accepted for `database`.
    pub fn last_seq(&self, database: &str) -> Option<u64> {
        self.last_seq.get(database).copied()
    }

    /// Sends the chunks of each body of call `seq`, in order; a body whose
    /// chunk is refused sends no further chunk (the collector would drop
    /// the incomplete body anyway).
    pub fn send_bodies(
        &mut self,
        database: &str,
        seq: u64,
        bodies: Vec<CapturedBody>,
        path: &Path,
        every: Duration,
    ) {
        for body in bodies {
            let chunks = ForensicBody::chunks(
                self.worker_id,
                database,
                seq,
                &body.part,
                body.total_len,
                body.truncated,
                body.sha256,
                &body.data,
            );
            for chunk in chunks {
                let before = self.totals.other_dropped;
                self.send_other(Message::ForensicBody(chunk), None, path, every);
                if self.totals.other_dropped != before {
                    break;
                }
            }
        }
    }

    pub fn send_hello(&mut self, mut hello: Hello, path: &Path, every: Duration) {
        hello.worker_id = self.worker_id;
        // A lost Hello is no lost event (it is repeated every minute): it is
        // counted in the stats but never reported as a gap.
        self.send_other(Message::Hello(hello), None, path, every);
    }

    pub fn send_config_change(&mut self, mut change: ConfigChange, path: &Path, every: Duration) {
        change.worker_id = self.worker_id;
        fit::truncate(&mut change.database, fit::DATABASE_MAX);
        let database = change.database.clone();
        self.send_other(Message::ConfigChange(change), Some(database), path, every);
    }

    /// Sends a message other than a call; `journaled` names the database
    /// whose journal loses a record if it is dropped.
    fn send_other(
        &mut self,
        mut message: Message,
        journaled: Option<String>,
        path: &Path,
        every: Duration,
    ) {
        match self.send(&mut message, path) {
            Ok(()) => {
                self.totals.other_sent += 1;
                self.report_if_due(path, every);
            }
            Err(reason) => {
                self.totals.other_dropped += 1;
                if let Some(database) = journaled {
                    self.count_drop(database, reason);
                }
            }
        }
    }

    /// Counts a call that was not delivered; also the path taken when a bug
    /// in this crate panicked mid-send, so even that loss is reported.
    pub fn count_call_drop(&mut self, database: String, reason: DropReason) {
        self.totals.calls_dropped += 1;
        *self
            .totals
            .calls_dropped_by_reason
            .entry(reason)
            .or_default() += 1;
        self.count_drop(database, reason);
    }

    fn count_drop(&mut self, database: String, reason: DropReason) {
        *self
            .drop_totals
            .entry((database.clone(), reason))
            .or_default() += 1;
        *self.pending.entry((database, reason)).or_default() += 1;
    }

    fn send(&mut self, message: &mut Message, path: &Path) -> Result<(), DropReason> {
        let bytes = fit::encode_fitting(message).ok_or(DropReason::TooLarge)?;
        self.transmit(&bytes, path)
    }

    fn transmit(&mut self, bytes: &[u8], path: &Path) -> Result<(), DropReason> {
        let fresh = !self.connected;
        match self.send_connected(bytes, path) {
            Err(SendFailure::PeerGone) if !fresh => {
                // The collector this socket was connected to is gone: connect
                // to the one bound at the path now, if any, and try once more.
                self.connected = false;
                self.send_connected(bytes, path)
            }
            other => other,
        }
        .map_err(SendFailure::reason)
    }

    fn send_connected(&mut self, bytes: &[u8], path: &Path) -> Result<(), SendFailure> {
        if self.socket.is_none() {
            self.socket = open_socket().ok();
        }
        let socket = self
            .socket
            .as_ref()
            .ok_or(SendFailure::Refused(DropReason::SendError))?;
        if !self.connected {
            socket
                .connect(path)
                .map_err(|e| SendFailure::Refused(DropReason::from_io(&e)))?;
            self.connected = true;
        }
        // A signal can interrupt even a non-blocking send; one retry is enough
        // and keeps the call bounded.
        let mut retried = false;
        loop {
            match socket.send(bytes) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(_) => return Err(SendFailure::Refused(DropReason::SendError)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !retried => retried = true,
                Err(e) => return Err(SendFailure::from_io(&e)),
            }
        }
    }

    fn report_if_due(&mut self, path: &Path, every: Duration) {
        if self.pending.is_empty() {
            return;
        }
        if self.last_report.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.report(path);
    }

    /// Sends every running total and every cursor, split over as many
    /// `Drops` datagrams as needed; pending drops are acknowledged only when
    /// the datagram that carried their total was accepted. Returns whether
    /// all were accepted.
    pub fn report(&mut self, path: &Path) -> bool {
        self.last_report = Some(Instant::now());
        let counts: Vec<(String, DropReason)> = self.drop_totals.keys().cloned().collect();
        let cursors: Vec<SeqCursor> = self
            .last_seq
            .iter()
            .map(|(database, &last_seq)| SeqCursor {
                database: database.clone(),
                last_seq,
            })
            .collect();
        let mut counts = counts.into_iter().peekable();
        let mut cursors = cursors.into_iter().peekable();
        loop {
            let keys: Vec<_> = counts.by_ref().take(REPORT_CHUNK).collect();
            let chunk_cursors: Vec<_> = cursors.by_ref().take(REPORT_CHUNK - keys.len()).collect();
            let last = counts.peek().is_none() && cursors.peek().is_none();
            if !self.send_report(&keys, chunk_cursors, path) {
                // The rest would meet the same refusal; they stay pending.
                return false;
            }
            if last {
                return true;
            }
        }
    }

    fn send_report(
        &mut self,
        keys: &[(String, DropReason)],
        cursors: Vec<SeqCursor>,
        path: &Path,
    ) -> bool {
        let drops = Drops {
            worker_id: self.worker_id,
            counts: keys
                .iter()
                .map(|key| DropCount {
                    database: key.0.clone(),
                    reason: key.1.as_str().to_string(),
                    count: self.drop_totals.get(key).copied().unwrap_or(0),
                })
                .collect(),
            cursors,
        };
        let accepted = match encode(&Message::Drops(drops)) {
            Ok(bytes) => self.transmit(&bytes, path).is_ok(),
            Err(_) => false,
        };
        if accepted {
            self.totals.reports_sent += 1;
            for key in keys {
                self.pending.remove(key);
            }
        }
        accepted
    }
}

/// Why a send on the connected socket failed.
enum SendFailure {
    /// The peer the socket was connected to is closed (`ECONNREFUSED`, or
    /// `ENOTCONN` once the kernel has disconnected it): worth one reconnect.
    PeerGone,
    Refused(DropReason),
}

impl SendFailure {
    fn from_io(error: &io::Error) -> Self {
        match error.raw_os_error() {
            Some(libc::ECONNREFUSED) | Some(libc::ENOTCONN) => SendFailure::PeerGone,
            _ => SendFailure::Refused(DropReason::from_io(error)),
        }
    }

    /// What a send that failed for good counts as.
    fn reason(self) -> DropReason {
        match self {
            SendFailure::PeerGone => DropReason::SocketMissing,
            SendFailure::Refused(reason) => reason,
        }
    }
}

fn open_socket() -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    widen_send_buffer(&socket);
    Ok(socket)
}

/// Send buffer asked for: the kernel doubles it and caps it at
/// `net.core.wmem_max`. A datagram stays charged to its sender until the
/// collector reads it, and the default (`net.core.wmem_default`, 208 KiB)
/// holds about 90 realistic calls: 7 ms of a worker sending 12,500 a second,
/// less than a busy collector may take to come back to its socket. With
/// this, the collector's receive queue (`net.unix.max_dgram_qlen`) is the
/// bound. It reserves no memory; it only allows more in flight.
const SEND_BUFFER_BYTES: usize = 1 << 20;

/// Best effort: a refusal leaves the kernel's default, which still works.
fn widen_send_buffer(socket: &UnixDatagram) {
    let _ = setsockopt(socket, sockopt::SndBuf, &SEND_BUFFER_BYTES);
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::getsockopt;

    #[test]
    fn the_send_buffer_is_wider_than_the_kernels_default() {
        let default: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let plain = UnixDatagram::unbound().unwrap();
        assert_eq!(getsockopt(&plain, sockopt::SndBuf).unwrap(), default);
        let ours = open_socket().unwrap();
        let widened = getsockopt(&ours, sockopt::SndBuf).unwrap();
        assert!(
            widened > default,
            "SO_SNDBUF {widened} is not above the default {default}"
        );
    }
}
