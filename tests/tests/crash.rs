//! kill -9 of the collector under load: the restarted collector resumes the
//! chain (no fork, no duplicate seq) and accounts for what the crash lost.

use std::time::Duration;

use egress_tests::{serial, verify, wait_until, Collector, Loadgen, TestDb};

#[test]
fn a_killed_collector_resumes_the_chain_and_accounts_for_every_event() {
    let _serial = serial();
    let db = TestDb::new("kill9");
    let mut collector = Collector::start(db.name());

    // Paced so that the clients are still sending when the collector dies
    // and when it comes back; their exit reports outlive the restart.
    let mut load = Loadgen::new(collector.socket(), db.name())
        .clients(4)
        .events(10_000)
        .rate(1_000)
        .linger_ms(30_000)
        .spawn();
    let before = wait_until(Duration::from_secs(60), || db.call_rows(), |n| *n >= 2_000);
    assert!(
        before >= 2_000,
        "the load did not start reaching the journal (rows {before})"
    );
    assert!(
        load.is_running(),
        "the load must still be running when the collector is killed"
    );

    collector.kill9();
    std::thread::sleep(Duration::from_millis(500));
    collector.launch();
    let report = load.wait();
    assert!(
        report.drops_reported,
        "every client reports its drops at exit: {report:?}"
    );

    let expected = report.attempted() as i64;
    let accounted = db.wait_accounted(expected, Duration::from_secs(120));
    assert_eq!(
        accounted,
        expected,
        "call rows + gaps (calls {}, gaps: {}; loadgen {report:?}; status: {})",
        db.call_rows(),
        db.gap_summary(),
        collector.status()
    );
    assert_eq!(
        db.duplicate_seqs(),
        0,
        "a restarted collector must not reuse a seq"
    );
    assert!(db.seq_gapless(), "seq must run 1..=count(*)");
    let hook_gaps = db.hook_gap_sum();
    assert_eq!(
        hook_gaps,
        report.dropped as i64,
        "hook-side gaps = dropped ({})",
        db.gap_summary()
    );
    assert_eq!(
        db.call_rows() + db.gap_sum() - hook_gaps,
        report.sent as i64,
        "calls + collector-side gaps = what the socket accepted ({})",
        db.gap_summary()
    );
    let outcome = verify(&db.superuser_url());
    assert!(outcome.verified(), "verify:\n{outcome}");
}
