//! Enable, disable, status, read and expiry: what the control socket asks
//! of forensic capture, and the one writer of its journal entries. Each
//! switch is journaled (who, scope, expiry) in the transaction that changes
//! the state; each read is journaled and committed before any byte of the
//! body leaves (fail-closed).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use egress_proto::{EntryKind, JournalRow};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::config::ForensicConfig;
use crate::db::databases::{valid_database_name, Databases};
use crate::db::store::to_micros;
use crate::error::{Error, Result};
use crate::forensic::scope::{self, Scope, StateFile};
use crate::forensic::seal::{Key, Position};
use crate::forensic::sql::{self, StateRow};

/// Who asks: the kernel's account of the control socket's peer, and the
/// Odoo user it speaks for when the request comes from the Odoo page.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Actor {
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub uid: i64,
    /// The Odoo user's id and name, as Odoo's Forensic page passes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odoo_uid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odoo_user: Option<String>,
}

impl Actor {
    /// How the journal names the actor: `odoo:<name> (uid N)` for the Odoo
    /// page, `operator uid N` for the CLI.
    pub fn label(&self) -> String {
        match (&self.odoo_user, self.odoo_uid) {
            (Some(name), Some(id)) => format!("odoo:{name} (uid {id})"),
            (Some(name), None) => format!("odoo:{name}"),
            (None, Some(id)) => format!("odoo:uid {id}"),
            (None, None) => format!("operator uid {}", self.uid),
        }
    }

    fn via(&self) -> &'static str {
        if self.odoo_uid.is_some() || self.odoo_user.is_some() {
            "odoo"
        } else {
            "cli"
        }
    }
}

/// What the intake did, for `forensic status`.
#[derive(Debug, Default)]
pub struct IntakeStats {
    pub chunks: AtomicU64,
    pub stored: AtomicU64,
    /// Chunks or bodies given up, by any of the intake's reasons.
    pub refused: AtomicU64,
}

/// Forensic capture of this collector: shared by the control socket, the
/// intake task and the expiry sweep.
pub struct Forensic {
    databases: Arc<Databases>,
    config: ForensicConfig,
    state_dir: PathBuf,
    /// Where workers find `<database>.json` while capture is on.
    share_dir: PathBuf,
    collector: String,
    /// database → its state as last written or read, for the intake's
    /// check and the sweep.
    states: Mutex<HashMap<String, StateRow>>,
    /// A state was switched on or off: the expiry loop looks again.
    changed: tokio::sync::Notify,
    keys: Mutex<HashMap<String, Arc<Key>>>,
    /// What the intake stored and refused.
    pub intake: Arc<IntakeStats>,
}

fn now_us() -> i64 {
    to_micros(std::time::SystemTime::now())
}

impl Forensic {
    pub fn new(
        databases: Arc<Databases>,
        config: ForensicConfig,
        state_dir: PathBuf,
        share_dir: PathBuf,
        collector: String,
    ) -> Arc<Forensic> {
        Arc::new(Forensic {
            databases,
            config,
            state_dir,
            share_dir,
            collector,
            states: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
            keys: Mutex::new(HashMap::new()),
            intake: Arc::new(IntakeStats::default()),
        })
    }

    pub(crate) async fn databases_client(
        &self,
        database: &str,
    ) -> Result<deadpool_postgres::Object> {
        self.databases.client(database).await
    }

    pub fn config(&self) -> &ForensicConfig {
        &self.config
    }

    pub(crate) fn key(&self, database: &str) -> Result<Arc<Key>> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = keys.get(database) {
            return Ok(key.clone());
        }
        let key = Arc::new(Key::load_or_create(&self.state_dir, database)?);
        keys.insert(database.to_owned(), key.clone());
        Ok(key)
    }

    fn checked(database: &str) -> Result<()> {
        if valid_database_name(database) {
            Ok(())
        } else {
            Err(Error::Control(format!(
                "{database:?} is not a database name"
            )))
        }
    }

    /// The state of `database`, read from it (and remembered).
    pub async fn status(&self, database: &str) -> Result<Option<StateRow>> {
        Self::checked(database)?;
        let client = self.databases.client(database).await?;
        let state = sql::read_state(&client).await?;
        self.remember(database, state.clone());
        Ok(state)
    }

    /// The remembered state, when capture is on and not yet expired at `now_us`.
    pub(crate) fn active_state(&self, database: &str, now_us: i64) -> Option<StateRow> {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states
            .get(database)
            .filter(|s| s.active && s.expires_at_us.is_some_and(|e| e > now_us))
            .cloned()
    }

    fn remember(&self, database: &str, state: Option<StateRow>) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        match state {
            Some(state) => states.insert(database.to_owned(), state),
            None => states.remove(database),
        };
        drop(states);
        self.changed.notify_one();
    }

    fn publish(&self, database: &str, state: &StateRow) {
        let written = if state.active {
            scope::write_state_file(
                &self.share_dir,
                &StateFile {
                    database: database.to_owned(),
                    scope: Scope {
                        host: state.host.clone(),
                        addon: state.addon.clone(),
                        channel: state.channel.clone(),
                    },
                    expires_at_us: state.expires_at_us.unwrap_or(0),
                    max_body_bytes: state.max_body_bytes as u64,
                    entry_seq: state.entry_seq,
                },
            )
        } else {
            scope::remove_state_file(&self.share_dir, database)
        };
        if let Err(e) = written {
            warn!(db = %database, dir = %self.share_dir.display(), error = %e,
                "Cannot write the forensic state file workers read; check forensic.share_dir.");
        }
    }

    /// Switches capture on (or changes its scope) for `duration`, journaled.
    pub async fn enable(
        &self,
        database: &str,
        scope: Scope,
        duration: Duration,
        actor: &Actor,
    ) -> Result<StateRow> {
        Self::checked(database)?;
        if scope.is_empty() {
            return Err(Error::Control(
                "forensic capture needs a scope: give --host, --addon or --channel".into(),
            ));
        }
        let max = self.config.max_duration()?;
        if duration > max {
            return Err(Error::Control(format!(
                "--for {}s is longer than forensic.max_duration ({}); ask for less",
                duration.as_secs(),
                self.config.max_duration
            )));
        }
        // The key exists before the first body arrives, and a state
        // directory that cannot hold it refuses the switch, not the bodies.
        self.key(database)?;
        let now = now_us();
        let expires = now + duration.as_micros() as i64;
        let state = StateRow {
            entry_seq: 0,
            active: true,
            host: scope.host.clone(),
            addon: scope.addon.clone(),
            channel: scope.channel.clone(),
            expires_at_us: Some(expires),
            max_body_bytes: self.config.max_body_bytes as i64,
            changed_by: actor.label(),
            changed_at_us: now,
        };
        let detail = json!({
            "action": "enable",
            "by": actor.label(),
            "via": actor.via(),
            "scope": scope,
            "expires_at_us": expires,
            "max_body_bytes": self.config.max_body_bytes,
        });
        self.switch(database, state, detail, actor).await
    }

    /// Switches capture off, journaled; `action` is `disable` or `expire`.
    pub async fn disable(&self, database: &str, actor: &Actor, action: &str) -> Result<StateRow> {
        Self::checked(database)?;
        let now = now_us();
        let by = if action == "expire" {
            "collector (time up)".to_owned()
        } else {
            actor.label()
        };
        let state = StateRow {
            entry_seq: 0,
            active: false,
            host: None,
            addon: None,
            channel: None,
            expires_at_us: None,
            max_body_bytes: self.config.max_body_bytes as i64,
            changed_by: by.clone(),
            changed_at_us: now,
        };
        let detail = json!({"action": action, "by": by, "via": actor.via()});
        self.switch(database, state, detail, actor).await
    }

    async fn switch(
        &self,
        database: &str,
        mut state: StateRow,
        detail: Value,
        actor: &Actor,
    ) -> Result<StateRow> {
        let mut client = self.databases.client(database).await?;
        let row = entry_row(database, EntryKind::ForensicCapture, detail, actor);
        let chained = sql::append_entry(
            &mut client,
            row,
            Some(state.clone()),
            &self.collector,
            now_us(),
        )
        .await?;
        state.entry_seq = chained.row.seq;
        info!(db = %database, seq = chained.row.seq, active = state.active,
            by = %state.changed_by, "Forensic capture switched.");
        self.publish(database, &state);
        self.remember(database, Some(state.clone()));
        Ok(state)
    }

    /// Journals the read of `seq`'s bodies, commits, and only then opens
    /// them. A call without a body is refused before anything is journaled.
    pub async fn read(&self, database: &str, seq: i64, actor: &Actor) -> Result<Value> {
        Self::checked(database)?;
        let mut client = self.databases.client(database).await?;
        let bodies = sql::bodies_of(&client, seq).await?;
        if bodies.is_empty() {
            return Err(Error::Control(format!(
                "journal row {seq} of {database} has no captured body"
            )));
        }
        let detail = json!({
            "action": "read",
            "seq": seq,
            "parts": bodies.iter().map(|b| b.part.as_str()).collect::<Vec<_>>(),
            "by": actor.label(),
            "via": actor.via(),
        });
        let mut row = entry_row(database, EntryKind::ForensicRead, detail, actor);
        row.gap_count = None;
        // Fail-closed: an entry that cannot be committed releases nothing.
        let entry = sql::append_entry(&mut client, row, None, &self.collector, now_us())
            .await
            .map_err(|e| {
                Error::Control(format!(
                    "the read of row {seq} could not be journaled, so no body is released: {e}"
                ))
            })?;
        info!(db = %database, seq, read_entry = entry.row.seq, by = %actor.label(),
            "Forensic body read, journaled first.");
        let key = self.key(database)?;
        let mut parts = Vec::new();
        for body in bodies {
            let at = Position {
                database,
                seq,
                row_hash: &body.row_hash,
                part: &body.part,
            };
            let Some((sha256, plain)) = key.open(&at, &body.nonce, &body.ciphertext) else {
                let why = if body.key_id != key.id() {
                    format!(
                        "it was sealed with key {} and this collector holds {}",
                        body.key_id,
                        key.id()
                    )
                } else {
                    "its ciphertext was changed, or it was moved from another call".to_owned()
                };
                return Err(Error::Control(format!(
                    "the {} body of row {seq} of {database} fails to decrypt: {why}",
                    body.part
                )));
            };
            parts.push(json!({
                "part": body.part,
                "total_len": body.total_len,
                "captured_len": body.captured_len,
                "truncated": body.truncated,
                "sha256": hex::encode(sha256),
                "body_hex": hex::encode(plain),
            }));
        }
        Ok(
            json!({"database": database, "seq": seq, "read_entry_seq": entry.row.seq, "parts": parts}),
        )
    }

    /// Loads the state of every database that ever had capture (those with
    /// a key in the state directory) and rewrites the files workers read:
    /// the share directory may be a tmpfs emptied by a reboot.
    pub async fn restore(&self) {
        let dir = self.state_dir.join("forensic");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(database) = name.strip_suffix(".key") else {
                continue;
            };
            match self.status(database).await {
                Ok(Some(state)) => self.publish(database, &state),
                Ok(None) => {}
                Err(e) => warn!(db = %database, error = %e, "Cannot read the forensic state."),
            }
        }
    }

    /// Switches off, journaled, every capture whose time is up.
    pub async fn sweep(&self) {
        let now = now_us();
        let due: Vec<String> = {
            let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
            states
                .iter()
                .filter(|(_, s)| s.active && s.expires_at_us.is_some_and(|e| e <= now))
                .map(|(db, _)| db.clone())
                .collect()
        };
        for database in due {
            let actor = Actor {
                pid: i64::from(std::process::id()),
                uid: i64::from(nix::unistd::getuid().as_raw()),
                ..Actor::default()
            };
            if let Err(e) = self.disable(&database, &actor, "expire").await {
                warn!(db = %database, error = %e, "Cannot journal the end of forensic capture; retrying.");
            }
        }
    }

    /// Runs `sweep` when the earliest capture ends, after `restore`, and
    /// again whenever a capture is switched on or off: no wake-up while no
    /// capture is on. A sweep that could not journal an end is retried
    /// every second.
    pub async fn run_expiry(self: Arc<Self>) {
        self.restore().await;
        loop {
            let wait = match self.next_expiry_us() {
                Some(at) if at > now_us() => Duration::from_micros((at - now_us()) as u64),
                Some(_) => Duration::from_secs(1),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.changed.notified() => {}
            }
            self.sweep().await;
        }
    }

    /// When the first capture still on ends.
    fn next_expiry_us(&self) -> Option<i64> {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states
            .values()
            .filter(|s| s.active)
            .filter_map(|s| s.expires_at_us)
            .min()
    }
}

fn entry_row(database: &str, kind: EntryKind, detail: Value, actor: &Actor) -> JournalRow {
    JournalRow {
        database: database.to_owned(),
        kind: kind.as_str().to_owned(),
        worker_pid: Some(actor.pid),
        worker_uid: Some(actor.uid),
        odoo_uid: actor.odoo_uid,
        detail: Some(detail.to_string()),
        ..JournalRow::default()
    }
}
