//! Resumable uploads (TUS 1.0) of the local backend, kept on disk: an upload in progress is a
//! folder `.resumable/{slot}/` with `info.json` (what was promised: bucket, path, length,
//! content type, expiry) and `data` (the bytes so far; its length is the offset). When the
//! last byte arrives the data is published as the object, as a one-shot upload would be, and
//! the folder keeps only `info.json` marked done, so that a client that missed the last answer
//! learns that it finished. Abandoned uploads are removed after their expiry ([`LocalStore::sweep_resumable`]).
//!
//! The public upload id is Supabase's form: base64url of `{bucket}/{path}/{uuid}`. Every use
//! of an id is authorised by the caller (a signed upload token for exactly that bucket and
//! path, or the service role) before anything here runs.
//!
//! One object has at most one upload in progress: its folder (the slot) is named after the
//! bucket and path, so a token cannot start uploads without end (each up to the promised size).
//! A new creation replaces an unfinished upload nobody is writing to; the old id then finds
//! nothing (its uuid is not the slot's).

use std::collections::HashSet;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use super::{LocalStore, StoredObject};
use crate::storage::{ObjectPath, StorageError, UploadRules, validate_bucket};

/// Folder (inside the storage root) of resumable uploads.
const RESUMABLE_DIR: &str = ".resumable";
/// Names an object's slot (a UUID v5 of `{bucket}/{path}`).
const SLOT_NAMESPACE: Uuid = Uuid::from_u128(0x3f0e_9d7c_6b1a_4c2e_8f5d_0a9b_7c6d_5e4f);

fn slot(bucket: &str, path: &str) -> Uuid {
    Uuid::new_v5(&SLOT_NAMESPACE, format!("{bucket}/{path}").as_bytes())
}
/// How long an upload created with the service role (no token to expire with) may take.
pub const SERVICE_UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a resumable upload operation was refused, beyond storage's own reasons.
#[derive(Debug, thiserror::Error)]
pub enum ResumableError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The client's offset is not the server's (TUS: 409).
    #[error("Upload-Offset conflict: the upload is at {0}")]
    OffsetConflict(u64),
    /// The upload expired (TUS: 410).
    #[error("the upload has expired")]
    Gone,
    /// Another request is writing to this upload now (TUS: 423).
    #[error("another request is writing to this upload")]
    Locked,
    /// The upload is complete and cannot be terminated.
    #[error("the upload is complete")]
    Completed,
}

/// An upload's promise, as kept in `info.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumableUpload {
    pub bucket: String,
    pub path: String,
    pub key: Uuid,
    /// Every byte of the object: `Upload-Length`.
    pub length: u64,
    pub content_type: String,
    pub cache_control: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// Published as an object.
    #[serde(default)]
    pub done: bool,
}

impl ResumableUpload {
    /// The public id: base64url of `{bucket}/{path}/{uuid}`.
    pub fn id(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}/{}/{}", self.bucket, self.path, self.key.simple()))
    }
}

/// A parsed public upload id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadId {
    pub bucket: String,
    pub path: ObjectPath,
    pub key: Uuid,
}

impl UploadId {
    /// Decodes and checks an id from a URL; anything malformed is "not found".
    pub fn parse(id: &str) -> Result<Self, StorageError> {
        if id.len() > 2048 {
            return Err(StorageError::NotFound);
        }
        let decoded = URL_SAFE_NO_PAD.decode(id).map_err(|_| StorageError::NotFound)?;
        let decoded = String::from_utf8(decoded).map_err(|_| StorageError::NotFound)?;
        let (bucket, rest) = decoded.split_once('/').ok_or(StorageError::NotFound)?;
        let (path, key) = rest.rsplit_once('/').ok_or(StorageError::NotFound)?;
        validate_bucket(bucket).map_err(|_| StorageError::NotFound)?;
        let path = ObjectPath::parse(path).map_err(|_| StorageError::NotFound)?;
        let key = Uuid::try_parse(key).map_err(|_| StorageError::NotFound)?;
        Ok(UploadId { bucket: bucket.to_string(), path, key })
    }
}

/// The uploads a request is writing to now.
#[derive(Debug, Default)]
pub struct Writers(Mutex<HashSet<Uuid>>);

/// One writer's hold on an upload, released when dropped (also when the request is cut).
struct Writing<'a>(&'a Writers, Uuid);

impl Writers {
    fn enter(&self, key: Uuid) -> Result<Writing<'_>, ResumableError> {
        let mut busy = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !busy.insert(key) {
            return Err(ResumableError::Locked);
        }
        Ok(Writing(self, key))
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.1);
    }
}

fn io(context: &'static str) -> impl Fn(std::io::Error) -> StorageError {
    move |e| StorageError::other(context, e)
}

impl LocalStore {
    fn resumable_dir(&self, slot: Uuid) -> PathBuf {
        self.root.join(RESUMABLE_DIR).join(slot.simple().to_string())
    }

    async fn write_info(&self, upload: &ResumableUpload) -> Result<(), StorageError> {
        let dir = self.resumable_dir(slot(&upload.bucket, &upload.path));
        let json = serde_json::to_vec(upload).map_err(|e| StorageError::other("writing an upload's info", e))?;
        let tmp = dir.join(format!("info.{}", Uuid::new_v4().simple()));
        tokio::fs::write(&tmp, json).await.map_err(io("writing an upload's info"))?;
        tokio::fs::rename(&tmp, dir.join("info.json")).await.map_err(io("writing an upload's info"))
    }

    /// Starts a resumable upload of `length` bytes at `path`, within the bucket's rules and
    /// `rules` (a token's), lasting until `expires_at`.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_resumable(
        &self,
        bucket: &str,
        path: &ObjectPath,
        length: u64,
        content_type: &str,
        cache_control: Option<String>,
        rules: &UploadRules,
        expires_at: DateTime<Utc>,
    ) -> Result<ResumableUpload, StorageError> {
        let (content_type, limit) = self.admit(bucket, path, content_type, rules).await?;
        if length > limit {
            return Err(StorageError::TooLarge { limit: Some(limit) });
        }
        let slot = slot(bucket, path.as_str());
        // An upload being written to keeps its place; an idle unfinished one is replaced.
        let _writing = self.writing.enter(slot).map_err(|_| StorageError::AlreadyExists)?;
        self.remove_resumable(slot).await?;
        let upload = ResumableUpload {
            bucket: bucket.to_string(),
            path: path.as_str().to_string(),
            key: Uuid::new_v4(),
            length,
            content_type,
            cache_control,
            expires_at,
            done: false,
        };
        let dir = self.resumable_dir(slot);
        tokio::fs::create_dir_all(&dir).await.map_err(io("creating an upload"))?;
        tokio::fs::File::create(dir.join("data")).await.map_err(io("creating an upload"))?;
        self.write_info(&upload).await?;
        tracing::info!(bucket, length, "resumable upload created");
        Ok(upload)
    }

    /// An upload and its offset. Expired uploads are [`ResumableError::Gone`].
    pub async fn resumable(&self, id: &UploadId) -> Result<(ResumableUpload, u64), ResumableError> {
        let dir = self.resumable_dir(slot(&id.bucket, id.path.as_str()));
        let info = match tokio::fs::read(dir.join("info.json")).await {
            Ok(info) => info,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound.into()),
            Err(e) => return Err(StorageError::other("reading an upload", e).into()),
        };
        let upload: ResumableUpload =
            serde_json::from_slice(&info).map_err(|e| StorageError::other("reading an upload", e))?;
        if upload.bucket != id.bucket || upload.path != id.path.as_str() || upload.key != id.key {
            return Err(StorageError::NotFound.into());
        }
        if upload.done {
            let length = upload.length;
            return Ok((upload, length));
        }
        if upload.expires_at < Utc::now() {
            return Err(ResumableError::Gone);
        }
        let offset = match tokio::fs::metadata(dir.join("data")).await {
            Ok(meta) => meta.len(),
            Err(e) => return Err(StorageError::other("reading an upload's offset", e).into()),
        };
        let offset = offset.min(upload.length);
        Ok((upload, offset))
    }

    /// Appends a PATCH body at `offset` (which must be the upload's): the upload, its new
    /// offset, and the stored object when this was the last byte. Bytes received before a cut connection are
    /// kept, so the client resumes from them. A body that would go past the promised length is
    /// refused (what came before it stays).
    pub async fn append<S, E>(
        &self,
        id: &UploadId,
        offset: u64,
        body: S,
    ) -> Result<(ResumableUpload, u64, Option<StoredObject>), ResumableError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let _writing = self.writing.enter(slot(&id.bucket, id.path.as_str()))?;
        let (upload, current) = self.resumable(id).await?;
        if upload.done || offset != current {
            return Err(ResumableError::OffsetConflict(current));
        }
        let data = self.resumable_dir(slot(&id.bucket, id.path.as_str())).join("data");
        let mut file = tokio::fs::OpenOptions::new().write(true).open(&data).await.map_err(io("opening an upload"))?;
        // Written at the offset, not appended: a write still in flight from a cut request
        // lands where it belongs, with the same bytes.
        file.seek(SeekFrom::Start(current)).await.map_err(io("opening an upload"))?;
        let mut at = current;
        let mut body = std::pin::pin!(body);
        let mut outcome = Ok(());
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    tracing::debug!(error = %e, "resumable upload body ended early");
                    outcome = Err(StorageError::InvalidInput("the request body could not be read".into()));
                    break;
                }
            };
            if at + chunk.len() as u64 > upload.length {
                outcome = Err(StorageError::TooLarge { limit: Some(upload.length) });
                break;
            }
            file.write_all(&chunk).await.map_err(io("writing an upload"))?;
            at += chunk.len() as u64;
        }
        file.flush().await.map_err(io("writing an upload"))?;
        file.sync_data().await.map_err(io("writing an upload"))?;
        drop(file);
        outcome?;
        if at < upload.length {
            return Ok((upload, at, None));
        }
        let object = self.publish_complete(upload.clone(), id).await?;
        Ok((upload, at, Some(object)))
    }

    /// Publishes an upload whose every byte arrived but which is not published yet (its last
    /// PATCH failed to publish: the database or S3 was away). A client asking for the offset
    /// would otherwise see the whole length and take the upload for done.
    pub async fn finish(&self, id: &UploadId) -> Result<(), ResumableError> {
        let _writing = self.writing.enter(slot(&id.bucket, id.path.as_str()))?;
        let (upload, offset) = self.resumable(id).await?;
        if !upload.done && offset == upload.length {
            self.publish_complete(upload, id).await?;
        }
        Ok(())
    }

    /// Publishes a complete upload's data as its object (the caller holds the slot).
    async fn publish_complete(&self, upload: ResumableUpload, id: &UploadId) -> Result<StoredObject, ResumableError> {
        // Past its expiry the intent may be swept: an object published now would be nobody's.
        if upload.expires_at < Utc::now() {
            return Err(ResumableError::Gone);
        }
        let data = self.resumable_dir(slot(&upload.bucket, &upload.path)).join("data");
        let object = self
            .commit(
                &upload.bucket,
                &id.path,
                &data,
                &upload.content_type,
                upload.cache_control.as_deref(),
                upload.length,
            )
            .await?;
        self.write_info(&ResumableUpload { done: true, ..upload }).await?;
        let _ = tokio::fs::remove_file(&data).await;
        Ok(object)
    }

    /// Ends an unfinished upload and removes what arrived of it.
    pub async fn terminate(&self, id: &UploadId) -> Result<(), ResumableError> {
        let slot = slot(&id.bucket, id.path.as_str());
        let _writing = self.writing.enter(slot)?;
        let (upload, _) = match self.resumable(id).await {
            Err(ResumableError::Gone) => return self.remove_resumable(slot).await.map_err(Into::into),
            other => other?,
        };
        if upload.done {
            return Err(ResumableError::Completed);
        }
        self.remove_resumable(slot).await.map_err(Into::into)
    }

    async fn remove_resumable(&self, key: Uuid) -> Result<(), StorageError> {
        match tokio::fs::remove_dir_all(self.resumable_dir(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::other("removing an upload", e)),
        }
    }

    /// Removes the uploads (finished or not) more than `grace` past their expiry, and
    /// folders whose info cannot be read after a day: how many.
    pub async fn sweep_resumable(&self, grace: Duration) -> Result<usize, StorageError> {
        let root = self.root.join(RESUMABLE_DIR);
        let mut entries = match tokio::fs::read_dir(&root).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StorageError::other("listing uploads", e)),
        };
        let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await.map_err(io("listing uploads"))? {
            let Ok(key) = Uuid::try_parse(&entry.file_name().to_string_lossy()) else { continue };
            let info = tokio::fs::read(entry.path().join("info.json")).await.ok();
            let expired = match info.and_then(|i| serde_json::from_slice::<ResumableUpload>(&i).ok()) {
                Some(upload) => upload.expires_at < cutoff,
                None => {
                    let age =
                        entry.metadata().await.ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
                    age.is_some_and(|age| age > Duration::from_secs(86_400))
                }
            };
            // A request writing to it now keeps it.
            let Ok(_writing) = self.writing.enter(key) else { continue };
            if expired && self.remove_resumable(key).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_malformed_ones_are_not_found() {
        let upload = ResumableUpload {
            bucket: "evidence".into(),
            path: "m/f/clip one.mp4".into(),
            key: Uuid::new_v4(),
            length: 1,
            content_type: "video/mp4".into(),
            cache_control: None,
            expires_at: Utc::now(),
            done: false,
        };
        let parsed = UploadId::parse(&upload.id()).unwrap();
        assert_eq!(
            (parsed.bucket.as_str(), parsed.path.as_str(), parsed.key),
            ("evidence", "m/f/clip one.mp4", upload.key)
        );
        let encode = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let key = Uuid::new_v4().simple().to_string();
        for bad in [
            String::new(),
            "not base64!".into(),
            encode("evidence"),
            encode(&format!("evidence/{key}")),
            encode(&format!("evidence/../etc/{key}")),
            encode(&format!("Evidence/a/{key}")),
            encode("evidence/a/not-a-uuid"),
            "A".repeat(3000),
        ] {
            assert!(matches!(UploadId::parse(&bad), Err(StorageError::NotFound)), "{bad:?}");
        }
    }
}
