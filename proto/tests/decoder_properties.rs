//! Property tests of the datagram decoder on hostile input: any bytes, and
//! valid frames with bytes flipped, cut or appended, never panic and never
//! decode to more than one message; every message that fits encodes and
//! decodes back to itself, whatever its numbers (u64 extremes included).

use egress_proto::{decode, encode, Call, DropCount, Drops, Message, SeqCursor, MAX_DATAGRAM_SIZE};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn call() -> impl Strategy<Value = Call> {
    (
        any::<u64>(),
        any::<u64>(),
        text(),
        any::<i64>(),
        any::<u64>(),
        text(),
        any::<u16>(),
        prop::collection::vec(text(), 0..6),
        any::<Option<u32>>(),
        any::<u64>(),
        any::<u64>(),
        any::<Option<[u8; 32]>>(),
    )
        .prop_map(
            |(
                worker_id,
                seq,
                host,
                started,
                duration,
                path,
                port,
                names,
                status,
                out,
                inn,
                digest,
            )| {
                Call {
                    worker_id,
                    seq,
                    database: "db".into(),
                    started_at_us: started,
                    duration_us: duration,
                    host,
                    path,
                    port,
                    header_names: names,
                    status,
                    bytes_out: out,
                    bytes_in: inn,
                    payload_sha256: digest,
                    ..Call::default()
                }
            },
        )
}

fn drops() -> impl Strategy<Value = Drops> {
    (
        any::<u64>(),
        prop::collection::vec((text(), text(), any::<u64>()), 0..5),
        prop::collection::vec((text(), any::<u64>()), 0..5),
    )
        .prop_map(|(worker_id, counts, cursors)| Drops {
            worker_id,
            counts: counts
                .into_iter()
                .map(|(database, reason, count)| DropCount {
                    database,
                    reason,
                    count,
                })
                .collect(),
            cursors: cursors
                .into_iter()
                .map(|(database, last_seq)| SeqCursor { database, last_seq })
                .collect(),
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        call().prop_map(Message::Call),
        drops().prop_map(Message::Drops)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn a_frame_after_its_header_is_hostile_bytes_never_panics(
        kind in 0u8..8,
        payload in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut frame = vec![b'E', b'G', 1, kind];
        frame.extend(payload);
        let _ = decode(&frame);
    }

    #[test]
    fn every_message_round_trips_whatever_its_numbers(message in message()) {
        let frame = encode(&message).unwrap();
        prop_assert!(frame.len() <= MAX_DATAGRAM_SIZE);
        prop_assert_eq!(decode(&frame).unwrap(), message);
    }

    #[test]
    fn a_damaged_frame_is_refused_or_decodes_to_one_message(
        message in message(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cut in any::<prop::sample::Index>(),
        tail in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        let frame = encode(&message).unwrap();
        let mut flipped = frame.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= 1 << bit;
        let _ = decode(&flipped);
        // A cut frame is a truncated one: never the whole message.
        let short = &frame[..cut.index(frame.len())];
        prop_assert!(decode(short).is_err());
        // Trailing bytes are refused: one frame, one message.
        let mut longer = frame.clone();
        longer.extend(tail);
        prop_assert!(decode(&longer).is_err());
    }
}
