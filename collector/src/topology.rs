//! All wiring lives here: which actor runs on which thread, who sends to
//! whom, and the order of shutdown (stop receiving, let stages flush, stop).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Arbiter, Context, Recipient};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::chain::appender::ChainAppender;
use crate::chain::spool::{self, Budget, Spool};
use crate::config::Config;
use crate::control::server::{self as control, ControlServer};
use crate::control::watch_hub::WatchHub;
use crate::db::databases::Databases;
use crate::db::startup::Readiness;
use crate::error::{Error, Result};
use crate::forensic::{spawn_intake, Forensic};
use crate::instance::InstanceLock;
use crate::pipeline::attribution::{Attribution, UseWatcher};
use crate::pipeline::ingest::{self, IngestSettings};
use crate::pipeline::link::Link;
use crate::pipeline::policy::PolicyMap;
use crate::pipeline::policy_watcher::{PolicyWatcher, ReportedChanges};
use crate::pipeline::redaction::Redaction;
use crate::pipeline::router::{OpenDatabases, Router};
use crate::pipeline::salts::Salts;
use crate::pipeline::stage::DatabaseState;
use crate::proof::head_signer::{HeadSigner, Signing};
use crate::stats::Stats;
use egress_rollup::{FlushRollups, Rollup};
use egress_vacuum::Vacuum;

/// How long shutdown may take before the collector exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);
/// Deltas the rollup's mailbox holds; beyond it they are dropped (and their
/// rows folded from the journal later).
const ROLLUP_MAILBOX: usize = 1024;
/// How often a database with nothing announced is checked for rows no
/// delta covers (another collector's, the vacuum's own entry).
const ROLLUP_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// How long shutdown gives the rollups to take in what was just committed.
const ROLLUP_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// Runs the service until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<()> {
    config.validate()?;
    if let Some(group) = &config.ingest.socket_group {
        ingest::socket_gid(group)?;
    }
    prepare_state_dir(&config)?;
    // Before anything is bound: a second collector must not take over the
    // first one's sockets or spool.
    let _instance = InstanceLock::acquire(&config.state.dir, &config.ingest.socket)?;
    if let Readiness::Unreachable(problem) = check_default_database(&config)? {
        error!(
            db = %config.database.default_db,
            spool = %config.state.dir.join(spool::SPOOL_DIR).display(),
            "{problem}. Starting anyway: events wait in the spool and are journaled once it answers."
        );
    }
    warn_if_queue_short();
    let own_uid = nix::unistd::getuid().as_raw();
    let mut allow_uids: HashSet<u32> = config.ingest.allow_uids.iter().copied().collect();
    if allow_uids.is_empty() {
        allow_uids.insert(own_uid);
    }
    let settings = IngestSettings {
        socket: config.ingest.socket.clone(),
        mode: config.ingest.mode()?,
        group: config.ingest.socket_group.clone(),
        allow_uids,
        default_db: config.database.default_db.clone(),
        backlog_limit: config.chain.queue_max / 2,
        forensic: None,
    };
    let socket = ingest::bind(&settings)?;
    let system = actix::System::new();
    system.block_on(wire_and_wait(config, settings, socket, own_uid))
}

async fn wire_and_wait(
    config: Config,
    settings: IngestSettings,
    socket: std::os::unix::net::UnixDatagram,
    own_uid: u32,
) -> Result<()> {
    let shared = Shared::new(&config)?;
    let storage = start_storage(&config, &shared);
    let pipeline = start_pipeline(&config, &shared, &storage, settings, socket);
    start_control(&config, &shared, &storage, own_uid)?;
    info!(ingest = %config.ingest.socket.display(), control = %config.control.socket.display(),
        "Collector ready.");

    wait_for_signal().await?;
    shut_down(&config, &shared, storage, pipeline).await;
    Ok(())
}

/// What every part of the collector is given.
struct Shared {
    stats: Arc<Stats>,
    /// Watchers of appended rows (`egress-collector watch`).
    watch: WatchHub,
    /// One connection pool per Odoo database, opened on first use.
    databases: Arc<Databases>,
    /// Rollups and vacuum reach each database through the same pools.
    pools: egress_rollup::PoolFor,
    /// Batches each stage's mailbox takes (`ingest.mailbox_batches`).
    mailbox: usize,
    /// Forensic capture: fed by ingest, switched and read by the control socket.
    forensic: Arc<Forensic>,
}

impl Shared {
    fn new(config: &Config) -> Result<Self> {
        let databases = Arc::new(Databases::new(
            &config.database.url,
            config.database.pool_size,
        )?);
        let pools: egress_rollup::PoolFor = {
            let databases = databases.clone();
            Arc::new(move |database: &str| databases.pool(database).map_err(|e| e.to_string()))
        };
        let forensic = Forensic::new(
            databases.clone(),
            config.forensic.clone(),
            config.state.dir.clone(),
            config.forensic.share_dir(&config.ingest.socket),
            config.state.collector_id(),
        );
        Ok(Shared {
            stats: Arc::new(Stats::default()),
            watch: WatchHub::new(1024),
            databases,
            pools,
            mailbox: config.ingest.mailbox_batches,
            forensic,
        })
    }
}

/// The chain's side: the rollups, and the router that starts one appender
/// per database.
struct Storage {
    rollup: actix::Addr<Rollup>,
    rollup_stats: Arc<egress_rollup::Stats>,
    router: actix::Addr<Router>,
}

/// Starts the rollups and the router (appenders start with their
/// database's first event), and replays what an earlier run spooled.
fn start_storage(config: &Config, shared: &Shared) -> Storage {
    let mailbox = shared.mailbox;
    let rollup_stats = Arc::new(egress_rollup::Stats::default());
    let rollup = Rollup::create({
        let options = egress_rollup::Options {
            flush_interval: config.rollup.flush_interval(),
            check_interval: ROLLUP_CHECK_INTERVAL,
            max_fold_rows: config.rollup.catch_up_rows,
        };
        let (pools, stats) = (shared.pools.clone(), rollup_stats.clone());
        let known = [config.database.default_db.clone()];
        move |ctx: &mut Context<Rollup>| {
            ctx.set_mailbox_capacity(ROLLUP_MAILBOX);
            Rollup::new(pools, options, stats, &known)
        }
    });
    let feed = egress_rollup::Feed::new(rollup.clone().recipient(), rollup_stats.clone());

    // Router and appenders share this (main) thread with the control socket:
    // their work is I/O-bound and one writer per database is the rule.
    let budget = Budget::new(config.spool.budget(&config.state.dir));
    info!(max_bytes = budget.max(), dir = %config.state.dir.join(spool::SPOOL_DIR).display(), "Spool ready.");
    let spawn_appender = {
        let (databases, chain, stats, watch, state_dir) = (
            shared.databases.clone(),
            config.chain.clone(),
            shared.stats.clone(),
            shared.watch.clone(),
            config.state.dir.clone(),
        );
        let collector = config.state.collector_id();
        Box::new(move |database: &str, router: Recipient<DatabaseState>| {
            let appender = ChainAppender::new(
                database.to_owned(),
                databases.clone(),
                chain.clone(),
                collector.clone(),
                stats.clone(),
                watch.clone(),
                feed.clone(),
                Spool::open(&state_dir, database, budget.clone()),
            )
            .reporting_to(router);
            let addr = ChainAppender::create(|ctx: &mut Context<ChainAppender>| {
                ctx.set_mailbox_capacity(mailbox);
                appender
            });
            (addr.clone().recipient(), addr.recipient())
        })
    };
    let router = Router::create({
        let (stats, max) = (shared.stats.clone(), config.database.max_databases);
        move |ctx: &mut Context<Router>| {
            ctx.set_mailbox_capacity(mailbox);
            Router::new(spawn_appender, max, mailbox, stats)
        }
    });
    // What an earlier run spooled is replayed now, before anything newer
    // for its database, even if no event for it ever comes again.
    let spooled = Spool::databases_spooled(&config.state.dir);
    if !spooled.is_empty() {
        router.do_send(OpenDatabases(spooled));
    }
    Storage {
        rollup,
        rollup_stats,
        router,
    }
}

/// The stages before the router, on a thread of their own.
struct Pipeline {
    /// Ingest, attribution and redaction's thread.
    arbiter: Arbiter,
    /// Tells ingest to stop reading; `ingest_finished` says it has, and
    /// that what it read was handed on.
    stop_ingest: oneshot::Sender<()>,
    ingest_finished: oneshot::Receiver<()>,
}

/// Starts redaction, attribution (with its policy watcher) and ingest on
/// the socket, each handing on to the one before it was started.
fn start_pipeline(
    config: &Config,
    shared: &Shared,
    storage: &Storage,
    mut settings: IngestSettings,
    socket: std::os::unix::net::UnixDatagram,
) -> Pipeline {
    let mailbox = shared.mailbox;
    // Ingest, attribution and redaction share one thread: ingest reads
    // between their batches (it hands on at most 512 events at a time, a
    // millisecond or two of their work, while at 50,000 events/s the
    // kernel's queue of 512 datagrams lasts 10 ms). A thread
    // of their own bought nothing on a small host shared with PostgreSQL
    // and the senders, and cost a wakeup and cache-cold events at every
    // hand-off: about 13 % more CPU per event (docs/PERFORMANCE.md).
    let pipeline = Arbiter::new();
    let policies = PolicyMap::default();
    let reported = ReportedChanges::default();
    let salts = Arc::new(Salts::new(config.state.dir.clone()));
    let redaction = Redaction::start_in_arbiter(&pipeline.handle(), {
        let (router, stats, policies) = (
            storage.router.clone(),
            shared.stats.clone(),
            policies.clone(),
        );
        move |ctx| {
            ctx.set_mailbox_capacity(mailbox);
            Redaction::new(
                Link::to(router, "redaction", stats.clone()).with_capacity(mailbox),
                stats,
                policies,
                salts,
            )
        }
    });
    let attribution = Attribution::start_in_arbiter(&pipeline.handle(), {
        let (stats, policies, reported) =
            (shared.stats.clone(), policies.clone(), reported.clone());
        move |ctx| {
            ctx.set_mailbox_capacity(mailbox);
            let link = Link::to(redaction, "attribution", stats.clone()).with_capacity(mailbox);
            Attribution::new(link, stats, policies, reported)
        }
    });
    let watcher = PolicyWatcher::new(
        shared.databases.clone(),
        policies,
        reported,
        attribution.clone().recipient(),
        attribution.clone().recipient(),
        config.policy.poll_interval(),
        shared.stats.clone(),
    )
    .start();
    attribution.do_send(UseWatcher(watcher.recipient()));

    // Forensic capture: its intake (fed by ingest, chunks only while capture
    // is on) and the sweep that ends a capture whose time is up.
    settings.forensic = Some(spawn_intake(shared.forensic.clone()));
    actix_rt::spawn(shared.forensic.clone().run_expiry());

    // Ingest owns the socket, on the pipeline's thread (above), apart from
    // the appenders, so a slow database never delays reading.
    let (stop_ingest, stop_signal) = oneshot::channel::<()>();
    let (ingest_done, ingest_finished) = oneshot::channel::<()>();
    pipeline.spawn({
        let link = Link::to(attribution, "ingest", shared.stats.clone()).with_capacity(mailbox);
        let stats = shared.stats.clone();
        async move {
            ingest::run(socket, settings, link, stats, async {
                let _ = stop_signal.await;
            })
            .await;
            let _ = ingest_done.send(());
        }
    });
    Pipeline {
        arbiter: pipeline,
        stop_ingest,
        ingest_finished,
    }
}

/// Starts head signing, the retention vacuum and the control socket.
fn start_control(config: &Config, shared: &Shared, storage: &Storage, own_uid: u32) -> Result<()> {
    let mut control_uids: HashSet<u32> = config.control.allow_uids.iter().copied().collect();
    control_uids.insert(own_uid);
    let listener = control::bind(&config.control.socket)?;
    let keys = egress_signer::KeyStore::open(&config.state.dir).map_err(|e| {
        Error::Config(format!(
            "signing keys in {}: {e}",
            config.state.dir.display()
        ))
    })?;
    let signing = Signing {
        databases: shared.databases.clone(),
        keys: Arc::new(keys),
        stats: shared.stats.clone(),
        collector: config.state.collector_id(),
    };
    HeadSigner::new(signing.clone(), config.signer.interval()).start();
    let vacuum = {
        let (stats, default_db) = (shared.stats.clone(), config.database.default_db.clone());
        let known: egress_vacuum::DatabasesFn = Arc::new(move || {
            let mut names = stats.database_names();
            if !names.contains(&default_db) {
                names.push(default_db.clone());
            }
            names
        });
        let options = egress_vacuum::Options {
            interval: config.vacuum.interval(),
            batch_rows: config.vacuum.batch_rows,
            collector: config.state.collector_id(),
        };
        let vacuum = Vacuum::new(shared.pools.clone(), known, options);
        let outcomes = vacuum.last_outcomes();
        (vacuum.start(), outcomes)
    };
    let server = Arc::new(ControlServer {
        socket: config.control.socket.clone(),
        allow_uids: control_uids,
        export_uids: config.control.export_uids.iter().copied().collect(),
        stats: shared.stats.clone(),
        watch: shared.watch.clone(),
        databases: shared.databases.clone(),
        default_db: config.database.default_db.clone(),
        signing,
        rollup: storage.rollup.clone().recipient(),
        rollup_stats: storage.rollup_stats.clone(),
        vacuum: vacuum.0.recipient(),
        vacuum_outcomes: vacuum.1,
        forensic: shared.forensic.clone(),
        forensic_uids: config.forensic.odoo_uids.iter().copied().collect(),
    });
    actix_rt::spawn(server.serve(listener));
    Ok(())
}

/// Stops reading, lets what was read reach the journal (within the
/// deadline), brings the rollups up to date, then stops.
async fn shut_down(config: &Config, shared: &Shared, storage: Storage, pipeline: Pipeline) {
    info!("Shutting down: no new events; flushing what is held.");
    let _ = pipeline.stop_ingest.send(());
    if tokio::time::timeout(SHUTDOWN_DEADLINE, pipeline.ingest_finished)
        .await
        .is_err()
    {
        error!("Shutdown deadline passed before every event was journaled.");
    }
    // Not needed for correctness (a restart folds from the watermark), but
    // leaves the report current.
    let flushes: Vec<_> = shared
        .stats
        .database_names()
        .into_iter()
        .map(|database| storage.rollup.send(FlushRollups { database }))
        .collect();
    let _ = tokio::time::timeout(
        ROLLUP_FLUSH_DEADLINE,
        futures_util::future::join_all(flushes),
    )
    .await;
    pipeline.arbiter.stop();
    info!(appended = %shared.stats.snapshot()["chain"]["appended"], "Collector stopped.");
    let _ = std::fs::remove_file(&config.control.socket);
    actix::System::current().stop();
}

async fn wait_for_signal() -> Result<()> {
    let err = |e: std::io::Error| Error::Config(format!("cannot install signal handlers: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(err)?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

fn prepare_state_dir(config: &Config) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = &config.state.dir;
    let err = |source| Error::State {
        path: dir.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)
}

/// Refuses to start when the default database answers but cannot take rows
/// (missing, no `setup`, wrong role): a service that runs but journals
/// nothing would fail silently. A server that does not answer is reported
/// and ridden out by the spool. Other databases are checked as their first
/// event arrives (their rows wait in the appender's queue meanwhile).
fn check_default_database(config: &Config) -> Result<Readiness> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Database(format!("cannot start the database check: {e}")))?;
    runtime.block_on(crate::db::startup::check_database(
        &config.database.url,
        &config.database.default_db,
    ))
}

/// The kernel queues few datagrams per socket by default; bursts then turn
/// into drops on the sender side (counted, but avoidable).
fn warn_if_queue_short() {
    let qlen = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if let Some(qlen) = qlen.filter(|q| *q < 128) {
        warn!(max_dgram_qlen = qlen,
            "The kernel queues only {qlen} datagrams per socket; bursts will be dropped (and counted) by senders. Raise it: sysctl -w net.unix.max_dgram_qlen=4096 (docs/CONFIGURATION.md)");
    }
}
