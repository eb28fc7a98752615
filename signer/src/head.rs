//! Signed chain heads: `(database, seq, row_hash, signed_at)` under an
//! HMAC-SHA256 and an Ed25519 signature, over the input specified in
//! docs/EXPORT_FORMAT.md §2 (same style as the journal's canonical encoding).

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::encode::Input;
use crate::hexbytes;
use crate::keys::Keys;

/// Domain of the signed-head input: no other signed message starts with it.
pub const HEAD_DOMAIN: &str = "egress-audit signed head";
/// First byte of the signed-head input.
pub const HEAD_VERSION: u8 = 1;

/// A chain head as signed by the collector. Its JSON form (hex for bytes) is
/// what Odoo shows as `mit_network_audit.signed_head` (from `public.network_signed_head`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    pub database: String,
    pub seq: i64,
    #[serde(with = "hexbytes")]
    pub row_hash: [u8; 32],
    /// Microseconds since the Unix epoch.
    pub signed_at_us: i64,
    #[serde(with = "hexbytes")]
    pub hmac: [u8; 32],
    #[serde(with = "hexbytes")]
    pub signature: [u8; 64],
    #[serde(with = "hexbytes")]
    pub public_key: [u8; 32],
    /// The collector that signed it (its `state.collector_id`), when known:
    /// informative, not signed (the key is what is checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
}

/// The bytes under both the HMAC and the Ed25519 signature of a head:
/// `01 ‖ text(HEAD_DOMAIN) ‖ text(database) ‖ int(seq) ‖ row_hash ‖ int(signed_at_us)`.
pub fn head_input(database: &str, seq: i64, row_hash: &[u8; 32], signed_at_us: i64) -> Vec<u8> {
    let mut input = Input::with_capacity(96 + database.len());
    input.byte(HEAD_VERSION);
    input.text(HEAD_DOMAIN);
    input.text(database);
    input.int(seq);
    input.raw(row_hash);
    input.int(signed_at_us);
    input.into_bytes()
}

/// Signs the head `(database, seq, row_hash, signed_at_us)` with both keys.
pub fn sign_head(
    keys: &Keys,
    database: &str,
    seq: i64,
    row_hash: &[u8; 32],
    signed_at_us: i64,
) -> SignedHead {
    let input = head_input(database, seq, row_hash, signed_at_us);
    SignedHead {
        database: database.to_owned(),
        seq,
        row_hash: *row_hash,
        signed_at_us,
        hmac: hmac_sha256(keys.hmac_key(), &input),
        signature: keys.signing_key().sign(&input).to_bytes(),
        public_key: keys.public_key(),
        collector: None,
    }
}

impl SignedHead {
    /// The signed bytes of this head.
    pub fn input(&self) -> Vec<u8> {
        head_input(&self.database, self.seq, &self.row_hash, self.signed_at_us)
    }

    /// Whether the Ed25519 signature is valid for `public_key` (pass the key
    /// you trust, not `self.public_key`, unless you have pinned it).
    pub fn verify_signature(&self, public_key: &[u8; 32]) -> bool {
        ed25519_valid(public_key, &self.input(), &self.signature)
    }

    /// Whether the HMAC is valid for `hmac_key` (compared in constant time).
    pub fn verify_hmac(&self, hmac_key: &[u8; 32]) -> bool {
        hmac_valid(hmac_key, &self.input(), &self.hmac)
    }

    /// JSON text of this head (as Odoo shows it, `mit_network_audit.signed_head`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a head always serialises")
    }
}

pub(crate) fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

pub(crate) fn hmac_valid(key: &[u8; 32], message: &[u8], tag: &[u8; 32]) -> bool {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.verify_slice(tag).is_ok()
}

/// Strict verification: rejects weak public keys and non-canonical
/// signatures, so one signature has one meaning.
pub(crate) fn ed25519_valid(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(public_key).is_ok_and(|key| {
        key.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_secrets([7; 32], [9; 32])
    }

    #[test]
    fn a_signed_head_verifies_with_both_keys_and_only_those() {
        let head = sign_head(&keys(), "prod", 10, &[3; 32], 1_700_000_000_000_000);
        assert!(head.verify_signature(&keys().public_key()));
        assert!(head.verify_hmac(keys().hmac_key()));
        let other = Keys::from_secrets([8; 32], [10; 32]);
        assert!(!head.verify_signature(&other.public_key()));
        assert!(!head.verify_hmac(other.hmac_key()));
    }

    #[test]
    fn every_signed_field_matters() {
        let head = sign_head(&keys(), "prod", 10, &[3; 32], 5);
        let pk = keys().public_key();
        let changed = [
            SignedHead {
                database: "prod2".into(),
                ..head.clone()
            },
            SignedHead {
                seq: 11,
                ..head.clone()
            },
            SignedHead {
                row_hash: [4; 32],
                ..head.clone()
            },
            SignedHead {
                signed_at_us: 6,
                ..head.clone()
            },
        ];
        for h in changed {
            assert!(!h.verify_signature(&pk), "{h:?}");
            assert!(!h.verify_hmac(keys().hmac_key()), "{h:?}");
        }
    }

    #[test]
    fn the_input_is_length_prefixed_and_big_endian() {
        let input = head_input("db", 1, &[0xaa; 32], 2);
        let mut expected = vec![1, 0, 0, 0, 24];
        expected.extend_from_slice(HEAD_DOMAIN.as_bytes());
        expected.extend_from_slice(&[0, 0, 0, 2, b'd', b'b']);
        expected.extend_from_slice(&1i64.to_be_bytes());
        expected.extend_from_slice(&[0xaa; 32]);
        expected.extend_from_slice(&2i64.to_be_bytes());
        assert_eq!(input, expected);
    }

    #[test]
    fn json_round_trip_uses_hex() {
        let head = sign_head(&keys(), "prod", 10, &[3; 32], 5);
        let json = head.to_json();
        assert!(json.contains(&hex::encode([3u8; 32])), "{json}");
        assert_eq!(serde_json::from_str::<SignedHead>(&json).unwrap(), head);
    }
}
