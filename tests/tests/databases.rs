//! Two Odoo databases: each gets its own journal and its own chain.

use std::time::Duration;

use egress_tests::{serial, verify, Collector, Loadgen, TestDb};

#[test]
fn each_database_has_its_own_gapless_verified_chain() {
    let _serial = serial();
    let first = TestDb::new("multi_a");
    let second = TestDb::new("multi_b");
    let collector = Collector::start(first.name());

    let to_first = Loadgen::new(collector.socket(), first.name())
        .clients(2)
        .events(5_000)
        .rate(2_000);
    let to_second = Loadgen::new(collector.socket(), second.name())
        .clients(2)
        .events(5_000)
        .rate(2_000);
    let running = [
        to_first.linger_ms(10_000).spawn(),
        to_second.linger_ms(10_000).spawn(),
    ];
    let reports: Vec<_> = running.into_iter().map(|r| r.wait()).collect();

    for (db, report) in [(&first, &reports[0]), (&second, &reports[1])] {
        let name = db.name();
        let expected = report.attempted() as i64;
        let accounted = db.wait_accounted(expected, Duration::from_secs(60));
        assert_eq!(
            accounted,
            expected,
            "{name}: call rows + gaps (calls {}, gaps: {}; {report:?}; status: {})",
            db.call_rows(),
            db.gap_summary(),
            collector.status()
        );
        assert!(
            db.call_rows() > 0,
            "{name}: its calls landed in its own journal"
        );
        let foreign = db.sql().int(
            "SELECT count(*) FROM egress.journal WHERE database IS DISTINCT FROM current_database()",
        );
        assert_eq!(
            foreign, 0,
            "{name}: rows of another database in this journal"
        );
        assert!(db.seq_gapless(), "{name}: seq must run 1..=count(*)");
        let genesis = db.sql().bool(
            "SELECT prev_hash = decode(repeat('00', 32), 'hex') FROM egress.journal WHERE seq = 1",
        );
        assert!(
            genesis,
            "{name}: the chain starts from the genesis hash, not another chain"
        );
        let outcome = verify(&db.superuser_url());
        assert!(outcome.verified(), "{name}: verify:\n{outcome}");
    }
}
