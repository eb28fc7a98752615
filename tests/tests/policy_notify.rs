//! Issue 21 end to end: settings and catalogue changes are pushed to the
//! collector (migration 0023 notifies `egress_policy`), so they apply with
//! the safety poll set to ten minutes; a flood of notifications by Odoo's
//! role costs a bounded number of re-reads; a database set up before the
//! notifications still gets its changes through the poll, with one WARN; a
//! lost listening connection comes back and re-reads.

use std::time::Duration;

use egress_hook::{Call, HookClient};
use egress_tests::{serial, wait_until, Collector, TestDb};
use serde_json::Value;

/// Only a notification can explain a change applied within `APPLIES_WITHIN`.
const POLL_NEVER: &str = "600000";
/// A generous deadline, not a promise about timing.
const APPLIES_WITHIN: Duration = Duration::from_secs(10);
const ROWS_WITHIN: Duration = Duration::from_secs(30);

fn call(db: &TestDb, host: &str) -> Call {
    Call {
        database: db.name().to_string(),
        started_at_us: 1_764_288_000_000_000,
        duration_us: 1_500,
        channel: "http".into(),
        protocol: "https".into(),
        direction: "outbound".into(),
        method: "POST".into(),
        host: host.into(),
        port: 443,
        path: "/v1/chat".into(),
        dst_ip: "203.0.113.10".into(),
        dst_port: 443,
        tls: true,
        status: Some(200),
        ..Call::default()
    }
}

fn wait_for_calls(db: &TestDb, n: i64) {
    let rows = wait_until(ROWS_WITHIN, || db.call_rows(), |v| *v >= n);
    assert_eq!(rows, n, "call rows");
}

fn policy(collector: &Collector, counter: &str) -> i64 {
    collector.status().0["policy"][counter]
        .as_i64()
        .unwrap_or_else(|| panic!("status has no policy.{counter}"))
}

/// Starts a collector on `db`, has it watch the database (an event names
/// it) and waits until it listens to the database's change notifications.
fn watching_collector(db: &TestDb, poll_ms: &str) -> (Collector, HookClient) {
    let collector = Collector::builder(db.name())
        .arg("--policy-poll-ms")
        .arg(poll_ms)
        .start();
    let hook = HookClient::new(collector.socket());
    hook.send_call(call(db, "api.openai.com"));
    wait_for_calls(db, 1);
    let listening = wait_until(
        APPLIES_WITHIN,
        || policy(&collector, "listening"),
        |n| *n >= 1,
    );
    assert_eq!(listening, 1, "listening to the database's notifications");
    (collector, hook)
}

/// The detail of the latest config-change row about `key`, once there is one.
fn wait_for_change(db: &TestDb, key: &str) -> Option<Value> {
    let query = format!(
        "SELECT (SELECT detail FROM egress.journal WHERE kind = 'config_change' \
         AND detail LIKE '%\"{key}\"%' ORDER BY seq DESC LIMIT 1)"
    );
    wait_until(APPLIES_WITHIN, || db.sql().text(&query), Option::is_some)
        .map(|detail| serde_json::from_str(&detail).unwrap())
}

#[test]
fn a_setting_odoo_hands_over_is_applied_and_journaled_through_the_notification() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("notify_setting");
    let (collector, hook) = watching_collector(&db, POLL_NEVER);

    db.set_setting("mit_network_audit.strict_redaction", "True");
    let detail = wait_for_change(&db, "mit_network_audit.strict_redaction")
        .expect("the strict_redaction change is journaled without waiting for the poll");
    assert_eq!(detail["new"], "True");
    assert_eq!(detail["reported_by"], "collector");

    // Applied: the collector's own strict redaction drops the path.
    hook.send_call(call(&db, "api.openai.com"));
    wait_for_calls(&db, 2);
    assert_eq!(
        db.sql().int(
            "SELECT count(*) FROM egress.journal WHERE kind = 'call' AND worker_seq = 2 \
             AND path IS NULL AND method IS NULL AND host = 'api.openai.com'"
        ),
        1,
        "the call after the change is strictly redacted"
    );
    assert_eq!(policy(&collector, "listening"), 1);
}

#[test]
fn a_catalogue_edit_through_odoos_view_is_applied_and_journaled_through_the_notification() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("notify_catalogue");
    let (_collector, hook) = watching_collector(&db, POLL_NEVER);

    db.odoo()
        .batch(
            "INSERT INTO public.network_egress_component (name, owner, purpose, class, hosts)
             VALUES ('LLM proxy', 'Us', 'Our own LLM gateway', 'third_party', '{llm.internal-proxy.test}')",
        )
        .unwrap();
    let detail = wait_for_change(&db, "egress.component:LLM proxy")
        .expect("the catalogue edit is journaled without waiting for the poll");
    assert_eq!(detail["old"], Value::Null);

    db.odoo()
        .batch(
            "UPDATE public.network_egress_component SET class = 'vendor' WHERE name = 'LLM proxy'",
        )
        .unwrap();
    let edited = wait_until(
        APPLIES_WITHIN,
        || wait_for_change(&db, "egress.component:LLM proxy"),
        |d| {
            d.as_ref()
                .is_some_and(|d| d["new"].as_str().unwrap_or("").contains("vendor"))
        },
    )
    .expect("the edit is journaled");
    assert!(edited["old"].as_str().unwrap().contains("third_party"));

    hook.send_call(call(&db, "llm.internal-proxy.test"));
    wait_for_calls(&db, 2);
    let latest = db.sql().query(
        "SELECT component, class FROM egress.journal WHERE kind = 'call' ORDER BY seq DESC LIMIT 1",
    );
    assert_eq!(
        (
            latest[0].get::<_, Option<String>>(0).as_deref(),
            latest[0].get::<_, Option<String>>(1).as_deref()
        ),
        (Some("LLM proxy"), Some("vendor"))
    );
}

/// Anybody may notify the channel: ten thousand notifications by Odoo's
/// role, in one burst, are heard and cost a few re-reads, not thousands.
#[test]
fn a_flood_of_notifications_by_odoos_role_costs_a_bounded_number_of_rereads() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("notify_flood");
    let (collector, hook) = watching_collector(&db, POLL_NEVER);
    let notified_before = policy(&collector, "notifications");
    let reads_before = policy(&collector, "reloads");

    // Distinct payloads: PostgreSQL folds identical ones of a transaction.
    db.odoo()
        .batch("SELECT pg_notify('egress_policy', g::text) FROM generate_series(1, 10000) g")
        .unwrap();
    let notified = wait_until(
        ROWS_WITHIN,
        || policy(&collector, "notifications") - notified_before,
        |n| *n >= 10_000,
    );
    assert_eq!(notified, 10_000, "every notification is heard");
    // What the flood scheduled has run (one re-read, and one after it).
    std::thread::sleep(Duration::from_secs(1));
    let reads = policy(&collector, "reloads") - reads_before;
    assert!(
        (1..=20).contains(&reads),
        "10,000 notifications caused {reads} re-reads (coalesced: one in flight, 100 ms apart)"
    );

    // The collector is no worse for it.
    hook.send_call(call(&db, "api.openai.com"));
    wait_for_calls(&db, 2);
}

/// A database whose setup predates the notifications (no 0023): its
/// changes still apply, through the poll, and the log says once what to do.
#[test]
fn a_database_without_the_notify_migration_gets_changes_through_the_poll() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("notify_absent");
    db.sql()
        .batch(
            "DROP TRIGGER setting_notify ON egress.setting; \
             DROP TRIGGER component_notify ON egress.component; \
             DROP FUNCTION egress.notify_policy_changed(); \
             DELETE FROM egress.schema_migrations WHERE version = 23",
        )
        .unwrap();
    let (collector, _hook) = watching_collector(&db, "1000");

    db.set_setting("mit_network_audit.retention_days", "30");
    let detail = wait_for_change(&db, "mit_network_audit.retention_days")
        .expect("the change is picked up by the poll");
    assert_eq!(detail["new"], "30");
    db.set_setting("mit_network_audit.retention_days", "40");
    let detail = wait_until(
        APPLIES_WITHIN,
        || wait_for_change(&db, "mit_network_audit.retention_days"),
        |d| d.as_ref().is_some_and(|d| d["new"] == "40"),
    );
    assert!(detail.is_some());
    assert_eq!(policy(&collector, "notifications"), 0);
    let log = collector.log_text();
    assert_eq!(
        log.matches("re-run `egress-collector setup`").count(),
        1,
        "one WARN naming the fix:\n{log}"
    );
}

/// The listening connection is cut (as a restart of PostgreSQL's backend
/// would): the collector reconnects, re-reads, and hears changes again.
#[test]
fn a_lost_listening_connection_is_reestablished_and_changes_are_heard_again() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("notify_lost");
    let (collector, _hook) = watching_collector(&db, POLL_NEVER);
    let reads_before = policy(&collector, "reloads");

    let cut = db.sql().int(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{}' AND application_name = 'egress-collector policy listener'",
        db.name()
    ));
    assert_eq!(cut, 1, "one listening connection per database");
    let back = wait_until(
        APPLIES_WITHIN,
        || {
            db.sql().int(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
                 AND application_name = 'egress-collector policy listener'",
                db.name()
            ))
        },
        |n| *n == 1,
    );
    assert_eq!(back, 1, "the collector listens again");
    let listening = wait_until(
        APPLIES_WITHIN,
        || policy(&collector, "listening"),
        |n| *n == 1,
    );
    assert_eq!(listening, 1);
    // Reconnected, it re-read (what changed meanwhile was not notified).
    let reread = wait_until(
        APPLIES_WITHIN,
        || policy(&collector, "reloads") - reads_before,
        |n| *n >= 1,
    );
    assert!(reread >= 1, "a re-read after reconnecting");

    db.set_setting("mit_network_audit.disabled_channels", "smtp");
    let detail = wait_for_change(&db, "mit_network_audit.disabled_channels")
        .expect("a change after the reconnection is heard");
    assert_eq!(detail["new"], "smtp");
    let log = collector.log_text();
    assert_eq!(
        log.matches("Not hearing settings changes").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("Hearing settings changes again").count(),
        1,
        "{log}"
    );
}
