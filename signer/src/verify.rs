//! Verification of an export file (docs/EXPORT_FORMAT.md §5): the public key,
//! the chain from the anchor, every signed head, truncation, the export's
//! signature and the witness, each naming its first bad position.
//!
//! Rows are reduced to a `RowCheck` as they are read (their content hash
//! recomputed against their own `prev_hash`), so a file of millions of rows is
//! checked without holding its rows in memory; the links between rows are
//! then checked on the reduced form.

use std::fmt;

use egress_proto::GENESIS_HASH;
use serde_json::value::RawValue;

use crate::checked::CheckedRows;
use crate::error::{Error, Result};
use crate::export::{export_digest, header_around, ExportFile, ExportRange, HeadEntry};
use crate::export::{EXPORT_FORMAT, EXPORT_VERSION};
use crate::head::{ed25519_valid, hmac_valid};
use crate::headcheck::{row_problem, signature_problem, HeadView, RowAt};
use crate::keyring::Keyring;
use crate::rowcheck::check_rows_in_place;
use crate::witness::Witness;

/// What the verifier trusts beyond the file itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The database's HMAC key: checks every HMAC too.
    pub hmac_key: Option<[u8; 32]>,
    /// The Ed25519 public keys to expect (pinned: `--pubkey`, `--keyring`),
    /// instead of the file's own: the export and every head must be signed
    /// by one of them.
    pub keyring: Option<Keyring>,
    /// The last head accepted for this database, if any.
    pub witness: Option<Witness>,
}

/// Where a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The file's public key is not the pinned one.
    PublicKey,
    Row(i64),
    Head(i64),
    /// The export's digest, HMAC or Ed25519 signature.
    Signature,
    /// The head the witness saw, at this seq.
    Witness(i64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::PublicKey => write!(f, "export public key"),
            Position::Row(seq) => write!(f, "row seq {seq}"),
            Position::Head(seq) => write!(f, "signed head seq {seq}"),
            Position::Signature => write!(f, "export signature"),
            Position::Witness(seq) => write!(f, "witness seq {seq}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Position,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Where the Ed25519 public key used came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Given by the caller (`--pubkey`, `--keyring`).
    Pinned,
    /// The key the witness accepted before.
    Witness,
    /// The file's own key: proves integrity against anyone without the
    /// private key only if the key is compared with a trusted copy.
    File,
}

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct Report {
    pub database: String,
    pub range: ExportRange,
    pub rows: u64,
    pub anchor: [u8; 32],
    pub public_key: [u8; 32],
    pub key_source: KeySource,
    pub hmac_checked: bool,
    /// Distinct signed heads checked (the listed ones, and the latest when
    /// it is not among them).
    pub heads_checked: usize,
    /// Highest seq whose signed head was matched against an exported row.
    pub last_signed_seq: Option<i64>,
    /// Seq of the latest signed head, in range or not.
    pub latest_head: Option<i64>,
    /// Failed checks, at most one per kind of check, in the order of
    /// docs/EXPORT_FORMAT.md §5: the first is the first bad position.
    pub problems: Vec<Problem>,
    /// Why a check could not be made (nothing wrong was found, but the export
    /// is not verified either).
    pub incomplete: Vec<String>,
    /// Seq the witness was at before this export.
    pub witness_before: Option<i64>,
    /// The witness to keep after a successful verification.
    pub next_witness: Option<Witness>,
}

impl Report {
    /// Nothing wrong and nothing left unchecked.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.incomplete.is_empty()
    }

    /// 0 verified, 1 tampered, 2 could not check.
    pub fn exit_code(&self) -> u8 {
        if !self.problems.is_empty() {
            1
        } else if !self.incomplete.is_empty() {
            2
        } else {
            0
        }
    }
}

/// Reads and verifies an export from its JSON bytes, reducing each row to its
/// hashes as it is parsed. `Err`: the file is not an export at all (could
/// not check).
pub fn verify_export_json(json: &[u8], options: &VerifyOptions) -> Result<Report> {
    match read_fast(json) {
        Some((file, rows)) => {
            check_format(&file)?;
            Ok(check(&file, &rows, options))
        }
        None => verify_export_bytes(json.to_vec(), options),
    }
}

/// As `verify_export_json`, using `json` as scratch space instead of copying
/// it when serde reads the rows (they are cut into parts in place, see
/// `rowcheck`).
pub fn verify_export_bytes(mut json: Vec<u8>, options: &VerifyOptions) -> Result<Report> {
    if let Some((file, rows)) = read_fast(&json) {
        check_format(&file)?;
        return Ok(check(&file, &rows, options));
    }
    let format = |e: serde_json::Error| Error::Format {
        reason: e.to_string(),
    };
    // Everything but the rows first, with the rows as raw text; then the
    // rows, from where that text lies in the buffer.
    let (file, rows_at) = {
        let file: ExportFile<&RawValue> = serde_json::from_slice(&json).map_err(format)?;
        let text = file.rows.get().as_bytes();
        let start = text.as_ptr() as usize - json.as_ptr() as usize;
        let rows_at = start..start + text.len();
        (file.with_rows(()), rows_at)
    };
    check_format(&file)?;
    let rows = check_rows_in_place(&mut json, rows_at).map_err(format)?;
    Ok(check(&file, &rows, options))
}

/// The file read with the hand-written row scanner (`scan`), or None to
/// read it with serde: the scanner guesses where the rows array lies, serde
/// reads the rest of the file with `[]` in its place and must find the rows
/// exactly there, and the scanner reads the array whole. Then the file is
/// the same JSON with the rows put back, read as serde would read it; a
/// file laid out otherwise, or holding anything unexpected, goes to serde.
fn read_fast(json: &[u8]) -> Option<(ExportFile<()>, CheckedRows)> {
    let at = crate::scan::rows_array(json)?;
    let file = header_around(&json[..at.start], &json[at.end..])?;
    Some((file, crate::rowcheck::scan_rows(&json[at])?))
}

/// Reads and verifies an export file: in blocks (`stream`), so that a file
/// of any size is checked in little memory, when it is laid out as the
/// collector writes it; otherwise whole, as `verify_export_bytes`.
pub fn verify_export_file(mut file: std::fs::File, options: &VerifyOptions) -> Result<Report> {
    use std::io::{Read, Seek};
    let read_error = |source| Error::ReadExport { source };
    if let Some((head, rows)) = crate::stream::read(&mut file).map_err(read_error)? {
        check_format(&head)?;
        return Ok(check(&head, &rows, options));
    }
    let mut json = Vec::new();
    file.rewind().map_err(read_error)?;
    file.read_to_end(&mut json).map_err(read_error)?;
    verify_export_bytes(json, options)
}

/// Verifies an export held in memory.
pub fn verify_export(file: &ExportFile, options: &VerifyOptions) -> Result<Report> {
    check_format(file)?;
    let mut rows = CheckedRows::default();
    for row in &file.rows {
        rows.push_row(row);
    }
    Ok(check(file, &rows, options))
}

/// Parses an export held in memory (for tools and tests that edit one).
pub fn parse_export(json: &[u8]) -> Result<ExportFile> {
    let file: ExportFile = serde_json::from_slice(json).map_err(|e| Error::Format {
        reason: e.to_string(),
    })?;
    check_format(&file)?;
    Ok(file)
}

fn check_format<R>(file: &ExportFile<R>) -> Result<()> {
    let reason = if file.format != EXPORT_FORMAT {
        format!("format is {:?}, not {EXPORT_FORMAT:?}", file.format)
    } else if !(1..=EXPORT_VERSION).contains(&file.version) {
        format!(
            "version {} is not supported (this verifier reads versions 1 to {EXPORT_VERSION})",
            file.version
        )
    } else if let Some(h) = file
        .signed_heads
        .iter()
        .chain(file.latest_head.iter())
        .find(|h| (file.version >= 2) != (h.public_key.is_some() && h.collector.is_some()))
    {
        format!(
            "signed head seq {}: a version {} head {} its public_key and collector",
            h.seq,
            file.version,
            if file.version >= 2 {
                "must name"
            } else {
                "cannot name"
            }
        )
    } else if file.range.from < 1 {
        format!("range starts at seq {}; seqs start at 1", file.range.from)
    } else {
        return Ok(());
    };
    Err(Error::Format { reason })
}

fn short(key: &[u8; 32]) -> String {
    hex::encode(&key[..8])
}

/// The checks of docs/EXPORT_FORMAT.md §5, in order.
fn check<R>(file: &ExportFile<R>, rows: &CheckedRows, options: &VerifyOptions) -> Report {
    let (from, to) = (file.range.from, file.range.to);
    let mut problems = Vec::new();
    let mut incomplete = Vec::new();
    let problem = |at, message: String| Problem { at, message };

    // 1. The public key: pinned (one of the keyring's), else the
    //    witness's, else the file's own.
    let (key, key_source) = match (&options.keyring, &options.witness) {
        (Some(ring), _) if ring.contains(&file.public_key) => (file.public_key, KeySource::Pinned),
        (Some(ring), _) => (
            *ring.keys().next().unwrap_or(&file.public_key),
            KeySource::Pinned,
        ),
        (None, Some(w)) => (w.public_key, KeySource::Witness),
        (None, None) => (file.public_key, KeySource::File),
    };
    if key != file.public_key {
        let whence = match (key_source, &options.keyring) {
            (KeySource::Pinned, Some(ring)) if ring.len() > 1 => {
                format!("nor any of the {} keys of the keyring", ring.len())
            }
            (KeySource::Pinned, _) => "given with --pubkey".to_owned(),
            _ => "accepted by the witness".to_owned(),
        };
        problems.push(problem(
            Position::PublicKey,
            format!(
                "the export is signed with public key {}…, not {}… {whence}: it was re-signed by someone else",
                short(&file.public_key),
                short(&key)
            ),
        ));
    }

    // 2. The chain, from the anchor.
    let db_ok = rows
        .first_database
        .as_deref()
        .is_none_or(|d| d == file.database);
    let mut expected = from;
    let mut prev = file.anchor;
    let mut chain_problem = None;
    if from == 1 && file.anchor != GENESIS_HASH {
        chain_problem = Some(problem(
            Position::Row(1),
            "the export starts at seq 1 but its anchor is not the genesis hash".into(),
        ));
    }
    for r in rows.rows.iter().take_while(|_| chain_problem.is_none()) {
        let message = if r.seq != expected {
            Some(if r.seq > expected {
                format!(
                    "row seq {expected} is missing or out of place: seq {} comes after seq {}",
                    r.seq,
                    expected - 1
                )
            } else {
                format!(
                    "seq {} appears again or out of place after seq {}",
                    r.seq,
                    expected - 1
                )
            })
        } else if r.seq > to {
            Some(format!(
                "the row lies beyond the export's range, which ends at seq {to}"
            ))
        } else if !(db_ok && r.same_database) {
            Some(format!(
                "the row belongs to another database than {:?}",
                file.database
            ))
        } else if r.prev_hash != prev {
            Some(if r.seq == from && from == 1 {
                "its prev_hash is not the genesis hash (32 zero bytes)".to_owned()
            } else if r.seq == from {
                "its prev_hash is not the export's anchor".to_owned()
            } else {
                format!(
                    "its prev_hash does not match the row_hash of seq {}",
                    r.seq - 1
                )
            })
        } else if !r.content_ok {
            Some("its contents do not match its row_hash: the row was altered".to_owned())
        } else {
            None
        };
        if let Some(message) = message {
            chain_problem = Some(problem(Position::Row(expected.min(r.seq)), message));
            break;
        }
        prev = r.row_hash;
        expected = expected.saturating_add(1);
    }
    if chain_problem.is_none() && expected - 1 < to {
        chain_problem = Some(problem(
            Position::Row(expected),
            format!(
                "the export is cut: its rows end at seq {} but its range runs to seq {to}",
                expected - 1
            ),
        ));
    }
    problems.extend(chain_problem);

    // 3. Every listed signed head: order, range, signatures, and its row
    //    (the one head check every verifier shares: `headcheck`).
    let db = file.database.as_str();
    let hmac_key = options.hmac_key.as_ref();
    // Without a keyring, the file vouches for the keys of its heads only
    // as far as the export's key (or the witness's) goes: a head signed
    // with another key is checked for alteration, but who signed it is not
    // known, so the export is not verified (other collectors' heads, or a
    // forger's).
    if options.keyring.is_none() {
        let mut others: Vec<(i64, String)> = Vec::new();
        for h in file.signed_heads.iter().chain(file.latest_head.iter()) {
            if let Some(k) = h.public_key.filter(|k| k != &key) {
                let who = format!(
                    "{} ({})",
                    crate::keyring::key_id(&k),
                    h.collector.as_deref().unwrap_or("?")
                );
                if !others.iter().any(|(_, w)| w == &who) {
                    others.push((h.seq, who));
                }
            }
        }
        if let Some((seq, _)) = others.first() {
            let who: Vec<&str> = others.iter().map(|(_, w)| w.as_str()).collect();
            incomplete.push(format!(
                "signed heads from seq {seq} on were signed with other keys than the export's: {}; pin the keyring (--pubkey for every collector, or --keyring FILE) to check who signed them",
                who.join(", ")
            ));
        }
    }
    // Each head is checked with the key that signed it (version 1: the
    // file's), which must be in the keyring when one is pinned; the HMAC key
    // given is the exporting collector's, so it checks that collector's heads.
    let head_problem = |h: &HeadEntry| {
        let signer = h.key(&file.public_key);
        if let Some(out) = options
            .keyring
            .as_ref()
            .and_then(|ring| ring.outside(signer, h.collector.as_deref()))
        {
            return Some(out);
        }
        let signer = if options.keyring.is_none() && h.public_key.is_none() {
            &key
        } else {
            signer
        };
        let hmac = hmac_key.filter(|_| signer == &file.public_key);
        signature_problem(db, &HeadView::of_entry(db, h), signer, hmac)
    };
    let row_mismatch = |h: &HeadEntry| {
        let row = rows
            .at(from, h.seq)
            .map_or(RowAt::Missing, |r| RowAt::Hash(r.row_hash));
        row_problem(&HeadView::of_entry(db, h), row)
    };
    let mut last_signed_seq = None;
    let mut previous: Option<&HeadEntry> = None;
    for h in &file.signed_heads {
        let message = if previous.is_some_and(|p| h.seq < p.seq) {
            Some("it is listed after a head of a higher seq: heads reordered or an older head replayed".to_owned())
        } else if h.seq < from || h.seq > to {
            Some(format!(
                "it lies outside the export's range (seq {from} to {to})"
            ))
        } else {
            head_problem(h).or_else(|| row_mismatch(h))
        };
        if let Some(message) = message {
            problems.push(problem(Position::Head(h.seq), message));
            break;
        }
        last_signed_seq = Some(h.seq);
        previous = Some(h);
    }

    // 4. The latest signed head: truncation and replay.
    match (&file.latest_head, file.signed_heads.last()) {
        (None, Some(last)) => problems.push(problem(
            Position::Head(last.seq),
            "the export lists signed heads but not the latest one".into(),
        )),
        (None, None) => {}
        (Some(l), _) => {
            // Seq, not signing time, orders heads: a collector's clock may
            // step back, its chain never does.
            let newer = file.signed_heads.iter().find(|h| h.seq > l.seq);
            let last_row = rows.rows.last().map_or(from - 1, |r| r.seq);
            let message = if let Some(h) = newer {
                Some(format!(
                    "the latest signed head is older than signed head seq {} in the same export: an older head was replayed",
                    h.seq
                ))
            } else if let Some(m) = head_problem(l) {
                Some(m)
            } else if l.seq > to && file.range.to_end {
                row_problem(&HeadView::of_entry(db, l), RowAt::Beyond { last: last_row })
            } else if (from..=to).contains(&l.seq) {
                row_mismatch(l)
            } else {
                None
            };
            match message {
                Some(message) => problems.push(problem(Position::Head(l.seq), message)),
                None if (from..=to).contains(&l.seq) => {
                    last_signed_seq = last_signed_seq.max(Some(l.seq));
                }
                None => {}
            }
        }
    }

    // 5. The export's own digest and signatures.
    let digest = export_digest(file, rows.rows.iter().map(|r| &r.row_hash));
    let signature_problem = if digest != file.digest {
        Some("the file's content does not match its digest: it was altered after export".to_owned())
    } else if !ed25519_valid(&key, &file.digest, &file.signature) {
        Some(format!(
            "the export's Ed25519 signature is not valid for public key {}…",
            short(&key)
        ))
    } else if options
        .hmac_key
        .as_ref()
        .is_some_and(|k| !hmac_valid(k, &file.digest, &file.hmac))
    {
        Some("the export's HMAC is not valid for the given key".to_owned())
    } else {
        None
    };
    if let Some(message) = signature_problem {
        problems.push(problem(Position::Signature, message));
    }

    // 6. The witness: the head it saw must still be there, unchanged.
    let mut witness_before = None;
    if let Some(w) = &options.witness {
        witness_before = Some(w.seq);
        let last_row = rows.rows.last().map_or(from - 1, |r| r.seq);
        let message = if w.database != file.database {
            incomplete.push(format!(
                "the witness is for database {:?}, not {:?}: keep one witness file per database",
                w.database, file.database
            ));
            None
        } else if w.public_key != key
            // Several collectors export the same database: the witness may
            // have accepted another pinned collector's export.
            && !options
                .keyring
                .as_ref()
                .is_some_and(|ring| ring.contains(&w.public_key))
        {
            Some(format!(
                "the witness accepted exports signed with public key {}…, this one is checked with {}…",
                short(&w.public_key),
                short(&key)
            ))
        } else if w.seq > last_row {
            Some(format!(
                "the log was rewritten or truncated since the witness saw seq {}: this export ends at seq {last_row}",
                w.seq
            ))
        } else if w.seq >= from {
            match rows.at(from, w.seq) {
                Some(r) if r.row_hash == w.row_hash => None,
                _ => Some(format!(
                    "the log was rewritten since the witness saw seq {}: row {} no longer has hash {}…",
                    w.seq,
                    w.seq,
                    short(&w.row_hash)
                )),
            }
        } else if w.seq == from - 1 {
            (file.anchor != w.row_hash).then(|| {
                format!(
                    "the log was rewritten since the witness saw seq {}: the export's anchor is not that row's hash",
                    w.seq
                )
            })
        } else {
            incomplete.push(format!(
                "the export starts at seq {from}, after seq {} that the witness saw: export from seq {} or earlier to check it",
                w.seq + 1,
                w.seq + 1
            ));
            None
        };
        if let Some(message) = message {
            problems.push(problem(Position::Witness(w.seq), message));
        }
    }

    let mut report = Report {
        database: file.database.clone(),
        range: file.range,
        rows: rows.rows.len() as u64,
        anchor: file.anchor,
        public_key: file.public_key,
        key_source,
        hmac_checked: options.hmac_key.is_some(),
        // The latest head is usually one of the listed ones too: count it once.
        heads_checked: file.signed_heads.len()
            + usize::from(
                file.latest_head
                    .as_ref()
                    .is_some_and(|latest| !file.signed_heads.contains(latest)),
            ),
        last_signed_seq,
        latest_head: file.latest_head.as_ref().map(|h| h.seq),
        problems,
        incomplete,
        witness_before,
        next_witness: None,
    };
    if report.ok() {
        report.next_witness = next_witness(file, last_signed_seq, &key, options.witness.as_ref());
    }
    report
}

/// The witness after a successful check: the highest head matched against a
/// row, unless the old witness is already there.
fn next_witness<R>(
    file: &ExportFile<R>,
    last_signed_seq: Option<i64>,
    key: &[u8; 32],
    old: Option<&Witness>,
) -> Option<Witness> {
    let head = last_signed_seq.and_then(|seq| {
        file.signed_heads
            .iter()
            .chain(file.latest_head.iter())
            .filter(|h| h.seq == seq)
            .max_by_key(|h| h.signed_at_us)
    });
    match (head, old) {
        (Some(h), Some(w)) if h.seq <= w.seq => Some(w.clone()),
        (Some(h), _) => Some(Witness::new(
            &file.database,
            h.seq,
            h.row_hash,
            h.signed_at_us,
            *key,
        )),
        (None, w) => w.cloned(),
    }
}
