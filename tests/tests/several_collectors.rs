//! Several collectors, one database (issue 17): three real collectors, each
//! with its own socket, state directory and keys, append to one database's
//! chain, fed by paced senders, and sign its heads every two seconds while the
//! others append. One linear chain; every call once; `verify`,
//! `egress-verify` and `verify_export.py` pass with the three keys and name
//! the first head of the one left out; the report counts every call once;
//! retention runs once when all three are asked at the same time. One
//! collector is killed mid-run and restarted: its earlier heads still
//! verify and it signs again.

use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use egress_tests::bins::{egress_verify, verify_export_py};
use egress_tests::{
    collector::verify_with, db::conninfo, rollups, serial, wait_until, Collector, Loadgen, Scratch,
    Sql, TestDb,
};

const IDS: [&str; 3] = ["host-a", "host-b", "host-c"];
const RETENTION: &str = "mit_network_audit.retention_days";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn start(db: &TestDb, id: &str) -> Collector {
    Collector::builder(db.name())
        .arg("--collector-id")
        .arg(id)
        .arg("--sign-interval-secs")
        .arg("2")
        .start()
}

fn pubkey(collector: &Collector, db: &TestDb) -> String {
    let out = collector.cli(&["pubkey", "--db", db.name()]);
    assert!(out.status.success(), "pubkey: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn heads_by(db: &TestDb, id: &str) -> i64 {
    db.sql().int(&format!(
        "SELECT count(*) FROM egress.signed_head WHERE collector = '{id}'"
    ))
}

#[test]
fn three_collectors_write_one_chain_that_verifies_with_their_keyring() {
    let _serial = serial();
    let db = TestDb::new("several");
    let mut collectors: Vec<Collector> = IDS.iter().map(|id| start(&db, id)).collect();
    let keys: Vec<String> = collectors.iter().map(|c| pubkey(c, &db)).collect();
    assert!(
        keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2],
        "each collector has its own key: {keys:?}"
    );

    // Paced senders, one per collector (2 workers each, 100 calls/s each).
    let loads: Vec<Loadgen> = collectors
        .iter()
        .map(|c| {
            Loadgen::new(c.socket(), db.name())
                .events(600)
                .clients(2)
                .rate(100)
        })
        .collect();
    let mut running: Vec<_> = loads.iter().map(Loadgen::spawn).collect();

    // Mid-run, once host-b has signed heads between the others' appends,
    // kill it and start it again on the same state directory.
    let b_heads = wait_until(
        Duration::from_secs(60),
        || heads_by(&db, "host-b"),
        |n| *n >= 2,
    );
    assert!(b_heads >= 2, "host-b signed {b_heads} heads");
    let first_b_head = db
        .sql()
        .int("SELECT min(seq) FROM egress.signed_head WHERE collector = 'host-b'");
    collectors[1].kill9();
    std::thread::sleep(Duration::from_millis(500));
    collectors[1].launch();

    let reports: Vec<_> = running.drain(..).map(|r| r.wait()).collect();
    let attempted: u64 = reports.iter().map(|r| r.attempted()).sum();
    let accounted = wait_until(
        Duration::from_secs(120),
        || db.accounted(),
        |n| *n >= attempted as i64,
    );

    // One linear chain; every call once (a call the killed collector could
    // not take is a counted gap, never a silent loss, never a duplicate).
    assert_eq!(accounted, attempted as i64, "{}", db.gap_summary());
    assert!(db.seq_gapless(), "one gapless chain");
    assert_eq!(db.duplicate_seqs(), 0);
    assert_eq!(
        db.sql().int(
            "SELECT (count(*) - count(DISTINCT (worker_id, worker_seq)))::bigint \
             FROM egress.journal WHERE kind = 'call'"
        ),
        0,
        "no call journaled twice"
    );
    for id in IDS {
        let rows = db.sql().int(&format!(
            "SELECT count(*) FROM egress.journal WHERE kind = 'call' AND collector = '{id}'"
        ));
        assert!(rows > 0, "{id} appended calls");
    }

    // Each signs once more, host-b after its restart too: the continuity
    // check holds although the others appended between its heads.
    for c in &collectors {
        let out = c.cli(&["sign-now", "--db", db.name()]);
        assert!(out.status.success(), "sign-now: {}", text(&out));
    }
    for id in IDS {
        assert!(heads_by(&db, id) >= 1, "{id} signed heads");
    }
    let refused = db.sql().int(
        "SELECT count(*) FROM egress.journal WHERE kind = 'alarm' \
         AND detail LIKE '%signing_refused%'",
    );
    assert_eq!(refused, 0, "no collector refused to sign");

    // verify: passes with the three keys (given one by one or as a
    // keyring file), fails without host-b's, naming its first head.
    let url = db.superuser_url();
    let all: Vec<&str> = keys.iter().flat_map(|k| ["--pubkey", k.as_str()]).collect();
    let v = verify_with(&url, &all);
    assert!(v.verified(), "{v}");
    for (id, key) in IDS.iter().zip(&keys) {
        let signer = format!("{id} (key {}): ", &key[..16]);
        assert!(v.stdout.contains(&signer), "names {signer}: {v}");
    }
    let dir = Scratch::new("keyring");
    let keyring = dir.join("keyring");
    let listed = collectors[0].cli(&["keys", "--db", db.name(), "--keyring"]);
    assert!(listed.status.success(), "keys --keyring: {}", text(&listed));
    std::fs::write(&keyring, &listed.stdout).unwrap();
    let ring = keyring.to_str().unwrap();
    let v = verify_with(&url, &["--keyring", ring]);
    assert!(v.verified(), "the keyring `keys --keyring` prints: {v}");
    let without_b = ["--pubkey", keys[0].as_str(), "--pubkey", keys[2].as_str()];
    let v = verify_with(&url, &without_b);
    assert_eq!(v.code, Some(1), "{v}");
    assert!(
        v.stdout
            .contains(&format!("the head signed at seq {first_b_head}:"))
            && v.stdout.contains(&keys[1][..16])
            && v.stdout.contains("not in the keyring"),
        "names host-b's first head and key: {v}"
    );

    // `keys`: the three collectors, their keys, alive.
    let listed = collectors[2].cli(&["keys", "--db", db.name(), "--json"]);
    assert!(listed.status.success(), "keys: {}", text(&listed));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    for (id, key) in IDS.iter().zip(&keys) {
        let found = listed["collectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["collector"] == *id && c["public_key"] == key.as_str());
        let found = found.unwrap_or_else(|| panic!("{id} in {listed}"));
        assert_eq!(found["alive"], true, "{found}");
        assert!(found["rows"].as_i64().unwrap() > 0, "{found}");
    }
    assert_eq!(listed["public_key"], keys[2].as_str());

    // An export carries every signer; both standalone verifiers pass with
    // the three keys and name host-b's first head without its key.
    let file = dir.join("export.json");
    let out = collectors[0].cli(&["export", "--db", db.name(), "-o", file.to_str().unwrap()]);
    assert!(out.status.success(), "export: {}", text(&out));
    let ring_args = ["--keyring", ring];
    for out in [
        egress_verify(&file, &all),
        egress_verify(&file, &ring_args),
        verify_export_py(&file, &all),
        verify_export_py(&file, &ring_args),
    ] {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(text(&out).contains("Export verified OK"), "{}", text(&out));
    }
    // A witness moved by host-a's export accepts host-b's export of the
    // same database, the keyring pinned (both verifiers).
    let file_b = dir.join("export-b.json");
    let out = collectors[1].cli(&["export", "--db", db.name(), "-o", file_b.to_str().unwrap()]);
    assert!(out.status.success(), "export: {}", text(&out));
    for (i, verify) in [egress_verify, verify_export_py].into_iter().enumerate() {
        let witness = dir.join(&format!("witness-{i}.json"));
        let w = witness.to_str().unwrap();
        for f in [&file, &file_b] {
            let out = verify(f, &["--keyring", ring, "--witness", w]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        }
    }
    for out in [
        egress_verify(&file, &without_b),
        verify_export_py(&file, &without_b),
    ] {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let said = text(&out);
        assert!(
            said.contains(&format!(
                "signed head seq {first_b_head}: it was signed with key {}",
                &keys[1][..16]
            )),
            "{said}"
        );
    }

    // The report counts every call once.
    assert!(rollups::wait_caught_up(&db, Duration::from_secs(60)));
    assert!(
        rollups::mismatches(&db).is_empty(),
        "{:?}",
        rollups::mismatches(&db)
    );
    let out = collectors[1].cli(&["report", "--db", db.name(), "--since", "all", "--json"]);
    assert!(out.status.success(), "report: {}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["summary"]["calls"].as_i64(),
        Some(db.call_rows()),
        "{report}"
    );

    // Retention runs once: the three are asked to prune at the same time.
    db.allow_vacuum_clock();
    db.set_setting(RETENTION, "1");
    let later = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
        + 3 * 86_400 * 1_000_000;
    let later = later.to_string();
    let name = db.name();
    let outs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = collectors
            .iter()
            .map(|c| {
                let later = later.as_str();
                s.spawn(move || c.cli(&["vacuum-now", "--db", name, "--now-us", later, "--json"]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        assert!(out.status.success(), "vacuum-now: {}", text(out));
    }
    assert_eq!(db.sql().int("SELECT count(*) FROM egress.prune_log"), 1);
    assert_eq!(
        db.sql()
            .int("SELECT count(*) FROM egress.journal WHERE kind = 'vacuum'"),
        1,
        "one vacuum entry"
    );
    let v = verify_with(&url, &["--keyring", ring]);
    assert!(v.verified(), "after the prune: {v}");
}

#[test]
fn the_collector_role_writes_collector_seen_only_through_its_heartbeat() {
    let _serial = serial();
    let db = TestDb::new("heartbeat");
    let role = Sql::connect(&conninfo("egress_collector", db.name())).unwrap();
    let beat = "SELECT egress.collector_heartbeat('h1', decode(repeat('01', 32), 'hex'), 'v1')";
    role.batch(beat).unwrap();
    let first = db
        .sql()
        .text("SELECT first_seen::text FROM egress.collector_seen WHERE collector = 'h1'");
    role.batch(beat).unwrap();
    // Its own row only moves forward; nothing else is the role's to write.
    role.assert_refused(
        "INSERT INTO egress.collector_seen (collector, public_key) \
         VALUES ('h2', decode(repeat('02', 32), 'hex'))",
    );
    role.assert_refused("UPDATE egress.collector_seen SET heartbeat_at = now()");
    role.assert_refused("DELETE FROM egress.collector_seen");
    // Not even the owner's rights rename a collector, rewrite its first
    // sighting or remove it.
    db.sql()
        .assert_refused("UPDATE egress.collector_seen SET collector = 'h3'");
    db.sql().assert_refused(
        "UPDATE egress.collector_seen SET first_seen = first_seen - interval '1 day'",
    );
    db.sql().assert_refused("DELETE FROM egress.collector_seen");
    assert_eq!(
        db.sql()
            .text("SELECT first_seen::text FROM egress.collector_seen WHERE collector = 'h1'"),
        first
    );
    assert_eq!(
        db.sql().int("SELECT count(*) FROM egress.collector_seen"),
        1
    );
}
