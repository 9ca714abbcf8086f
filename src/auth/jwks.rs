//! The Supabase project's public signing keys (its JWKS), fetched over HTTP and cached, for
//! tokens signed with asymmetric keys (ES256, RS256).
//!
//! The set is fetched on first need and again when it is older than [`MAX_AGE`]. A token
//! naming a key (`kid`) the cache does not know triggers one early refresh (keys rotate), but
//! at most once per [`MIN_REFRESH_INTERVAL`]: a stream of tokens with made-up `kid`s cannot
//! turn ward into a load generator against the auth server. Refreshes are single-flight.
//!
//! Each key is bound to the one algorithm its type allows (P-256 → ES256, RSA → RS256), and
//! symmetric (`oct`) keys are ignored: a token can never choose how its key is used.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use super::AuthError;

/// How long a fetched key set is used before it is fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// The least time between two refreshes caused by unknown `kid`s (and between retries of a
/// failed fetch).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest key set accepted, in bytes.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// One usable key and the algorithm it verifies.
#[derive(Clone)]
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Key>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last attempted (success or not).
    attempted_at: Option<Instant>,
    /// When an unknown `kid` last caused a refresh.
    unknown_refresh_at: Option<Instant>,
}

/// A cached JWKS.
pub struct Jwks {
    url: String,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// Held while fetching, so concurrent misses wait for one fetch.
    refreshing: Mutex<()>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("url", &self.url).finish()
    }
}

impl Jwks {
    pub fn new(url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build().unwrap_or_else(|_| reqwest::Client::new());
        Jwks { url: url.into(), http, cache: RwLock::default(), refreshing: Mutex::new(()) }
    }

    /// The key named `kid`, with the one algorithm it verifies.
    pub async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), AuthError> {
        if let Some(key) = self.fresh(kid).await {
            return Ok(key);
        }
        let _guard = self.refreshing.lock().await;
        // Another request may have refreshed while this one waited.
        if let Some(key) = self.fresh(kid).await {
            return Ok(key);
        }
        let now = Instant::now();
        let (stale, known, may_retry, may_refresh_unknown) = {
            let cache = self.cache.read().await;
            let stale = cache.fetched_at.is_none_or(|t| now.duration_since(t) >= MAX_AGE);
            let may_retry = cache.attempted_at.is_none_or(|t| now.duration_since(t) >= MIN_REFRESH_INTERVAL);
            let may_refresh_unknown =
                cache.unknown_refresh_at.is_none_or(|t| now.duration_since(t) >= MIN_REFRESH_INTERVAL);
            (stale, cache.keys.get(kid).cloned(), may_retry, may_refresh_unknown)
        };
        let fetch = if stale { may_retry } else { may_refresh_unknown };
        if fetch {
            let result = self.fetch().await;
            let mut cache = self.cache.write().await;
            cache.attempted_at = Some(now);
            if !stale {
                cache.unknown_refresh_at = Some(now);
            }
            match result {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "signing keys fetched");
                    cache.keys = keys;
                    cache.fetched_at = Some(now);
                }
                Err(error) => {
                    tracing::warn!(error = %error, "fetching the signing keys failed");
                    // A key we already had still verifies while the auth server is away.
                    return known.map(|k| (k.key, k.algorithm)).ok_or(AuthError::KeysUnavailable);
                }
            }
        } else if let Some(key) = known {
            // Stale, but the last attempt failed moments ago: keep using what we have.
            return Ok((key.key, key.algorithm));
        } else if stale {
            return Err(AuthError::KeysUnavailable);
        }
        let cache = self.cache.read().await;
        cache.keys.get(kid).map(|k| (k.key.clone(), k.algorithm)).ok_or(AuthError::UnknownKey)
    }

    /// The key from a cache that is younger than [`MAX_AGE`].
    async fn fresh(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        let cache = self.cache.read().await;
        let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < MAX_AGE);
        if !fresh {
            return None;
        }
        cache.keys.get(kid).map(|k| (k.key.clone(), k.algorithm))
    }

    async fn fetch(&self) -> Result<HashMap<String, Key>, String> {
        let response = self.http.get(&self.url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("the key set is too large".into());
        }
        let set: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let keys = set.get("keys").and_then(Value::as_array).ok_or("no `keys` array")?;
        // One odd key (another type, another use) does not spoil the others.
        Ok(keys
            .iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value.clone()).ok())
            .filter_map(|jwk| usable(&jwk))
            .collect())
    }
}

/// A signing key of a type ward accepts, with its `kid` and its one algorithm.
fn usable(jwk: &Jwk) -> Option<(String, Key)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        // `oct` keys are shared secrets and never come from a public key set; others are not used.
        _ => return None,
    };
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(_) => false,
    };
    if !declared_ok {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, Key { algorithm, key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwk(value: Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn keys_are_bound_to_the_algorithm_of_their_type() {
        let ec = json!({ "kty": "EC", "crv": "P-256", "kid": "a", "use": "sig",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" });
        assert_eq!(usable(&jwk(ec.clone())).map(|(k, key)| (k, key.algorithm)), Some(("a".into(), Algorithm::ES256)));
        let mut mismatched = ec.clone();
        mismatched["alg"] = json!("RS256");
        assert!(usable(&jwk(mismatched)).is_none());
        let mut no_kid = ec.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        assert!(usable(&jwk(no_kid)).is_none());
        let mut encryption = ec;
        encryption["use"] = json!("enc");
        assert!(usable(&jwk(encryption)).is_none());
        let oct = json!({ "kty": "oct", "kid": "s", "k": "c2VjcmV0" });
        assert!(usable(&jwk(oct)).is_none());
    }
}
