//! Collector configuration: one `<Stage>Config` per stage, read from TOML,
//! then overridden by `EGRESS_*` environment variables and flags (flags win).
//! Every field's doc comment is its user documentation; `validate` runs once.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub ingest: IngestConfig,
    pub database: DatabaseConfig,
    pub chain: ChainConfig,
    pub control: ControlConfig,
    pub policy: PolicyConfig,
    pub signer: SignerConfig,
    pub rollup: RollupConfig,
    pub vacuum: VacuumConfig,
    pub state: StateConfig,
    pub spool: SpoolConfig,
    pub forensic: ForensicConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Unix datagram socket the Odoo workers send to.
    pub socket: PathBuf,
    /// Permissions of the socket file, in octal.
    pub socket_mode: String,
    /// Group given to the socket file (e.g. the group Odoo runs as).
    pub socket_group: Option<String>,
    /// Sender uids accepted, as the kernel reports them. Empty: only the
    /// collector's own uid.
    pub allow_uids: Vec<u32>,
    /// Batches the attribution stage may hold before ingest counts drops.
    pub mailbox_batches: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Connection string (libpq key=value or URL); `{db}` is replaced by each
    /// event's Odoo database, so each database keeps its own journal.
    pub url: String,
    /// Database for events that name none.
    pub default_db: String,
    /// Most databases this collector writes to.
    pub max_databases: usize,
    /// Connections per database.
    pub pool_size: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// Most rows written in one transaction.
    pub batch_max_rows: usize,
    /// How often held rows are written, in milliseconds.
    pub flush_interval_ms: u64,
    /// Events held per database while it cannot be written; beyond this they
    /// become a gap entry with the exact count.
    pub queue_max: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Unix stream socket for `watch` and `status`.
    pub socket: PathBuf,
    /// Uids allowed on the control socket besides root and the collector's own.
    pub allow_uids: Vec<u32>,
    /// Uids allowed only what the Odoo addon's export wizard needs (`export`,
    /// `pubkey`, `sign-now`): Odoo's user, which runs the third-party code
    /// this service audits, so it must not prune the journal (`vacuum-now`)
    /// nor read every database's events (`watch`, `status`).
    pub export_uids: Vec<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// How often each database's audit settings and components catalogue
    /// are re-read anyway, in milliseconds: the safety net behind the
    /// change notifications, which apply a change at once. A database set
    /// up before notifications (migration 0023) gets its changes this way.
    pub poll_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignerConfig {
    /// How often each database's chain head is signed, in seconds
    /// (1 to 86400: at least daily).
    pub interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollupConfig {
    /// How often the sums of committed rows are written to the rollups, in
    /// milliseconds (100 to 60000); the report is at most this far behind.
    pub flush_interval_ms: u64,
    /// Most journal rows summed straight from the journal in one
    /// transaction when catching up (after a restart, or rows another
    /// collector appended).
    pub catch_up_rows: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VacuumConfig {
    /// How often each database's journal is pruned to its
    /// `mit_network_audit.retention_days`, in seconds (60 to 86400; the
    /// first run is a minute after start).
    pub interval_secs: u64,
    /// Most rows removed in one transaction, each journaled as one
    /// `vacuum` entry.
    pub batch_rows: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Directory for the collector's own state (keys, salts, the spool,
    /// the instance lock), mode 0700.
    pub dir: PathBuf,
    /// This collector's name in the journal (`collector` of every row it
    /// appends), in the signed heads and in `egress-collector keys`: one
    /// per host (or pod) when several collectors write one database.
    /// Empty (the default): the host name.
    pub collector_id: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Most bytes the durable spool (`<state dir>/spool/`) may hold for all
    /// databases together, while a database cannot be written (down, full,
    /// failing) or across a restart. Beyond it, events are shed and
    /// journaled as a `spool_full` gap. 0 (the default): a tenth of the
    /// state directory's file system, at most 4 GiB, at least 64 MiB.
    pub max_bytes: u64,
}

/// The automatic `spool.max_bytes`: a tenth of the file system that holds
/// `dir`, between 64 MiB and 4 GiB.
pub fn auto_spool_bytes(dir: &std::path::Path) -> u64 {
    const MIN: u64 = 64 << 20;
    const MAX: u64 = 4 << 30;
    nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks().saturating_mul(s.fragment_size()) / 10)
        .unwrap_or(MIN)
        .clamp(MIN, MAX)
}

impl SpoolConfig {
    /// The budget in bytes, `max_bytes` or the automatic one.
    pub fn budget(&self, state_dir: &std::path::Path) -> u64 {
        if self.max_bytes > 0 {
            self.max_bytes
        } else {
            auto_spool_bytes(state_dir)
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForensicConfig {
    /// Longest time forensic capture may be switched on for at once
    /// (`forensic enable --for`), like 7d, 48h or 30m.
    pub max_duration: String,
    /// Bytes of each body (request, response) captured at most; beyond it a
    /// body is truncated and flagged, with the SHA-256 of the whole.
    pub max_body_bytes: u64,
    /// Directory where workers read whether capture is on (`<db>.json`,
    /// world-readable, written by the collector only). Empty: `forensic/`
    /// beside the ingest socket.
    pub share_dir: PathBuf,
    /// Uids that may switch and read forensic capture on the control socket
    /// on behalf of an Odoo user (Odoo's, for the Forensic page). Empty: only
    /// the operator (control.allow_uids) can.
    pub odoo_uids: Vec<u32>,
}

const fn default_forensic_max_body_bytes() -> u64 {
    64 * 1024
}

impl Default for ForensicConfig {
    fn default() -> Self {
        ForensicConfig {
            max_duration: "7d".into(),
            max_body_bytes: default_forensic_max_body_bytes(),
            share_dir: PathBuf::new(),
            odoo_uids: Vec::new(),
        }
    }
}

impl ForensicConfig {
    pub fn max_duration(&self) -> Result<Duration> {
        crate::forensic::parse_duration(&self.max_duration)
            .map_err(|e| Error::Config(format!("forensic.max_duration: {e}")))
    }

    /// `share_dir`, or `forensic/` beside the ingest socket.
    pub fn share_dir(&self, ingest_socket: &std::path::Path) -> PathBuf {
        if self.share_dir.as_os_str().is_empty() {
            ingest_socket
                .parent()
                .unwrap_or(std::path::Path::new("/"))
                .join("forensic")
        } else {
            self.share_dir.clone()
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or a tracing filter directive.
    pub level: String,
}

const fn default_mailbox_batches() -> usize {
    64
}
const fn default_max_databases() -> usize {
    64
}
const fn default_pool_size() -> usize {
    2
}
const fn default_batch_max_rows() -> usize {
    4096
}
const fn default_flush_interval_ms() -> u64 {
    20
}
const fn default_queue_max() -> usize {
    100_000
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            socket: "/run/egress-collector/ingest.sock".into(),
            socket_mode: "0660".into(),
            socket_group: None,
            allow_uids: Vec::new(),
            mailbox_batches: default_mailbox_batches(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "host=/var/run/postgresql user=egress_collector dbname={db}".into(),
            default_db: "odoo".into(),
            max_databases: default_max_databases(),
            pool_size: default_pool_size(),
        }
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            batch_max_rows: default_batch_max_rows(),
            flush_interval_ms: default_flush_interval_ms(),
            queue_max: default_queue_max(),
        }
    }
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: "/run/egress-collector/control.sock".into(),
            allow_uids: Vec::new(),
            export_uids: Vec::new(),
        }
    }
}

const fn default_poll_interval_ms() -> u64 {
    60_000
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            poll_interval_ms: default_poll_interval_ms(),
        }
    }
}

impl PolicyConfig {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

const fn default_sign_interval_secs() -> u64 {
    600
}

impl Default for SignerConfig {
    fn default() -> Self {
        SignerConfig {
            interval_secs: default_sign_interval_secs(),
        }
    }
}

impl SignerConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
}

const fn default_rollup_flush_interval_ms() -> u64 {
    2000
}
const fn default_catch_up_rows() -> i64 {
    100_000
}
const fn default_vacuum_interval_secs() -> u64 {
    86_400
}
const fn default_vacuum_batch_rows() -> i64 {
    500_000
}

impl Default for RollupConfig {
    fn default() -> Self {
        RollupConfig {
            flush_interval_ms: default_rollup_flush_interval_ms(),
            catch_up_rows: default_catch_up_rows(),
        }
    }
}

impl RollupConfig {
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

impl Default for VacuumConfig {
    fn default() -> Self {
        VacuumConfig {
            interval_secs: default_vacuum_interval_secs(),
            batch_rows: default_vacuum_batch_rows(),
        }
    }
}

impl StateConfig {
    /// The collector's name: `collector_id`, else the host name.
    pub fn collector_id(&self) -> String {
        if self.collector_id.is_empty() {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into())
        } else {
            self.collector_id.clone()
        }
    }
}

impl VacuumConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: "/var/lib/egress-collector".into(),
            collector_id: String::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

/// The levels `log.level` may name on its own; anything else must be a
/// filter with a `=` (`info,egress_collector=debug`). A bare word is a
/// tracing target, so `verbose` would silently turn every log line off.
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

impl LogConfig {
    fn check(&self) -> Result<()> {
        let level = self.level.trim();
        if level.contains('=') || LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Ok(());
        }
        Err(Error::Config(format!(
            "log.level {level:?} is not a level: give one of {} (--log-level, EGRESS_LOG), \
             or a filter such as \"info,egress_collector=debug\"",
            LOG_LEVELS.join(", ")
        )))
    }
}

impl ChainConfig {
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

impl IngestConfig {
    pub fn mode(&self) -> Result<u32> {
        u32::from_str_radix(self.socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| {
                Error::Config(format!(
                    "ingest.socket_mode {:?} is not an octal mode like \"0660\"",
                    self.socket_mode
                ))
            })
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::Config(m));
        self.ingest.mode()?;
        if !self.database.url.contains("{db}") {
            return fail(
                "database.url must contain {db}, so each Odoo database keeps its own journal"
                    .into(),
            );
        }
        if !crate::db::databases::valid_database_name(&self.database.default_db) {
            return fail(format!(
                "database.default_db {:?} is not a valid database name: use {}",
                self.database.default_db,
                egress_proto::database::DATABASE_NAME_RULE
            ));
        }
        crate::db::databases::config_for(&self.database.url, &self.database.default_db)?;
        let id = &self.state.collector_id;
        if id.len() > 200 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return fail(format!(
                "state.collector_id {id:?} must be at most 200 characters, without spaces or control characters (e.g. the host name)"
            ));
        }
        let positive = [
            ("ingest.mailbox_batches", self.ingest.mailbox_batches),
            ("database.max_databases", self.database.max_databases),
            ("database.pool_size", self.database.pool_size),
            ("chain.batch_max_rows", self.chain.batch_max_rows),
        ];
        for (name, value) in positive {
            if value == 0 {
                return fail(format!("{name} must be at least 1"));
            }
        }
        if !(1..=10_000).contains(&self.chain.flush_interval_ms) {
            return fail("chain.flush_interval_ms must be between 1 and 10000".into());
        }
        if !(100..=3_600_000).contains(&self.policy.poll_interval_ms) {
            return fail(
                "policy.poll_interval_ms must be between 100 and 3600000 (at least hourly)".into(),
            );
        }
        if !(1..=86_400).contains(&self.signer.interval_secs) {
            return fail("signer.interval_secs must be between 1 and 86400 (heads are signed at least daily)".into());
        }
        if !(100..=60_000).contains(&self.rollup.flush_interval_ms) {
            return fail("rollup.flush_interval_ms must be between 100 and 60000".into());
        }
        self.forensic.max_duration()?;
        if !(1..=16 << 20).contains(&self.forensic.max_body_bytes) {
            return fail("forensic.max_body_bytes must be between 1 and 16777216".into());
        }
        if self.rollup.catch_up_rows < 1 {
            return fail("rollup.catch_up_rows must be at least 1".into());
        }
        if !(60..=86_400).contains(&self.vacuum.interval_secs) {
            return fail(
                "vacuum.interval_secs must be between 60 and 86400 (retention runs at least daily)"
                    .into(),
            );
        }
        if self.vacuum.batch_rows < 1 {
            return fail("vacuum.batch_rows must be at least 1".into());
        }
        self.log.check()?;
        if self.chain.queue_max < self.chain.batch_max_rows {
            return fail("chain.queue_max must be at least chain.batch_max_rows".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_key_name() {
        let unknown = Config::from_toml("[ingest]\nsockett = \"/x\"")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("sockett"), "{unknown}");
        let mut config = Config::from_toml("[chain]\nflush_interval_ms = 0").unwrap();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("flush_interval_ms"));
        config = Config::from_toml("[database]\nurl = \"host=/tmp dbname=odoo\"").unwrap();
        assert!(config.validate().unwrap_err().to_string().contains("{db}"));
        config = Config::from_toml("[log]\nlevel = \"verbose\"").unwrap();
        let level = config.validate().unwrap_err().to_string();
        assert!(level.contains("log.level \"verbose\""), "{level}");
        for good in ["warn", "DEBUG", "info,egress_collector=debug"] {
            config.log.level = good.into();
            config.validate().unwrap();
        }
        config = Config::from_toml("[ingest]\nsocket_mode = \"999\"").unwrap();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("socket_mode"));
    }
}
