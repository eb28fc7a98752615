//! The durable spool of one database: what its chain appender could not
//! journal (the database down, full or failing, or the collector stopping)
//! waits here, in the collector's state directory, and is replayed through
//! the same appender, in order and before anything newer. Items are spooled
//! redacted and unchained, so the chain keeps one writer and no gap: their
//! sequence numbers are given when they are finally committed.
//!
//! File `spool/<database>.spool`: an 8-byte header `EGSPOOL1`, then records
//! `len: u32 LE ‖ crc32(payload): u32 LE ‖ payload` (docs/JOURNAL_FORMAT.md
//! §8). Appends go through a buffer and are fsync'd in batches (`sync`).
//! `<database>.spool.pos` holds the offset replayed so far (fsync'd after
//! each replayed batch commits); a fully replayed spool is truncated.
//! At open the whole file is checked: a torn or corrupt tail (a crash in
//! mid-write, a bad disk) is cut off and reported once, in order, as a
//! `spool_corrupt` loss; it is never replayed.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use egress_proto::{ConfigChange, Drops, JournalRow, MAX_RECORD_SIZE};
use serde::{Deserialize, Serialize};

use crate::pipeline::stage::{Item, LossSummary, RedactedEntry, Sender, WorkerLoss};

/// Folder of the spools, inside the state directory.
pub const SPOOL_DIR: &str = "spool";
const HEADER: &[u8; 8] = b"EGSPOOL1";
/// `len` and `crc` before each payload.
const RECORD_HEAD: u64 = 8;
/// Gap reason of records cut off as torn or corrupt.
pub const SPOOL_CORRUPT: &str = "spool_corrupt";
/// Gap reason of events shed because the spool was full.
pub const SPOOL_FULL: &str = "spool_full";
/// Gap reason of events shed because the spool could not be written.
pub const SPOOL_UNWRITABLE: &str = "spool_unwritable";

/// `spool.max_bytes`, shared by every database's spool.
#[derive(Debug)]
pub struct Budget {
    max: u64,
    used: AtomicU64,
}

impl Budget {
    pub fn new(max: u64) -> Arc<Budget> {
        Arc::new(Budget {
            max,
            used: AtomicU64::new(0),
        })
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }

    fn reserve(&self, bytes: u64, force: bool) -> bool {
        self.used
            .fetch_update(Relaxed, Relaxed, |used| {
                let after = used.saturating_add(bytes);
                (force || after <= self.max).then_some(after)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Relaxed, Relaxed, |used| Some(used.saturating_sub(bytes)));
    }
}

/// One spooled item, with owned text where the pipeline has `&'static str`.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Call {
        worker_id: u64,
        worker_seq: u64,
        row: Box<JournalRow>,
        suppressed: Option<String>,
    },
    Drops {
        sender: (i64, i64),
        drops: Drops,
    },
    ConfigChange {
        sender: (i64, i64),
        change: ConfigChange,
    },
    Lost {
        reason: String,
        workers: Vec<(String, u64, WorkerLoss)>,
    },
}

/// The pipeline's labels are static: map spooled text back onto them.
fn static_label(text: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "capture_disabled",
        "channel_disabled",
        "mailbox_full",
        "database_unavailable",
        "database_rejected",
        "database_missing",
        "queue_full",
        SPOOL_FULL,
        SPOOL_UNWRITABLE,
        SPOOL_CORRUPT,
    ];
    KNOWN
        .iter()
        .find(|k| **k == text)
        .copied()
        .unwrap_or("unspecified")
}

fn to_record(item: &Item<RedactedEntry>) -> Option<Record> {
    let sender = |s: &Sender| (s.pid, s.uid);
    Some(match item {
        Item::Call(entry) => Record::Call {
            worker_id: entry.worker_id,
            worker_seq: entry.worker_seq,
            row: Box::new(entry.row.clone()),
            suppressed: entry.suppressed.map(str::to_owned),
        },
        Item::Drops(s, drops) => Record::Drops {
            sender: sender(s),
            drops: drops.clone(),
        },
        Item::ConfigChange(s, change) => Record::ConfigChange {
            sender: sender(s),
            change: change.clone(),
        },
        Item::Lost(summary) => Record::Lost {
            reason: summary.reason.to_owned(),
            workers: summary
                .workers
                .iter()
                .map(|((db, worker), loss)| (db.clone(), *worker, loss.clone()))
                .collect(),
        },
        // A Hello is never journaled; the worker repeats it every minute.
        Item::Hello(..) => return None,
    })
}

fn from_record(record: Record, database: &str) -> Item<RedactedEntry> {
    let sender = |(pid, uid): (i64, i64)| Sender { pid, uid };
    match record {
        Record::Call {
            worker_id,
            worker_seq,
            row,
            suppressed,
        } => Item::Call(RedactedEntry {
            database: database.to_owned(),
            worker_id,
            worker_seq,
            row: *row,
            suppressed: suppressed.as_deref().map(static_label),
        }),
        Record::Drops { sender: s, drops } => Item::Drops(sender(s), drops),
        Record::ConfigChange { sender: s, change } => Item::ConfigChange(sender(s), change),
        Record::Lost { reason, workers } => {
            let mut summary = LossSummary::new(static_label(&reason));
            summary.workers = workers
                .into_iter()
                .map(|(db, worker, loss)| ((db, worker), loss))
                .collect::<BTreeMap<_, _>>();
            Item::Lost(summary)
        }
    }
}

/// A loss the collector itself is accountable for, in no worker's name
/// (worker 0, as for the collector's own setting changes).
pub fn collector_loss(database: &str, reason: &'static str, count: u64) -> LossSummary {
    let mut summary = LossSummary::new(reason);
    summary.workers.insert(
        (database.to_owned(), 0),
        WorkerLoss {
            other: count,
            ..WorkerLoss::default()
        },
    );
    summary
}

/// Where the spool was cut at open, and how much was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub at: u64,
    pub bytes: u64,
    pub why: String,
}

#[derive(Debug)]
pub enum AppendError {
    /// `spool.max_bytes` reached.
    Full,
    Io(std::io::Error),
}

/// What one `read_batch` took, for `consumed` once it is journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    end: u64,
    records: u64,
    with_corruption: bool,
}

impl Replay {
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[derive(Debug)]
pub struct Spool {
    database: String,
    path: PathBuf,
    pos_path: PathBuf,
    writer: Option<BufWriter<File>>,
    /// End of the file, header included (0: no file).
    len: u64,
    /// Records before this offset are journaled.
    read_at: u64,
    /// Records after `read_at`.
    pending: u64,
    unsynced: bool,
    corrupt: Option<Corruption>,
    budget: Arc<Budget>,
    /// Set when the spool could not be opened: every append fails.
    broken: Option<String>,
}

impl Spool {
    /// Opens (and checks) the spool of `database` in `state_dir`.
    pub fn open(state_dir: &Path, database: &str, budget: Arc<Budget>) -> Spool {
        let dir = state_dir.join(SPOOL_DIR);
        let path = dir.join(format!("{database}.spool"));
        let pos_path = dir.join(format!("{database}.spool.pos"));
        let mut spool = Spool {
            database: database.to_owned(),
            path,
            pos_path,
            writer: None,
            len: 0,
            read_at: 0,
            pending: 0,
            unsynced: false,
            corrupt: None,
            budget,
            broken: None,
        };
        if let Err(e) = spool.load(&dir) {
            spool.broken = Some(format!("{}: {e}", spool.path.display()));
        }
        spool
    }

    /// The databases with a spool in `state_dir` (to replay at start).
    pub fn databases_spooled(state_dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(state_dir.join(SPOOL_DIR)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.metadata().is_ok_and(|m| m.len() > 0))
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".spool")
                    .map(str::to_owned)
            })
            .filter(|name| crate::db::databases::valid_database_name(name))
            .collect();
        names.sort();
        names
    }

    fn load(&mut self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let file_len = file.metadata()?.len();
        let pos = std::fs::read_to_string(&self.pos_path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        let scan = scan(file)?;
        if let Some(at) = scan.cut_at {
            self.corrupt = Some(Corruption {
                // Cut before the first record: reported before whatever
                // is appended behind a fresh header.
                at: at.max(HEADER.len() as u64),
                bytes: file_len - at,
                why: scan.why,
            });
            let file = OpenOptions::new().write(true).open(&self.path)?;
            file.set_len(at)?;
            file.sync_all()?;
        }
        self.len = scan.cut_at.unwrap_or(file_len);
        // A position that is not a record boundary cannot be trusted: replay
        // everything (calls already journaled are then refused as duplicates).
        self.read_at = match pos {
            Some(p) if scan.boundaries.binary_search(&p).is_ok() => p,
            _ => scan.boundaries.first().copied().unwrap_or(0),
        };
        self.pending = scan
            .boundaries
            .iter()
            .filter(|b| **b >= self.read_at && **b < self.len)
            .count() as u64;
        self.budget.reserve(self.len, true);
        Ok(())
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Whether anything waits to be replayed (records, or a corruption to
    /// report).
    pub fn has_pending(&self) -> bool {
        self.pending > 0 || self.corrupt.is_some()
    }

    pub fn pending(&self) -> u64 {
        self.pending
    }

    pub fn bytes(&self) -> u64 {
        self.len
    }

    pub fn corruption(&self) -> Option<&Corruption> {
        self.corrupt.as_ref()
    }

    pub fn max_bytes(&self) -> u64 {
        self.budget.max()
    }

    /// Whether the budget has `bytes` to spare.
    pub fn has_room(&self, bytes: u64) -> bool {
        self.budget.used().saturating_add(bytes) <= self.budget.max()
    }

    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Appends one item (a `Hello` is skipped). `force`: beyond the budget
    /// too (loss summaries: a few bytes that carry the accounting).
    pub fn append(&mut self, item: &Item<RedactedEntry>, force: bool) -> Result<(), AppendError> {
        let Some(record) = to_record(item) else {
            return Ok(());
        };
        if let Some(why) = &self.broken {
            return Err(AppendError::Io(std::io::Error::other(why.clone())));
        }
        let payload = egress_proto::encode_record(&record)
            .map_err(|e| AppendError::Io(std::io::Error::other(e.to_string())))?;
        let header = if self.len == 0 {
            HEADER.len() as u64
        } else {
            0
        };
        let size = header + RECORD_HEAD + payload.len() as u64;
        if !self.budget.reserve(size, force) {
            return Err(AppendError::Full);
        }
        let written = self.write_record(&payload, header > 0);
        match written {
            Ok(()) => {
                if header > 0 {
                    self.read_at = HEADER.len() as u64;
                }
                self.len += size;
                self.pending += 1;
                self.unsynced = true;
                Ok(())
            }
            Err(e) => {
                self.budget.release(size);
                // What the buffer held may be half written: start afresh
                // from what the file says at the next open.
                self.writer = None;
                Err(AppendError::Io(e))
            }
        }
    }

    fn write_record(&mut self, payload: &[u8], header: bool) -> std::io::Result<()> {
        if self.writer.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.writer = Some(BufWriter::with_capacity(256 << 10, file));
        }
        let writer = self.writer.as_mut().expect("opened above");
        if header {
            writer.write_all(HEADER)?;
        }
        let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
        writer.write_all(&len.to_le_bytes())?;
        writer.write_all(&crc32fast::hash(payload).to_le_bytes())?;
        writer.write_all(payload)
    }

    /// Makes every append so far durable: flush, then fsync. Returns
    /// whether anything was written.
    pub fn sync(&mut self) -> std::io::Result<bool> {
        if !self.unsynced {
            return Ok(false);
        }
        if let Some(writer) = self.writer.as_mut() {
            writer.flush()?;
            writer.get_ref().sync_data()?;
        }
        self.unsynced = false;
        Ok(true)
    }

    /// Reads up to `max` items from the replay position (the corruption
    /// found at open comes, in order, as a `spool_corrupt` loss).
    pub fn read_batch(
        &mut self,
        max: usize,
    ) -> std::io::Result<(Vec<Item<RedactedEntry>>, Replay)> {
        if let Some(writer) = self.writer.as_mut() {
            writer.flush()?;
        }
        let mut items = Vec::new();
        let mut replay = Replay {
            end: self.read_at,
            records: 0,
            with_corruption: false,
        };
        let report_at = self.corrupt.as_ref().map(|c| (c.at, corrupt_records(c)));
        // The corruption found at open is reported where it was cut, after
        // the good records before it and before anything appended since.
        let report = |items: &mut Vec<Item<RedactedEntry>>, replay: &mut Replay| {
            if let Some((at, count)) = report_at {
                if !replay.with_corruption && replay.end >= at {
                    replay.with_corruption = true;
                    items.push(Item::Lost(collector_loss(
                        &self.database,
                        SPOOL_CORRUPT,
                        count,
                    )));
                }
            }
        };
        let mut reader = if self.len > self.read_at {
            let mut file = File::open(&self.path)?;
            file.seek(SeekFrom::Start(self.read_at))?;
            Some(BufReader::with_capacity(
                256 << 10,
                file.take(self.len - self.read_at),
            ))
        } else {
            None
        };
        let mut payload = Vec::new();
        loop {
            report(&mut items, &mut replay);
            let Some(reader) = reader.as_mut() else { break };
            if items.len() >= max || replay.end >= self.len {
                break;
            }
            let mut head = [0u8; RECORD_HEAD as usize];
            reader.read_exact(&mut head)?;
            let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
            payload.resize(len.min(MAX_RECORD_SIZE), 0);
            reader.read_exact(&mut payload)?;
            replay.end += RECORD_HEAD + len as u64;
            replay.records += 1;
            // Checked at open and written by this process since: a
            // mismatch now is the disk's doing, counted like a torn tail.
            let decoded = (crc32fast::hash(&payload) == crc)
                .then(|| egress_proto::decode_record::<Record>(&payload).ok())
                .flatten();
            items.push(match decoded {
                Some(record) => from_record(record, &self.database),
                None => Item::Lost(collector_loss(&self.database, SPOOL_CORRUPT, 1)),
            });
        }
        Ok((items, replay))
    }

    /// What `read_batch` gave is journaled: move past it, and truncate the
    /// spool once everything is.
    pub fn consumed(&mut self, replay: Replay) -> std::io::Result<()> {
        self.read_at = replay.end;
        self.pending = self.pending.saturating_sub(replay.records);
        if replay.with_corruption {
            self.corrupt = None;
        }
        if self.read_at >= self.len && self.corrupt.is_none() {
            self.writer = None;
            if self.len > 0 {
                let file = OpenOptions::new().write(true).open(&self.path)?;
                file.set_len(0)?;
                file.sync_all()?;
            }
            self.budget.release(self.len);
            self.len = 0;
            self.read_at = 0;
            self.pending = 0;
            match std::fs::remove_file(&self.pos_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            return Ok(());
        }
        let tmp = self.pos_path.with_extension("pos.tmp");
        let mut file = File::create(&tmp)?;
        writeln!(file, "{}", self.read_at)?;
        file.sync_data()?;
        std::fs::rename(&tmp, &self.pos_path)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// Events cut off with a corrupt tail: at least one (the bytes may have held
/// many; their workers' next sequence numbers show the rest as a jump).
fn corrupt_records(corrupt: &Corruption) -> u64 {
    u64::from(corrupt.bytes > 0)
}

/// The record boundaries of a spool file, and where it stops being valid.
struct Scan {
    boundaries: Vec<u64>,
    cut_at: Option<u64>,
    why: String,
}

fn scan(file: File) -> std::io::Result<Scan> {
    let len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let mut out = Scan {
        boundaries: Vec::new(),
        cut_at: None,
        why: String::new(),
    };
    let mut header = [0u8; 8];
    if len < HEADER.len() as u64 || {
        reader.read_exact(&mut header)?;
        &header != HEADER
    } {
        out.cut_at = Some(0);
        out.why = "no spool header".into();
        return Ok(out);
    }
    let mut at = HEADER.len() as u64;
    let mut payload = Vec::new();
    while at < len {
        out.boundaries.push(at);
        let cut = |out: &mut Scan, why: &str| {
            out.boundaries.pop();
            out.cut_at = Some(at);
            out.why = why.to_owned();
        };
        if len - at < RECORD_HEAD {
            cut(&mut out, "torn record header");
            break;
        }
        let mut head = [0u8; RECORD_HEAD as usize];
        reader.read_exact(&mut head)?;
        let rec_len = u64::from(u32::from_le_bytes(head[..4].try_into().expect("4 bytes")));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if rec_len > MAX_RECORD_SIZE as u64 {
            cut(&mut out, "record length out of range");
            break;
        }
        if len - at - RECORD_HEAD < rec_len {
            cut(&mut out, "torn record");
            break;
        }
        payload.resize(rec_len as usize, 0);
        reader.read_exact(&mut payload)?;
        if crc32fast::hash(&payload) != crc {
            cut(&mut out, "checksum mismatch");
            break;
        }
        at += RECORD_HEAD + rec_len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(seq: u64) -> Item<RedactedEntry> {
        Item::Call(RedactedEntry {
            database: "db".into(),
            worker_id: 7,
            worker_seq: seq,
            row: JournalRow {
                kind: "call".into(),
                worker_seq: Some(seq as i64),
                host: Some("example.com".into()),
                ..JournalRow::default()
            },
            suppressed: None,
        })
    }

    fn seqs(items: &[Item<RedactedEntry>]) -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Call(e) => Some(e.worker_seq),
                _ => None,
            })
            .collect()
    }

    fn dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("egress-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn items_come_back_in_order_across_a_reopen_and_the_spool_empties() {
        let dir = dir("order");
        let budget = Budget::new(1 << 20);
        let mut spool = Spool::open(&dir, "db", budget.clone());
        for seq in 1..=10 {
            spool.append(&call(seq), false).unwrap();
        }
        spool.sync().unwrap();
        drop(spool);
        let mut spool = Spool::open(&dir, "db", Budget::new(1 << 20));
        assert_eq!(spool.pending(), 10);
        let (first, replay) = spool.read_batch(4).unwrap();
        assert_eq!(seqs(&first), [1, 2, 3, 4]);
        spool.consumed(replay).unwrap();
        drop(spool);
        // The position survives a restart.
        let mut spool = Spool::open(&dir, "db", Budget::new(1 << 20));
        let (rest, replay) = spool.read_batch(100).unwrap();
        assert_eq!(seqs(&rest), (5..=10).collect::<Vec<_>>());
        spool.consumed(replay).unwrap();
        assert!(!spool.has_pending());
        assert_eq!(
            std::fs::metadata(dir.join("spool/db.spool")).unwrap().len(),
            0
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_budget_refuses_beyond_max_bytes_except_forced_summaries() {
        let dir = dir("budget");
        let budget = Budget::new(600);
        let mut spool = Spool::open(&dir, "db", budget.clone());
        let mut fitted = 0;
        while spool.append(&call(fitted + 1), false).is_ok() {
            fitted += 1;
        }
        assert!(fitted > 0 && budget.used() <= 600);
        let summary = Item::Lost(collector_loss("db", SPOOL_FULL, 5));
        spool.append(&summary, true).unwrap();
        let (items, _) = spool.read_batch(100).unwrap();
        assert_eq!(items.len() as u64, fitted + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_and_reported_once_after_the_good_records() {
        for damage in ["torn", "flipped"] {
            let dir = dir(damage);
            let mut spool = Spool::open(&dir, "db", Budget::new(1 << 20));
            for seq in 1..=3 {
                spool.append(&call(seq), false).unwrap();
            }
            spool.sync().unwrap();
            drop(spool);
            let path = dir.join("spool/db.spool");
            let mut bytes = std::fs::read(&path).unwrap();
            let n = bytes.len();
            match damage {
                "torn" => bytes.truncate(n - 5),
                _ => bytes[n - 3] ^= 0xff,
            }
            std::fs::write(&path, &bytes).unwrap();
            let mut spool = Spool::open(&dir, "db", Budget::new(1 << 20));
            assert!(spool.corruption().is_some(), "{damage}");
            // New records go after the cut, behind the report.
            spool.append(&call(4), false).unwrap();
            let (items, replay) = spool.read_batch(100).unwrap();
            assert_eq!(seqs(&items), [1, 2, 4], "{damage}");
            let lost: Vec<_> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Lost(s) => Some(s.reason),
                    _ => None,
                })
                .collect();
            assert_eq!(lost, [SPOOL_CORRUPT]);
            assert!(
                matches!(items[2], Item::Lost(_)),
                "the report comes at the cut"
            );
            spool.consumed(replay).unwrap();
            assert!(!spool.has_pending());
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
