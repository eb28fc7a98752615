//! Head signer actor: signs each database's chain head on a schedule
//! (`signer.interval_secs`, default every 10 minutes), and on demand through
//! the control socket (`sign-now`). Keys never leave the collector's state
//! directory; the signed head is appended to `egress.signed_head` and
//! mirrored into Odoo's `mit_network_audit.signed_head`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::{Actor, AsyncContext, Context, WrapFuture};
use egress_signer::{sign_head, KeyStore, SignedHead};
use tracing::{info, warn};

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
    /// Signs the current head of `database` now.
    pub async fn sign(&self, database: &str) -> Result<SignedHead> {
        let client = self.databases.client(database).await?;
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
        let keys = self
            .keys
            .keys(database)
            .map_err(|e| Error::Control(format!("signing keys: {e}")))?;
        let now = store::to_micros(SystemTime::now());
        let head = sign_head(&keys, database, seq, &row_hash, now);
        let mirrored = store::record_signed_head(&client, &head, &self.collector).await?;
        self.stats.update_database(database, |d| {
            d.signed_head_seq = Some(seq);
            d.signed_at_us = Some(now);
        });
        if !mirrored {
            warn!(db = %database, "Odoo's ir_config_parameter is missing; the signed head was not mirrored.");
        }
        Ok(head)
    }
}

pub struct HeadSigner {
    signing: Signing,
    interval: Duration,
}

impl HeadSigner {
    pub fn new(signing: Signing, interval: Duration) -> Self {
        HeadSigner { signing, interval }
    }
}

impl Actor for HeadSigner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, ctx| {
            for database in act.signing.stats.database_names() {
                let signing = act.signing.clone();
                ctx.spawn(
                    async move {
                        match signing.sign(&database).await {
                            Ok(head) => info!(db = %database, seq = head.seq, "Signed the chain head."),
                            Err(e) => warn!(db = %database, error = %e, "Could not sign the chain head; will retry."),
                        }
                    }
                    .into_actor(act),
                );
            }
        });
    }
}
