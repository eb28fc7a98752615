//! The journal's chain, one per database: its single writer and the pure
//! rules it applies.
//!
//! - `appender`: the chain's single writer (actor).
//! - `plan`: gap accounting and hashing as pure functions.
//! - `spool`: the durable spool of what the database cannot take yet.
//! - `workers`: which workers' rows of `egress.worker_seen` are due.

pub mod appender;
pub mod plan;
pub mod spool;
pub mod workers;
