//! The one error type of `egress-proto`, and `chain_text`, how every crate
//! prints an error with its sources.

/// Why a datagram could not be decoded or a message could not be encoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("datagram of {len} bytes is shorter than the {min}-byte header")]
    Truncated { len: usize, min: usize },
    #[error("datagram of {len} bytes is over the {max}-byte limit")]
    Oversized { len: usize, max: usize },
    #[error("bad magic {found:02x?}, expected {expected:02x?}")]
    BadMagic { found: [u8; 2], expected: [u8; 2] },
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("payload of a {kind:?} message does not decode: {reason}")]
    BadPayload {
        kind: crate::MessageKind,
        reason: String,
    },
    #[error("spool record does not decode: {reason}")]
    BadRecord { reason: String },
    #[error("message does not encode within {max} bytes: {reason}")]
    Encode { max: usize, reason: String },
}

impl Error {
    /// A short, stable label for counters ("truncated", "oversized", ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Truncated { .. } => "truncated",
            Error::Oversized { .. } => "oversized",
            Error::BadMagic { .. } => "bad_magic",
            Error::UnknownVersion(_) => "unknown_version",
            Error::UnknownKind(_) => "unknown_kind",
            Error::BadPayload { .. } => "bad_payload",
            Error::BadRecord { .. } => "bad_record",
            Error::Encode { .. } => "encode",
        }
    }
}

/// An error and all its sources on one line: libraries keep the useful part
/// ("database \"x\" does not exist") in a source, not in their own message.
pub fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Messages often carry their source's text already (`{source}`):
        // print each cause once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
