//! The object store with every call counted and timed (`ward_storage_calls`).

use super::*;

/// The object store with every call counted and timed.
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn wrap(inner: Arc<dyn ObjectStore>, metrics: Arc<Metrics>) -> Arc<dyn ObjectStore> {
        Arc::new(MeteredStore { inner, metrics })
    }

    fn record<T>(&self, call: &'static str, started: Instant, result: &Result<T, StorageError>) {
        self.metrics.observe_storage(call, result.is_ok(), started.elapsed());
    }
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn create_signed_upload(
        &self,
        bucket: &str,
        path: &ObjectPath,
        expires_in: Duration,
        rules: &UploadRules,
    ) -> Result<SignedUpload, StorageError> {
        let started = Instant::now();
        let result = self.inner.create_signed_upload(bucket, path, expires_in, rules).await;
        self.record("create_signed_upload", started, &result);
        result
    }

    async fn create_signed_download(
        &self,
        bucket: &str,
        path: &ObjectPath,
        expires_in: Duration,
        transform: Option<&Transform>,
    ) -> Result<String, StorageError> {
        let started = Instant::now();
        let result = self.inner.create_signed_download(bucket, path, expires_in, transform).await;
        self.record("create_signed_download", started, &result);
        result
    }

    async fn info(&self, bucket: &str, path: &ObjectPath) -> Result<Option<ObjectInfo>, StorageError> {
        let started = Instant::now();
        let result = self.inner.info(bucket, path).await;
        self.record("info", started, &result);
        result
    }

    async fn upload(
        &self,
        bucket: &str,
        path: &ObjectPath,
        content_type: &str,
        body: Bytes,
    ) -> Result<(), StorageError> {
        let started = Instant::now();
        let result = self.inner.upload(bucket, path, content_type, body).await;
        self.record("upload", started, &result);
        result
    }

    async fn download(&self, bucket: &str, path: &ObjectPath, max_bytes: u64) -> Result<Bytes, StorageError> {
        let started = Instant::now();
        let result = self.inner.download(bucket, path, max_bytes).await;
        self.record("download", started, &result);
        result
    }

    async fn delete(&self, bucket: &str, path: &ObjectPath) -> Result<(), StorageError> {
        let started = Instant::now();
        let result = self.inner.delete(bucket, path).await;
        self.record("delete", started, &result);
        result
    }

    fn public_url(&self, bucket: &str, path: &ObjectPath) -> String {
        self.inner.public_url(bucket, path)
    }

    async fn sweep_abandoned(&self) -> Result<usize, StorageError> {
        let started = Instant::now();
        let result = self.inner.sweep_abandoned().await;
        self.record("sweep_abandoned", started, &result);
        result
    }

    fn calls_out(&self) -> bool {
        self.inner.calls_out()
    }
}
