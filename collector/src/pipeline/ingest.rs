//! Ingest: the receive loop of the Unix datagram socket. It is the
//! pipeline's source, so it is a task rather than an actor: it owns the
//! socket, reads each sender's kernel credentials (SCM_CREDENTIALS), checks
//! the uid, decodes with limits, and hands batches to attribution. A bad
//! datagram is counted and skipped; nothing here can stop the loop.

use std::collections::HashSet;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use egress_proto::{decode, Message, MAX_DATAGRAM_SIZE};
use nix::sys::socket::{
    recvmmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders,
};
use tokio::io::Interest;
use tokio::net::UnixDatagram;
use tracing::{debug, info, warn};

use crate::db::databases::valid_database_name;
use crate::error::{Error, Result};
use crate::pipeline::link::Link;
use crate::pipeline::stage::{Item, RawCall, Sender};
use crate::pipeline::streams::unnamed_database_stream;
use crate::stats::Stats;

/// Datagrams handed on together; bounds latency and batch memory.
const BATCH: usize = 512;
/// Datagrams read per system call (`recvmmsg`): one call instead of one each.
const RECV_BATCH: usize = 64;
/// A wake-up that finds fewer datagrams than this goes on reading, as they
/// come, for up to `GATHER` before handing them on. Under load a batch
/// fills at once; at a few hundred calls a second each batch's fixed cost (a
/// wake-up per stage, a transaction) was most of a call's cost. At 150
/// calls/s (egress-loadgen, 2 clients), collector and PostgreSQL CPU per
/// call were 210 and 225 µs with a 1 ms linger, 136 and 131 µs gathering
/// 50 ms, 93 and 66 µs gathering 100 ms, 92 and 51 µs gathering 200 ms
/// (docs/PERFORMANCE-odoo.md). A call reaches the journal at most `GATHER`
/// plus `chain.flush_interval_ms` after it arrives.
const LINGER_BELOW: usize = 64;
const GATHER: Duration = Duration::from_millis(200);

pub struct IngestSettings {
    pub socket: PathBuf,
    pub mode: u32,
    pub group: Option<String>,
    pub allow_uids: HashSet<u32>,
    pub default_db: String,
    /// Events the appenders may hold beyond a batch behind a healthy
    /// database before ingest stops reading (`chain.queue_max` / 2).
    pub backlog_limit: usize,
    /// Where `ForensicBody` chunks go (the forensic intake); none: refused.
    pub forensic: Option<crate::forensic::IntakeSender>,
}

/// The gid of `ingest.socket_group`, checked at start before anything is
/// created, so that a wrong name leaves nothing behind.
pub fn socket_gid(group: &str) -> Result<nix::unistd::Gid> {
    nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .map(|g| g.gid)
        .ok_or_else(|| {
            Error::Config(format!(
                "ingest.socket_group {group:?} does not exist: give the group Odoo runs as \
                 (`id -gn odoo`) with --socket-group, or create it"
            ))
        })
}

/// Creates the socket: removes a stale one, binds, sets mode and group, and
/// asks the kernel for sender credentials on every datagram.
pub fn bind(settings: &IngestSettings) -> Result<std::os::unix::net::UnixDatagram> {
    let path = &settings.socket;
    let socket_err = |source| Error::Socket {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(socket_err)?;
    }
    remove_stale_socket(path).map_err(socket_err)?;
    let socket = std::os::unix::net::UnixDatagram::bind(path).map_err(socket_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(settings.mode))
        .map_err(socket_err)?;
    if let Some(group) = &settings.group {
        let gid = socket_gid(group)?;
        nix::unistd::chown(path, None, Some(gid))
            .map_err(|e| socket_err(std::io::Error::from(e)))?;
    }
    setsockopt(&socket, sockopt::PassCred, &true).map_err(|e| socket_err(e.into()))?;
    // A larger receive buffer absorbs bursts while the loop is busy.
    let _ = setsockopt(&socket, sockopt::RcvBuf, &(8 << 20));
    socket.set_nonblocking(true).map_err(socket_err)?;
    Ok(socket)
}

pub fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::other(
            "exists and is not a socket; refusing to replace it",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Receives until `shutdown` resolves, then hands on what it holds and
/// drains the pipeline.
pub async fn run(
    socket: std::os::unix::net::UnixDatagram,
    settings: IngestSettings,
    mut next: Link<RawCall>,
    stats: Arc<Stats>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let socket = match UnixDatagram::from_std(socket) {
        Ok(socket) => socket,
        Err(e) => {
            warn!(error = %e, "Cannot register the ingest socket with the runtime.");
            return;
        }
    };
    info!(socket = %settings.socket.display(), "Ingest listening.");
    let mut buffers = Buffers::new();
    tokio::pin!(shutdown);
    'receiving: loop {
        // Below any one link's bound, counting what is already in the
        // stages' mailboxes, so no stage further on has to drop;
        // appenders that fall far behind their databases count too, so a
        // lasting overload is shed here, before any work is spent on the
        // events. Their bound is wider: a commit that stalls for a moment
        // (a checkpoint's fsync took 0.3-0.5 s in the benchmark) must not
        // turn into drops (docs/PERFORMANCE.md).
        let held = stats.held_in_links.load(Relaxed) + stats.in_mailboxes.load(Relaxed);
        let backlog = stats.appender_backlog.load(Relaxed);
        if held >= crate::pipeline::link::DEFAULT_MAX_HELD / 2 || backlog >= settings.backlog_limit
        {
            // The stages hold all they may. Shed load where it costs nothing:
            // leave datagrams in the kernel's queue, so senders count them
            // (buffer_full) and report them, instead of decoding events only
            // to drop them further on.
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(crate::pipeline::link::RETRY_EVERY) => next.flush(),
            }
            continue;
        }
        let retry = next.is_holding();
        tokio::select! {
            _ = &mut shutdown => break,
            ready = socket.readable() => {
                if let Err(e) = ready {
                    warn!(error = %e, "Ingest socket not readable.");
                    continue;
                }
            }
            // Attribution was busy: retry what is held even if no datagram comes.
            _ = tokio::time::sleep(crate::pipeline::link::RETRY_EVERY), if retry => {
                next.flush();
                continue;
            }
        }
        let mut items = Vec::new();
        buffers.read_ready(&socket, &settings, &stats, &mut items);
        if items.len() < LINGER_BELOW {
            // A few datagrams: gather more for up to `GATHER`, reading each
            // as it comes (the kernel's queue never fills meanwhile), so that
            // one batch, one wake-up of each stage and one transaction carry
            // many events instead of one each.
            let deadline = tokio::time::Instant::now() + GATHER;
            while items.len() < LINGER_BELOW {
                tokio::select! {
                    _ = &mut shutdown => {
                        next.send(items);
                        break 'receiving;
                    }
                    ready = socket.readable() => {
                        if ready.is_ok() {
                            buffers.read_ready(&socket, &settings, &stats, &mut items);
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        next.send(items);
    }
    drop(socket);
    let _ = std::fs::remove_file(&settings.socket);
    info!("Ingest stopped; draining the pipeline.");
    next.drain().await;
}

/// What the receive loop reads into: a buffer per datagram of one
/// `recvmmsg`, and what the kernel said of each.
struct Buffers {
    bufs: Vec<Vec<u8>>,
    received: Vec<(usize, bool, Option<Sender>)>,
    /// Datagrams from uids not allowed since the last warning, and when.
    refused: u64,
    refused_warned_at: Option<std::time::Instant>,
}

/// Warn about refused uids at most this often.
const REFUSED_WARN_EVERY: Duration = Duration::from_secs(30);

impl Buffers {
    fn new() -> Self {
        Buffers {
            // One more byte than any datagram may have, so an oversized one shows.
            bufs: vec![vec![0u8; MAX_DATAGRAM_SIZE + 1]; RECV_BATCH],
            received: Vec::with_capacity(RECV_BATCH),
            refused: 0,
            refused_warned_at: None,
        }
    }

    /// Reads what the socket holds, up to `BATCH` items in all, checking and
    /// decoding each datagram.
    fn read_ready(
        &mut self,
        socket: &UnixDatagram,
        settings: &IngestSettings,
        stats: &Stats,
        items: &mut Vec<Item<RawCall>>,
    ) {
        while items.len() < BATCH {
            match socket.try_io(Interest::READABLE, || {
                receive(socket, &mut self.bufs, &mut self.received)
            }) {
                Ok(()) => {
                    for (buf, (len, truncated, sender)) in
                        self.bufs.iter().zip(self.received.drain(..))
                    {
                        stats.datagrams.fetch_add(1, Relaxed);
                        match accept(&buf[..len.min(buf.len())], truncated, sender, settings) {
                            Ok(accepted) => {
                                stats.accepted.fetch_add(1, Relaxed);
                                items.extend(accepted.into_iter().flatten());
                            }
                            Err(reason) => {
                                debug!(reason, "Datagram rejected.");
                                stats.count_rejected(reason);
                                if reason == "uid_not_allowed" {
                                    // The sender cannot tell: its send
                                    // succeeded. Say so here, rate-limited.
                                    self.refused += 1;
                                    let now = std::time::Instant::now();
                                    if self
                                        .refused_warned_at
                                        .is_none_or(|at| now - at >= REFUSED_WARN_EVERY)
                                    {
                                        self.refused_warned_at = Some(now);
                                        warn!(uid = sender.map(|s| s.uid), datagrams = self.refused,
                                            "Datagrams from a uid not in ingest.allow_uids are rejected (counted as uid_not_allowed); add it with --allow-uid if it is Odoo's.");
                                        self.refused = 0;
                                    }
                                }
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "Receive failed.");
                    break;
                }
            }
        }
    }
}

/// One `recvmmsg` of up to one datagram per buffer: for each datagram read,
/// in order, its length (the real one, even when its buffer was too short),
/// whether it was truncated, and the kernel's account of the sender.
fn receive(
    socket: &UnixDatagram,
    bufs: &mut [Vec<u8>],
    received: &mut Vec<(usize, bool, Option<Sender>)>,
) -> std::io::Result<()> {
    let mut iovs: Vec<[IoSliceMut; 1]> =
        bufs.iter_mut().map(|buf| [IoSliceMut::new(buf)]).collect();
    // Fresh headers every call: the kernel shrinks each one's control length
    // to what it used, and a reused short one would cut the next credentials.
    let cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
    let mut headers = MultiHeaders::<()>::preallocate(iovs.len(), Some(cmsg));
    let messages = recvmmsg(
        socket.as_raw_fd(),
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(std::io::Error::from)?;
    for msg in messages {
        let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
        let mut sender = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmCredentials(creds) = c {
                    sender = Some(Sender {
                        pid: i64::from(creds.pid()),
                        uid: i64::from(creds.uid()),
                    });
                }
            }
        }
        received.push((msg.bytes, truncated, sender));
    }
    Ok(())
}

/// What one datagram hands the pipeline: an item, none (a forensic chunk),
/// or two (a drops report that names the default database and none, split
/// by stream).
type Accepted = [Option<Item<RawCall>>; 2];

/// Checks and decodes one datagram; the error is the reject reason. A
/// forensic chunk is handed to the forensic intake here (`None`), never to
/// the pipeline: it has no place in the spool or the journal. What names no
/// database goes to the default one, under the worker's stream for that
/// (`streams`).
fn accept(
    bytes: &[u8],
    truncated: bool,
    sender: Option<Sender>,
    settings: &IngestSettings,
) -> Result<Accepted, &'static str> {
    let sender = sender.ok_or("no_credentials")?;
    if !settings.allow_uids.contains(&(sender.uid as u32)) {
        return Err("uid_not_allowed");
    }
    if truncated {
        return Err("oversized");
    }
    let normalise = |db: &mut String| -> Result<(), &'static str> {
        if db.is_empty() {
            db.clone_from(&settings.default_db);
        }
        if valid_database_name(db) {
            Ok(())
        } else {
            Err("invalid_database")
        }
    };
    match decode(bytes).map_err(|e| e.reason())? {
        Message::Call(mut call) => {
            if call.database.is_empty() {
                call.worker_id = unnamed_database_stream(call.worker_id);
            }
            normalise(&mut call.database)?;
            Ok([Some(Item::Call(RawCall { call, sender })), None])
        }
        Message::Hello(mut hello) => {
            // Cut at once: a flood of large Hellos must not be carried on.
            crate::pipeline::peers::bound_hello(&mut hello);
            Ok([Some(Item::Hello(sender, hello)), None])
        }
        Message::Drops(mut drops) => {
            let mut unnamed = split_unnamed(&mut drops);
            // One bad entry must not cost the others: the sender cleared its
            // counts once the kernel took the datagram.
            for part in std::iter::once(&mut drops).chain(unnamed.as_mut()) {
                part.counts
                    .retain_mut(|count| normalise(&mut count.database).is_ok());
                part.cursors
                    .retain_mut(|cursor| normalise(&mut cursor.database).is_ok());
            }
            // A report left empty by the split says nothing the other does not.
            let keep = unnamed.is_none() || !drops.counts.is_empty() || !drops.cursors.is_empty();
            let named = keep.then_some(Item::Drops(sender, drops));
            Ok([named, unnamed.map(|part| Item::Drops(sender, part))])
        }
        Message::ConfigChange(mut change) => {
            normalise(&mut change.database)?;
            Ok([Some(Item::ConfigChange(sender, change)), None])
        }
        Message::ForensicBody(mut body) => {
            if body.database.is_empty() {
                body.worker_id = unnamed_database_stream(body.worker_id);
            }
            normalise(&mut body.database)?;
            let intake = settings.forensic.as_ref().ok_or("forensic_off")?;
            intake
                .try_send((sender, body))
                .map_err(|_| "forensic_full")?;
            Ok([None, None])
        }
    }
}

/// The entries of a drops report that name no database, as a report of the
/// worker's stream for them (`streams`); none if there are none.
fn split_unnamed(drops: &mut egress_proto::Drops) -> Option<egress_proto::Drops> {
    let (counts, named) = std::mem::take(&mut drops.counts)
        .into_iter()
        .partition(|count| count.database.is_empty());
    drops.counts = named;
    let (cursors, named) = std::mem::take(&mut drops.cursors)
        .into_iter()
        .partition(|cursor| cursor.database.is_empty());
    drops.cursors = named;
    let unnamed = egress_proto::Drops {
        worker_id: unnamed_database_stream(drops.worker_id),
        counts,
        cursors,
    };
    (!unnamed.counts.is_empty() || !unnamed.cursors.is_empty()).then_some(unnamed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_proto::{encode, Call};

    fn settings() -> IngestSettings {
        IngestSettings {
            socket: PathBuf::from("/nonexistent"),
            mode: 0o660,
            group: None,
            allow_uids: HashSet::from([1000]),
            default_db: "odoo".into(),
            backlog_limit: 50_000,
            forensic: None,
        }
    }

    const ALLOWED: Option<Sender> = Some(Sender { pid: 5, uid: 1000 });

    #[test]
    fn checks_the_kernel_uid_before_decoding() {
        let frame = encode(&Message::Call(Call::default())).unwrap();
        assert_eq!(
            accept(&frame, false, None, &settings()).unwrap_err(),
            "no_credentials"
        );
        let stranger = Some(Sender { pid: 5, uid: 1 });
        assert_eq!(
            accept(&frame, false, stranger, &settings()).unwrap_err(),
            "uid_not_allowed"
        );
        assert_eq!(
            accept(b"garbage", false, ALLOWED, &settings()).unwrap_err(),
            "bad_magic"
        );
        assert_eq!(
            accept(&frame, true, ALLOWED, &settings()).unwrap_err(),
            "oversized"
        );
    }

    #[test]
    fn fills_the_default_database_and_refuses_bad_names() {
        let frame = encode(&Message::Call(Call::default())).unwrap();
        match accept(&frame, false, ALLOWED, &settings()).unwrap() {
            [Some(Item::Call(raw)), None] => assert_eq!(raw.call.database, "odoo"),
            other => panic!("unexpected {other:?}"),
        }
        let bad = Call {
            database: "x' host=evil".into(),
            ..Call::default()
        };
        let frame = encode(&Message::Call(bad)).unwrap();
        assert_eq!(
            accept(&frame, false, ALLOWED, &settings()).unwrap_err(),
            "invalid_database"
        );
    }

    #[test]
    fn what_names_no_database_is_the_workers_stream_for_that() {
        let call = |database: &str| Call {
            worker_id: 42,
            database: database.into(),
            ..Call::default()
        };
        let worker_of = |call: Call| {
            let frame = encode(&Message::Call(call)).unwrap();
            match accept(&frame, false, ALLOWED, &settings()).unwrap() {
                [Some(Item::Call(raw)), None] => (raw.call.database, raw.call.worker_id),
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(worker_of(call("odoo")), ("odoo".into(), 42));
        assert_eq!(
            worker_of(call("")),
            ("odoo".into(), unnamed_database_stream(42))
        );
    }

    #[test]
    fn a_drops_report_naming_the_default_database_and_none_is_split_by_stream() {
        use egress_proto::{DropCount, Drops, SeqCursor};
        let count = |db: &str| DropCount {
            database: db.into(),
            reason: "buffer_full".into(),
            count: 2,
        };
        let cursor = |db: &str, last_seq| SeqCursor {
            database: db.into(),
            last_seq,
        };
        let drops = Drops {
            worker_id: 42,
            counts: vec![count("odoo"), count("")],
            cursors: vec![cursor("", 5), cursor("odoo", 9)],
        };
        let frame = encode(&Message::Drops(drops)).unwrap();
        match accept(&frame, false, ALLOWED, &settings()).unwrap() {
            [Some(Item::Drops(_, named)), Some(Item::Drops(_, unnamed))] => {
                assert_eq!(
                    (named.worker_id, named.counts, named.cursors),
                    (42, vec![count("odoo")], vec![cursor("odoo", 9)])
                );
                assert_eq!(
                    (unnamed.worker_id, unnamed.counts, unnamed.cursors),
                    (
                        unnamed_database_stream(42),
                        vec![count("odoo")],
                        vec![cursor("odoo", 5)]
                    )
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // Only unnamed entries: one report, of the unnamed stream.
        let drops = Drops {
            worker_id: 42,
            counts: vec![count("")],
            cursors: vec![],
        };
        let frame = encode(&Message::Drops(drops)).unwrap();
        match accept(&frame, false, ALLOWED, &settings()).unwrap() {
            [None, Some(Item::Drops(_, unnamed))] => {
                assert_eq!(unnamed.worker_id, unnamed_database_stream(42));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_bad_database_in_a_drops_report_costs_only_that_entry() {
        use egress_proto::{DropCount, Drops};
        let entry = |db: &str| DropCount {
            database: db.into(),
            reason: "buffer_full".into(),
            count: 2,
        };
        let drops = Drops {
            worker_id: 1,
            counts: vec![entry("good"), entry("bad name")],
            cursors: vec![],
        };
        let frame = encode(&Message::Drops(drops)).unwrap();
        match accept(&frame, false, ALLOWED, &settings()).unwrap() {
            [Some(Item::Drops(_, kept)), None] => assert_eq!(kept.counts, vec![entry("good")]),
            other => panic!("unexpected {other:?}"),
        }
    }
}
