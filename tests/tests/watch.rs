//! `watch --json --since N`: the last N rows, then rows as they are committed.

use std::time::Duration;

use egress_tests::{serial, Collector, Loadgen, TestDb};
use serde_json::Value;

const LINE_TIMEOUT: Duration = Duration::from_secs(30);

fn row_hash_hex(db: &TestDb, seq: i64) -> Option<String> {
    db.sql().text(&format!(
        "SELECT encode(row_hash, 'hex') FROM egress.journal WHERE seq = {seq}"
    ))
}

fn check_line(db: &TestDb, line: &Value, seq: i64) {
    assert_eq!(
        line["seq"].as_i64(),
        Some(seq),
        "watch line out of order: {line}"
    );
    let kind = db.sql().text(&format!(
        "SELECT kind FROM egress.journal WHERE seq = {seq}"
    ));
    assert_eq!(
        line["kind"].as_str(),
        kind.as_deref(),
        "kind of seq {seq}: {line}"
    );
    assert_eq!(
        line["row_hash"].as_str().map(str::to_lowercase),
        row_hash_hex(db, seq),
        "row_hash of seq {seq}: {line}"
    );
    assert!(
        line["recorded_at_us"].as_i64().is_some(),
        "recorded_at_us of seq {seq}: {line}"
    );
}

#[test]
fn watch_prints_the_last_rows_then_live_rows() {
    let _serial = serial();
    let db = TestDb::new("watch");
    let collector = Collector::start(db.name());

    Loadgen::new(collector.socket(), db.name())
        .events(20)
        .rate(200)
        .run();
    let accounted = db.wait_accounted(20, Duration::from_secs(60));
    assert_eq!(accounted, 20, "calls + gaps ({})", db.gap_summary());
    let head = db.sql().int("SELECT max(seq) FROM egress.journal");

    let mut watch = collector.watch(&["--db", db.name(), "--json", "--since", "5"]);
    for seq in head - 4..=head {
        let line = watch.next_json(LINE_TIMEOUT);
        check_line(&db, &line, seq);
        assert_eq!(
            line["host"].as_str(),
            Some(host_of(&db, seq).as_str()),
            "host: {line}"
        );
    }

    Loadgen::new(collector.socket(), db.name())
        .events(3)
        .rate(200)
        .run();
    let accounted = db.wait_accounted(23, Duration::from_secs(60));
    assert_eq!(accounted, 23, "calls + gaps ({})", db.gap_summary());
    let new_head = db.sql().int("SELECT max(seq) FROM egress.journal");
    assert!(new_head > head, "the second load added rows");
    for seq in head + 1..=new_head {
        let line = watch.next_json(LINE_TIMEOUT);
        check_line(&db, &line, seq);
    }
    assert!(watch.is_running(), "watch runs until killed");
}

fn host_of(db: &TestDb, seq: i64) -> String {
    db.sql()
        .text(&format!(
            "SELECT host FROM egress.journal WHERE seq = {seq}"
        ))
        .unwrap_or_default()
}
