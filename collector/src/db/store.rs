//! All SQL of the collector's journal, and the mapping between `JournalRow`
//! and the columns of `egress.journal`. Identifiers are never built from input.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::SystemTime;

use bytes::{BufMut, Bytes, BytesMut};
use deadpool_postgres::Transaction as PooledTransaction;
use egress_proto::fields;
use egress_proto::{JournalRow, CHAIN_LOCK_KEY};
use futures_util::future::try_join;
use futures_util::{pin_mut, SinkExt};
use tokio_postgres::{GenericClient, Row, Transaction};

use crate::error::{Error, Result};
use crate::pipeline::stage::ChainedRow;

/// A row as read back: hashes may be of any length if someone edited them.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub row: JournalRow,
    pub prev_hash: Vec<u8>,
    pub row_hash: Vec<u8>,
}

/// Every journal column, in the order of proto's field table
/// (`egress_proto::fields::COLUMNS`): `seq`, the hashes, then the fields in
/// canonical order.
fn columns() -> &'static str {
    static COLUMNS: OnceLock<String> = OnceLock::new();
    COLUMNS.get_or_init(|| {
        fields::COLUMNS
            .iter()
            .map(fields::Column::column)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

pub use egress_proto::time::{to_micros, to_system_time};

fn db_err(stmt: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::Db { stmt, source }
}

/// Takes the chain's lock for this transaction (the one key every writer of
/// the chain takes: other collectors' appenders, the retention vacuum) and
/// returns its head `(seq, row_hash)`, or `None` for an empty journal.
///
/// The two statements are prepared once per connection and sent together:
/// the server runs them in order, so the head is read (its snapshot taken)
/// once the lock is held, in one round trip instead of four.
pub async fn lock_and_read_head(tx: &PooledTransaction<'_>) -> Result<Option<(i64, Vec<u8>)>> {
    let (lock, head) = try_join(
        tx.prepare_cached("SELECT pg_advisory_xact_lock($1)"),
        tx.prepare_cached("SELECT seq, row_hash FROM egress.journal ORDER BY seq DESC LIMIT 1"),
    )
    .await
    .map_err(db_err("lock chain"))?;
    let (_, row) = try_join(
        async {
            tx.execute(&lock, &[&CHAIN_LOCK_KEY])
                .await
                .map_err(db_err("lock chain"))
        },
        async {
            tx.query_opt(&head, &[])
                .await
                .map_err(db_err("read chain head"))
        },
    )
    .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Appends rows with binary COPY: the fastest path PostgreSQL offers. The
/// rows are encoded by `encode_row` straight into large chunks, each handed
/// to the connection whole (one message, few system calls).
pub async fn copy_rows(tx: &PooledTransaction<'_>, rows: &[ChainedRow]) -> Result<u64> {
    let copy = tx
        .prepare_cached(&format!(
            "COPY egress.journal ({}) FROM STDIN BINARY",
            columns()
        ))
        .await
        .map_err(db_err("copy journal rows"))?;
    let sink = tx
        .copy_in::<_, Bytes>(&copy)
        .await
        .map_err(db_err("copy journal rows"))?;
    pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(COPY_CHUNK + 4096);
    buf.put_slice(COPY_HEADER);
    for chained in rows {
        encode_row(&mut buf, chained);
        if buf.len() >= COPY_CHUNK {
            let chunk = buf.split().freeze();
            sink.send(chunk)
                .await
                .map_err(db_err("copy journal rows"))?;
        }
    }
    buf.put_i16(-1);
    sink.send(buf.freeze())
        .await
        .map_err(db_err("copy journal rows"))?;
    sink.finish().await.map_err(db_err("copy journal rows"))
}

/// Bytes of COPY data handed to the connection at a time.
const COPY_CHUNK: usize = 256 * 1024;
/// Binary COPY's signature, flags (none) and header extension length (0).
pub(crate) const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// 2000-01-01, PostgreSQL's epoch, in microseconds after the Unix epoch.
pub(crate) const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// The element type of `text[]` (`TEXT`'s oid).
const TEXT_OID: u32 = 25;

/// One row of binary COPY, in `columns()` order with `column_types()`: the bytes
/// tokio-postgres' `BinaryCopyInWriter` writes for the same values (a test
/// holds the two to the same output), without its per-value type checks and
/// dynamic dispatch.
pub(crate) fn encode_row(buf: &mut BytesMut, chained: &ChainedRow) {
    let r = &chained.row;
    buf.put_i16(fields::COLUMN_COUNT as i16);
    int(buf, Some(r.seq));
    bytes(buf, Some(&chained.prev_hash));
    bytes(buf, Some(&chained.row_hash));
    text(buf, Some(&r.database));
    text(buf, Some(&r.kind));
    time(buf, Some(r.recorded_at_us));
    text(buf, Some(&r.collector));
    int(buf, r.worker_id);
    int(buf, r.worker_pid);
    int(buf, r.worker_uid);
    int(buf, r.worker_seq);
    time(buf, r.started_at_us);
    int(buf, r.duration_us);
    text(buf, r.channel.as_deref());
    text(buf, r.protocol.as_deref());
    text(buf, r.direction.as_deref());
    text(buf, r.method.as_deref());
    text(buf, r.host.as_deref());
    int(buf, r.port);
    text(buf, r.path.as_deref());
    texts(buf, r.query_keys.as_deref());
    texts(buf, r.header_names.as_deref());
    text(buf, r.src_ip.as_deref());
    int(buf, r.src_port);
    text(buf, r.dst_ip.as_deref());
    int(buf, r.dst_port);
    boolean(buf, r.tls);
    int(buf, r.status);
    text(buf, r.error_class.as_deref());
    int(buf, r.bytes_out);
    int(buf, r.bytes_in);
    bytes(buf, r.fingerprint.as_deref());
    text(buf, r.addon.as_deref());
    texts(buf, r.addon_path.as_deref());
    texts(buf, r.stack.as_deref());
    text(buf, r.trigger_kind.as_deref());
    text(buf, r.trigger_name.as_deref());
    int(buf, r.odoo_uid);
    text(buf, r.component.as_deref());
    text(buf, r.class.as_deref());
    boolean(buf, r.self_egress);
    int(buf, r.gap_count);
    text(buf, r.gap_reason.as_deref());
    text(buf, r.detail.as_deref());
}

/// A field's length, in the i32 binary COPY and arrays use. Every value
/// here is capped far below 2 GiB (redaction), so the cast cannot wrap.
fn len_of(value: &[u8]) -> i32 {
    i32::try_from(value.len()).unwrap_or(i32::MAX)
}

fn null(buf: &mut BytesMut) {
    buf.put_i32(-1);
}

fn int(buf: &mut BytesMut, value: Option<i64>) {
    match value {
        Some(v) => {
            buf.put_i32(8);
            buf.put_i64(v);
        }
        None => null(buf),
    }
}

fn time(buf: &mut BytesMut, us: Option<i64>) {
    int(buf, us.map(|us| us.wrapping_sub(PG_EPOCH_US)));
}

fn boolean(buf: &mut BytesMut, value: Option<bool>) {
    match value {
        Some(v) => {
            buf.put_i32(1);
            buf.put_u8(u8::from(v));
        }
        None => null(buf),
    }
}

fn bytes(buf: &mut BytesMut, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            buf.put_i32(len_of(v));
            buf.put_slice(v);
        }
        None => null(buf),
    }
}

fn text(buf: &mut BytesMut, value: Option<&str>) {
    bytes(buf, value.map(str::as_bytes));
}

/// A one-dimensional `text[]` without nulls, lower bound 1.
fn texts(buf: &mut BytesMut, value: Option<&[String]>) {
    let Some(items) = value else {
        return null(buf);
    };
    let len = 20 + items.iter().map(|i| 4 + i.len()).sum::<usize>();
    buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    buf.put_i32(1); // dimensions
    buf.put_i32(0); // no nulls
    buf.put_u32(TEXT_OID);
    buf.put_i32(i32::try_from(items.len()).unwrap_or(i32::MAX));
    buf.put_i32(1); // lower bound
    for item in items {
        text(buf, Some(item));
    }
}

/// Reads one journal row selected with `columns()`.
pub fn stored_row(row: &Row) -> Result<StoredRow> {
    let get_time = |i: usize| -> Result<Option<i64>> {
        let time: Option<SystemTime> = row.try_get(i).map_err(db_err("read journal row"))?;
        Ok(time.map(to_micros))
    };
    let journal = JournalRow {
        seq: row.try_get(0).map_err(db_err("read journal row"))?,
        database: row.try_get(3).map_err(db_err("read journal row"))?,
        kind: row.try_get(4).map_err(db_err("read journal row"))?,
        recorded_at_us: get_time(5)?.unwrap_or_default(),
        collector: row.try_get(6).map_err(db_err("read journal row"))?,
        worker_id: row.get(7),
        worker_pid: row.get(8),
        worker_uid: row.get(9),
        worker_seq: row.get(10),
        started_at_us: get_time(11)?,
        duration_us: row.get(12),
        channel: row.get(13),
        protocol: row.get(14),
        direction: row.get(15),
        method: row.get(16),
        host: row.get(17),
        port: row.get(18),
        path: row.get(19),
        query_keys: row.get(20),
        header_names: row.get(21),
        src_ip: row.get(22),
        src_port: row.get(23),
        dst_ip: row.get(24),
        dst_port: row.get(25),
        tls: row.get(26),
        status: row.get(27),
        error_class: row.get(28),
        bytes_out: row.get(29),
        bytes_in: row.get(30),
        fingerprint: row.get(31),
        addon: row.get(32),
        addon_path: row.get(33),
        stack: row.get(34),
        trigger_kind: row.get(35),
        trigger_name: row.get(36),
        odoo_uid: row.get(37),
        component: row.get(38),
        class: row.get(39),
        self_egress: row.get(40),
        gap_count: row.get(41),
        gap_reason: row.get(42),
        detail: row.get(43),
    };
    Ok(StoredRow {
        row: journal,
        prev_hash: row.try_get(1).map_err(db_err("read journal row"))?,
        row_hash: row.try_get(2).map_err(db_err("read journal row"))?,
    })
}

/// What is accounted for each given worker (absent: never seen here).
pub async fn fetch_accounts(
    client: &tokio_postgres::Client,
    worker_ids: &[i64],
) -> Result<HashMap<u64, crate::chain::plan::Account>> {
    let mut accounts: HashMap<u64, crate::chain::plan::Account> = HashMap::new();
    let cursors = client
        .query(
            "SELECT worker_id, last_seq FROM egress.worker_cursor WHERE worker_id = ANY($1)",
            &[&worker_ids],
        )
        .await
        .map_err(db_err("read worker cursors"))?;
    for row in &cursors {
        accounts
            .entry(row.get::<_, i64>(0) as u64)
            .or_default()
            .last_seq = row.get::<_, i64>(1) as u64;
    }
    let drops = client
        .query(
            "SELECT worker_id, reason, reported FROM egress.worker_drops WHERE worker_id = ANY($1)",
            &[&worker_ids],
        )
        .await
        .map_err(db_err("read worker drop totals"))?;
    for row in &drops {
        let account = accounts.entry(row.get::<_, i64>(0) as u64).or_default();
        account
            .reported
            .insert(row.get(1), row.get::<_, i64>(2) as u64);
    }
    Ok(accounts)
}

/// Stores what is now accounted, in the transaction of the rows it covers.
pub async fn upsert_accounts(
    tx: &PooledTransaction<'_>,
    accounts: &HashMap<u64, crate::chain::plan::Account>,
) -> Result<()> {
    let (ids, seqs): (Vec<i64>, Vec<i64>) = accounts
        .iter()
        .map(|(w, a)| (*w as i64, a.last_seq as i64))
        .unzip();
    let cursors = tx
        .prepare_cached(
            "INSERT INTO egress.worker_cursor (worker_id, last_seq) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[]) \
             ON CONFLICT (worker_id) DO UPDATE \
             SET last_seq = GREATEST(egress.worker_cursor.last_seq, EXCLUDED.last_seq), \
                 updated_at = now()",
        )
        .await
        .map_err(db_err("update worker cursors"))?;
    tx.execute(&cursors, &[&ids, &seqs])
        .await
        .map_err(db_err("update worker cursors"))?;
    let mut ids = Vec::new();
    let mut reasons = Vec::new();
    let mut totals = Vec::new();
    for (worker, account) in accounts {
        for (reason, total) in &account.reported {
            ids.push(*worker as i64);
            reasons.push(reason.as_str());
            totals.push(*total as i64);
        }
    }
    if !ids.is_empty() {
        tx.execute(
            "INSERT INTO egress.worker_drops (worker_id, reason, reported) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[]) \
             ON CONFLICT (worker_id, reason) DO UPDATE \
             SET reported = GREATEST(egress.worker_drops.reported, EXCLUDED.reported), \
                 updated_at = now()",
            &[&ids, &reasons, &totals],
        )
        .await
        .map_err(db_err("update worker drop totals"))?;
    }
    Ok(())
}

/// Upserts workers seen (`egress.worker_seen`) at `now_us`: calls add up,
/// the first sighting stays, the rest is the latest known.
pub async fn upsert_workers(
    client: &impl tokio_postgres::GenericClient,
    rows: &[crate::chain::workers::WorkerRow],
    collector: &str,
    now_us: i64,
) -> Result<()> {
    let ids: Vec<i64> = rows.iter().map(|r| r.worker_id as i64).collect();
    let pids: Vec<Option<i64>> = rows.iter().map(|r| r.seen.pid).collect();
    let uids: Vec<Option<i64>> = rows.iter().map(|r| r.seen.uid).collect();
    let hook = |f: fn(&crate::chain::workers::HookInfo) -> &str| -> Vec<Option<&str>> {
        // Empty: the worker did not say; what is stored stays.
        rows.iter()
            .map(|r| r.hook.as_ref().map(f).filter(|t| !t.is_empty()))
            .collect()
    };
    let (modes, versions, odoo) = (
        hook(|h| &h.mode),
        hook(|h| &h.version),
        hook(|h| &h.odoo_version),
    );
    let calls: Vec<i64> = rows.iter().map(|r| r.seen.calls as i64).collect();
    let now = to_system_time(now_us);
    client
        .execute(
            "INSERT INTO egress.worker_seen AS w (worker_id, collector, pid, uid, hook_mode, \
                 hook_version, odoo_version, first_seen, last_seen, calls_seen) \
             SELECT u.worker_id, $7::text, u.pid, u.uid, u.mode, u.version, u.odoo, $8::timestamptz, \
                 $8::timestamptz, u.calls \
             FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], \
                 $6::text[], $9::int8[]) AS u(worker_id, pid, uid, mode, version, odoo, calls) \
             ON CONFLICT (worker_id) DO UPDATE SET collector = EXCLUDED.collector, \
                 pid = coalesce(EXCLUDED.pid, w.pid), uid = coalesce(EXCLUDED.uid, w.uid), \
                 hook_mode = coalesce(EXCLUDED.hook_mode, w.hook_mode), \
                 hook_version = coalesce(EXCLUDED.hook_version, w.hook_version), \
                 odoo_version = coalesce(EXCLUDED.odoo_version, w.odoo_version), \
                 last_seen = greatest(w.last_seen, EXCLUDED.last_seen), \
                 calls_seen = w.calls_seen + EXCLUDED.calls_seen",
            &[
                &ids, &pids, &uids, &modes, &versions, &odoo, &collector, &now, &calls,
            ],
        )
        .await
        .map_err(db_err("record workers seen"))?;
    Ok(())
}

/// The last `n` rows, oldest first.
pub async fn last_rows(client: &tokio_postgres::Client, n: i64) -> Result<Vec<StoredRow>> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM (SELECT * FROM egress.journal ORDER BY seq DESC LIMIT $1) \
                 last ORDER BY seq",
                columns()
            ),
            &[&n],
        )
        .await
        .map_err(db_err("read last journal rows"))?;
    rows.iter().map(stored_row).collect()
}

/// Whether the server can export a snapshot for other connections to share
/// (`pg_export_snapshot`; not in a subtransaction, and not everywhere), tried
/// in a transaction of its own.
pub async fn can_export_snapshot(client: &tokio_postgres::Client) -> Result<bool> {
    client
        .batch_execute("BEGIN READ ONLY")
        .await
        .map_err(db_err("try exporting a snapshot"))?;
    let exported = client.query_one("SELECT pg_export_snapshot()", &[]).await;
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(db_err("try exporting a snapshot"))?;
    Ok(exported.is_ok())
}

/// A read-only transaction on one snapshot of the database, to read the
/// whole journal as it was at one instant; with `join`, on the snapshot that
/// another such transaction exported, so that several connections read the
/// same journal. With `export`, the snapshot's name for others to join.
pub async fn snapshot_reader<'a>(
    client: &'a mut tokio_postgres::Client,
    join: Option<&str>,
    export: bool,
) -> Result<(Transaction<'a>, Option<String>)> {
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(db_err("begin read"))?;
    if let Some(id) = join {
        // A name from the server (hex digits and dashes), checked all the
        // same since it is spliced into the statement.
        if !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(Error::Config(format!("unexpected snapshot name {id:?}")));
        }
        tx.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{id}'"))
            .await
            .map_err(db_err("join snapshot"))?;
    }
    let mut exported = None;
    if export {
        let row = tx
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(db_err("export snapshot"))?;
        exported = Some(row.get(0));
    }
    Ok((tx, exported))
}

/// The journal cut into chunks of `chunk_rows` rows in chain order: the seq
/// ending each chunk but the last (which runs to the end).
pub async fn chunk_ends(tx: &Transaction<'_>, chunk_rows: u32) -> Result<Vec<i64>> {
    let rows = tx
        .query(
            "SELECT seq FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n \
             FROM egress.journal) numbered WHERE n % $1 = 0 ORDER BY seq",
            &[&i64::from(chunk_rows.max(1))],
        )
        .await
        .map_err(db_err("cut the journal into chunks"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The rows of `columns()` with `after < seq <= through` (None: unbounded) in
/// chain order, as binary COPY data (decoded by `journal_copy`). Chunks that
/// follow one another read every row once (seq is the primary key).
pub async fn copy_chunk(
    tx: &Transaction<'_>,
    after: Option<i64>,
    through: Option<i64>,
) -> Result<tokio_postgres::CopyOutStream> {
    // Only integers read from the journal are spliced into the SQL.
    let range = match (after, through) {
        (None, None) => String::new(),
        (Some(a), None) => format!("WHERE seq > {a}"),
        (None, Some(b)) => format!("WHERE seq <= {b}"),
        (Some(a), Some(b)) => format!("WHERE seq > {a} AND seq <= {b}"),
    };
    tx.copy_out(&format!(
        "COPY (SELECT {} FROM egress.journal {range} ORDER BY seq) TO STDOUT (FORMAT binary)",
        columns()
    ))
    .await
    .map_err(db_err("read journal"))
}

/// The audit settings as Odoo last handed them over (`egress.setting`, an
/// inbox Odoo's role may only insert into): never read from Odoo's own
/// tables, where code planted by Odoo's role would run with our rights.
/// A key Odoo never set, or removed, is absent (its default applies).
pub async fn read_settings(
    client: &tokio_postgres::Client,
) -> Result<Option<std::collections::BTreeMap<String, String>>> {
    let rows = client
        .query(
            "SELECT key, value FROM egress.current_setting WHERE value IS NOT NULL",
            &[],
        )
        .await
        .map_err(db_err("read audit settings"))?;
    Ok(Some(
        rows.iter()
            .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
            .collect(),
    ))
}

/// Subscribes this session to the settings and catalogue change hints.
pub async fn listen_for_policy_changes(client: &tokio_postgres::Client) -> Result<()> {
    client
        .batch_execute(&format!("LISTEN {}", crate::db::POLICY_CHANNEL))
        .await
        .map_err(db_err("listen for settings changes"))
}

/// Whether this database's settings and catalogue notify their changes
/// (migration 0023 applied by `setup`).
pub async fn policy_changes_notify(client: &tokio_postgres::Client) -> Result<bool> {
    let row = client
        .query_opt(
            "SELECT 1 FROM egress.schema_migrations WHERE version = $1",
            &[&crate::db::POLICY_NOTIFY_MIGRATION],
        )
        .await
        .map_err(db_err("read migrations"))?;
    Ok(row.is_some())
}

/// The Egress Components catalogue, by name.
pub async fn read_components(
    client: &tokio_postgres::Client,
) -> Result<Vec<crate::pipeline::catalogue::Component>> {
    let rows = client
        .query(
            "SELECT name, owner, purpose, class, hosts, cidrs, ports FROM egress.component ORDER BY name",
            &[],
        )
        .await
        .map_err(db_err("read components catalogue"))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let class = crate::pipeline::catalogue::Class::parse(r.get(3))?;
            let ports: Vec<i32> = r.get(6);
            Some(crate::pipeline::catalogue::Component {
                name: r.get(0),
                owner: r.get(1),
                purpose: r.get(2),
                class,
                hosts: r.get(4),
                cidrs: r.get(5),
                ports: ports
                    .into_iter()
                    .filter_map(|p| u16::try_from(p).ok())
                    .collect(),
            })
        })
        .collect())
}

/// Seeds the catalogue; entries already there (perhaps edited) are kept.
pub async fn seed_components(
    client: &impl tokio_postgres::GenericClient,
    components: &[crate::pipeline::catalogue::Component],
) -> Result<u64> {
    let mut added = 0;
    for c in components {
        let ports: Vec<i32> = c.ports.iter().map(|p| i32::from(*p)).collect();
        added += client
            .execute(
                "INSERT INTO egress.component (name, owner, purpose, class, hosts, cidrs, ports) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
                &[
                    &c.name,
                    &c.owner,
                    &c.purpose,
                    &c.class.as_str(),
                    &c.hosts,
                    &c.cidrs,
                    &ports,
                ],
            )
            .await
            .map_err(db_err("seed components catalogue"))?;
    }
    Ok(added)
}

/// The journal's last row `(seq, row_hash)`, read without the chain lock.
pub async fn read_head(client: &tokio_postgres::Client) -> Result<Option<(i64, Vec<u8>)>> {
    let row = client
        .query_opt(
            "SELECT seq, row_hash FROM egress.journal ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(db_err("read chain head"))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Appends one entry written outside the pipeline (the signer's alarms),
/// under the chain lock every writer takes, after the head; returns its seq.
pub async fn append_entry(
    client: &mut deadpool_postgres::Object,
    mut row: JournalRow,
) -> Result<i64> {
    let tx = client.transaction().await.map_err(db_err("begin"))?;
    let head = lock_and_read_head(&tx).await?;
    let (seq, prev) = match head {
        None => (0, egress_proto::GENESIS_HASH),
        Some((seq, hash)) => (
            seq,
            hash.try_into().map_err(|_| {
                Error::Control(format!(
                    "the journal head (seq {seq}) has a row_hash that is not 32 bytes: run `egress-collector verify`"
                ))
            })?,
        ),
    };
    row.seq = seq + 1;
    let row_hash = row.hash_after(&prev);
    copy_rows(
        &tx,
        &[ChainedRow {
            row,
            prev_hash: prev,
            row_hash,
        }],
    )
    .await?;
    tx.commit().await.map_err(db_err("commit"))?;
    Ok(seq + 1)
}

/// The journal's first and last seq (None: empty).
pub async fn journal_bounds(client: &impl GenericClient) -> Result<Option<(i64, i64)>> {
    let row = client
        .query_one("SELECT min(seq), max(seq) FROM egress.journal", &[])
        .await
        .map_err(db_err("read the journal's bounds"))?;
    Ok(row
        .get::<_, Option<i64>>(0)
        .zip(row.get::<_, Option<i64>>(1)))
}

/// The stored row_hash of row `seq` (None: no such row, or not 32 bytes).
pub async fn row_hash_at(client: &impl GenericClient, seq: i64) -> Result<Option<[u8; 32]>> {
    let row = client
        .query_opt(
            "SELECT row_hash FROM egress.journal WHERE seq = $1",
            &[&seq],
        )
        .await
        .map_err(db_err("read a row's hash"))?;
    Ok(row.and_then(|r| r.get::<_, Vec<u8>>(0).try_into().ok()))
}

/// The first seq in `(from, to]` whose link to the row before it is broken
/// (a missing seq, or a prev_hash that is not the previous row's hash),
/// walked by the server: the chain's links from a signed head to the head
/// about to be signed. Contents are not re-hashed here: a row edited without
/// re-hashing keeps its links, and every verifier catches it by its hash.
pub async fn first_broken_link(
    client: &impl GenericClient,
    from: i64,
    to: i64,
) -> Result<Option<i64>> {
    let row = client
        .query_one(
            "SELECT min(t.seq) FROM ( \
                 SELECT j.seq, j.prev_hash, \
                        lag(j.row_hash) OVER (ORDER BY j.seq) AS before, \
                        lag(j.seq) OVER (ORDER BY j.seq) AS seq_before \
                 FROM egress.journal j WHERE j.seq >= $1 AND j.seq <= $2) t \
             WHERE t.seq > $1 AND (t.seq_before IS NULL OR t.seq <> t.seq_before + 1 \
                                   OR t.prev_hash IS DISTINCT FROM t.before)",
            &[&from, &to],
        )
        .await
        .map_err(db_err("check the chain's links"))?;
    Ok(row.get(0))
}

/// Records this collector's heartbeat and signing key for the database
/// (`egress.collector_heartbeat`: its own row, stamped by the server).
pub async fn collector_heartbeat(
    client: &tokio_postgres::Client,
    collector: &str,
    public_key: &[u8; 32],
) -> Result<()> {
    client
        .execute(
            "SELECT egress.collector_heartbeat($1, $2, $3)",
            &[
                &collector,
                &public_key.as_slice(),
                &env!("CARGO_PKG_VERSION"),
            ],
        )
        .await
        .map_err(db_err("record collector heartbeat"))?;
    Ok(())
}

/// One collector that appended to or signed a database, as `keys --db`
/// lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CollectorSeen {
    pub collector: String,
    /// Hex; None for a collector that appended rows but never signed nor
    /// sent a heartbeat (an older version).
    pub public_key: Option<String>,
    /// Microseconds since the Unix epoch: first and last row appended,
    /// head signed or heartbeat, and the latest heartbeat.
    pub first_activity_us: Option<i64>,
    pub last_activity_us: Option<i64>,
    pub heartbeat_us: Option<i64>,
    /// A heartbeat younger than the `alive_secs` asked, by the server's clock.
    pub alive: bool,
    pub rows: i64,
    pub heads: i64,
}

/// Every collector that appended to, signed or beat its heart in this
/// database, one line per (collector, key). Reads egress relations only,
/// schema-qualified. The journal is grouped by collector: a full scan, for
/// an operator's command, not a hot path.
pub async fn collectors_seen(
    client: &tokio_postgres::Client,
    alive_secs: u32,
) -> Result<Vec<CollectorSeen>> {
    let migrated: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('egress.collector_seen') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db_err("look for egress.collector_seen"))?
        .get(0);
    if !migrated {
        return Err(Error::Control(
            "this database has no egress.collector_seen yet: run `egress-collector setup` on it (migration 0022)"
                .into(),
        ));
    }
    let rows = client
        .query(
            "WITH appended AS (
                 SELECT j.collector, count(*) AS rows, min(j.recorded_at) AS first_at,
                        max(j.recorded_at) AS last_at
                 FROM egress.journal j GROUP BY j.collector),
             signed AS (
                 SELECT h.collector, h.public_key, count(*) AS heads,
                        min(h.signed_at) AS first_at, max(h.signed_at) AS last_at
                 FROM egress.signed_head h GROUP BY h.collector, h.public_key),
             keyed AS (
                 SELECT coalesce(s.collector, c.collector) AS collector,
                        coalesce(s.public_key, c.public_key) AS public_key,
                        coalesce(s.heads, 0) AS heads, s.first_at, s.last_at,
                        c.first_seen, c.heartbeat_at
                 FROM signed s FULL JOIN egress.collector_seen c
                   ON c.collector = s.collector AND c.public_key = s.public_key)
             SELECT coalesce(k.collector, a.collector), k.public_key,
                    LEAST(a.first_at, k.first_at, k.first_seen),
                    GREATEST(a.last_at, k.last_at, k.heartbeat_at),
                    k.heartbeat_at, coalesce(a.rows, 0), coalesce(k.heads, 0),
                    coalesce(k.heartbeat_at > now() - make_interval(secs => $1::float8), false)
             FROM keyed k FULL JOIN appended a ON a.collector = k.collector
             ORDER BY 1, 4",
            &[&f64::from(alive_secs)],
        )
        .await
        .map_err(db_err("list collectors"))?;
    Ok(rows
        .iter()
        .map(|r| CollectorSeen {
            collector: r.get(0),
            public_key: r.get::<_, Option<Vec<u8>>>(1).map(hex::encode),
            first_activity_us: r.get::<_, Option<SystemTime>>(2).map(to_micros),
            last_activity_us: r.get::<_, Option<SystemTime>>(3).map(to_micros),
            heartbeat_us: r.get::<_, Option<SystemTime>>(4).map(to_micros),
            rows: r.get(5),
            heads: r.get(6),
            alive: r.get(7),
        })
        .collect())
}

/// Appends a signed head (the database refuses one that names no row with
/// that hash). Odoo shows the latest from `public.network_signed_head`.
pub async fn record_signed_head(
    client: &tokio_postgres::Client,
    head: &egress_signer::SignedHead,
    collector: &str,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO egress.signed_head \
             (database, seq, row_hash, signed_at_us, signed_at, hmac, signature, public_key, collector) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &head.database,
                &head.seq,
                &head.row_hash.as_slice(),
                &head.signed_at_us,
                &to_system_time(head.signed_at_us),
                &head.hmac.as_slice(),
                &head.signature.as_slice(),
                &head.public_key.as_slice(),
                &collector,
            ],
        )
        .await
        .map_err(db_err("record signed head"))?;
    Ok(())
}

/// Every signed head, oldest first. Heads whose stored bytes have the wrong
/// length (edited by hand) are returned as errors in place.
pub async fn signed_heads(
    client: &impl GenericClient,
) -> Result<Vec<std::result::Result<egress_signer::SignedHead, String>>> {
    let rows = client
        .query(
            "SELECT database, seq, row_hash, signed_at_us, hmac, signature, public_key, id, \
             collector FROM egress.signed_head ORDER BY seq, signed_at_us, id",
            &[],
        )
        .await
        .map_err(db_err("read signed heads"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let bytes = |i: usize| r.get::<_, Vec<u8>>(i);
            let id: i64 = r.get(7);
            let fixed = |i: usize, what: &str| -> std::result::Result<Vec<u8>, String> {
                Ok(bytes(i)).and_then(|b| {
                    if b.is_empty() {
                        Err(format!("signed head {id}: empty {what}"))
                    } else {
                        Ok(b)
                    }
                })
            };
            Ok(egress_signer::SignedHead {
                database: r.get(0),
                seq: r.get(1),
                row_hash: fixed(2, "row_hash")?
                    .try_into()
                    .map_err(|_| format!("signed head {id}: row_hash is not 32 bytes"))?,
                signed_at_us: r.get(3),
                hmac: fixed(4, "hmac")?
                    .try_into()
                    .map_err(|_| format!("signed head {id}: hmac is not 32 bytes"))?,
                signature: fixed(5, "signature")?
                    .try_into()
                    .map_err(|_| format!("signed head {id}: signature is not 64 bytes"))?,
                public_key: fixed(6, "public_key")?
                    .try_into()
                    .map_err(|_| format!("signed head {id}: public key is not 32 bytes"))?,
                collector: Some(r.get(8)),
            })
        })
        .collect())
}

/// Rows from `from` to `to` (inclusive; `None`: to the end), in chain order.
pub async fn rows_in_range(
    client: &tokio_postgres::Client,
    from: i64,
    to: Option<i64>,
) -> Result<Vec<StoredRow>> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM egress.journal WHERE seq >= $1 AND ($2::bigint IS NULL OR seq <= $2) ORDER BY seq",
                columns()
            ),
            &[&from, &to],
        )
        .await
        .map_err(db_err("read journal rows"))?;
    rows.iter().map(stored_row).collect()
}

/// The first and last seq of the rows with `from <= seq <= to`, and the
/// first one's `prev_hash`; `None` when there are none. Both ends come
/// from the primary key's index.
pub async fn range_bounds(
    tx: &Transaction<'_>,
    from: i64,
    to: i64,
) -> Result<Option<(i64, i64, Vec<u8>)>> {
    let ends = tx
        .query_one(
            "SELECT min(seq), max(seq) FROM egress.journal WHERE seq >= $1 AND seq <= $2",
            &[&from, &to],
        )
        .await
        .map_err(db_err("read the export's range"))?;
    let (Some(first), Some(last)) = (ends.get::<_, Option<i64>>(0), ends.get(1)) else {
        return Ok(None);
    };
    let anchor = tx
        .query_one(
            "SELECT prev_hash FROM egress.journal WHERE seq = $1",
            &[&first],
        )
        .await
        .map_err(db_err("read the export's anchor"))?;
    let anchor = anchor
        .try_get(0)
        .map_err(db_err("read the export's anchor"))?;
    Ok(Some((first, last, anchor)))
}

/// At most `limit` rows with `after < seq <= through`, in chain order: one
/// chunk of a range read chunk after chunk (seq is the primary key, so each
/// chunk is an index range scan that starts where the last one ended).
pub async fn rows_after(
    tx: &Transaction<'_>,
    after: i64,
    through: i64,
    limit: u32,
) -> Result<Vec<StoredRow>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {} FROM egress.journal WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
                columns()
            ),
            &[&after, &through, &i64::from(limit)],
        )
        .await
        .map_err(db_err("read journal rows"))?;
    rows.iter().map(stored_row).collect()
}

/// The egress objects a verifier relies on, and what each must be: a
/// table (`r`) or view (`v`) owned by `egress_owner`, in schema `egress`.
/// Run as a superuser, a verifier would execute whatever stood in their
/// place (a view, a function of Odoo's role), so it reads nothing until
/// these are as `setup` left them.
pub const VERIFIED_OBJECTS: &[(&str, char)] = &[
    ("journal", 'r'),
    ("signed_head", 'r'),
    ("verify_result", 'r'),
    ("rollup", 'r'),
    ("rollup_gap", 'r'),
    ("rollup_state", 'r'),
    ("worker_cursor", 'r'),
];

/// Whether the schema `egress` exists at all (`setup` was run here).
pub async fn egress_schema_exists(client: &impl GenericClient) -> Result<bool> {
    let row = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'egress'",
            &[],
        )
        .await
        .map_err(db_err("look up schema egress"))?;
    Ok(row.is_some())
}

/// Why the egress schema is not as `setup` left it, one line per object
/// (empty: as expected). Reads only `pg_catalog`.
pub async fn egress_objects_problems(client: &impl GenericClient) -> Result<Vec<String>> {
    let owner = crate::db::OWNER_ROLE;
    let mut problems = Vec::new();
    let schema = client
        .query_opt(
            "SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text \
             FROM pg_catalog.pg_namespace n WHERE n.nspname = 'egress'",
            &[],
        )
        .await
        .map_err(db_err("look up schema egress"))?;
    match schema {
        None => {
            problems.push("schema egress does not exist".into());
            return Ok(problems);
        }
        Some(r) if r.get::<_, String>(0) != owner => problems.push(format!(
            "schema egress is owned by {}, not {owner}",
            r.get::<_, String>(0)
        )),
        Some(_) => {}
    }
    for (name, kind) in VERIFIED_OBJECTS {
        let row = client
            .query_opt(
                "SELECT c.relkind::text, pg_catalog.pg_get_userbyid(c.relowner)::text, \
                        c.relrowsecurity \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'egress' AND c.relname = $1",
                &[name],
            )
            .await
            .map_err(db_err("look up the egress objects"))?;
        let Some(row) = row else {
            problems.push(format!("egress.{name} does not exist"));
            continue;
        };
        let (found, by, rls): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        let what = |k: &str| match k {
            "r" => "a table",
            "v" => "a view",
            "m" => "a materialized view",
            "f" => "a foreign table",
            "p" => "a partitioned table",
            _ => "another kind of relation",
        };
        if found != kind.to_string() {
            problems.push(format!(
                "egress.{name} is {}, not {}",
                what(&found),
                what(&kind.to_string())
            ));
        }
        if by != owner {
            problems.push(format!("egress.{name} is owned by {by}, not {owner}"));
        }
        if rls {
            problems.push(format!("egress.{name} has row-level security turned on"));
        }
    }
    Ok(problems)
}

/// The first rollup row that the journal contradicts, in words (None: the
/// rollups agree). Every call row up to the watermark must be summed: with
/// nothing pruned (`pruned` false) each rollup row equals the journal's
/// aggregate; after retention removed rows the rollups keep their sums, so
/// each must be at least the aggregate of what remains. Zeroed or lowered
/// sums, and a watermark beyond the journal's head, are caught.
pub async fn rollup_problem(client: &impl GenericClient, pruned: bool) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "WITH w AS (SELECT s.watermark FROM egress.rollup_state s WHERE s.id), \
             j AS ( \
               SELECT (jr.recorded_at AT TIME ZONE 'UTC')::date AS day, \
                      coalesce(jr.addon, '') AS addon, coalesce(jr.component, '') AS component, \
                      coalesce(jr.class, 'unknown') AS class, coalesce(jr.channel, '') AS channel, \
                      coalesce(jr.host, '') AS host, count(*)::bigint AS calls, \
                      sum(coalesce(jr.bytes_out, 0))::bigint AS bytes_out, \
                      sum(coalesce(jr.bytes_in, 0))::bigint AS bytes_in \
               FROM egress.journal jr, w WHERE jr.kind = 'call' AND jr.seq <= w.watermark \
               GROUP BY 1, 2, 3, 4, 5, 6) \
             SELECT format('%s %s/%s/%s/%s/%s: the rollups say %s calls (%s bytes out, %s in), \
                            the journal %s (%s, %s)', \
                           coalesce(r.day, j.day), coalesce(r.class, j.class), \
                           coalesce(r.addon, j.addon), coalesce(r.component, j.component), \
                           coalesce(r.channel, j.channel), coalesce(r.host, j.host), \
                           coalesce(r.calls, 0), coalesce(r.bytes_out, 0), coalesce(r.bytes_in, 0), \
                           coalesce(j.calls, 0), coalesce(j.bytes_out, 0), coalesce(j.bytes_in, 0)) \
             FROM j FULL JOIN egress.rollup r \
               ON r.day = j.day AND r.addon = j.addon AND r.component = j.component \
              AND r.class = j.class AND r.channel = j.channel AND r.host = j.host \
             WHERE coalesce(r.calls, 0) < coalesce(j.calls, 0) \
                OR coalesce(r.bytes_out, 0) < coalesce(j.bytes_out, 0) \
                OR coalesce(r.bytes_in, 0) < coalesce(j.bytes_in, 0) \
                OR (NOT $1 AND (coalesce(r.calls, 0) <> coalesce(j.calls, 0) \
                    OR coalesce(r.bytes_out, 0) <> coalesce(j.bytes_out, 0) \
                    OR coalesce(r.bytes_in, 0) <> coalesce(j.bytes_in, 0))) \
             ORDER BY 1 LIMIT 1",
            &[&pruned],
        )
        .await
        .map_err(db_err("check the rollups against the journal"))?;
    if let Some(row) = row {
        return Ok(Some(row.get(0)));
    }
    let beyond = client
        .query_one(
            "SELECT s.watermark, (SELECT max(j.seq) FROM egress.journal j) \
             FROM egress.rollup_state s WHERE s.id",
            &[],
        )
        .await
        .map_err(db_err("check the rollup watermark"))?;
    let (mark, head): (i64, Option<i64>) = (beyond.get(0), beyond.get(1));
    Ok((mark > head.unwrap_or(0)).then(|| {
        format!(
            "the rollups claim to sum the journal up to seq {mark}, but it ends at seq {}",
            head.unwrap_or(0)
        )
    }))
}

/// What one run of `verify` found, as the report's trust chip shows it.
#[derive(Debug, Clone)]
pub struct VerifyOutcome {
    pub verified: bool,
    pub rows: i64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub broken_seq: Option<i64>,
    pub message: String,
}

/// Appends the outcome of a verification to `egress.verify_result`.
pub async fn record_verify_result(
    client: &tokio_postgres::Client,
    outcome: &VerifyOutcome,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO egress.verify_result \
             (verified, rows_checked, first_seq, last_seq, broken_seq, message) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &outcome.verified,
                &outcome.rows,
                &outcome.first_seq,
                &outcome.last_seq,
                &outcome.broken_seq,
                &outcome.message,
            ],
        )
        .await
        .map_err(db_err("record the verification"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_proto::fields::SqlType;
    use tokio_postgres::types::{IsNull, ToSql, Type};

    /// The type of each of `columns()`, from proto's field table.
    fn column_types() -> &'static [Type; fields::COLUMN_COUNT] {
        static TYPES: OnceLock<[Type; fields::COLUMN_COUNT]> = OnceLock::new();
        TYPES.get_or_init(|| {
            std::array::from_fn(|i| match fields::COLUMNS[i].sql() {
                SqlType::Bigint => Type::INT8,
                SqlType::Text => Type::TEXT,
                SqlType::TextArray => Type::TEXT_ARRAY,
                SqlType::Boolean => Type::BOOL,
                SqlType::Bytea => Type::BYTEA,
                SqlType::Timestamptz => Type::TIMESTAMPTZ,
            })
        })
    }

    /// What `BinaryCopyInWriter` writes for one row: each value through
    /// its `ToSql` for the column's type, behind its length.
    fn generic_row(chained: &ChainedRow) -> BytesMut {
        let r = &chained.row;
        let recorded_at = to_system_time(r.recorded_at_us);
        let started_at = r.started_at_us.map(to_system_time);
        let values: [&(dyn ToSql + Sync); 44] = [
            &r.seq,
            &chained.prev_hash.as_slice(),
            &chained.row_hash.as_slice(),
            &r.database,
            &r.kind,
            &recorded_at,
            &r.collector,
            &r.worker_id,
            &r.worker_pid,
            &r.worker_uid,
            &r.worker_seq,
            &started_at,
            &r.duration_us,
            &r.channel,
            &r.protocol,
            &r.direction,
            &r.method,
            &r.host,
            &r.port,
            &r.path,
            &r.query_keys,
            &r.header_names,
            &r.src_ip,
            &r.src_port,
            &r.dst_ip,
            &r.dst_port,
            &r.tls,
            &r.status,
            &r.error_class,
            &r.bytes_out,
            &r.bytes_in,
            &r.fingerprint,
            &r.addon,
            &r.addon_path,
            &r.stack,
            &r.trigger_kind,
            &r.trigger_name,
            &r.odoo_uid,
            &r.component,
            &r.class,
            &r.self_egress,
            &r.gap_count,
            &r.gap_reason,
            &r.detail,
        ];
        let mut buf = BytesMut::new();
        buf.put_i16(44);
        for (value, ty) in values.iter().zip(column_types().iter()) {
            let at = buf.len();
            buf.put_i32(0);
            let len = match value.to_sql_checked(ty, &mut buf).unwrap() {
                IsNull::Yes => -1,
                IsNull::No => (buf.len() - at - 4) as i32,
            };
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        buf
    }

    fn full_row() -> ChainedRow {
        let list = |items: &[&str]| Some(items.iter().map(|s| s.to_string()).collect());
        ChainedRow {
            row: JournalRow {
                seq: 42,
                database: "odoo".into(),
                kind: "call".into(),
                recorded_at_us: 1_764_288_000_123_456,
                collector: "host-1".into(),
                worker_id: Some(-7),
                worker_pid: Some(1234),
                worker_uid: Some(1000),
                worker_seq: Some(99),
                started_at_us: Some(1_764_287_999_000_001),
                duration_us: Some(1_800),
                channel: Some("http".into()),
                protocol: Some("https".into()),
                direction: Some("outbound".into()),
                method: Some("POST".into()),
                host: Some("api.openai.com".into()),
                port: Some(443),
                path: Some("/v1/chat/{id}".into()),
                query_keys: list(&["model", "stream"]),
                header_names: list(&[]),
                src_ip: Some("10.0.0.5".into()),
                src_port: Some(40_000),
                dst_ip: Some("162.159.140.245".into()),
                dst_port: Some(443),
                tls: Some(true),
                status: Some(200),
                error_class: Some(String::new()),
                bytes_out: Some(i64::MAX),
                bytes_in: Some(0),
                fingerprint: Some(vec![1, 2, 3]),
                addon: Some("ai_assistant".into()),
                addon_path: list(&["ai_assistant", "mail"]),
                stack: list(&["[stdlib] /usr/lib/python3.11/http/client.py:1 request", "é"]),
                trigger_kind: Some("http".into()),
                trigger_name: Some("/ai_assistant/ask".into()),
                odoo_uid: Some(2),
                component: Some("OpenAI".into()),
                class: Some("third_party".into()),
                self_egress: Some(false),
                gap_count: None,
                gap_reason: None,
                detail: Some("{\"a\":1}".into()),
            },
            prev_hash: [7; 32],
            row_hash: [9; 32],
        }
    }

    #[test]
    fn migration_0001_creates_the_columns_of_the_field_table() {
        let sql = include_str!("../../migrations/0001_journal.sql");
        let body = sql
            .split_once("CREATE TABLE egress.journal (")
            .and_then(|(_, rest)| rest.split_once("\n);"))
            .expect("0001 creates egress.journal")
            .0;
        let created: Vec<(&str, &str)> = body
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                Some((words.next()?, words.next()?.trim_end_matches(',')))
            })
            .collect();
        let table: Vec<(&str, &str)> = fields::COLUMNS
            .iter()
            .map(|c| (c.column(), c.sql().as_str()))
            .collect();
        assert_eq!(
            created, table,
            "egress.journal in 0001 against proto's fields"
        );
    }

    #[test]
    fn hand_encoded_rows_are_the_bytes_the_generic_writer_sends() {
        let full = full_row();
        let gap = ChainedRow {
            row: JournalRow {
                seq: 1,
                kind: "gap".into(),
                recorded_at_us: -5, // before 1970, and before PostgreSQL's epoch
                gap_count: Some(3),
                gap_reason: Some("buffer_full".into()),
                ..JournalRow::default()
            },
            prev_hash: [0; 32],
            row_hash: [1; 32],
        };
        for row in [full, gap] {
            let mut mine = BytesMut::new();
            encode_row(&mut mine, &row);
            assert_eq!(mine, generic_row(&row), "row {}", row.row.seq);
        }
        assert_eq!(COPY_HEADER.len(), 19);
    }
}
