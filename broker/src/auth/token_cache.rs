//! What the Kubernetes API server said about a bearer token, kept for a
//! while so that a client's every request does not cost a TokenReview
//! (kube-apiserver's own webhook token authenticator does the same:
//! `--authentication-token-webhook-cache-ttl`, 2 minutes).
//!
//! Keys are SHA-256 digests of the tokens, so the cache holds no
//! credentials. Refusals are kept for a shorter time than acceptances: long
//! enough that a client retrying a bad token in a loop does not hammer the
//! API server, short enough that a token just created works soon. The
//! number of entries is bounded; when full, expired entries go first, then
//! the one closest to expiring.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::Principal;

/// The principal, or why the token was refused.
pub type Outcome = std::result::Result<Principal, String>;

type Key = [u8; 32];

#[derive(Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<Key, (Outcome, Instant)>>,
    /// How long an accepted token is trusted without asking again.
    accepted_ttl: Duration,
    /// How long a refused token is refused without asking again.
    refused_ttl: Duration,
    capacity: usize,
}

impl TokenCache {
    pub fn new(accepted_ttl: Duration, refused_ttl: Duration, capacity: usize) -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
            accepted_ttl,
            refused_ttl,
            capacity: capacity.max(1),
        }
    }

    /// What was said about `token`, unless that has expired.
    pub fn get(&self, token: &str) -> Option<Outcome> {
        let key = key(token);
        let mut entries = self.entries.lock();
        match entries.get(&key) {
            Some((outcome, expires)) if *expires > Instant::now() => Some(outcome.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remember what was said about `token`.
    pub fn put(&self, token: &str, outcome: Outcome) {
        let ttl = if outcome.is_ok() {
            self.accepted_ttl
        } else {
            self.refused_ttl
        };
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let key = key(token);
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.capacity
                && let Some(soonest) = entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| *k)
            {
                entries.remove(&soonest);
            }
        }
        entries.insert(key, (outcome, now + ttl));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key(token: &str) -> Key {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Outcome {
        Ok(Principal(format!("User:{name}")))
    }

    #[tokio::test(start_paused = true)]
    async fn acceptances_and_refusals_expire_after_their_own_ttls() {
        let cache = TokenCache::new(Duration::from_secs(120), Duration::from_secs(10), 100);
        cache.put("good-token", user("app"));
        cache.put("bad-token", Err("no".into()));
        assert_eq!(cache.get("good-token"), Some(user("app")));
        assert_eq!(cache.get("bad-token"), Some(Err("no".into())));
        assert_eq!(cache.get("other-token"), None);

        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(cache.get("bad-token"), None, "a refusal is kept briefly");
        assert_eq!(cache.get("good-token"), Some(user("app")));
        tokio::time::advance(Duration::from_secs(110)).await;
        assert_eq!(cache.get("good-token"), None);
        assert!(cache.is_empty(), "expired entries are dropped when seen");
    }

    #[tokio::test(start_paused = true)]
    async fn the_size_is_bounded_and_expired_entries_go_first() {
        let cache = TokenCache::new(Duration::from_secs(120), Duration::from_secs(10), 3);
        cache.put("refused", Err("no".into()));
        tokio::time::advance(Duration::from_secs(1)).await;
        cache.put("a", user("a"));
        tokio::time::advance(Duration::from_secs(1)).await;
        cache.put("b", user("b"));
        // Full: the entry closest to expiring (the refusal) makes room.
        cache.put("c", user("c"));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("refused"), None);
        // Full again: "a" expires first.
        cache.put("d", user("d"));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("d"), Some(user("d")));
        // Replacing an entry that is there needs no room.
        cache.put("d", user("d2"));
        assert_eq!(cache.get("b"), Some(user("b")));
        assert_eq!(cache.get("d"), Some(user("d2")));
    }

    #[test]
    fn zero_ttl_caches_nothing_and_keys_are_digests() {
        let cache = TokenCache::new(Duration::ZERO, Duration::ZERO, 10);
        cache.put("t", user("x"));
        assert!(cache.is_empty());
        assert_eq!(key("a"), key("a"));
        assert_ne!(key("a"), key("b"));
    }
}
