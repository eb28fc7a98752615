//! A graceful collector restart while a client keeps sending: the client
//! reconnects by itself and every event is accounted for.

use std::time::Duration;

use egress_tests::{serial, verify, wait_until, Collector, Loadgen, TestDb};

#[test]
fn a_client_reconnects_after_a_collector_restart() {
    let _serial = serial();
    let db = TestDb::new("restart");
    let mut collector = Collector::start(db.name());

    let mut load = Loadgen::new(collector.socket(), db.name())
        .clients(2)
        .events(6_000)
        .rate(500)
        .linger_ms(30_000)
        .spawn();
    let before = wait_until(Duration::from_secs(60), || db.call_rows(), |n| *n >= 500);
    assert!(
        before >= 500,
        "the load did not start reaching the journal (rows {before})"
    );

    collector.stop();
    // SIGTERM flushed everything: any call row from now on was sent after
    // the restart, through a reconnected socket.
    let at_restart = db.call_rows();
    assert!(load.is_running(), "the load must outlive the restart");
    std::thread::sleep(Duration::from_millis(500));
    collector.launch();

    let after = wait_until(
        Duration::from_secs(30),
        || db.call_rows(),
        |n| *n > at_restart + 100,
    );
    assert!(
        after > at_restart + 100,
        "no new call rows after the restart ({at_restart} then {after}): the client did not reconnect"
    );
    assert!(
        load.is_running(),
        "the new rows came from live sends, not the exit report"
    );

    let report = load.wait();
    assert!(report.drops_reported, "{report:?}");
    let expected = report.attempted() as i64;
    let accounted = db.wait_accounted(expected, Duration::from_secs(60));
    assert_eq!(
        accounted,
        expected,
        "call rows + gaps (calls {}, gaps: {}; loadgen {report:?}; status: {})",
        db.call_rows(),
        db.gap_summary(),
        collector.status()
    );
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
    assert!(db.seq_gapless(), "seq must run 1..=count(*)");
    let outcome = verify(&db.superuser_url());
    assert!(outcome.verified(), "verify:\n{outcome}");
}
