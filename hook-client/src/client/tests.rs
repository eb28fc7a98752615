//! Tests of `HookClient` against real Unix datagram sockets in temporary directories.

use super::*;
use egress_proto::{decode, Drops, Message, SeqCursor, StackFrame, MAX_DATAGRAM_SIZE};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::AtomicU32;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Tests run as threads of one process, and a forked child inherits every
/// socket open at that moment: a receiver another test has dropped would stay
/// alive in the child and swallow what that test's client sends next. So a
/// test that forks runs alone (write), the others together (read).
static FORKS: RwLock<()> = RwLock::new(());

/// Held, never read: dropping it ends the test's place.
#[allow(dead_code)]
enum ForkGuard {
    Shared(RwLockReadGuard<'static, ()>),
    Alone(RwLockWriteGuard<'static, ()>),
}

/// A directory removed on drop, unique per test even across parallel tests;
/// it also holds the test's place with respect to forks (`FORKS`).
struct TempDir(PathBuf, #[allow(dead_code)] ForkGuard);

impl TempDir {
    fn new() -> TempDir {
        let guard = FORKS
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        TempDir::with(ForkGuard::Shared(guard))
    }

    /// For a test that forks: no other test has a socket open meanwhile.
    fn for_fork() -> TempDir {
        let guard = FORKS
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        TempDir::with(ForkGuard::Alone(guard))
    }

    fn with(guard: ForkGuard) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("egress-hook-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir, guard)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("ingest.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bind(path: &Path) -> UnixDatagram {
    let receiver = UnixDatagram::bind(path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    receiver
}

fn recv(receiver: &UnixDatagram) -> Message {
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE + 1];
    let n = receiver.recv(&mut buf).expect("a datagram");
    decode(&buf[..n]).unwrap()
}

fn recv_call(receiver: &UnixDatagram) -> Call {
    match recv(receiver) {
        Message::Call(call) => call,
        other => panic!("expected a call, got {other:?}"),
    }
}

fn recv_drops(receiver: &UnixDatagram) -> Drops {
    match recv(receiver) {
        Message::Drops(drops) => drops,
        other => panic!("expected drops, got {other:?}"),
    }
}

/// The queue is filled synchronously by `send_to`, so "nothing more" can be
/// checked without waiting.
fn assert_queue_empty(receiver: &UnixDatagram) {
    receiver.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let err = receiver.recv(&mut buf).expect_err("no further datagram");
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    receiver.set_nonblocking(false).unwrap();
}

/// A client whose sender thread lets calls that come close together gather
/// for `send_delay`.
fn client_with_delay(dir: &TempDir, send_delay: Duration) -> HookClient {
    let options = HookOptions {
        send_delay,
        ..HookOptions::default()
    };
    HookClient::with_options(dir.socket(), options)
}

fn call(database: &str) -> Call {
    Call {
        database: database.into(),
        channel: "http".into(),
        host: "api.openai.com".into(),
        port: 443,
        ..Call::default()
    }
}

fn cursor(database: &str, last_seq: u64) -> SeqCursor {
    SeqCursor {
        database: database.into(),
        last_seq,
    }
}

fn count(database: &str, reason: &str, count: u64) -> egress_proto::DropCount {
    egress_proto::DropCount {
        database: database.into(),
        reason: reason.into(),
        count,
    }
}

#[test]
fn client_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HookClient>();
}

#[test]
fn sequences_are_per_database_and_start_at_one() {
    let dir = TempDir::new();
    let receiver = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    for database in ["a", "a", "b", "a", "b"] {
        client.send_call(call(database));
    }
    let got: Vec<(String, u64, u64)> = (0..5)
        .map(|_| recv_call(&receiver))
        .map(|c| (c.database, c.seq, c.worker_id))
        .collect();
    let id = client.worker_id();
    let expected = [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)];
    for ((database, seq, worker_id), (want_db, want_seq)) in got.iter().zip(expected) {
        assert_eq!(
            (database.as_str(), *seq, *worker_id),
            (want_db, want_seq, id)
        );
    }
    assert_queue_empty(&receiver);
    let stats = client.stats();
    assert_eq!((stats.sent, stats.dropped, stats.pending_drops), (5, 0, 0));
}

#[test]
fn drops_while_the_socket_is_missing_are_reported_once_it_appears() {
    let dir = TempDir::new();
    // No spacing, so the failed explicit report below does not hold back the
    // automatic one.
    let options = HookOptions {
        drops_report_interval: Duration::ZERO,
        ..HookOptions::default()
    };
    let client = HookClient::with_options(dir.socket(), options);
    for database in ["a", "a", "a", "b", "b"] {
        client.send_call(call(database));
    }
    client.send_hello(Hello::default());
    let stats = client.stats();
    // The lost Hello is counted, but it is no lost event: nothing to report.
    assert_eq!((stats.sent, stats.dropped, stats.pending_drops), (0, 5, 5));
    assert_eq!(
        stats.dropped_by_reason,
        BTreeMap::from([("socket_missing".to_string(), 5)])
    );
    assert_eq!(stats.other_dropped, 1);
    assert!(!client.report_drops(), "nobody listens yet");

    let receiver = bind(&dir.socket());
    client.send_call(call("a"));
    let first = recv_call(&receiver);
    assert_eq!(first.seq, 1, "drops consumed no sequence number");
    let drops = recv_drops(&receiver);
    assert_eq!(drops.worker_id, client.worker_id());
    assert_eq!(
        drops.counts,
        vec![
            count("a", "socket_missing", 3),
            count("b", "socket_missing", 2)
        ]
    );
    assert_eq!(drops.cursors, vec![cursor("a", 1)]);
    assert_queue_empty(&receiver);
    assert_eq!(client.stats().pending_drops, 0);

    // An explicit report goes out even with nothing pending: it carries the
    // cursors, and the running totals again (a lost report is made good).
    assert!(client.report_drops());
    let drops = recv_drops(&receiver);
    assert_eq!(
        drops.counts,
        vec![
            count("a", "socket_missing", 3),
            count("b", "socket_missing", 2)
        ]
    );
    assert_eq!(drops.cursors, vec![cursor("a", 1)]);
}

#[test]
fn automatic_reports_are_spaced_by_the_interval() {
    let dir = TempDir::new();
    let options = HookOptions {
        drops_report_interval: Duration::from_secs(3600),
        ..HookOptions::default()
    };
    let client = HookClient::with_options(dir.socket(), options);
    client.send_call(call("a"));
    let receiver = bind(&dir.socket());
    client.send_call(call("a"));
    assert_eq!(recv_call(&receiver).seq, 1);
    assert_eq!(
        recv_drops(&receiver).counts,
        vec![count("a", "socket_missing", 1)]
    );

    drop(receiver);
    std::fs::remove_file(dir.socket()).unwrap();
    client.send_call(call("a"));
    let receiver = bind(&dir.socket());
    client.send_call(call("a"));
    assert_eq!(recv_call(&receiver).seq, 2);
    assert_queue_empty(&receiver);
    assert_eq!(
        client.stats().pending_drops,
        1,
        "held back until the interval passes"
    );
    assert!(client.report_drops());
    let drops = recv_drops(&receiver);
    // A running total: both drops since the worker started.
    assert_eq!(drops.counts, vec![count("a", "socket_missing", 2)]);
    assert_eq!(drops.cursors, vec![cursor("a", 2)]);
}

/// A receiver at the path and a client that has delivered seq 1 to it.
fn client_that_sent_once(dir: &TempDir) -> (UnixDatagram, HookClient) {
    let first = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    client.send_call(call("a"));
    assert_eq!(recv_call(&first).seq, 1);
    (first, client)
}

/// A collector restarted: a new receiver bound at the same path.
fn rebind(dir: &TempDir) -> UnixDatagram {
    std::fs::remove_file(dir.socket()).unwrap();
    bind(&dir.socket())
}

#[test]
fn a_rebound_path_reaches_the_new_receiver() {
    let dir = TempDir::new();
    let (first, client) = client_that_sent_once(&dir);

    // The collector died without unlinking its socket: ECONNREFUSED.
    drop(first);
    client.send_call(call("a"));
    assert_eq!(client.stats().dropped_by_reason["socket_missing"], 1);

    // It restarted and bound a new socket at the same path.
    let second = rebind(&dir);
    client.send_call(call("a"));
    assert_eq!(recv_call(&second).seq, 2);
    let drops = recv_drops(&second);
    assert_eq!(drops.counts, vec![count("a", "socket_missing", 1)]);
    assert_eq!(drops.cursors, vec![cursor("a", 2)]);
}

#[test]
fn a_collector_restarted_between_two_sends_gets_the_second() {
    let dir = TempDir::new();
    let (first, client) = client_that_sent_once(&dir);

    // The client's socket is connected to the first collector's; by the next
    // send that one is closed and a new one is bound at the path.
    drop(first);
    let second = rebind(&dir);
    client.send_call(call("a"));
    assert_eq!(recv_call(&second).seq, 2);
    assert_eq!(client.stats().dropped, 0);
    assert_queue_empty(&second);
}

#[test]
fn an_oversized_call_is_truncated_and_sent() {
    let dir = TempDir::new();
    let receiver = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    let mut big = call("a");
    big.path = "/é".repeat(50_000);
    big.header_names = (0..10_000).map(|i| format!("X-Header-{i}")).collect();
    big.stack = (0..1_000)
        .map(|i| StackFrame {
            file: format!("/mnt/extra-addons/deep/models/m{i}.py"),
            function: "f".repeat(600),
            line: i,
        })
        .collect();
    client.send_call(big);
    let sent = recv_call(&receiver);
    assert_eq!(sent.seq, 1);
    assert!(sent.path.len() < 50_000 && sent.path.starts_with("/é/é"));
    assert!(sent.header_names.len() < 10_000);
    assert_eq!(sent.stack[0].file, "/mnt/extra-addons/deep/models/m0.py");
    assert_eq!(client.stats().dropped, 0);
}

/// The host's `net.unix.max_dgram_qlen`: datagrams a receiver queues.
fn receive_queue_length() -> u64 {
    std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(512)
}

#[test]
fn a_full_receiver_queue_drops_without_blocking() {
    let dir = TempDir::new();
    // Never read: the kernel queue (net.unix.max_dgram_qlen, often 10, 512
    // in CI) fills, whatever its length: more calls than it holds.
    let receiver = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    let calls = receive_queue_length() + 200;
    for _ in 0..calls {
        client.send_call(call("a"));
    }
    let stats = client.stats();
    assert_eq!(stats.sent + stats.dropped, calls);
    assert!(stats.sent >= 1);
    assert!(
        stats
            .dropped_by_reason
            .get("buffer_full")
            .copied()
            .unwrap_or(0)
            >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.dropped_by_reason.len(), 1, "{stats:?}");
    // The first datagram in the queue is seq 1, and the accepted ones are gapless.
    let mut expected = 1;
    receiver.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
    while let Ok(n) = receiver.recv(&mut buf) {
        if let Ok(Message::Call(c)) = decode(&buf[..n]) {
            assert_eq!(c.seq, expected);
            expected += 1;
        }
    }
    assert_eq!(expected - 1, stats.sent);
}

#[test]
fn hello_and_config_change_are_filled_in() {
    let dir = TempDir::new();
    let receiver = bind(&dir.socket());
    let options = HookOptions {
        hook_mode: "native".into(),
        ..HookOptions::default()
    };
    let client = HookClient::with_options(dir.socket(), options);
    client.send_hello(Hello {
        odoo_version: "18.0".into(),
        ..Hello::default()
    });
    let Message::Hello(hello) = recv(&receiver) else {
        panic!("expected a hello")
    };
    assert_eq!(hello.worker_id, client.worker_id());
    assert_eq!(hello.pid, std::process::id());
    assert_eq!(hello.hook_mode, "native");
    assert_eq!(hello.hook_version, env!("CARGO_PKG_VERSION"));
    assert!(hello.sent_at_us > 0);

    client.send_config_change(ConfigChange {
        database: "a".into(),
        key: "k".into(),
        ..ConfigChange::default()
    });
    let Message::ConfigChange(change) = recv(&receiver) else {
        panic!("expected a change")
    };
    assert_eq!(
        (change.worker_id, change.key.as_str()),
        (client.worker_id(), "k")
    );

    client.send_call(call("a"));
    assert_eq!(
        recv_call(&receiver).seq,
        1,
        "other messages consume no call sequence"
    );
    assert_eq!(client.stats().other_sent, 2);
}

#[test]
fn an_unreachable_socket_path_counts_a_send_error() {
    let client = HookClient::new(format!("/tmp/{}", "x".repeat(200)));
    client.send_call(call("a"));
    assert_eq!(client.stats().dropped_by_reason["send_error"], 1);
}

#[test]
fn many_threads_share_one_client_without_gaps() {
    let dir = TempDir::for_fork();
    let receiver = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    let reader = std::thread::spawn(move || {
        let mut seqs = Vec::new();
        let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
        loop {
            let n = receiver.recv(&mut buf).expect("a datagram");
            match decode(&buf[..n]) {
                Ok(Message::Call(c)) => seqs.push(c.seq),
                Ok(_) => {}
                Err(_) => return seqs,
            }
        }
    });
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| (0..200).for_each(|_| client.send_call(call("a"))));
        }
    });
    // A blocking sender waits for room in the queue, so the end marker
    // arrives after every accepted call.
    let marker = UnixDatagram::unbound().unwrap();
    marker.send_to(b"end", dir.socket()).unwrap();
    let mut seqs = reader.join().unwrap();
    let stats = client.stats();
    assert_eq!(stats.sent + stats.dropped, 800);
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=stats.sent).collect::<Vec<u64>>(),
        "accepted calls are gapless"
    );
}

/// Waits for the forked child, killing it if it did not send in time.
fn reap(pid: libc::pid_t, got_datagram: bool) {
    if !got_datagram {
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status = 0;
    // SAFETY: plain syscall on our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(got_datagram, "the forked child sent nothing");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status}"
    );
}

/// Forks; the child runs `child` and exits at once without unwinding into the
/// test harness.
fn fork_child(child: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child only sends a datagram and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        child();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    pid
}

/// The forked child's one call, once the child has exited.
fn recv_from_child(receiver: &UnixDatagram, pid: libc::pid_t) -> Call {
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE + 1];
    let received = receiver.recv(&mut buf);
    reap(pid, received.is_ok());
    let n = received.unwrap();
    match decode(&buf[..n]) {
        Ok(Message::Call(call)) => call,
        other => panic!("expected the child's call, got {other:?}"),
    }
}

#[test]
fn a_forked_child_is_a_new_worker() {
    let dir = TempDir::for_fork();
    let receiver = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    client.send_call(call("a"));
    let parent = recv_call(&receiver);
    assert_eq!(parent.seq, 1);

    let pid = fork_child(|| client.send_call(call("a")));
    let child = recv_from_child(&receiver, pid);
    assert_eq!(child.seq, 1, "the child starts its own sequence");
    assert_ne!(child.worker_id, parent.worker_id);

    client.send_call(call("a"));
    let after = recv_call(&receiver);
    assert_eq!(
        (after.worker_id, after.seq),
        (parent.worker_id, 2),
        "the parent goes on"
    );
}

#[test]
fn a_child_forked_while_the_lock_is_held_still_sends() {
    let dir = TempDir::for_fork();
    let receiver = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    client.send_call(call("a"));
    let parent = recv_call(&receiver);
    // As if another parent thread were mid-send at the moment of the fork:
    // in the child this lock is never released.
    let guard = client.worker().lock();
    let pid = fork_child(|| client.send_call(call("a")));
    let child = recv_from_child(&receiver, pid);
    drop(guard);
    assert_eq!(child.seq, 1);
    assert_ne!(child.worker_id, parent.worker_id);
    assert_eq!(client.worker_id(), parent.worker_id);
}

#[test]
fn queued_calls_leave_in_order_from_the_sender_thread() {
    let dir = TempDir::new();
    let receiver = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    for database in ["a", "a", "b", "a", "b"] {
        client.queue_call(call(database));
    }
    // Not flushed: the first came alone and left at once, the others leave
    // from the sender thread within `send_delay`.
    let got: Vec<(String, u64)> = (0..5)
        .map(|_| recv_call(&receiver))
        .map(|c| (c.database, c.seq))
        .collect();
    let expected = [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)];
    for ((database, seq), (want_db, want_seq)) in got.iter().zip(expected) {
        assert_eq!((database.as_str(), *seq), (want_db, want_seq));
    }
    // A synchronous call orders after the queued ones.
    client.queue_call(call("a"));
    client.send_call(call("a"));
    assert_eq!(recv_call(&receiver).seq, 4);
    assert_eq!(recv_call(&receiver).seq, 5);
    assert_queue_empty(&receiver);
    let stats = client.stats();
    assert_eq!((stats.sent, stats.dropped), (7, 0));
}

#[test]
fn a_call_that_comes_alone_is_sent_by_its_caller() {
    let dir = TempDir::new();
    let receiver = bind(&dir.socket());
    let client = client_with_delay(&dir, Duration::from_millis(20));
    for seq in 1..=3 {
        // Well apart: each comes alone, and is in the socket when
        // `queue_call` returns, with no thread to wake.
        std::thread::sleep(Duration::from_millis(30));
        client.queue_call(call("a"));
        receiver.set_nonblocking(true).unwrap();
        assert_eq!(recv_call(&receiver).seq, seq);
        receiver.set_nonblocking(false).unwrap();
    }
    assert_queue_empty(&receiver);
    assert_eq!((client.stats().sent, client.stats().dropped), (3, 0));
}

#[test]
fn a_call_sent_alone_into_a_full_buffer_waits_for_the_sender_thread() {
    let dir = TempDir::new();
    let receiver = bind(&dir.socket());
    // The receiver's queue filled by other senders first: each fills until
    // its own send buffer or the receiver's queue refuses, and a new one
    // refused at once means the queue is full.
    let mut fillers = Vec::new();
    let mut filled = 0;
    loop {
        let filler = UnixDatagram::unbound().unwrap();
        filler.set_nonblocking(true).unwrap();
        let before = filled;
        while filler.send_to(b"x", dir.socket()).is_ok() {
            filled += 1;
        }
        fillers.push(filler);
        if filled == before {
            break;
        }
    }
    assert!(filled > 0);
    let client = client_with_delay(&dir, Duration::from_millis(20));
    client.queue_call(call("a"));
    // Refused, not dropped: the thread tries again once there is room.
    let mut buf = [0u8; 16];
    for _ in 0..filled {
        receiver.recv(&mut buf).unwrap();
    }
    assert_eq!(recv_call(&receiver).seq, 1);
    assert_eq!((client.stats().sent, client.stats().dropped), (1, 0));
}

#[test]
fn queued_frames_are_copied_into_the_call() {
    let dir = TempDir::new();
    let receiver = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    let frame = Arc::new(StackFrame {
        file: "/mnt/extra-addons/sale/models/sale.py".into(),
        function: "action_confirm".into(),
        line: 42,
    });
    client.queue_call_with_frames(call("a"), vec![Arc::clone(&frame), frame]);
    client.flush();
    let sent = recv_call(&receiver);
    assert_eq!(sent.stack.len(), 2);
    assert_eq!(sent.stack[1].function, "action_confirm");
    assert_eq!(sent.stack[1].line, 42);
}

#[test]
fn stats_and_reports_see_every_queued_call() {
    let dir = TempDir::new();
    let client = HookClient::new(dir.socket());
    for _ in 0..3 {
        client.queue_call(call("a"));
    }
    // No socket yet: the three are counted as soon as anyone looks.
    let stats = client.stats();
    assert_eq!((stats.sent, stats.dropped, stats.pending_drops), (0, 3, 3));
    let receiver = bind(&dir.socket());
    client.queue_call(call("a"));
    assert!(client.report_drops());
    assert_eq!(recv_call(&receiver).seq, 1);
    let drops = recv_drops(&receiver);
    assert_eq!(drops.counts, vec![count("a", "socket_missing", 3)]);
    assert_eq!(drops.cursors, vec![cursor("a", 1)]);
}

#[test]
fn a_stopped_sender_has_sent_everything_and_restarts_on_the_next_call() {
    let dir = TempDir::new();
    let receiver = bind(&dir.socket());
    // The first call comes alone and leaves at once; the second is queued
    // and gathers for this long: only `stop_sender` sends it.
    let client = client_with_delay(&dir, Duration::from_secs(30));
    client.queue_call(call("a"));
    client.queue_call(call("a"));
    client.stop_sender();
    assert_eq!(recv_call(&receiver).seq, 1);
    assert_eq!(recv_call(&receiver).seq, 2);
    assert_queue_empty(&receiver);
    client.queue_call(call("a"));
    drop(client);
    assert_eq!(
        recv_call(&receiver).seq,
        3,
        "dropping the client sends the queue"
    );
}

#[test]
fn a_full_receiver_makes_the_sender_wait_not_drop() {
    let dir = TempDir::new();
    let receiver = bind(&dir.socket());
    // Patience enough for a test runner on a loaded machine.
    let client = client_with_delay(&dir, Duration::from_millis(20));
    // Far more than the kernel queues for a reader that has not read yet
    // (`net.unix.max_dgram_qlen`, 10 by default).
    let total = 600;
    for _ in 0..total {
        client.queue_call(call("a"));
    }
    let seqs: Vec<u64> = (0..total).map(|_| recv_call(&receiver).seq).collect();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<u64>>());
    let stats = client.stats();
    assert_eq!((stats.sent, stats.dropped), (total as u64, 0));
}

#[test]
fn a_child_forked_after_stop_sender_queues_as_a_new_worker() {
    let dir = TempDir::for_fork();
    let receiver = bind(&dir.socket());
    let client = HookClient::new(dir.socket());
    client.queue_call(call("a"));
    let parent = recv_call(&receiver);
    client.stop_sender();
    let pid = fork_child(|| {
        client.queue_call(call("a"));
        client.flush();
    });
    let child = recv_from_child(&receiver, pid);
    assert_eq!(child.seq, 1);
    assert_ne!(child.worker_id, parent.worker_id);
    client.queue_call(call("a"));
    assert_eq!(
        (recv_call(&receiver).worker_id, client.stats().sent),
        (parent.worker_id, 2)
    );
}
