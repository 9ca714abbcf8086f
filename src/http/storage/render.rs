//! Image transformation on Supabase Storage's paths, served by the local backend:
//!
//! | route | who |
//! | --- | --- |
//! | `GET /storage/v1/render/image/sign/{bucket}/{path}?token=` | a download token that names the rendering (its query parameters are ignored) |
//! | `GET /storage/v1/render/image/authenticated/{bucket}/{path}?width=&height=&resize=&quality=&format=` | service role |
//! | `GET /storage/v1/render/image/public/{bucket}/{path}?…` | anyone, public buckets only |
//!
//! A rendering token never reads the original (`/object/sign` refuses it), and signed links to
//! files of sensitive tickets stop working when the ticket is flagged, as for originals
//! (P-GBV-LINK).

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{Result, TokenQuery, bad_form, require_service, target, token_of};
use crate::http::AppState;
use crate::storage::local::{StoredObject, TokenScope};
use crate::storage::{StorageError, Transform};

/// The render routes; part of the local storage router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/storage/v1/render/image/sign/{bucket}/{*path}", get(render_signed))
        .route("/storage/v1/render/image/authenticated/{bucket}/{*path}", get(render_service))
        .route("/storage/v1/render/image/public/{bucket}/{*path}", get(render_public))
}

/// The transformation of a render URL's query string.
fn transform_of(query: Option<&str>) -> Result<Transform> {
    let pairs: Vec<(String, String)> = query
        .map(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Transform::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?)
}

async fn render_signed(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    query: std::result::Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Response> {
    let (store, bucket, path) = target(&state, path)?;
    let Query(query) = query?;
    let verified = store.verify_token(token_of(&query)?, TokenScope::Download, &bucket, &path)?;
    let transform =
        verified.grant.transform.ok_or_else(|| bad_form("this link is not for a rendering; use /object/sign"))?;
    // P-GBV-READ: a link handed out before its ticket was flagged sensitive stops working.
    if store.withheld(&bucket, &path, verified.signed_at).await? {
        return Err(StorageError::NotFound.into());
    }
    let (bytes, content_type, object) = store.render(&bucket, &path, &transform).await?;
    Ok(respond(bytes, content_type, &object, &transform))
}

async fn render_service(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require_service(&state, &headers).await?;
    let (store, bucket, path) = target(&state, path)?;
    let transform = transform_of(query.as_deref())?;
    let (bytes, content_type, object) = store.render(&bucket, &path, &transform).await?;
    Ok(respond(bytes, content_type, &object, &transform))
}

async fn render_public(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let (store, bucket, path) = target(&state, path)?;
    if !store.bucket(&bucket).await?.public {
        return Err(StorageError::NotFound.into());
    }
    let transform = transform_of(query.as_deref())?;
    let (bytes, content_type, object) = store.render(&bucket, &path, &transform).await?;
    Ok(respond(bytes, content_type, &object, &transform))
}

fn respond(bytes: Bytes, content_type: &'static str, object: &StoredObject, transform: &Transform) -> Response {
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let variant: String =
        Sha256::digest(transform.query().as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}-{variant}\"", object.id.simple())) {
        h.insert(header::ETAG, etag);
    }
    let cache = object.cache_control.clone().unwrap_or_else(|| "no-cache".into());
    if let Ok(cache) = HeaderValue::from_str(&cache) {
        h.insert(header::CACHE_CONTROL, cache);
    }
    if let Ok(applied) = HeaderValue::from_str(&transform.query()) {
        h.insert("x-transformations", applied);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    response
}
