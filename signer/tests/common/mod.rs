//! Shared by the signer's tests and benchmark: realistic journal rows, a
//! chain of them, fixed keys, temporary directories, and running both verifiers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use egress_proto::{JournalRow, GENESIS_HASH};
use egress_signer::{sign_head, Keys, SignedHead};

mod rows;
pub use rows::*;

pub fn keys() -> Keys {
    Keys::from_secrets([0x11; 32], [0x22; 32])
}

/// Another collector's keys: what a forger without ours would sign with.
pub fn wrong_keys() -> Keys {
    Keys::from_secrets([0x33; 32], [0x44; 32])
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
