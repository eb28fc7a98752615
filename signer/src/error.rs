//! The signer's one error type: everything that stops a key from being read or
//! an export from being checked at all (as opposed to a check that fails).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid database name {name:?}: use {}",
        egress_proto::database::DATABASE_NAME_RULE
    )]
    DatabaseName { name: String },

    #[error("key store {}: {source}", path.display())]
    Keys {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("key file {} holds {len} bytes, not 32: restore it from a backup", path.display())]
    KeyLength { path: PathBuf, len: u64 },

    #[error(
        "key file {} is readable by other users (mode {mode:o}): run chmod 600 on it",
        path.display()
    )]
    KeyMode { path: PathBuf, mode: u32 },

    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("reading the export: {source}")]
    ReadExport { source: std::io::Error },

    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The export does not follow docs/EXPORT_FORMAT.md, so nothing in it can
    /// be checked.
    #[error("not a valid export file: {reason}")]
    Format { reason: String },

    #[error("witness {}: {reason}", path.display())]
    Witness { path: PathBuf, reason: String },

    #[error("invalid key: {reason}")]
    Key { reason: String },
}
