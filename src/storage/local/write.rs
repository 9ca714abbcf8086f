//! Writing objects: admitting an upload (bucket, type, size, a free path), streaming its bytes
//! to a synced temporary file, and publishing it with its `storage.objects` row, never over an
//! existing object.

use super::*;

/// Removes a temporary file when dropped, also when the request carrying the upload is
/// cancelled mid-stream.
pub(super) struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl LocalStore {
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
}

/// Links the finished temporary file at its final place; never replaces anything there.
pub(super) async fn publish(tmp: &Path, final_path: &Path) -> Result<(), StorageError> {
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

/// A content type without its parameters, in lower case.
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Checks a content type's shape and the bucket's allowed types; returns it trimmed.
pub(super) fn check_content_type(content_type: &str, bucket: &Bucket) -> Result<String, StorageError> {
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
