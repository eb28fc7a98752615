//! Issue 4 end to end: the running collector signs chain heads on a schedule
//! and on demand (Odoo reads them through its view; nothing is written into
//! Odoo's settings), exports a signed file that both standalone verifiers
//! accept, and `verify` catches what a chain alone cannot: a journal
//! truncated after a signed head and a forged head; the collector refuses
//! to sign a journal cut after a head it signed, and an auditor's witness
//! catches the rollback.

use std::process::{Command, Output};
use std::time::Duration;

use egress_tests::bins::{bin_dir, egress_verify, verify_export_py};
use egress_tests::{output_text, serial, verify, wait_until, Collector, Scratch, TestDb};

fn collector_cli(collector: &Collector, args: &[&str]) -> Output {
    Command::new(bin_dir().join("egress-collector"))
        .args(args)
        .arg("--control")
        .arg(collector.control())
        .output()
        .expect("spawn egress-collector")
}

/// As a superuser who switches the append-only triggers off: the attacker.
fn tamper(db: &TestDb, sql: &str) {
    db.sql()
        .batch(&format!(
            "ALTER TABLE egress.journal DISABLE TRIGGER USER;
             ALTER TABLE egress.signed_head DISABLE TRIGGER USER;
             {sql};
             ALTER TABLE egress.journal ENABLE TRIGGER USER;
             ALTER TABLE egress.signed_head ENABLE TRIGGER USER;"
        ))
        .unwrap();
}

#[test]
fn heads_are_signed_on_schedule_and_on_demand_and_shown_to_odoo() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("signing");
    let collector = Collector::builder(db.name())
        .arg("--sign-interval-secs")
        .arg("1")
        .start();
    collector.send_calls(&db, 5);
    let scheduled = wait_until(
        Duration::from_secs(10),
        || db.sql().int("SELECT count(*) FROM egress.signed_head"),
        |n| *n >= 2,
    );
    assert!(scheduled >= 2, "scheduled signing wrote {scheduled} heads");

    collector.send_calls(&db, 3);
    let out = collector_cli(&collector, &["sign-now", "--db", db.name()]);
    assert!(out.status.success(), "sign-now: {}", output_text(&out));
    let head_seq = db.sql().int("SELECT max(seq) FROM egress.journal");
    assert_eq!(
        db.sql().int("SELECT max(seq) FROM egress.signed_head"),
        head_seq
    );
    // Odoo's table is not written: Odoo shows the latest head from the
    // egress view, which Odoo's role reads and cannot add to.
    assert_eq!(
        db.sql().int(
            "SELECT count(*) FROM public.ir_config_parameter \
             WHERE key = 'mit_network_audit.signed_head'"
        ),
        0
    );
    let odoo = db.odoo();
    let shown = odoo
        .text("SELECT encode(public_key, 'hex') FROM public.network_signed_head ORDER BY id DESC LIMIT 1")
        .expect("Odoo reads the latest signed head");
    let pubkey = collector_cli(&collector, &["pubkey", "--db", db.name()]);
    let pubkey = String::from_utf8_lossy(&pubkey.stdout).trim().to_string();
    assert_eq!(shown, pubkey);
    odoo.assert_refused("INSERT INTO egress.signed_head (database) VALUES ('x')");
    odoo.assert_refused("INSERT INTO public.network_signed_head (database) VALUES ('x')");

    let verified = verify(&db.superuser_url());
    assert!(verified.verified(), "{verified}");
    assert!(
        verified.stdout.contains("signed heads checked"),
        "{verified}"
    );
}

#[test]
fn exports_pass_both_standalone_verifiers_and_verify_catches_truncation_and_forgery() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("export");
    let collector = Collector::start(db.name());
    let dir = Scratch::new("export");
    collector.send_calls(&db, 20);
    assert!(collector_cli(&collector, &["sign-now", "--db", db.name()])
        .status
        .success());
    let pubkey = collector_cli(&collector, &["pubkey", "--db", db.name()]);
    let pubkey = String::from_utf8_lossy(&pubkey.stdout).trim().to_string();

    let file = dir.join("export.json");
    let out = collector_cli(
        &collector,
        &["export", "--db", db.name(), "-o", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "export: {}", output_text(&out));
    let witness = dir.join("witness.json");
    let rust = egress_verify(
        &file,
        &["--pubkey", &pubkey, "--witness", witness.to_str().unwrap()],
    );
    assert_eq!(
        rust.status.code(),
        Some(0),
        "egress-verify: {}",
        output_text(&rust)
    );
    let python = verify_export_py(&file, &["--pubkey", &pubkey]);
    assert_eq!(
        python.status.code(),
        Some(0),
        "verify_export.py: {}",
        output_text(&python)
    );

    // A partial export from an anchor verifies too.
    let part = dir.join("part.json");
    assert!(collector_cli(
        &collector,
        &[
            "export",
            "--db",
            db.name(),
            "--from",
            "5",
            "--to",
            "12",
            "-o",
            part.to_str().unwrap()
        ]
    )
    .status
    .success());
    assert_eq!(
        egress_verify(&part, &["--pubkey", &pubkey]).status.code(),
        Some(0)
    );

    // A forged head in the table (signed with another key).
    tamper(
        &db,
        "INSERT INTO egress.signed_head (database, seq, row_hash, signed_at_us, signed_at, hmac, signature, public_key, collector)
         SELECT database, seq, row_hash, signed_at_us + 1, signed_at, hmac, signature, public_key, 'forger'
         FROM egress.signed_head ORDER BY id DESC LIMIT 1",
    );
    let forged = verify(&db.superuser_url());
    assert_eq!(forged.code, Some(1), "{forged}");
    assert!(forged.stdout.contains("forged or altered"), "{forged}");
    tamper(
        &db,
        "DELETE FROM egress.signed_head WHERE collector = 'forger'",
    );
    assert!(verify(&db.superuser_url()).verified());

    // The tail cut after the last signed head: the chain alone still links.
    let end = db.sql().int("SELECT max(seq) FROM egress.journal");
    tamper(
        &db,
        &format!("DELETE FROM egress.journal WHERE seq > {}", end - 3),
    );
    let truncated = verify(&db.superuser_url());
    assert_eq!(truncated.code, Some(1), "{truncated}");
    assert!(truncated.stdout.contains("truncated"), "{truncated}");
    assert!(truncated.names_seq(end - 2), "{truncated}");

    // Deleting the later heads too hides the cut from `verify` on the
    // database, but not from the collector, which remembers what it signed
    // and refuses to sign the shortened journal, nor from an auditor's
    // witness of the earlier export.
    tamper(
        &db,
        &format!("DELETE FROM egress.signed_head WHERE seq > {}", end - 3),
    );
    let refused = collector_cli(&collector, &["sign-now", "--db", db.name()]);
    assert!(
        !refused.status.success(),
        "sign-now: {}",
        output_text(&refused)
    );
    assert!(
        output_text(&refused).contains(&format!("first bad seq {end}")),
        "sign-now names the head it signed that is gone: {}",
        output_text(&refused)
    );
    let rolled_back = dir.join("rolled-back.json");
    assert!(collector_cli(
        &collector,
        &[
            "export",
            "--db",
            db.name(),
            "-o",
            rolled_back.to_str().unwrap()
        ]
    )
    .status
    .success());
    let caught = egress_verify(
        &rolled_back,
        &["--pubkey", &pubkey, "--witness", witness.to_str().unwrap()],
    );
    assert_eq!(
        caught.status.code(),
        Some(1),
        "witness: {}",
        output_text(&caught)
    );
}
