//! PostgreSQL: connection pools, the schema and every statement.
//!
//! - `databases`: connection pools per database.
//! - `setup`: roles, schema, migrations, grants.
//! - `startup`: the start-up check, and database problems explained in one line.
//! - `store`: every SQL statement of the collector.
//! - `journal_copy`: the journal's binary COPY data decoded into canonical
//!   encodings, for `verify`.

pub mod databases;
pub mod journal_copy;
pub mod setup;
pub mod startup;
pub mod store;

/// The role that owns the egress schema and cannot log in: `setup` creates
/// it, and `store` checks that every egress object still belongs to it.
pub const OWNER_ROLE: &str = "egress_owner";

/// The channel that migration 0023's triggers notify when a setting is
/// handed over or the catalogue is edited. Anybody may notify it: a
/// notification is only a hint to re-read the egress tables.
pub const POLICY_CHANNEL: &str = "egress_policy";
/// The migration that makes settings and catalogue changes notify
/// `POLICY_CHANNEL`: a database without it gets them through the poll only.
pub const POLICY_NOTIFY_MIGRATION: i32 = 23;
