//! Benchmark of both standalone verifiers on one export file of realistic
//! rows (default 1,000,000; `EGRESS_BENCH_ROWS` to change): `egress-verify`
//! and `verify_export.py` (skip it with `EGRESS_BENCH_PYTHON=0`), each run as
//! a process, reading the file, as an auditor runs it. Run: `cargo bench -p egress-signer`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use egress_proto::GENESIS_HASH;
use egress_signer::{build_export, sign_head};

fn main() {
    let n: i64 = std::env::var("EGRESS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("signer-bench");
    std::fs::create_dir_all(&dir).unwrap();
    // `compact`: gap rows only (~330 bytes of JSON each) instead of the
    // realistic mix (~1.6 KB), to show what the row size costs.
    let compact = std::env::var("EGRESS_BENCH_PROFILE").as_deref() == Ok("compact");
    let file = dir.join(format!(
        "export-{n}{}.json",
        if compact { "-compact" } else { "" }
    ));
    let key = dir.join("prod_db.hmac");
    std::fs::write(&key, keys().hmac_key()).unwrap();

    let t = Instant::now();
    let mut prev = GENESIS_HASH;
    let mut rows = Vec::with_capacity(n as usize);
    let mut heads = Vec::new();
    for seq in 1..=n {
        let r = if compact {
            gap_row_in(DB, seq)
        } else {
            row(seq)
        };
        let hash = r.hash_after(&prev);
        // A head every 10,000 rows: every 10 minutes at ~17 rows/s.
        if seq % 10_000 == 0 {
            heads.push(sign_head(&keys(), DB, seq, &hash, T0 + seq * 1_000));
        }
        rows.push((r, prev, hash));
        prev = hash;
    }
    let export = build_export(DB, &rows, &heads, &keys(), T0 + n * 1_000, 1, None);
    drop(rows);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    export.write_json(&mut out).unwrap();
    out.flush().unwrap();
    drop(export);
    let size = std::fs::metadata(&file).unwrap().len();
    println!(
        "export: {n} rows, {} heads, {:.0} MB ({} bytes/row), built and written in {:.1} s",
        heads.len(),
        size as f64 / 1e6,
        size / n as u64,
        t.elapsed().as_secs_f64()
    );

    let key_arg = key.to_str().unwrap();
    let best = best_of(3, || {
        let out = Command::new(env!("CARGO_BIN_EXE_egress-verify"))
            .arg(&file)
            .args(["--hmac-key", key_arg])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    });
    report(
        "egress-verify FILE --hmac-key (process, reads the file)",
        n,
        size,
        best,
    );

    if std::env::var("EGRESS_BENCH_PYTHON").as_deref() != Ok("0") {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/verify_export.py");
        let best = best_of(2, || {
            let out = Command::new("python3")
                .arg(&script)
                .arg(&file)
                .args(["--hmac-key", key_arg])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        });
        report("verify_export.py FILE --hmac-key (process)", n, size, best);
    }
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn report(what: &str, n: i64, size: u64, took: Duration) {
    let s = took.as_secs_f64();
    println!(
        "{what}: {s:.2} s, {:.0} rows/s, {:.0} MB/s",
        n as f64 / s,
        size as f64 / 1e6 / s
    );
}
