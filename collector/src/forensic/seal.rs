//! The sealing of a body: XChaCha20-Poly1305 under a per-database key kept
//! in the collector's state directory (0600, never in the database), with
//! the call's journal position as associated data, so a body opens only for
//! the row it was sealed for, and a changed byte is refused.

use std::path::PathBuf;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::pipeline::salts::{random_bytes, secret_file};

/// Bumped if the associated data or plaintext layout ever changes.
const AAD_LABEL: &[u8] = b"egress-forensic-v1";

/// One database's sealing key.
pub struct Key {
    key: [u8; 32],
}

impl Key {
    /// The key of `database`, created on first use in `<state>/forensic/`.
    pub fn load_or_create(state_dir: &std::path::Path, database: &str) -> Result<Key> {
        let dir: PathBuf = state_dir.join("forensic");
        Ok(Key {
            key: secret_file(&dir, &format!("{database}.key"))?,
        })
    }

    /// First 8 bytes of SHA-256 of the key, hex: names the key without
    /// revealing it, so a body sealed elsewhere is recognised as such.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.key)[..8])
    }

    /// `(nonce, ciphertext)` of `sha256 ‖ body`.
    pub fn seal(
        &self,
        at: &Position,
        sha256: &[u8; 32],
        body: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let nonce_bytes = random_bytes().map_err(|source| crate::error::Error::State {
            path: "/dev/urandom".into(),
            source,
        })?;
        let nonce = XNonce::from_slice(&nonce_bytes[..24]);
        let mut plaintext = Vec::with_capacity(32 + body.len());
        plaintext.extend_from_slice(sha256);
        plaintext.extend_from_slice(body);
        let aad = at.associated_data();
        let sealed = XChaCha20Poly1305::new((&self.key).into())
            .encrypt(
                nonce,
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length this collector holds");
        Ok((nonce.to_vec(), sealed))
    }

    /// `(sha256 of the whole body, captured body)`, or `None` when the
    /// ciphertext was changed, or sealed for another row or with another key.
    pub fn open(
        &self,
        at: &Position,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Option<([u8; 32], Vec<u8>)> {
        if nonce.len() != 24 {
            return None;
        }
        let aad = at.associated_data();
        let mut plain = XChaCha20Poly1305::new((&self.key).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()?;
        if plain.len() < 32 {
            return None;
        }
        let body = plain.split_off(32);
        Some((plain.try_into().ok()?, body))
    }
}

/// Where a body belongs: its database, its call's journal seq and row hash,
/// and which part of the call it is.
pub struct Position<'a> {
    pub database: &'a str,
    pub seq: i64,
    pub row_hash: &'a [u8],
    pub part: &'a str,
}

impl Position<'_> {
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64 + self.database.len());
        aad.extend_from_slice(AAD_LABEL);
        for text in [
            self.database.as_bytes(),
            self.part.as_bytes(),
            self.row_hash,
        ] {
            aad.extend_from_slice(&(text.len() as u32).to_be_bytes());
            aad.extend_from_slice(text);
        }
        aad.extend_from_slice(&self.seq.to_be_bytes());
        aad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_opens_only_where_it_was_sealed_and_unchanged() {
        let key = Key { key: [7; 32] };
        let at = Position {
            database: "db",
            seq: 5,
            row_hash: &[1; 32],
            part: "request",
        };
        let (nonce, sealed) = key.seal(&at, &[9; 32], b"secret body").unwrap();
        assert_eq!(
            key.open(&at, &nonce, &sealed).unwrap(),
            ([9; 32], b"secret body".to_vec())
        );
        let mut flipped = sealed.clone();
        flipped[3] ^= 1;
        assert!(key.open(&at, &nonce, &flipped).is_none());
        let moved = Position { seq: 6, ..at };
        assert!(key.open(&moved, &nonce, &sealed).is_none());
        let other_hash = Position {
            database: "db",
            seq: 5,
            row_hash: &[2; 32],
            part: "request",
        };
        assert!(key.open(&other_hash, &nonce, &sealed).is_none());
        let other_part = Position {
            database: "db",
            seq: 5,
            row_hash: &[1; 32],
            part: "response",
        };
        assert!(key.open(&other_part, &nonce, &sealed).is_none());
        assert!(Key { key: [8; 32] }.open(&at, &nonce, &sealed).is_none());
    }
}
