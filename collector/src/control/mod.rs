//! The control socket and what it serves.
//!
//! - `server`: the control socket (status, watch, sign-now, export, …).
//! - `watch_hub`: fan-out of committed rows to `watch` subscribers.

pub mod server;
pub mod watch_hub;
