//! Shared by the signer's tests and benchmark: realistic journal rows, a
//! chain of them, fixed keys, temporary directories, and running both verifiers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use egress_proto::{JournalRow, GENESIS_HASH};
use egress_signer::{sign_head, Keys, SignedHead};

pub const DB: &str = "prod_db";
/// Start of the fixed clock of the tests (2025-11-28).
pub const T0: i64 = 1_764_288_000_000_000;

pub fn keys() -> Keys {
    Keys::from_secrets([0x11; 32], [0x22; 32])
}

/// Another collector's keys: what a forger without ours would sign with.
pub fn wrong_keys() -> Keys {
    Keys::from_secrets([0x33; 32], [0x44; 32])
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

/// Row `seq` of a journal: calls of the kinds the load generator sends (with
/// full stacks), a gap now and then, a setting change rarely.
pub fn row(seq: i64) -> JournalRow {
    let base = JournalRow {
        seq,
        database: DB.into(),
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

/// Rows `from..=to`, chained after `anchor`.
pub fn chain_from(from: i64, to: i64, anchor: [u8; 32]) -> Vec<(JournalRow, [u8; 32], [u8; 32])> {
    let mut prev = anchor;
    (from..=to)
        .map(|seq| {
            let r = row(seq);
            let hash = r.hash_after(&prev);
            let out = (r, prev, hash);
            prev = hash;
            out
        })
        .collect()
}

/// Rows `1..=n` from the genesis hash.
pub fn chain(n: i64) -> Vec<(JournalRow, [u8; 32], [u8; 32])> {
    chain_from(1, n, GENESIS_HASH)
}

/// Rehashes `rows` from index `start` on, as someone with write access to
/// the database (but without the keys) would, to hide an edit.
pub fn rehash_from(rows: &mut [(JournalRow, [u8; 32], [u8; 32])], start: usize) {
    for i in start..rows.len() {
        let prev = if i == 0 { rows[0].1 } else { rows[i - 1].2 };
        rows[i].1 = prev;
        rows[i].2 = rows[i].0.hash_after(&prev);
    }
}

/// Heads signed at each of `seqs` over `rows` (which start at seq 1).
pub fn heads_at(rows: &[(JournalRow, [u8; 32], [u8; 32])], seqs: &[i64]) -> Vec<SignedHead> {
    let first = rows[0].0.seq;
    seqs.iter()
        .map(|&seq| {
            let hash = rows[(seq - first) as usize].2;
            sign_head(&keys(), DB, seq, &hash, T0 + seq * 1_000 + 500)
        })
        .collect()
}

/// A fresh, empty directory under the target's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("signer-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit code, stdout and stderr of a finished verifier.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }
}

fn run(mut command: Command) -> Outcome {
    let out = command.output().expect("verifier runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn rust_verify(file: &Path, args: &[&str]) -> Outcome {
    let mut c = Command::new(env!("CARGO_BIN_EXE_egress-verify"));
    c.arg(file).args(args);
    run(c)
}

pub fn python_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/verify_export.py")
}

/// The Python verifier; with `without_cryptography`, as on a machine where
/// the `cryptography` package is not installed.
pub fn python_verify(file: &Path, args: &[&str], without_cryptography: bool) -> Outcome {
    let mut c = Command::new("python3");
    if without_cryptography {
        c.arg("-c").arg(
            "import runpy, sys; sys.modules['cryptography'] = None; \
             sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
        );
    }
    c.arg(python_script()).arg(file).args(args);
    run(c)
}

/// Whether python3 can import `cryptography` here.
pub fn python_has_cryptography() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import cryptography.hazmat.primitives.asymmetric.ed25519",
        ])
        .status()
        .is_ok_and(|s| s.success())
}
