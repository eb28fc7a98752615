//! One collector per socket and state directory, and each (worker,
//! database, seq) journaled at most once: replays and backward seqs are
//! counted, not stored, across a restart too; u64 extremes never wrap.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use egress_proto::{encode, DropCount, Drops, Message};
use egress_tests::datagram::call_frame;
use egress_tests::{bins, serial, verify, wait_until, Collector, DatagramSender, TestDb};

const WORKER: u64 = 77;

#[test]
fn a_second_run_on_the_same_paths_exits_at_once_naming_the_first() {
    let _serial = serial();
    let db = TestDb::new("second_run");
    let mut collector = Collector::start(db.name());
    let dir = collector.dir().to_path_buf();
    let started = Instant::now();
    let second = Command::new(bins::collector())
        .args(["run", "--socket"])
        .arg(collector.socket())
        .arg("--control")
        .arg(collector.control())
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--default-db", db.name()])
        .stdin(Stdio::null())
        .output()
        .expect("spawn a second egress-collector run");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second run must fail: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", collector.pid())),
        "it names the running collector: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "at once");
    // The first one still owns its sockets and journals.
    let mut tx = DatagramSender::new(collector.socket());
    tx.send(&call_frame(db.name(), WORKER, 1));
    let calls = wait_until(Duration::from_secs(30), || db.call_rows(), |n| *n >= 1);
    assert_eq!(calls, 1);
    // A dead collector's lock and stale socket never block a restart.
    collector.kill9();
    collector.launch();
    tx.send(&call_frame(db.name(), WORKER, 2));
    let calls = wait_until(Duration::from_secs(30), || db.call_rows(), |n| *n >= 2);
    assert_eq!(calls, 2);
}

#[test]
fn calls_that_name_no_database_are_not_refused_behind_the_default_databases() {
    // A worker numbers its calls per database it names: a thread without
    // context (no database) and its requests on the default database both
    // start at 1. Both go to the default database, and neither may be
    // refused as a duplicate of the other, before or after a restart.
    let _serial = serial();
    let db = TestDb::new("unnamed_db");
    let mut collector = Collector::start(db.name());
    let mut tx = DatagramSender::new(collector.socket());
    for seq in 1..=3 {
        tx.send(&call_frame(db.name(), WORKER, seq));
        tx.send(&call_frame("", WORKER, seq));
    }
    let calls = wait_until(Duration::from_secs(30), || db.call_rows(), |n| *n >= 6);
    assert_eq!(calls, 6);
    collector.restart();
    let mut tx = DatagramSender::new(collector.socket());
    // Replays of either stream are still refused; the next numbers are not.
    for (database, seq) in [("", 3), (db.name(), 3), ("", 4), (db.name(), 4)] {
        tx.send(&call_frame(database, WORKER, seq));
    }
    let dups = wait_until(
        Duration::from_secs(30),
        || kind_sum(&db, "duplicate", "duplicate_seq"),
        |n| *n >= 2,
    );
    let calls = wait_until(Duration::from_secs(30), || db.call_rows(), |n| *n >= 8);
    assert_eq!((calls, dups), (8, 2));
    assert_eq!(db.gap_sum_for("sequence_jump"), 0);
    assert_eq!(
        db.sql()
            .int("SELECT count(DISTINCT worker_id) FROM egress.journal WHERE kind = 'call'"),
        2,
        "two streams of one worker"
    );
    assert!(verify(&db.superuser_url()).verified(), "the chain verifies");
}

fn kind_sum(db: &TestDb, kind: &str, reason: &str) -> i64 {
    db.sql().int(&format!(
        "SELECT coalesce(sum(gap_count), 0)::bigint FROM egress.journal \
         WHERE kind = '{kind}' AND gap_reason = '{reason}'"
    ))
}

#[test]
fn replayed_and_backward_seqs_are_counted_not_stored_even_after_a_restart() {
    let _serial = serial();
    let db = TestDb::new("replays");
    let mut collector = Collector::start(db.name());
    let mut tx = DatagramSender::new(collector.socket());
    for seq in [1, 2, 3, 3, 2, 4] {
        tx.send(&call_frame(db.name(), WORKER, seq));
    }
    let dups = wait_until(
        Duration::from_secs(30),
        || kind_sum(&db, "duplicate", "duplicate_seq") + kind_sum(&db, "duplicate", "backward_seq"),
        |n| *n >= 2,
    );
    assert_eq!(dups, 2);
    assert_eq!(db.call_rows(), 4);
    assert_eq!(
        db.gap_sum_for("sequence_jump"),
        0,
        "a backward seq is no gap"
    );
    let status = collector.status();
    assert_eq!(
        status.0["chain"]["duplicates"].as_i64(),
        Some(2),
        "{status}"
    );

    // The stored cursor refuses a replay of what the last run journaled.
    collector.restart();
    let mut tx = DatagramSender::new(collector.socket());
    tx.send(&call_frame(db.name(), WORKER, 4));
    tx.send(&call_frame(db.name(), WORKER, 1));
    tx.send(&call_frame(db.name(), WORKER, 5));
    let calls = wait_until(Duration::from_secs(30), || db.call_rows(), |n| *n >= 5);
    assert_eq!(calls, 5);
    let dups = wait_until(
        Duration::from_secs(30),
        || kind_sum(&db, "duplicate", "duplicate_seq") + kind_sum(&db, "duplicate", "backward_seq"),
        |n| *n >= 4,
    );
    assert_eq!(dups, 4);
    assert!(verify(&db.superuser_url()).verified());
}

#[test]
fn u64_extremes_never_make_a_negative_count_nor_wrap_a_seq() {
    let _serial = serial();
    let db = TestDb::new("extremes");
    let collector = Collector::start(db.name());
    let mut tx = DatagramSender::new(collector.socket());
    tx.send(&call_frame(db.name(), WORKER, 1));
    tx.send(&call_frame(db.name(), WORKER, u64::MAX));
    tx.send(&call_frame(db.name(), WORKER, u64::MAX));
    tx.send(
        &encode(&Message::Drops(Drops {
            worker_id: WORKER,
            counts: vec![DropCount {
                database: db.name().into(),
                reason: "buffer_full".into(),
                count: u64::MAX,
            }],
            cursors: vec![],
        }))
        .unwrap(),
    );
    let full = wait_until(
        Duration::from_secs(30),
        || db.gap_sum_for("buffer_full"),
        |n| *n != 0,
    );
    assert_eq!(full, i64::MAX, "a count beyond bigint is kept at its top");
    assert_eq!(db.gap_sum_for("sequence_jump"), i64::MAX);
    let negative = db
        .sql()
        .int("SELECT count(*) FROM egress.journal WHERE gap_count < 0 OR worker_seq < 0");
    assert_eq!(negative, 0, "no negative count or seq");
    assert_eq!(db.call_rows(), 2, "the top seq is stored once");
    assert_eq!(kind_sum(&db, "duplicate", "duplicate_seq"), 1);
    assert!(verify(&db.superuser_url()).verified());
}
