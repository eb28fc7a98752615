//! Odoo's database role can read the log and nothing more: even a rogue
//! addon's `cr.execute("DELETE …")` fails.

use std::time::Duration;

use egress_tests::{serial, verify, Collector, Loadgen, TestDb};

#[test]
fn the_odoo_role_cannot_change_the_journal_but_can_read_the_log() {
    let _serial = serial();
    let db = TestDb::new("perms");
    let mut collector = Collector::start(db.name());
    Loadgen::new(collector.socket(), db.name())
        .events(10)
        .rate(200)
        .run();
    let rows = db.wait_accounted(10, Duration::from_secs(60));
    assert_eq!(rows, 10, "calls + gaps ({})", db.gap_summary());
    collector.stop();
    let rows = db.rows();

    let odoo = db.odoo();

    let attempts = [
        "INSERT INTO egress.journal (seq, prev_hash, row_hash, database, kind, recorded_at, collector) \
         VALUES (1000000, '\\x00', '\\x00', current_database(), 'call', now(), 'rogue')",
        "UPDATE egress.journal SET host = 'evil.example' WHERE seq = 1",
        "DELETE FROM egress.journal WHERE seq = 1",
        "TRUNCATE egress.journal",
    ];
    for statement in attempts {
        odoo.assert_refused(statement);
    }

    let visible = odoo
        .query("SELECT count(*) FROM public.network_egress_log")
        .first()
        .map(|r| r.get::<_, i64>(0))
        .expect("one row");
    assert_eq!(
        visible, rows,
        "Odoo's role reads every journal row through the view"
    );

    assert_eq!(db.rows(), rows, "the journal is unchanged");
    let outcome = verify(&db.superuser_url());
    assert!(outcome.verified(), "verify:\n{outcome}");
}
