//! The `UploadIntent` type shared by every kind of upload (photos now; ticket evidence and
//! documents too): a promise of one file at one object path, with the URL to PUT it to.

use async_graphql::{Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};
use entity::enums;
use entity::upload_intent;

use super::ticket::MediaPurpose;
use crate::storage::SignedUpload;

/// Where an upload intent stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum UploadStatus {
    /// Waiting for the file (and its confirmation).
    Pending,
    /// Confirmed: the file became a photo or a ticket's file.
    Confirmed,
    /// Past its expiry without a confirmation.
    Expired,
}

impl From<enums::UploadStatus> for UploadStatus {
    fn from(status: enums::UploadStatus) -> Self {
        match status {
            enums::UploadStatus::Pending => UploadStatus::Pending,
            enums::UploadStatus::Confirmed => UploadStatus::Confirmed,
            enums::UploadStatus::Expired => UploadStatus::Expired,
        }
    }
}

/// A promise to upload one file: PUT its bytes (with their `Content-Type`) to `uploadUrl`
/// before `expiresAt`, then confirm it. The URL works for this one path only and never
/// replaces an existing file.
#[derive(SimpleObject, Clone, Debug)]
pub struct UploadIntent {
    pub id: ID,
    pub purpose: MediaPurpose,
    pub bucket: String,
    /// The object path in its bucket.
    pub path: String,
    /// The absolute URL to PUT the file to (it carries the token).
    pub upload_url: String,
    /// The upload token alone (what `@supabase/storage-js`'s `uploadToSignedUrl` takes).
    pub token: String,
    /// Where a TUS client (`tus-js-client`, Uppy) starts a resumable upload of this file instead:
    /// send the token as the `x-signature` header and `bucketName`, `objectName` (this `path`)
    /// and `contentType` as metadata. Null when the storage backend has no resumable uploads.
    pub resumable_url: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub status: UploadStatus,
}

impl UploadIntent {
    /// The intent as the API shows it, with the signed URL made for it.
    pub fn new(model: upload_intent::Model, signed: SignedUpload) -> Self {
        UploadIntent {
            id: ID(model.id.to_string()),
            purpose: model.purpose.into(),
            bucket: model.bucket,
            path: model.object_path,
            upload_url: signed.url,
            token: signed.token,
            resumable_url: signed.resumable_url,
            expires_at: signed.expires_at,
            status: model.status.into(),
        }
    }
}
