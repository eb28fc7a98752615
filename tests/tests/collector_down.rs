//! The collector is not running: clients return at once and count what they
//! dropped; a client still running when it starts reports those drops.

use std::time::{Duration, Instant};

use egress_tests::{serial, Collector, Loadgen, Scratch, TestDb};

#[test]
fn loadgen_returns_promptly_when_no_collector_runs() {
    let _serial = serial();
    let dir = Scratch::new("nocol");
    let started = Instant::now();
    let report = Loadgen::new(&dir.join("absent.sock"), "nowhere")
        .clients(2)
        .events(1_000)
        .run();
    let took = started.elapsed();

    assert!(
        took < Duration::from_secs(5),
        "loadgen took {took:?} with no collector"
    );
    assert_eq!(report.sent, 0, "{report:?}");
    assert_eq!(
        report.dropped, 2_000,
        "every event is dropped and counted: {report:?}"
    );
    assert_eq!(
        report.dropped_by_reason.get("socket_missing"),
        Some(&2_000),
        "the reason is socket_missing: {report:?}"
    );
    assert!(
        !report.drops_reported,
        "nobody could receive the drop report: {report:?}"
    );
}

#[test]
fn drops_before_the_collector_starts_become_a_socket_missing_gap() {
    let _serial = serial();
    let db = TestDb::new("late");
    let mut collector = Collector::builder(db.name()).build();

    const EVENTS: u64 = 3_000;
    let load = Loadgen::new(collector.socket(), db.name())
        .events(EVENTS)
        .rate(500)
        .linger_ms(30_000)
        .spawn();
    // ~1,000 events go nowhere before the collector exists.
    std::thread::sleep(Duration::from_secs(2));
    collector.launch();
    let report = load.wait();

    let missing = report
        .dropped_by_reason
        .get("socket_missing")
        .copied()
        .unwrap_or(0);
    assert!(
        missing > 0,
        "the client must have dropped events before the collector ran: {report:?}"
    );
    assert!(report.drops_reported, "{report:?}");
    let accounted = db.wait_accounted(EVENTS as i64, Duration::from_secs(60));
    assert_eq!(
        accounted,
        EVENTS as i64,
        "call rows + gaps = N (calls {}, gaps: {}; loadgen {report:?}; status: {})",
        db.call_rows(),
        db.gap_summary(),
        collector.status()
    );
    assert_eq!(
        db.gap_sum_for("socket_missing"),
        missing as i64,
        "the socket_missing gap carries the exact count ({})",
        db.gap_summary()
    );
    assert!(db.seq_gapless(), "seq must run 1..=count(*)");
}
