//! egress-collector: receives egress events from Odoo workers and appends
//! them to a hash-chained journal in each Odoo database.
//!
//! Layout:
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
//!   loads them, applies changes, journals them (actor).
//! - `router`: one chain appender per Odoo database.
//! - `appender`: the chain's single writer (actor); `chain`: gap accounting
//!   and hashing as pure functions; `workers`: which workers' rows of
//!   `egress.worker_seen` are due; `store`: every SQL statement.
//! - `databases`: connection pools per database; `watch_hub`: fan-out of
//!   committed rows; `control`: the control socket (status, watch, …);
//!   `export`: signed export files streamed to the control socket.
//! - `head_signer`: signs chain heads on a schedule and on demand (actor).
//! - `setup`: roles, schema, migrations, grants; `verify`: chain checking;
//!   `journal_copy`: the journal's binary COPY data decoded into canonical
//!   encodings, for `verify`.
//! - `config`, `stats`, `error`, and `topology` (all wiring, and shutdown).

pub mod allocator;
pub mod appender;
pub mod attribution;
pub mod catalogue;
pub mod chain;
pub mod config;
pub mod control;
pub mod databases;
pub mod error;
pub mod export;
pub mod head_signer;
pub mod ingest;
pub mod journal_copy;
pub mod link;
pub mod origin;
pub mod policy;
pub mod policy_watcher;
pub mod redaction;
pub mod router;
pub mod salts;
pub mod scrub;
pub mod setup;
pub mod stage;
pub mod stats;
pub mod store;
pub mod topology;
pub mod verify;
pub mod watch_hub;
pub mod workers;
