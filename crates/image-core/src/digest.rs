use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A content digest: always `sha256:` followed by 64 lowercase hex digits.
///
/// A `Digest` that exists is valid; there is no way to build one that is not.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("a digest must start with `sha256:`")]
    Algorithm,
    #[error("a sha256 digest has 64 lowercase hex digits after `sha256:`")]
    Hex,
}

impl Digest {
    /// The digest of `bytes`, computed by the caller with any sha256 implementation.
    pub fn from_sha256_bytes(hash: [u8; 32]) -> Digest {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in hash {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap());
            s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap());
        }
        Digest(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let hex = s.strip_prefix("sha256:").ok_or(DigestError::Algorithm)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(DigestError::Hex);
        }
        Ok(Digest(s.to_owned()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_sha256_with_64_lowercase_hex() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(ok.parse::<Digest>().unwrap().as_str(), ok);
        assert_eq!("sha512:abc".parse::<Digest>(), Err(DigestError::Algorithm));
        assert_eq!("sha256:abc123".parse::<Digest>(), Err(DigestError::Hex));
        assert_eq!(format!("sha256:{}", "A".repeat(64)).parse::<Digest>(), Err(DigestError::Hex));
        assert_eq!(format!("sha256:{}", "g".repeat(64)).parse::<Digest>(), Err(DigestError::Hex));
        assert_eq!(format!("sha256:{}", "a".repeat(65)).parse::<Digest>(), Err(DigestError::Hex));
    }

    #[test]
    fn formats_raw_hashes() {
        let mut h = [0u8; 32];
        h[0] = 0xab;
        h[31] = 0x01;
        let d = Digest::from_sha256_bytes(h);
        assert_eq!(d.hex().len(), 64);
        assert!(d.as_str().starts_with("sha256:ab00"));
        assert!(d.as_str().ends_with("01"));
        assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
    }
}
