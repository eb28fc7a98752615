//! egress-rollup: the Trust Report's data. Committed journal rows are
//! summed per UTC day × attributed addon × component × class × channel ×
//! host (calls, bytes out and in, errors, self-egress calls, first and last
//! seen), gaps per day and reason, and settings changes and vacuums kept
//! whole. The sums live in tables of their own that the retention vacuum
//! never prunes, so they outlive the detail rows; a watermark seq, moved in
//! the same transaction, says which rows they hold.
//!
//! Layout:
//! - `delta`: what rows add to the rollups, as pure functions.
//! - `pending`: deltas waiting by seq range, and the flush plan from the
//!   watermark to the head (apply deltas, fold the rest from the journal).
//! - `rollup`: the rollup actor, its messages, and `Feed`, the appender's
//!   side of the hand-off.
//! - `store`: every SQL statement: the flush transaction and the report's reads.
//! - `report`: the Trust Report's versioned model (docs/REPORT_FORMAT.md),
//!   its verdict and its assembly.
//! - `stats`: counters for `egress-collector status`; `error`: the one error type.

pub mod delta;
pub mod error;
pub mod pending;
pub mod report;
pub mod rollup;
pub mod stats;
pub mod store;

pub use delta::Delta;
pub use error::{Error, Result};
pub use report::{Report, Since, REPORT_FORMAT, REPORT_VERSION};
pub use rollup::{Feed, FlushRollups, Options, PoolFor, Rollup, RowsCommitted};
pub use stats::Stats;
pub use store::Source;
