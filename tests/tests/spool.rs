//! The durable spool, end to end against a private PostgreSQL cluster that
//! each test starts and stops: what the database cannot take waits on disk
//! and is journaled, in order, once it is back, across a SIGTERM or a
//! kill -9 of the collector; a full spool sheds with an exact count; a
//! corrupt tail is cut off and journaled.

use std::time::Duration;

use egress_proto::{encode, Call, Message};
use egress_tests::{serial, verify, wait_until, Collector, DatagramSender, PgCluster, Status};

const DB: &str = "spooltest";
const EVENTS: u64 = 3_000;
const WORKER: u64 = 0x5eed;

fn call(seq: u64) -> Vec<u8> {
    encode(&Message::Call(Call {
        worker_id: WORKER,
        seq,
        database: DB.into(),
        started_at_us: 1_700_000_000_000_000,
        duration_us: 1_000,
        channel: "http".into(),
        protocol: "https".into(),
        method: "GET".into(),
        host: "api.example.com".into(),
        port: 443,
        path: "/v1/ping".into(),
        ..Call::default()
    }))
    .unwrap()
}

/// A private cluster with the egress schema in `DB`, and a collector on it.
fn start(extra: &[&str]) -> (PgCluster, Collector) {
    let cluster = PgCluster::start("spool-pg");
    cluster.create_database(DB);
    let mut builder =
        Collector::builder(DB).database_url(&cluster.conninfo("egress_collector", "{db}"));
    for arg in extra {
        builder = builder.arg(arg);
    }
    let collector = builder.start();
    (cluster, collector)
}

fn db_stat(status: &Status, field: &str) -> i64 {
    status.database(DB)[field].as_i64().unwrap_or(0)
}

/// Sends seq 1..=n; every datagram is delivered (a full queue is waited out).
fn send(collector: &Collector, n: u64) {
    let mut tx = DatagramSender::new(collector.socket());
    for seq in 1..=n {
        tx.send(&call(seq));
    }
}

fn wait_accepted(collector: &Collector, n: i64) {
    let accepted = wait_until(
        Duration::from_secs(60),
        || collector.status().accepted(),
        |a| *a >= n,
    );
    assert_eq!(accepted, n, "status: {}", collector.status());
}

fn wait_spool_synced(collector: &Collector, n: i64) -> Status {
    let status = wait_until(
        Duration::from_secs(60),
        || collector.status(),
        |s| db_stat(s, "spool_synced") >= n,
    );
    assert!(db_stat(&status, "spool_synced") >= n, "status: {status}");
    status
}

fn count(cluster: &PgCluster, sql: &str) -> i64 {
    cluster.sql(DB).int(sql)
}

fn wait_calls(cluster: &PgCluster, n: i64) -> i64 {
    wait_until(
        Duration::from_secs(120),
        || {
            count(
                cluster,
                "SELECT count(*) FROM egress.journal WHERE kind = 'call'",
            )
        },
        |c| *c >= n,
    )
}

fn gap_sum(cluster: &PgCluster, reason: &str) -> i64 {
    count(
        cluster,
        &format!(
            "SELECT coalesce(sum(gap_count), 0)::bigint FROM egress.journal \
             WHERE kind = 'gap' AND gap_reason = '{reason}'"
        ),
    )
}

fn all_gaps(cluster: &PgCluster) -> i64 {
    count(
        cluster,
        "SELECT coalesce(sum(gap_count), 0)::bigint FROM egress.journal WHERE kind = 'gap'",
    )
}

/// Every call once, in the order sent, and a chain that verifies.
fn assert_all_journaled_in_order(cluster: &PgCluster, collector: &Collector) {
    let calls = wait_calls(cluster, EVENTS as i64);
    assert_eq!(calls, EVENTS as i64, "status: {}", collector.status());
    assert_eq!(all_gaps(cluster), 0, "no event may be in a gap");
    let in_order = cluster.sql(DB).bool(
        "SELECT bool_and(worker_seq = n) FROM (SELECT worker_seq, \
         row_number() OVER (ORDER BY seq) AS n FROM egress.journal WHERE kind = 'call') t",
    );
    assert!(in_order, "calls are journaled in the order they were sent");
    let outcome = verify(&cluster.conninfo("postgres", DB));
    assert!(outcome.verified(), "verify:\n{outcome}");
}

#[test]
fn a_stop_during_an_outage_loses_nothing() {
    let _serial = serial();
    let (mut cluster, mut collector) = start(&[]);
    cluster.stop_server();
    send(&collector, EVENTS);
    wait_accepted(&collector, EVENTS as i64);
    collector.stop();
    assert!(
        collector.log_text().contains("spool"),
        "the stop says where the events went:\n{}",
        collector.log_text()
    );
    cluster.start_server();
    collector.launch();
    assert_all_journaled_in_order(&cluster, &collector);
    let status = collector.status();
    assert_eq!(db_stat(&status, "replayed"), EVENTS as i64, "{status}");
}

#[test]
fn a_start_during_an_outage_says_so_and_loses_nothing() {
    let _serial = serial();
    let (mut cluster, mut collector) = start(&[]);
    collector.stop();
    cluster.stop_server();
    // Restarted (a deploy, a reboot) while the database is still down: it
    // must start, say so, and keep what workers send meanwhile.
    collector.launch();
    let log = collector.log_text();
    assert!(
        log.contains("ERROR") && log.contains("cannot reach PostgreSQL"),
        "the start says the database does not answer:\n{log}"
    );
    send(&collector, EVENTS);
    wait_spool_synced(&collector, EVENTS as i64);
    cluster.start_server();
    assert_all_journaled_in_order(&cluster, &collector);
}

#[test]
fn a_kill_9_after_the_spool_fsync_loses_nothing() {
    let _serial = serial();
    let (mut cluster, mut collector) = start(&[]);
    cluster.stop_server();
    send(&collector, EVENTS);
    wait_spool_synced(&collector, EVENTS as i64);
    collector.kill9();
    cluster.start_server();
    collector.launch();
    assert_all_journaled_in_order(&cluster, &collector);
}

#[test]
fn a_full_spool_sheds_the_excess_and_journals_its_count() {
    let _serial = serial();
    // Room for a few hundred of the 3,000 events.
    let (mut cluster, mut collector) = start(&["--spool-max-bytes", "100000"]);
    cluster.stop_server();
    send(&collector, EVENTS);
    wait_accepted(&collector, EVENTS as i64);
    let status = wait_until(
        Duration::from_secs(30),
        || collector.status(),
        |s| db_stat(s, "shed") + db_stat(s, "spooled") >= EVENTS as i64,
    );
    let shed = db_stat(&status, "shed");
    assert!(
        shed > 0,
        "status shows the shed count during the outage: {status}"
    );
    collector.stop();
    cluster.start_server();
    collector.launch();
    let journaled = wait_until(
        Duration::from_secs(120),
        || {
            count(
                &cluster,
                "SELECT (count(*) FILTER (WHERE kind = 'call') + coalesce(sum(gap_count), 0))::bigint \
                 FROM egress.journal",
            )
        },
        |n| *n >= EVENTS as i64,
    );
    assert_eq!(journaled, EVENTS as i64, "calls + gaps = events sent");
    assert_eq!(
        gap_sum(&cluster, "spool_full"),
        shed,
        "the gap says how many were shed"
    );
    let calls = count(
        &cluster,
        "SELECT count(*) FROM egress.journal WHERE kind = 'call'",
    );
    assert_eq!(calls + shed, EVENTS as i64);
}

#[test]
fn a_corrupt_spool_tail_is_cut_off_and_journaled() {
    let _serial = serial();
    let (mut cluster, mut collector) = start(&[]);
    cluster.stop_server();
    send(&collector, EVENTS);
    wait_accepted(&collector, EVENTS as i64);
    collector.stop();
    // A crash in mid-write: the last record is torn.
    let spool = collector
        .dir()
        .join("state/spool")
        .join(format!("{DB}.spool"));
    let len = std::fs::metadata(&spool).expect("the spool file").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&spool)
        .unwrap();
    file.set_len(len - 7).unwrap();
    drop(file);
    cluster.start_server();
    collector.launch();
    let corrupt = wait_until(
        Duration::from_secs(120),
        || gap_sum(&cluster, "spool_corrupt"),
        |n| *n >= 1,
    );
    assert_eq!(corrupt, 1, "one torn record, journaled as such");
    let calls = wait_calls(&cluster, EVENTS as i64 - 1);
    assert_eq!(
        calls,
        EVENTS as i64 - 1,
        "every record before the tear is journaled"
    );
    let last = count(
        &cluster,
        "SELECT max(worker_seq) FROM egress.journal WHERE kind = 'call'",
    );
    assert_eq!(last, EVENTS as i64 - 1, "the torn record was the last one");
    assert!(
        collector.log_text().contains("torn or corrupt"),
        "the log says so:\n{}",
        collector.log_text()
    );
    let outcome = verify(&cluster.conninfo("postgres", DB));
    assert!(outcome.verified(), "verify:\n{outcome}");
}
