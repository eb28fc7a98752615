//! Hears that a database's settings or catalogue changed (`LISTEN
//! egress_policy` on a connection of its own) and asks the policy watcher to
//! re-read them; reconnects with backoff when that connection is lost.
//!
//! A notification is only a hint: anybody may notify the channel, so it
//! carries nothing that is used, and the watcher decides when to re-read.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Message, Recipient};
use tokio_postgres::AsyncMessage;
use tracing::{info, warn};

use crate::db::databases::Databases;
use crate::db::store;
use crate::error::{Error, Result};
use crate::stats::Stats;

/// How the listening session shows in `pg_stat_activity`.
const APPLICATION_NAME: &str = "egress-collector policy listener";
/// Wait before the first reconnection attempt of an outage; it doubles on
/// every failure up to `LAST_RETRY`, so a database that stays away costs a
/// connection attempt a minute, not a busy loop.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// A database's settings or catalogue may have changed: re-read them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PolicyChanged(pub String);

/// Asks the watcher to re-read one database, with at most one request
/// waiting in its mailbox whatever the number of notifications: a flood
/// of them must neither fill that mailbox (which also takes
/// `WatchDatabase`, sent with `try_send`) nor queue work.
#[derive(Clone)]
pub struct RereadRequest {
    database: String,
    waiting: Arc<AtomicBool>,
    watcher: Recipient<PolicyChanged>,
}

impl RereadRequest {
    pub fn new(database: String, watcher: Recipient<PolicyChanged>) -> Self {
        RereadRequest {
            database,
            waiting: Arc::new(AtomicBool::new(false)),
            watcher,
        }
    }

    pub fn send(&self) {
        if !self.waiting.swap(true, Ordering::AcqRel) {
            // `do_send`, not `try_send`: the flag bounds this to one
            // message per database, and a dropped request would leave
            // the change to the slow poll.
            self.watcher.do_send(PolicyChanged(self.database.clone()));
        }
    }

    /// The watcher took the request: the next notification sends again.
    pub fn taken(&self) {
        self.waiting.store(false, Ordering::Release);
    }
}

/// One database's listening connection, for as long as the watcher runs.
pub struct PolicyListener {
    databases: Arc<Databases>,
    request: RereadRequest,
    stats: Arc<Stats>,
    /// The WARN about a database without migration 0023 is said once.
    warned_without_trigger: bool,
    /// The connection is lost and that was logged; said again only once
    /// it is back.
    in_outage: bool,
}

impl PolicyListener {
    pub fn new(databases: Arc<Databases>, request: RereadRequest, stats: Arc<Stats>) -> Self {
        PolicyListener {
            databases,
            request,
            stats,
            warned_without_trigger: false,
            in_outage: false,
        }
    }

    /// Listens until the future is dropped (with the watcher).
    pub async fn run(mut self) {
        let mut retry = FIRST_RETRY;
        loop {
            let error = self.listen_once(&mut retry).await;
            if !self.in_outage {
                self.in_outage = true;
                warn!(db = %self.request.database, error = %error,
                    "Not hearing settings changes; reconnecting. Meanwhile they are re-read every policy.poll_interval_ms.");
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    /// Connects, listens and hears notifications until the connection
    /// ends; returns why it ended.
    async fn listen_once(&mut self, retry: &mut Duration) -> Error {
        let database = self.request.database.clone();
        let (client, mut connection) =
            match self.databases.unpooled(&database, APPLICATION_NAME).await {
                Ok(pair) => pair,
                Err(error) => return error,
            };
        let (request, stats) = (self.request.clone(), self.stats.clone());
        // Drives the connection (query replies included) and hands each
        // notification on; ends with the connection.
        let hear = async move {
            loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        stats.policy_notifications.fetch_add(1, Ordering::Relaxed);
                        request.send();
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return lost(&database, Some(e)),
                    None => return lost(&database, None),
                }
            }
        };
        tokio::pin!(hear);
        let subscribe = async {
            store::listen_for_policy_changes(&client).await?;
            store::policy_changes_notify(&client).await
        };
        let notifies: Result<bool> = tokio::select! {
            subscribed = subscribe => subscribed,
            ended = &mut hear => return ended,
        };
        let notifies = match notifies {
            Ok(notifies) => notifies,
            Err(error) => return error,
        };
        self.listening(notifies);
        *retry = FIRST_RETRY;
        self.stats.policy_listeners.fetch_add(1, Ordering::Relaxed);
        let ended = hear.await;
        self.stats.policy_listeners.fetch_sub(1, Ordering::Relaxed);
        drop(client);
        ended
    }

    fn listening(&mut self, notifies: bool) {
        let database = &self.request.database;
        if !notifies && !self.warned_without_trigger {
            self.warned_without_trigger = true;
            warn!(db = %database,
                "This database does not notify settings changes: re-run `egress-collector setup` on it. Until then they apply within policy.poll_interval_ms.");
        }
        if self.in_outage {
            self.in_outage = false;
            info!(db = %database, "Hearing settings changes again.");
        }
        // Changes made since the last read (before this LISTEN, or while
        // the connection was lost) were not heard: read once now.
        self.request.send();
    }
}

fn lost(database: &str, error: Option<tokio_postgres::Error>) -> Error {
    Error::Pool {
        database: database.to_owned(),
        reason: match error {
            Some(e) => crate::error::chain_text(&e),
            None => "the server closed the connection".to_owned(),
        },
    }
}
