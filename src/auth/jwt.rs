//! Supabase-shaped HS256 tokens: verifying them on requests and issuing them for the demo
//! people (`ward token`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AuthError, Caller, UserClaims};
use crate::config::Secret;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// Verifies the credentials of requests.
pub struct Authenticator {
    hs256: DecodingKey,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

impl Authenticator {
    pub fn new(jwt_secret: &Secret) -> Self {
        Authenticator { hs256: DecodingKey::from_secret(jwt_secret.expose().as_bytes()) }
    }

    /// Turns an `Authorization` header value (or its absence) into a caller.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let Some(header) = authorization else { return Ok(Caller::Anonymous) };
        let token = bearer_token(header)?;
        self.verify(token)
    }

    /// Verifies one token.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        // Read `alg` ourselves first: jsonwebtoken cannot even parse `none`, and a token
        // naming any algorithm but HS256 must say so rather than look malformed.
        match header_alg(token) {
            None => return Err(AuthError::Malformed("not a JSON Web Token".into())),
            Some(alg) if alg != "HS256" => return Err(AuthError::BadAlgorithm),
            Some(_) => {}
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        // The audience depends on the role (service and anon keys carry none), so it is
        // checked below, after the signature.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Value>(token, &self.hs256, &validation)
            .map_err(map_jwt_error)?;
        caller_from_claims(data.claims)
    }
}

/// The `alg` of a compact JWS's header, if it has a readable one.
fn header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(String::from)
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
            let text = |name: &str| {
                claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from)
            };
            Ok(Caller::User(UserClaims {
                sub,
                email: text("email").map(|e| e.to_lowercase()),
                phone: text("phone"),
                exp: claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
                raw: claims,
            }))
        }
        other => Err(AuthError::BadRole(other.chars().take(40).collect())),
    }
}

fn map_jwt_error(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::BadAlgorithm,
        ErrorKind::InvalidAudience => AuthError::BadAudience,
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::Malformed(format!("the `{claim}` claim is missing"))
        }
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

    #[test]
    fn bearer_scheme_is_required() {
        assert_eq!(bearer_token("Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("bearer  abc "), Ok("abc"));
        assert_eq!(bearer_token("Basic abc"), Err(AuthError::MalformedHeader));
        assert_eq!(bearer_token("Bearer "), Err(AuthError::MalformedHeader));
        assert_eq!(bearer_token("abc"), Err(AuthError::MalformedHeader));
    }
}
