//! The Supabase Storage backend: its REST API (`{SUPABASE_URL}/storage/v1`) with the
//! service-role key. Calls that change nothing (signing, info, download) and delete are retried
//! a couple of times with backoff on transport errors, 429 and 5xx; an upload is never retried
//! (and never upserts). Supabase's answers are mapped to [`StorageError`]; its error messages go
//! to the log, not to clients. The request shapes are those of `@supabase/storage-js`, which
//! ward's local backend also serves (`tests/it/storage.rs` runs this client against it).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use super::local::encode_path;
use super::{
    ObjectInfo, ObjectPath, ObjectStore, SignedUpload, StorageError, Transform, UploadRules, validate_bucket,
    validate_ttl,
};
use crate::config::Secret;

/// Time to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a call without a body to move (sign, info, delete).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Time for an upload or download of a whole object.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// Retries of idempotent calls, after the first attempt.
const RETRIES: u32 = 2;
/// The first retry's delay; doubled for each next one.
const BACKOFF: Duration = Duration::from_millis(200);
/// How long Supabase's signed upload URLs live (fixed by Supabase), when the token does not say.
const SUPABASE_UPLOAD_URL_TTL: Duration = Duration::from_secs(2 * 3600);

/// Supabase Storage over REST.
pub struct SupabaseStore {
    /// `{SUPABASE_URL}/storage/v1`
    base: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for SupabaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseStore").field("base", &self.base).finish()
    }
}

/// An answer and how many attempts it took.
struct Answer {
    response: Response,
    retried: bool,
}

impl SupabaseStore {
    /// A client of the project at `supabase_url` (e.g. `https://xyz.supabase.co`).
    pub fn new(supabase_url: &str, service_key: Secret) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", service_key.expose()))
            .map_err(|_| anyhow::anyhow!("SUPABASE_SERVICE_ROLE_KEY is not a valid header value"))?;
        bearer.set_sensitive(true);
        let mut apikey = HeaderValue::from_str(service_key.expose())
            .map_err(|_| anyhow::anyhow!("SUPABASE_SERVICE_ROLE_KEY is not a valid header value"))?;
        apikey.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        headers.insert("apikey", apikey);
        let http = reqwest::Client::builder().default_headers(headers).connect_timeout(CONNECT_TIMEOUT).build()?;
        Ok(SupabaseStore { base: format!("{}/storage/v1", supabase_url.trim_end_matches('/')), http })
    }

    fn url(&self, kind: &str, bucket: &str, path: &ObjectPath) -> String {
        let kind = if kind.is_empty() { String::new() } else { format!("{kind}/") };
        format!("{}/object/{kind}{bucket}/{}", self.base, encode_path(path.as_str()))
    }

    /// Sends an idempotent call, retrying transport failures, 429 and 5xx with backoff.
    async fn send_idempotent(
        &self,
        what: &'static str,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Answer, StorageError> {
        let mut attempt = 0;
        loop {
            let retryable = match make().timeout(CALL_TIMEOUT).send().await {
                Ok(response)
                    if !(response.status().is_server_error() || response.status() == StatusCode::TOO_MANY_REQUESTS) =>
                {
                    return Ok(Answer { response, retried: attempt > 0 });
                }
                Ok(response) if attempt == RETRIES => return Err(error_from(what, response).await),
                Ok(response) => format!("HTTP {}", response.status().as_u16()),
                Err(e) if attempt == RETRIES => return Err(transport_error(what, e)),
                Err(e) => e.to_string(),
            };
            let delay = BACKOFF * 2u32.pow(attempt);
            tracing::warn!(call = what, attempt, error = %retryable, delay_ms = delay.as_millis() as u64, "storage call failed; retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn json(what: &'static str, response: Response) -> Result<Value, StorageError> {
        if !response.status().is_success() {
            return Err(error_from(what, response).await);
        }
        response.json::<Value>().await.map_err(|e| StorageError::other(what, e))
    }

    /// Makes one of Supabase's relative URLs (`/object/...?token=`) absolute.
    fn absolute(&self, relative: &str) -> String {
        let relative = if relative.starts_with('/') { relative.to_string() } else { format!("/{relative}") };
        format!("{}{}", self.base, encode_path(&relative))
    }
}

fn transport_error(what: &'static str, e: reqwest::Error) -> StorageError {
    tracing::warn!(call = what, error = %e, "storage service unreachable");
    if e.is_timeout() {
        StorageError::Unavailable(format!("{what}: timed out"))
    } else {
        StorageError::Unavailable(format!("{what}: the storage service cannot be reached"))
    }
}

/// Supabase's error answers: `{ "statusCode": "404", "error": "not_found", "message": "…" }`,
/// sometimes with HTTP 400 whatever the `statusCode`, so the body's code comes first.
async fn error_from(what: &'static str, response: Response) -> StorageError {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = match &body["statusCode"] {
        Value::String(s) => s.parse::<u16>().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
    .unwrap_or(status.as_u16());
    let error = body["error"].as_str().unwrap_or_default();
    tracing::warn!(
        call = what,
        status = status.as_u16(),
        code,
        error,
        message = body["message"].as_str().unwrap_or_default(),
        "storage service refused a call"
    );
    match code {
        404 => StorageError::NotFound,
        409 => StorageError::AlreadyExists,
        413 => StorageError::TooLarge { limit: None },
        400 if error == "InvalidKey" => StorageError::InvalidPath("the storage service refused the path".into()),
        400 | 415 | 422 => StorageError::InvalidInput("the storage service refused the request".into()),
        429 | 500..=599 => StorageError::Unavailable(format!("{what}: HTTP {}", status.as_u16())),
        _ => StorageError::other(what, format!("unexpected answer HTTP {} ({code} {error})", status.as_u16())),
    }
}

/// The `exp` of a JWT, read without verifying (only to report when a URL expires).
fn token_expiry(token: &str) -> Option<DateTime<Utc>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    DateTime::from_timestamp(claims["exp"].as_i64()?, 0)
}

#[async_trait]
impl ObjectStore for SupabaseStore {
    async fn create_signed_upload(
        &self,
        bucket: &str,
        path: &ObjectPath,
        _expires_in: Duration,
        _rules: &UploadRules,
    ) -> Result<SignedUpload, StorageError> {
        // Supabase's signed upload URLs bind a bucket and a path only: the bucket's own limits
        // apply to the upload, and ward's confirmation checks the intent's size and type.
        // Supabase fixes the lifetime of signed upload URLs (two hours); the request body is
        // `{}` as @supabase/storage-js sends it, and the expiry is read back from the token.
        validate_bucket(bucket)?;
        let what = "signing an upload";
        let url = self.url("upload/sign", bucket, path);
        let answer = self.send_idempotent(what, || self.http.post(&url).json(&json!({}))).await?;
        let body = Self::json(what, answer.response).await?;
        let relative = body["url"].as_str().ok_or_else(|| StorageError::other(what, "no `url` in the answer"))?;
        let absolute = self.absolute(relative);
        let token = match body["token"].as_str() {
            Some(token) => token.to_string(),
            None => reqwest::Url::parse(&absolute)
                .ok()
                .and_then(|u| u.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()))
                .ok_or_else(|| StorageError::other(what, "no token in the answer"))?,
        };
        let expires_at = token_expiry(&token)
            .unwrap_or_else(|| Utc::now() + chrono::Duration::from_std(SUPABASE_UPLOAD_URL_TTL).unwrap_or_default());
        // Supabase's own TUS endpoint takes the same token as `x-signature`.
        Ok(SignedUpload {
            url: absolute,
            token,
            expires_at,
            resumable_url: Some(format!("{}/upload/resumable/sign", self.base)),
        })
    }

    async fn create_signed_download(
        &self,
        bucket: &str,
        path: &ObjectPath,
        expires_in: Duration,
        transform: Option<&Transform>,
    ) -> Result<String, StorageError> {
        validate_bucket(bucket)?;
        validate_ttl(expires_in)?;
        let what = "signing a download";
        let url = self.url("sign", bucket, path);
        // With a transformation Supabase answers with its own `/render/image/sign/...` URL.
        let body = match transform {
            Some(t) => json!({ "expiresIn": expires_in.as_secs(), "transform": t.validate()? }),
            None => json!({ "expiresIn": expires_in.as_secs() }),
        };
        let answer = self.send_idempotent(what, || self.http.post(&url).json(&body)).await?;
        let body = Self::json(what, answer.response).await?;
        let relative =
            body["signedURL"].as_str().ok_or_else(|| StorageError::other(what, "no `signedURL` in the answer"))?;
        Ok(self.absolute(relative))
    }

    async fn info(&self, bucket: &str, path: &ObjectPath) -> Result<Option<ObjectInfo>, StorageError> {
        validate_bucket(bucket)?;
        let what = "reading object info";
        let url = self.url("info", bucket, path);
        let answer = self.send_idempotent(what, || self.http.get(&url)).await?;
        let body = match Self::json(what, answer.response).await {
            Ok(body) => body,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Current Supabase answers with top-level `size`/`content_type`; older ones only
        // with Supabase's `metadata` (`size`, `mimetype`).
        let size = body["size"].as_u64().or_else(|| body["metadata"]["size"].as_u64()).unwrap_or(0);
        let content_type = body["content_type"]
            .as_str()
            .or_else(|| body["contentType"].as_str())
            .or_else(|| body["metadata"]["mimetype"].as_str())
            .unwrap_or("application/octet-stream")
            .to_string();
        let created_at = body["created_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        Ok(Some(ObjectInfo { size, content_type, created_at }))
    }

    async fn upload(
        &self,
        bucket: &str,
        path: &ObjectPath,
        content_type: &str,
        body: Bytes,
    ) -> Result<(), StorageError> {
        validate_bucket(bucket)?;
        let what = "uploading an object";
        // Never retried: a lost answer after a stored object would come back as a conflict.
        let response = self
            .http
            .post(self.url("", bucket, path))
            .timeout(TRANSFER_TIMEOUT)
            .header("x-upsert", "false")
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CACHE_CONTROL, "max-age=3600")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(what, e))?;
        Self::json(what, response).await.map(|_| ())
    }

    async fn download(&self, bucket: &str, path: &ObjectPath, max_bytes: u64) -> Result<Bytes, StorageError> {
        validate_bucket(bucket)?;
        let what = "downloading an object";
        let url = self.url("", bucket, path);
        let answer = self.send_idempotent(what, || self.http.get(&url).timeout(TRANSFER_TIMEOUT)).await?;
        let response = answer.response;
        if !response.status().is_success() {
            return Err(error_from(what, response).await);
        }
        if response.content_length().is_some_and(|len| len > max_bytes) {
            return Err(StorageError::TooLarge { limit: Some(max_bytes) });
        }
        let mut buf = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transport_error(what, e))?;
            if (buf.len() + chunk.len()) as u64 > max_bytes {
                return Err(StorageError::TooLarge { limit: Some(max_bytes) });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    }

    async fn delete(&self, bucket: &str, path: &ObjectPath) -> Result<(), StorageError> {
        validate_bucket(bucket)?;
        let what = "deleting an object";
        let url = self.url("", bucket, path);
        let answer = self.send_idempotent(what, || self.http.delete(&url)).await?;
        let retried = answer.retried;
        match Self::json(what, answer.response).await {
            Ok(_) => Ok(()),
            // An earlier attempt may have deleted it before its answer was lost.
            Err(StorageError::NotFound) if retried => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn public_url(&self, bucket: &str, path: &ObjectPath) -> String {
        self.url("public", bucket, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_become_absolute_and_encoded() {
        let store = SupabaseStore::new("https://p.supabase.co/", Secret::new("k")).unwrap();
        assert_eq!(
            store.absolute("/object/sign/b/a b.txt?token=t"),
            "https://p.supabase.co/storage/v1/object/sign/b/a%20b.txt?token=t"
        );
        let path = ObjectPath::parse("x/y z.png").unwrap();
        assert_eq!(store.public_url("pub", &path), "https://p.supabase.co/storage/v1/object/public/pub/x/y%20z.png");
        assert_eq!(store.url("", "b", &path), "https://p.supabase.co/storage/v1/object/b/x/y%20z.png");
    }

    #[test]
    fn token_expiry_is_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000}"#);
        let token = format!("h.{payload}.s");
        assert_eq!(token_expiry(&token), DateTime::from_timestamp(1_700_000_000, 0));
        assert_eq!(token_expiry("garbage"), None);
    }
}
