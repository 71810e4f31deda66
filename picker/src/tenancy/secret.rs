//! Virtual keys' secrets and ids, and the digest the store keeps instead of the secret.
//!
//! A secret is `sk-sluice-` and 32 bytes from the operating system's generator in base64url
//! without padding: it is shown once, in the answer that created (or rotated) it, and only its
//! SHA-256 is stored, as in the filter's own configuration.

use base64::Engine;
use sha2::{Digest, Sha256};

pub const SECRET_PREFIX: &str = "sk-sluice-";
pub const ID_PREFIX: &str = "key_";

/// A new secret; fails only when the operating system cannot give random bytes.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| format!("no random bytes: {err}"))?;
    let mut secret = String::with_capacity(SECRET_PREFIX.len() + 43);
    secret.push_str(SECRET_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut secret);
    Ok(secret)
}

/// A new key id: `key_` and 16 random hex digits.
pub fn new_id() -> Result<String, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|err| format!("no random bytes: {err}"))?;
    Ok(format!("{ID_PREFIX}{}", hex(&bytes)))
}

/// SHA-256 of a secret, 64 lowercase hex digits (what the snapshot carries).
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_url_safe() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        let body = a.strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(body.len(), 43);
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{a}"
        );
    }

    #[test]
    fn ids_are_prefixed_hex() {
        let id = new_id().unwrap();
        let digits = id.strip_prefix(ID_PREFIX).unwrap();
        assert_eq!(digits.len(), 16);
        assert!(digits.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_id().unwrap(), id);
    }

    #[test]
    fn digests_are_lowercase_sha256() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
