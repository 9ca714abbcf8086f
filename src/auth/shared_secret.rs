//! Shared bearer secrets (the relay's, the metrics scraper's) compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// A secret a caller must present, compared without leaking its content or its length through
/// timing: both sides go through HMAC-SHA256 under a random per-process key, and the tags are
/// compared with `verify_slice` (constant time, from the `hmac` crate).
pub struct SharedSecret {
    key: [u8; 32],
    tag: Vec<u8>,
}

impl SharedSecret {
    /// `None` for an empty secret (not configured).
    pub fn new(secret: &Secret) -> Option<Self> {
        if secret.expose().is_empty() {
            return None;
        }
        let key: [u8; 32] = rand::random();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
        mac.update(secret.expose().as_bytes());
        Some(SharedSecret { key, tag: mac.finalize().into_bytes().to_vec() })
    }

    /// Whether `candidate` is the secret.
    pub fn matches(&self, candidate: &str) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else { return false };
        mac.update(candidate.as_bytes());
        mac.verify_slice(&self.tag).is_ok()
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_matches() {
        let secret = SharedSecret::new(&Secret::new("s3cret-value")).unwrap();
        assert!(secret.matches("s3cret-value"));
        assert!(!secret.matches("s3cret-valu"));
        assert!(!secret.matches("s3cret-value "));
        assert!(!secret.matches(""));
        assert!(SharedSecret::new(&Secret::new("")).is_none());
    }
}
