//! The local storage backend of the embedded default: objects as files under
//! `WARD_DATA_DIR/storage/{bucket}/{path}`, one `storage.objects` row each (with Supabase's
//! `metadata` shape: `mimetype`, `size`, `cacheControl`), and signed URLs whose tokens ward
//! verifies itself when it serves them (`src/http/storage.rs`).
//!
//! Tokens are HS256 JWTs signed with a key derived from the JWT secret
//! (HMAC-SHA256(jwt_secret, "ward local storage token key v1")): a storage token is never a
//! bearer token nor the other way round, rotating the JWT secret invalidates outstanding
//! URLs, and no extra secret has to be kept. A token binds one bucket, one path and one scope
//! (`upload` or `download`) until its expiry; upload tokens carry a nonce, and since an upload
//! never replaces an object, the first use of an upload token is also its last.
//!
//! An upload token may also bind an intent's content type and size ([`UploadRules`]), checked
//! while the bytes arrive; a download token may bind an image transformation, and then serves
//! only that rendering (`/render/image/sign/...`), never the original. Rendered variants are
//! kept under `.render/{object id}/` and removed with their object. Resumable (TUS) uploads
//! live in [`resumable`].
//!
//! Writes stream to a temporary file (size-capped by the bucket's `file_size_limit`), are
//! synced, and then published with `link(2)`, which fails rather than replace an existing
//! file; the row is inserted in the same transaction, so a unique violation or an existing
//! file both end as [`StorageError::AlreadyExists`] with nothing changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::{
    ObjectInfo, ObjectPath, ObjectStore, SignedUpload, StorageError, Transform, UploadRules, validate_bucket,
    validate_ttl,
};
use crate::auth::Caller;
use crate::config::Secret;
use crate::db::{DbFailure, classify};

/// The size limit of a bucket without `file_size_limit`.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 50 * 1024 * 1024;
/// The ceiling of every bucket's limit (evidence video takes 500 MiB).
pub const MAX_OBJECT_BYTES: u64 = 1024 * 1024 * 1024;
/// Issuer of local storage tokens (they are checked for it).
const TOKEN_ISSUER: &str = "ward-storage";
/// Folder (inside the storage root) for uploads in progress. Bucket names cannot start with a dot.
const TMP_DIR: &str = ".tmp";
/// Buffer between a request body and the temporary file.
const WRITE_BUFFER: usize = 64 * 1024;
/// Folder (inside the storage root) of rendered image variants, one folder per object id.
const RENDER_DIR: &str = ".render";
/// Renders running at once (each takes a core for a moment); more wait their turn.
const RENDER_PERMITS: usize = 2;
/// Rendered variants kept per object: anyone may ask a public image for any size, and the
/// cache must not grow with what they ask. Past this, the oldest variant makes room.
const MAX_CACHED_VARIANTS: usize = 32;
/// The largest source image the local backend renders.
const MAX_RENDER_SOURCE_BYTES: u64 = 50 * 1024 * 1024;

pub mod resumable;
pub mod s3;

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
struct TokenClaims {
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

/// A bucket's settings from `storage.buckets`.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub public: bool,
    /// The largest object, in bytes (the bucket's limit, capped by [`MAX_OBJECT_BYTES`]).
    pub max_bytes: u64,
    /// The content types allowed (`image/*` wildcards included); `None` allows any.
    pub allowed_mime_types: Option<Vec<String>>,
}

/// A stored object's row.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub id: Uuid,
    pub bucket: String,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    pub cache_control: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Connections in the local backend's own pool. A GraphQL request holds its request
/// connection while it calls the store, so the store must never wait on that same pool (a
/// full pool would wait on itself until the acquire timeout); its statements are short (a
/// bucket's settings, an object's row), so a few connections serve many requests.
pub const POOL_SIZE: u32 = 8;

/// The local backend.
pub struct LocalStore {
    root: PathBuf,
    db: DatabaseConnection,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_url: String,
    renders: std::sync::Arc<tokio::sync::Semaphore>,
    /// Resumable uploads a PATCH is writing to now (one writer each).
    writing: resumable::Writers,
    /// Where the bytes are when not in `root` (`WARD_STORAGE=s3`); `root` then keeps only
    /// uploads in progress and rendered variants.
    s3: Option<s3::S3Blobs>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore").field("public_url", &self.public_url).finish()
    }
}

/// Removes a temporary file when dropped, also when the request carrying the upload is
/// cancelled mid-stream.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl LocalStore {
    /// A store under `root`, using `db` (a pool of its own, connected like the request pool, of
    /// [`POOL_SIZE`]; rows are written as `service_role`),
    /// signing tokens with `token_key`, handing out URLs under `public_url`.
    pub fn new(root: PathBuf, db: DatabaseConnection, token_key: Secret, public_url: &str) -> anyhow::Result<Self> {
        let tmp = root.join(TMP_DIR);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| anyhow::anyhow!("creating the storage folder {}: {e}", root.display()))?;
        // Uploads cut short by a crash leave temporary files; a day is longer than any upload.
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(86_400));
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(LocalStore {
            root,
            db,
            encoding: EncodingKey::from_secret(token_key.expose().as_bytes()),
            decoding: DecodingKey::from_secret(token_key.expose().as_bytes()),
            public_url: public_url.trim_end_matches('/').to_string(),
            renders: std::sync::Arc::new(tokio::sync::Semaphore::new(RENDER_PERMITS)),
            writing: resumable::Writers::default(),
            s3: None,
        })
    }

    /// Whether the objects' bytes are in S3.
    pub fn s3_backed(&self) -> bool {
        self.s3.is_some()
    }

    /// The same store with the objects' bytes in an S3 bucket.
    pub fn with_s3(self, blobs: s3::S3Blobs) -> Self {
        LocalStore { s3: Some(blobs), ..self }
    }

    /// Where a checked download of the object goes when its bytes are in S3: a presigned GET
    /// that lives briefly (`None` when ward serves the bytes itself).
    pub async fn redirect(
        &self,
        object: &StoredObject,
        path: &ObjectPath,
        download: Option<&str>,
    ) -> Result<Option<String>, StorageError> {
        match &self.s3 {
            Some(s3) => {
                Ok(Some(s3.presigned_get(&object.bucket, path, object.id, &object.content_type, download).await?))
            }
            None => Ok(None),
        }
    }

    /// The base URL signed URLs start with.
    pub fn public_base(&self) -> &str {
        &self.public_url
    }

    fn file_path(&self, bucket: &str, path: &ObjectPath) -> PathBuf {
        let mut file = self.root.join(bucket);
        for segment in path.segments() {
            file.push(segment);
        }
        file
    }

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

    /// The absolute URL of a local REST path (`kind` is e.g. `object/upload/sign`,
    /// `object/sign`, `object/public`, `render/image/sign`).
    fn url(&self, kind: &str, bucket: &str, path: &ObjectPath) -> String {
        format!("{}/storage/v1/{kind}/{bucket}/{}", self.public_url, encode_path(path.as_str()))
    }

    /// Where TUS clients create resumable uploads with a signed upload token.
    pub fn resumable_endpoint(&self) -> String {
        format!("{}/storage/v1/upload/resumable/sign", self.public_url)
    }

    async fn service_tx(&self, read_only: bool) -> Result<crate::db::Tx, StorageError> {
        crate::db::begin(&self.db, &Caller::Service, read_only)
            .await
            .map_err(|e| StorageError::db("opening a storage transaction", e))
    }

    /// A bucket's settings ([`StorageError::NotFound`] when there is no such bucket).
    pub async fn bucket(&self, bucket: &str) -> Result<Bucket, StorageError> {
        Ok(self.bucket_and_object(bucket, None).await?.0)
    }

    /// A bucket's settings and, with a `path`, whether an object is already there: one
    /// statement (uploads ask both; the store's own pool is small and busy under load).
    async fn bucket_and_object(&self, bucket: &str, path: Option<&ObjectPath>) -> Result<(Bucket, bool), StorageError> {
        validate_bucket(bucket)?;
        let tx = self.service_tx(true).await?;
        let row = tx
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select b.public, b.file_size_limit, to_jsonb(b.allowed_mime_types) as mimes, \
                 exists (select 1 from storage.objects o where o.bucket_id = b.id and o.name = $2) as taken \
                 from storage.buckets b where b.id = $1",
                [bucket.into(), path.map(|p| p.as_str().to_string()).into()],
            ))
            .await
            .map_err(|e| StorageError::db("reading a bucket", e))?;
        let _ = crate::db::end(tx, true).await;
        let row = row.ok_or(StorageError::NotFound)?;
        let read = |e: DbErr| StorageError::db("reading a bucket", e);
        let taken: bool = row.try_get("", "taken").map_err(read)?;
        let public: bool = row.try_get("", "public").map_err(read)?;
        let limit: Option<i64> = row.try_get("", "file_size_limit").map_err(read)?;
        let mimes: Option<Value> = row.try_get("", "mimes").map_err(read)?;
        let allowed_mime_types = mimes.and_then(|v| serde_json::from_value::<Vec<String>>(v).ok());
        let max_bytes = limit
            .and_then(|l| u64::try_from(l).ok())
            .filter(|l| *l > 0)
            .map_or(DEFAULT_MAX_OBJECT_BYTES, |l| l.min(MAX_OBJECT_BYTES));
        Ok((Bucket { public, max_bytes, allowed_mime_types }, taken))
    }

    /// Whether a link signed at `signed_at` to this object is void: it is a file of a
    /// sensitive ticket kept outside `gbv-evidence`, and the link was signed before the
    /// ticket's last change (its flagging among them); after it, ward signs such links only
    /// for SAPS liaisons and admins (`app.object_withheld`, docs/POLICY.md P-GBV-READ).
    pub async fn withheld(
        &self,
        bucket: &str,
        path: &ObjectPath,
        signed_at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let tx = self.service_tx(true).await?;
        let row = tx
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select app.object_withheld($1, $2, $3) as withheld",
                [bucket.into(), path.as_str().into(), signed_at.into()],
            ))
            .await;
        let _ = crate::db::end(tx, true).await;
        let read = |e: DbErr| StorageError::db("checking an object's ticket", e);
        match row.map_err(read)? {
            Some(row) => row.try_get("", "withheld").map_err(read),
            None => Ok(false),
        }
    }

    /// An object's row, if it exists.
    pub async fn object(&self, bucket: &str, path: &ObjectPath) -> Result<Option<StoredObject>, StorageError> {
        validate_bucket(bucket)?;
        let tx = self.service_tx(true).await?;
        let row = find_object(&tx, bucket, path).await;
        let _ = crate::db::end(tx, true).await;
        row
    }

    /// Opens an object's file for reading, with its row.
    pub async fn open(
        &self,
        bucket: &str,
        path: &ObjectPath,
    ) -> Result<(StoredObject, tokio::fs::File, u64), StorageError> {
        let object = self.object(bucket, path).await?.ok_or(StorageError::NotFound)?;
        let file = match tokio::fs::File::open(self.file_path(bucket, path)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(bucket, object_id = %object.id, "storage row without its file");
                return Err(StorageError::NotFound);
            }
            Err(e) => return Err(StorageError::other("opening an object", e)),
        };
        let len = file.metadata().await.map_err(|e| StorageError::other("reading an object's size", e))?.len();
        Ok((object, file, len))
    }

    /// What a new object at `path` may be: its content type checked against the bucket and
    /// `rules` (returned trimmed), and its largest size. Refuses a path already taken.
    pub async fn admit(
        &self,
        bucket: &str,
        path: &ObjectPath,
        content_type: &str,
        rules: &UploadRules,
    ) -> Result<(String, u64), StorageError> {
        let (settings, taken) = self.bucket_and_object(bucket, Some(path)).await?;
        let content_type = check_content_type(content_type, &settings)?;
        if let Some(promised) = &rules.content_type
            && essence(&content_type) != essence(promised)
        {
            return Err(StorageError::InvalidInput(format!(
                "this upload is for {}, not {}",
                essence(promised),
                essence(&content_type)
            )));
        }
        let limit = rules.max_bytes.map_or(settings.max_bytes, |max| max.min(settings.max_bytes));
        if taken {
            return Err(StorageError::AlreadyExists);
        }
        Ok((content_type, limit))
    }

    /// Stores a new object from a stream of chunks: checks the bucket's content types and
    /// size limit and the token's `rules` (the declared length first, then the bytes as they
    /// arrive), writes a temporary file and publishes it without ever replacing an existing
    /// object.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_stream<S, E>(
        &self,
        bucket: &str,
        path: &ObjectPath,
        content_type: &str,
        cache_control: Option<&str>,
        declared_len: Option<u64>,
        rules: &UploadRules,
        body: S,
    ) -> Result<StoredObject, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let (content_type, limit) = self.admit(bucket, path, content_type, rules).await?;
        if declared_len.is_some_and(|len| len > limit) {
            return Err(StorageError::TooLarge { limit: Some(limit) });
        }

        let tmp_path = self.root.join(TMP_DIR).join(Uuid::new_v4().simple().to_string());
        // Removed on every way out: after publishing, the link at the final path remains.
        let _tmp = TempFile(Some(tmp_path.clone()));
        let write = |e: std::io::Error| StorageError::other("writing an upload", e);
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&tmp_path).await.map_err(write)?;
        let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::debug!(error = %e, "upload body failed");
                StorageError::InvalidInput("the request body could not be read".into())
            })?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(StorageError::TooLarge { limit: Some(limit) });
            }
            out.write_all(&chunk).await.map_err(write)?;
        }
        out.flush().await.map_err(write)?;
        out.get_ref().sync_all().await.map_err(write)?;
        drop(out);
        self.commit(bucket, path, &tmp_path, &content_type, cache_control, size).await
    }

    /// Publishes a finished, synced file at `tmp_path` as the object at `path`: inserts its
    /// row and links the file in one transaction; never replaces an existing object. The
    /// caller removes `tmp_path` afterwards.
    pub(crate) async fn commit(
        &self,
        bucket: &str,
        path: &ObjectPath,
        tmp_path: &Path,
        content_type: &str,
        cache_control: Option<&str>,
        size: u64,
    ) -> Result<StoredObject, StorageError> {
        let now = Utc::now();
        let metadata = json!({
            "mimetype": content_type,
            "size": size,
            "contentLength": size,
            "cacheControl": cache_control.unwrap_or("max-age=3600"),
            "lastModified": now.to_rfc3339(),
            "httpStatusCode": 200,
        });
        let id = Uuid::new_v4();
        // S3: the bytes go first, under a key of this object's own id, with no transaction
        // open (a large upload takes minutes); the row then decides whether they count.
        if let Some(s3) = &self.s3 {
            s3.put_file(bucket, path, id, tmp_path, size, content_type).await?;
        }
        let discard = || async {
            if let Some(s3) = &self.s3 {
                let _ = s3.remove(bucket, path, id).await;
            }
        };
        let tx = match self.service_tx(false).await {
            Ok(tx) => tx,
            Err(e) => {
                discard().await;
                return Err(e);
            }
        };
        let inserted = tx
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "insert into storage.objects (id, bucket_id, name, metadata) values ($1, $2, $3, $4) \
                 returning created_at, updated_at",
                [id.into(), bucket.into(), path.as_str().into(), metadata.into()],
            ))
            .await;
        let row = match inserted {
            Ok(Some(row)) => row,
            Ok(None) => {
                discard().await;
                return Err(StorageError::other("storing an object's row", DbErr::RecordNotInserted));
            }
            Err(e) => {
                discard().await;
                return Err(match classify(&e) {
                    DbFailure::Duplicate(_) => StorageError::AlreadyExists,
                    _ => StorageError::db("storing an object's row", e),
                });
            }
        };
        let read = |e: DbErr| StorageError::db("storing an object's row", e);
        let created_at: DateTime<Utc> = row.try_get("", "created_at").map_err(read)?;
        let updated_at: DateTime<Utc> = row.try_get("", "updated_at").map_err(read)?;

        // On disk the row, inserted first, decides: no other upload can publish here now.
        let final_path = self.file_path(bucket, path);
        if self.s3.is_none() {
            publish(tmp_path, &final_path).await?;
        }
        if let Err(e) = crate::db::end(tx, true).await {
            // The row is gone with the transaction; so go the bytes this call wrote.
            discard().await;
            if self.s3.is_none() {
                let _ = tokio::fs::remove_file(&final_path).await;
            }
            return Err(StorageError::db("committing an object's row", e));
        }
        tracing::info!(bucket, object_id = %id, size, "object stored");
        Ok(StoredObject {
            id,
            bucket: bucket.into(),
            name: path.as_str().into(),
            size,
            content_type: content_type.to_string(),
            cache_control: cache_control.map(String::from),
            created_at: Some(created_at),
            updated_at: Some(updated_at),
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

    /// An object rendered by `transform`: the bytes, their content type and the object's row.
    /// Each variant is rendered once (at most [`RENDER_PERMITS`] at a time, off the async
    /// executor) and then read from `.render/{object id}/`.
    pub async fn render(
        &self,
        bucket: &str,
        path: &ObjectPath,
        transform: &Transform,
    ) -> Result<(Bytes, &'static str, StoredObject), StorageError> {
        let object = self.object(bucket, path).await?.ok_or(StorageError::NotFound)?;
        let output_type = transform.output_type(&object.content_type)?;
        let dir = self.root.join(RENDER_DIR).join(object.id.simple().to_string());
        let key = hex(&Sha256::digest(transform.query().as_bytes()));
        let cached = dir.join(&key);
        if let Ok(bytes) = tokio::fs::read(&cached).await {
            return Ok((Bytes::from(bytes), output_type, object));
        }
        // The permit comes before the source is read and goes with the render itself: a
        // request cut while waiting holds no source, one cut while rendering frees nothing
        // until the render ends.
        let permit =
            self.renders.clone().acquire_owned().await.map_err(|e| StorageError::other("waiting to render", e))?;
        let source = self.read_bytes(&object, path, MAX_RENDER_SOURCE_BYTES).await?;
        let (transform, content_type) = (*transform, object.content_type.clone());
        let (bytes, _) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            transform.render(&source, &content_type)
        })
        .await
        .map_err(|e| StorageError::other("rendering an image", e))??;
        // Kept for the next request: written aside and renamed, so a reader never sees half.
        let write = async {
            tokio::fs::create_dir_all(&dir).await?;
            let mut entries = tokio::fs::read_dir(&dir).await?;
            let mut kept = Vec::new();
            while let Some(entry) = entries.next_entry().await? {
                let modified =
                    entry.metadata().await.and_then(|m| m.modified()).unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                kept.push((modified, entry.path()));
            }
            if kept.len() >= MAX_CACHED_VARIANTS {
                kept.sort();
                for (_, oldest) in kept.iter().take(kept.len() + 1 - MAX_CACHED_VARIANTS) {
                    let _ = tokio::fs::remove_file(oldest).await;
                }
            }
            let tmp = dir.join(format!("{key}.{}", Uuid::new_v4().simple()));
            tokio::fs::write(&tmp, &bytes).await?;
            tokio::fs::rename(&tmp, &cached).await
        };
        if let Err(e) = write.await {
            tracing::warn!(error = %e, "keeping a rendered image failed");
        }
        Ok((Bytes::from(bytes), output_type, object))
    }

    /// The whole of an object whose row was read, refusing more than `max_bytes`.
    async fn read_bytes(
        &self,
        object: &StoredObject,
        path: &ObjectPath,
        max_bytes: u64,
    ) -> Result<Bytes, StorageError> {
        if let Some(s3) = &self.s3 {
            return s3.read(&object.bucket, path, object.id, max_bytes).await;
        }
        let file = match tokio::fs::File::open(self.file_path(&object.bucket, path)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound),
            Err(e) => return Err(StorageError::other("opening an object", e)),
        };
        let len = file.metadata().await.map_err(|e| StorageError::other("reading an object's size", e))?.len();
        if len > max_bytes {
            return Err(StorageError::TooLarge { limit: Some(max_bytes) });
        }
        let mut buf = Vec::with_capacity(len as usize);
        // One byte more than allowed tells a file that grew after the check.
        file.take(max_bytes + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| StorageError::other("reading an object", e))?;
        if buf.len() as u64 > max_bytes {
            return Err(StorageError::TooLarge { limit: Some(max_bytes) });
        }
        Ok(Bytes::from(buf))
    }

    /// Removes an object's row and file.
    pub async fn remove(&self, bucket: &str, path: &ObjectPath) -> Result<StoredObject, StorageError> {
        validate_bucket(bucket)?;
        let tx = self.service_tx(false).await?;
        let object = find_object(&tx, bucket, path).await?.ok_or(StorageError::NotFound)?;
        // On a Supabase database, Storage's trigger refuses deletes from storage.objects unless
        // this is on in the transaction (its own API sets it the same way); elsewhere it is an
        // unused setting.
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select set_config('storage.allow_delete_query', 'true', true)",
            [],
        ))
        .await
        .map_err(|e| StorageError::db("deleting an object's row", e))?;
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "delete from storage.objects where id = $1",
            [object.id.into()],
        ))
        .await
        .map_err(|e| StorageError::db("deleting an object's row", e))?;
        let file = self.file_path(bucket, path);
        if self.s3.is_none() {
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::other("deleting an object's file", e)),
            }
        }
        crate::db::end(tx, true).await.map_err(|e| StorageError::db("committing a deletion", e))?;
        // S3: the bytes go once the row is gone (a failed commit keeps both).
        if let Some(s3) = &self.s3
            && let Err(e) = s3.remove(bucket, path, object.id).await
        {
            tracing::warn!(error = %e, bucket, object_id = %object.id, "removing a deleted object's bytes from S3 failed");
        }
        let _ = tokio::fs::remove_dir_all(self.root.join(RENDER_DIR).join(object.id.simple().to_string())).await;
        // Empty folders left behind are removed, best effort (a concurrent upload into one
        // recreates it: see `publish`).
        let bucket_dir = self.root.join(bucket);
        let mut dir = file.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == bucket_dir || !d.starts_with(&bucket_dir) || tokio::fs::remove_dir(&d).await.is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        tracing::info!(bucket, object_id = %object.id, "object deleted");
        Ok(object)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Links the finished temporary file at its final place; never replaces anything there.
async fn publish(tmp: &Path, final_path: &Path) -> Result<(), StorageError> {
    let parent = final_path.parent().ok_or(StorageError::InvalidPath("no folder".into()))?;
    for attempt in 0..2 {
        if let Err(e) = tokio::fs::create_dir_all(parent).await {
            // A file where a folder of the path should be: an object named like that folder.
            return Err(match e.kind() {
                std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => StorageError::AlreadyExists,
                _ => StorageError::other("creating an object's folder", e),
            });
        }
        match tokio::fs::hard_link(tmp, final_path).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(StorageError::AlreadyExists),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Err(StorageError::AlreadyExists),
            // The folder was pruned by a concurrent delete between the two calls: once more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 => continue,
            Err(e) => return Err(StorageError::other("publishing an object", e)),
        }
    }
    Err(StorageError::Unavailable("the object's folder keeps disappearing".into()))
}

async fn find_object(
    tx: &crate::db::Tx,
    bucket: &str,
    path: &ObjectPath,
) -> Result<Option<StoredObject>, StorageError> {
    let read = |e: DbErr| StorageError::db("reading an object's row", e);
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select id, metadata, created_at, updated_at from storage.objects \
             where bucket_id = $1 and name = $2",
            [bucket.into(), path.as_str().into()],
        ))
        .await
        .map_err(read)?;
    let Some(row) = row else { return Ok(None) };
    let metadata: Option<Value> = row.try_get("", "metadata").map_err(read)?;
    let metadata = metadata.unwrap_or(Value::Null);
    Ok(Some(StoredObject {
        id: row.try_get("", "id").map_err(read)?,
        bucket: bucket.into(),
        name: path.as_str().into(),
        size: metadata["size"].as_u64().unwrap_or(0),
        content_type: metadata["mimetype"].as_str().unwrap_or("application/octet-stream").to_string(),
        cache_control: metadata["cacheControl"].as_str().map(String::from),
        created_at: row.try_get("", "created_at").map_err(read)?,
        updated_at: row.try_get("", "updated_at").map_err(read)?,
    }))
}

/// A content type without its parameters, in lower case.
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Checks a content type's shape and the bucket's allowed types; returns it trimmed.
fn check_content_type(content_type: &str, bucket: &Bucket) -> Result<String, StorageError> {
    let content_type = content_type.trim();
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let well_formed = content_type.len() <= 255
        && content_type.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
        && essence.split_once('/').is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'));
    if !well_formed {
        return Err(StorageError::InvalidInput("the content type is not a MIME type".into()));
    }
    if let Some(allowed) = &bucket.allowed_mime_types {
        let ok = allowed.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            match a.strip_suffix("/*") {
                Some(kind) => essence.split('/').next() == Some(kind),
                None => a == essence,
            }
        });
        if !ok {
            return Err(StorageError::InvalidInput(format!("content type {essence} is not allowed in this bucket")));
        }
    }
    Ok(content_type.to_string())
}

/// Percent-encodes what an [`ObjectPath`] may contain that a URL path may not (the space).
pub fn encode_path(path: &str) -> String {
    path.replace(' ', "%20")
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn create_signed_upload(
        &self,
        bucket: &str,
        path: &ObjectPath,
        expires_in: Duration,
        rules: &UploadRules,
    ) -> Result<SignedUpload, StorageError> {
        if self.bucket_and_object(bucket, Some(path)).await?.1 {
            return Err(StorageError::AlreadyExists);
        }
        let grant = Grant { rules: rules.clone(), transform: None };
        let (token, expires_at) = self.sign_token(TokenScope::Upload, bucket, path, expires_in, &grant)?;
        Ok(SignedUpload {
            url: format!("{}?token={token}", self.url("object/upload/sign", bucket, path)),
            token,
            expires_at,
            resumable_url: Some(self.resumable_endpoint()),
        })
    }

    async fn create_signed_download(
        &self,
        bucket: &str,
        path: &ObjectPath,
        expires_in: Duration,
        transform: Option<&Transform>,
    ) -> Result<String, StorageError> {
        self.object(bucket, path).await?.ok_or(StorageError::NotFound)?;
        self.sign_download_url(bucket, path, expires_in, transform.copied(), false)
    }

    async fn info(&self, bucket: &str, path: &ObjectPath) -> Result<Option<ObjectInfo>, StorageError> {
        Ok(self.object(bucket, path).await?.map(|o| ObjectInfo {
            size: o.size,
            content_type: o.content_type,
            created_at: o.created_at,
        }))
    }

    async fn upload(
        &self,
        bucket: &str,
        path: &ObjectPath,
        content_type: &str,
        body: Bytes,
    ) -> Result<(), StorageError> {
        let len = body.len() as u64;
        let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
        self.put_stream(bucket, path, content_type, None, Some(len), &UploadRules::default(), stream).await.map(|_| ())
    }

    async fn download(&self, bucket: &str, path: &ObjectPath, max_bytes: u64) -> Result<Bytes, StorageError> {
        let object = self.object(bucket, path).await?.ok_or(StorageError::NotFound)?;
        self.read_bytes(&object, path, max_bytes).await
    }

    async fn delete(&self, bucket: &str, path: &ObjectPath) -> Result<(), StorageError> {
        self.remove(bucket, path).await.map(|_| ())
    }

    fn public_url(&self, bucket: &str, path: &ObjectPath) -> String {
        self.url("object/public", bucket, path)
    }

    async fn sweep_abandoned(&self) -> Result<usize, StorageError> {
        self.sweep_resumable(crate::domain::uploads::EXPIRY_GRACE).await
    }

    fn calls_out(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_key_is_derived_and_distinct() {
        let a = derive_token_key(&Secret::new("secret-a"));
        assert_eq!(a, derive_token_key(&Secret::new("secret-a")));
        assert_ne!(a, derive_token_key(&Secret::new("secret-b")));
        assert_ne!(a.expose(), "secret-a");
        assert_eq!(a.expose().len(), 64);
    }

    #[test]
    fn content_types_are_checked_against_the_bucket() {
        let any = Bucket { public: false, max_bytes: 1, allowed_mime_types: None };
        assert!(check_content_type("text/plain;charset=UTF-8", &any).is_ok());
        assert!(check_content_type("nonsense", &any).is_err());
        assert!(check_content_type("text/pl\nain", &any).is_err());
        let images = Bucket { allowed_mime_types: Some(vec!["image/png".into(), "video/*".into()]), ..any };
        assert!(check_content_type("image/png", &images).is_ok());
        assert!(check_content_type("IMAGE/PNG; q=1", &images).is_ok());
        assert!(check_content_type("video/mp4", &images).is_ok());
        assert!(check_content_type("image/jpeg", &images).is_err());
    }
}
