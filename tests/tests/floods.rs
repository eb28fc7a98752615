//! Hostile floods against the real collector: made-up database names do not
//! lock a real database out (their slots are given back and their losses
//! counted per name) nor keep the collector knocking at PostgreSQL, and a Hello flood with fresh worker ids and huge
//! addons path lists stays under the documented memory bound.

use std::time::Duration;

use egress_proto::{encode, Hello, Message};
use egress_tests::datagram::call_frame;
use egress_tests::{serial, wait_until, Collector, DatagramSender, TestDb};

#[test]
fn a_flood_of_unknown_databases_does_not_lock_out_a_real_one() {
    let _serial = serial();
    let db = TestDb::new("unknown_flood");
    let collector = Collector::start(db.name());
    let mut tx = DatagramSender::new(collector.socket());
    let prefix = format!("egress_nx_{}", std::process::id());
    for i in 0..300u64 {
        tx.send(&call_frame(&format!("{prefix}_{i}"), 1_000 + i, 1));
    }
    // Each made-up name took a slot only until its database said it does
    // not exist (at most half the slots at once); every call is counted.
    let settled = |s: &egress_tests::Status| {
        let unknown: i64 = s.0["router"]["unknown_databases"]
            .as_object()
            .map_or(0, |m| m.values().map(|v| v.as_i64().unwrap_or(0)).sum());
        let refused = s.0["router"]["dropped"]["too_many_databases"]
            .as_i64()
            .unwrap_or(0);
        let open = s.0["databases"]
            .as_object()
            .is_some_and(|m| m.keys().any(|name| name.starts_with(&prefix)));
        unknown + refused >= 300 && !open
    };
    let status = wait_until(Duration::from_secs(120), || collector.status(), settled);
    assert!(settled(&status), "{status}");
    let unknown = status.0["router"]["unknown_databases"].as_object().unwrap();
    assert!(unknown.len() >= 32, "losses counted per name: {status}");
    assert!(unknown.len() <= 257, "a bounded map: {status}");
    // The real database is served, and everything it was sent is journaled.
    for seq in 1..=200 {
        tx.send(&call_frame(db.name(), 7, seq));
    }
    let calls = wait_until(Duration::from_secs(60), || db.call_rows(), |n| *n >= 200);
    assert_eq!(calls, 200, "status: {}", collector.status());
    assert_eq!(db.gap_sum(), 0);
    assert!(
        collector.log_text().contains("do not exist"),
        "the log names the problem:\n{}",
        collector.log_text()
    );
    // Nor are their settings read again and again: each made-up name cost
    // PostgreSQL a connection attempt every 2 s, for good.
    let reloads = || collector.status().0["policy"]["reloads"].as_i64().unwrap();
    let before = reloads();
    std::thread::sleep(Duration::from_secs(6));
    let reads = reloads() - before;
    assert!(
        reads <= 2,
        "{reads} reads of settings in 6 s after the flood"
    );
}

#[test]
fn made_up_names_are_remembered_within_a_bound() {
    // More made-up names than the policy watcher remembers: the oldest are
    // forgotten (their policy and pool too), a call naming one again is
    // asked about anew, and nothing stalls behind it.
    let _serial = serial();
    let db = TestDb::new("names_bound");
    let collector = Collector::start(db.name());
    let mut tx = DatagramSender::new(collector.socket());
    let prefix = format!("egress_nb_{}", std::process::id());
    const NAMES: u64 = 1_200;
    for i in 0..NAMES {
        tx.send(&call_frame(&format!("{prefix}_{i}"), 10_000 + i, 1));
    }
    let policy = |counter: &str| collector.status().0["policy"][counter].as_i64().unwrap();
    let reads = wait_until(
        Duration::from_secs(180),
        || policy("reloads"),
        |n| *n >= NAMES as i64,
    );
    assert!(reads >= NAMES as i64, "every name read once: {reads}");
    let remembered = policy("missing_names");
    assert!(
        (1_000..=1_024).contains(&remembered),
        "at most 1,024 made-up names remembered: {remembered}"
    );
    tx.send(&call_frame(&format!("{prefix}_0"), 10_000, 2));
    for seq in 1..=50 {
        tx.send(&call_frame(db.name(), 7, seq));
    }
    let calls = wait_until(Duration::from_secs(60), || db.call_rows(), |n| *n >= 50);
    assert_eq!(calls, 50, "status: {}", collector.status());
    let again = wait_until(
        Duration::from_secs(30),
        || policy("reloads"),
        |n| *n > reads,
    );
    assert!(again > reads, "a forgotten name is asked about anew");
}

fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// docs/CONFIGURATION.md, "Memory": the collector's resident set under a
/// Hello flood from one uid.
const HELLO_FLOOD_BOUND_KIB: u64 = 128 * 1024;

#[test]
fn a_hello_flood_stays_under_the_memory_bound() {
    let _serial = serial();
    let db = TestDb::new("hello_flood");
    let collector = Collector::start(db.name());
    let mut tx = DatagramSender::new(collector.socket());
    let paths: Vec<String> = (0..1_000).map(|i| format!("/a{i:04}")).collect();
    for worker_id in 0..25_000u64 {
        let hello = Hello {
            worker_id: 1_000_000 + worker_id,
            hook_mode: "python".into(),
            addons_paths: paths.clone(),
            databases: vec![db.name().into()],
            ..Hello::default()
        };
        tx.send(&encode(&Message::Hello(hello)).unwrap());
    }
    let seen = wait_until(
        Duration::from_secs(120),
        || collector.status().accepted(),
        |n| *n >= 25_000,
    );
    assert_eq!(seen, 25_000);
    let rss = rss_kib(collector.pid());
    eprintln!("resident memory after 25,000 Hellos: {rss} KiB");
    assert!(
        rss < HELLO_FLOOD_BOUND_KIB,
        "resident memory {rss} KiB after 25,000 Hellos of 1,000 paths (bound {HELLO_FLOOD_BOUND_KIB} KiB)"
    );
    // A real worker is still attributed and journaled.
    tx.send(&call_frame(db.name(), 9, 1));
    let calls = wait_until(Duration::from_secs(30), || db.call_rows(), |n| *n >= 1);
    assert_eq!(calls, 1);
}
