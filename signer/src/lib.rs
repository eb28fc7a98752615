//! egress-signer: the proof side of egress-audit. Pure: no database, no
//! sockets; the collector calls it to sign heads and build exports, and
//! `egress-verify` uses it to check an export with nothing else.
//!
//! Layout:
//! - `keys`: per-database HMAC and Ed25519 keys in the state directory.
//! - `keyring`: the public keys an auditor pins for a database that several
//!   collectors sign.
//! - `head`: the signed-head input, `sign_head`, head verification.
//! - `headcheck`: the one check of a signed head against a journal, and its
//!   messages, for every verifier and for the signer's continuity check.
//! - `export`: the export file, its digest and signatures, `build_export`;
//!   `export_stream`: the same file written row by row, for large journals.
//! - `verify`: `verify_export`, naming the first bad position.
//! - `checked`: what checking leaves of each row (`CheckedRows`);
//!   `rowcheck`: rows parsed, encoded and hashed without allocation, on every core;
//!   `scan`: a hand-written reader of rows as the collector writes them, that
//!   leaves whatever it does not expect to serde; `stream`: the file read in
//!   blocks, its rows scanned on every core as they come.
//! - `witness`: the last accepted head, kept between verifications.
//! - `ledger`: the heads this collector signed and whether signing is
//!   suspended, kept in the state directory; `continuity_problem`.
//! - `encode`, `hexbytes`: byte encoding of signed inputs; hex in JSON.
//! - `error`: the crate's one error type.
//!
//! The formats are specified in `docs/EXPORT_FORMAT.md`; golden vectors live
//! in `signer/vectors/`, checked by the Rust tests and by
//! `signer/python/verify_export.py`.

mod checked;
mod encode;
pub mod error;
pub mod export;
pub mod export_stream;
pub mod head;
pub mod headcheck;
pub mod hexbytes;
pub mod keyring;
pub mod keys;
pub mod ledger;
mod rowcheck;
mod scan;
mod stream;
pub mod verify;
pub mod witness;

pub use error::{Error, Result};
pub use export::{
    build_export, export_digest, export_digest_input, export_header, sign_export, ExportFile,
    ExportRange, ExportRow, HeadEntry, RowBounds, EXPORT_FORMAT, EXPORT_VERSION, ROW_FIELDS,
};
pub use export_stream::ExportStream;
pub use head::{head_input, sign_head, SignedHead, HEAD_DOMAIN, HEAD_VERSION};
pub use keyring::{key_id, Keyring};
pub use keys::{validate_database, KeyStore, Keys};
pub use verify::{
    parse_export, verify_export, verify_export_bytes, verify_export_file, verify_export_json,
    KeySource, Position, Problem, Report, VerifyOptions,
};
pub use witness::Witness;
