//! The local storage backend of the embedded default: objects as files under
//! `WARD_DATA_DIR/storage/{bucket}/{path}`, one `storage.objects` row each (with Supabase's
//! `metadata` shape: `mimetype`, `size`, `cacheControl`), and signed URLs whose tokens ward
//! verifies itself when it serves them (`src/http/storage/`). Here the store, its buckets and
//! rows; its URL tokens in `tokens.rs`, the write path in `write.rs`, renderings in
//! `render.rs`, resumable uploads in `resumable.rs`, the S3 bytes in `s3.rs`.
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
use jsonwebtoken::{DecodingKey, EncodingKey};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::{ObjectInfo, ObjectPath, ObjectStore, SignedUpload, StorageError, Transform, UploadRules, validate_bucket};
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
mod render;
pub mod resumable;
pub mod s3;
mod tokens;
mod write;

use render::RENDER_DIR;
pub use render::RENDER_PERMITS;
pub use tokens::{Grant, TokenScope, Verified, derive_token_key};

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
    use super::write::check_content_type;
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
