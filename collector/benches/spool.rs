//! The spool's own rate: `cargo bench -p egress-collector --bench spool`.
//! Appends 200,000 redacted calls as an outage would (fsync every 4,096,
//! as the appender's flush tick does under load), then replays them in
//! batches of 4,096 (read, decode, move the position with its fsync), in
//! 5 rounds, and prints the median rate of each, and the bytes per call.
//! Compare with PostgreSQL's COPY of the same rows
//! (`scripts/bench-pg-copy.sh`; both from `scripts/bench-spool.sh`).

use std::time::Instant;

use egress_collector::chain::spool::{Budget, Spool};
use egress_collector::pipeline::stage::{Item, RedactedEntry};
use egress_proto::JournalRow;

const ROUNDS: usize = 5;
const CALLS: u64 = 200_000;
const BATCH: usize = 4096;

/// A call row as redaction leaves it for a typical Odoo HTTP call.
fn entry(seq: u64) -> Item<RedactedEntry> {
    let stack = [
        "[stdlib] /usr/lib/python3.11/http/client.py:1282 request",
        "[site-packages] /usr/lib/python3/dist-packages/urllib3/connectionpool.py:715 urlopen",
        "[site-packages] /usr/lib/python3/dist-packages/requests/sessions.py:703 send",
        "[odoo] /opt/odoo/odoo/addons/base/models/ir_mail_server.py:120 send_email",
        "[mail] /opt/odoo/addons/mail/models/mail_mail.py:540 _send",
        "[sale] /opt/odoo/addons/sale/models/sale_order.py:880 action_quotation_send",
    ];
    Item::Call(RedactedEntry {
        database: "bench".into(),
        worker_id: 0x1234_5678,
        worker_seq: seq,
        row: JournalRow {
            kind: "call".into(),
            worker_id: Some(0x1234_5678),
            worker_pid: Some(4242),
            worker_uid: Some(1001),
            worker_seq: Some(seq as i64),
            started_at_us: Some(1_733_400_000_000_000 + seq as i64),
            duration_us: Some(48_000),
            channel: Some("http".into()),
            protocol: Some("https".into()),
            direction: Some("outbound".into()),
            method: Some("POST".into()),
            host: Some("api.stripe.com".into()),
            port: Some(443),
            path: Some("/v1/payment_intents/{token}/confirm".into()),
            query_keys: Some(vec!["expand".into()]),
            header_names: Some(vec!["Authorization".into(), "Content-Type".into()]),
            dst_ip: Some("203.0.113.7".into()),
            dst_port: Some(443),
            tls: Some(true),
            status: Some(200),
            bytes_out: Some(812),
            bytes_in: Some(2_310),
            fingerprint: Some(vec![7; 32]),
            addon: Some("sale".into()),
            addon_path: Some(vec!["sale".into(), "mail".into(), "base".into()]),
            stack: Some(stack.iter().map(|s| s.to_string()).collect()),
            trigger_kind: Some("http".into()),
            trigger_name: Some("/shop/payment/validate".into()),
            odoo_uid: Some(2),
            component: Some("Stripe".into()),
            class: Some("third_party".into()),
            self_egress: Some(false),
            ..JournalRow::default()
        },
        suppressed: None,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("egress-bench-spool-{}", std::process::id()));
    let items: Vec<_> = (1..=CALLS).map(entry).collect();
    let (mut writes, mut replays) = (Vec::new(), Vec::new());
    let mut bytes_per_call = 0.0;
    for _ in 0..ROUNDS {
        let _ = std::fs::remove_dir_all(&dir);
        let mut spool = Spool::open(&dir, "bench", Budget::new(u64::MAX));
        let started = Instant::now();
        for (i, item) in items.iter().enumerate() {
            spool.append(item, false).expect("append");
            if (i + 1) % BATCH == 0 {
                spool.sync().expect("fsync");
            }
        }
        spool.sync().expect("fsync");
        writes.push(CALLS as f64 / started.elapsed().as_secs_f64());
        bytes_per_call = spool.bytes() as f64 / CALLS as f64;
        drop(spool);

        let mut spool = Spool::open(&dir, "bench", Budget::new(u64::MAX));
        let started = Instant::now();
        let mut replayed = 0usize;
        while spool.has_pending() {
            let (batch, replay) = spool.read_batch(BATCH).expect("read");
            replayed += batch.len();
            spool.consumed(replay).expect("consume");
        }
        assert_eq!(replayed as u64, CALLS);
        replays.push(CALLS as f64 / started.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "spool: write {:.0} calls/s (fsync every {BATCH}), replay {:.0} calls/s, {:.0} bytes per call; medians of {ROUNDS} rounds of {CALLS}",
        median(writes),
        median(replays),
        bytes_per_call
    );
}
