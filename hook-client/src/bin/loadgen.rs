//! `egress-loadgen`: K hook clients, one thread and worker id each, sending realistic calls.
//!
//! Used by load tests and end-to-end tests. The events are pseudo-random but
//! deterministic (seeded by client index) so a run can be reproduced. The last
//! line on stdout is the machine-readable result; `sent + dropped` always
//! equals `events × clients`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use egress_hook::{Call, Hello, HookClient, HookStats, StackFrame, Trigger};

/// Sends realistic egress events to an egress-collector, as many Odoo workers would.
#[derive(Debug, Parser)]
#[command(name = "egress-loadgen", version)]
struct Args {
    /// The collector's ingest socket.
    #[arg(long, default_value = egress_hook::DEFAULT_SOCKET_PATH)]
    socket: PathBuf,
    /// Odoo database the calls are made for.
    #[arg(long)]
    db: String,
    /// Calls sent by each client.
    #[arg(long)]
    events: u64,
    /// Clients, each a thread with its own HookClient and worker id.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Calls per second per client; full speed when absent.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Print one JSON object instead of the key=value line.
    #[arg(long)]
    json: bool,
    /// How long each client keeps retrying its final Drops report (every
    /// 50 ms) when it is not accepted; 0 means one attempt. The default
    /// outlasts a full receive queue, so the report of the run's last drops
    /// arrives and its tail loss is accounted.
    #[arg(long, default_value_t = 1000)]
    linger_ms: u64,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a positive number of events per second"
        )),
    }
}

/// What one client did.
struct Outcome {
    stats: HookStats,
    drops_reported: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|index| {
                let args = &args;
                scope.spawn(move || run_client(args, index))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .collect()
    });
    let elapsed_ms = started.elapsed().as_millis();

    let sent: u64 = outcomes.iter().map(|o| o.stats.sent).sum();
    let dropped: u64 = outcomes.iter().map(|o| o.stats.dropped).sum();
    let drops_reported =
        outcomes.len() == args.clients as usize && outcomes.iter().all(|o| o.drops_reported);
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for outcome in &outcomes {
        for (reason, count) in &outcome.stats.dropped_by_reason {
            *by_reason.entry(reason.clone()).or_default() += count;
        }
    }
    if args.json {
        let reasons: Vec<String> = by_reason
            .iter()
            .map(|(reason, count)| format!("{}:{count}", json_string(reason)))
            .collect();
        println!(
            "{{\"sent\":{sent},\"dropped\":{dropped},\"dropped_by_reason\":{{{}}},\
             \"drops_reported\":{drops_reported},\"clients\":{},\"events_per_client\":{},\
             \"elapsed_ms\":{elapsed_ms}}}",
            reasons.join(","),
            args.clients,
            args.events,
        );
    } else {
        println!(
            "sent={sent} dropped={dropped} drops_reported={drops_reported} clients={}",
            args.clients
        );
    }
    if sent == 0 && dropped > 0 {
        // A smoke test that reached nothing must not look like a pass.
        let reasons: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r}={n}")).collect();
        eprintln!(
            "egress-loadgen: nothing was delivered to {}: all {dropped} events dropped ({}); \
             start `egress-collector run` there or pass the socket it listens on with --socket",
            args.socket.display(),
            reasons.join(" ")
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run_client(args: &Args, index: u32) -> Outcome {
    let client = HookClient::new(&args.socket);
    client.send_hello(Hello {
        odoo_version: "18.0".into(),
        python_version: "3.11.2".into(),
        addons_paths: vec![
            "/opt/odoo/odoo/addons".into(),
            "/opt/odoo/addons".into(),
            "/mnt/extra-addons".into(),
        ],
        databases: vec![args.db.clone()],
        ..Hello::default()
    });
    let mut rng = Rng::new(u64::from(index));
    let start = Instant::now();
    for i in 0..args.events {
        if let Some(rate) = args.rate {
            pace(start, i, rate);
        }
        client.send_call(realistic_call(&mut rng, &args.db));
    }
    let drops_reported = final_report(&client, Duration::from_millis(args.linger_ms));
    Outcome {
        stats: client.stats(),
        drops_reported,
    }
}

/// Sleeps until event `i` is due. Sleeping only when at least a millisecond
/// ahead sends the events in small bursts instead of one syscall pair each.
fn pace(start: Instant, i: u64, rate: f64) {
    let due = start + Duration::from_secs_f64(i as f64 / rate);
    let now = Instant::now();
    if due > now + Duration::from_millis(1) {
        std::thread::sleep(due - now);
    }
}

/// One attempt, then retries every 50 ms until `linger` has passed: with no
/// collector running this returns after `linger` at most.
fn final_report(client: &HookClient, linger: Duration) -> bool {
    let deadline = Instant::now() + linger;
    loop {
        if client.report_drops() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// splitmix64: deterministic, tiny, and good enough to vary test traffic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED_0DD0_E6E5_5A11)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next() as usize % items.len()]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn digest(&mut self) -> [u8; 32] {
        let mut digest = [0u8; 32];
        for chunk in digest.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        digest
    }
}

fn frame(file: &str, function: &str, line: u32) -> StackFrame {
    StackFrame {
        file: file.into(),
        function: function.into(),
        line,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

const REQUESTS: [(&str, &str, u32); 3] = [
    (
        "/usr/lib/python3/dist-packages/requests/sessions.py",
        "send",
        703,
    ),
    (
        "/usr/lib/python3/dist-packages/requests/sessions.py",
        "request",
        589,
    ),
    (
        "/usr/lib/python3/dist-packages/requests/api.py",
        "request",
        59,
    ),
];

const CRON: (&str, &str, u32) = (
    "/opt/odoo/odoo/addons/base/models/ir_cron.py",
    "_callback",
    417,
);
const CALL_KW: (&str, &str, u32) = ("/opt/odoo/odoo/api.py", "call_kw", 468);
const DISPATCH: (&str, &str, u32) = ("/opt/odoo/odoo/http.py", "dispatch", 1869);

fn stack(frames: &[(&str, &str, u32)]) -> Vec<StackFrame> {
    frames
        .iter()
        .map(|(file, function, line)| frame(file, function, *line))
        .collect()
}

fn http_route(rng: &mut Rng, routes: &[&str]) -> Trigger {
    Trigger {
        kind: "http".into(),
        name: rng.pick(routes).to_string(),
        uid: Some(rng.range(2, 40) as i64),
    }
}

fn cron(name: &str) -> Trigger {
    Trigger {
        kind: "cron".into(),
        name: name.into(),
        uid: Some(1),
    }
}

/// One call out of the traffic mix of a typical Odoo with an AI assistant,
/// a licensed third-party addon and outgoing/incoming mail servers.
fn realistic_call(rng: &mut Rng, database: &str) -> Call {
    let mut call = Call {
        database: database.into(),
        started_at_us: now_us(),
        direction: "outbound".into(),
        src_ip: "10.0.0.5".into(),
        src_port: rng.range(32_768, 60_999) as u16,
        ..Call::default()
    };
    match rng.next() % 100 {
        0..=19 => openai(rng, &mut call),
        20..=29 => anthropic(rng, &mut call),
        30..=39 => odoo_services(rng, &mut call),
        40..=49 => licence(rng, &mut call),
        50..=74 => smtp(rng, &mut call),
        75..=89 => imap(rng, &mut call),
        _ => raw_socket(rng, &mut call),
    }
    call
}

fn https(call: &mut Call, method: &str, host: &str, dst_ip: &str, path: &str) {
    call.channel = "http".into();
    call.protocol = "https".into();
    call.method = method.into();
    call.host = host.into();
    call.port = 443;
    call.path = path.into();
    call.dst_ip = dst_ip.into();
    call.dst_port = 443;
    call.tls = true;
}

fn openai(rng: &mut Rng, call: &mut Call) {
    https(
        call,
        "POST",
        "api.openai.com",
        "162.159.140.245",
        "/v1/chat/completions",
    );
    call.header_names = strings(&[
        "User-Agent",
        "Accept-Encoding",
        "Accept",
        "Connection",
        "Authorization",
        "Content-Type",
        "Content-Length",
    ]);
    let (status, error) = *rng.pick(&[
        (200, ""),
        (200, ""),
        (200, ""),
        (429, ""),
        (500, "HTTPError"),
    ]);
    call.status = Some(status);
    call.error_class = error.into();
    call.duration_us = rng.range(400_000, 9_000_000);
    call.bytes_out = rng.range(600, 24_000);
    call.bytes_in = if status == 200 {
        rng.range(800, 16_000)
    } else {
        rng.range(150, 400)
    };
    call.payload_sha256 = Some(rng.digest());
    let mut frames = REQUESTS.to_vec();
    frames.push((
        "/usr/lib/python3/dist-packages/requests/api.py",
        "post",
        115,
    ));
    frames.push((
        "/mnt/extra-addons/ai_assistant/models/ai_provider.py",
        "_openai_chat",
        142,
    ));
    frames.push((
        "/mnt/extra-addons/ai_assistant/models/discuss_channel.py",
        "_ai_reply",
        77,
    ));
    frames.push(CALL_KW);
    frames.push(DISPATCH);
    call.stack = stack(&frames);
    call.trigger = http_route(
        rng,
        &[
            "/web/dataset/call_kw/discuss.channel/message_post",
            "/ai_assistant/ask",
        ],
    );
}

fn anthropic(rng: &mut Rng, call: &mut Call) {
    https(
        call,
        "POST",
        "api.anthropic.com",
        "160.79.104.10",
        "/v1/messages",
    );
    call.header_names = strings(&[
        "User-Agent",
        "Accept",
        "x-api-key",
        "anthropic-version",
        "content-type",
        "Content-Length",
    ]);
    let status = *rng.pick(&[200, 200, 200, 529]);
    call.status = Some(status);
    call.duration_us = rng.range(600_000, 12_000_000);
    call.bytes_out = rng.range(900, 30_000);
    call.bytes_in = rng.range(500, 12_000);
    call.payload_sha256 = Some(rng.digest());
    let mut frames = REQUESTS.to_vec();
    frames.push((
        "/usr/lib/python3/dist-packages/requests/api.py",
        "post",
        115,
    ));
    frames.push((
        "/mnt/extra-addons/ai_assistant/models/ai_provider.py",
        "_anthropic_messages",
        188,
    ));
    frames.push((
        "/mnt/extra-addons/ai_assistant/models/helpdesk_ticket.py",
        "action_ai_summary",
        51,
    ));
    frames.push(CALL_KW);
    frames.push(DISPATCH);
    call.stack = stack(&frames);
    call.trigger = http_route(
        rng,
        &["/web/dataset/call_button/helpdesk.ticket/action_ai_summary"],
    );
}

fn odoo_services(rng: &mut Rng, call: &mut Call) {
    https(
        call,
        "POST",
        "services.odoo.com",
        "51.89.178.148",
        "/publisher-warranty/",
    );
    call.header_names = strings(&["User-Agent", "Accept", "Content-Type", "Content-Length"]);
    call.status = Some(200);
    call.duration_us = rng.range(150_000, 1_500_000);
    call.bytes_out = rng.range(1_200, 4_000);
    call.bytes_in = rng.range(300, 2_000);
    call.payload_sha256 = Some(rng.digest());
    let mut frames = REQUESTS.to_vec();
    frames.push((
        "/usr/lib/python3/dist-packages/requests/api.py",
        "post",
        115,
    ));
    frames.push(("/opt/odoo/addons/mail/models/update.py", "_get_message", 91));
    frames.push((
        "/opt/odoo/addons/mail/models/update.py",
        "update_notification",
        118,
    ));
    frames.push(CRON);
    call.stack = stack(&frames);
    call.trigger = cron("Update Notification");
}

fn licence(rng: &mut Rng, call: &mut Call) {
    https(
        call,
        "GET",
        "license.maildesk.mit-odoo.example",
        "203.0.113.10",
        "/api/v1/licenses/verify",
    );
    call.query_keys = strings(&["db_uuid", "module", "version", "key"]);
    call.header_names = strings(&["User-Agent", "Accept-Encoding", "Accept", "Connection"]);
    let (status, error) = *rng.pick(&[(Some(200), ""), (Some(200), ""), (None, "ConnectTimeout")]);
    call.status = status;
    call.error_class = error.into();
    call.duration_us = if status.is_some() {
        rng.range(80_000, 600_000)
    } else {
        10_000_000
    };
    call.bytes_out = rng.range(200, 400);
    call.bytes_in = if status.is_some() {
        rng.range(100, 900)
    } else {
        0
    };
    let mut frames = REQUESTS.to_vec();
    frames.push(("/usr/lib/python3/dist-packages/requests/api.py", "get", 73));
    frames.push((
        "/mnt/extra-addons/maildesk/models/license.py",
        "_check_license",
        64,
    ));
    frames.push((
        "/mnt/extra-addons/maildesk/models/license.py",
        "_cron_verify_license",
        102,
    ));
    frames.push(CRON);
    call.stack = stack(&frames);
    call.trigger = cron("MailDesk: Verify Licence");
}

fn smtp(rng: &mut Rng, call: &mut Call) {
    call.channel = "smtp".into();
    call.protocol = "smtp".into();
    call.method = "sendmail".into();
    call.host = "smtp.gmail.com".into();
    call.port = 587;
    call.dst_ip = (*rng.pick(&["142.250.102.108", "142.250.102.109", "64.233.184.108"])).into();
    call.dst_port = 587;
    // STARTTLS on the submission port.
    call.tls = true;
    let (status, error) = *rng.pick(&[
        (250, ""),
        (250, ""),
        (250, ""),
        (250, ""),
        (535, "SMTPAuthenticationError"),
    ]);
    call.status = Some(status);
    call.error_class = error.into();
    call.duration_us = rng.range(250_000, 3_000_000);
    call.bytes_out = if status == 250 {
        rng.range(2_000, 250_000)
    } else {
        rng.range(300, 600)
    };
    call.bytes_in = rng.range(400, 1_200);
    call.payload_sha256 = Some(rng.digest());
    let mut frames = vec![
        ("/usr/lib/python3.11/smtplib.py", "sendmail", 887),
        ("/usr/lib/python3.11/smtplib.py", "send_message", 986),
        (
            "/opt/odoo/odoo/addons/base/models/ir_mail_server.py",
            "send_email",
            725,
        ),
        ("/opt/odoo/addons/mail/models/mail_mail.py", "_send", 621),
        ("/opt/odoo/addons/mail/models/mail_mail.py", "send", 468),
    ];
    if rng.chance(30) {
        frames.push(("/mnt/extra-addons/maildesk/models/mail_mail.py", "send", 38));
    }
    frames.push((
        "/opt/odoo/addons/mail/models/mail_mail.py",
        "process_email_queue",
        391,
    ));
    frames.push(CRON);
    call.stack = stack(&frames);
    call.trigger = cron("Mail: Email Queue Manager");
}

fn imap(rng: &mut Rng, call: &mut Call) {
    call.channel = "imap".into();
    call.protocol = "imaps".into();
    call.method = (*rng.pick(&["LOGIN", "SELECT", "SEARCH", "FETCH", "FETCH", "STORE"])).into();
    call.host = "outlook.office365.com".into();
    call.port = 993;
    call.dst_ip = (*rng.pick(&["52.97.146.146", "40.99.213.34"])).into();
    call.dst_port = 993;
    call.tls = true;
    if rng.chance(5) {
        call.error_class = "IMAP4.abort".into();
    }
    call.duration_us = rng.range(40_000, 900_000);
    call.bytes_out = rng.range(40, 300);
    call.bytes_in = if call.method == "FETCH" {
        rng.range(3_000, 400_000)
    } else {
        rng.range(60, 800)
    };
    call.stack = stack(&[
        ("/usr/lib/python3.11/imaplib.py", "_simple_command", 1230),
        (
            "/opt/odoo/addons/mail/models/fetchmail.py",
            "fetch_mail",
            246,
        ),
        (
            "/opt/odoo/addons/mail/models/fetchmail.py",
            "_fetch_mails",
            205,
        ),
        CRON,
    ]);
    call.trigger = cron("Mail: Fetchmail Service");
}

fn raw_socket(rng: &mut Rng, call: &mut Call) {
    call.channel = "socket".into();
    call.protocol = "tcp".into();
    call.method = "connect".into();
    call.dst_ip = "10.0.0.7".into();
    call.dst_port = 6379;
    call.port = 6379;
    call.duration_us = rng.range(200, 5_000);
    call.bytes_out = rng.range(30, 2_000);
    call.bytes_in = rng.range(10, 50_000);
    call.stack = stack(&[
        (
            "/usr/lib/python3/dist-packages/redis/connection.py",
            "_connect",
            698,
        ),
        (
            "/usr/lib/python3/dist-packages/redis/connection.py",
            "connect",
            641,
        ),
        ("/mnt/extra-addons/session_redis/http.py", "get", 44),
        DISPATCH,
    ]);
    call.trigger = http_route(
        rng,
        &["/web/session/get_session_info", "/web/webclient/load_menus"],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_proto::{encode, Message};

    #[test]
    fn calls_are_deterministic_per_client_and_fit_untruncated() {
        let hosts = |seed| {
            let mut rng = Rng::new(seed);
            (0..500)
                .map(|_| realistic_call(&mut rng, "prod").host)
                .collect::<Vec<_>>()
        };
        assert_eq!(hosts(3), hosts(3));
        assert_ne!(hosts(3), hosts(4));
        let mut rng = Rng::new(0);
        let mut channels = BTreeMap::new();
        for _ in 0..2000 {
            let call = realistic_call(&mut rng, "prod");
            *channels.entry(call.channel.clone()).or_insert(0) += 1;
            let bytes = encode(&Message::Call(call)).unwrap();
            assert!(bytes.len() < 2048, "a realistic call is small");
        }
        let names: Vec<&str> = channels.keys().map(String::as_str).collect();
        assert_eq!(names, ["http", "imap", "smtp", "socket"]);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }
}
