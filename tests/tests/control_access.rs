//! Who may ask what of the control socket: `control.export_uids` (Odoo's
//! user) gets what the export wizard needs and nothing that prunes the
//! journal or shows every database; `control.allow_uids` gets everything;
//! `forensic.odoo_uids` only forensic requests that name an Odoo user; any
//! other uid nothing.

use std::os::unix::fs::PermissionsExt;

use std::time::Duration;

use egress_tests::{output_text, serial, wait_until, Collector, Loadgen, Scratch, TestDb};

/// `nobody`.
const ODOO_UID: u32 = 65534;

/// A scratch directory the other uid may write (the export lands there).
fn writable_scratch(tag: &str) -> Scratch {
    let dir = Scratch::new(tag);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod scratch");
    dir
}

fn journal_some_calls(collector: &Collector, db: &TestDb) {
    let report = Loadgen::new(collector.socket(), db.name())
        .events(20)
        .rate(1_000)
        .linger_ms(2_000)
        .run();
    assert_eq!(report.dropped, 0, "{report:?}");
    let rows = wait_until(Duration::from_secs(30), || db.call_rows(), |n| *n >= 20);
    assert_eq!(rows, 20, "the calls are journaled");
}

#[test]
fn an_export_uid_may_export_sign_and_read_the_key_but_not_prune_watch_or_read_status() {
    let _serial = serial();
    let db = TestDb::new("ctl_export_uid");
    let collector = Collector::builder(db.name())
        .arg("--control-export-uid")
        .arg(&ODOO_UID.to_string())
        .start();
    journal_some_calls(&collector, &db);
    let dir = writable_scratch("ctl-exp");
    let as_odoo = |args: &[&str]| collector.cli_as_uid(ODOO_UID, &dir, args);

    let signed = as_odoo(&["sign-now", "--db", db.name()]);
    assert!(
        signed.status.success(),
        "sign-now: {}",
        output_text(&signed)
    );
    let key = as_odoo(&["pubkey", "--db", db.name()]);
    assert!(key.status.success(), "pubkey: {}", output_text(&key));
    let file = dir.join("export.json");
    let exported = as_odoo(&["export", "--db", db.name(), "-o", file.to_str().unwrap()]);
    assert!(
        exported.status.success(),
        "export: {}",
        output_text(&exported)
    );
    let export: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read the export")).expect("JSON");
    assert_eq!(export["format"], "egress-audit-export");
    assert!(export["rows"]
        .as_array()
        .is_some_and(|rows| rows.len() >= 20));

    let rows_before = db.sql().int("SELECT count(*) FROM egress.journal");
    for args in [
        vec![
            "vacuum-now",
            "--db",
            db.name(),
            "--now-us",
            "9000000000000000",
        ],
        vec!["status", "--json"],
        vec!["report", "--db", db.name(), "--json"],
    ] {
        let refused = as_odoo(&args);
        let said = output_text(&refused);
        assert!(!refused.status.success(), "{args:?} was allowed: {said}");
        assert!(
            said.contains("control.export_uids") && said.contains(args[0]),
            "{args:?}: the refusal says why: {said}"
        );
    }
    let watch = as_odoo(&["watch", "--since", "5"]);
    assert!(
        !watch.status.success() && output_text(&watch).contains("control.export_uids"),
        "watch: {}",
        output_text(&watch)
    );
    assert_eq!(
        db.sql()
            .int("SELECT count(*) FROM egress.journal WHERE kind = 'vacuum'"),
        0,
        "no vacuum ran"
    );
    assert!(db.sql().int("SELECT count(*) FROM egress.journal") >= rows_before);

    // The same requests from root (always allowed) still work.
    let status = collector.cli(&["status", "--json"]);
    assert!(
        status.status.success(),
        "status as root: {}",
        output_text(&status)
    );
}

#[test]
fn an_allow_uid_may_prune_and_any_other_uid_nothing() {
    let _serial = serial();
    let db = TestDb::new("ctl_allow_uid");
    let dir = writable_scratch("ctl-all");

    let collector = Collector::start(db.name());
    for args in [
        vec!["export", "--db", db.name(), "-o", "x.json"],
        vec!["status", "--json"],
    ] {
        let refused = collector.cli_as_uid(ODOO_UID, &dir, &args);
        let said = output_text(&refused);
        assert!(!refused.status.success(), "{args:?} was allowed: {said}");
        assert!(
            said.contains("may not use the control socket"),
            "{args:?}: {said}"
        );
    }
    drop(collector);

    let collector = Collector::builder(db.name())
        .arg("--control-allow-uid")
        .arg(&ODOO_UID.to_string())
        .start();
    let status = collector.cli_as_uid(ODOO_UID, &dir, &["status", "--json"]);
    assert!(status.status.success(), "status: {}", output_text(&status));
    let vacuum = collector.cli_as_uid(ODOO_UID, &dir, &["vacuum-now", "--db", db.name()]);
    assert!(
        vacuum.status.success(),
        "vacuum-now: {}",
        output_text(&vacuum)
    );
}

#[test]
fn a_forensic_odoo_uid_may_not_switch_or_read_capture_without_naming_the_odoo_user() {
    let _serial = serial();
    let db = TestDb::new("ctl_forensic_uid");
    let collector = Collector::builder(db.name())
        .arg("--forensic-odoo-uid")
        .arg(&ODOO_UID.to_string())
        .start();
    let dir = writable_scratch("ctl-for");
    let as_odoo = |args: &[&str]| collector.cli_as_uid(ODOO_UID, &dir, args);
    // The CLI names no Odoo user: only the operator may use it.
    for args in [
        vec!["forensic", "status", "--db", db.name()],
        vec![
            "forensic",
            "enable",
            "--db",
            db.name(),
            "--host",
            "x",
            "--for",
            "1h",
        ],
        vec!["forensic", "read", "--db", db.name(), "--seq", "1"],
    ] {
        let refused = as_odoo(&args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert!(
            output_text(&refused).contains("only on behalf of an Odoo user"),
            "{args:?}: {}",
            output_text(&refused)
        );
    }
    let status = as_odoo(&["status"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(output_text(&status).contains("forensic.odoo_uids"));
    // Nothing was switched: capture is still off, by the operator's account.
    let own = collector.cli(&["forensic", "status", "--db", db.name()]);
    assert!(own.status.success(), "{}", output_text(&own));
    assert!(output_text(&own).contains("off (never enabled)"));
}
