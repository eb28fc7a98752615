//! Tampering with the journal, even as a superuser, breaks the chain, and
//! `verify` names where.

use std::time::Duration;

use egress_tests::{serial, verify, Collector, Loadgen, TestDb};

const ROWS: i64 = 20;

/// A database with a verified chain of `ROWS` call rows and no collector
/// writing to it any more.
fn journal_of_calls(tag: &str) -> TestDb {
    let db = TestDb::new(tag);
    let mut collector = Collector::start(db.name());
    let report = Loadgen::new(collector.socket(), db.name())
        .events(ROWS as u64)
        .rate(200)
        .run();
    assert_eq!(report.sent, ROWS as u64, "{report:?}");
    let accounted = db.wait_accounted(ROWS, Duration::from_secs(60));
    assert_eq!(accounted, ROWS, "calls + gaps ({})", db.gap_summary());
    collector.stop();
    assert_eq!(
        db.call_rows(),
        ROWS,
        "every call is a row ({})",
        db.gap_summary()
    );
    let outcome = verify(&db.superuser_url());
    assert!(
        outcome.verified(),
        "an untouched chain verifies:\n{outcome}"
    );
    db
}

/// Runs `statement` with the append-only triggers off, as only a superuser
/// (or the NOLOGIN owner) can.
fn as_superuser_bypassing_triggers(db: &TestDb, statement: &str) {
    db.sql()
        .batch(&format!(
            "ALTER TABLE egress.journal DISABLE TRIGGER USER; {statement}; \
             ALTER TABLE egress.journal ENABLE TRIGGER USER;"
        ))
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

#[test]
fn an_updated_row_fails_verification_at_that_seq() {
    let _serial = serial();
    let db = journal_of_calls("tamper_upd");
    as_superuser_bypassing_triggers(
        &db,
        "UPDATE egress.journal SET host = 'evil.example' WHERE seq = 7",
    );

    let outcome = verify(&db.superuser_url());
    assert_eq!(
        outcome.code,
        Some(1),
        "a tampered chain exits 1:\n{outcome}"
    );
    assert!(outcome.names_seq(7), "verify must name `seq 7`:\n{outcome}");
}

#[test]
fn a_deleted_middle_row_fails_verification_where_the_sequence_breaks() {
    let _serial = serial();
    let db = journal_of_calls("tamper_del");
    as_superuser_bypassing_triggers(&db, "DELETE FROM egress.journal WHERE seq = 10");

    let outcome = verify(&db.superuser_url());
    assert_eq!(
        outcome.code,
        Some(1),
        "a tampered chain exits 1:\n{outcome}"
    );
    // The sequence breaks between seq 9 and seq 11: the contract names "the
    // position where the sequence breaks", which is the missing seq 10 or
    // the first row after it, whose prev_hash no longer links.
    assert!(
        outcome.names_seq(10) || outcome.names_seq(11),
        "verify must name `seq 10` (or `seq 11`):\n{outcome}"
    );
}

/// The rest of issue 4's tamper matrix that applies to a database: one
/// journal per case, each tampered as a superuser, each named by `verify`.
#[test]
fn a_changed_hash_swapped_rows_and_an_inserted_row_are_named() {
    let _serial = serial();
    let cases: [(&str, &str, i64); 3] = [
        (
            "tamper_hash",
            "UPDATE egress.journal SET row_hash = sha256(row_hash) WHERE seq = 7",
            7,
        ),
        (
            "tamper_swap",
            "UPDATE egress.journal SET seq = -5 WHERE seq = 5;
             UPDATE egress.journal SET seq = 5 WHERE seq = 6;
             UPDATE egress.journal SET seq = 6 WHERE seq = -5",
            5,
        ),
        (
            "tamper_insert",
            "INSERT INTO egress.journal
             SELECT seq + 1, row_hash, sha256(row_hash), database, kind, recorded_at, collector,
                    worker_id, worker_pid, worker_uid, worker_seq, started_at, duration_us, channel,
                    protocol, direction, method, 'inserted.example', port, path, query_keys,
                    header_names, src_ip, src_port, dst_ip, dst_port, tls, status, error_class,
                    bytes_out, bytes_in, fingerprint, addon, addon_path, stack, trigger_kind,
                    trigger_name, odoo_uid, component, class, self_egress, gap_count, gap_reason,
                    detail
             FROM egress.journal ORDER BY seq DESC LIMIT 1",
            ROWS + 1,
        ),
    ];
    for (tag, statement, seq) in cases {
        let db = journal_of_calls(tag);
        let end = db.sql().int("SELECT max(seq) FROM egress.journal");
        as_superuser_bypassing_triggers(&db, statement);
        let outcome = verify(&db.superuser_url());
        assert_eq!(outcome.code, Some(1), "{tag} exits 1:\n{outcome}");
        // Gap rows may follow the calls: the inserted row lands after them.
        let seq = if tag == "tamper_insert" { end + 1 } else { seq };
        assert!(
            outcome.names_seq(seq),
            "{tag} must name `seq {seq}`:\n{outcome}"
        );
    }
}

#[test]
fn verify_exits_2_when_it_cannot_check() {
    let outcome = verify("host=/var/run/postgresql user=postgres dbname=egress_no_such_database");
    assert_eq!(
        outcome.code,
        Some(2),
        "an unreachable database is \"could not check\":\n{outcome}"
    );
}
