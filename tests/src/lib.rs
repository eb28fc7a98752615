//! egress-tests: the harness every end-to-end test uses, with nothing mocked.
//!
//! Layout:
//! - `bins`: where the built `egress-collector` and `egress-loadgen` binaries are.
//! - `scratch`: a per-test temporary directory, kept when a test fails.
//! - `db`: `TestDb`, a fresh PostgreSQL database prepared by `egress-collector
//!   setup` and dropped afterwards, and `Sql`, a blocking SQL client.
//! - `collector`: `Collector`, the real service process (start, SIGTERM, kill -9,
//!   restart), its `status`, `verify` and `watch` subcommands, and any other
//!   through its control socket (`cli`); `send_calls` through a real hook
//!   until journaled, and `output_text` of a finished command.
//! - `loadgen`: runs `egress-loadgen` and parses its report.
//! - `rollups`: the rollup invariant (rollups = the journal's aggregate, row
//!   by row, in SQL) and the rollup watermark.
//! - `pg_cluster`: a private PostgreSQL cluster a test can stop and start.
//! - `datagram`: a raw datagram sender for hand-made (and malformed) frames.
//! - `wait`: bounded polling, and the lock that runs tests one at a time.

pub mod bins;
pub mod collector;
pub mod datagram;
pub mod db;
pub mod loadgen;
pub mod pg_cluster;
pub mod rollups;
pub mod scratch;
pub mod wait;

pub use collector::{output_text, verify, Collector, CollectorBuilder, Status, Verify, Watch};
pub use datagram::DatagramSender;
pub use db::{Sql, TestDb};
pub use loadgen::{Loadgen, LoadgenReport, RunningLoadgen};
pub use pg_cluster::PgCluster;
pub use scratch::Scratch;
pub use wait::{require_dgram_qlen, serial, wait_for_value, wait_until};

/// Gap reasons a hook reports about itself (DESIGN §3); every other reason
/// is the collector's.
pub const HOOK_GAP_REASONS: &[&str] = &[
    "socket_missing",
    "buffer_full",
    "too_large",
    "permission_denied",
    "send_error",
];

/// Socket directory of the local PostgreSQL: `PGHOST` when set (a private
/// cluster, as `scripts/test-fresh-host.sh` starts), else the system's.
pub fn pg_socket_dir() -> String {
    std::env::var("PGHOST").unwrap_or_else(|_| "/var/run/postgresql".to_owned())
}
