//! Realistic journal rows, shared by the signer's tests and benchmark and
//! by the collector's verify benchmark (included with `#[path]`).

use egress_proto::JournalRow;

pub const DB: &str = "prod_db";
/// Start of the fixed clock of the tests (2025-11-28).
pub const T0: i64 = 1_764_288_000_000_000;

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

/// Row `seq` of a journal of `DB`.
pub fn row(seq: i64) -> JournalRow {
    row_in(DB, seq)
}

/// Row `seq` of a journal: calls of the kinds the load generator sends (with
/// full stacks), a gap now and then, a setting change rarely.
pub fn row_in(database: &str, seq: i64) -> JournalRow {
    let base = JournalRow {
        seq,
        database: database.into(),
        recorded_at_us: T0 + seq * 1_000,
        collector: "odoo-host-1".into(),
        worker_id: Some(0x0123_4567_89ab_cdef ^ (seq % 7)),
        worker_pid: Some(4321 + seq % 7),
        ..JournalRow::default()
    };
    match seq % 100 {
        99 => JournalRow {
            kind: "gap".into(),
            gap_count: Some(seq % 13 + 1),
            gap_reason: Some("socket_missing".into()),
            ..base
        },
        49 => JournalRow {
            kind: "config_change".into(),
            worker_id: None,
            worker_pid: None,
            odoo_uid: Some(2),
            detail: Some(format!(
                r#"{{"key":"mit_network_audit.retention_days","old":"90","new":"{}","user":"admin"}}"#,
                seq % 365
            )),
            ..base
        },
        n => call(base, n, seq),
    }
}

fn call(base: JournalRow, n: i64, seq: i64) -> JournalRow {
    let (host, path, channel, protocol, port, addon) = match n % 4 {
        0 => (
            "api.openai.com",
            "/v1/chat/completions",
            "http",
            "https",
            443,
            "ai_assistant",
        ),
        1 => ("smtp.gmail.com", "", "smtp", "smtp", 587, "mail"),
        2 => (
            "services.odoo.com",
            "/iap/1/get_credits",
            "http",
            "https",
            443,
            "iap",
        ),
        _ => (
            "outlook.office365.com",
            "",
            "imap",
            "imaps",
            993,
            "fetchmail",
        ),
    };
    let stack = strings(&[
        "/usr/lib/python3/dist-packages/urllib3/connectionpool.py:715 urlopen",
        "/usr/lib/python3/dist-packages/requests/adapters.py:486 send",
        "/usr/lib/python3/dist-packages/requests/sessions.py:703 send",
        "/usr/lib/python3/dist-packages/requests/sessions.py:589 request",
        "/usr/lib/python3/dist-packages/requests/api.py:115 post",
        "/mnt/extra-addons/ai_assistant/models/ai_provider.py:142 _openai_chat",
        "/mnt/extra-addons/ai_assistant/models/discuss_channel.py:77 _ai_reply",
        "/usr/lib/python3/dist-packages/odoo/api.py:466 call_kw",
        "/usr/lib/python3/dist-packages/odoo/http.py:1784 dispatch",
    ]);
    JournalRow {
        kind: "call".into(),
        worker_uid: Some(1001),
        worker_seq: Some(seq * 3),
        started_at_us: Some(T0 + seq * 1_000 - 40_000),
        duration_us: Some(18_250 + n * 311),
        channel: Some(channel.into()),
        protocol: Some(protocol.into()),
        direction: Some("outbound".into()),
        method: Some(if channel == "http" { "POST" } else { "SEND" }.into()),
        host: Some(host.into()),
        port: Some(port),
        path: (!path.is_empty()).then(|| path.into()),
        query_keys: strings(&["model"]),
        header_names: strings(&["User-Agent", "Authorization", "Content-Type"]),
        src_ip: Some("10.0.0.5".into()),
        src_port: Some(32_768 + seq % 28_000),
        dst_ip: Some("162.159.140.245".into()),
        dst_port: Some(port),
        tls: Some(true),
        status: Some(if n % 10 == 3 { 429 } else { 200 }),
        error_class: None,
        bytes_out: Some(600 + n * 37),
        bytes_in: Some(800 + n * 91),
        fingerprint: Some(vec![(seq % 251) as u8; 32]),
        addon: Some(addon.into()),
        addon_path: strings(&[addon, "base"]),
        stack,
        trigger_kind: Some("http".into()),
        trigger_name: Some("/web/dataset/call_kw/discuss.channel/message_post".into()),
        odoo_uid: Some(2),
        component: Some("OpenAI".into()),
        class: Some("third_party".into()),
        self_egress: Some(false),
        ..base
    }
}

/// Row `seq` of the compact profile: gap rows only (~360 bytes of JSON each
/// instead of ~1.6 KB), to show what the row size costs.
pub fn gap_row_in(database: &str, seq: i64) -> JournalRow {
    JournalRow {
        seq,
        database: database.into(),
        kind: "gap".into(),
        recorded_at_us: T0 + seq * 1_000,
        collector: "odoo-host-1".into(),
        worker_id: Some(0x0123_4567_89ab_cdef),
        worker_pid: Some(4321),
        gap_count: Some(seq % 13 + 1),
        gap_reason: Some("socket_missing".into()),
        ..Default::default()
    }
}
