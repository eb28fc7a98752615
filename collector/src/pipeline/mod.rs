//! The pipeline an event travels, in order: ingest → attribution → redaction
//! → router (then `chain`), with the stage types and the links between them.
//!
//! - `stage`: the types flowing between stages (`RawCall → AttributedCall →
//!   RedactedEntry`), in-band loss summaries, the `Batch` and `Drain` messages.
//! - `link`: bounded hand-off between stages; a full mailbox becomes a loss.
//! - `ingest`: the datagram socket, kernel credentials, decoding.
//! - `attribution`: stack frames → addon, destination → component (actor +
//!   `attribute`); `origin`: where a frame's code comes from; `catalogue`:
//!   the Egress Components catalogue.
//! - `redaction`: the single policy point before disk (actor + `redact`);
//!   `scrub`: secret-looking text → placeholders; `salts`: fingerprint salts.
//! - `policy`: each database's settings and catalogue; `policy_watcher`:
//!   loads them, applies changes, journals them (actor); `policy_listener`:
//!   hears each database's change notifications and asks it to re-read.
//! - `router`: one chain appender per Odoo database.
//! - `peers`: per-worker state bounded per sender uid, forgotten when silent.

pub mod attribution;
pub mod catalogue;
pub mod ingest;
pub mod link;
pub mod origin;
pub mod peers;
pub mod policy;
pub mod policy_listener;
pub mod policy_watcher;
pub mod redaction;
pub mod router;
pub mod salts;
pub mod scrub;
pub mod stage;
pub mod streams;
