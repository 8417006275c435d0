//! The user pool's signing keys (JWKS), fetched once and cached. A token
//! with an unknown `kid` triggers one refetch (the pool may have rotated its
//! keys); after that, unknown kids are not fetched for again until a penalty
//! window passes, so a flood of forged kids cannot hammer the JWKS endpoint.
//! Within that window an unknown kid is a bad token only if the last fetch
//! worked: after a failed fetch it is still the keys that are missing, and
//! the caller must not be told that a valid token is bad.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::jwt::KeySource;

/// One key of a JSON Web Key Set (RFC 7517), the fields verification uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Jwk {
    pub kid: String,
    pub kty: String,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(rename = "use", default)]
    pub use_: Option<String>,
    #[serde(default)]
    pub n: String,
    #[serde(default)]
    pub e: String,
}

#[derive(Debug, Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no key with kid {0:?}")]
    UnknownKid(String),
    #[error("fetching the user pool's keys failed: {0}")]
    Fetch(String),
}

/// Parse a JWKS document into keys by kid.
pub fn parse_key_set(body: &[u8]) -> Result<HashMap<String, Arc<Jwk>>, KeyError> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|e| KeyError::Fetch(format!("the JWKS is not a valid key set: {e}")))?;
    Ok(set.keys.into_iter().map(|k| (k.kid.clone(), Arc::new(k))).collect())
}

/// Fetches the JWKS document.
pub trait FetchJwks: Sync {
    fn fetch(&self) -> impl Future<Output = Result<Vec<u8>, KeyError>> + Send;
}

struct CacheState {
    keys: HashMap<String, Arc<Jwk>>,
    /// Set after a fetch that did not find the kid it was for (or failed):
    /// until then, unknown kids are not fetched for.
    penalty_until: Option<Instant>,
    /// Why the last fetch failed; `None` once one succeeds.
    last_failure: Option<KeyError>,
}

pub struct JwksCache<F> {
    fetcher: F,
    /// How long unknown kids are refused after a fetch that did not help.
    penalty: Duration,
    state: Mutex<CacheState>,
}

impl<F: FetchJwks> JwksCache<F> {
    pub fn new(fetcher: F, penalty: Duration) -> Self {
        let state = CacheState { keys: HashMap::new(), penalty_until: None, last_failure: None };
        Self { fetcher, penalty, state: Mutex::new(state) }
    }

    #[cfg(test)]
    fn fetcher(&self) -> &F {
        &self.fetcher
    }
}

impl<F: FetchJwks + Send> KeySource for JwksCache<F> {
    async fn key(&self, kid: &str) -> Result<Arc<Jwk>, KeyError> {
        // One fetch at a time: concurrent lookups of a new kid share it.
        let mut state = self.state.lock().await;
        if let Some(key) = state.keys.get(kid) {
            return Ok(key.clone());
        }
        if state.penalty_until.is_some_and(|until| Instant::now() < until) {
            return Err(state.last_failure.clone().unwrap_or_else(|| KeyError::UnknownKid(kid.to_owned())));
        }
        let fetched = self.fetcher.fetch().await.and_then(|body| parse_key_set(&body));
        let found = fetched.as_ref().ok().and_then(|keys| keys.get(kid).cloned());
        // A failed fetch opens the window too: an unreachable endpoint is not
        // retried for every token.
        state.penalty_until = found.is_none().then(|| Instant::now() + self.penalty);
        match fetched.clone() {
            Ok(keys) => {
                state.keys = keys;
                state.last_failure = None;
            }
            Err(e) => state.last_failure = Some(e),
        }
        match (found, fetched) {
            (Some(key), _) => Ok(key),
            (None, Err(e)) => Err(e),
            (None, Ok(_)) => Err(KeyError::UnknownKid(kid.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::jwt::tests::TestPool;

    struct Counting {
        body: std::sync::Mutex<Vec<u8>>,
        fetches: AtomicU32,
    }

    impl Counting {
        fn serving(keys: &[&TestPool]) -> Self {
            let s = Self { body: Default::default(), fetches: AtomicU32::new(0) };
            s.serve(keys);
            s
        }
        fn serve(&self, keys: &[&TestPool]) {
            let jwks = serde_json::json!({ "keys": keys.iter().map(|k| {
                let j = k.jwk();
                serde_json::json!({"kid": j.kid, "kty": j.kty, "alg": j.alg, "use": j.use_, "n": j.n, "e": j.e})
            }).collect::<Vec<_>>() });
            *self.body.lock().unwrap() = jwks.to_string().into_bytes();
        }
    }

    impl FetchJwks for Counting {
        async fn fetch(&self) -> Result<Vec<u8>, KeyError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(self.body.lock().unwrap().clone())
        }
    }

    #[tokio::test]
    async fn keys_are_fetched_once_and_cached() {
        let k1 = TestPool::new("k1");
        let cache = JwksCache::new(Counting::serving(&[&k1]), Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(cache.key("k1").await.unwrap().kid, "k1");
        }
        assert_eq!(cache.fetcher().fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_rotated_key_is_found_by_one_refetch() {
        let (k1, k2) = (TestPool::new("k1"), TestPool::new("k2"));
        let cache = JwksCache::new(Counting::serving(&[&k1]), Duration::ZERO);
        cache.key("k1").await.unwrap();
        cache.fetcher().serve(&[&k1, &k2]);
        assert_eq!(cache.key("k2").await.unwrap().kid, "k2");
        assert_eq!(cache.fetcher().fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_flood_of_unknown_kids_costs_one_fetch_per_penalty_window() {
        let k1 = TestPool::new("k1");
        let cache = JwksCache::new(Counting::serving(&[&k1]), Duration::from_secs(60));
        cache.key("k1").await.unwrap();
        for i in 0..100 {
            assert_eq!(cache.key(&format!("forged-{i}")).await, Err(KeyError::UnknownKid(format!("forged-{i}"))));
        }
        // One fetch to load k1, one refetch for the first forged kid, then the window.
        assert_eq!(cache.fetcher().fetches.load(Ordering::SeqCst), 2);
        assert_eq!(cache.key("k1").await.unwrap().kid, "k1", "known keys still work");
    }

    #[tokio::test]
    async fn the_first_unknown_kid_after_a_cold_start_still_gets_its_refetch() {
        let (k1, k2) = (TestPool::new("k1"), TestPool::new("k2"));
        let cache = JwksCache::new(Counting::serving(&[&k1]), Duration::from_secs(60));
        cache.key("k1").await.unwrap();
        cache.fetcher().serve(&[&k1, &k2]);
        assert_eq!(cache.key("k2").await.unwrap().kid, "k2");
    }

    /// Serves the keys, or fails like an unreachable endpoint while `down`.
    struct Flaky {
        keys: Counting,
        down: std::sync::atomic::AtomicBool,
    }

    impl FetchJwks for Flaky {
        async fn fetch(&self) -> Result<Vec<u8>, KeyError> {
            if self.down.load(Ordering::SeqCst) {
                self.keys.fetches.fetch_add(1, Ordering::SeqCst);
                return Err(KeyError::Fetch("GET https://cognito-idp/jwks: connection refused".into()));
            }
            self.keys.fetch().await
        }
    }

    #[tokio::test]
    async fn after_a_failed_fetch_an_unknown_kid_is_the_outage_not_a_bad_token() {
        let (k1, k2) = (TestPool::new("k1"), TestPool::new("k2"));
        let flaky = Flaky { keys: Counting::serving(&[&k1]), down: true.into() };
        let cache = JwksCache::new(flaky, Duration::from_secs(60));
        // Cold start during an outage: the first kid, and every one within the window.
        for kid in ["k1", "k2", "forged"] {
            assert!(matches!(cache.key(kid).await, Err(KeyError::Fetch(_))), "{kid}");
        }
        assert_eq!(cache.fetcher().keys.fetches.load(Ordering::SeqCst), 1, "one fetch per window, even failing");

        // Keys known, then a rotation while the endpoint is down.
        let flaky = Flaky { keys: Counting::serving(&[&k1]), down: false.into() };
        let cache = JwksCache::new(flaky, Duration::from_secs(60));
        cache.key("k1").await.unwrap();
        cache.fetcher().keys.serve(&[&k1, &k2]);
        cache.fetcher().down.store(true, Ordering::SeqCst);
        assert!(matches!(cache.key("k2").await, Err(KeyError::Fetch(_))));
        assert!(matches!(cache.key("k2").await, Err(KeyError::Fetch(_))), "within the window, still the outage");
        assert_eq!(cache.key("k1").await.unwrap().kid, "k1", "known keys keep working");
    }

    #[tokio::test]
    async fn once_a_fetch_works_again_unknown_kids_are_bad_tokens() {
        let k1 = TestPool::new("k1");
        let flaky = Flaky { keys: Counting::serving(&[&k1]), down: true.into() };
        let cache = JwksCache::new(flaky, Duration::ZERO);
        assert!(matches!(cache.key("k1").await, Err(KeyError::Fetch(_))));
        cache.fetcher().down.store(false, Ordering::SeqCst);
        assert_eq!(cache.key("k1").await.unwrap().kid, "k1");
        assert_eq!(cache.key("forged").await, Err(KeyError::UnknownKid("forged".into())));
    }

    #[test]
    fn a_broken_key_set_is_a_fetch_error() {
        assert!(matches!(parse_key_set(b"{\"nokeys\":1}"), Err(KeyError::Fetch(_))));
        assert_eq!(parse_key_set(br#"{"keys":[{"kid":"a","kty":"RSA","n":"x","e":"AQAB"}]}"#).unwrap().len(), 1);
    }
}
