//! egress-vacuum: retention. Prunes the oldest journal rows of a database
//! once they are older than its `retention_days` (0 keeps everything),
//! never at or after the latest signed head and never before the rollups
//! hold them, through the one privileged database function
//! (`egress.vacuum_journal`, migration 0005), and journals each prune as a
//! `vacuum` entry naming the removed range and the new anchor, from which
//! verification then starts.
//!
//! Layout:
//! - `plan`: the cutoff and the `vacuum` entry's detail, as pure functions.
//! - `store`: every SQL statement: the retention setting, one prune.
//! - `vacuum`: the vacuum actor (daily, and `RunVacuum` on demand).
//! - `error`: the crate's one error type.

pub mod error;
pub mod plan;
pub mod store;
pub mod vacuum;

pub use error::{Error, Result};
pub use plan::VacuumDetail;
pub use vacuum::{DatabasesFn, Options, Outcome, PoolFor, RunVacuum, Vacuum};
