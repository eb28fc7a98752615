//! The byte encoding of signed inputs, in the style of the journal's canonical
//! encoding: big-endian integers, 4-byte length before text, fixed-size hashes raw.

pub(crate) struct Input(Vec<u8>);

impl Input {
    pub(crate) fn with_capacity(capacity: usize) -> Input {
        Input(Vec::with_capacity(capacity))
    }

    pub(crate) fn byte(&mut self, value: u8) {
        self.0.push(value);
    }

    /// 8 bytes, big-endian two's complement.
    pub(crate) fn int(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    /// 4-byte big-endian byte length, then the UTF-8 bytes.
    pub(crate) fn text(&mut self, value: &str) {
        // Saturate rather than wrap so an impossible length can never alias a
        // shorter one (as in the journal encoding).
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(value.as_bytes());
    }

    /// Fixed-size values (hashes, keys, signatures): no length prefix.
    pub(crate) fn raw(&mut self, value: &[u8]) {
        self.0.extend_from_slice(value);
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}
