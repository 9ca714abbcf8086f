//! Objects' bytes in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, Ceph) instead of
//! the local folder, for deployments that run several ward processes: every process shares
//! the database (`storage.objects` rows, which decide what exists and what it is called) and
//! this bucket (the bytes, under `{prefix}{bucket}/{object id}`: each row's bytes have a key of
//! their own, written once before the row and removed after it, so no upload or deletion can
//! touch another's, and no object name, up to 1024 bytes, can make a key longer than S3's). ward keeps its own checks in front of it: uploads arrive
//! at ward (bound by their token, refused past their size) and are written here (multipart
//! above [`MULTIPART_THRESHOLD`]); downloads are checked by ward (the token, the GBV firewall)
//! and then redirected to a presigned GET that lives [`REDIRECT_TTL`].

use std::path::Path as FsPath;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{
    Attribute, Attributes, ObjectStore as _, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::config::S3Settings;
use crate::storage::{ObjectPath, StorageError};

/// Objects larger than this are written in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// The size of each part (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;
/// How long the presigned URL a checked download is redirected to lives: long enough to
/// start reading, short enough that passing it on is of little use.
pub const REDIRECT_TTL: Duration = Duration::from_secs(60);

/// The bucket holding the bytes.
#[derive(Debug)]
pub struct S3Blobs {
    store: AmazonS3,
    prefix: String,
}

fn unavailable(what: &'static str) -> impl Fn(object_store::Error) -> StorageError {
    move |e| match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        e => {
            tracing::warn!(call = what, error = %e, "S3 call failed");
            StorageError::Unavailable(format!("{what}: the S3 service failed"))
        }
    }
}

impl S3Blobs {
    pub fn new(settings: &S3Settings) -> anyhow::Result<Self> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(settings.virtual_hosted);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret.expose());
        }
        let store = builder.build().map_err(|e| anyhow::anyhow!("configuring the S3 backend: {e}"))?;
        Ok(S3Blobs { store, prefix: settings.prefix.clone() })
    }

    fn key(&self, bucket: &str, _path: &ObjectPath, id: Uuid) -> Result<Path, StorageError> {
        Path::parse(format!("{}{bucket}/{}", self.prefix, id.simple()))
            .map_err(|_| StorageError::InvalidPath("the path cannot be an S3 key".into()))
    }

    /// Writes a finished file as the object's bytes (in parts when it is large).
    pub async fn put_file(
        &self,
        bucket: &str,
        path: &ObjectPath,
        id: Uuid,
        file: &FsPath,
        size: u64,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let key = self.key(bucket, path, id)?;
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.to_string().into());
        let read = |e: std::io::Error| StorageError::other("reading an upload for S3", e);
        let mut file = tokio::fs::File::open(file).await.map_err(read)?;
        if size <= MULTIPART_THRESHOLD {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).await.map_err(read)?;
            let options = PutOptions { attributes, ..Default::default() };
            self.store
                .put_opts(&key, PutPayload::from(bytes), options)
                .await
                .map_err(unavailable("writing an object"))?;
            return Ok(());
        }
        let options = PutMultipartOptions { attributes, ..Default::default() };
        let mut upload =
            self.store.put_multipart_opts(&key, options).await.map_err(unavailable("starting a multipart upload"))?;
        let written = async {
            loop {
                let mut part = Vec::with_capacity(PART_BYTES);
                (&mut file).take(PART_BYTES as u64).read_to_end(&mut part).await.map_err(read)?;
                if part.is_empty() {
                    break;
                }
                upload.put_part(PutPayload::from(part)).await.map_err(unavailable("writing a part"))?;
            }
            upload.complete().await.map_err(unavailable("completing a multipart upload"))?;
            Ok(())
        }
        .await;
        if written.is_err() {
            let _ = upload.abort().await;
        }
        written
    }

    /// Reads a whole object, refusing one larger than `max_bytes`.
    pub async fn read(&self, bucket: &str, path: &ObjectPath, id: Uuid, max_bytes: u64) -> Result<Bytes, StorageError> {
        let key = self.key(bucket, path, id)?;
        let got = self.store.get(&key).await.map_err(unavailable("reading an object"))?;
        if got.meta.size > max_bytes {
            return Err(StorageError::TooLarge { limit: Some(max_bytes) });
        }
        got.bytes().await.map_err(unavailable("reading an object"))
    }

    /// A presigned GET of the object, naming it `download` as an attachment when asked.
    pub async fn presigned_get(
        &self,
        bucket: &str,
        path: &ObjectPath,
        id: Uuid,
        content_type: &str,
        download: Option<&str>,
    ) -> Result<String, StorageError> {
        let key = self.key(bucket, path, id)?;
        let mut query = vec![("response-content-type".to_string(), content_type.to_string())];
        if let Some(name) = download {
            query.push(("response-content-disposition".to_string(), format!("attachment; filename=\"{name}\"")));
        }
        let options = SignedUrlOptions::new().with_query(query);
        let url = self
            .store
            .signed_url_opts(Method::GET, &key, REDIRECT_TTL, &options)
            .await
            .map_err(unavailable("signing an S3 download"))?;
        Ok(url.to_string())
    }

    /// Removes an object's bytes (nothing there is not an error).
    pub async fn remove(&self, bucket: &str, path: &ObjectPath, id: Uuid) -> Result<(), StorageError> {
        let key = self.key(bucket, path, id)?;
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable("deleting an object")(e)),
        }
    }
}
