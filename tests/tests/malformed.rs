//! 10,000 malformed datagrams among valid traffic: each is counted as
//! rejected, none is journaled, none disturbs the valid events, and the
//! collector keeps running.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use egress_proto::{
    decode, encode, Call, Drops, Hello, Message, SeqCursor, FORMAT_VERSION, MAGIC,
    MAX_DATAGRAM_SIZE,
};
use egress_tests::{serial, verify, wait_until, Collector, DatagramSender, TestDb};

const MALFORMED: usize = 10_000;
/// One valid call after every `VALID_EVERY` malformed datagrams.
const VALID_EVERY: usize = 5;

/// xorshift64: deterministic bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// `min` to `min + spread - 1` random bytes.
    fn some_bytes(&mut self, min: usize, spread: u64) -> Vec<u8> {
        let len = min + self.below(spread) as usize;
        self.bytes(len)
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn call(worker_id: u64, seq: u64, database: &str) -> Call {
    Call {
        worker_id,
        seq,
        database: database.into(),
        started_at_us: now_us(),
        duration_us: 1_500,
        channel: "http".into(),
        protocol: "https".into(),
        direction: "outbound".into(),
        method: "POST".into(),
        host: "api.example.com".into(),
        port: 443,
        path: "/v1/ping".into(),
        query_keys: vec!["since".into()],
        header_names: vec!["Content-Type".into()],
        tls: true,
        status: Some(200),
        bytes_out: 120,
        bytes_in: 48,
        ..Call::default()
    }
}

/// The `i`-th malformed datagram: seven kinds in turn.
fn malformed(i: usize, rng: &mut Rng, template: &[u8]) -> Vec<u8> {
    match i % 7 {
        // Random bytes that cannot start with the magic.
        0 => {
            let mut bytes = rng.some_bytes(4, 300);
            if bytes[0] == MAGIC[0] {
                bytes[0] = !MAGIC[0];
            }
            bytes
        }
        // Truncated below the header, down to an empty datagram.
        1 => template[..rng.below(4) as usize].to_vec(),
        // A valid frame with a wrong magic.
        2 => {
            let mut bytes = template.to_vec();
            bytes[rng.below(2) as usize] ^= 1 + rng.below(255) as u8;
            bytes
        }
        // An unknown format version.
        3 => {
            let mut bytes = template.to_vec();
            bytes[2] = FORMAT_VERSION.wrapping_add(1 + rng.below(255) as u8);
            bytes
        }
        // An unknown message kind.
        4 => {
            let mut bytes = template.to_vec();
            bytes[3] = [0u8, 5, 6, 42, 255][rng.below(5) as usize];
            bytes
        }
        // Over the size limit, with a valid header.
        5 => {
            let mut bytes = template[..4].to_vec();
            let len = MAX_DATAGRAM_SIZE + 1 + rng.below(1_000) as usize;
            bytes.extend(rng.bytes(len - 4));
            bytes
        }
        // A valid header with a payload that does not decode: garbage, a
        // frame cut short, or a frame with trailing bytes.
        _ => match rng.below(3) {
            0 => {
                let mut bytes = template[..4].to_vec();
                bytes[3] = 1 + rng.below(4) as u8;
                bytes.extend(rng.some_bytes(1, 200));
                bytes
            }
            1 => template[..template.len() - 1 - rng.below(20) as usize].to_vec(),
            _ => {
                let mut bytes = template.to_vec();
                bytes.extend(rng.some_bytes(1, 8));
                bytes
            }
        },
    }
}

#[test]
fn malformed_datagrams_are_counted_and_never_journaled() {
    let _serial = serial();
    let db = TestDb::new("malformed");
    let mut collector = Collector::start(db.name());
    let mut tx = DatagramSender::new(collector.socket());
    let worker_id = 0xE6E5_0000_0000 | u64::from(std::process::id());
    let template = encode(&Message::Call(call(worker_id, 1, db.name()))).unwrap();

    tx.send(
        &encode(&Message::Hello(Hello {
            worker_id,
            pid: std::process::id(),
            sent_at_us: now_us(),
            hook_mode: "rust".into(),
            hook_version: env!("CARGO_PKG_VERSION").into(),
            databases: vec![db.name().into()],
            ..Hello::default()
        }))
        .unwrap(),
    );

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut expected_reasons: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut valid = 0u64;
    for i in 0..MALFORMED {
        let bytes = malformed(i, &mut rng, &template);
        // The reference decoder must refuse it too: then "rejected" is exact.
        let reason = decode(&bytes)
            .expect_err("a malformed datagram must not decode")
            .reason();
        *expected_reasons.entry(reason).or_default() += 1;
        tx.send(&bytes);
        if i % VALID_EVERY == 0 {
            valid += 1;
            tx.send(&encode(&Message::Call(call(worker_id, valid, db.name()))).unwrap());
        }
    }
    // The worker's own account: nothing dropped, last seq `valid`.
    tx.send(
        &encode(&Message::Drops(Drops {
            worker_id,
            counts: vec![],
            cursors: vec![SeqCursor {
                database: db.name().into(),
                last_seq: valid,
            }],
        }))
        .unwrap(),
    );

    let calls = wait_until(
        Duration::from_secs(60),
        || db.call_rows(),
        |n| *n >= valid as i64,
    );
    assert_eq!(
        calls,
        valid as i64,
        "every valid call is journaled ({})",
        db.gap_summary()
    );
    let status = wait_until(
        Duration::from_secs(30),
        || collector.status(),
        |s| s.datagrams() >= tx.sent as i64,
    );
    assert_eq!(
        status.rejected_total(),
        MALFORMED as i64,
        "rejected, summed over reasons; expected by reason {expected_reasons:?}; status {status}"
    );
    for (reason, count) in &expected_reasons {
        assert_eq!(
            status.rejected(reason),
            *count,
            "rejected.{reason}; status {status}"
        );
    }
    assert_eq!(
        status.datagrams(),
        tx.sent as i64,
        "every datagram is counted; status {status}"
    );
    assert!(
        collector.is_running(),
        "the collector survived the malformed datagrams"
    );

    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        db.rows(),
        valid as i64,
        "only the valid calls are journaled ({})",
        db.gap_summary()
    );
    assert!(db.seq_gapless(), "seq must run 1..=count(*)");
    let outcome = verify(&db.superuser_url());
    assert!(outcome.verified(), "verify:\n{outcome}");
}
