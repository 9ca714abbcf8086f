//! Resumable uploads (TUS 1.0: creation, creation-with-upload, termination, expiration) on
//! Supabase Storage's paths, served by the local backend:
//!
//! | route | who |
//! | --- | --- |
//! | `POST /storage/v1/upload/resumable/sign` → `201 Location: …/sign/{id}` | `x-signature`: a signed upload token for the `Upload-Metadata` bucket and object |
//! | `HEAD`, `PATCH`, `DELETE /storage/v1/upload/resumable/sign/{id}` | `x-signature`: the same token |
//! | `POST /storage/v1/upload/resumable`, `HEAD`, `PATCH`, `DELETE …/{id}` | service role |
//! | `OPTIONS` on each | anyone |
//!
//! A token bound to an upload intent's content type and size bounds the upload the same way
//! (the declared `Upload-Length`, then every byte as it arrives). Upserts are refused: ward
//! never overwrites an object. The uploads themselves live in `storage::local::resumable`.

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::{Result, StorageHttpError, refuse, refuse_upsert, require_service};
use crate::http::AppState;
use crate::storage::local::resumable::{ResumableError, ResumableUpload, SERVICE_UPLOAD_TTL, UploadId};
use crate::storage::local::{MAX_OBJECT_BYTES, TokenScope};
use crate::storage::{LocalStore, ObjectPath, UploadRules, validate_bucket};

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const SIGNATURE: HeaderName = HeaderName::from_static("x-signature");
const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// The longest `Upload-Metadata` header read.
const MAX_METADATA: usize = 4096;

/// The TUS routes; part of the local storage router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/storage/v1/upload/resumable", post(create_service).options(options))
        .route("/storage/v1/upload/resumable/sign", post(create_signed).options(options))
        .route(
            "/storage/v1/upload/resumable/sign/{id}",
            axum::routing::head(head_signed).patch(patch_signed).delete(delete_signed).options(options),
        )
        .route(
            "/storage/v1/upload/resumable/{id}",
            axum::routing::head(head_service).patch(patch_service).delete(delete_service).options(options),
        )
        // Every answer, errors included, says which protocol version it speaks.
        .layer(axum::middleware::map_response(|mut response: Response| async move {
            response.headers_mut().insert(TUS_RESUMABLE, HeaderValue::from_static("1.0.0"));
            response
        }))
}

impl From<ResumableError> for StorageHttpError {
    fn from(e: ResumableError) -> Self {
        match e {
            ResumableError::Storage(e) => e.into(),
            ResumableError::OffsetConflict(_) => Self::new(StatusCode::CONFLICT, "Conflict", e.to_string()),
            ResumableError::Gone => Self::new(StatusCode::GONE, "Gone", e.to_string()),
            ResumableError::Locked => Self::new(StatusCode::LOCKED, "Locked", e.to_string()),
            ResumableError::Completed => Self::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
        }
    }
}

fn bad(message: &str) -> StorageHttpError {
    StorageHttpError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// TUS requests other than OPTIONS name the protocol version.
fn check_version(headers: &HeaderMap) -> Result<()> {
    match header_str(headers, &TUS_RESUMABLE) {
        Some("1.0.0") => Ok(()),
        _ => Err(StorageHttpError::new(
            StatusCode::PRECONDITION_FAILED,
            "invalid_request",
            "Tus-Resumable: 1.0.0 is required",
        )),
    }
}

fn store(state: &AppState) -> Result<std::sync::Arc<LocalStore>> {
    state
        .local_storage
        .clone()
        .ok_or_else(|| StorageHttpError::new(StatusCode::NOT_FOUND, "not_found", "local storage is not enabled"))
}

/// `OPTIONS`: what this server supports.
async fn options() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert("tus-version", HeaderValue::from_static("1.0.0"));
    h.insert("tus-extension", HeaderValue::from_static("creation,creation-with-upload,termination,expiration"));
    h.insert("tus-max-size", HeaderValue::from(MAX_OBJECT_BYTES));
    response
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs.
fn metadata(headers: &HeaderMap) -> Result<Vec<(String, String)>> {
    let Some(raw) = header_str(headers, &UPLOAD_METADATA) else { return Err(bad("Upload-Metadata is required")) };
    if raw.len() > MAX_METADATA {
        return Err(bad("Upload-Metadata is too long"));
    }
    let mut pairs = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let value = STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| bad("Upload-Metadata values must be base64 UTF-8"))?;
        pairs.push((key.to_string(), value));
    }
    Ok(pairs)
}

/// What a creation request asks for.
struct Creation {
    bucket: String,
    path: ObjectPath,
    length: u64,
    content_type: String,
    cache_control: Option<String>,
}

fn creation(headers: &HeaderMap) -> Result<Creation> {
    check_version(headers)?;
    refuse_upsert(headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(bad("Upload-Length is required: deferred lengths are not supported"));
    }
    let length = header_str(headers, &UPLOAD_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| bad("Upload-Length must be a number of bytes"))?;
    let meta = metadata(headers)?;
    let get = |key: &str| meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let bucket = get("bucketName").ok_or_else(|| bad("Upload-Metadata needs bucketName"))?.to_string();
    validate_bucket(&bucket)?;
    let path = ObjectPath::parse(get("objectName").ok_or_else(|| bad("Upload-Metadata needs objectName"))?)?;
    let content_type = get("contentType").unwrap_or("application/octet-stream").to_string();
    // As Supabase: a number of seconds becomes `max-age`, anything else `no-cache`.
    let cache_control = get("cacheControl").map(|v| match v.trim().parse::<u32>() {
        Ok(seconds) => format!("max-age={seconds}"),
        Err(_) => "no-cache".to_string(),
    });
    Ok(Creation { bucket, path, length, content_type, cache_control })
}

/// `POST …/resumable/sign` with `x-signature`.
async fn create_signed(State(state): State<AppState>, headers: HeaderMap, request: Request) -> Result<Response> {
    let checked = (|| {
        let store = store(&state)?;
        let asked = creation(&headers)?;
        let token =
            header_str(&headers, &SIGNATURE).filter(|t| !t.is_empty()).ok_or_else(|| bad("x-signature is required"))?;
        let verified = store.verify_token(token, TokenScope::Upload, &asked.bucket, &asked.path)?;
        Ok((store, asked, verified.grant.rules, verified.expires_at))
    })();
    match checked {
        Ok((store, asked, rules, expires_at)) => {
            create(&store, asked, &rules, expires_at, true, &headers, request).await
        }
        Err(error) => Err(refuse(request, error).await),
    }
}

/// `POST …/resumable` with the service role.
async fn create_service(State(state): State<AppState>, headers: HeaderMap, request: Request) -> Result<Response> {
    let checked = match require_service(&state, &headers).await {
        Ok(()) => store(&state).and_then(|store| Ok((store, creation(&headers)?))),
        Err(error) => Err(error),
    };
    match checked {
        Ok((store, asked)) => {
            let expires_at = Utc::now() + chrono::Duration::from_std(SERVICE_UPLOAD_TTL).unwrap_or_default();
            create(&store, asked, &UploadRules::default(), expires_at, false, &headers, request).await
        }
        Err(error) => Err(refuse(request, error).await),
    }
}

async fn create(
    store: &LocalStore,
    asked: Creation,
    rules: &UploadRules,
    expires_at: DateTime<Utc>,
    signed: bool,
    headers: &HeaderMap,
    request: Request,
) -> Result<Response> {
    let created = store
        .create_resumable(
            &asked.bucket,
            &asked.path,
            asked.length,
            &asked.content_type,
            asked.cache_control,
            rules,
            expires_at,
        )
        .await;
    let asked_path = asked.path;
    let upload = match created {
        Ok(upload) => upload,
        Err(error) => return Err(refuse(request, error.into()).await),
    };
    let location = format!(
        "{}/storage/v1/upload/resumable/{}{}",
        store.public_base(),
        if signed { "sign/" } else { "" },
        upload.id()
    );
    // creation-with-upload: the first bytes may come with the creation.
    let with_data = header_str(headers, &header::CONTENT_TYPE) == Some(OFFSET_STREAM);
    let (offset, cut) = if with_data {
        match write(store, &upload, 0, request.into_body()).await {
            Ok(offset) => (Some(offset), false),
            // The upload exists whatever happened to its first bytes: the client learns
            // where it is and how far it got, and resumes from there.
            Err(_) => {
                let id = UploadId { bucket: upload.bucket.clone(), path: asked_path, key: upload.key };
                (Some(store.resumable(&id).await.map(|(_, offset)| offset).unwrap_or(0)), true)
            }
        }
    } else {
        (None, false)
    };
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, value);
    }
    if let Some(offset) = offset {
        h.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    }
    if cut {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    set_expires(h, &upload, offset.unwrap_or(0));
    Ok(response)
}

/// Appends a body and answers with the new offset (and `Tus-Complete: 1` at the end).
async fn write(store: &LocalStore, upload: &ResumableUpload, offset: u64, body: Body) -> Result<u64> {
    let id = UploadId { bucket: upload.bucket.clone(), path: ObjectPath::parse(&upload.path)?, key: upload.key };
    let (_, offset, _) = store.append(&id, offset, body.into_data_stream()).await?;
    Ok(offset)
}

fn set_expires(h: &mut HeaderMap, upload: &ResumableUpload, offset: u64) {
    if offset < upload.length {
        let when = upload.expires_at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(value) = HeaderValue::from_str(&when) {
            h.insert(UPLOAD_EXPIRES, value);
        }
    }
}

/// Authorises a request on an existing upload: the token must be for its bucket and object.
fn signed_upload(
    state: &AppState,
    id: std::result::Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
) -> Result<(std::sync::Arc<LocalStore>, UploadId)> {
    let store = store(state)?;
    check_version(headers)?;
    let Path(id) = id?;
    let id = UploadId::parse(&id)?;
    let token =
        header_str(headers, &SIGNATURE).filter(|t| !t.is_empty()).ok_or_else(|| bad("x-signature is required"))?;
    store.verify_token(token, TokenScope::Upload, &id.bucket, &id.path)?;
    Ok((store, id))
}

async fn service_upload(
    state: &AppState,
    id: std::result::Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
) -> Result<(std::sync::Arc<LocalStore>, UploadId)> {
    require_service(state, headers).await?;
    let store = store(state)?;
    check_version(headers)?;
    let Path(id) = id?;
    Ok((store, UploadId::parse(&id)?))
}

async fn head_signed(
    State(state): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (store, id) = signed_upload(&state, id, &headers)?;
    head(&store, &id).await
}

async fn head_service(
    State(state): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (store, id) = service_upload(&state, id, &headers).await?;
    head(&store, &id).await
}

/// `HEAD`: where the upload stands. An upload with every byte but not yet published (its
/// last PATCH could not publish it) is published now: its offset would say it is done.
async fn head(store: &LocalStore, id: &UploadId) -> Result<Response> {
    let (upload, offset) = store.resumable(id).await?;
    if !upload.done && offset == upload.length {
        store.finish(id).await?;
    }
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    h.insert(UPLOAD_LENGTH, HeaderValue::from(upload.length));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    set_expires(h, &upload, offset);
    Ok(response)
}

async fn patch_signed(
    State(state): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response> {
    match signed_upload(&state, id, &headers) {
        Ok((store, id)) => patch(&store, &id, &headers, request).await,
        Err(error) => Err(refuse(request, error).await),
    }
}

async fn patch_service(
    State(state): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response> {
    match service_upload(&state, id, &headers).await {
        Ok((store, id)) => patch(&store, &id, &headers, request).await,
        Err(error) => Err(refuse(request, error).await),
    }
}

/// `PATCH`: the next bytes, at the offset the client names.
async fn patch(store: &LocalStore, id: &UploadId, headers: &HeaderMap, request: Request) -> Result<Response> {
    if header_str(headers, &header::CONTENT_TYPE) != Some(OFFSET_STREAM) {
        let error = StorageHttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            format!("a PATCH carries Content-Type: {OFFSET_STREAM}"),
        );
        return Err(refuse(request, error).await);
    }
    let Some(offset) = header_str(headers, &UPLOAD_OFFSET).and_then(|v| v.parse::<u64>().ok()) else {
        return Err(refuse(request, bad("Upload-Offset must be a number of bytes")).await);
    };
    let (upload, offset, object) = match store.append(id, offset, request.into_body().into_data_stream()).await {
        Ok(done) => done,
        Err(error) => return Err(StorageHttpError { close: true, ..error.into() }),
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    if object.is_some() {
        h.insert("tus-complete", HeaderValue::from_static("1"));
    } else {
        set_expires(h, &upload, offset);
    }
    Ok(response)
}

async fn delete_signed(
    State(state): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    let (store, id) = signed_upload(&state, id, &headers)?;
    store.terminate(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_service(
    State(state): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    let (store, id) = service_upload(&state, id, &headers).await?;
    store.terminate(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_are_decoded() {
        let mut headers = HeaderMap::new();
        headers.insert(
            UPLOAD_METADATA,
            HeaderValue::from_static("bucketName ZXZpZGVuY2U=,objectName YS9iLmJpbg==, empty"),
        );
        let pairs = metadata(&headers).unwrap();
        assert_eq!(
            pairs,
            [
                ("bucketName".into(), "evidence".into()),
                ("objectName".into(), "a/b.bin".into()),
                ("empty".into(), String::new())
            ]
        );
        headers.insert(UPLOAD_METADATA, HeaderValue::from_static("bucketName %%%"));
        assert!(metadata(&headers).is_err());
    }
}
