//! The local storage backend's REST surface, on Supabase Storage's paths and answer shapes so
//! that `@supabase/storage-js` (and ward's own `SupabaseStore`) work against it unmodified:
//!
//! | route | who |
//! | --- | --- |
//! | `POST /storage/v1/object/upload/sign/{bucket}/{path}` → `{url, token}` | service role |
//! | `PUT /storage/v1/object/upload/sign/{bucket}/{path}?token=` (raw body or multipart) → `{Key, Id}` | token |
//! | `POST /storage/v1/object/sign/{bucket}/{path}` `{expiresIn, transform?}` → `{signedURL}` | service role |
//! | `GET /storage/v1/object/sign/{bucket}/{path}?token=` (`Range`) | token |
//! | `GET /storage/v1/object/public/{bucket}/{path}` (`Range`) | anyone, public buckets only |
//! | `GET /storage/v1/object/info/{bucket}/{path}` | service role |
//! | `POST /storage/v1/object/{bucket}/{path}` (never upserts) → `{Key, Id}` | service role |
//! | `GET`, `DELETE /storage/v1/object/{bucket}/{path}` | service role |
//! | `DELETE /storage/v1/object/{bucket}` `{prefixes}` → deleted objects | service role |
//!
//! Resumable uploads (`/storage/v1/upload/resumable`) are in [`tus`], image transformation
//! (`/storage/v1/render/image`) in [`render`].
//!
//! Errors are Supabase's JSON (`{statusCode, error, message}`) with a matching HTTP status.
//! Upload bodies stream to disk under the bucket's size limit instead of the router's.
//!
//! One file for the object routes: they share the token checks, the error answers and the
//! streaming of bodies; resumable uploads (`tus.rs`) and renderings (`render.rs`) sit beside it.

use std::io::SeekFrom;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, header::AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::auth::{AuthError, Caller};
use crate::error::ApiError;
use crate::http::AppState;
use crate::storage::local::{StoredObject, TokenScope};
use crate::storage::{
    LocalStore, ObjectPath, ObjectStore, StorageError, Transform, UploadRules, sanitize_filename, validate_bucket,
};

mod render;
mod tus;

/// Supabase's lifetime of signed upload URLs, used when the request does not ask for another.
const DEFAULT_UPLOAD_URL_SECONDS: u64 = 2 * 3600;
/// The largest JSON request body the storage routes read.
const MAX_JSON_BODY: usize = 64 * 1024;
/// The largest non-file form field (`cacheControl`, `metadata`).
const MAX_FORM_FIELD: usize = 8 * 1024;
/// Multipart framing allowed on top of the file when checking a declared length.
const MULTIPART_SLACK: u64 = 64 * 1024;
/// What is read and discarded of a refused upload so that the client gets to read the
/// answer (clients such as undici report a reset, not the answer, when the server stops
/// reading) and the connection stays usable. Larger bodies are cut off with `Connection: close`.
const DRAIN_LIMIT: u64 = 2 * 1024 * 1024;
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Bytes read from disk at a time when serving an object.
const READ_CHUNK: usize = 256 * 1024;

/// The storage routes; merged by `http::router` only when the local backend is active.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/storage/v1/object/upload/sign/{bucket}/{*path}", post(sign_upload).put(upload_signed))
        .route("/storage/v1/object/sign/{bucket}/{*path}", post(sign_download).get(download_signed))
        .route("/storage/v1/object/public/{bucket}/{*path}", get(download_public))
        .route("/storage/v1/object/info/{bucket}/{*path}", get(info))
        .route("/storage/v1/object/{bucket}", delete(delete_many))
        .route("/storage/v1/object/{bucket}/{*path}", post(upload_service).get(download_service).delete(delete_one))
        .merge(tus::router())
        .merge(render::router())
        // Uploads stream to disk under each bucket's own limit (see LocalStore::put_stream);
        // JSON bodies are read with MAX_JSON_BODY.
        .layer(DefaultBodyLimit::disable())
}

/// An error in Supabase Storage's shape.
#[derive(Debug)]
pub struct StorageHttpError {
    status: StatusCode,
    error: &'static str,
    message: String,
    /// The request body was left unread: the connection cannot serve another request.
    close: bool,
}

impl StorageHttpError {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        StorageHttpError { status, error, message: message.into(), close: false }
    }
}

impl IntoResponse for StorageHttpError {
    fn into_response(self) -> Response {
        let body = json!({
            "statusCode": self.status.as_u16().to_string(),
            "error": self.error,
            "message": self.message,
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.close {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<StorageError> for StorageHttpError {
    fn from(e: StorageError) -> Self {
        use StatusCode as S;
        match e {
            StorageError::NotFound => Self::new(S::NOT_FOUND, "not_found", "Object not found"),
            StorageError::AlreadyExists => Self::new(S::CONFLICT, "Duplicate", "The resource already exists"),
            StorageError::TooLarge { .. } => Self::new(S::PAYLOAD_TOO_LARGE, "Payload too large", e.to_string()),
            StorageError::InvalidPath(_) => Self::new(S::BAD_REQUEST, "InvalidKey", e.to_string()),
            StorageError::InvalidInput(_) => Self::new(S::BAD_REQUEST, "invalid_request", e.to_string()),
            StorageError::InvalidToken(_) => Self::new(S::FORBIDDEN, "InvalidSignature", e.to_string()),
            StorageError::Expired => Self::new(S::FORBIDDEN, "ExpiredToken", e.to_string()),
            StorageError::Unavailable(_) => {
                let _ = ApiError::internal(&e);
                Self::new(S::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; try again")
            }
            StorageError::Other { .. } => {
                let _ = ApiError::internal(&e);
                Self::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl From<PathRejection> for StorageHttpError {
    fn from(_: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidKey", "the path is not valid")
    }
}

impl From<QueryRejection> for StorageHttpError {
    fn from(_: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", "the query string is not valid")
    }
}

type Result<T> = std::result::Result<T, StorageHttpError>;

#[derive(Debug, Default, Deserialize)]
struct TokenQuery {
    token: Option<String>,
    /// `?download` or `?download=name.ext`: serve as an attachment.
    download: Option<String>,
}

/// The local store and a parsed bucket and path.
fn target(
    state: &AppState,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<(Arc<LocalStore>, String, ObjectPath)> {
    let store = state
        .local_storage
        .clone()
        .ok_or_else(|| StorageHttpError::new(StatusCode::NOT_FOUND, "not_found", "local storage is not enabled"))?;
    let Path((bucket, path)) = path?;
    validate_bucket(&bucket)?;
    let path = ObjectPath::parse(&path)?;
    Ok((store, bucket, path))
}

/// Only the service role may call the management routes (a service-role JWT).
async fn require_service(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let unauthorized = |message: String| StorageHttpError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let authorization = match headers.get(AUTHORIZATION).map(|v| v.to_str()) {
        None => return Err(unauthorized("a service-role key is required".into())),
        Some(Ok(value)) => value,
        Some(Err(_)) => return Err(unauthorized(AuthError::MalformedHeader.to_string())),
    };
    match state.auth.authenticate(Some(authorization)).await {
        Ok(Caller::Service) => Ok(()),
        Ok(_) => Err(StorageHttpError::new(
            StatusCode::FORBIDDEN,
            "Unauthorized",
            "only the service role may use this route; clients use signed URLs",
        )),
        Err(e) => Err(unauthorized(e.to_string())),
    }
}

fn refuse_upsert(headers: &HeaderMap) -> Result<()> {
    let upsert = headers.get("x-upsert").and_then(|v| v.to_str().ok()).unwrap_or("false");
    if upsert.eq_ignore_ascii_case("true") {
        return Err(StorageHttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "ward never overwrites objects: upsert is not supported",
        ));
    }
    Ok(())
}

fn token_of(query: &TokenQuery) -> Result<&str> {
    query.token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| {
        StorageHttpError::new(StatusCode::BAD_REQUEST, "invalid_request", "the `token` query parameter is missing")
    })
}

/// A small JSON body (`{}` or absent allowed).
async fn json_body(body: Body) -> Result<Value> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY).await.map_err(|_| {
        StorageHttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large", "the JSON body is too large")
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes)
        .map_err(|_| StorageHttpError::new(StatusCode::BAD_REQUEST, "invalid_request", "the body is not JSON"))
}

fn expires_in(body: &Value, default: Option<u64>) -> Result<std::time::Duration> {
    let seconds = match &body["expiresIn"] {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 1.0).map(|f| f as u64)),
        Value::String(s) => s.parse().ok(),
        Value::Null => default,
        _ => None,
    };
    let seconds = seconds.ok_or_else(|| {
        StorageHttpError::new(StatusCode::BAD_REQUEST, "invalid_request", "`expiresIn` must be a number of seconds")
    })?;
    Ok(std::time::Duration::from_secs(seconds))
}

/// `POST /object/upload/sign/{bucket}/{path}` → `{ url, token }` (url relative to `/storage/v1`).
async fn sign_upload(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    require_service(&state, &headers).await?;
    refuse_upsert(&headers)?;
    let (store, bucket, path) = target(&state, path)?;
    let ttl = expires_in(&json_body(body).await?, Some(DEFAULT_UPLOAD_URL_SECONDS))?;
    let signed = store.create_signed_upload(&bucket, &path, ttl, &UploadRules::default()).await?;
    Ok(Json(json!({
        "url": format!("/object/upload/sign/{bucket}/{path}?token={}", signed.token),
        "token": signed.token,
    })))
}

/// `POST /object/sign/{bucket}/{path}` `{ expiresIn, transform? }` → `{ signedURL }` (a
/// `/render/image/sign/...` URL when a transformation is asked for, as on Supabase).
async fn sign_download(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    require_service(&state, &headers).await?;
    let (store, bucket, path) = target(&state, path)?;
    let body = json_body(body).await?;
    let ttl = expires_in(&body, None)?;
    let transform = match &body["transform"] {
        Value::Null => None,
        Value::Object(t) if t.is_empty() => None,
        t => Some(
            serde_json::from_value::<Transform>(t.clone())
                .map_err(|_| bad_form("`transform` holds width, height, resize, quality and format"))?
                .validate()?,
        ),
    };
    store.object(&bucket, &path).await?.ok_or(StorageError::NotFound)?;
    let relative = store.sign_download_url(&bucket, &path, ttl, transform, true)?;
    Ok(Json(json!({ "signedURL": relative })))
}

/// `PUT /object/upload/sign/{bucket}/{path}?token=`: the client's upload.
async fn upload_signed(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    query: std::result::Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
    request: Request,
) -> Result<Json<Value>> {
    let checked = (|| {
        let (store, bucket, path) = target(&state, path)?;
        let Query(query) = query?;
        let verified = store.verify_token(token_of(&query)?, TokenScope::Upload, &bucket, &path)?;
        refuse_upsert(&headers)?;
        Ok((store, bucket, path, verified.grant.rules))
    })();
    let (store, bucket, path, rules) = match checked {
        Ok(checked) => checked,
        Err(error) => return Err(refuse(request, error).await),
    };
    let object = ingest(&store, &bucket, &path, &rules, &headers, request).await?;
    Ok(Json(json!({ "Key": format!("{}/{}", object.bucket, object.name), "Id": object.id })))
}

/// `POST /object/{bucket}/{path}`: a server-side upload; never replaces an object.
async fn upload_service(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    request: Request,
) -> Result<Json<Value>> {
    let checked = require_service(&state, &headers)
        .await
        .and_then(|()| refuse_upsert(&headers))
        .and_then(|()| target(&state, path));
    let (store, bucket, path) = match checked {
        Ok(checked) => checked,
        Err(error) => return Err(refuse(request, error).await),
    };
    let object = ingest(&store, &bucket, &path, &UploadRules::default(), &headers, request).await?;
    Ok(Json(json!({ "Key": format!("{}/{}", object.bucket, object.name), "Id": object.id })))
}

/// Streams a raw or multipart upload body into the store, within `rules` (a token's).
async fn ingest(
    store: &LocalStore,
    bucket: &str,
    path: &ObjectPath,
    rules: &UploadRules,
    headers: &HeaderMap,
    request: Request,
) -> Result<StoredObject> {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let declared = header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let content_type = header(header::CONTENT_TYPE).unwrap_or("application/octet-stream");
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        let cache_control = header(header::CACHE_CONTROL);
        let mut body = request.into_body().into_data_stream();
        let stored = store.put_stream(bucket, path, content_type, cache_control, declared, rules, &mut body).await;
        return match stored {
            Ok(object) => Ok(object),
            Err(e) => {
                let drained = !matches!(e, StorageError::TooLarge { .. }) && drain(&mut body).await;
                Err(StorageHttpError { close: !drained, ..e.into() })
            }
        };
    }
    // The form @supabase/storage-js sends: `cacheControl`, maybe `metadata`, then the file
    // (a field named "" with a file name). The first file field is the object.
    let mut form =
        Multipart::from_request(request, &()).await.map_err(|_| bad_form("the multipart body is not valid"))?;
    let mut cache_control: Option<String> = None;
    while let Some(mut field) = form.next_field().await.map_err(|_| bad_form("the multipart body is not valid"))? {
        let name = field.name().unwrap_or_default().to_string();
        if field.file_name().is_some() || name.is_empty() || name == "file" {
            let content_type = field.content_type().unwrap_or("application/octet-stream").to_string();
            let declared = declared.map(|len| len.saturating_sub(MULTIPART_SLACK));
            let mut chunks = Box::pin(futures_util::stream::unfold(field, |mut field| async move {
                field.chunk().await.transpose().map(|chunk| (chunk, field))
            }));
            let stored = store
                .put_stream(bucket, path, &content_type, cache_control.as_deref(), declared, rules, &mut chunks)
                .await;
            return match stored {
                Ok(object) => Ok(object),
                Err(e) => {
                    let drained = !matches!(e, StorageError::TooLarge { .. }) && drain(&mut chunks).await && {
                        drop(chunks);
                        drain_form(&mut form).await
                    };
                    Err(StorageHttpError { close: !drained, ..e.into() })
                }
            };
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|_| bad_form("the multipart body is not valid"))? {
            value.extend_from_slice(&chunk);
            if value.len() > MAX_FORM_FIELD {
                return Err(bad_form("a form field is too large"));
            }
        }
        if name == "cacheControl" {
            let seconds = String::from_utf8_lossy(&value).trim().to_string();
            if !seconds.is_empty() && seconds.bytes().all(|b| b.is_ascii_digit()) {
                cache_control = Some(format!("max-age={seconds}"));
            }
        }
    }
    Err(bad_form("the form has no file"))
}

/// Answers a refused upload after reading what is left of its body (bounded).
async fn refuse(request: Request, error: StorageHttpError) -> StorageHttpError {
    let mut body = request.into_body().into_data_stream();
    let drained = drain(&mut body).await;
    StorageHttpError { close: error.close || !drained, ..error }
}

/// Reads and discards a body stream up to [`DRAIN_LIMIT`] and [`DRAIN_TIMEOUT`]; whether it ended.
async fn drain<S, E>(stream: &mut S) -> bool
where
    S: futures_util::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin,
{
    use futures_util::StreamExt;
    let read_all = async {
        let mut seen: u64 = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => seen += chunk.len() as u64,
                Err(_) => return false,
            }
            if seen > DRAIN_LIMIT {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIMEOUT, read_all).await.unwrap_or(false)
}

/// Reads and discards the remaining fields of a refused multipart upload (bounded).
async fn drain_form(form: &mut Multipart) -> bool {
    let read_all = async {
        let mut seen: u64 = 0;
        loop {
            match form.next_field().await {
                Ok(Some(mut field)) => loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => seen += chunk.len() as u64,
                        Ok(None) => break,
                        Err(_) => return false,
                    }
                    if seen > DRAIN_LIMIT {
                        return false;
                    }
                },
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    };
    tokio::time::timeout(DRAIN_TIMEOUT, read_all).await.unwrap_or(false)
}

fn bad_form(message: &str) -> StorageHttpError {
    StorageHttpError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// `GET /object/sign/{bucket}/{path}?token=`.
async fn download_signed(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    query: std::result::Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (store, bucket, path) = target(&state, path)?;
    let Query(query) = query?;
    let verified = store.verify_token(token_of(&query)?, TokenScope::Download, &bucket, &path)?;
    // A link to a rendering never reads the original.
    if verified.grant.transform.is_some() {
        return Err(StorageError::InvalidToken("this link is for a rendering of the image".into()).into());
    }
    // P-GBV-READ: a link handed out before its ticket was flagged sensitive stops working.
    if store.withheld(&bucket, &path, verified.signed_at).await? {
        return Err(StorageError::NotFound.into());
    }
    serve(&store, &bucket, &path, &headers, query.download.as_deref()).await
}

/// `GET /object/public/{bucket}/{path}`: public buckets only; a private bucket's objects
/// are "not found" here, as on Supabase.
async fn download_public(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    query: std::result::Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (store, bucket, path) = target(&state, path)?;
    let Query(query) = query?;
    if !store.bucket(&bucket).await?.public {
        return Err(StorageError::NotFound.into());
    }
    serve(&store, &bucket, &path, &headers, query.download.as_deref()).await
}

/// `GET /object/{bucket}/{path}` with the service role.
async fn download_service(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    query: std::result::Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    require_service(&state, &headers).await?;
    let (store, bucket, path) = target(&state, path)?;
    let Query(query) = query?;
    serve(&store, &bucket, &path, &headers, query.download.as_deref()).await
}

/// `GET /object/info/{bucket}/{path}` with the service role.
async fn info(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    require_service(&state, &headers).await?;
    let (store, bucket, path) = target(&state, path)?;
    let object = store.object(&bucket, &path).await?.ok_or(StorageError::NotFound)?;
    Ok(Json(object_json(&object)))
}

fn object_json(o: &StoredObject) -> Value {
    json!({
        "id": o.id,
        "name": o.name,
        "bucket_id": o.bucket,
        "version": Value::Null,
        "size": o.size,
        "content_type": o.content_type,
        "cache_control": o.cache_control,
        "etag": etag(o),
        "created_at": o.created_at,
        "updated_at": o.updated_at,
        "last_modified": o.updated_at,
        "metadata": { "size": o.size, "mimetype": o.content_type, "cacheControl": o.cache_control },
    })
}

/// Objects never change in place, so their id is a strong validator.
fn etag(o: &StoredObject) -> String {
    format!("\"{}\"", o.id.simple())
}

/// `DELETE /object/{bucket}/{path}` with the service role.
async fn delete_one(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    require_service(&state, &headers).await?;
    let (store, bucket, path) = target(&state, path)?;
    store.remove(&bucket, &path).await?;
    Ok(Json(json!({ "message": "Successfully deleted" })))
}

/// `DELETE /object/{bucket}` `{ "prefixes": [...] }` (storage-js `remove`): the objects deleted.
async fn delete_many(
    State(state): State<AppState>,
    bucket: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    require_service(&state, &headers).await?;
    let Path(bucket) = bucket?;
    validate_bucket(&bucket)?;
    let store = state
        .local_storage
        .clone()
        .ok_or_else(|| StorageHttpError::new(StatusCode::NOT_FOUND, "not_found", "local storage is not enabled"))?;
    let body = json_body(body).await?;
    let prefixes = body["prefixes"]
        .as_array()
        .filter(|p| !p.is_empty() && p.len() <= 1000)
        .ok_or_else(|| bad_form("`prefixes` must list 1 to 1000 object paths"))?;
    let mut deleted = Vec::new();
    for prefix in prefixes {
        let path = ObjectPath::parse(prefix.as_str().unwrap_or_default())?;
        match store.remove(&bucket, &path).await {
            Ok(object) => deleted.push(object_json(&object)),
            Err(StorageError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(Value::Array(deleted)))
}

/// A single `bytes=` range, resolved against `len`: `Ok(None)` serves the whole object (no
/// header, or one this server does not honour, such as several ranges), `Err(())` is
/// unsatisfiable.
fn parse_range(header: Option<&str>, len: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else { return Ok(None) };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.is_empty(), end.is_empty()) {
        (true, true) => return Ok(None),
        (true, false) => {
            let Ok(suffix) = end.parse::<u64>() else { return Ok(None) };
            if suffix == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(suffix), len - 1)
        }
        (false, _) => {
            let Ok(first) = start.parse::<u64>() else { return Ok(None) };
            let last = if end.is_empty() {
                len.saturating_sub(1)
            } else {
                match end.parse::<u64>() {
                    Ok(last) if last >= first => last.min(len.saturating_sub(1)),
                    _ => return Ok(None),
                }
            };
            if first >= len {
                return Err(());
            }
            (first, last)
        }
    };
    Ok(Some(range))
}

/// Streams an object (or one range of it) from disk.
async fn serve(
    store: &LocalStore,
    bucket: &str,
    path: &ObjectPath,
    headers: &HeaderMap,
    download: Option<&str>,
) -> Result<Response> {
    let in_s3 = if store.s3_backed() { store.object(bucket, path).await? } else { None };
    if let Some(object) = in_s3 {
        // Checked here; the bytes come from S3 through a presigned URL that lives briefly.
        let name = download.map(|d| sanitize_filename(d).unwrap_or_else(|_| path.file_name().to_string()));
        let url = store.redirect(&object, path, name.as_deref()).await?.ok_or(StorageError::NotFound)?;
        return Ok(axum::response::Redirect::temporary(&url).into_response());
    }
    let (object, mut file, len) = store.open(bucket, path).await?;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = match parse_range(range_header, len) {
        Ok(range) => range,
        Err(()) => {
            let mut response = StorageHttpError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "the requested range is not satisfiable",
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let (status, start, count) = match range {
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        None => (StatusCode::OK, 0, len),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.map_err(|e| StorageError::other("seeking in an object", e))?;
    }
    // Large reads: tokio runs each file read as a blocking task, and 4 KiB (the default)
    // made a 4 MiB download take 76 ms.
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(count), READ_CHUNK));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            h.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, object.content_type.clone());
    set(header::CONTENT_LENGTH, count.to_string());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::ETAG, etag(&object));
    set(header::CACHE_CONTROL, object.cache_control.clone().unwrap_or_else(|| "no-cache".into()));
    // User content: never sniffed into something executable, never scripted.
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff".into());
    set(header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox".into());
    if let Some((first, last)) = range {
        set(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"));
    }
    if let Some(requested) = download {
        let name = sanitize_filename(requested).unwrap_or_else(|_| path.file_name().to_string());
        set(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=-0"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=4-2"), 10), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Err(()));
    }
}
