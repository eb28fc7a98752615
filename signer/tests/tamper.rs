//! The tamper matrix, against both standalone verifiers (the real
//! `egress-verify` binary and `verify_export.py`, with and without
//! `cryptography`) and the library: every tampering is detected with its first
//! bad position named; every clean export passes.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use egress_proto::JournalRow;
use egress_signer::{
    build_export, sign_head, verify_export, ExportFile, VerifyOptions, Witness, ROW_FIELDS,
};
use serde_json::Value;

type Rows = Vec<(JournalRow, [u8; 32], [u8; 32])>;

/// The journal of the matrix: 20 rows, heads signed at 5, 10, 15 and 18
/// (rows 19 and 20 not yet under a head).
fn journal() -> (Rows, Vec<egress_signer::SignedHead>) {
    let rows = chain(20);
    let heads = heads_at(&rows, &[5, 10, 15, 18]);
    (rows, heads)
}

fn export(
    rows: &[(JournalRow, [u8; 32], [u8; 32])],
    heads: &[egress_signer::SignedHead],
) -> ExportFile {
    let from = rows.first().map_or(1, |r| r.0.seq);
    build_export(DB, rows, heads, &keys(), T0 + 99_000_000, from, None)
}

/// What a case must produce, from every verifier.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Ok,
    /// Exit 1, first bad position and a word of its message.
    Tampered(&'static str, &'static str),
    /// Exit 2 (could not check), with a word of the reason.
    Unchecked(&'static str),
}

struct Matrix {
    dir: PathBuf,
    hmac_key: PathBuf,
    python: bool,
    failures: Vec<String>,
    cases: usize,
}

impl Matrix {
    fn new() -> Matrix {
        let dir = temp_dir("tamper");
        let hmac_key = dir.join("prod_db.hmac");
        std::fs::write(&hmac_key, keys().hmac_key()).unwrap();
        let python = python_has_cryptography();
        if !python {
            eprintln!("python3 has no `cryptography`: Python runs check the HMAC path only");
        }
        Matrix {
            dir,
            hmac_key,
            python,
            failures: Vec::new(),
            cases: 0,
        }
    }

    fn write(&self, name: &str, file: &ExportFile) -> PathBuf {
        let path = self.dir.join(format!("{name}.json"));
        std::fs::write(&path, file.to_json()).unwrap();
        path
    }

    /// Writes an export edited as JSON after it was signed.
    fn write_edited(
        &self,
        name: &str,
        file: &ExportFile,
        edit: impl FnOnce(&mut Value),
    ) -> PathBuf {
        let mut value: Value = serde_json::from_str(&file.to_json()).unwrap();
        edit(&mut value);
        let path = self.dir.join(format!("{name}.json"));
        std::fs::write(&path, collector_layout(&value)).unwrap();
        path
    }

    /// Runs every verifier on `file`; `witness`: the state to start from.
    fn case(
        &mut self,
        name: &str,
        file: &Path,
        pubkey: bool,
        witness: Option<&Witness>,
        expect: Expect,
    ) {
        self.cases += 1;
        let hmac = self.hmac_key.to_str().unwrap().to_owned();
        let pk = hex::encode(keys().public_key());
        let mut base: Vec<String> = Vec::new();
        if pubkey {
            base.extend(["--pubkey".into(), pk]);
        }
        let with_hmac = |args: &[String]| {
            let mut a = args.to_vec();
            a.extend(["--hmac-key".into(), hmac.clone()]);
            a
        };
        let mut runs: Vec<(&str, Vec<String>, u8)> = vec![
            ("egress-verify", base.clone(), 0),
            ("egress-verify --hmac-key", with_hmac(&base), 0),
            (
                "verify_export.py (no cryptography) --hmac-key",
                with_hmac(&base),
                2,
            ),
        ];
        if self.python {
            runs.push(("verify_export.py", base.clone(), 1));
            runs.push(("verify_export.py --hmac-key", with_hmac(&base), 1));
        }
        // The same file with its keys sorted: egress-verify's fast reader
        // expects the collector's layout and leaves this one to serde.
        let sorted = self.dir.join(format!("{name}.sorted.json"));
        let value: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        std::fs::write(&sorted, serde_json::to_string(&value).unwrap()).unwrap();
        runs.push(("egress-verify --hmac-key, keys sorted", with_hmac(&base), 3));
        for (i, (label, mut args, kind)) in runs.into_iter().enumerate() {
            let state = self.dir.join(format!("{name}.witness{i}"));
            let _ = std::fs::remove_file(&state);
            if let Some(w) = witness {
                w.save(&state).unwrap();
            }
            if witness.is_some() || matches!(expect, Expect::Ok) {
                args.extend(["--witness".into(), state.to_str().unwrap().into()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = match kind {
                0 => rust_verify(file, &args),
                1 => python_verify(file, &args, false),
                2 => python_verify(file, &args, true),
                _ => rust_verify(&sorted, &args),
            };
            let fine = match expect {
                Expect::Ok => {
                    out.code == 0
                        && out
                            .stdout
                            .contains("Export verified OK — no tampering detected.")
                }
                Expect::Tampered(position, word) => {
                    out.code == 1
                        && out.first_line().starts_with(&format!(
                            "Export TAMPERED — first bad position: {position}: "
                        ))
                        && out.first_line().contains(word)
                }
                Expect::Unchecked(word) => out.code == 2 && out.stdout.contains(word),
            };
            if !fine {
                self.failures.push(format!(
                    "{name} / {label}: expected {expect:?}, got exit {}:\n{}{}",
                    out.code, out.stdout, out.stderr
                ));
            }
            if fine && matches!(expect, Expect::Ok) && witness.is_some() {
                // A passing check advances (or keeps) the witness, never drops it.
                assert!(
                    Witness::load(&state).unwrap().is_some(),
                    "{name} / {label}: witness kept"
                );
            }
        }
    }
}

/// `value` laid out as the collector writes an export (`write_json`): the
/// fields in the order of `ExportFile`, one head or row per line, a row's
/// fields in the order of `ExportRow`; fields the collector does not write,
/// at the end.
fn collector_layout(value: &Value) -> String {
    const ORDER: [&str; 13] = [
        "format",
        "version",
        "database",
        "exported_at_us",
        "range",
        "anchor",
        "public_key",
        "latest_head",
        "signed_heads",
        "rows",
        "digest",
        "hmac",
        "signature",
    ];
    /// The keys of `fields` in `order`, then the others.
    fn ordered<'a>(fields: &'a serde_json::Map<String, Value>, order: &[&'a str]) -> Vec<&'a str> {
        let mut names: Vec<&str> = order
            .iter()
            .copied()
            .filter(|k| fields.contains_key(*k))
            .collect();
        names.extend(
            fields
                .keys()
                .map(String::as_str)
                .filter(|k| !order.contains(k)),
        );
        names
    }
    let json = |v: &Value| serde_json::to_string(v).unwrap();
    let row = |v: &Value| match v.as_object() {
        Some(fields) => {
            let fields: Vec<String> = ordered(fields, &ROW_FIELDS)
                .iter()
                .map(|k| format!("{}:{}", json(&Value::from(*k)), json(&fields[*k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        None => json(v),
    };
    let fields = value.as_object().expect("an object");
    let names = ordered(fields, &ORDER);
    let mut out = String::from("{\n");
    for (i, name) in names.iter().enumerate() {
        let sep = if i + 1 < names.len() { "," } else { "" };
        let v = &fields[*name];
        match v.as_array() {
            Some(items) if !items.is_empty() && matches!(*name, "rows" | "signed_heads") => {
                let items: Vec<String> = items.iter().map(row).collect();
                out += &format!("  {name:?}: [\n    {}\n  ]{sep}\n", items.join(",\n    "));
            }
            _ => out += &format!("  {name:?}: {}{sep}\n", json(v)),
        }
    }
    out + "}\n"
}

fn edit_row(v: &mut Value, seq: i64, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let rows = v["rows"].as_array_mut().unwrap();
    let row = rows.iter_mut().find(|r| r["seq"] == seq).unwrap();
    f(row.as_object_mut().unwrap());
}

fn witness_at(rows: &Rows, seq: i64) -> Witness {
    let r = rows.iter().find(|r| r.0.seq == seq).unwrap();
    Witness::new(DB, seq, r.2, T0 + seq * 1_000 + 500, keys().public_key())
}

#[test]
fn tamper_matrix_against_both_verifiers() {
    let mut m = Matrix::new();
    let (rows, heads) = journal();
    let clean = export(&rows, &heads);

    // ---- clean exports pass --------------------------------------------
    let f = m.write("clean", &clean);
    m.case("clean", &f, false, None, Expect::Ok);
    m.case("clean, pinned key", &f, true, None, Expect::Ok);
    m.case(
        "clean, witness at an earlier head",
        &f,
        false,
        Some(&witness_at(&rows, 10)),
        Expect::Ok,
    );
    m.case(
        "clean, witness at the latest head",
        &f,
        false,
        Some(&witness_at(&rows, 18)),
        Expect::Ok,
    );
    let from_anchor = export(&rows[5..], &heads);
    let f = m.write("anchor", &from_anchor);
    m.case(
        "clean, starts at seq 6 from an anchor",
        &f,
        true,
        None,
        Expect::Ok,
    );
    m.case(
        "clean, anchor equals the witness's head",
        &f,
        false,
        Some(&witness_at(&rows, 5)),
        Expect::Ok,
    );
    let stopped = build_export(
        DB,
        &rows[..12],
        &heads,
        &keys(),
        T0 + 99_000_000,
        1,
        Some(12),
    );
    let f = m.write("stopped", &stopped);
    m.case(
        "clean, range stops at seq 12 (latest head beyond)",
        &f,
        false,
        None,
        Expect::Ok,
    );
    let no_heads = export(&rows[..4], &[]);
    let f = m.write("no-heads", &no_heads);
    m.case("clean, nothing signed yet", &f, false, None, Expect::Ok);

    // ---- the database was tampered with, then exported honestly ----------
    let mut t = rows.clone();
    t[6].0.bytes_out = Some(1);
    let f = m.write("db-field", &export(&t, &heads));
    m.case(
        "modified field",
        &f,
        false,
        None,
        Expect::Tampered("row seq 7", "altered"),
    );

    rehash_from(&mut t, 6);
    let f = m.write("db-field-rehashed", &export(&t, &heads));
    m.case(
        "modified field, chain recomputed",
        &f,
        false,
        None,
        Expect::Tampered("signed head seq 10", "altered at or before seq 10"),
    );

    let mut t = rows.clone();
    t[6].2[0] ^= 1;
    let f = m.write("db-hash", &export(&t, &heads));
    m.case(
        "modified hash",
        &f,
        false,
        None,
        Expect::Tampered("row seq 7", "row_hash"),
    );

    let mut t = rows.clone();
    t.remove(6);
    let f = m.write("db-delete", &export(&t, &heads));
    m.case(
        "deleted middle row",
        &f,
        false,
        None,
        Expect::Tampered("row seq 7", "missing"),
    );

    let mut t = rows.clone();
    t.swap(6, 7);
    let f = m.write("db-swap", &export(&t, &heads));
    m.case(
        "swapped rows",
        &f,
        false,
        None,
        Expect::Tampered("row seq 7", "out of place"),
    );

    let mut t = rows.clone();
    let mut intruder = row(8);
    intruder.host = Some("exfil.example".into());
    let hash = intruder.hash_after(&t[6].2);
    t.insert(7, (intruder, t[6].2, hash));
    let f = m.write("db-insert", &export(&t, &heads));
    m.case(
        "inserted row",
        &f,
        false,
        None,
        Expect::Tampered("row seq 8", "again"),
    );

    let t = rows[..16].to_vec();
    let f = m.write("db-truncate", &export(&t, &heads));
    m.case(
        "truncated tail",
        &f,
        false,
        None,
        Expect::Tampered("signed head seq 18", "truncated"),
    );

    let mut forged_heads = heads.clone();
    forged_heads.push(sign_head(&wrong_keys(), DB, 20, &rows[19].2, T0 + 30_000));
    let f = m.write("db-forged-head", &export(&rows, &forged_heads));
    // Unpinned, a head signed with another key than the export's could be
    // another collector's: who signed it is not known, the export is not
    // verified. Pinned, a key outside the keyring is named.
    m.case(
        "forged signed head (wrong key)",
        &f,
        false,
        None,
        Expect::Unchecked("pin the keyring"),
    );
    m.case(
        "forged signed head (wrong key), pinned",
        &f,
        true,
        None,
        Expect::Tampered("signed head seq 20", "not in the keyring"),
    );

    let mut half = sign_head(&keys(), DB, 20, &rows[19].2, T0 + 30_000);
    half.hmac = sign_head(&wrong_keys(), DB, 20, &rows[19].2, T0 + 30_000).hmac;
    let mut t_heads = heads.clone();
    t_heads.push(half);
    let f = m.write("db-forged-hmac", &export(&rows, &t_heads));
    // Only a verifier given the HMAC key can see this one: run it with it.
    let out = rust_verify(&f, &["--hmac-key", m.hmac_key.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.first_line().contains("signed head seq 20: its HMAC"),
        "{}",
        out.stdout
    );
    let out = python_verify(&f, &["--hmac-key", m.hmac_key.to_str().unwrap()], true);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.first_line().contains("signed head seq 20: its HMAC"),
        "{}",
        out.stdout
    );

    // Rolled back: rows after 13 and the heads after 10 deleted, the older
    // head now the latest. Only a witness can tell.
    let rolled = export(&rows[..13], &heads[..2]);
    let f = m.write("db-rollback", &rolled);
    m.case(
        "replayed older signed head, no witness",
        &f,
        false,
        None,
        Expect::Ok,
    );
    m.case(
        "replayed older signed head",
        &f,
        false,
        Some(&witness_at(&rows, 18)),
        Expect::Tampered("witness seq 18", "truncated"),
    );

    // Rewritten from seq 12 on and rehashed, later heads deleted.
    let mut t = rows.clone();
    t[11].0.path = Some("/forged".into());
    rehash_from(&mut t, 11);
    let f = m.write("db-rewrite", &export(&t, &heads[..2]));
    m.case(
        "rewritten after the witness",
        &f,
        false,
        Some(&witness_at(&rows, 18)),
        Expect::Tampered("witness seq 18", "rewritten"),
    );
    m.case(
        "rewritten, witness before the edit",
        &f,
        false,
        Some(&witness_at(&rows, 10)),
        Expect::Ok,
    );

    // A witness that saw more than this export holds.
    let longer = chain(25);
    let f_long = m.write(
        "longer",
        &export(&longer, &heads_at(&longer, &[5, 10, 15, 18, 23])),
    );
    m.case(
        "clean, later export advances the witness",
        &f_long,
        false,
        Some(&witness_at(&rows, 18)),
        Expect::Ok,
    );
    let f = m.write("older", &clean);
    m.case(
        "witness state newer than the export",
        &f,
        false,
        Some(&witness_at(&longer, 23)),
        Expect::Tampered("witness seq 23", "ends at seq 20"),
    );

    // ---- the file was edited after export (not re-signed) ----------------
    let f = m.write_edited("file-field", &clean, |v| {
        edit_row(v, 7, |r| {
            r.insert("host".into(), "elsewhere.example".into());
        })
    });
    m.case(
        "file: modified field",
        &f,
        false,
        None,
        Expect::Tampered("row seq 7", "altered"),
    );
    let f = m.write_edited("file-hash", &clean, |v| {
        edit_row(v, 7, |r| {
            r.insert("row_hash".into(), hex::encode([7u8; 32]).into());
        })
    });
    m.case(
        "file: modified hash",
        &f,
        false,
        None,
        Expect::Tampered("row seq 7", "row_hash"),
    );
    let f = m.write_edited("file-delete", &clean, |v| {
        v["rows"].as_array_mut().unwrap().remove(6);
    });
    m.case(
        "file: deleted middle row",
        &f,
        false,
        None,
        Expect::Tampered("row seq 7", "missing"),
    );
    let f = m.write_edited("file-swap", &clean, |v| {
        v["rows"].as_array_mut().unwrap().swap(6, 7);
    });
    m.case(
        "file: swapped rows",
        &f,
        false,
        None,
        Expect::Tampered("row seq 7", "out of place"),
    );
    let f = m.write_edited("file-insert", &clean, |v| {
        let copy = v["rows"][6].clone();
        v["rows"].as_array_mut().unwrap().insert(7, copy);
    });
    m.case(
        "file: inserted row",
        &f,
        false,
        None,
        Expect::Tampered("row seq 7", "again"),
    );
    let f = m.write_edited("file-cut", &clean, |v| {
        v["rows"].as_array_mut().unwrap().truncate(10);
    });
    m.case(
        "file: export cut mid-range",
        &f,
        false,
        None,
        Expect::Tampered("row seq 11", "cut"),
    );
    let f = m.write_edited("file-truncate", &clean, |v| {
        v["rows"].as_array_mut().unwrap().truncate(16);
        v["range"]["to"] = 16.into();
        v["signed_heads"].as_array_mut().unwrap().truncate(3);
    });
    m.case(
        "file: truncated tail, range edited",
        &f,
        false,
        None,
        Expect::Tampered("signed head seq 18", "truncated"),
    );
    let f = m.write_edited("file-replay", &clean, |v| {
        v["latest_head"] = v["signed_heads"][1].clone();
    });
    m.case(
        "file: replayed older signed head",
        &f,
        false,
        None,
        Expect::Tampered("signed head seq 10", "replayed"),
    );
    let f = m.write_edited("file-head", &clean, |v| {
        v["signed_heads"][1]["row_hash"] = v["rows"][10]["row_hash"].clone();
    });
    m.case(
        "file: forged signed head",
        &f,
        false,
        None,
        Expect::Tampered("signed head seq 10", "forged"),
    );
    let f = m.write_edited("file-range", &clean, |v| {
        v["range"]["to_end"] = false.into();
    });
    m.case(
        "file: range flag flipped",
        &f,
        false,
        None,
        Expect::Tampered("export signature", "digest"),
    );

    // Re-signed by someone with another key: caught by a pinned key or a
    // witness (without either, only the HMAC key holder can tell).
    let mut resigned = clean.clone();
    let forged: Vec<_> = heads
        .iter()
        .map(|h| sign_head(&wrong_keys(), DB, h.seq, &h.row_hash, h.signed_at_us))
        .collect();
    resigned.signed_heads = forged
        .iter()
        .map(egress_signer::HeadEntry::from_signed)
        .collect();
    resigned.latest_head = forged.last().map(egress_signer::HeadEntry::from_signed);
    egress_signer::sign_export(&mut resigned, &wrong_keys());
    let f = m.write("resigned", &resigned);
    m.case(
        "re-signed with another key, pinned",
        &f,
        true,
        None,
        Expect::Tampered("export public key", "re-signed"),
    );
    m.case(
        "re-signed with another key, witness",
        &f,
        false,
        Some(&witness_at(&rows, 10)),
        Expect::Tampered("export public key", "re-signed"),
    );

    assert!(
        m.failures.is_empty(),
        "{} of the runs failed:\n\n{}",
        m.failures.len(),
        m.failures.join("\n\n")
    );
    eprintln!("{} cases, every verifier agreed", m.cases);
    if std::env::var_os("KEEP").is_none() {
        std::fs::remove_dir_all(&m.dir).unwrap();
    }
}

#[test]
fn the_library_names_the_same_positions() {
    let (rows, heads) = journal();
    let opts = VerifyOptions {
        hmac_key: Some(*keys().hmac_key()),
        keyring: Some(egress_signer::Keyring::of([keys().public_key()])),
        witness: None,
    };
    let report = verify_export(&export(&rows, &heads), &opts).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.last_signed_seq, Some(18));
    assert_eq!(report.next_witness.as_ref().map(|w| w.seq), Some(18));

    let mut t = rows.clone();
    t.remove(6);
    let report = verify_export(&export(&t, &heads), &opts).unwrap();
    assert_eq!(report.problems[0].at, egress_signer::Position::Row(7));
    assert_eq!(report.exit_code(), 1);
    assert!(
        report.next_witness.is_none(),
        "a failed check never moves the witness"
    );

    let report = verify_export(&export(&rows[..16], &heads), &opts).unwrap();
    assert_eq!(report.problems[0].at, egress_signer::Position::Head(18));
    assert!(report.problems[0]
        .message
        .contains("truncated or altered after signed head seq 18"));
}

/// Big enough for verify_export.py to check its rows in parallel (over 4 MB)
/// and for both verifiers to cut them into several parts: a change far into
/// the file is named by every way of reading it.
#[test]
fn a_large_export_is_checked_in_parts_with_the_same_verdicts() {
    let dir = temp_dir("large");
    let rows = chain(4_000);
    let heads = heads_at(&rows, &[1_000, 2_000, 3_000, 4_000]);
    let clean = export(&rows, &heads).to_json();
    // Row 3,500's collector changed in place, and an unknown field in row 3,700.
    let edit_row = |seq: i64, from: &str, to: &str| -> String {
        let start = clean.find(&format!("{{\"seq\":{seq},")).unwrap();
        let end = start + clean[start..].find('\n').unwrap();
        format!(
            "{}{}{}",
            &clean[..start],
            clean[start..end].replacen(from, to, 1),
            &clean[end..]
        )
    };
    let altered = edit_row(3_500, "odoo-host-1", "odoo-host-2");
    let unknown = edit_row(3_700, "\"kind\":", "\"note\":1,\"kind\":");
    let mut runs = Vec::new();
    for (name, text) in [
        ("clean", &clean),
        ("altered", &altered),
        ("unknown", &unknown),
    ] {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, text).unwrap();
        let mut outs = vec![rust_verify(&file, &[])];
        for jobs in ["1", "2", "3"] {
            outs.push(python_verify(
                &file,
                &["--jobs", jobs],
                !python_has_cryptography(),
            ));
        }
        runs.push((name, outs));
    }
    for (name, outs) in &runs {
        let verdict = |o: &Outcome| (o.code, o.first_line().to_owned());
        match *name {
            "clean" => assert!(outs.iter().all(|o| o.code == 0), "{name}: {outs:?}"),
            "altered" => {
                assert_eq!(
                    verdict(&outs[0]),
                    (1, "Export TAMPERED — first bad position: row seq 3500: its contents do not match its row_hash: the row was altered".to_owned()),
                    "{outs:?}"
                );
                assert!(
                    outs.iter().all(|o| verdict(o) == verdict(&outs[0])),
                    "{outs:?}"
                );
            }
            _ => {
                assert!(outs.iter().all(|o| o.code == 2), "{name}: {outs:?}");
                for python in &outs[1..] {
                    assert!(python.stderr.contains("row 3700 of the file"), "{python:?}");
                }
            }
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_witness_too_old_for_a_pruned_export_cannot_be_checked() {
    let (rows, heads) = journal();
    let pruned = export(&rows[10..], &heads);
    let dir = temp_dir("pruned");
    let file = dir.join("pruned.json");
    std::fs::write(&file, pruned.to_json()).unwrap();
    let state = dir.join("w.json");
    witness_at(&rows, 5).save(&state).unwrap();
    let args = ["--witness", state.to_str().unwrap()];
    for out in [
        rust_verify(&file, &args),
        python_verify(&file, &args, !python_has_cryptography()),
    ] {
        assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("export from seq 6 or earlier"),
            "{}",
            out.stdout
        );
    }
    assert_eq!(
        Witness::load(&state).unwrap().unwrap().seq,
        5,
        "witness unchanged"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn files_that_are_not_exports_cannot_be_checked() {
    let dir = temp_dir("unreadable");
    let (rows, heads) = journal();
    let good = export(&rows[..3], &heads).to_json();
    let unknown_field = good.replacen("\"kind\":", "\"note\":\"x\",\"kind\":", 1);
    let duplicate = good.replacen("\"kind\":", "\"host\":\"a\",\"host\":\"b\",\"kind\":", 1);
    let bool_int = good.replacen("\"seq\":1,", "\"seq\":true,", 1);
    let cases = [
        ("missing", None),
        ("not-json", Some("{ this is not json".to_owned())),
        ("not-export", Some("{\"hello\": 1}".to_owned())),
        ("unknown-field", Some(unknown_field)),
        ("duplicate-key", Some(duplicate)),
        ("bool-for-int", Some(bool_int)),
    ];
    for (name, content) in cases {
        let file = dir.join(format!("{name}.json"));
        if let Some(c) = &content {
            std::fs::write(&file, c).unwrap();
        }
        for out in [rust_verify(&file, &[]), python_verify(&file, &[], false)] {
            assert_eq!(out.code, 2, "{name}: {}{}", out.stdout, out.stderr);
            assert!(
                out.stderr.starts_with("Could not check the export: "),
                "{name}: {}",
                out.stderr
            );
            assert_eq!(
                out.stderr.lines().count(),
                1,
                "{name}: one line: {}",
                out.stderr
            );
        }
    }
    let file = dir.join("good.json");
    std::fs::write(&file, &good).unwrap();
    let bad_key = dir.join("bad.key");
    std::fs::write(&bad_key, "not a key").unwrap();
    for args in [
        vec!["--hmac-key", bad_key.to_str().unwrap()],
        vec!["--hmac-key", "/nonexistent/key"],
        vec!["--pubkey", "abcd"],
    ] {
        for out in [
            rust_verify(&file, &args),
            python_verify(&file, &args, false),
        ] {
            assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn python_without_cryptography_says_so_and_needs_the_hmac_key() {
    let dir = temp_dir("nocrypto");
    let (rows, heads) = journal();
    let file = dir.join("e.json");
    std::fs::write(&file, export(&rows, &heads).to_json()).unwrap();
    let out = python_verify(&file, &[], true);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stdout.contains("Ed25519 signatures were NOT checked"),
        "{}",
        out.stdout
    );
    let key = dir.join("k");
    std::fs::write(&key, hex::encode(keys().hmac_key())).unwrap();
    let out = python_verify(&file, &["--hmac-key", key.to_str().unwrap()], true);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("Ed25519 signatures were NOT checked"),
        "{}",
        out.stdout
    );
    std::fs::remove_dir_all(dir).unwrap();
}
