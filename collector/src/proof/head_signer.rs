//! Head signer actor: signs each database's chain head on a schedule
//! (`signer.interval_secs`, default every 10 minutes), and on demand through
//! the control socket (`sign-now`). Keys never leave the collector's state
//! directory; the signed head is appended to `egress.signed_head` (which
//! Odoo reads through `public.network_signed_head`). Before each signature
//! the head is checked against the heads signed before (remembered in the
//! state directory, `egress_signer::ledger`): never a head inconsistent
//! with one already signed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::{Actor, AsyncContext, Context, WrapFuture};
use egress_proto::{EntryKind, JournalRow};
use egress_signer::ledger::{continuity_problem, Ledger, Refusal};
use egress_signer::{sign_head, KeyStore, SignedHead};
use tracing::{error, info, warn};

use crate::db::databases::Databases;
use crate::db::store;
use crate::error::{Error, Result};
use crate::stats::Stats;

/// What signing needs, shared by the actor and the control socket.
#[derive(Clone)]
pub struct Signing {
    pub databases: Arc<Databases>,
    pub keys: Arc<KeyStore>,
    pub stats: Arc<Stats>,
    pub collector: String,
}

impl Signing {
    /// Signs the current head of `database` now, if it is consistent with
    /// every head this collector signed before (as remembered in its state
    /// directory): the head it signed last must still be in the journal
    /// with the same hash, and every row from there to the new head must
    /// chain. If not, it refuses (and keeps refusing until an operator
    /// resumes), journals an `alarm` entry and logs an ERROR.
    pub async fn sign(&self, database: &str) -> Result<SignedHead> {
        let ledger = self.ledger(database)?;
        if let Some(refusal) = ledger.refusal().map_err(signing_err)? {
            let err = refused(database, &refusal);
            self.stats
                .update_database(database, |d| d.signing_refused = Some(err.to_string()));
            return Err(err);
        }
        let mut client = self.databases.client(database).await?;
        let keys = self.keys.keys(database).map_err(signing_err)?;
        // Signing is a sign of life too (the minute heartbeat may not have
        // seen this database yet).
        if let Err(e) =
            store::collector_heartbeat(&client, &self.collector, &keys.public_key()).await
        {
            warn!(db = %database, error = %e, "The collector's heartbeat could not be recorded (run `egress-collector setup` on this database if it is older).");
        }
        let (seq, hash) = store::read_head(&client).await?.ok_or_else(|| {
            Error::Control(format!(
                "the journal of {database} is empty: nothing to sign"
            ))
        })?;
        let row_hash: [u8; 32] = hash.try_into().map_err(|_| {
            Error::Control(format!(
                "the head of {database} (seq {seq}) has a damaged row_hash"
            ))
        })?;
        let remembered = ledger.heads().map_err(signing_err)?;
        if let Some((first_bad_seq, reason)) = self
            .inconsistency(&client, database, &keys, &remembered, seq)
            .await?
        {
            let refusal = Refusal {
                first_bad_seq,
                reason,
                at_us: store::to_micros(SystemTime::now()),
            };
            ledger.refuse(&refusal).map_err(signing_err)?;
            error!(db = %database, first_bad_seq, reason = %refusal.reason,
                "Refused to sign a head inconsistent with one signed before: the journal was rewritten or cut. Signing stays suspended until `egress-collector sign-resume`.");
            self.stats.update_database(database, |d| {
                d.signing_refused = Some(refused(database, &refusal).to_string());
            });
            let detail = serde_json::json!({
                "alarm": "signing_refused",
                "first_bad_seq": first_bad_seq,
                "reason": refusal.reason,
            });
            if let Err(e) = store::append_entry(&mut client, self.alarm(database, detail)).await {
                error!(db = %database, error = %e, "The signing alarm could not be journaled.");
            }
            return Err(refused(database, &refusal));
        }
        let now = store::to_micros(SystemTime::now());
        let head = sign_head(&keys, database, seq, &row_hash, now);
        store::record_signed_head(&client, &head, &self.collector).await?;
        ledger.remember(&head).map_err(signing_err)?;
        self.stats.update_database(database, |d| {
            d.signed_head_seq = Some(seq);
            d.signed_at_us = Some(now);
            d.signing_refused = None;
        });
        Ok(head)
    }

    /// Resumes signing of `database` after a refusal, on an operator's
    /// command: journals who resumed it and why, and makes the journal as
    /// it is now the base of the next signature. Returns the entry's seq.
    pub async fn resume(&self, database: &str, reason: &str, uid: Option<u32>) -> Result<i64> {
        let ledger = self.ledger(database)?;
        let refusal = ledger.refusal().map_err(signing_err)?;
        let mut client = self.databases.client(database).await?;
        let detail = serde_json::json!({
            "alarm": "signing_resumed",
            "reason": reason,
            "operator_uid": uid,
            "refused_at_seq": refusal.as_ref().map(|r| r.first_bad_seq),
        });
        // Journaled first: a resume that is not on record does not happen.
        let seq = store::append_entry(&mut client, self.alarm(database, detail)).await?;
        ledger
            .resume(&format!("resumed-at-{seq}"))
            .map_err(signing_err)?;
        self.stats
            .update_database(database, |d| d.signing_refused = None);
        warn!(db = %database, seq, reason, "Signing resumed by an operator.");
        Ok(seq)
    }

    /// The heartbeat other collectors' operators see in `keys --db`: this
    /// collector is alive and signs this database with this key.
    pub async fn heartbeat(&self, database: &str) -> Result<()> {
        let key = self.keys.public_key(database).map_err(signing_err)?;
        let client = self.databases.client(database).await?;
        store::collector_heartbeat(&client, &self.collector, &key).await
    }

    fn ledger(&self, database: &str) -> Result<Ledger> {
        Ledger::open(self.keys.dir(), database).map_err(signing_err)
    }

    fn alarm(&self, database: &str, detail: serde_json::Value) -> JournalRow {
        JournalRow {
            database: database.to_owned(),
            kind: EntryKind::Alarm.as_str().to_owned(),
            recorded_at_us: store::to_micros(SystemTime::now()),
            collector: self.collector.clone(),
            detail: Some(detail.to_string()),
            ..JournalRow::default()
        }
    }

    /// The first bad seq and why, when the journal is no longer consistent
    /// with the heads remembered: each must still be there with its hash
    /// (the one head check every verifier uses), and the rows from the last
    /// one to `head_seq` must chain.
    async fn inconsistency(
        &self,
        client: &tokio_postgres::Client,
        database: &str,
        keys: &egress_signer::Keys,
        remembered: &[SignedHead],
        head_seq: i64,
    ) -> Result<Option<(i64, String)>> {
        let Some(last) = remembered.iter().max_by_key(|h| h.seq) else {
            return Ok(None);
        };
        let bounds = store::journal_bounds(client).await?;
        let mut hashes = std::collections::HashMap::new();
        for head in remembered {
            if bounds.is_some_and(|(first, end)| head.seq >= first && head.seq <= end) {
                hashes.insert(head.seq, store::row_hash_at(client, head.seq).await?);
            }
        }
        if let Some(found) = continuity_problem(database, keys, remembered, bounds, |seq| {
            hashes.get(&seq).copied().flatten()
        }) {
            return Ok(Some(found));
        }
        if let Some(seq) = store::first_broken_link(client, last.seq, head_seq).await? {
            return Ok(Some((
                seq,
                format!(
                    "row {seq} does not chain to the row before it, between the head signed at seq {} and seq {head_seq}",
                    last.seq
                ),
            )));
        }
        Ok(None)
    }
}

fn signing_err(e: egress_signer::Error) -> Error {
    Error::Control(format!("signing: {e}"))
}

fn refused(database: &str, refusal: &Refusal) -> Error {
    Error::Control(format!(
        "signing of {database} is suspended: first bad seq {}: {}. Find out who changed the journal (run `egress-collector verify`), then resume with `egress-collector sign-resume --db {database} --reason TEXT`",
        refusal.first_bad_seq, refusal.reason
    ))
}

/// How often a collector says it is alive (`egress.collector_seen`);
/// `keys --alive-secs` defaults to three of these.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);

pub struct HeadSigner {
    signing: Signing,
    interval: Duration,
    /// Databases whose scheduled signing has not finished yet: a slow
    /// database (a long continuity check, a busy pool) is skipped by the
    /// next tick rather than signed twice at once, which would take every
    /// connection of its small pool.
    busy: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl HeadSigner {
    pub fn new(signing: Signing, interval: Duration) -> Self {
        HeadSigner {
            signing,
            interval,
            busy: Arc::default(),
        }
    }
}

impl Actor for HeadSigner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let beat = |act: &mut Self, ctx: &mut Context<Self>| {
            for database in act.signing.stats.database_names() {
                let signing = act.signing.clone();
                ctx.spawn(
                    async move {
                        if let Err(e) = signing.heartbeat(&database).await {
                            warn!(db = %database, error = %e, "The collector's heartbeat could not be recorded (run `egress-collector setup` on this database if it is older).");
                        }
                    }
                    .into_actor(act),
                );
            }
        };
        beat(self, ctx);
        ctx.run_interval(HEARTBEAT_EVERY, beat);
        ctx.run_interval(self.interval, |act, ctx| {
            for database in act.signing.stats.database_names() {
                let fresh = act
                    .busy
                    .lock()
                    .map(|mut busy| busy.insert(database.clone()))
                    .unwrap_or(false);
                if !fresh {
                    continue;
                }
                let signing = act.signing.clone();
                let busy = act.busy.clone();
                ctx.spawn(
                    async move {
                        let outcome = signing.sign(&database).await;
                        if let Ok(mut busy) = busy.lock() {
                            busy.remove(&database);
                        }
                        match outcome {
                            Ok(head) => info!(db = %database, seq = head.seq, "Signed the chain head."),
                            Err(e) if e.to_string().contains("is suspended") => {
                                error!(db = %database, error = %e, "Signing is suspended: an operator must act.")
                            }
                            Err(e) => warn!(db = %database, error = %e, "Could not sign the chain head; will retry."),
                        }
                    }
                    .into_actor(act),
                );
            }
        });
    }
}
