//! Forensic body capture (DESIGN §7, docs/SECURITY.md "Forensic capture"):
//! off by default; switched per database for a scope and a bounded time;
//! bodies sealed at rest and released only after their read is journaled.
//!
//! Layout:
//! - `scope`: what capture covers (host, addon, channel), until when, and
//!   the state file workers poll to learn it.
//! - `seal`: the per-database key in the state directory and the AEAD that
//!   binds a body to its call's journal row.
//! - `sql`: every statement on `egress.forensic_state`, `egress.forensic_body`
//!   and the forensic journal entries.
//! - `service`: enable, disable, status, read and expiry, as the control
//!   socket asks for them; the one place that journals forensic entries.
//! - `intake`: the task that reassembles `ForensicBody` chunks from ingest,
//!   waits for the call's row and stores the sealed body.

pub mod intake;
pub mod scope;
pub mod seal;
pub mod service;
pub mod sql;

pub use intake::{spawn_intake, IntakeSender};
pub use scope::{parse_duration, Scope};
pub use service::{Actor, Forensic};
