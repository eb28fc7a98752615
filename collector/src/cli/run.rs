//! `egress-collector run`: every setting from the TOML file, overridden by
//! `EGRESS_*` variables and flags.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use egress_collector::config::Config;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration file (see docs/CONFIGURATION.md).
    #[arg(long, env = "EGRESS_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration (file, variables and flags) and exit: 0 when
    /// it is valid, 1 with the offending key otherwise. Starts nothing.
    #[arg(long)]
    check: bool,
    /// [ingest] socket: datagram socket the Odoo workers send to.
    #[arg(long, env = "EGRESS_SOCKET")]
    socket: Option<PathBuf>,
    /// [ingest] socket_mode: permissions of the socket file, octal.
    #[arg(long, env = "EGRESS_SOCKET_MODE")]
    socket_mode: Option<String>,
    /// [ingest] socket_group: group of the socket file.
    #[arg(long, env = "EGRESS_SOCKET_GROUP")]
    socket_group: Option<String>,
    /// [ingest] allow_uids: sender uid allowed (repeat; env: comma-separated).
    #[arg(long = "allow-uid", env = "EGRESS_ALLOW_UIDS", value_delimiter = ',')]
    allow_uids: Option<Vec<u32>>,
    /// [ingest] mailbox_batches: batches a stage may hold before drops are counted.
    #[arg(long, env = "EGRESS_MAILBOX_BATCHES")]
    mailbox_batches: Option<usize>,
    /// [database] url: connection string with {db} for the Odoo database.
    #[arg(long, env = "EGRESS_DATABASE_URL")]
    database_url: Option<String>,
    /// [database] default_db: database for events that name none.
    #[arg(long, env = "EGRESS_DEFAULT_DB")]
    default_db: Option<String>,
    /// [database] max_databases.
    #[arg(long, env = "EGRESS_MAX_DATABASES")]
    max_databases: Option<usize>,
    /// [database] pool_size: connections per database.
    #[arg(long, env = "EGRESS_POOL_SIZE")]
    pool_size: Option<usize>,
    /// [chain] batch_max_rows: most rows per transaction.
    #[arg(long, env = "EGRESS_BATCH_MAX_ROWS")]
    batch_max_rows: Option<usize>,
    /// [chain] flush_interval_ms.
    #[arg(long, env = "EGRESS_FLUSH_INTERVAL_MS")]
    flush_interval_ms: Option<u64>,
    /// [chain] queue_max: events held per database while it is unreachable.
    #[arg(long, env = "EGRESS_QUEUE_MAX")]
    queue_max: Option<usize>,
    /// [control] socket: stream socket for watch and status.
    #[arg(long, env = "EGRESS_CONTROL")]
    control: Option<PathBuf>,
    /// [control] allow_uids: uid allowed on the control socket (repeat).
    #[arg(
        long = "control-allow-uid",
        env = "EGRESS_CONTROL_ALLOW_UIDS",
        value_delimiter = ','
    )]
    control_allow_uids: Option<Vec<u32>>,
    /// [control] export_uids: uid allowed only export, pubkey and sign-now on
    /// the control socket (Odoo's; repeat).
    #[arg(
        long = "control-export-uid",
        env = "EGRESS_CONTROL_EXPORT_UIDS",
        value_delimiter = ','
    )]
    control_export_uids: Option<Vec<u32>>,
    /// [policy] poll_interval_ms: how often settings and catalogue are re-read
    /// anyway (the safety net behind change notifications).
    #[arg(long, env = "EGRESS_POLICY_POLL_MS")]
    policy_poll_ms: Option<u64>,
    /// [signer] interval_secs: how often chain heads are signed.
    #[arg(long, env = "EGRESS_SIGN_INTERVAL_SECS")]
    sign_interval_secs: Option<u64>,
    /// [rollup] flush_interval_ms: how often sums reach the rollups.
    #[arg(long, env = "EGRESS_ROLLUP_FLUSH_MS")]
    rollup_flush_ms: Option<u64>,
    /// [rollup] catch_up_rows: most rows summed from the journal per transaction.
    #[arg(long, env = "EGRESS_ROLLUP_CATCH_UP_ROWS")]
    rollup_catch_up_rows: Option<i64>,
    /// [vacuum] interval_secs: how often retention prunes each journal.
    #[arg(long, env = "EGRESS_VACUUM_INTERVAL_SECS")]
    vacuum_interval_secs: Option<u64>,
    /// [vacuum] batch_rows: most rows removed per transaction (one vacuum entry each).
    #[arg(long, env = "EGRESS_VACUUM_BATCH_ROWS")]
    vacuum_batch_rows: Option<i64>,
    /// [state] dir: the collector's own state (keys, salts).
    #[arg(long, env = "EGRESS_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// [state] collector_id: this collector's name in the journal, the
    /// signed heads and `keys` (default: the host name).
    #[arg(long, env = "EGRESS_COLLECTOR_ID")]
    collector_id: Option<String>,
    /// [spool] max_bytes: most bytes spooled while a database cannot be written.
    #[arg(long, env = "EGRESS_SPOOL_MAX_BYTES")]
    spool_max_bytes: Option<u64>,
    /// [forensic] max_duration: longest forensic capture (like 7d, 48h, 30m).
    #[arg(long, env = "EGRESS_FORENSIC_MAX_DURATION")]
    forensic_max_duration: Option<String>,
    /// [forensic] max_body_bytes: bytes of each body captured at most.
    #[arg(long, env = "EGRESS_FORENSIC_MAX_BODY_BYTES")]
    forensic_max_body_bytes: Option<u64>,
    /// [forensic] share_dir: where workers read whether capture is on.
    #[arg(long, env = "EGRESS_FORENSIC_SHARE_DIR")]
    forensic_share_dir: Option<PathBuf>,
    /// [forensic] odoo_uids: uid that may use forensic capture for Odoo users (repeat).
    #[arg(
        long = "forensic-odoo-uid",
        env = "EGRESS_FORENSIC_ODOO_UIDS",
        value_delimiter = ','
    )]
    forensic_odoo_uids: Option<Vec<u32>>,
    /// [log] level: error, warn, info, debug, or a tracing filter.
    #[arg(long, env = "EGRESS_LOG")]
    log_level: Option<String>,
}

/// Appends each setting's default to its flag's help (`run --help`),
/// read from `Config::default()` through the `[section] key:` that opens
/// the help text, so the two cannot disagree.
pub fn with_defaults(command: clap::Command) -> clap::Command {
    let defaults = toml::Value::try_from(Config::default()).ok();
    let ids: Vec<clap::Id> = command
        .get_arguments()
        .map(|a| a.get_id().clone())
        .collect();
    ids.into_iter().fold(command, |command, id| {
        command.mut_arg(id, |arg| {
            let Some(help) = arg.get_help().map(|h| h.to_string()) else {
                return arg;
            };
            match config_key(&help)
                .and_then(|(section, key)| defaults.as_ref()?.get(section)?.get(key))
            {
                Some(value) => arg.help(format!("{help} [default: {}]", show(value))),
                None => arg,
            }
        })
    })
}

/// `("ingest", "socket")` from a help text opening with `[ingest] socket`.
pub fn config_key(help: &str) -> Option<(&str, &str)> {
    let rest = help.strip_prefix('[')?;
    let (section, rest) = rest.split_once("] ")?;
    let key = rest.split([':', '.', ' ']).next()?;
    Some((section, key))
}

fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) if a.is_empty() => "none".into(),
        other => other.to_string(),
    }
}

fn load(args: RunArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            Config::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Config::default(),
    };
    macro_rules! set {
        ($($arg:ident => $($field:ident).+;)*) => {
            $(if let Some(value) = args.$arg { config.$($field).+ = value; })*
        };
    }
    set! {
        socket => ingest.socket;
        socket_mode => ingest.socket_mode;
        allow_uids => ingest.allow_uids;
        mailbox_batches => ingest.mailbox_batches;
        database_url => database.url;
        default_db => database.default_db;
        max_databases => database.max_databases;
        pool_size => database.pool_size;
        batch_max_rows => chain.batch_max_rows;
        flush_interval_ms => chain.flush_interval_ms;
        queue_max => chain.queue_max;
        control => control.socket;
        control_allow_uids => control.allow_uids;
        control_export_uids => control.export_uids;
        policy_poll_ms => policy.poll_interval_ms;
        sign_interval_secs => signer.interval_secs;
        rollup_flush_ms => rollup.flush_interval_ms;
        rollup_catch_up_rows => rollup.catch_up_rows;
        vacuum_interval_secs => vacuum.interval_secs;
        vacuum_batch_rows => vacuum.batch_rows;
        state_dir => state.dir;
        collector_id => state.collector_id;
        spool_max_bytes => spool.max_bytes;
        forensic_max_duration => forensic.max_duration;
        forensic_max_body_bytes => forensic.max_body_bytes;
        forensic_share_dir => forensic.share_dir;
        forensic_odoo_uids => forensic.odoo_uids;
        log_level => log.level;
    }
    if args.socket_group.is_some() {
        config.ingest.socket_group = args.socket_group;
    }
    config.validate()?;
    Ok(config)
}

pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let check = args.check;
    let source = args
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the defaults".into());
    let config = load(args)?;
    if check {
        println!("configuration OK ({source}, with EGRESS_* variables and flags applied)");
        return Ok(ExitCode::SUCCESS);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .context("log.level is not a valid level or filter")?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    egress_collector::topology::run(config)?;
    Ok(ExitCode::SUCCESS)
}
