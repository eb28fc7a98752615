//! Only configured uids may send: datagrams from another uid are counted as
//! rejected and never journaled.

use std::time::Duration;

use egress_tests::{serial, wait_until, Collector, Loadgen, TestDb};

/// `nobody`.
const OTHER_UID: u32 = 65534;

#[test]
fn datagrams_from_a_uid_not_allowed_are_rejected() {
    let _serial = serial();
    let db = TestDb::new("uid");
    // 0666 so that the other uid can reach the socket at all: the check under
    // test is the collector's, not the file system's.
    let collector = Collector::builder(db.name()).socket_mode("0666").start();

    let report = Loadgen::new(collector.socket(), db.name())
        .events(200)
        .rate(1_000)
        .linger_ms(2_000)
        .as_uid(OTHER_UID)
        .run();
    assert!(
        report.sent > 0,
        "the socket accepted nothing from uid {OTHER_UID}: {report:?}"
    );

    let status = wait_until(
        Duration::from_secs(30),
        || collector.status(),
        |s| s.rejected("uid_not_allowed") >= report.sent as i64,
    );
    assert!(
        status.rejected("uid_not_allowed") >= report.sent as i64,
        "rejected.uid_not_allowed counts every datagram of uid {OTHER_UID} \
         (loadgen {report:?}); status {status}"
    );
    assert_eq!(
        status.rejected("uid_not_allowed"),
        status.datagrams(),
        "only uid {OTHER_UID} sent to this collector; status {status}"
    );
    assert_eq!(status.accepted(), 0, "status {status}");
    // The sender cannot see the rejection (its sends succeed): the log says it.
    let log = collector.log_text();
    assert!(
        log.contains("ingest.allow_uids") && log.contains(&format!("uid={OTHER_UID}")),
        "the collector logs the refused uid:\n{log}"
    );

    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        db.call_rows(),
        0,
        "no call of a uid not allowed is journaled"
    );
    let from_other = db.sql().int(&format!(
        "SELECT count(*) FROM egress.journal WHERE worker_uid = {OTHER_UID}"
    ));
    assert_eq!(
        from_other, 0,
        "nothing sent by uid {OTHER_UID} is journaled"
    );
    assert_eq!(
        db.gap_sum(),
        0,
        "no gap is taken on the word of a uid not allowed"
    );
}
