//! Vacuum actor: once a day (`vacuum.interval_secs`), and on demand through
//! the control socket (`vacuum-now`), prunes each database's journal to its
//! `retention_days`, in bounded transactions that each journal what they
//! removed. Rows at or after the latest signed head, and rows not yet in
//! the rollups, never go (the database function refuses them).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture,
};
use deadpool_postgres::Pool;
use serde::Serialize;
use tracing::{info, warn};

use crate::error::{chain_text, Error, Result};
use crate::plan;
use crate::store::{self, Pruned};

/// The connection pool of a database (the collector's pools).
pub type PoolFor = Arc<dyn Fn(&str) -> std::result::Result<Pool, String> + Send + Sync>;
/// The databases to prune on schedule (those this collector writes to).
pub type DatabasesFn = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The first scheduled run, so a restarted collector does not wait a day.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);
/// Transactions per run at most; the next run goes on from there.
const MAX_BATCHES: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub interval: Duration,
    /// Most rows removed (and journaled as one entry) per transaction.
    pub batch_rows: i64,
    /// Host name journaled as the entry's collector.
    pub collector: String,
}

pub struct Vacuum {
    pools: PoolFor,
    databases: DatabasesFn,
    options: Options,
    running: Arc<Mutex<HashSet<String>>>,
    last: Arc<Mutex<std::collections::BTreeMap<String, Outcome>>>,
}

/// What one vacuum of one database did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub database: String,
    pub started_at_us: i64,
    pub retention_days: u32,
    /// None: retention keeps everything, nothing was looked at.
    pub cutoff_us: Option<i64>,
    pub removed: i64,
    pub batches: Vec<Pruned>,
}

impl Vacuum {
    pub fn new(pools: PoolFor, databases: DatabasesFn, options: Options) -> Self {
        Vacuum {
            pools,
            databases,
            options,
            running: Arc::default(),
            last: Arc::default(),
        }
    }

    /// The last outcome per database, for `status`.
    pub fn last_outcomes(&self) -> Arc<Mutex<std::collections::BTreeMap<String, Outcome>>> {
        self.last.clone()
    }

    fn run(
        &self,
        database: String,
        now_us: Option<i64>,
    ) -> ResponseFuture<std::result::Result<Outcome, String>> {
        let claimed = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(database.clone());
        if !claimed {
            return Box::pin(
                async move { Err(format!("a vacuum of {database} is already running")) },
            );
        }
        let running = self.running.clone();
        let last = self.last.clone();
        let pool = (self.pools)(&database);
        let options = self.options.clone();
        Box::pin(async move {
            let result = vacuum(pool, &database, now_us, &options).await;
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&database);
            match result {
                Ok(outcome) => {
                    last.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(database, outcome.clone());
                    Ok(outcome)
                }
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Prunes `database` in batches until nothing more may go.
async fn vacuum(
    pool: std::result::Result<Pool, String>,
    database: &str,
    now_us: Option<i64>,
    options: &Options,
) -> Result<Outcome> {
    let pool = pool.map_err(|reason| Error::Pool {
        database: database.to_owned(),
        reason,
    })?;
    let mut client = pool.get().await.map_err(|e| Error::Pool {
        database: database.to_owned(),
        reason: chain_text(&e),
    })?;
    let real_now = store::to_micros(SystemTime::now());
    let retention_days = plan::retention_days(store::read_retention(&client).await?.as_deref());
    let cutoff = plan::cutoff_us(now_us.unwrap_or(real_now), retention_days);
    let mut outcome = Outcome {
        database: database.to_owned(),
        started_at_us: real_now,
        retention_days,
        cutoff_us: cutoff,
        ..Outcome::default()
    };
    if cutoff.is_none() {
        return Ok(outcome);
    }
    for _ in 0..MAX_BATCHES {
        let pruned = store::prune_once(
            &mut client,
            database,
            &options.collector,
            now_us,
            options.batch_rows,
        )
        .await?;
        let Some(pruned) = pruned else { break };
        info!(db = %database, first_seq = pruned.detail.first_seq, last_seq = pruned.detail.last_seq,
            rows = pruned.detail.rows, entry_seq = pruned.entry_seq, "Retention removed journal rows.");
        outcome.removed += pruned.detail.rows;
        outcome.batches.push(pruned);
    }
    Ok(outcome)
}

impl Actor for Vacuum {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let pass = |act: &mut Vacuum, ctx: &mut Context<Vacuum>| {
            for database in (act.databases)() {
                let name = database.clone();
                ctx.spawn(act.run(database, None).into_actor(act).map(move |result, _, _| {
                    if let Err(e) = result {
                        warn!(db = %name, error = %e, "Retention vacuum failed; the next run will retry.");
                    }
                }));
            }
        };
        ctx.run_later(FIRST_RUN_AFTER, pass);
        ctx.run_interval(self.options.interval, pass);
    }
}

/// Prune `database` now. `now_us` replaces the clock (tests, drills); the
/// entry then says so.
#[derive(Debug, Message)]
#[rtype(result = "std::result::Result<Outcome, String>")]
pub struct RunVacuum {
    pub database: String,
    pub now_us: Option<i64>,
}

impl Handler<RunVacuum> for Vacuum {
    type Result = ResponseFuture<std::result::Result<Outcome, String>>;

    fn handle(&mut self, msg: RunVacuum, _: &mut Context<Self>) -> Self::Result {
        self.run(msg.database, msg.now_us)
    }
}
