//! Capture coverage end to end: the workers that send events for a database
//! are recorded in `egress.worker_seen` with the hook mode of their `Hello`
//! (a worker that only said Hello too; one that never did as unknown), every
//! call counted once; the Trust Report's `trust.coverage` counts them by
//! mode; Odoo's role reads the workers and the rollup watermark through its
//! views and cannot change the table.

use std::collections::BTreeMap;
use std::time::Duration;

use egress_hook::{Call, Hello, HookClient, HookOptions, StackFrame};
use egress_tests::rollups::{wait_caught_up, watermark};
use egress_tests::{require_dgram_qlen, serial, wait_until, Collector, Loadgen, TestDb};
use serde_json::Value;

fn hook(collector: &Collector, mode: &str) -> HookClient {
    HookClient::with_options(
        collector.socket(),
        HookOptions {
            hook_mode: mode.into(),
            ..HookOptions::default()
        },
    )
}

fn hello(db: &TestDb, odoo_version: &str) -> Hello {
    Hello {
        odoo_version: odoo_version.into(),
        hook_version: "9.9.9".into(),
        databases: vec![db.name().into()],
        ..Hello::default()
    }
}

fn send_calls(hook: &HookClient, db: &TestDb, n: usize) {
    for _ in 0..n {
        hook.send_call(Call {
            database: db.name().into(),
            channel: "http".into(),
            host: "api.openai.com".into(),
            port: 443,
            stack: vec![StackFrame {
                file: "/mnt/extra-addons/ai_connector/models/chat.py".into(),
                function: "ask".into(),
                line: 3,
            }],
            ..Call::default()
        });
        // The kernel's datagram queue may be short: no burst.
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn workers(db: &TestDb) -> i64 {
    db.sql().int("SELECT count(*) FROM egress.worker_seen")
}

/// worker_id → (hook_mode, hook_version, odoo_version, calls_seen, pid)
type Rows = BTreeMap<
    i64,
    (
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        Option<i64>,
    ),
>;

fn worker_rows(db: &TestDb) -> Rows {
    db.sql()
        .query(
            "SELECT worker_id, hook_mode, hook_version, odoo_version, calls_seen, pid \
             FROM egress.worker_seen",
        )
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))))
        .collect()
}

fn report_json(db: &TestDb) -> Value {
    let out = std::process::Command::new(egress_tests::bins::collector())
        .args(["report", "--database-url", &db.superuser_url(), "--json"])
        .output()
        .expect("spawn egress-collector report");
    assert!(
        out.status.success(),
        "report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report --json prints JSON")
}

#[test]
fn workers_are_recorded_with_their_hook_mode_and_counted_in_the_report() {
    let _serial = serial();
    if !require_dgram_qlen(
        128,
        "coverage::workers_are_recorded_with_their_hook_mode_and_counted_in_the_report",
    ) {
        return;
    }
    let db = TestDb::new_odoo("coverage");
    let mut collector = Collector::start(db.name());

    let native = hook(&collector, "native");
    native.send_hello(hello(&db, "18.0"));
    send_calls(&native, &db, 5);
    let python = hook(&collector, "python");
    python.send_hello(hello(&db, "17.0"));
    send_calls(&python, &db, 3);
    // A worker whose Hello the collector never got (started before it).
    let silent = hook(&collector, "native");
    send_calls(&silent, &db, 2);
    // Two more workers, in `rust` mode (the Rust API).
    let load = Loadgen::new(collector.socket(), db.name())
        .clients(2)
        .events(20)
        .rate(500)
        .run();
    assert_eq!(load.dropped, 0, "{load:?}");
    let calls = 5 + 3 + 2 + 40;
    let settled = wait_until(Duration::from_secs(30), || db.call_rows(), |n| *n >= calls);
    assert_eq!(settled, calls);
    // A worker that only says Hello, naming this database.
    let idle = hook(&collector, "native");
    idle.send_hello(hello(&db, "18.0"));
    let seen = wait_until(Duration::from_secs(30), || workers(&db), |n| *n >= 6);
    assert_eq!(seen, 6, "{:?}\n{}", worker_rows(&db), collector.status());
    assert!(wait_caught_up(&db, Duration::from_secs(30)));
    // Stopping writes what the 30 s refresh had not written yet.
    collector.stop();

    let rows = worker_rows(&db);
    let me = Some(i64::from(std::process::id()));
    let row = |client: &HookClient| rows[&(client.worker_id() as i64)].clone();
    let mode = |m: &str| Some(m.to_string());
    assert_eq!(
        row(&native),
        (mode("native"), mode("9.9.9"), mode("18.0"), 5, me)
    );
    assert_eq!(
        row(&python),
        (mode("python"), mode("9.9.9"), mode("17.0"), 3, me)
    );
    assert_eq!(row(&silent), (None, None, None, 2, me));
    assert_eq!(
        row(&idle),
        (mode("native"), mode("9.9.9"), mode("18.0"), 0, me)
    );
    let rust: Vec<_> = rows
        .values()
        .filter(|r| r.0.as_deref() == Some("rust"))
        .collect();
    assert_eq!(rust.len(), 2, "{rows:?}");
    assert!(rust.iter().all(|r| r.3 == 20), "{rows:?}");
    assert_eq!(
        rows.values().map(|r| r.3).sum::<i64>(),
        db.call_rows(),
        "every journaled call is counted once"
    );
    assert!(db.sql().bool(
        "SELECT bool_and(first_seen <= last_seen AND last_seen <= now() \
             AND collector = (SELECT collector FROM egress.journal LIMIT 1)) \
         FROM egress.worker_seen"
    ));

    let r = report_json(&db);
    let coverage = &r["trust"]["coverage"];
    assert_eq!(coverage["workers"], 6, "{coverage}");
    assert_eq!(
        coverage["by_mode"],
        serde_json::json!({"native": 2, "python": 1, "rust": 2, "unknown": 1})
    );
    let last_seen = db
        .sql()
        .int("SELECT (extract(epoch FROM max(last_seen)) * 1000000)::int8 FROM egress.worker_seen");
    assert_eq!(coverage["last_seen_us"].as_i64(), Some(last_seen));
    let out = std::process::Command::new(egress_tests::bins::collector())
        .args(["report", "--database-url", &db.superuser_url()])
        .output()
        .expect("spawn egress-collector report");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(
            "coverage      6 workers seen (2 native, 1 python, 2 rust, 1 unknown), last "
        ),
        "{shown}"
    );

    // Odoo's role: both views, and no change to the table.
    let odoo = db.odoo();
    let python_rows = odoo.int(
        "SELECT count(*) FROM public.network_egress_worker \
         WHERE hook_mode = 'python' AND calls_seen = 3 AND odoo_version = '17.0'",
    );
    assert_eq!(python_rows, 1);
    assert_eq!(
        odoo.int("SELECT count(DISTINCT id) FROM public.network_egress_worker"),
        6
    );
    let state =
        odoo.query("SELECT id, watermark, updated_at FROM public.network_egress_rollup_state");
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].get::<_, i64>(1), watermark(&db));
    assert_eq!(watermark(&db), db.head_seq());
    for statement in [
        "SELECT count(*) FROM egress.worker_seen",
        "INSERT INTO egress.worker_seen (worker_id, collector, first_seen, last_seen) \
         VALUES (1, 'rogue', now(), now())",
        "UPDATE egress.worker_seen SET hook_mode = 'native'",
        "DELETE FROM egress.worker_seen",
        "UPDATE public.network_egress_worker SET hook_mode = 'native'",
        "DELETE FROM public.network_egress_worker",
        "UPDATE public.network_egress_rollup_state SET watermark = 0",
    ] {
        odoo.assert_refused(statement);
    }
    assert_eq!(workers(&db), 6);
}
