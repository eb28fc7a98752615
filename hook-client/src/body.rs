//! A body copied by forensic capture, as the interceptor hands it over.

/// One body copied by forensic capture, capped by the interceptor.
#[derive(Debug, Clone, Default)]
pub struct CapturedBody {
    /// `request` or `response`.
    pub part: String,
    /// Length of the whole body.
    pub total_len: u64,
    /// `data` is only the beginning of the body.
    pub truncated: bool,
    /// SHA-256 of the whole body.
    pub sha256: [u8; 32],
    pub data: Vec<u8>,
}
