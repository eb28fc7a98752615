//! The one error type of `egress-proto`.

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
