//! egress-hook: the fire-and-forget sender an audited Odoo worker uses to hand
//! events to the collector. It never blocks, never panics into its caller and
//! never returns an error: an event that cannot be sent is counted, and the
//! counts travel later in a `Drops` message (DESIGN §1.1 and §1.3).
//!
//! Layout:
//! - `client`: `HookClient`, its options and statistics, and fork detection
//!   (a forked child gets a fresh worker without touching its parent's lock).
//! - `body`: a body copied by forensic capture (`CapturedBody`).
//! - `state`: one worker's sending state: socket, per-database sequence
//!   numbers, drop counts and their reports.
//! - `sender`: the outbox around that state, and the sender thread that
//!   sends queued calls off the caller's thread (`HookClient::queue_call`).
//! - `fit`: truncation that makes a message fit in one datagram.
//! - `reason`: why an event was dropped, mapped from the socket error.
//! - `bin/loadgen.rs`: `egress-loadgen`, many clients sending realistic calls.
//!
//! The bytes on the wire are specified in `docs/WIRE_FORMAT.md`.

mod body;
mod client;
mod fit;
mod forks;
mod reason;
mod sender;
mod state;

pub use body::CapturedBody;
pub use client::{HookClient, HookOptions, HookStats};
pub use egress_proto::{Call, ConfigChange, Hello, StackFrame, Trigger, MAX_DATAGRAM_SIZE};
pub use reason::DropReason;

/// Where the collector listens unless configured otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/egress-collector/ingest.sock";
