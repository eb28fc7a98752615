//! egress-proto: every byte format egress-audit relies on, with no I/O.
//!
//! Layout:
//! - `frame`: the datagram frame (magic, format version, message kind) and the
//!   one place where bincode encodes and decodes, with its size limit (also
//!   the payloads of the collector's spool records).
//! - `event`: the messages a hook sends (`Hello`, `Call`, `Drops`, `ConfigChange`,
//!   and `ForensicBody` while forensic capture is on).
//! - `journal`: the journal row, its canonical encoding and the chain hash.
//! - `fields`: the journal row's one field table (name, column, SQL type,
//!   canonical kind), which every other copy of the field list follows.
//! - `database`: the one rule for a database's name.
//! - `settings`: the audit settings' keys in `ir_config_parameter`, `truthy`.
//! - `time`: microseconds since the epoch to and from `SystemTime`.
//! - `error`: the crate's one error type, and `chain_text` for any error.
//!
//! The byte formats are specified in `docs/WIRE_FORMAT.md` and
//! `docs/JOURNAL_FORMAT.md`; golden vectors live in `proto/vectors/`.

pub mod database;
pub mod error;
pub mod event;
pub mod fields;
pub mod frame;
pub mod journal;
pub mod settings;
pub mod time;

pub use error::Error;
pub use event::{
    Call, ConfigChange, DropCount, Drops, ForensicBody, Hello, SeqCursor, StackFrame, Trigger,
    FORENSIC_CHUNK, FORENSIC_PARTS,
};
pub use frame::{
    decode, decode_record, encode, encode_record, Message, MessageKind, FORMAT_VERSION, MAGIC,
    MAX_DATAGRAM_SIZE, MAX_RECORD_SIZE,
};
pub use journal::{chain_hash, EntryKind, JournalRow, CHAIN_LOCK_KEY, GENESIS_HASH};
