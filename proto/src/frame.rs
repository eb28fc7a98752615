//! The datagram frame: `magic(2) ‖ version(1) ‖ kind(1) ‖ bincode payload`.
//! Every bincode call of the project is in this file, so the codec can be
//! swapped behind the version byte (bincode 1.3 is frozen upstream).

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

use crate::{Call, ConfigChange, Drops, Error, ForensicBody, Hello};

/// "EG": first two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"EG";
/// Version of the frame and payload encoding described in docs/WIRE_FORMAT.md.
pub const FORMAT_VERSION: u8 = 1;
/// Largest datagram a sender may send and the collector will read.
pub const MAX_DATAGRAM_SIZE: usize = 16 * 1024;
/// Magic, version and kind.
pub const HEADER_LEN: usize = 4;

/// The kind byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageKind {
    Hello = 1,
    Call = 2,
    Drops = 3,
    ConfigChange = 4,
    ForensicBody = 5,
}

impl MessageKind {
    pub fn from_byte(byte: u8) -> Result<Self, Error> {
        match byte {
            1 => Ok(MessageKind::Hello),
            2 => Ok(MessageKind::Call),
            3 => Ok(MessageKind::Drops),
            4 => Ok(MessageKind::ConfigChange),
            5 => Ok(MessageKind::ForensicBody),
            other => Err(Error::UnknownKind(other)),
        }
    }
}

/// A decoded datagram.
// Messages are decoded one at a time and moved once into the pipeline, so
// boxing the large `Call` variant would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Call(Call),
    Drops(Drops),
    ConfigChange(ConfigChange),
    ForensicBody(ForensicBody),
}

impl Message {
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Hello(_) => MessageKind::Hello,
            Message::Call(_) => MessageKind::Call,
            Message::Drops(_) => MessageKind::Drops,
            Message::ConfigChange(_) => MessageKind::ConfigChange,
            Message::ForensicBody(_) => MessageKind::ForensicBody,
        }
    }
}

/// Fixed-width little-endian integers, a hard size limit, and no trailing
/// bytes: a payload decodes to exactly one message or not at all.
fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit((MAX_DATAGRAM_SIZE - HEADER_LEN) as u64)
        .reject_trailing_bytes()
}

/// Encodes a message into a complete datagram, or fails if it would not fit.
pub fn encode(message: &Message) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.push(message.kind() as u8);
    let written = match message {
        Message::Hello(m) => codec().serialize_into(&mut out, m),
        Message::Call(m) => codec().serialize_into(&mut out, m),
        Message::Drops(m) => codec().serialize_into(&mut out, m),
        Message::ConfigChange(m) => codec().serialize_into(&mut out, m),
        Message::ForensicBody(m) => codec().serialize_into(&mut out, m),
    };
    written.map_err(|e| Error::Encode {
        max: MAX_DATAGRAM_SIZE,
        reason: e.to_string(),
    })?;
    if out.len() > MAX_DATAGRAM_SIZE {
        return Err(Error::Encode {
            max: MAX_DATAGRAM_SIZE,
            reason: format!("{} bytes", out.len()),
        });
    }
    Ok(out)
}

/// Largest record of the collector's spool (docs/JOURNAL_FORMAT.md §8):
/// one redacted event, far above any datagram's worth.
pub const MAX_RECORD_SIZE: usize = 1 << 20;

fn record_codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(MAX_RECORD_SIZE as u64)
        .reject_trailing_bytes()
}

/// Encodes one spool record's payload (the same codec as datagrams, with
/// the record's size limit), so bincode stays behind this file.
pub fn encode_record<T: Serialize>(record: &T) -> Result<Vec<u8>, Error> {
    record_codec().serialize(record).map_err(|e| Error::Encode {
        max: MAX_RECORD_SIZE,
        reason: e.to_string(),
    })
}

/// Decodes one spool record's payload; never panics, whatever the bytes.
pub fn decode_record<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Error> {
    record_codec()
        .deserialize(payload)
        .map_err(|e| Error::BadRecord {
            reason: e.to_string(),
        })
}

/// Decodes one datagram. Never panics, whatever the bytes.
pub fn decode(datagram: &[u8]) -> Result<Message, Error> {
    if datagram.len() > MAX_DATAGRAM_SIZE {
        return Err(Error::Oversized {
            len: datagram.len(),
            max: MAX_DATAGRAM_SIZE,
        });
    }
    if datagram.len() < HEADER_LEN {
        return Err(Error::Truncated {
            len: datagram.len(),
            min: HEADER_LEN,
        });
    }
    let magic = [datagram[0], datagram[1]];
    if magic != MAGIC {
        return Err(Error::BadMagic {
            found: magic,
            expected: MAGIC,
        });
    }
    if datagram[2] != FORMAT_VERSION {
        return Err(Error::UnknownVersion(datagram[2]));
    }
    let kind = MessageKind::from_byte(datagram[3])?;
    let payload = &datagram[HEADER_LEN..];
    let message = match kind {
        MessageKind::Hello => Message::Hello(payload_of(kind, payload)?),
        MessageKind::Call => Message::Call(payload_of(kind, payload)?),
        MessageKind::Drops => Message::Drops(payload_of(kind, payload)?),
        MessageKind::ConfigChange => Message::ConfigChange(payload_of(kind, payload)?),
        MessageKind::ForensicBody => Message::ForensicBody(payload_of(kind, payload)?),
    };
    Ok(message)
}

fn payload_of<T: DeserializeOwned + Serialize>(
    kind: MessageKind,
    payload: &[u8],
) -> Result<T, Error> {
    codec().deserialize(payload).map_err(|e| Error::BadPayload {
        kind,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_call() -> Call {
        Call {
            worker_id: 7,
            seq: 1,
            database: "odoo".into(),
            channel: "http".into(),
            host: "example.com".into(),
            port: 443,
            ..Call::default()
        }
    }

    #[test]
    fn round_trips_every_kind() {
        let messages = [
            Message::Hello(Hello {
                worker_id: 1,
                addons_paths: vec!["/a".into()],
                ..Hello::default()
            }),
            Message::Call(sample_call()),
            Message::Drops(Drops {
                worker_id: 1,
                counts: vec![crate::DropCount {
                    database: "x".into(),
                    reason: "buffer_full".into(),
                    count: 3,
                }],
                cursors: vec![],
            }),
            Message::ConfigChange(ConfigChange {
                key: "k".into(),
                ..ConfigChange::default()
            }),
            Message::ForensicBody(ForensicBody {
                part: "request".into(),
                data: vec![1, 2, 3],
                ..ForensicBody::default()
            }),
        ];
        for message in messages {
            let bytes = encode(&message).unwrap();
            assert_eq!(decode(&bytes).unwrap(), message);
        }
    }

    #[test]
    fn rejects_bad_frames_with_their_reason() {
        let good = encode(&Message::Call(sample_call())).unwrap();
        assert_eq!(decode(&good[..3]).unwrap_err().reason(), "truncated");
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert_eq!(decode(&bad_magic).unwrap_err().reason(), "bad_magic");
        let mut bad_version = good.clone();
        bad_version[2] = 99;
        assert_eq!(
            decode(&bad_version).unwrap_err().reason(),
            "unknown_version"
        );
        let mut bad_kind = good.clone();
        bad_kind[3] = 42;
        assert_eq!(decode(&bad_kind).unwrap_err().reason(), "unknown_kind");
        assert_eq!(
            decode(&good[..good.len() - 1]).unwrap_err().reason(),
            "bad_payload"
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing).unwrap_err().reason(), "bad_payload");
        let oversized = vec![0u8; MAX_DATAGRAM_SIZE + 1];
        assert_eq!(decode(&oversized).unwrap_err().reason(), "oversized");
    }

    #[test]
    fn a_huge_length_prefix_is_rejected_without_allocating_it() {
        let mut frame = encode(&Message::Call(sample_call())).unwrap();
        // Frame bytes 20..28 (payload bytes 16..24) are the database length prefix.
        let prefix = HEADER_LEN + 16;
        frame[prefix..prefix + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(decode(&frame).unwrap_err().reason(), "bad_payload");
    }

    #[test]
    fn refuses_to_encode_what_does_not_fit() {
        let mut call = sample_call();
        call.path = "a".repeat(MAX_DATAGRAM_SIZE);
        assert_eq!(encode(&Message::Call(call)).unwrap_err().reason(), "encode");
    }

    #[test]
    fn the_largest_forensic_chunk_fits_with_the_longest_database() {
        let chunks = ForensicBody::chunks(
            u64::MAX,
            &"d".repeat(255),
            u64::MAX,
            "response",
            u64::MAX,
            true,
            [0xff; 32],
            &vec![7u8; 3 * crate::event::FORENSIC_CHUNK + 1],
        );
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[3].data.len(), 1);
        assert_eq!(chunks[3].offset, 3 * crate::event::FORENSIC_CHUNK as u64);
        for chunk in chunks {
            let bytes = encode(&Message::ForensicBody(chunk.clone())).unwrap();
            assert!(bytes.len() <= MAX_DATAGRAM_SIZE);
            assert_eq!(decode(&bytes).unwrap(), Message::ForensicBody(chunk));
        }
        let empty = ForensicBody::chunks(1, "d", 1, "request", 0, false, [0; 32], &[]);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].data.is_empty());
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small xorshift so the test is deterministic without a dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|i| (state >> (i % 56)) as u8).collect();
            if len > 4 && state.is_multiple_of(2) {
                bytes[..4].copy_from_slice(&[b'E', b'G', FORMAT_VERSION, (state % 6) as u8]);
            }
            let _ = decode(&bytes);
        }
    }
}
