//! API token secrets: how they are made, hashed and checked.
//!
//! A token is `sluice_` followed by 64 hex digits of randomness, shown once when created.
//! The store keeps only its SHA-256. Requests are authenticated by hashing the presented
//! token and looking the hash up; the final comparison of digests is constant-time. Lookups
//! are cached in memory and the cache is dropped on every configuration change (revoking a
//! token is one), so a revoked token stops working as soon as the change is seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::RngExt as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError, Token};

/// The prefix of every token, so secret scanners can find leaked ones.
pub const TOKEN_PREFIX: &str = "sluice_";

/// The most unknown hashes remembered, so random guesses cannot grow the cache without bound.
const MAX_CACHED_MISSES: usize = 10_000;

/// A new random token secret.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The SHA-256 of a secret, as 64 lowercase hex digits.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Remembers which hashes belong to which tokens.
#[derive(Debug, Default, Clone)]
pub struct TokenCache {
    entries: Arc<Mutex<Cache>>,
}

#[derive(Debug, Default)]
struct Cache {
    found: HashMap<String, Token>,
    missing: HashMap<String, ()>,
}

impl TokenCache {
    /// Forgets everything; called on every configuration change.
    pub fn clear(&self) {
        if let Ok(mut cache) = self.entries.lock() {
            cache.found.clear();
            cache.missing.clear();
        }
    }

    /// The live (unrevoked) token whose secret is `secret`, if any.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        secret: &str,
    ) -> Result<Option<Token>, StoreError> {
        let hash = hash_secret(secret);
        if let Ok(cache) = self.entries.lock() {
            if let Some(token) = cache.found.get(&hash) {
                return Ok(Some(token.clone()));
            }
            if cache.missing.contains_key(&hash) {
                return Ok(None);
            }
        }
        let found = match store.token_by_hash(&hash).await {
            Ok(token) => Some(token),
            Err(StoreError::NotFound) => None,
            Err(other) => return Err(other),
        };
        let live = found.filter(|token| token.revoked_at_ms.is_none());
        if let Ok(mut cache) = self.entries.lock() {
            match &live {
                Some(token) => {
                    cache.found.insert(hash.clone(), token.clone());
                }
                None if cache.missing.len() < MAX_CACHED_MISSES => {
                    cache.missing.insert(hash.clone(), ());
                }
                None => {}
            }
        }
        Ok(live)
    }
}

/// Whether two hex digests are equal, in time independent of where they differ.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hash_to_hex() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        let hash = hash_secret(&a);
        assert_eq!(hash.len(), 64);
        assert!(digests_equal(&hash, &hash_secret(&a)));
        assert!(!digests_equal(&hash, &hash_secret(&b)));
    }
}
