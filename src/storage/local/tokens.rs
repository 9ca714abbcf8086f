//! The local backend's URL tokens: HS256 JWTs under a key derived from the JWT secret (see
//! the module docs of `local`), binding one bucket, one path and one scope, and what an
//! upload (content type, size) or a download (one rendering) may do.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use super::{LocalStore, TOKEN_ISSUER, hex};
use crate::config::Secret;
use crate::storage::{ObjectPath, StorageError, Transform, UploadRules, validate_bucket, validate_ttl};

/// Derives the local storage token key from the JWT secret (see the module docs).
pub fn derive_token_key(jwt_secret: &Secret) -> Secret {
    // new_from_slice accepts keys of any length for HMAC; the fallback is unreachable.
    let mut mac = match Hmac::<Sha256>::new_from_slice(jwt_secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return Secret::new(format!("{}:ward-storage", jwt_secret.expose())),
    };
    mac.update(b"ward local storage token key v1");
    let digest = mac.finalize().into_bytes();
    Secret::new(hex(&digest))
}

/// What a local storage token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Upload,
    Download,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TokenClaims {
    iss: String,
    scope: TokenScope,
    bucket: String,
    path: String,
    iat: i64,
    /// When it was signed, in milliseconds (`iat` has whole seconds only): signed links to a
    /// sensitive ticket's files count only when signed after the ticket's last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat_ms: Option<i64>,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    /// Upload tokens: the one content type accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ct: Option<String>,
    /// Upload tokens: the most bytes accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<u64>,
    /// Download tokens: the transformation this link renders (and nothing else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tr: Option<Transform>,
}

/// What a token grants beyond its scope, bucket and path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Upload tokens: the intent's content type and size.
    pub rules: UploadRules,
    /// Download tokens: the one rendering the link serves.
    pub transform: Option<Transform>,
}

/// A token that verified: when it was signed, and what it grants.
#[derive(Debug, Clone)]
pub struct Verified {
    pub signed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub grant: Grant,
}

impl LocalStore {
    /// Signs a token for `scope` on one object, granting `grant` besides.
    pub fn sign_token(
        &self,
        scope: TokenScope,
        bucket: &str,
        path: &ObjectPath,
        expires_in: Duration,
        grant: &Grant,
    ) -> Result<(String, DateTime<Utc>), StorageError> {
        validate_bucket(bucket)?;
        validate_ttl(expires_in)?;
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(expires_in)
            .map_err(|_| StorageError::InvalidInput("the expiry is too far away".into()))?;
        let expires_at = now + ttl;
        let claims = TokenClaims {
            iss: TOKEN_ISSUER.into(),
            scope,
            bucket: bucket.into(),
            path: path.as_str().into(),
            iat: now.timestamp(),
            iat_ms: Some(now.timestamp_millis()),
            exp: expires_at.timestamp(),
            nonce: (scope == TokenScope::Upload).then(|| Uuid::new_v4().simple().to_string()),
            ct: grant.rules.content_type.clone(),
            max: grant.rules.max_bytes,
            tr: grant.transform,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| StorageError::other("signing a storage token", e))?;
        Ok((token, expires_at))
    }

    /// Checks that `token` allows `scope` on exactly this bucket and path, now.
    pub fn verify_token(
        &self,
        token: &str,
        scope: TokenScope,
        bucket: &str,
        path: &ObjectPath,
    ) -> Result<Verified, StorageError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[TOKEN_ISSUER]);
        let claims = jsonwebtoken::decode::<TokenClaims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => StorageError::Expired,
                _ => StorageError::InvalidToken("the token does not verify".into()),
            })?
            .claims;
        if claims.scope != scope {
            return Err(StorageError::InvalidToken(match scope {
                TokenScope::Upload => "the token does not allow uploads".into(),
                TokenScope::Download => "the token does not allow downloads".into(),
            }));
        }
        if claims.bucket != bucket || claims.path != path.as_str() {
            return Err(StorageError::InvalidToken("the token is for another object".into()));
        }
        if scope == TokenScope::Upload && claims.nonce.is_none() {
            return Err(StorageError::InvalidToken("the token does not verify".into()));
        }
        Ok(Verified {
            // When it was signed (a token without milliseconds counts as signed long ago).
            signed_at: claims.iat_ms.and_then(DateTime::from_timestamp_millis).unwrap_or(DateTime::<Utc>::MIN_UTC),
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(DateTime::<Utc>::MIN_UTC),
            grant: Grant {
                rules: UploadRules { content_type: claims.ct, max_bytes: claims.max },
                transform: claims.tr,
            },
        })
    }

    /// A signed download URL, of the object or (with `transform`) of one rendering of it:
    /// absolute, or (`relative`) after `/storage/v1` and not percent-encoded, as Supabase's
    /// REST answers (`@supabase/storage-js` encodes it).
    pub fn sign_download_url(
        &self,
        bucket: &str,
        path: &ObjectPath,
        expires_in: Duration,
        transform: Option<Transform>,
        relative: bool,
    ) -> Result<String, StorageError> {
        let transform = transform.map(Transform::validate).transpose()?;
        let grant = Grant { transform, ..Grant::default() };
        let (token, _) = self.sign_token(TokenScope::Download, bucket, path, expires_in, &grant)?;
        let kind = if transform.is_some() { "render/image/sign" } else { "object/sign" };
        Ok(if relative {
            format!("/{kind}/{bucket}/{path}?token={token}")
        } else {
            format!("{}?token={token}", self.url(kind, bucket, path))
        })
    }
}
