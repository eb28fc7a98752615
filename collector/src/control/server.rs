//! Control socket: a Unix stream socket serving `status`, `watch`,
//! `sign-now`, `export`, `report` and `vacuum-now` to the CLI. One JSON
//! request line per connection; replies are JSON lines. The
//! peer's uid is checked with SO_PEERCRED: root, the collector's own uid and
//! `control.allow_uids` may ask for anything; `control.export_uids` (Odoo's
//! user) only for what the export wizard needs (`Request::open_to_exporters`).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use egress_rollup::FlushRollups;
use egress_vacuum::RunVacuum;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

use crate::control::watch_hub::WatchHub;
use crate::db::databases::{valid_database_name, Databases};
use crate::db::store::{self, StoredRow};
use crate::error::{Error, Result};
use crate::forensic::{parse_duration, Actor, Forensic, Scope};
use crate::pipeline::stage::ChainedRow;
use crate::proof::export::{self, ExportFailure, ExportRequest};
use crate::stats::Stats;

/// What a CLI asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Sign the head of `db` now.
    SignNow {
        db: String,
    },
    /// Resume signing of `db` after the signer refused an inconsistent
    /// head: journaled with `reason` and the peer's uid.
    SignResume {
        db: String,
        reason: String,
    },
    /// The Ed25519 public key of `db`.
    Pubkey {
        db: String,
    },
    /// Every collector that appended to or signed `db`, with its key,
    /// first and last activity and whether its heartbeat is younger than
    /// `alive_secs`.
    Keys {
        db: String,
        alive_secs: u32,
    },
    /// A signed export of `db`, rows `from` to `to` (inclusive; to the end
    /// when absent).
    Export {
        db: String,
        #[serde(default = "first_seq")]
        from: i64,
        to: Option<i64>,
        /// Rows read per query (tests); `export::DEFAULT_CHUNK_ROWS` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chunk_rows: Option<u32>,
    },
    Watch {
        /// Only this database; all when absent.
        db: Option<String>,
        /// First send the last N rows of the database (default database
        /// when `db` is absent).
        #[serde(default)]
        since: u32,
    },
    /// The Trust Report of `db` (the default database when absent), from
    /// the rollups brought up to the journal's head first.
    Report {
        db: Option<String>,
        /// `7d`, `24h`, `2w` or `all`.
        since: String,
    },
    /// Prune `db` to its retention now. `now_us` replaces the clock (tests,
    /// drills); the vacuum entry records that it did.
    VacuumNow {
        db: String,
        now_us: Option<i64>,
    },
    /// Switch forensic capture on (or change it) for `db`: a scope (at
    /// least one of host, addon, channel) for `duration` (`2h`, `7d`, ...).
    ForensicEnable {
        db: String,
        host: Option<String>,
        addon: Option<String>,
        channel: Option<String>,
        duration: String,
        #[serde(flatten)]
        odoo: OdooUser,
    },
    ForensicDisable {
        db: String,
        #[serde(flatten)]
        odoo: OdooUser,
    },
    ForensicStatus {
        db: String,
        #[serde(flatten)]
        odoo: OdooUser,
    },
    /// The captured bodies of journal row `seq`, released once the read is
    /// journaled.
    ForensicRead {
        db: String,
        seq: i64,
        #[serde(flatten)]
        odoo: OdooUser,
    },
}

/// The Odoo user a forensic request speaks for (the Forensic page), absent
/// for the operator's CLI.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OdooUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odoo_uid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odoo_user: Option<String>,
}

fn first_seq() -> i64 {
    1
}

impl Request {
    /// What `control.export_uids` may ask: one database's signed export, its
    /// public key, and a signature of its head, which only adds proof. Not
    /// `vacuum-now`, which prunes, nor `watch`, `status` and `report`,
    /// which show every database: Odoo's user runs the third-party code this
    /// service audits.
    fn open_to_exporters(&self) -> bool {
        matches!(
            self,
            Request::Export { .. } | Request::Pubkey { .. } | Request::SignNow { .. }
        )
    }

    /// The CLI command that sends it.
    fn command(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::SignNow { .. } => "sign-now",
            Request::SignResume { .. } => "sign-resume",
            Request::Pubkey { .. } => "pubkey",
            Request::Keys { .. } => "keys",
            Request::Export { .. } => "export",
            Request::Watch { .. } => "watch",
            Request::Report { .. } => "report",
            Request::VacuumNow { .. } => "vacuum-now",
            Request::ForensicEnable { .. } => "forensic enable",
            Request::ForensicDisable { .. } => "forensic disable",
            Request::ForensicStatus { .. } => "forensic status",
            Request::ForensicRead { .. } => "forensic read",
        }
    }

    /// The Odoo user of a forensic request, when it names one.
    fn odoo_user(&self) -> Option<&OdooUser> {
        match self {
            Request::ForensicEnable { odoo, .. }
            | Request::ForensicDisable { odoo, .. }
            | Request::ForensicStatus { odoo, .. }
            | Request::ForensicRead { odoo, .. } => Some(odoo),
            _ => None,
        }
    }
}

/// What a peer may ask, by its uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Everything,
    /// `control.export_uids` and/or `forensic.odoo_uids`, not `allow_uids`.
    Limited {
        exports: bool,
        forensic: bool,
    },
}

pub struct ControlServer {
    pub socket: PathBuf,
    pub allow_uids: HashSet<u32>,
    pub export_uids: HashSet<u32>,
    pub stats: Arc<Stats>,
    pub watch: WatchHub,
    pub databases: Arc<Databases>,
    pub default_db: String,
    pub signing: crate::proof::head_signer::Signing,
    pub rollup: Recipient<FlushRollups>,
    pub rollup_stats: Arc<egress_rollup::Stats>,
    pub vacuum: Recipient<RunVacuum>,
    pub vacuum_outcomes: Arc<std::sync::Mutex<BTreeMap<String, egress_vacuum::Outcome>>>,
    pub forensic: Arc<Forensic>,
    /// `forensic.odoo_uids`: forensic requests on behalf of an Odoo user only.
    pub forensic_uids: HashSet<u32>,
}

/// A request is one short JSON line; a longer one is cut there and refused
/// as unreadable, whoever sent it.
const REQUEST_MAX_BYTES: u64 = 64 * 1024;

/// How long `report` waits for the rollups to catch up before it answers
/// from what they hold (and says how far that is).
const REPORT_FLUSH_WAIT: Duration = Duration::from_secs(20);

pub fn bind(path: &PathBuf) -> Result<UnixListener> {
    let err = |source| Error::Socket {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    crate::pipeline::ingest::remove_stale_socket(path).map_err(err)?;
    let listener = UnixListener::bind(path).map_err(err)?;
    use std::os::unix::fs::PermissionsExt;
    // Access is decided by peer uid, but keep strangers from even connecting.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(listener)
}

impl ControlServer {
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        info!(socket = %self.socket.display(), "Control socket listening.");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let server = self.clone();
                    actix_rt::spawn(async move {
                        if let Err(e) = server.handle(stream).await {
                            debug!(error = %e, "Control connection ended.");
                        }
                    });
                }
                Err(e) => warn!(error = %e, "Control socket accept failed."),
            }
        }
    }

    async fn handle(&self, stream: UnixStream) -> std::io::Result<()> {
        let cred = stream.peer_cred()?;
        let (uid, pid) = (cred.uid(), cred.pid().unwrap_or(0));
        let (read, mut write) = stream.into_split();
        // The request is read before any refusal: a peer whose request is
        // still unread when the connection closes gets EPIPE for its write,
        // not the refusal that says why.
        let mut line = String::new();
        let mut reader = BufReader::new(read.take(REQUEST_MAX_BYTES));
        reader.read_line(&mut line).await?;
        let Some(access) = self.access(uid) else {
            let refusal = json!({"type": "error", "message": format!("uid {uid} may not use the control socket; add it to control.allow_uids (or control.export_uids for exports only)")});
            return write_line(&mut write, &refusal).await;
        };
        let request = serde_json::from_str::<Request>(&line);
        if let (Ok(request), Access::Limited { exports, forensic }) = (&request, access) {
            let for_odoo_user = request
                .odoo_user()
                .is_some_and(|odoo| odoo.odoo_uid.is_some() && odoo.odoo_user.is_some());
            let allowed = (exports && request.open_to_exporters()) || (forensic && for_odoo_user);
            if !allowed {
                warn!(
                    uid,
                    command = request.command(),
                    "Control request refused: uid in control.export_uids or forensic.odoo_uids only."
                );
                let message = if forensic && request.odoo_user().is_some() {
                    format!("uid {uid} may ask `{}` only on behalf of an Odoo user (odoo_uid and odoo_user) (forensic.odoo_uids)", request.command())
                } else if exports {
                    format!(
                        "uid {uid} may only ask for export, pubkey and sign-now (control.export_uids); `{}` needs control.allow_uids",
                        request.command()
                    )
                } else {
                    format!(
                        "uid {uid} may only ask for forensic requests on behalf of an Odoo user (forensic.odoo_uids); `{}` needs control.allow_uids",
                        request.command()
                    )
                };
                let refusal = json!({"type": "error", "message": message});
                return write_line(&mut write, &refusal).await;
            }
        }
        if let Ok(request) = &request {
            if let Some(reply) = self.forensic_request(request, uid, pid).await {
                return write_line(&mut write, &reply).await;
            }
        }
        match request {
            Ok(Request::Status) => write_line(&mut write, &self.status()).await,
            Ok(Request::Report { db, since }) => {
                let reply = match self.report(db, &since).await {
                    Ok(report) => json!({"type": "report", "report": report}),
                    Err(e) => json!({"type": "error", "message": e.to_string()}),
                };
                write_line(&mut write, &reply).await
            }
            Ok(Request::VacuumNow { db, now_us }) => {
                let reply = match self.vacuum_now(&db, now_us).await {
                    Ok(outcome) => json!({"type": "vacuum", "outcome": outcome}),
                    Err(e) => json!({"type": "error", "message": e.to_string()}),
                };
                write_line(&mut write, &reply).await
            }
            Ok(Request::Watch { db, since }) => {
                let read = reader.into_inner().into_inner();
                self.watch(read, &mut write, db, since).await
            }
            Ok(Request::SignNow { db }) => {
                let reply = match self.checked(&db) {
                    Ok(()) => match self.signing.sign(&db).await {
                        Ok(head) => {
                            json!({"type": "signed_head", "head": serde_json::to_value(&head).unwrap_or_default()})
                        }
                        Err(e) => json!({"type": "error", "message": e.to_string()}),
                    },
                    Err(e) => json!({"type": "error", "message": e.to_string()}),
                };
                write_line(&mut write, &reply).await
            }
            Ok(Request::SignResume { db, reason }) => {
                let reply = match self.checked(&db) {
                    Ok(()) if reason.trim().is_empty() => {
                        json!({"type": "error", "message": "sign-resume needs --reason: it is journaled with the resume"})
                    }
                    Ok(()) => match self.signing.resume(&db, reason.trim(), Some(uid)).await {
                        Ok(seq) => json!({"type": "resumed", "database": db, "seq": seq}),
                        Err(e) => json!({"type": "error", "message": e.to_string()}),
                    },
                    Err(e) => json!({"type": "error", "message": e.to_string()}),
                };
                write_line(&mut write, &reply).await
            }
            Ok(Request::Pubkey { db }) => {
                let reply = match self.checked(&db).and_then(|()| {
                    self.signing
                        .keys
                        .public_key(&db)
                        .map_err(|e| Error::Control(e.to_string()))
                }) {
                    Ok(key) => {
                        json!({"type": "pubkey", "database": db, "public_key": hex::encode(key)})
                    }
                    Err(e) => json!({"type": "error", "message": e.to_string()}),
                };
                write_line(&mut write, &reply).await
            }
            Ok(Request::Keys { db, alive_secs }) => {
                let reply = match self.keys(&db, alive_secs).await {
                    Ok(reply) => reply,
                    Err(e) => json!({"type": "error", "message": e.to_string()}),
                };
                write_line(&mut write, &reply).await
            }
            Ok(Request::Export {
                db,
                from,
                to,
                chunk_rows,
            }) => {
                let request = ExportRequest {
                    database: db,
                    from,
                    to,
                    chunk_rows: chunk_rows.unwrap_or(export::DEFAULT_CHUNK_ROWS),
                };
                self.export(&mut write, &request).await
            }
            // Answered by `forensic_request` above.
            Ok(
                Request::ForensicEnable { .. }
                | Request::ForensicDisable { .. }
                | Request::ForensicStatus { .. }
                | Request::ForensicRead { .. },
            ) => Ok(()),
            Err(e) => {
                write_line(
                    &mut write,
                    &json!({"type": "error", "message": format!("bad request: {e}")}),
                )
                .await
            }
        }
    }

    /// The collectors of `db` (`keys --db`), this one marked.
    async fn keys(&self, db: &str, alive_secs: u32) -> crate::error::Result<serde_json::Value> {
        self.checked(db)?;
        let own = self
            .signing
            .keys
            .public_key(db)
            .map_err(|e| Error::Control(e.to_string()))?;
        let client = self.databases.client(db).await?;
        let seen = crate::db::store::collectors_seen(&client, alive_secs).await?;
        Ok(json!({
            "type": "keys",
            "database": db,
            "collector": self.signing.collector,
            "public_key": hex::encode(own),
            "collectors": seen,
        }))
    }

    /// Streams committed rows to one watcher until it hangs up. The
    /// watcher is counted (`status`) only while its connection is open:
    /// its read side reaching end-of-file ends the watch even when no row
    /// comes to fail a write.
    async fn watch(
        &self,
        mut read: tokio::net::unix::OwnedReadHalf,
        write: &mut (impl AsyncWriteExt + Unpin),
        db: Option<String>,
        since: u32,
    ) -> std::io::Result<()> {
        let hung_up = async move {
            let mut buf = [0u8; 256];
            // A watcher sends nothing after its request: anything it does
            // send is ignored; end-of-file or an error means it is gone.
            while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        tokio::select! {
            result = self.stream_rows(write, db, since) => result,
            () = hung_up => Ok(()),
        }
    }

    async fn stream_rows(
        &self,
        write: &mut (impl AsyncWriteExt + Unpin),
        db: Option<String>,
        since: u32,
    ) -> std::io::Result<()> {
        // Subscribe before reading history so no row falls between the two.
        let mut live = self.watch.subscribe();
        self.stats
            .watchers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _guard = WatcherGuard(self.stats.clone());
        let mut last_sent: Option<(String, i64)> = None;
        if since > 0 {
            let database = db.clone().unwrap_or_else(|| self.default_db.clone());
            match self.history(&database, since).await {
                Ok(rows) => {
                    for stored in rows {
                        last_sent = Some((database.clone(), stored.row.seq));
                        write_line(write, &stored_json(&stored)).await?;
                    }
                }
                Err(e) => {
                    let message = format!("cannot read history of {database}: {e}");
                    write_line(write, &json!({"type": "error", "message": message})).await?;
                }
            }
        }
        loop {
            match live.recv().await {
                Ok(committed) => {
                    if db.as_ref().is_some_and(|d| *d != committed.database) {
                        continue;
                    }
                    for chained in &committed.rows {
                        let seen = last_sent.as_ref().is_some_and(|(d, seq)| {
                            *d == committed.database && chained.row.seq <= *seq
                        });
                        if !seen {
                            write_line(write, &chained_json(chained)).await?;
                        }
                    }
                }
                Err(RecvError::Lagged(batches)) => {
                    write_line(write, &json!({"type": "skipped", "batches": batches})).await?;
                }
                Err(RecvError::Closed) => {
                    let end = json!({"type": "end", "reason": "the collector is shutting down"});
                    return write_line(write, &end).await;
                }
            }
        }
    }

    /// The counters, with the rollups' and the last vacuum of each database.
    fn status(&self) -> Value {
        let mut status = self.stats.snapshot();
        status["rollup"] = self.rollup_stats.snapshot();
        let outcomes = self
            .vacuum_outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        status["vacuum"] = json!({ "last": outcomes });
        status
    }

    /// Brings the rollups of `database` up to the journal's head, then
    /// reads the report from them (never from the journal).
    async fn report(&self, db: Option<String>, since: &str) -> Result<egress_rollup::Report> {
        let database = db.unwrap_or_else(|| self.default_db.clone());
        self.checked(&database)?;
        let since: egress_rollup::Since = since.parse().map_err(Error::Control)?;
        let flush = self.rollup.send(FlushRollups {
            database: database.clone(),
        });
        match tokio::time::timeout(REPORT_FLUSH_WAIT, flush).await {
            Ok(Ok(Ok(_))) => {}
            // The report says how far the rollups go (`trust.rollups`).
            Ok(Ok(Err(e))) => {
                warn!(db = %database, error = %e, "Report from rollups that could not catch up.")
            }
            Ok(Err(_)) | Err(_) => warn!(db = %database, "Report from rollups still catching up."),
        }
        let mut client = self.databases.client(&database).await?;
        egress_rollup::report::build(
            &mut client,
            &database,
            since,
            egress_rollup::Source::Rollups,
        )
        .await
        .map_err(|e| Error::Control(e.to_string()))
    }

    /// The rollups first (the vacuum prunes only rows they hold), then the vacuum.
    async fn vacuum_now(
        &self,
        database: &str,
        now_us: Option<i64>,
    ) -> Result<egress_vacuum::Outcome> {
        self.checked(database)?;
        let flushed = self
            .rollup
            .send(FlushRollups {
                database: database.to_owned(),
            })
            .await
            .map_err(|e| Error::Control(e.to_string()))?;
        if let Err(e) = flushed {
            return Err(Error::Control(format!(
                "the rollups of {database} cannot catch up, so nothing may be pruned: {e}"
            )));
        }
        let outcome = self
            .vacuum
            .send(RunVacuum {
                database: database.to_owned(),
                now_us,
            })
            .await
            .map_err(|e| Error::Control(e.to_string()))?
            .map_err(Error::Control)?;
        // The vacuum entries reached the journal without a delta: fold them
        // now rather than at the next periodic check.
        let _ = self.rollup.try_send(FlushRollups {
            database: database.to_owned(),
        });
        Ok(outcome)
    }

    fn access(&self, uid: u32) -> Option<Access> {
        let exports = self.export_uids.contains(&uid);
        let forensic = self.forensic_uids.contains(&uid);
        if uid == 0 || self.allow_uids.contains(&uid) {
            Some(Access::Everything)
        } else if exports || forensic {
            Some(Access::Limited { exports, forensic })
        } else {
            None
        }
    }

    /// The reply to a forensic request; `None` for any other request.
    async fn forensic_request(&self, request: &Request, uid: u32, pid: i32) -> Option<Value> {
        let odoo = request.odoo_user()?.clone();
        let actor = Actor {
            pid: i64::from(pid),
            uid: i64::from(uid),
            odoo_uid: odoo.odoo_uid,
            odoo_user: odoo.odoo_user,
        };
        let error = |e: Error| json!({"type": "error", "message": e.to_string()});
        let forensic = &self.forensic;
        Some(match request {
            Request::ForensicEnable {
                db,
                host,
                addon,
                channel,
                duration,
                ..
            } => {
                let scope = Scope::new(host.clone(), addon.clone(), channel.clone());
                match parse_duration(duration) {
                    Err(e) => json!({"type": "error", "message": format!("--for {e}")}),
                    Ok(duration) => match forensic.enable(db, scope, duration, &actor).await {
                        Ok(state) => {
                            json!({"type": "forensic_state", "database": db, "state": state})
                        }
                        Err(e) => error(e),
                    },
                }
            }
            Request::ForensicDisable { db, .. } => {
                match forensic.disable(db, &actor, "disable").await {
                    Ok(state) => json!({"type": "forensic_state", "database": db, "state": state}),
                    Err(e) => error(e),
                }
            }
            Request::ForensicStatus { db, .. } => match forensic.status(db).await {
                Ok(state) => json!({
                    "type": "forensic_state",
                    "database": db,
                    "state": state,
                    "now_us": crate::db::store::to_micros(std::time::SystemTime::now()),
                    "max_duration": forensic.config().max_duration,
                    "max_body_bytes": forensic.config().max_body_bytes,
                    "intake": {
                        "chunks": forensic.intake.chunks.load(std::sync::atomic::Ordering::Relaxed),
                        "stored": forensic.intake.stored.load(std::sync::atomic::Ordering::Relaxed),
                        "refused": forensic.intake.refused.load(std::sync::atomic::Ordering::Relaxed),
                    },
                }),
                Err(e) => error(e),
            },
            Request::ForensicRead { db, seq, .. } => match forensic.read(db, *seq, &actor).await {
                Ok(read) => json!({"type": "forensic_body", "read": read}),
                Err(e) => error(e),
            },
            _ => return None,
        })
    }

    fn checked(&self, database: &str) -> Result<()> {
        if valid_database_name(database) {
            Ok(())
        } else {
            Err(Error::Control(format!(
                "{database:?} is not a valid database name: use {}",
                egress_proto::database::DATABASE_NAME_RULE
            )))
        }
    }

    /// Streams the signed export file to `write`, then ends the connection
    /// (`export::stream_export`).
    async fn export(
        &self,
        write: &mut (impl AsyncWriteExt + Unpin),
        request: &ExportRequest,
    ) -> std::io::Result<()> {
        let database = &request.database;
        let (keys, mut client) = match self.export_keys_and_connection(database).await {
            Ok(ready) => ready,
            Err(e) => {
                return write_line(write, &json!({"type": "error", "message": e.to_string()})).await
            }
        };
        match export::stream_export(&mut client, &keys, request, write).await {
            Ok(rows) => {
                info!(db = %database, rows, "Export sent.");
                Ok(())
            }
            Err(ExportFailure::BeforeStart(e)) => {
                write_line(write, &json!({"type": "error", "message": e.to_string()})).await
            }
            Err(ExportFailure::MidStream { rows, error }) => {
                warn!(db = %database, rows, error = %error, "Export failed part way; the client was told.");
                Ok(())
            }
            Err(ExportFailure::Client(e)) => {
                info!(db = %database, error = %e, "Export abandoned: the client went away.");
                Ok(())
            }
        }
    }

    /// The signing keys and a connection of its own: an export holds its
    /// connection as long as the client takes to read the file.
    async fn export_keys_and_connection(
        &self,
        database: &str,
    ) -> Result<(egress_signer::Keys, tokio_postgres::Client)> {
        self.checked(database)?;
        let keys = self
            .signing
            .keys
            .keys(database)
            .map_err(|e| Error::Control(format!("signing keys: {e}")))?;
        let client = self
            .databases
            .dedicated(database, "egress-collector export")
            .await?;
        Ok((keys, client))
    }

    async fn history(&self, database: &str, n: u32) -> Result<Vec<StoredRow>> {
        self.checked(database)?;
        let client = self.databases.client(database).await?;
        store::last_rows(&client, i64::from(n)).await
    }
}

struct WatcherGuard(Arc<Stats>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0
            .watchers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn write_line(
    write: &mut (impl AsyncWriteExt + Unpin),
    value: &Value,
) -> std::io::Result<()> {
    let mut line = value.to_string();
    line.push('\n');
    write.write_all(line.as_bytes()).await
}

/// A row as `watch --json` prints it: the journal fields, hashes in hex.
pub fn row_json(row: &egress_proto::JournalRow, prev_hash: &[u8], row_hash: &[u8]) -> Value {
    let mut value = serde_json::to_value(row).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert("type".into(), json!("row"));
        map.insert("prev_hash".into(), json!(hex::encode(prev_hash)));
        map.insert("row_hash".into(), json!(hex::encode(row_hash)));
        if let Some(fingerprint) = &row.fingerprint {
            map.insert("fingerprint".into(), json!(hex::encode(fingerprint)));
        }
    }
    value
}

fn chained_json(chained: &ChainedRow) -> Value {
    row_json(&chained.row, &chained.prev_hash, &chained.row_hash)
}

fn stored_json(stored: &StoredRow) -> Value {
    row_json(&stored.row, &stored.prev_hash, &stored.row_hash)
}
