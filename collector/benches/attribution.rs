//! Cost of attributing one call, without actors and without the actor's
//! per-worker cache of frame origins (so every frame is classified again):
//! `cargo bench -p egress-collector --bench attribution`. Stacks of the
//! usual installs (Debian package, pip, a source checkout in `/srv/src-18`,
//! Odoo.sh) with core wrapping the call, classified by the path guess (a
//! worker not heard from), in 50 rounds of 20,000 calls; prints the median
//! nanoseconds per call (docs/PERFORMANCE.md).

use std::time::Instant;

use egress_collector::pipeline::attribution::attribute;
use egress_collector::pipeline::catalogue::{parse_file, Catalogue, SEED};
use egress_collector::pipeline::stage::{RawCall, Sender};
use egress_proto::{Call, StackFrame};

const ROUNDS: usize = 50;
const PER_ROUND: usize = 20_000;

fn stack(files: &[&str]) -> Vec<StackFrame> {
    files
        .iter()
        .map(|f| StackFrame {
            file: (*f).into(),
            function: "send".into(),
            line: 120,
        })
        .collect()
}

fn calls() -> Vec<Call> {
    let stacks = [
        // Debian package: mail queue through base's mail server, from the cron.
        stack(&[
            "/usr/lib/python3.11/smtplib.py",
            "/usr/lib/python3/dist-packages/odoo/addons/base/models/ir_mail_server.py",
            "/usr/lib/python3/dist-packages/odoo/addons/mail/models/mail_mail.py",
            "/mnt/extra-addons/maildesk/models/license.py",
            "/usr/lib/python3/dist-packages/odoo/tools/safe_eval.py",
            "/usr/lib/python3/dist-packages/odoo/addons/base/models/ir_actions.py",
            "/usr/lib/python3/dist-packages/odoo/addons/base/models/ir_cron.py",
            "/usr/lib/python3/dist-packages/odoo/service/server.py",
        ]),
        // pip into a virtualenv: requests from a route.
        stack(&[
            "/opt/venv/lib/python3.11/site-packages/urllib3/connectionpool.py",
            "/opt/venv/lib/python3.11/site-packages/requests/sessions.py",
            "/opt/venv/lib/python3.11/site-packages/requests/api.py",
            "/opt/custom/ai_connector/models/chat.py",
            "/opt/custom/ai_connector/controllers/main.py",
            "/opt/venv/lib/python3.11/site-packages/odoo/http.py",
            "/opt/venv/lib/python3.11/site-packages/odoo/addons/base/models/ir_http.py",
            "/opt/venv/lib/python3.11/site-packages/odoo/http.py",
        ]),
        // A checkout in /srv/src-18, Odoo's test wrapper around requests.
        stack(&[
            "/usr/lib/python3.11/http/client.py",
            "/srv/venv/lib/python3.11/site-packages/requests/sessions.py",
            "/srv/src-18/odoo/tests/common.py",
            "/srv/src-18/addons/egress_test_caller/models/caller.py",
            "/srv/src-18/odoo/http.py",
            "/srv/src-18/odoo/addons/base/models/ir_http.py",
            "/srv/src-18/odoo/service/server.py",
        ]),
        // Odoo.sh: a user addon through iap.
        stack(&[
            "/usr/lib/python3/dist-packages/requests/sessions.py",
            "/home/odoo/src/odoo/addons/iap/tools/iap_tools.py",
            "/home/odoo/src/user/shop_sync/models/sync.py",
            "/home/odoo/src/odoo/odoo/models.py",
            "/home/odoo/src/odoo/odoo/addons/base/models/ir_cron.py",
        ]),
    ];
    let hosts = [
        ("smtp.gmail.com", 587),
        ("api.openai.com", 443),
        ("127.0.0.1", 2525),
        ("iap.odoo.com", 443),
    ];
    (0..64)
        .map(|i| {
            let (host, port) = hosts[i % 4];
            Call {
                worker_id: 7,
                seq: i as u64 + 1,
                database: "prod".into(),
                host: host.into(),
                port,
                stack: stacks[i % 4].clone(),
                ..Call::default()
            }
        })
        .collect()
}

fn main() {
    let catalogue = Catalogue::new(parse_file(SEED).expect("seed parses"));
    let calls = calls();
    let sender = Sender { pid: 1, uid: 1 };
    let mut rounds = Vec::with_capacity(ROUNDS);
    let mut sink = 0usize;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for i in 0..PER_ROUND {
            let call = calls[i % calls.len()].clone();
            let attributed = attribute(RawCall { call, sender }, None, Some(&catalogue));
            sink += attributed.addon.map_or(0, |a| a.len());
        }
        rounds.push(started.elapsed().as_nanos() as f64 / PER_ROUND as f64);
    }
    rounds.sort_by(|a, b| a.total_cmp(b));
    let median = rounds[ROUNDS / 2];
    println!(
        "attribution: median {median:.0} ns/call over {ROUNDS} rounds of {PER_ROUND} (min {:.0}, max {:.0}); checksum {sink}",
        rounds[0],
        rounds[ROUNDS - 1]
    );
}
