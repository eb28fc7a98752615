//! Golden vectors for the signed-head input and a small export, committed
//! under `signer/vectors/` and checked here by Rust and, through
//! `signer/tests/vectors.py`, by the Python verifier. Regenerate them only
//! with a format version change: `EGRESS_WRITE_VECTORS=1 cargo test -p egress-signer --test golden`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{python_has_cryptography, python_verify, rust_verify};
use egress_proto::JournalRow;
use egress_signer::{build_export, export_digest_input, head_input, sign_head, Keys, SignedHead};
use serde::{Deserialize, Serialize};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn writing() -> bool {
    std::env::var_os("EGRESS_WRITE_VECTORS").is_some()
}

/// The keys of every vector (never use fixed keys anywhere else).
fn keys() -> Keys {
    Keys::from_secrets([0x4b; 32], *b"egress-audit test vector seed 01")
}

/// A second collector's keys, for a database two collectors sign.
fn second_keys() -> Keys {
    Keys::from_secrets([0x4c; 32], *b"egress-audit test vector seed 02")
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct HeadVector {
    description: String,
    database: String,
    seq: i64,
    row_hash: String,
    signed_at_us: i64,
    input_hex: String,
    hmac: String,
    signature: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct KeyVector {
    hmac_key: String,
    ed25519_seed: String,
    public_key: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct ExportVector {
    description: String,
    digest_input_hex: String,
    digest: String,
    hmac: String,
    signature: String,
}

fn head_vector(
    description: &str,
    database: &str,
    seq: i64,
    row_hash: [u8; 32],
    at: i64,
) -> HeadVector {
    let head: SignedHead = sign_head(&keys(), database, seq, &row_hash, at);
    HeadVector {
        description: description.into(),
        database: database.into(),
        seq,
        row_hash: hex::encode(row_hash),
        signed_at_us: at,
        input_hex: hex::encode(head_input(database, seq, &row_hash, at)),
        hmac: hex::encode(head.hmac),
        signature: hex::encode(head.signature),
    }
}

/// The three rows of `proto/vectors/journal_chain.json`.
fn journal_rows() -> Vec<(JournalRow, [u8; 32], [u8; 32])> {
    #[derive(Deserialize)]
    struct Entry {
        row: JournalRow,
        prev_hash: String,
        row_hash: String,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/vectors/journal_chain.json");
    let entries: Vec<Entry> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let h = |s: &str| <[u8; 32]>::try_from(hex::decode(s).unwrap()).unwrap();
    entries
        .into_iter()
        .map(|e| (e.row, h(&e.prev_hash), h(&e.row_hash)))
        .collect()
}

/// Writes `value` as the vector `name`, or checks it equals the committed one.
fn golden(name: &str, text: &str) {
    let path = vectors().join(name);
    if writing() {
        std::fs::create_dir_all(vectors()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        committed, text,
        "{name} differs from what the code produces now"
    );
}

#[test]
fn signed_head_vectors() {
    let rows = journal_rows();
    let cases = vec![
        head_vector(
            "head of the proto journal vector (seq 3)",
            "prod_db",
            3,
            rows[2].2,
            1_764_288_600_000_000,
        ),
        head_vector(
            "first row of a chain, another database",
            "odoo-17.0",
            1,
            rows[0].2,
            1_700_000_000_000_001,
        ),
        head_vector(
            "large seq, hash of all 0xff, time before 1970",
            "x",
            9_007_199_254_740_993,
            [0xff; 32],
            -1,
        ),
    ];
    golden(
        "signed_heads.json",
        &(serde_json::to_string_pretty(&cases).unwrap() + "\n"),
    );
    let k = keys();
    let key_vector = KeyVector {
        hmac_key: hex::encode(k.hmac_key()),
        ed25519_seed: hex::encode(b"egress-audit test vector seed 01"),
        public_key: hex::encode(k.public_key()),
    };
    golden(
        "keys.json",
        &(serde_json::to_string_pretty(&key_vector).unwrap() + "\n"),
    );
    // The documented layout of the first case (docs/EXPORT_FORMAT.md §7).
    let input = hex::decode(&cases[0].input_hex).unwrap();
    assert_eq!(input.len(), 1 + 4 + 24 + 4 + 7 + 8 + 32 + 8);
    assert_eq!(&input[..5], &[1, 0, 0, 0, 24]);
}

#[test]
fn small_export_vector() {
    let rows = journal_rows();
    // Two collectors sign this database: host-b the head at seq 2, host-a
    // (the exporter) the head at seq 3.
    let signed_by = |keys: &Keys, collector: &str, seq: i64, at: i64| SignedHead {
        collector: Some(collector.into()),
        ..sign_head(keys, "prod_db", seq, &rows[seq as usize - 1].2, at)
    };
    let heads = vec![
        signed_by(&second_keys(), "host-b", 2, 1_764_288_300_000_000),
        signed_by(&keys(), "host-a", 3, 1_764_288_600_000_000),
    ];
    let export = build_export(
        "prod_db",
        &rows,
        &heads,
        &keys(),
        1_764_289_000_000_000,
        1,
        None,
    );
    golden("export_small.json", &export.to_json());
    let expected = ExportVector {
        description: "export_small.json: the three rows of proto/vectors/journal_chain.json, heads at seq 2 (signed by host-b, the second vector key) and 3 (host-a, the exporter)".into(),
        digest_input_hex: hex::encode(export_digest_input(&export)),
        digest: hex::encode(export.digest),
        hmac: hex::encode(export.hmac),
        signature: hex::encode(export.signature),
    };
    golden(
        "export_small.expected.json",
        &(serde_json::to_string_pretty(&expected).unwrap() + "\n"),
    );

    // Both verifiers accept the committed file with the vector keys.
    let file = vectors().join("export_small.json");
    let dir = common::temp_dir("golden");
    let key = dir.join("hmac.key");
    std::fs::write(&key, hex::encode(keys().hmac_key())).unwrap();
    let pk = hex::encode(keys().public_key());
    let pk_b = hex::encode(second_keys().public_key());
    let args = [
        "--hmac-key",
        key.to_str().unwrap(),
        "--pubkey",
        pk.as_str(),
        "--pubkey",
        pk_b.as_str(),
    ];
    // The file lists 2 signed heads, the latest among them: each counted once.
    let out = rust_verify(&file, &args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("signed heads: 2 checked;"),
        "{}",
        out.stdout
    );
    let out = python_verify(&file, &args, !python_has_cryptography());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("signed heads: 2 checked;"),
        "{}",
        out.stdout
    );
    // Without host-b's key, both name the head it signed and its key.
    let ring = dir.join("keyring");
    std::fs::write(&ring, format!("# host-a only\n{pk} host-a\n")).unwrap();
    let only_a = ["--keyring", ring.to_str().unwrap()];
    let id_b = &pk_b[..16];
    for out in [
        rust_verify(&file, &only_a),
        python_verify(&file, &only_a, false),
    ] {
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout
                .contains("signed head seq 2: it was signed with key")
                && out.stdout.contains(id_b)
                && out.stdout.contains("not in the keyring"),
            "{}",
            out.stdout
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn python_reproduces_every_vector() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(vectors())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("vectors OK"), "{text}");
}

#[test]
fn the_fast_row_reader_encodes_like_the_reference() {
    // The verifier's borrowed encoder against JournalRow::canonical, through
    // the whole file path: any difference fails the chain of a clean export.
    let mut rows = journal_rows();
    let mut odd = rows[0].0.clone();
    odd.seq = 4;
    odd.path = Some(String::new());
    odd.query_keys = Some(vec![]);
    odd.host = Some("ünïcödé \"quoted\" \\ back\tslash ✓".into());
    odd.fingerprint = Some(vec![]);
    odd.worker_id = Some(i64::MIN);
    odd.detail = Some("{\"json\": \"inside\"}".into());
    let prev = rows[2].2;
    let hash = odd.hash_after(&prev);
    rows.push((odd, prev, hash));
    rows.extend(common::chain_from(5, 3000, hash));
    let export = build_export("prod_db", &rows, &[], &keys(), 1, 1, None);
    let opts = egress_signer::VerifyOptions::default();
    let from_json = egress_signer::verify_export_json(export.to_json().as_bytes(), &opts).unwrap();
    assert!(from_json.ok(), "{:?}", from_json.problems);
    let in_memory = egress_signer::verify_export(&export, &opts).unwrap();
    assert!(in_memory.ok(), "{:?}", in_memory.problems);
    // Rows spread over several lines each: the parallel reader cannot cut
    // them, and the whole file is read in one piece.
    let value: serde_json::Value = serde_json::from_str(&export.to_json()).unwrap();
    let pretty = serde_json::to_string_pretty(&value).unwrap();
    let report = egress_signer::verify_export_json(pretty.as_bytes(), &opts).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.rows, 3000);
    // And one edit still names its row on every path.
    let edited = pretty.replacen("\"kind\": \"call\"", "\"kind\": \"calm\"", 1);
    assert_ne!(edited, pretty);
    let report = egress_signer::verify_export_json(edited.as_bytes(), &opts).unwrap();
    assert!(matches!(
        report.problems[0].at,
        egress_signer::Position::Row(_)
    ));
    // An edit deep in the second half of a one-row-per-line file (read in
    // parts, in parallel) names its row too.
    let json = export.to_json();
    let line = json.find("{\"seq\":2500,").unwrap();
    let at = line + json[line..].find("\"kind\":\"call\"").unwrap();
    let edited = format!("{}\"kind\":\"calm\"{}", &json[..at], &json[at + 13..]);
    let report = egress_signer::verify_export_json(edited.as_bytes(), &opts).unwrap();
    assert_eq!(report.problems[0].at, egress_signer::Position::Row(2500));
}
