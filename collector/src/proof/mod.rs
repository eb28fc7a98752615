//! What lets an outsider check the journal.
//!
//! - `head_signer`: signs chain heads on a schedule and on demand (actor).
//! - `export`: signed export files streamed to the control socket.
//! - `verify`: chain checking against the database.

pub mod export;
pub mod head_signer;
pub mod verify;
