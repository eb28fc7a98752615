//! Golden vectors: the committed hex under `proto/vectors/` is the reference
//! every encoder (this crate, the Python fallback, outside verifiers) must
//! match. `EGRESS_WRITE_VECTORS=1 cargo test -p egress-proto --test golden`
//! rewrites them; do that only when the format version changes.

use egress_proto::{
    decode, encode, Call, ConfigChange, DropCount, Drops, ForensicBody, Hello, JournalRow, Message,
    SeqCursor, StackFrame, Trigger, GENESIS_HASH,
};
use serde_json::{json, Value};
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn writing() -> bool {
    std::env::var_os("EGRESS_WRITE_VECTORS").is_some()
}

fn messages() -> Vec<(&'static str, Message)> {
    let full_call = Call {
        worker_id: 0x0123_4567_89ab_cdef,
        seq: 42,
        database: "prod_db".into(),
        started_at_us: 1_764_288_000_123_456,
        duration_us: 18_250,
        channel: "http".into(),
        protocol: "https".into(),
        direction: "outbound".into(),
        method: "POST".into(),
        host: "api.openai.com".into(),
        port: 443,
        path: "/v1/chat/completions".into(),
        query_keys: vec!["model".into(), "stream".into()],
        header_names: vec!["Authorization".into(), "Content-Type".into()],
        src_ip: "10.0.0.5".into(),
        src_port: 51_234,
        dst_ip: "162.159.140.245".into(),
        dst_port: 443,
        tls: true,
        status: Some(200),
        error_class: String::new(),
        bytes_out: 1_834,
        bytes_in: 20_511,
        payload_sha256: Some([0xab; 32]),
        stack: vec![
            StackFrame {
                file: "/usr/lib/python3/dist-packages/requests/api.py".into(),
                function: "post".into(),
                line: 115,
            },
            StackFrame {
                file: "/mnt/extra-addons/ai_connector/models/chat.py".into(),
                function: "_ask".into(),
                line: 88,
            },
        ],
        trigger: Trigger {
            kind: "http".into(),
            name: "/web/dataset/call_kw".into(),
            uid: Some(2),
        },
    };
    let minimal_call = Call {
        worker_id: 1,
        seq: 1,
        ..Call::default()
    };
    let unicode_call = Call {
        worker_id: u64::MAX,
        seq: u64::MAX,
        database: "société".into(),
        channel: "smtp".into(),
        method: "EHLO".into(),
        host: "smtp.gmail.com".into(),
        port: 587,
        status: Some(250),
        error_class: "SMTPServerDisconnected".into(),
        trigger: Trigger {
            kind: "cron".into(),
            name: "Mail: Email Queue Manager".into(),
            uid: None,
        },
        ..Call::default()
    };
    vec![
        ("call_full", Message::Call(full_call)),
        ("call_minimal", Message::Call(minimal_call)),
        ("call_unicode", Message::Call(unicode_call)),
        (
            "hello",
            Message::Hello(Hello {
                worker_id: 99,
                pid: 4321,
                sent_at_us: 1_764_288_000_000_000,
                odoo_version: "18.0".into(),
                python_version: "3.11.7".into(),
                hook_mode: "native".into(),
                hook_version: "0.1.0".into(),
                addons_paths: vec!["/opt/odoo/addons".into(), "/mnt/extra-addons".into()],
                databases: vec!["prod_db".into()],
            }),
        ),
        (
            "drops",
            Message::Drops(Drops {
                worker_id: 99,
                counts: vec![
                    DropCount {
                        database: "prod_db".into(),
                        reason: "socket_missing".into(),
                        count: 17,
                    },
                    DropCount {
                        database: "".into(),
                        reason: "buffer_full".into(),
                        count: 2,
                    },
                ],
                cursors: vec![SeqCursor {
                    database: "prod_db".into(),
                    last_seq: 1_000,
                }],
            }),
        ),
        (
            "config_change",
            Message::ConfigChange(ConfigChange {
                worker_id: 99,
                database: "prod_db".into(),
                changed_at_us: 1_764_288_000_000_001,
                key: "mit_network_audit.enabled".into(),
                old_value: Some("True".into()),
                new_value: Some("False".into()),
                user_login: "admin".into(),
                uid: Some(2),
            }),
        ),
        (
            "forensic_body",
            Message::ForensicBody(ForensicBody {
                worker_id: 0x0123_4567_89ab_cdef,
                database: "prod_db".into(),
                seq: 42,
                part: "request".into(),
                total_len: 70_000,
                captured_len: 65_536,
                truncated: true,
                sha256: [0xcd; 32],
                offset: 61_440,
                data: b"{\"prompt\": \"caf\xc3\xa9\"}\x00\xff".to_vec(),
            }),
        ),
        (
            "forensic_body_empty",
            Message::ForensicBody(ForensicBody {
                worker_id: 1,
                database: "soci\u{e9}t\u{e9}".into(),
                seq: 1,
                part: "response".into(),
                sha256: [0xe3; 32],
                ..ForensicBody::default()
            }),
        ),
    ]
}

fn message_json(message: &Message) -> Value {
    match message {
        Message::Hello(m) => json!({"kind": "hello", "message": m}),
        Message::Call(m) => json!({"kind": "call", "message": m}),
        Message::Drops(m) => json!({"kind": "drops", "message": m}),
        Message::ConfigChange(m) => json!({"kind": "config_change", "message": m}),
        Message::ForensicBody(m) => json!({"kind": "forensic_body", "message": m}),
    }
}

#[test]
fn datagram_vectors_match() {
    let path = vectors_dir().join("datagrams.json");
    let computed: Vec<Value> = messages()
        .iter()
        .map(|(name, message)| {
            let mut entry = message_json(message);
            entry["name"] = json!(name);
            entry["hex"] = json!(hex::encode(encode(message).unwrap()));
            entry
        })
        .collect();
    if writing() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let committed: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(committed.len(), computed.len());
    for ((name, message), entry) in messages().iter().zip(&committed) {
        assert_eq!(entry["name"], json!(name));
        let bytes = hex::decode(entry["hex"].as_str().unwrap()).unwrap();
        assert_eq!(
            hex::encode(encode(message).unwrap()),
            entry["hex"],
            "{name} encodes differently"
        );
        assert_eq!(
            &decode(&bytes).unwrap(),
            message,
            "{name} decodes differently"
        );
        assert_eq!(
            message_json(message)["message"],
            entry["message"],
            "{name} JSON differs"
        );
    }
}

fn journal_rows() -> Vec<JournalRow> {
    let call = JournalRow {
        seq: 1,
        database: "prod_db".into(),
        kind: "call".into(),
        recorded_at_us: 1_764_288_000_500_000,
        collector: "odoo-host-1".into(),
        worker_id: Some(0x0123_4567_89ab_cdef),
        worker_pid: Some(4321),
        worker_uid: Some(1001),
        worker_seq: Some(42),
        started_at_us: Some(1_764_288_000_123_456),
        duration_us: Some(18_250),
        channel: Some("http".into()),
        protocol: Some("https".into()),
        direction: Some("outbound".into()),
        method: Some("POST".into()),
        host: Some("api.openai.com".into()),
        port: Some(443),
        path: Some("/v1/chat/completions".into()),
        query_keys: Some(vec!["model".into()]),
        header_names: Some(vec!["Authorization".into(), "Content-Type".into()]),
        src_ip: Some("10.0.0.5".into()),
        src_port: Some(51_234),
        dst_ip: Some("162.159.140.245".into()),
        dst_port: Some(443),
        tls: Some(true),
        status: Some(200),
        error_class: Some(String::new()),
        bytes_out: Some(1_834),
        bytes_in: Some(20_511),
        fingerprint: Some(vec![0x5a; 32]),
        addon: Some("ai_connector".into()),
        addon_path: Some(vec!["ai_connector".into()]),
        stack: Some(vec![
            "/mnt/extra-addons/ai_connector/models/chat.py:88 _ask".into(),
        ]),
        trigger_kind: Some("http".into()),
        trigger_name: Some("/web/dataset/call_kw".into()),
        odoo_uid: Some(2),
        component: None,
        class: None,
        self_egress: Some(false),
        gap_count: None,
        gap_reason: None,
        detail: None,
    };
    let gap = JournalRow {
        seq: 2,
        database: "prod_db".into(),
        kind: "gap".into(),
        recorded_at_us: 1_764_288_001_000_000,
        collector: "odoo-host-1".into(),
        worker_id: Some(-1),
        worker_pid: Some(4321),
        gap_count: Some(17),
        gap_reason: Some("socket_missing".into()),
        ..JournalRow::default()
    };
    let change = JournalRow {
        seq: 3,
        database: "prod_db".into(),
        kind: "config_change".into(),
        recorded_at_us: 1_764_288_002_000_000,
        collector: "odoo-host-1".into(),
        detail: Some(
            r#"{"key":"mit_network_audit.enabled","new":"False","old":"True","user":"admin"}"#
                .into(),
        ),
        ..JournalRow::default()
    };
    vec![call, gap, change]
}

#[test]
fn journal_chain_vectors_match() {
    let path = vectors_dir().join("journal_chain.json");
    let mut prev = GENESIS_HASH;
    let mut computed = Vec::new();
    for row in journal_rows() {
        let hash = row.hash_after(&prev);
        computed.push(json!({
            "row": row,
            "canonical_hex": hex::encode(row.canonical()),
            "prev_hash": hex::encode(prev),
            "row_hash": hex::encode(hash),
        }));
        prev = hash;
    }
    if writing() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let committed: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        committed, computed,
        "journal vectors differ from the committed ones"
    );
    let mut prev = GENESIS_HASH;
    for entry in &committed {
        let row: JournalRow = serde_json::from_value(entry["row"].clone()).unwrap();
        assert_eq!(hex::encode(prev), entry["prev_hash"]);
        prev = row.hash_after(&prev);
        assert_eq!(hex::encode(prev), entry["row_hash"]);
    }
}
