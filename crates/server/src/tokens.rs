//! API token secrets: how they are made, hashed and checked.
//!
//! A token is `sluice_` followed by 64 hex digits of randomness, shown once when created.
//! The store keeps only its SHA-256. Requests are authenticated by hashing the presented
//! token and looking the hash up; the final comparison of digests is constant-time. Lookups
//! are cached in memory; on every configuration change (revoking a token is one) the cache
//! keeps only the tokens the store still lists as live, so a revoked token stops working as
//! soon as the change is seen, and known tokens keep working while the store is unreachable.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
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
///
/// Every authenticated request asks, so live tokens are read from an immutable map through
/// `ArcSwap`, without a lock; the first request with a token goes to the store and adds the
/// token to a copy of the map. Unknown secrets are remembered apart, under a lock, so a flood
/// of bad guesses neither copies the map nor reaches the store twice for the same guess.
/// On every configuration change, which is also when tokens change, live tokens keep only
/// those still live and unknown secrets are forgotten.
#[derive(Debug, Default, Clone)]
pub struct TokenCache {
    live: Arc<ArcSwap<Live>>,
    missing: Arc<Mutex<HashSet<[u8; 32]>>>,
}

/// The first 8 bytes of SHA-256 digests to the full digests that start with them and their
/// live tokens. The full digest is compared in constant time.
type Live = HashMap<u64, Vec<([u8; 32], Arc<Token>)>, foldhash::fast::RandomState>;

fn prefix(digest: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

impl TokenCache {
    /// Forgets everything; called on every configuration change.
    pub fn clear(&self) {
        self.live.store(Arc::default());
        self.missing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Keeps only the cached tokens that `tokens` (every token the store holds) lists as live,
    /// and forgets unknown secrets, which may belong to tokens created since.
    pub fn retain_live(&self, tokens: &[Token]) {
        let live: HashSet<&str> = tokens
            .iter()
            .filter(|token| token.revoked_at_ms.is_none())
            .map(|token| token.id.as_str())
            .collect();
        self.live.rcu(|cache| {
            let mut next = Live::clone(cache);
            for entries in next.values_mut() {
                entries.retain(|(_, token)| live.contains(token.id.as_str()));
            }
            next.retain(|_, entries| !entries.is_empty());
            next
        });
        self.missing().clear();
    }

    /// The live (unrevoked) token whose secret is `secret`, if any.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        secret: &str,
    ) -> Result<Option<Arc<Token>>, StoreError> {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        if let Some((_, token)) = self.live.load().get(&prefix(&digest)).and_then(|entries| {
            entries
                .iter()
                .find(|(candidate, _)| bool::from(candidate.ct_eq(&digest)))
        }) {
            return Ok(Some(token.clone()));
        }
        if self.missing().contains(&digest) {
            return Ok(None);
        }
        let found = match store.token_by_hash(&hex::encode(digest)).await {
            Ok(token) => Some(token),
            Err(StoreError::NotFound) => None,
            Err(other) => return Err(other),
        };
        let live = found
            .filter(|token| token.revoked_at_ms.is_none())
            .map(Arc::new);
        match &live {
            Some(token) => {
                self.live.rcu(|cache| {
                    let mut next = Live::clone(cache);
                    let entries = next.entry(prefix(&digest)).or_default();
                    entries.retain(|(candidate, _)| candidate != &digest);
                    entries.push((digest, token.clone()));
                    next
                });
            }
            None => {
                let mut missing = self.missing();
                if missing.len() < MAX_CACHED_MISSES {
                    missing.insert(digest);
                }
            }
        }
        Ok(live)
    }

    fn missing(&self) -> MutexGuard<'_, HashSet<[u8; 32]>> {
        self.missing.lock().unwrap_or_else(PoisonError::into_inner)
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
