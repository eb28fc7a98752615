//! Rollup actor: holds the deltas of committed rows per database and flushes
//! them every few seconds, with the watermark, in one transaction; folds
//! from the journal whatever no delta covers. The deltas only save work:
//! the watermark in the database decides what is in the rollups, so a
//! dropped message, a restart or a kill -9 costs a fold, never a count.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture,
    WrapFuture,
};
use deadpool_postgres::Pool;
use egress_proto::JournalRow;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::delta::Delta;
use crate::error::{chain_text, Error, Result};
use crate::pending::Pending;
use crate::stats::Stats;
use crate::store::{self, Flushed};

/// The connection pool of a database (the collector's pools).
pub type PoolFor = Arc<dyn Fn(&str) -> std::result::Result<Pool, String> + Send + Sync>;

/// Deltas held per database at most, while it cannot be written.
const MAX_SEGMENTS: usize = 10_000;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Options {
    /// How often held deltas are flushed.
    pub flush_interval: Duration,
    /// How often a database with nothing held is checked for rows no delta
    /// announced (another collector's, the vacuum's).
    pub check_interval: Duration,
    /// Most rows folded from the journal in one transaction.
    pub max_fold_rows: i64,
}

pub struct Rollup {
    pools: PoolFor,
    options: Options,
    stats: Arc<Stats>,
    databases: HashMap<String, DbState>,
}

#[derive(Default)]
struct DbState {
    pending: Pending,
    in_flight: bool,
    /// Rows wait beyond the watermark: flush again without waiting.
    behind: bool,
    last_flush: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
    last_warned: Option<Instant>,
    waiters: Vec<oneshot::Sender<std::result::Result<i64, String>>>,
}

impl Rollup {
    /// `known`: databases to catch up from the start (before any row arrives).
    pub fn new(pools: PoolFor, options: Options, stats: Arc<Stats>, known: &[String]) -> Self {
        let databases = known
            .iter()
            .map(|d| (d.clone(), DbState::default()))
            .collect();
        Rollup {
            pools,
            options,
            stats,
            databases,
        }
    }

    fn due(&self, state: &DbState) -> bool {
        if state.in_flight || state.retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        !state.pending.is_empty()
            || state.behind
            || !state.waiters.is_empty()
            || state
                .last_flush
                .is_none_or(|at| at.elapsed() >= self.options.check_interval)
    }

    fn flush(&mut self, database: String, ctx: &mut Context<Self>) {
        let Some(state) = self.databases.get_mut(&database) else {
            return;
        };
        state.in_flight = true;
        let mut pending = std::mem::take(&mut state.pending);
        let pool = (self.pools)(&database);
        let max_fold = self.options.max_fold_rows;
        let name = database.clone();
        let work = async move {
            let result = async {
                let pool = pool.map_err(|reason| Error::Pool {
                    database: name.clone(),
                    reason,
                })?;
                let mut client = pool.get().await.map_err(|e| Error::Pool {
                    database: name.clone(),
                    reason: chain_text(&e),
                })?;
                store::flush(&mut client, &mut pending, max_fold).await
            }
            .await;
            (pending, result)
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |(left, result), act, ctx| act.flushed(&database, left, result, ctx)),
        );
    }

    fn flushed(
        &mut self,
        database: &str,
        left: Pending,
        result: Result<Flushed>,
        ctx: &mut Context<Self>,
    ) {
        let Some(state) = self.databases.get_mut(database) else {
            return;
        };
        state.in_flight = false;
        state.pending.restore(left);
        state.last_flush = Some(Instant::now());
        let segments = state.pending.len();
        match result {
            Ok(flushed) => {
                if state.failures > 0 {
                    info!(db = %database, "Rollups writable again.");
                }
                state.failures = 0;
                state.retry_at = None;
                state.behind = flushed.behind;
                if !flushed.behind {
                    for waiter in state.waiters.drain(..) {
                        let _ = waiter.send(Ok(flushed.watermark));
                    }
                }
                self.stats.update(database, |d| {
                    d.watermark = flushed.watermark;
                    d.head = flushed.head;
                    d.applied_rows += flushed.applied;
                    d.folded_rows += flushed.folded;
                    d.flushes += 1;
                    d.pending_segments = segments;
                    d.last_error = None;
                });
                if flushed.behind {
                    // Catching up in bounded transactions: go on at once.
                    self.flush(database.to_owned(), ctx);
                }
            }
            Err(error) => {
                state.failures += 1;
                let backoff =
                    Duration::from_millis(500 * 2u64.pow(state.failures.min(6))).min(MAX_BACKOFF);
                state.retry_at = Some(Instant::now() + backoff);
                let message = error.to_string();
                for waiter in state.waiters.drain(..) {
                    let _ = waiter.send(Err(message.clone()));
                }
                if state
                    .last_warned
                    .is_none_or(|at| at.elapsed() >= WARN_EVERY)
                {
                    state.last_warned = Some(Instant::now());
                    warn!(db = %database, error = %error,
                        "Cannot update the rollups; will catch up from the watermark. Run `egress-collector setup` on this database if it predates the rollups.");
                }
                self.stats.update(database, |d| {
                    d.pending_segments = segments;
                    d.last_error = Some(message);
                });
            }
        }
    }
}

impl Actor for Rollup {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.options.flush_interval, |act, ctx| {
            let due: Vec<String> = act
                .databases
                .iter()
                .filter(|(_, state)| act.due(state))
                .map(|(name, _)| name.clone())
                .collect();
            for database in due {
                act.flush(database, ctx);
            }
        });
    }
}

/// Rows `first_seq..=last_seq` of `database` were committed; they add `delta`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RowsCommitted {
    pub database: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub delta: Delta,
}

/// Bring the rollups of `database` up to the journal's head now; replies
/// with the watermark reached, or why not.
#[derive(Debug, Message)]
#[rtype(result = "std::result::Result<i64, String>")]
pub struct FlushRollups {
    pub database: String,
}

impl Handler<RowsCommitted> for Rollup {
    type Result = ();

    fn handle(&mut self, msg: RowsCommitted, _: &mut Context<Self>) {
        let state = self.databases.entry(msg.database).or_default();
        state.pending.push(msg.first_seq, msg.last_seq, msg.delta);
        if state.pending.len() > MAX_SEGMENTS {
            state.pending.forget_oldest();
            self.stats.segments_forgotten.fetch_add(1, Relaxed);
        }
    }
}

impl Handler<FlushRollups> for Rollup {
    type Result = ResponseFuture<std::result::Result<i64, String>>;

    fn handle(&mut self, msg: FlushRollups, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, wait) = oneshot::channel();
        let state = self.databases.entry(msg.database.clone()).or_default();
        state.waiters.push(reply);
        // Asked for by someone waiting: no backoff.
        state.retry_at = None;
        if !state.in_flight {
            self.flush(msg.database, ctx);
        }
        Box::pin(async move {
            wait.await
                .unwrap_or_else(|_| Err("the rollup stopped".to_owned()))
        })
    }
}

/// The appender's side of the hand-off: sums the committed rows and offers
/// them without waiting. A full mailbox is counted, not waited for: the
/// rows are folded from the journal instead.
#[derive(Clone)]
pub struct Feed {
    recipient: Recipient<RowsCommitted>,
    stats: Arc<Stats>,
}

impl Feed {
    pub fn new(recipient: Recipient<RowsCommitted>, stats: Arc<Stats>) -> Self {
        Feed { recipient, stats }
    }

    /// `rows`: one committed transaction's rows, in seq order.
    pub fn committed<'a>(&self, database: &str, rows: impl IntoIterator<Item = &'a JournalRow>) {
        let mut rows = rows.into_iter().peekable();
        let Some(first_seq) = rows.peek().map(|r| r.seq) else {
            return;
        };
        let mut last_seq = first_seq;
        let mut delta = Delta::default();
        for row in rows {
            last_seq = row.seq;
            delta.add(row);
        }
        let message = RowsCommitted {
            database: database.to_owned(),
            first_seq,
            last_seq,
            delta,
        };
        if self.recipient.try_send(message).is_err() {
            self.stats.messages_dropped.fetch_add(1, Relaxed);
        }
    }
}
