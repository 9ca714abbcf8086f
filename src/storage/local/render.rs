//! Image renderings of stored objects (`/render/image/...`): each variant rendered once, a
//! few at a time, and kept in a bounded cache next to the objects.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::{LocalStore, StoredObject, hex};
use crate::storage::{ObjectPath, StorageError, Transform};

/// Folder (inside the storage root) of rendered image variants, one folder per object id.
pub(super) const RENDER_DIR: &str = ".render";
/// Renders running at once (each takes a core for a moment); more wait their turn.
pub const RENDER_PERMITS: usize = 2;
/// Rendered variants kept per object: anyone may ask a public image for any size, and the
/// cache must not grow with what they ask. Past this, the oldest variant makes room.
const MAX_CACHED_VARIANTS: usize = 32;
/// The largest source image the local backend renders.
const MAX_RENDER_SOURCE_BYTES: u64 = 50 * 1024 * 1024;

impl LocalStore {
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
    pub(super) async fn read_bytes(
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
}
