//! Reading an export file in blocks instead of whole: the rows array is cut
//! at line starts into parts of about `BLOCK` bytes as it is read, and the
//! parts are scanned (`scan`) on every core while the next ones are read. The
//! same buffers are reused, so a file of any size is checked in a few
//! megabytes per core plus 80 bytes per row, and its pages are never copied
//! into fresh memory.
//!
//! It reads files laid out as the collector writes them (the rows array
//! last but for the digest and signatures, one row per line); for any other
//! file, or anything the scanner leaves to serde, it answers None and the
//! caller reads the file whole.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use crate::checked::CheckedRows;
use crate::export::ExportFile;
use crate::rowcheck::rfind_cut;
use crate::scan::{rows_start, RowScanner};

/// Bytes read at a time; a part of the rows is about this long.
const BLOCK: usize = 4 << 20;
/// Beyond this, the text before the rows is not looked through any further.
const PREFIX_LIMIT: usize = 1 << 30;

/// A part of the rows array for a scanner thread: its number and text.
type Part = (usize, Vec<u8>);
/// What came of it, and the buffer back for reuse.
type Scanned = (usize, Option<CheckedRows>, Vec<u8>);

/// Reads `input` to its end: the file's fields but the rows, and the rows
/// reduced; None if it is not laid out as the collector writes it or holds
/// anything the scanner leaves to serde.
pub(crate) fn read(input: impl Read) -> std::io::Result<Option<(ExportFile<()>, CheckedRows)>> {
    read_in_blocks(input, BLOCK)
}

/// As `read`, `block` bytes at a time.
#[allow(clippy::type_complexity)]
fn read_in_blocks(
    mut input: impl Read,
    block: usize,
) -> std::io::Result<Option<(ExportFile<()>, CheckedRows)>> {
    // The text before the rows array, read until its `[` is found.
    let mut prefix = Vec::with_capacity(block);
    let mut tried_at = 0;
    let start = loop {
        let n = fill(&mut input, &mut prefix, block)?;
        let at_end = n == 0;
        if at_end || prefix.len() >= 2 * tried_at {
            tried_at = prefix.len();
            if let Some(start) = rows_start(&prefix) {
                break start;
            }
        }
        if at_end || prefix.len() > PREFIX_LIMIT {
            return Ok(None);
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let (parts, jobs) = sync_channel::<Part>(threads);
    let (results, scanned) = sync_channel::<Scanned>(threads);
    let jobs = Mutex::new(jobs);
    let (suffix, checked) = std::thread::scope(|s| {
        for _ in 0..threads {
            let results = results.clone();
            s.spawn(|| scan_parts(&jobs, results));
        }
        drop(results);
        let carry = prefix.split_off(start + 1);
        // Both channel ends go with it: when it returns, for any reason, the
        // scanners see the parts end or nobody waiting, and stop.
        read_rows(&mut input, carry, parts, scanned, threads, block)
    })?;
    let (Some(suffix), Some(checked)) = (suffix, checked) else {
        return Ok(None);
    };
    prefix.truncate(start);
    Ok(crate::export::header_around(&prefix, &suffix).map(|file| (file, checked)))
}

/// Reads more of `input` into `buf`, up to `more` bytes (less only at the
/// end); returns how many.
fn fill(input: &mut impl Read, buf: &mut Vec<u8>, more: usize) -> std::io::Result<usize> {
    let before = buf.len();
    input.take(more as u64).read_to_end(buf)?;
    Ok(buf.len() - before)
}

/// A scanner thread: parts in, reduced rows out, until the parts end.
fn scan_parts(jobs: &Mutex<Receiver<Part>>, results: SyncSender<Scanned>) {
    let mut scanner = RowScanner::default();
    loop {
        let job = jobs.lock().expect("no scanner panics holding it").recv();
        let Ok((number, text)) = job else {
            return;
        };
        let mut rows = CheckedRows::default();
        let read = scanner.scan(&text, &mut rows).map(|_| rows);
        if results.send((number, read, text)).is_err() {
            return;
        }
    }
}

/// The reading thread: from just after the rows array's `[`, cuts the text
/// into parts and hands them out, collecting what comes back in order.
/// Returns the text after the array's `]` and the rows; None for either
/// when the file cannot be read this way.
#[allow(clippy::type_complexity)]
fn read_rows(
    input: &mut impl Read,
    mut buf: Vec<u8>,
    parts: SyncSender<Part>,
    scanned: Receiver<Scanned>,
    threads: usize,
    block: usize,
) -> std::io::Result<(Option<Vec<u8>>, Option<CheckedRows>)> {
    let mut done: Vec<Option<CheckedRows>> = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut in_flight = 0;
    let mut sent = 0;
    let mut ok = true;
    // Takes one result back: its rows in place, its buffer for reuse.
    let take = |done: &mut Vec<Option<CheckedRows>>, spare: &mut Vec<Vec<u8>>| {
        let (number, rows, mut text) = scanned.recv().expect("the scanners outlive the reading");
        if done.len() <= number {
            done.resize_with(number + 1, || None);
        }
        done[number] = rows;
        text.clear();
        spare.push(text);
    };
    let suffix = loop {
        let read = fill(input, &mut buf, block)?;
        let cut = if read == 0 { None } else { rfind_cut(&buf) };
        let Some((comma, brace)) = cut else {
            if read > 0 {
                continue; // no whole row yet: read on
            }
            // The end: the last part runs to the last `]` of the file.
            let Some(end) = buf.iter().rposition(|&b| b == b']') else {
                break None;
            };
            let suffix = buf.split_off(end + 1);
            buf.truncate(end);
            ok = parts.send((sent, buf)).is_ok();
            in_flight += usize::from(ok);
            break Some(suffix);
        };
        let mut next = spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(block + block / 4));
        next.extend_from_slice(&buf[brace..]);
        buf.truncate(comma);
        if parts.send((sent, buf)).is_err() {
            ok = false;
            break None;
        }
        sent += 1;
        in_flight += 1;
        buf = next;
        while in_flight > threads {
            take(&mut done, &mut spare);
            in_flight -= 1;
        }
    };
    while in_flight > 0 {
        take(&mut done, &mut spare);
        in_flight -= 1;
    }
    if !ok || suffix.is_none() {
        return Ok((None, None));
    }
    // Every part must hold rows, unless the array has only one, empty.
    let mut all = CheckedRows::default();
    let several = done.len() > 1;
    for part in done {
        match part {
            Some(rows) if !rows.rows.is_empty() || !several => all.extend(rows),
            _ => return Ok((suffix, None)),
        }
    }
    Ok((suffix, Some(all)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::build_export;
    use crate::keys::Keys;
    use egress_proto::{JournalRow, GENESIS_HASH};

    /// An export of `n` rows of varied sizes, as the collector writes it.
    fn export(n: i64) -> String {
        let mut prev = GENESIS_HASH;
        let rows: Vec<_> = (1..=n)
            .map(|seq| {
                let row = JournalRow {
                    seq,
                    database: "db".into(),
                    kind: "call".into(),
                    collector: "c".into(),
                    host: Some("h".repeat(seq as usize % 300)),
                    detail: (seq % 7 == 0).then(|| r#"{"a":"b\"c"}"#.into()),
                    stack: Some(vec!["frame".into(); seq as usize % 5]),
                    ..JournalRow::default()
                };
                let hash = row.hash_after(&prev);
                let out = (row, prev, hash);
                prev = hash;
                out
            })
            .collect();
        let keys = Keys::from_secrets([1; 32], [2; 32]);
        build_export("db", &rows, &[], &keys, 7, 1, None).to_json()
    }

    /// What serde reads from the same text.
    fn by_serde(json: &str) -> (ExportFile<()>, CheckedRows) {
        let file = crate::verify::parse_export(json.as_bytes()).unwrap();
        let mut rows = CheckedRows::default();
        for row in &file.rows {
            rows.push_row(row);
        }
        let head = ExportFile {
            rows: (),
            format: file.format,
            version: file.version,
            database: file.database,
            exported_at_us: file.exported_at_us,
            range: file.range,
            anchor: file.anchor,
            public_key: file.public_key,
            latest_head: file.latest_head,
            signed_heads: file.signed_heads,
            digest: file.digest,
            hmac: file.hmac,
            signature: file.signature,
        };
        (head, rows)
    }

    #[test]
    fn files_read_in_blocks_of_any_size_read_as_serde_reads_them() {
        for n in [0, 1, 2, 40] {
            let json = export(n);
            let expected = by_serde(&json);
            // Blocks smaller than a row, about a row, and the whole file.
            for block in [1, 50, 400, 1 << 20] {
                let read = read_in_blocks(json.as_bytes(), block).unwrap();
                assert_eq!(
                    read.as_ref(),
                    Some(&expected),
                    "{n} rows, blocks of {block}"
                );
            }
        }
    }

    #[test]
    fn other_layouts_and_broken_files_are_left_to_the_caller() {
        let json = export(30);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let sorted = serde_json::to_string(&value).unwrap();
        let broken = json.replacen("},\n", "},,\n", 1);
        let cut = &json[..json.len() / 2];
        for text in [sorted.as_str(), broken.as_str(), cut, "", "{\"rows\": 1}"] {
            assert!(read_in_blocks(text.as_bytes(), 100).unwrap().is_none());
        }
    }
}
