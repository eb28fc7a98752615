//! What the signer remembers of its own signatures, per database, in the
//! collector's state directory (never in the database, which whoever
//! rewrites the journal can rewrite too): the last heads it signed, and
//! whether signing is suspended because the journal stopped being
//! consistent with them (the rule of Certificate Transparency and C2SP
//! checkpoints: never sign a head inconsistent with one already signed).
//!
//! Files, beside the keys (`<state_dir>/keys/`, mode 0700): `<db>.signed`
//! (JSON lines, the last `KEPT` heads signed, oldest first) and
//! `<db>.refused` (the reason signing stopped, until an operator resumes).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::headcheck::{head_problem, row_at, HeadView};
use crate::keys::{validate_database, Keys};

/// Heads remembered per database: enough to name a rewrite to within a
/// few signing intervals.
pub const KEPT: usize = 64;

/// Why signing of a database stopped: the first bad seq, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    pub first_bad_seq: i64,
    pub reason: String,
    /// When it was refused (microseconds since the Unix epoch).
    pub at_us: i64,
}

/// One database's memory of what it signed.
pub struct Ledger {
    signed: PathBuf,
    refused: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Keys {
        path: path.to_owned(),
        source,
    }
}

/// Writes `text` to `path` whole or not at all (temporary file, fsync,
/// rename), mode 0600.
fn replace(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

impl Ledger {
    /// The ledger of `database` in the key directory `dir`.
    pub fn open(dir: &Path, database: &str) -> Result<Ledger> {
        validate_database(database)?;
        Ok(Ledger {
            signed: dir.join(format!("{database}.signed")),
            refused: dir.join(format!("{database}.refused")),
        })
    }

    /// The heads signed, oldest first (unreadable lines are an error: the
    /// memory that protects the journal must not be guessed at).
    pub fn heads(&self) -> Result<Vec<SignedHead>> {
        let Some(text) = read(&self.signed)? else {
            return Ok(Vec::new());
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| Error::Format {
                    reason: format!("{}: a line does not parse: {e}", self.signed.display()),
                })
            })
            .collect()
    }

    /// Remembers a head just signed.
    pub fn remember(&self, head: &SignedHead) -> Result<()> {
        let mut heads = self.heads()?;
        heads.push(head.clone());
        let from = heads.len().saturating_sub(KEPT);
        let text: String = heads[from..]
            .iter()
            .map(|h| format!("{}\n", h.to_json()))
            .collect();
        replace(&self.signed, &text)
    }

    /// Why signing is suspended, if it is.
    pub fn refusal(&self) -> Result<Option<Refusal>> {
        read(&self.refused)?
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| Error::Format {
                    reason: format!("{}: does not parse: {e}", self.refused.display()),
                })
            })
            .transpose()
    }

    /// Suspends signing.
    pub fn refuse(&self, refusal: &Refusal) -> Result<()> {
        let text = serde_json::to_string(refusal).unwrap_or_default();
        replace(&self.refused, &text)
    }

    /// Resumes signing after an operator's decision: the journal as it is
    /// now becomes the base, the heads remembered so far are set aside
    /// (kept, renamed with `suffix`, for the investigation).
    pub fn resume(&self, suffix: &str) -> Result<()> {
        if self.signed.exists() {
            let aside = self.signed.with_extension(format!("signed.{suffix}"));
            std::fs::rename(&self.signed, &aside).map_err(io_err(&self.signed))?;
        }
        match std::fs::remove_file(&self.refused) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.refused)(e)),
        }
    }
}

/// The remembered heads against the journal as it is now, oldest first,
/// with the one head check every verifier uses: the first that fails names
/// the first bad seq (the journal was rewritten at or before it, or cut
/// before it). `rows`: the journal's first and last seq (`None`: empty);
/// `hash_at`: the stored row_hash of a seq in that range.
pub fn continuity_problem(
    database: &str,
    keys: &Keys,
    remembered: &[SignedHead],
    rows: Option<(i64, i64)>,
    mut hash_at: impl FnMut(i64) -> Option<[u8; 32]>,
) -> Option<(i64, String)> {
    let public_key = keys.public_key();
    let mut ordered: Vec<&SignedHead> = remembered.iter().collect();
    ordered.sort_by_key(|h| (h.seq, h.signed_at_us));
    ordered.into_iter().find_map(|head| {
        let row = row_at(head.seq, rows, &mut hash_at);
        head_problem(
            database,
            &HeadView::of(head),
            &public_key,
            Some(keys.hmac_key()),
            row,
        )
        .map(|problem| {
            (
                head.seq,
                format!(
                    "the head this collector signed at seq {}: {problem}",
                    head.seq
                ),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::sign_head;

    fn dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("egress-ledger-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn heads_are_remembered_and_a_refusal_lasts_until_resumed() {
        let dir = dir("remember");
        let keys = Keys::from_secrets([1; 32], [2; 32]);
        let ledger = Ledger::open(&dir, "db").unwrap();
        assert!(ledger.heads().unwrap().is_empty());
        for seq in 1..=(KEPT as i64 + 3) {
            ledger
                .remember(&sign_head(&keys, "db", seq, &[seq as u8; 32], seq))
                .unwrap();
        }
        let heads = ledger.heads().unwrap();
        assert_eq!(heads.len(), KEPT);
        assert_eq!(heads.last().unwrap().seq, KEPT as i64 + 3);
        let refusal = Refusal {
            first_bad_seq: 5,
            reason: "rewritten".into(),
            at_us: 1,
        };
        ledger.refuse(&refusal).unwrap();
        let again = Ledger::open(&dir, "db").unwrap();
        assert_eq!(again.refusal().unwrap(), Some(refusal));
        again.resume("resumed-1").unwrap();
        assert_eq!(again.refusal().unwrap(), None);
        assert!(again.heads().unwrap().is_empty());
        assert!(dir.join("db.signed.resumed-1").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rewritten_or_cut_journal_names_the_first_bad_head() {
        let keys = Keys::from_secrets([1; 32], [2; 32]);
        let hashes: Vec<[u8; 32]> = (1..=10u8).map(|i| [i; 32]).collect();
        let at = |seq: i64| hashes.get(seq as usize - 1).copied();
        let heads: Vec<SignedHead> = [3, 6, 9]
            .iter()
            .map(|&s| sign_head(&keys, "db", s, &[s as u8; 32], s))
            .collect();
        assert_eq!(
            continuity_problem("db", &keys, &heads, Some((1, 10)), at),
            None
        );
        // Pruned below seq 4: the head at 3 can no longer be checked.
        assert_eq!(
            continuity_problem("db", &keys, &heads, Some((4, 10)), at),
            None
        );
        let rewritten = |seq: i64| if seq >= 5 { Some([0; 32]) } else { at(seq) };
        let (seq, why) = continuity_problem("db", &keys, &heads, Some((1, 10)), rewritten).unwrap();
        assert_eq!(seq, 6);
        assert!(why.contains("altered at or before seq 6"), "{why}");
        let (seq, why) = continuity_problem("db", &keys, &heads, Some((1, 7)), at).unwrap();
        assert_eq!(seq, 9);
        assert!(why.contains("truncated"), "{why}");
    }
}
