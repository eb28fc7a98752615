//! The witness: the last signed head a verifier accepted for a database, kept
//! in a small JSON file, so that a later export that no longer contains that
//! head with the same hash is caught (docs/EXPORT_FORMAT.md §6).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hexbytes;

/// Value of the witness file's `format` field.
pub const WITNESS_FORMAT: &str = "egress-audit-witness";
pub const WITNESS_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    pub format: String,
    pub version: u32,
    pub database: String,
    /// Seq and row hash of the last accepted signed head.
    pub seq: i64,
    #[serde(with = "hexbytes")]
    pub row_hash: [u8; 32],
    pub signed_at_us: i64,
    /// The Ed25519 public key the accepted exports were signed with: a later
    /// export signed with another key is refused.
    #[serde(with = "hexbytes")]
    pub public_key: [u8; 32],
}

impl Witness {
    pub fn new(
        database: &str,
        seq: i64,
        row_hash: [u8; 32],
        signed_at_us: i64,
        public_key: [u8; 32],
    ) -> Witness {
        Witness {
            format: WITNESS_FORMAT.into(),
            version: WITNESS_VERSION,
            database: database.into(),
            seq,
            row_hash,
            signed_at_us,
            public_key,
        }
    }

    /// Reads a witness file; `None` when it does not exist yet (first use).
    pub fn load(path: &Path) -> Result<Option<Witness>> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let bad = |reason: String| Error::Witness {
            path: path.to_owned(),
            reason,
        };
        let witness: Witness = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        if witness.format != WITNESS_FORMAT || witness.version != WITNESS_VERSION {
            return Err(bad(format!(
                "unsupported format {:?} version {}",
                witness.format, witness.version
            )));
        }
        Ok(Some(witness))
    }

    /// Replaces the witness file atomically (write, fsync, rename), so a crash
    /// leaves the old witness or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |source| Error::Write {
            path: path.to_owned(),
            source,
        };
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let mut text = serde_json::to_string_pretty(self).expect("a witness serialises");
        text.push('\n');
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        Ok(())
    }
}
