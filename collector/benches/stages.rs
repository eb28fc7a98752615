//! Cost of the attribution and redaction stages per event, without actors:
//! `cargo bench -p egress-collector --bench stages`. Times `attribute` +
//! `redact` (with the seeded catalogue, scrubbing and a salted fingerprint)
//! over realistic calls, in 50 rounds of 20,000 events, and prints the median
//! nanoseconds per event of the rounds (docs/PERFORMANCE.md).

use std::time::Instant;

use egress_collector::pipeline::attribution::attribute;
use egress_collector::pipeline::catalogue::{parse_file, Catalogue, SEED};
use egress_collector::pipeline::policy::Settings;
use egress_collector::pipeline::redaction::redact;
use egress_collector::pipeline::salts::Salts;
use egress_collector::pipeline::stage::{RawCall, Sender};
use egress_proto::{Call, StackFrame, Trigger};

const ROUNDS: usize = 50;
const PER_ROUND: usize = 20_000;

fn frame(file: &str, function: &str) -> StackFrame {
    StackFrame {
        file: file.into(),
        function: function.into(),
        line: 120,
    }
}

fn calls() -> Vec<Call> {
    let stack = vec![
        frame("/usr/lib/python3.11/http/client.py", "request"),
        frame(
            "/usr/lib/python3/dist-packages/urllib3/connectionpool.py",
            "urlopen",
        ),
        frame(
            "/usr/lib/python3/dist-packages/requests/sessions.py",
            "send",
        ),
        frame(
            "/opt/odoo/odoo/addons/base/models/ir_mail_server.py",
            "send_email",
        ),
        frame("/opt/odoo/addons/mail/models/mail_mail.py", "_send"),
        frame(
            "/mnt/extra-addons/maildesk/models/license.py",
            "_check_licence",
        ),
        frame("/opt/odoo/odoo/addons/base/models/ir_cron.py", "_callback"),
        frame("/opt/odoo/odoo/service/server.py", "run"),
    ];
    let hosts = [
        "api.openai.com",
        "smtp.gmail.com",
        "license.maildesk.mit-odoo.example",
        "203.0.113.9",
    ];
    let paths = [
        "/v1/chat/completions",
        "/api/v1/users/jane@acme.com/keys/sk-proj-Ab3dEf6hIj9kLm2nOp5q",
        "/orders/123456",
        "",
    ];
    (0..64)
        .map(|i| Call {
            worker_id: 7,
            seq: i + 1,
            database: "prod".into(),
            started_at_us: 1_764_288_000_000_000,
            duration_us: 1_800,
            channel: "http".into(),
            protocol: "https".into(),
            direction: "outbound".into(),
            method: "POST".into(),
            host: hosts[i as usize % 4].into(),
            port: 443,
            path: paths[i as usize % 4].into(),
            query_keys: vec!["model".into(), "stream".into()],
            header_names: vec![
                "Authorization".into(),
                "Content-Type".into(),
                "User-Agent".into(),
            ],
            dst_ip: "162.159.140.245".into(),
            dst_port: 443,
            tls: true,
            status: Some(200),
            bytes_out: 1_834,
            bytes_in: 20_511,
            payload_sha256: Some([0xab; 32]),
            stack: stack.clone(),
            trigger: Trigger {
                kind: "cron".into(),
                name: "Mail: Email Queue Manager".into(),
                uid: Some(1),
            },
            ..Call::default()
        })
        .collect()
}

fn main() {
    let catalogue = Catalogue::new(parse_file(SEED).expect("seed parses"));
    let settings = Settings::default();
    let dir = std::env::temp_dir().join(format!("egress-bench-{}", std::process::id()));
    let salts = Salts::new(dir.clone());
    let calls = calls();
    let sender = Sender { pid: 1, uid: 1 };
    let mut rounds = Vec::with_capacity(ROUNDS);
    let mut sink = 0usize;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for i in 0..PER_ROUND {
            let call = calls[i % calls.len()].clone();
            let digest = call.payload_sha256;
            let attributed = attribute(RawCall { call, sender }, None, Some(&catalogue));
            let fingerprint = digest.and_then(|d| salts.fingerprint("prod", &d).ok());
            let entry = redact(attributed, &settings, fingerprint);
            sink += entry.row.path.map_or(0, |p| p.len());
        }
        rounds.push(started.elapsed().as_nanos() as f64 / PER_ROUND as f64);
    }
    // The same loop without the stages: the clone of the input alone.
    let started = Instant::now();
    for i in 0..PER_ROUND * 10 {
        sink += calls[i % calls.len()].clone().path.len();
    }
    let clone_ns = started.elapsed().as_nanos() as f64 / (PER_ROUND * 10) as f64;
    rounds.sort_by(|a, b| a.total_cmp(b));
    let median = rounds[ROUNDS / 2];
    println!("attribution + redaction: median {median:.0} ns/event over {ROUNDS} rounds of {PER_ROUND} (min {:.0}, max {:.0}); input clone alone {clone_ns:.0} ns; checksum {sink}", rounds[0], rounds[ROUNDS - 1]);
    let _ = std::fs::remove_dir_all(dir);
}
