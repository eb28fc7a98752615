//! egress-collector: receives egress events from Odoo workers and appends
//! them to a hash-chained journal in each Odoo database.
//!
//! Layout (folders in the order an event meets them):
//! - `pipeline/`: ingest → attribution → redaction → router, the stage types
//!   and the links between stages, the per-database policy.
//! - `chain/`: the chain appender (one writer per database) and its pure
//!   gap-accounting and hashing rules.
//! - `db/`: connection pools, setup and migrations, every SQL statement.
//! - `proof/`: head signing, signed export, chain verification.
//! - `control/`: the control socket and the watch fan-out.
//! - `forensic/`: forensic body capture: scope, sealing, intake, reads.
//! - `instance`: the lock that keeps one collector per state directory and
//!   socket.
//! - `config`, `stats`, `error`, `allocator`, and `topology` (all wiring,
//!   and shutdown).

pub mod allocator;
pub mod chain;
pub mod config;
pub mod control;
pub mod db;
pub mod error;
pub mod forensic;
pub mod instance;
pub mod pipeline;
pub mod proof;
pub mod stats;
pub mod topology;
