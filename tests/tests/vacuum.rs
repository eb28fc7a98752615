//! Issue 5, retention end to end: `vacuum-now` prunes exactly the rows
//! older than the cutoff, never at or after the latest signed head, and
//! journals each prune; `verify` then starts from the anchor the vacuum
//! entry recorded; the rollups outlive the pruned rows; nothing but the
//! vacuum function may delete, and a prune without its entry is caught; a
//! vacuum killed half-way leaves a journal that verifies.
//!
//! The clock: rows are journaled at real times, and `vacuum-now --now-us`
//! moves the vacuum's "now" forward instead of waiting days (the entry
//! records that it did). The chain is never faked.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use egress_tests::db::{conninfo, describe};
use egress_tests::rollups::wait_caught_up;
use egress_tests::{output_text, serial, verify, wait_until, Collector, Loadgen, Sql, TestDb};
use serde_json::Value;

const DAY_US: i64 = 86_400_000_000;
const RETENTION: &str = "mit_network_audit.retention_days";

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn sign_now(collector: &Collector, db: &TestDb) -> i64 {
    let out = collector.cli(&["sign-now", "--db", db.name()]);
    assert!(out.status.success(), "sign-now: {}", output_text(&out));
    db.sql().int("SELECT max(seq) FROM egress.signed_head")
}

/// `vacuum-now --db <db> --now-us <at> --json`, parsed.
fn vacuum_now(collector: &Collector, db: &TestDb, at_us: i64) -> Value {
    let at = at_us.to_string();
    let out = collector.cli(&["vacuum-now", "--db", db.name(), "--now-us", &at, "--json"]);
    assert!(out.status.success(), "vacuum-now: {}", output_text(&out));
    serde_json::from_slice(&out.stdout).expect("vacuum-now --json prints JSON")
}

fn first_seq(db: &TestDb) -> i64 {
    db.sql().int("SELECT min(seq) FROM egress.journal")
}

fn row_hash_hex(db: &TestDb, seq: i64) -> String {
    db.sql()
        .text(&format!(
            "SELECT encode(row_hash, 'hex') FROM egress.journal WHERE seq = {seq}"
        ))
        .expect("the row exists")
}

/// The `detail` of every vacuum entry, by seq.
fn vacuum_entries(db: &TestDb) -> Vec<(i64, Value)> {
    db.sql()
        .query("SELECT seq, detail FROM egress.journal WHERE kind = 'vacuum' ORDER BY seq")
        .iter()
        .map(|r| {
            let detail: String = r.get(1);
            (
                r.get(0),
                serde_json::from_str(&detail).expect("JSON detail"),
            )
        })
        .collect()
}

/// The call rollups summed per group over all days, as text, to compare.
fn rollup_totals(db: &TestDb) -> String {
    db.sql()
        .query(
            "SELECT addon, component, class, channel, host, sum(calls)::bigint, \
                    sum(bytes_out)::bigint FROM egress.rollup GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
        )
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(3),
                r.get::<_, String>(4),
                r.get::<_, i64>(5),
                r.get::<_, i64>(6)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn retention_prunes_exactly_the_old_rows_below_the_signed_head_and_verify_starts_from_the_anchor() {
    let _serial = serial();
    let db = TestDb::new_odoo("vacuum");
    db.allow_vacuum_clock();
    db.set_setting(RETENTION, "1");
    let collector = Collector::start(db.name());

    // Old rows, then (after the cutoff to come) newer rows, then the signed
    // head, then rows after it.
    collector.send_calls(&db, 40);
    std::thread::sleep(Duration::from_millis(1200));
    let cutoff_us = now_us();
    std::thread::sleep(Duration::from_millis(1200));
    collector.send_calls(&db, 30);
    let signed = sign_now(&collector, &db);
    collector.send_calls(&db, 10);
    assert!(wait_caught_up(&db, Duration::from_secs(30)));
    let totals_before = rollup_totals(&db);
    // What must go: the prefix recorded before the cutoff.
    let expected_last = db.sql().int(&format!(
        "SELECT max(seq) FROM egress.journal WHERE seq < (SELECT min(seq) FROM egress.journal \
         WHERE recorded_at >= TIMESTAMPTZ 'epoch' + {cutoff_us} * INTERVAL '1 microsecond')"
    ));
    assert!(expected_last >= 40, "the 40 old calls precede the cutoff");
    let anchor = row_hash_hex(&db, expected_last);
    let head_before = db.head_seq();

    // One day of retention, "now" one day after the cutoff.
    let outcome = vacuum_now(&collector, &db, cutoff_us + DAY_US);
    assert_eq!(
        outcome["removed"].as_i64(),
        Some(expected_last),
        "{outcome}"
    );
    assert_eq!(first_seq(&db), expected_last + 1);
    assert_eq!(
        db.rows(),
        head_before - expected_last + 1,
        "exactly rows 1..={expected_last} went, and one vacuum entry came"
    );
    let entries = vacuum_entries(&db);
    assert_eq!(entries.len(), 1);
    let (entry_seq, detail) = &entries[0];
    assert_eq!(*entry_seq, head_before + 1);
    assert_eq!(detail["first_seq"], 1);
    assert_eq!(detail["last_seq"].as_i64(), Some(expected_last));
    assert_eq!(detail["rows"].as_i64(), Some(expected_last));
    assert_eq!(detail["anchor"].as_str(), Some(anchor.as_str()));
    assert_eq!(detail["signed_head_seq"].as_i64(), Some(signed));
    assert_eq!(detail["clock_override"], true);
    let outcome = verify(&db.superuser_url());
    assert!(outcome.verified(), "verify after a vacuum:\n{outcome}");
    assert!(
        outcome
            .stdout
            .contains(&format!("Started from the anchor {anchor}")),
        "verify says it starts from the anchor:\n{outcome}"
    );

    // Everything is old now, but nothing at or after the signed head goes.
    let outcome = vacuum_now(&collector, &db, now_us() + 30 * DAY_US);
    assert_eq!(
        outcome["removed"].as_i64(),
        Some(signed - 1 - expected_last),
        "{outcome}"
    );
    assert_eq!(first_seq(&db), signed);
    assert_eq!(
        db.sql().int(&format!(
            "SELECT count(*) FROM egress.journal WHERE seq >= {signed}"
        )),
        db.head_seq() - signed + 1,
        "every row from the signed head on is still there"
    );
    let outcome = verify(&db.superuser_url());
    assert!(
        outcome.verified(),
        "verify after a second vacuum:\n{outcome}"
    );
    // A third vacuum has nothing left to take.
    let outcome = vacuum_now(&collector, &db, now_us() + 30 * DAY_US);
    assert_eq!(outcome["removed"], 0, "{outcome}");

    // The rollups outlive the rows: the same sums, plus the vacuum events.
    let out = collector.cli(&["report", "--db", db.name(), "--json"]);
    assert!(out.status.success(), "report: {}", output_text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rollup_totals(&db), totals_before);
    assert_eq!(report["summary"]["calls"], 80);
    assert_eq!(
        report["trust"]["retention"]["last_vacuum"]["last_seq"].as_i64(),
        Some(signed - 1)
    );
    assert_eq!(report["trust"]["retention"]["days"], 1);
    assert_eq!(
        db.sql()
            .int("SELECT count(*) FROM egress.rollup_event WHERE kind = 'vacuum'"),
        2
    );

    // A row removed behind the vacuum's back is still caught.
    db.sql()
        .batch(&format!(
            "ALTER TABLE egress.journal DISABLE TRIGGER USER;
             DELETE FROM egress.journal WHERE seq = {signed};
             ALTER TABLE egress.journal ENABLE TRIGGER USER;"
        ))
        .unwrap();
    let outcome = verify(&db.superuser_url());
    assert_eq!(outcome.code, Some(1), "{outcome}");
    assert!(outcome.names_seq(signed), "names seq {signed}:\n{outcome}");
}

#[test]
fn only_the_prune_function_deletes_and_only_with_its_entry() {
    let _serial = serial();
    let db = TestDb::new_odoo("vacuum_perms");
    let collector = Collector::start(db.name());
    collector.send_calls(&db, 20);
    sign_now(&collector, &db);
    assert!(wait_caught_up(&db, Duration::from_secs(30)));
    let rows = db.rows();

    let plain = [
        "DELETE FROM egress.journal WHERE seq = 1",
        "TRUNCATE egress.journal",
        "UPDATE egress.journal SET host = 'x' WHERE seq = 1",
    ];
    let collector_role = Sql::connect(&conninfo("egress_collector", db.name())).unwrap();
    let odoo = db.odoo();
    for statement in plain {
        collector_role.assert_refused(statement);
        odoo.assert_refused(statement);
        // The triggers refuse even a superuser who leaves them on (a
        // TRUNCATE is refused even earlier, for the forensic bodies' foreign
        // key to the journal)...
        let refused = db
            .sql()
            .batch(statement)
            .expect_err("a superuser's plain change of the journal is refused");
        assert!(
            matches!(
                refused.code().map(|c| c.code()),
                Some("42501") | Some("0A000")
            ),
            "{statement}: {}",
            describe(&refused)
        );
    }
    // ...and one who sets the vacuum's own setting: only the function,
    // running as the owner, may delete.
    db.sql()
        .assert_refused("SET egress.vacuum = 'on'; DELETE FROM egress.journal WHERE seq = 1");
    db.sql().batch("RESET egress.vacuum").unwrap();
    odoo.assert_refused("SELECT * FROM egress.vacuum_journal(now() + interval '30 days', 5)");
    assert_eq!(db.rows(), rows, "nothing was deleted");
    assert!(verify(&db.superuser_url()).verified());

    // The collector's role prunes only through egress.prune_journal: not
    // with a cutoff of its own, not with a clock of its own, and not
    // without journaling the prune in the same transaction.
    collector_role
        .assert_refused("SELECT * FROM egress.vacuum_journal(now() + interval '30 days', 5)");
    db.set_setting(RETENTION, "1");
    collector_role
        .assert_refused("SELECT * FROM egress.prune_journal(5, now() + interval '30 days')");
    let unjournaled = collector_role.batch("SELECT * FROM egress.prune_journal(5)");
    assert!(
        unjournaled.is_ok(),
        "nothing is old enough yet: nothing to refuse"
    );
    db.allow_vacuum_clock();
    let unjournaled = collector_role
        .batch("SELECT * FROM egress.prune_journal(5, now() + interval '30 days')")
        .expect_err("a prune without its vacuum entry does not commit");
    assert!(
        describe(&unjournaled).contains("without their vacuum entry"),
        "{}",
        describe(&unjournaled)
    );
    assert_eq!(db.rows(), rows, "nothing was deleted");

    // A superuser can still prune behind the journal's back: the anchor
    // that leaves is vouched for by nothing, and verify says so.
    let removed = db
        .sql()
        .int("SELECT removed FROM egress.vacuum_journal(now() + interval '30 days', 5)");
    assert_eq!(removed, 5);
    assert_eq!(first_seq(&db), 6);
    let outcome = verify(&db.superuser_url());
    assert_eq!(outcome.code, Some(1), "{outcome}");
    assert!(outcome.names_seq(1), "names seq 1:\n{outcome}");
    assert!(
        outcome
            .stdout
            .contains("no vacuum entry records their removal"),
        "{outcome}"
    );
}

#[test]
fn a_vacuum_killed_half_way_leaves_a_journal_that_verifies() {
    let _serial = serial();
    let db = TestDb::new_odoo("vacuum_kill");
    db.allow_vacuum_clock();
    db.set_setting(RETENTION, "1");
    let mut collector = Collector::builder(db.name())
        .arg("--vacuum-batch-rows")
        .arg("500")
        .start();
    let report = Loadgen::new(collector.socket(), db.name())
        .clients(2)
        .events(2000)
        .rate(1000)
        .run();
    db.wait_accounted(report.attempted() as i64, Duration::from_secs(60));
    let signed = sign_now(&collector, &db);
    assert!(wait_caught_up(&db, Duration::from_secs(30)));
    let head = db.head_seq();
    let calls = db.call_rows();

    // A barrier: an uncommitted row at the seq of the third vacuum entry.
    // The first two transactions commit; the third deletes its rows, then
    // waits on the barrier to journal its entry; the collector dies there.
    // The barrier is rolled back, never committed.
    let barrier = Sql::connect(&db.superuser_url()).unwrap();
    barrier
        .batch(&format!(
            "BEGIN; INSERT INTO egress.journal (seq, prev_hash, row_hash, database, kind, \
             recorded_at, collector) VALUES ({}, '\\x00', '\\x00', 'barrier', 'barrier', now(), 'test')",
            head + 3
        ))
        .unwrap();
    let at = (now_us() + 30 * DAY_US).to_string();
    let mut vacuum = Command::new(egress_tests::bins::collector())
        .args([
            "vacuum-now",
            "--db",
            db.name(),
            "--now-us",
            &at,
            "--control",
        ])
        .arg(collector.control())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vacuum-now");
    let waiting = wait_until(
        Duration::from_secs(60),
        || {
            db.sql().int(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO egress.journal%'",
            )
        },
        |n| *n == 1,
    );
    assert_eq!(waiting, 1, "the third prune waits on the barrier");
    collector.kill9();
    let _ = vacuum.wait();
    barrier.batch("ROLLBACK").unwrap();
    // The killed collector's sessions end, the waiting one aborting its
    // transaction: its client never sent COMMIT.
    let left = wait_until(
        Duration::from_secs(30),
        || {
            db.sql().int(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'egress-collector'",
            )
        },
        |n| *n == 0,
    );
    assert_eq!(left, 0, "the dead collector's sessions are gone");

    let entries = vacuum_entries(&db);
    assert_eq!(entries.len(), 2, "two prunes committed, the third did not");
    assert_eq!(first_seq(&db), 1001, "two batches of 500 went, no more");
    assert_eq!(db.head_seq(), head + 2);
    assert_eq!(entries[1].1["last_seq"], 1000);
    let outcome = verify(&db.superuser_url());
    assert!(outcome.verified(), "after the kill:\n{outcome}");

    // Restarted, the vacuum finishes the job.
    collector.launch();
    let outcome = vacuum_now(&collector, &db, now_us() + 30 * DAY_US);
    assert!(outcome["removed"].as_i64().unwrap() > 0, "{outcome}");
    assert_eq!(first_seq(&db), signed);
    let outcome = verify(&db.superuser_url());
    assert!(outcome.verified(), "after the second vacuum:\n{outcome}");
    assert!(wait_caught_up(&db, Duration::from_secs(30)));
    // The rollups still hold every call, pruned or not.
    assert_eq!(
        db.sql().int("SELECT sum(calls)::bigint FROM egress.rollup"),
        calls
    );
}
