//! `export` on the control socket: a signed export file (docs/EXPORT_FORMAT.md)
//! streamed to the connection as it is written, so that the collector holds
//! one chunk of rows and 32 bytes per row (the hashes the digest needs at the
//! end), whatever the size of the journal.
//!
//! Consistency: the range, the anchor, the signed heads and every row are
//! read in one REPEATABLE READ, READ ONLY transaction, so rows appended
//! during the export are neither in it nor change its range; `to` is decided
//! by the transaction's first query.
//!
//! Errors: until the first byte is sent, a failure is the usual error reply.
//! Afterwards the file can no longer be taken back, so a failure is sent as
//! an error line at the start of a line of its own (where the file never has
//! a `{`), and the connection is closed before the file's closing `}`: the
//! CLI reports the error and keeps no file, and any JSON reader finds no
//! complete document.

use std::time::Duration;

use egress_signer::{export_header, ExportRow, ExportStream, Keys, RowBounds};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::db::store::{self, StoredRow};
use crate::error::{Error, Result};

/// Rows read per query when the request does not say.
pub const DEFAULT_CHUNK_ROWS: u32 = 2_000;
/// A client may ask for smaller chunks (tests), not for a larger memory use.
pub const MAX_CHUNK_ROWS: u32 = 10_000;
/// Rows written between two sends. The export runs on the thread of the
/// appenders and the router (the control socket's): each send is a point
/// where they run, so this bounds how long the export keeps them waiting
/// (about a millisecond of serialising).
const ROWS_PER_SEND: usize = 256;
/// A client that reads nothing for this long is given up on, so that it
/// cannot hold the transaction (and the snapshot) open for ever.
const SEND_TIMEOUT: Duration = Duration::from_secs(300);

/// What was asked for.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub database: String,
    /// First seq (at least 1).
    pub from: i64,
    /// Last seq; `None`: to the journal's end as of the snapshot.
    pub to: Option<i64>,
    pub chunk_rows: u32,
}

/// How an export that did not complete ended.
#[derive(Debug)]
pub enum ExportFailure {
    /// Nothing was sent: the caller answers with an error line.
    BeforeStart(Error),
    /// The file was cut off after `rows` rows; the error line was sent.
    MidStream { rows: usize, error: Error },
    /// The client went away or stopped reading.
    Client(std::io::Error),
}

/// Reads the export from `client` on one snapshot and writes the file to
/// `out` as it goes; returns the number of rows.
pub async fn stream_export(
    client: &mut tokio_postgres::Client,
    keys: &Keys,
    request: &ExportRequest,
    out: &mut (impl AsyncWriteExt + Unpin),
) -> std::result::Result<usize, ExportFailure> {
    let (tx, _) = store::snapshot_reader(client, None, false)
        .await
        .map_err(ExportFailure::BeforeStart)?;
    let (header, last) = read_header(&tx, keys, request)
        .await
        .map_err(ExportFailure::BeforeStart)?;
    let mut buffer = Vec::with_capacity(1 << 16);
    let mut stream = ExportStream::start(header, &mut buffer).map_err(ExportFailure::Client)?;
    send(out, &mut buffer).await?;
    if let Some((first, last)) = last {
        let streamed =
            stream_rows(&tx, &mut stream, (first, last), request, &mut buffer, out).await;
        if let Err(ExportFailure::MidStream { rows, error }) = streamed {
            let message = format!("the export failed after {rows} rows: {error}");
            // A new line first: the last row's line is not ended yet.
            let line = format!("\n{}\n", json!({"type": "error", "message": message}));
            buffer.clear();
            buffer.extend_from_slice(line.as_bytes());
            send(out, &mut buffer).await?;
            return Err(ExportFailure::MidStream { rows, error });
        }
        streamed?;
    }
    let rows = stream.rows();
    stream
        .finish(keys, &mut buffer)
        .map_err(ExportFailure::Client)?;
    send(out, &mut buffer).await?;
    out.flush().await.map_err(ExportFailure::Client)?;
    // Read-only: committing only ends the transaction early, before the
    // connection is dropped.
    let _ = tx.commit().await;
    Ok(rows)
}

/// The file's fields before its rows, and the seqs of its first and last
/// rows (none when the range is empty), from the transaction's snapshot.
async fn read_header(
    tx: &tokio_postgres::Transaction<'_>,
    keys: &Keys,
    request: &ExportRequest,
) -> Result<(egress_signer::ExportFile<()>, Option<(i64, i64)>)> {
    let from = request.from.max(1);
    let bounds = store::range_bounds(tx, from, request.to.unwrap_or(i64::MAX))
        .await?
        .map(|(first, last, anchor)| RowBounds {
            first,
            last,
            anchor: hash32(&anchor),
        });
    let heads: Vec<egress_signer::SignedHead> = store::signed_heads(tx)
        .await?
        .into_iter()
        .filter_map(|h| h.ok())
        .collect();
    let now = store::to_micros(std::time::SystemTime::now());
    let header = export_header(
        &request.database,
        bounds,
        &heads,
        keys,
        now,
        from,
        request.to,
    );
    Ok((header, bounds.map(|b| (b.first, b.last))))
}

/// Rows `first..=last` chunk by chunk, each sent in pieces of
/// `ROWS_PER_SEND`; a database error is `MidStream`, with nothing unsent.
async fn stream_rows(
    tx: &tokio_postgres::Transaction<'_>,
    stream: &mut ExportStream,
    (first, last): (i64, i64),
    request: &ExportRequest,
    buffer: &mut Vec<u8>,
    out: &mut (impl AsyncWriteExt + Unpin),
) -> std::result::Result<(), ExportFailure> {
    let chunk_rows = request.chunk_rows.clamp(1, MAX_CHUNK_ROWS);
    let mut after = first - 1;
    while after < last {
        let chunk = store::rows_after(tx, after, last, chunk_rows)
            .await
            .map_err(|error| ExportFailure::MidStream {
                rows: stream.rows(),
                error,
            })?;
        let Some(end) = chunk.last().map(|r| r.row.seq) else {
            break;
        };
        after = end;
        let mut chunk = chunk.into_iter().peekable();
        while chunk.peek().is_some() {
            for stored in chunk.by_ref().take(ROWS_PER_SEND) {
                stream
                    .row(&export_row(stored), buffer)
                    .map_err(ExportFailure::Client)?;
            }
            send(out, buffer).await?;
            // The socket may take everything at once without ever yielding.
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// Sends and empties `buffer`.
async fn send(
    out: &mut (impl AsyncWriteExt + Unpin),
    buffer: &mut Vec<u8>,
) -> std::result::Result<(), ExportFailure> {
    let sent = tokio::time::timeout(SEND_TIMEOUT, out.write_all(buffer)).await;
    buffer.clear();
    match sent {
        Ok(result) => result.map_err(ExportFailure::Client),
        Err(_) => Err(ExportFailure::Client(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the client read nothing for {} s", SEND_TIMEOUT.as_secs()),
        ))),
    }
}

/// A stored row as exported. Hashes of the wrong length (edited by hand)
/// are exported as zeros, for the verifier to report where the chain breaks.
fn export_row(stored: StoredRow) -> ExportRow {
    ExportRow {
        prev_hash: hash32(&stored.prev_hash),
        row_hash: hash32(&stored.row_hash),
        row: stored.row,
    }
}

fn hash32(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().unwrap_or([0; 32])
}
