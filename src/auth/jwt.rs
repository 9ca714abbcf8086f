//! Supabase-shaped tokens: verifying them on requests (HS256 with the project's secret,
//! ES256/RS256 with its published keys, see `jwks.rs`), recognising the relay's shared secret,
//! and issuing HS256 tokens for the demo people (`ward token`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use uuid::Uuid;

use super::jwks::Jwks;
use super::{AuthError, Caller, SharedSecret, UserClaims};
use crate::config::Secret;

/// The longest `Authorization` header or token ward reads (16 KiB).
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// Verifies the credentials of requests.
pub struct Authenticator {
    hs256: DecodingKey,
    /// The project's published keys, when asymmetric tokens are accepted.
    jwks: Option<Jwks>,
    /// The relay's bearer secret, when one is configured.
    relay: Option<SharedSecret>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

impl Authenticator {
    /// Verifies HS256 tokens with the project's JWT secret (and nothing else until
    /// [`Authenticator::with_jwks`] and [`Authenticator::with_relay_secret`]).
    pub fn new(jwt_secret: &Secret) -> Self {
        Authenticator { hs256: DecodingKey::from_secret(jwt_secret.expose().as_bytes()), jwks: None, relay: None }
    }

    /// Also accepts ES256 and RS256 tokens signed with a key of the JWKS at `url`.
    pub fn with_jwks(mut self, url: Option<&str>) -> Self {
        self.jwks = url.map(Jwks::new);
        self
    }

    /// Also accepts `Bearer <secret>` from the relay, as the service role.
    pub fn with_relay_secret(mut self, secret: Option<&Secret>) -> Self {
        self.relay = secret.and_then(SharedSecret::new);
        self
    }

    /// Turns an `Authorization` header value (or its absence) into a caller.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let Some(header) = authorization else { return Ok(Caller::Anonymous) };
        if header.len() > MAX_CREDENTIAL_BYTES {
            return Err(AuthError::TooLong);
        }
        let token = bearer_token(header)?;
        if self.relay.as_ref().is_some_and(|relay| relay.matches(token)) {
            return Ok(Caller::Service);
        }
        self.verify(token).await
    }

    /// Verifies one token.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        // Supabase's access tokens are about 1 KB; nothing honest comes near this, and a huge
        // one costs base64 and JSON work before its signature can fail.
        if token.len() > MAX_CREDENTIAL_BYTES {
            return Err(AuthError::TooLong);
        }
        // Read the header ourselves first: jsonwebtoken cannot even parse `none`, and a token
        // naming an algorithm ward does not take must say so rather than look malformed.
        let Some((alg, kid)) = header_alg_kid(token) else {
            return Err(AuthError::Malformed("not a JSON Web Token".into()));
        };
        // The algorithm picks the key family, and each family has its own source of keys:
        // HS256 only ever verifies with the shared secret, ES256/RS256 only with a published
        // key of that type. A public key can never be used as an HMAC secret.
        let (algorithm, key) = match alg.as_str() {
            "HS256" => (Algorithm::HS256, self.hs256.clone()),
            "ES256" | "RS256" => {
                let jwks = self.jwks.as_ref().ok_or(AuthError::BadAlgorithm)?;
                let kid = kid.ok_or(AuthError::MissingKeyId)?;
                let (key, key_algorithm) = jwks.key(&kid).await?;
                let wanted = if alg == "ES256" { Algorithm::ES256 } else { Algorithm::RS256 };
                if key_algorithm != wanted {
                    return Err(AuthError::KeyAlgorithmMismatch);
                }
                (key_algorithm, key)
            }
            _ => return Err(AuthError::BadAlgorithm),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        // The audience depends on the role (service and anon keys carry none), so it is
        // checked below, after the signature.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(map_jwt_error)?;
        caller_from_claims(data.claims)
    }
}

/// The `alg` and `kid` of a compact JWS's header, if it has a readable `alg`.
fn header_alg_kid(token: &str) -> Option<(String, Option<String>)> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let alg = value.get("alg")?.as_str()?.to_string();
    let kid = value.get("kid").and_then(Value::as_str).map(String::from);
    Some((alg, kid))
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::MalformedHeader)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MalformedHeader);
    }
    Ok(token)
}

fn caller_from_claims(claims: Value) -> Result<Caller, AuthError> {
    let role = claims.get("role").and_then(Value::as_str).unwrap_or("");
    match role {
        "anon" => Ok(Caller::Anonymous),
        "service_role" => Ok(Caller::Service),
        "authenticated" => {
            let aud_ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == "authenticated",
                Some(Value::Array(auds)) => auds.iter().any(|a| a == "authenticated"),
                _ => false,
            };
            if !aud_ok {
                return Err(AuthError::BadAudience);
            }
            let sub = claims
                .get("sub")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or(AuthError::BadSubject)?;
            Ok(Caller::User(UserClaims {
                sub,
                email: verified_contact(&claims, "email").map(|e| e.to_lowercase()),
                phone: verified_contact(&claims, "phone").map(|p| if p.starts_with('+') { p } else { format!("+{p}") }),
                exp: claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
                raw: claims,
            }))
        }
        other => Err(AuthError::BadRole(other.chars().take(40).collect())),
    }
}

/// A contact claim (`email` or `phone`) if the token vouches for it: the same rules as the
/// database's `app.verified_contact` (docs/POLICY.md, P-PROFILE-CONTACT), which decides in the
/// end. Unverified when `{kind}_verified` is false (top level or `user_metadata`), when
/// `{kind}_confirmed_at` is present and null, or for an anonymous sign-in.
fn verified_contact(claims: &Value, kind: &str) -> Option<String> {
    let is_false =
        |v: Option<&Value>| matches!(v, Some(Value::Bool(false))) || v.and_then(Value::as_str) == Some("false");
    let verified = format!("{kind}_verified");
    let flag = claims.get(&verified).or_else(|| claims.get("user_metadata").and_then(|m| m.get(&verified)));
    let anonymous = matches!(claims.get("is_anonymous"), Some(Value::Bool(true)));
    let unconfirmed = matches!(claims.get(format!("{kind}_confirmed_at")), Some(Value::Null));
    if anonymous || unconfirmed || is_false(flag) {
        return None;
    }
    claims.get(kind).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(String::from)
}

fn map_jwt_error(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::BadAlgorithm,
        ErrorKind::InvalidAudience => AuthError::BadAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::Malformed(format!("the `{claim}` claim is missing")),
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
            AuthError::Malformed("not a JSON Web Token".into())
        }
        _ => AuthError::Malformed("the token could not be read".into()),
    }
}

/// Issues Supabase-shaped access tokens signed with the local secret.
pub struct TokenIssuer {
    key: EncodingKey,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenIssuer")
    }
}

impl TokenIssuer {
    pub fn new(jwt_secret: &Secret) -> Self {
        TokenIssuer { key: EncodingKey::from_secret(jwt_secret.expose().as_bytes()) }
    }

    /// A token for a signed-in person, valid for `ttl_seconds`.
    pub fn user_token(
        &self,
        sub: Uuid,
        email: Option<&str>,
        phone: Option<&str>,
        ttl_seconds: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": "ward-local",
            "sub": sub.to_string(),
            "aud": "authenticated",
            "role": "authenticated",
            "iat": now,
            "exp": now + ttl_seconds,
            "email": email.unwrap_or(""),
            "phone": phone.unwrap_or(""),
            "app_metadata": { "provider": "email", "providers": ["email"] },
            "user_metadata": {},
            "aal": "aal1",
            "is_anonymous": false,
        });
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use this for odd tokens).
    pub fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_header_is_read_or_refused_without_panicking(header in "\\PC{0,200}|(Bearer|bearer) [A-Za-z0-9_.=-]{0,200}") {
            if let Ok(token) = bearer_token(&header) {
                proptest::prop_assert!(!token.is_empty() && !token.contains(' '));
                let _ = header_alg_kid(token);
            }
        }

        #[test]
        fn any_token_header_is_read_or_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let token = format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(&bytes));
            let _ = header_alg_kid(&token);
        }
    }

    #[test]
    fn bearer_scheme_is_required() {
        assert_eq!(bearer_token("Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("bearer  abc "), Ok("abc"));
        assert_eq!(bearer_token("Basic abc"), Err(AuthError::MalformedHeader));
        assert_eq!(bearer_token("Bearer "), Err(AuthError::MalformedHeader));
        assert_eq!(bearer_token("abc"), Err(AuthError::MalformedHeader));
    }
}
