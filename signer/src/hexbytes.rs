//! Serde for fixed-size byte arrays as lowercase hex strings of exact length.

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 128];
    let text = &mut buf[..2 * N];
    hex::encode_to_slice(bytes, text).map_err(serde::ser::Error::custom)?;
    s.serialize_str(std::str::from_utf8(text).expect("hex is ASCII"))
}

pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    d.deserialize_str(HexVisitor::<N>)
}

/// Parses in place from the input (or the parser's scratch buffer): no
/// allocation per hash, which matters at a million rows.
struct HexVisitor<const N: usize>;

impl<const N: usize> serde::de::Visitor<'_> for HexVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a string of {} hex digits", 2 * N)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<[u8; N], E> {
        parse(text).map_err(E::custom)
    }
}

/// `N` bytes from exactly `2N` hex digits (either case).
pub fn parse<const N: usize>(text: &str) -> Result<[u8; N], String> {
    parse_bytes(text.as_bytes()).ok_or_else(|| {
        if text.len() != 2 * N {
            format!(
                "expected {} hex digits, found {} characters",
                2 * N,
                text.len()
            )
        } else {
            format!("invalid hex digit in {text:?}")
        }
    })
}

/// As `parse`, from the digits' bytes; None if they are not `2N` hex digits.
pub fn parse_bytes<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if digits.len() != 2 * N {
        return None;
    }
    // A table lookup per digit: two hashes per row are parsed, a million
    // rows at a time.
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
        if (hi | lo) & 0xf0 != 0 {
            return None;
        }
        *byte = hi << 4 | lo;
    }
    Some(out)
}

/// Bytes from hex digits of any even length (either case), appended to
/// `out`; on an error `out` may hold part of them.
pub fn decode_into(digits: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if !digits.len().is_multiple_of(2) {
        return Err(format!("an odd number of hex digits ({})", digits.len()));
    }
    for pair in digits.chunks_exact(2) {
        let (hi, lo) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
        if (hi | lo) & 0xf0 != 0 {
            return Err("invalid hex digit".to_owned());
        }
        out.push(hi << 4 | lo);
    }
    Ok(())
}

/// Value of each ASCII hex digit; 0xff for every other byte.
const HEX: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Optional variant, for `Option<[u8; N]>` fields.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Option<[u8; N]>, D::Error> {
        struct Wrap<const N: usize>([u8; N]);
        impl<'de, const N: usize> Deserialize<'de> for Wrap<N> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                super::deserialize(d).map(Wrap)
            }
        }
        Ok(<Option<Wrap<N>>>::deserialize(d)?.map(|w| w.0))
    }
}
