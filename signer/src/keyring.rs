//! The keyring an auditor pins: the Ed25519 public keys allowed to sign the
//! heads of a database that several collectors write (one key per
//! collector, never a shared secret), each with an optional name. Every
//! verifier reads it the same way and names a head signed outside it.
//!
//! File format (`--keyring FILE`): one key a line, 64 hex digits as
//! `egress-collector pubkey` prints them, then optionally a space and a
//! name (the collector's, say); blank lines and lines starting with `#`
//! are ignored.

use std::path::Path;

/// The public keys a verifier accepts, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<([u8; 32], Option<String>)>,
}

/// A key's short id, as every message and `egress-collector keys` show it:
/// its first 8 bytes in hex.
pub fn key_id(key: &[u8; 32]) -> String {
    hex::encode(&key[..8])
}

/// A public key from its 64 hex digits.
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

impl Keyring {
    /// A keyring of these keys (unnamed).
    pub fn of(keys: impl IntoIterator<Item = [u8; 32]>) -> Keyring {
        let mut ring = Keyring::default();
        for key in keys {
            ring.add(key, None);
        }
        ring
    }

    /// Adds a key; a key given twice is kept once (with the first name).
    pub fn add(&mut self, key: [u8; 32], name: Option<String>) {
        if !self.contains(&key) {
            self.keys.push((key, name));
        }
    }

    /// The keyring of `--pubkey` values and `--keyring` files, as every
    /// verifier's command line gives them; `None` when neither was given.
    /// `Err` is one line naming the bad value and the fix.
    pub fn from_args(
        pubkeys: &[String],
        files: &[impl AsRef<Path>],
    ) -> std::result::Result<Option<Keyring>, String> {
        if pubkeys.is_empty() && files.is_empty() {
            return Ok(None);
        }
        let mut ring = Keyring::default();
        for text in pubkeys {
            let key = parse_key(text).ok_or_else(|| {
                format!("--pubkey {text:?} is not 64 hex digits: give the key `egress-collector pubkey --db NAME` prints")
            })?;
            ring.add(key, None);
        }
        for file in files {
            let path = file.as_ref();
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--keyring {}: {e}", path.display()))?;
            ring.read(&text)
                .map_err(|e| format!("--keyring {}: {e}", path.display()))?;
        }
        if ring.is_empty() {
            return Err(
                "the keyring holds no key: one public key a line (`egress-collector keys --db NAME` lists them)"
                    .into(),
            );
        }
        Ok(Some(ring))
    }

    /// Adds the keys of a keyring file's text.
    pub fn read(&mut self, text: &str) -> std::result::Result<(), String> {
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, name) = match line.split_once(char::is_whitespace) {
                Some((key, name)) => (key, Some(name.trim().to_owned())),
                None => (line, None),
            };
            let key = parse_key(key).ok_or_else(|| {
                format!(
                    "line {}: {key:?} is not 64 hex digits (one public key a line, then optionally a name)",
                    index + 1
                )
            })?;
            self.add(key, name.filter(|n| !n.is_empty()));
        }
        Ok(())
    }

    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.keys.iter().any(|(k, _)| k == key)
    }

    /// The name given to `key`, if any.
    pub fn name(&self, key: &[u8; 32]) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, n)| n.as_deref())
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.keys.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Why a head signed with `key` (by `collector`, as the head says) is
    /// refused, or None if the keyring holds the key.
    pub fn outside(&self, key: &[u8; 32], collector: Option<&str>) -> Option<String> {
        if self.contains(key) {
            return None;
        }
        let by = collector.map_or(String::new(), |c| format!(" (collector {c:?})"));
        Some(format!(
            "it was signed with key {}{by}, which is not in the keyring: a collector the auditor did not pin, or a forger",
            key_id(key)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyring_file_has_one_key_a_line_with_an_optional_name() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let text = format!(
            "# pinned on 2026-12-05\n{} host-a\n\n{}\n{} duplicate\n",
            hex::encode(a),
            hex::encode(b),
            hex::encode(a)
        );
        let mut ring = Keyring::default();
        ring.read(&text).unwrap();
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.name(&a), Some("host-a"));
        assert_eq!(ring.name(&b), None);
        assert!(ring.outside(&a, None).is_none());
        let out = ring.outside(&[3; 32], Some("host-c")).unwrap();
        assert!(
            out.contains("0303030303030303") && out.contains("host-c"),
            "{out}"
        );
        let bad = Keyring::default().read("abcd name\n").unwrap_err();
        assert!(bad.starts_with("line 1:"), "{bad}");
    }

    #[test]
    fn pubkeys_and_files_make_one_keyring() {
        let none: &[&str] = &[];
        assert_eq!(Keyring::from_args(&[], none), Ok(None));
        let ring = Keyring::from_args(&[hex::encode([1u8; 32]), hex::encode([2u8; 32])], none)
            .unwrap()
            .unwrap();
        assert!(ring.contains(&[1; 32]) && ring.contains(&[2; 32]));
        assert!(Keyring::from_args(&["xyz".into()], none)
            .unwrap_err()
            .contains("--pubkey"));
    }
}
