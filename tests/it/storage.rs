//! Object storage: the local backend over real HTTP (signed upload and download URLs, raw and
//! multipart bodies, ranges, public buckets, tokens that expire and bind one object and scope,
//! no overwrites, size caps, bad paths), and `SupabaseStore` pointed at ward's own REST paths.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ward::config::Secret;
use ward::storage::local::derive_token_key;
use ward::storage::{LocalStore, ObjectPath, ObjectStore, StorageError, SupabaseStore, UploadRules};

use crate::helpers::{JWT_SECRET, TestApp, scratch_dir, spawn_app};

const MINUTE: Duration = Duration::from_secs(60);

fn path(p: &str) -> ObjectPath {
    ObjectPath::parse(p).unwrap()
}

/// The spawned server's storage root (its `WARD_DATA_DIR` is the scratch dir of its database).
pub(crate) fn storage_root(app: &TestApp) -> std::path::PathBuf {
    scratch_dir(&app.db.name).join("storage")
}

/// A `LocalStore` on the same folder, database and key as the spawned server: what the
/// server's own `AppState.storage` is.
pub(crate) async fn local_store(app: &TestApp) -> LocalStore {
    LocalStore::new(
        storage_root(app),
        app.db.app_pool().await,
        derive_token_key(&Secret::new(JWT_SECRET)),
        &format!("http://{}", app.addr),
    )
    .unwrap()
}

/// A service-role key signed with the test JWT secret.
fn service_key(app: &TestApp) -> String {
    let now = chrono::Utc::now().timestamp();
    app.issuer.sign(&json!({"role": "service_role", "iss": "supabase", "iat": now, "exp": now + 600})).unwrap()
}

fn base(app: &TestApp) -> String {
    format!("http://{}/storage/v1", app.addr)
}

/// The body @supabase/storage-js sends for a Blob: `cacheControl`, then the file in a field
/// named "".
fn storage_js_form(boundary: &str, content_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"cacheControl\"\r\n\r\n3600\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"\"; filename=\"blob\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

async fn put(app: &TestApp, url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let response = app
        .http
        .put(url)
        .header("content-type", content_type)
        .header("x-upsert", "false")
        .header("cache-control", "max-age=3600")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_bytes(app: &TestApp, url: &str) -> (StatusCode, reqwest::header::HeaderMap, Bytes) {
    let response = app.http.get(url).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap())
}

/// A request written by hand, so that no client normalises `..` away; returns the status.
async fn raw_status(app: &TestApp, method: &str, target: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!("{method} {target} HTTP/1.1\r\nHost: ward\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Files under the storage root (the temporary folder included).
fn files_on_disk(app: &TestApp) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() { walk(&p, out) } else { out.push(p) }
        }
    }
    let mut out = Vec::new();
    walk(&storage_root(app), &mut out);
    out
}

#[tokio::test]
async fn a_signed_upload_then_a_signed_download_round_trips_a_raw_body() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    let p = path("m1/f1/report 2024.pdf");
    let signed = store.create_signed_upload("evidence", &p, MINUTE, &UploadRules::default()).await.unwrap();
    assert!(signed.url.starts_with(&format!(
        "http://{}/storage/v1/object/upload/sign/evidence/m1/f1/report%202024.pdf?token=",
        app.addr
    )));
    assert!(signed.url.ends_with(&signed.token));
    assert!(signed.expires_at > chrono::Utc::now());

    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let (status, body) = put(&app, &signed.url, "application/pdf", bytes.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Key"], "evidence/m1/f1/report 2024.pdf");

    let info = store.info("evidence", &p).await.unwrap().unwrap();
    assert_eq!(info.size, 70_000);
    assert_eq!(info.content_type, "application/pdf");
    assert!(info.created_at.is_some());

    let url = store.create_signed_download("evidence", &p, MINUTE, None).await.unwrap();
    let (status, headers, got) = get_bytes(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["content-length"], "70000");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(&got[..], &bytes[..]);

    // The row is Supabase-shaped.
    let owner = app.db.owner().await;
    let row = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select metadata from storage.objects where bucket_id = 'evidence' and name = 'm1/f1/report 2024.pdf'",
        ))
        .await
        .unwrap()
        .unwrap();
    let metadata: Value = row.try_get("", "metadata").unwrap();
    assert_eq!(metadata["mimetype"], "application/pdf");
    assert_eq!(metadata["size"], 70_000);
    assert_eq!(store.download("evidence", &p, 1_000_000).await.unwrap(), Bytes::from(bytes));
}

#[tokio::test]
async fn a_multipart_upload_as_storage_js_sends_it_round_trips() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    let p = path("p1/ph1/face.png");
    let signed = store.create_signed_upload("user-photos", &p, MINUTE, &UploadRules::default()).await.unwrap();
    let png = b"\x89PNG\r\n\x1a\n not really a png, but bytes".to_vec();
    let boundary = "----wardtestboundary";
    let (status, body) = put(
        &app,
        &signed.url,
        &format!("multipart/form-data; boundary={boundary}"),
        storage_js_form(boundary, "image/png", &png),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Key"], "user-photos/p1/ph1/face.png");

    let info = store.info("user-photos", &p).await.unwrap().unwrap();
    assert_eq!((info.size, info.content_type.as_str()), (png.len() as u64, "image/png"));
    let url = store.create_signed_download("user-photos", &p, MINUTE, None).await.unwrap();
    let (status, headers, got) = get_bytes(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["cache-control"], "max-age=3600");
    assert_eq!(&got[..], &png[..]);
}

#[tokio::test]
async fn range_requests_return_the_requested_bytes() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    let p = path("m/f/numbers.bin");
    let bytes: Vec<u8> = (0..100u8).collect();
    store.upload("documents", &p, "application/octet-stream", Bytes::from(bytes.clone())).await.unwrap();
    let url = store.create_signed_download("documents", &p, MINUTE, None).await.unwrap();

    let ranged = |range: &'static str| {
        let request = app.http.get(&url).header("range", range);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let content_range = response.headers().get("content-range").map(|v| v.to_str().unwrap().to_string());
            (status, content_range, response.bytes().await.unwrap())
        }
    };
    let (status, content_range, body) = ranged("bytes=10-19").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(content_range.as_deref(), Some("bytes 10-19/100"));
    assert_eq!(&body[..], &bytes[10..20]);
    let (status, content_range, body) = ranged("bytes=-5").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(content_range.as_deref(), Some("bytes 95-99/100"));
    assert_eq!(&body[..], &bytes[95..]);
    let (status, _, body) = ranged("bytes=90-").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&body[..], &bytes[90..]);
    let (status, content_range, _) = ranged("bytes=100-").await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(content_range.as_deref(), Some("bytes */100"));
}

#[tokio::test]
async fn public_buckets_are_readable_without_a_token_and_private_ones_are_not() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    let p = path("p1/ph1/thumb.png");
    store.upload("user-photos-thumbnails", &p, "image/png", Bytes::from_static(b"thumb")).await.unwrap();
    store.upload("user-photos", &p, "image/png", Bytes::from_static(b"private")).await.unwrap();

    let public = store.public_url("user-photos-thumbnails", &p);
    assert_eq!(public, format!("{}/object/public/user-photos-thumbnails/p1/ph1/thumb.png", base(&app)));
    let (status, _, got) = get_bytes(&app, &public).await;
    assert_eq!((status, &got[..]), (StatusCode::OK, &b"thumb"[..]));

    let (status, _, got) = get_bytes(&app, &store.public_url("user-photos", &p)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&got).contains("private"));
    let signed_path = format!("{}/object/sign/user-photos/p1/ph1/thumb.png", base(&app));
    let (status, _, _) = get_bytes(&app, &signed_path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no token");
    let (status, _, got) = get_bytes(&app, &format!("{signed_path}?token=not.a.token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let error: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(error["statusCode"], "403");
    assert!(error["message"].as_str().unwrap().contains("token"), "{error}");
    // The service role reads private objects directly.
    let response = app
        .http
        .get(format!("{}/object/user-photos/p1/ph1/thumb.png", base(&app)))
        .bearer_auth(service_key(&app))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&response.bytes().await.unwrap()[..], b"private");
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    let stored = path("m/f/old.txt");
    store.upload("documents", &stored, "text/plain", Bytes::from_static(b"old")).await.unwrap();
    let download = store.create_signed_download("documents", &stored, Duration::from_secs(1), None).await.unwrap();
    let p = path("m/f/late.txt");
    let upload =
        store.create_signed_upload("documents", &p, Duration::from_secs(1), &UploadRules::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let (status, body) = put(&app, &upload.url, "text/plain", "too late").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "ExpiredToken");
    assert_eq!(store.info("documents", &p).await.unwrap(), None);
    let (status, _, got) = get_bytes(&app, &download).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!got.starts_with(b"old"));
    assert!(matches!(
        store.create_signed_upload("documents", &p, Duration::ZERO, &UploadRules::default()).await,
        Err(StorageError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn tokens_for_another_path_bucket_or_scope_are_refused() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    let a = path("m/f/a.txt");
    let signed = store.create_signed_upload("documents", &a, MINUTE, &UploadRules::default()).await.unwrap();
    let token = &signed.token;
    let b = base(&app);
    for url in [
        format!("{b}/object/upload/sign/documents/m/f/b.txt?token={token}"),
        format!("{b}/object/upload/sign/evidence/m/f/a.txt?token={token}"),
        format!("{b}/object/upload/sign/documents/m/f/a.txt/more?token={token}"),
    ] {
        let (status, body) = put(&app, &url, "text/plain", "sneaky").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}: {body}");
        assert_eq!(body["message"], "invalid token: the token is for another object");
    }
    // An upload token does not download, a download token does not upload.
    store.upload("documents", &path("m/f/c.txt"), "text/plain", Bytes::from_static(b"c")).await.unwrap();
    let c_upload_token = store
        .sign_token(
            ward::storage::local::TokenScope::Upload,
            "documents",
            &path("m/f/c.txt"),
            MINUTE,
            &Default::default(),
        )
        .unwrap()
        .0;
    let (status, _, _) = get_bytes(&app, &format!("{b}/object/sign/documents/m/f/c.txt?token={c_upload_token}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let download = store.create_signed_download("documents", &path("m/f/c.txt"), MINUTE, None).await.unwrap();
    let download_token = download.split("token=").nth(1).unwrap();
    let (status, body) =
        put(&app, &format!("{b}/object/upload/sign/documents/m/f/a.txt?token={download_token}"), "text/plain", "x")
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["message"], "invalid token: the token does not allow uploads");
    // A token signed with another key (e.g. a user's access token) is not a storage token.
    let user_token = app.token("citizen@demo.test");
    let (status, _) =
        put(&app, &format!("{b}/object/upload/sign/documents/m/f/a.txt?token={user_token}"), "text/plain", "x").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(store.info("documents", &a).await.unwrap(), None);
    assert_eq!(store.info("evidence", &a).await.unwrap(), None);
}

#[tokio::test]
async fn an_upload_token_cannot_be_reused_to_overwrite() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    let p = path("m/f/once.txt");
    let signed = store.create_signed_upload("documents", &p, MINUTE, &UploadRules::default()).await.unwrap();
    let (status, _) = put(&app, &signed.url, "text/plain", "original").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = put(&app, &signed.url, "text/plain", "replacement").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body, json!({"statusCode": "409", "error": "Duplicate", "message": "The resource already exists"}));
    let boundary = "b0undary";
    let (status, _) = put(
        &app,
        &signed.url,
        &format!("multipart/form-data; boundary={boundary}"),
        storage_js_form(boundary, "text/plain", b"replacement"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Nor does anything else replace it.
    assert!(matches!(
        store.upload("documents", &p, "text/plain", Bytes::from_static(b"server")).await,
        Err(StorageError::AlreadyExists)
    ));
    assert!(matches!(
        store.create_signed_upload("documents", &p, MINUTE, &UploadRules::default()).await,
        Err(StorageError::AlreadyExists)
    ));
    let response = app
        .http
        .post(format!("{}/object/documents/m/f/once.txt", base(&app)))
        .bearer_auth(service_key(&app))
        .header("x-upsert", "true")
        .body("upserted")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(store.download("documents", &p, 100).await.unwrap(), Bytes::from_static(b"original"));
    let tmp: Vec<_> = files_on_disk(&app).into_iter().filter(|f| f.to_string_lossy().contains("/.tmp/")).collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

/// Sends an oversize body; the server may answer 413 before it has read it all, and may
/// close the connection while the client still writes: then the client sees a reset.
async fn oversize_status(request: reqwest::RequestBuilder) -> Option<StatusCode> {
    match request.send().await {
        Ok(response) => Some(response.status()),
        Err(e) => {
            assert!(!e.is_timeout(), "{e}");
            None
        }
    }
}

#[tokio::test]
async fn oversize_bodies_are_refused_and_leave_nothing_behind() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    // user-photos-thumbnails allows 1 MiB.
    let limit = 1024 * 1024;
    let p = path("p/t/big.png");

    // Declared too large (Content-Length).
    let signed =
        store.create_signed_upload("user-photos-thumbnails", &p, MINUTE, &UploadRules::default()).await.unwrap();
    let status =
        oversize_status(app.http.put(&signed.url).header("content-type", "image/png").body(vec![7u8; limit + 1])).await;
    assert!(matches!(status, None | Some(StatusCode::PAYLOAD_TOO_LARGE)), "{status:?}");

    // Actually too large, streamed without a declared length.
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..24).map(|_| Ok(Bytes::from(vec![9u8; 64 * 1024]))).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let status = oversize_status(app.http.put(&signed.url).header("content-type", "image/png").body(body)).await;
    assert!(matches!(status, None | Some(StatusCode::PAYLOAD_TOO_LARGE)), "{status:?}");

    // Multipart, too large.
    let boundary = "bigboundary";
    let form = storage_js_form(boundary, "image/png", &vec![1u8; limit + 10]);
    let status = oversize_status(
        app.http
            .put(&signed.url)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(form),
    )
    .await;
    assert!(matches!(status, None | Some(StatusCode::PAYLOAD_TOO_LARGE)), "{status:?}");

    // Server side.
    assert!(matches!(
        store.upload("user-photos-thumbnails", &p, "image/png", Bytes::from(vec![0u8; limit + 1])).await,
        Err(StorageError::TooLarge { limit: Some(l) }) if l == limit as u64
    ));

    // Nothing was stored, nothing is left on disk, and the token still works within the limit.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.info("user-photos-thumbnails", &p).await.unwrap(), None);
    assert_eq!(files_on_disk(&app), Vec::<std::path::PathBuf>::new());
    let (status, body) = put(&app, &signed.url, "image/png", vec![5u8; limit]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A bucket's allowed content types hold too.
    let q = path("p/t/notes.txt");
    let signed =
        store.create_signed_upload("user-photos-thumbnails", &q, MINUTE, &UploadRules::default()).await.unwrap();
    let (status, body) = put(&app, &signed.url, "text/plain", "hello").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn traversal_control_characters_and_long_names_are_refused() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    store.upload("documents", &path("m/f/ok.txt"), "text/plain", Bytes::from_static(b"ok")).await.unwrap();
    let long = "a".repeat(300);
    for target in [
        "/storage/v1/object/public/user-photos-thumbnails/../../../etc/passwd".to_string(),
        "/storage/v1/object/public/user-photos-thumbnails/a/%2e%2e/%2e%2e/secrets.json".to_string(),
        "/storage/v1/object/sign/documents/m/f/..?token=x".to_string(),
        "/storage/v1/object/sign/documents/m/f/./ok.txt?token=x".to_string(),
        "/storage/v1/object/sign/documents/m//f/ok.txt?token=x".to_string(),
        "/storage/v1/object/sign/documents/m/f/ok%00.txt?token=x".to_string(),
        "/storage/v1/object/sign/documents/m/f/ok%0A.txt?token=x".to_string(),
        "/storage/v1/object/sign/documents/m%5Cf/ok.txt?token=x".to_string(),
        format!("/storage/v1/object/sign/documents/m/f/{long}?token=x"),
        "/storage/v1/object/sign/..%2f..%2fsecrets/x?token=x".to_string(),
    ] {
        let status = raw_status(&app, "GET", &target).await;
        assert_eq!(status, 400, "{target}");
    }
    let status = raw_status(&app, "PUT", "/storage/v1/object/upload/sign/documents/m/../../../x?token=x").await;
    assert_eq!(status, 400);
    // Nothing outside the storage root was reachable, and nothing was created.
    assert_eq!(files_on_disk(&app).len(), 1);
}

#[tokio::test]
async fn info_and_delete() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    let p = path("m/f/gone.txt");
    store.upload("evidence", &p, "text/plain", Bytes::from_static(b"bye")).await.unwrap();
    let download = store.create_signed_download("evidence", &p, MINUTE, None).await.unwrap();

    let info_url = format!("{}/object/info/evidence/m/f/gone.txt", base(&app));
    let response = app.http.get(&info_url).bearer_auth(service_key(&app)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value = response.json().await.unwrap();
    assert_eq!((info["size"].clone(), info["content_type"].clone()), (json!(3), json!("text/plain")));
    assert_eq!(info["metadata"]["mimetype"], "text/plain");

    // Only the service role manages objects.
    let delete_url = format!("{}/object/evidence/m/f/gone.txt", base(&app));
    let response = app.http.delete(&delete_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app.http.delete(&delete_url).bearer_auth(app.token("admin@demo.test")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.http.delete(&delete_url).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app.http.get(&info_url).bearer_auth(app.token("admin@demo.test")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(store.info("evidence", &p).await.unwrap().is_some());

    let response = app.http.delete(&delete_url).bearer_auth(service_key(&app)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(store.info("evidence", &p).await.unwrap(), None);
    assert!(files_on_disk(&app).is_empty());
    assert!(!storage_root(&app).join("evidence/m").exists(), "empty folders are pruned");
    let (status, _, _) = get_bytes(&app, &download).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(matches!(store.delete("evidence", &p).await, Err(StorageError::NotFound)));
    let response = app.http.get(&info_url).bearer_auth(service_key(&app)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // storage-js `remove([...])`: the deleted objects, missing ones skipped.
    store.upload("evidence", &path("m/x/1.txt"), "text/plain", Bytes::from_static(b"1")).await.unwrap();
    let response = app
        .http
        .delete(format!("{}/object/evidence", base(&app)))
        .bearer_auth(service_key(&app))
        .json(&json!({"prefixes": ["m/x/1.txt", "m/x/missing.txt"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deleted: Value = response.json().await.unwrap();
    assert_eq!(deleted.as_array().unwrap().len(), 1);
    assert_eq!(deleted[0]["name"], "m/x/1.txt");
    // A missing bucket is "not found", never an error with internals.
    assert!(matches!(
        store.create_signed_upload("nope", &p, MINUTE, &UploadRules::default()).await,
        Err(StorageError::NotFound)
    ));
}

#[tokio::test]
async fn the_service_routes_need_the_service_role() {
    let app = spawn_app().await;
    let url = format!("{}/object/upload/sign/documents/m/f/x.txt", base(&app));
    let response = app.http.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["statusCode"], "401");
    let response =
        app.http.post(&url).bearer_auth(app.token("manager@demo.test")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.http.post(&url).bearer_auth(service_key(&app)).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let signed: Value = response.json().await.unwrap();
    let token = signed["token"].as_str().unwrap();
    assert_eq!(signed["url"], format!("/object/upload/sign/documents/m/f/x.txt?token={token}"));
    let response = app
        .http
        .post(format!("{}/object/sign/documents/m/f/x.txt", base(&app)))
        .bearer_auth(service_key(&app))
        .json(&json!({"expiresIn": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "no object yet");
}

#[tokio::test]
async fn the_supabase_backend_works_against_wards_own_rest_paths() {
    let app = spawn_app().await;
    let store = SupabaseStore::new(&format!("http://{}", app.addr), Secret::new(service_key(&app))).unwrap();
    let p = path("m1/file-1/scan (1).pdf");
    assert_eq!(store.info("evidence", &p).await.unwrap(), None);

    let signed = store.create_signed_upload("evidence", &p, MINUTE, &UploadRules::default()).await.unwrap();
    assert!(
        signed.url.starts_with(&format!("{}/object/upload/sign/evidence/m1/file-1/scan%20(1).pdf?token=", base(&app)))
    );
    assert!(signed.expires_at > chrono::Utc::now() + chrono::Duration::minutes(100), "Supabase's two hours");
    let bytes = Bytes::from_static(b"%PDF-1.7 scanned evidence");
    let (status, body) = put(&app, &signed.url, "application/pdf", bytes.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let info = store.info("evidence", &p).await.unwrap().unwrap();
    assert_eq!((info.size, info.content_type.as_str()), (bytes.len() as u64, "application/pdf"));
    assert!(info.created_at.is_some());
    assert_eq!(store.download("evidence", &p, 1024).await.unwrap(), bytes);
    assert!(matches!(store.download("evidence", &p, 4).await, Err(StorageError::TooLarge { .. })));
    let url = store.create_signed_download("evidence", &p, MINUTE, None).await.unwrap();
    let (status, _, got) = get_bytes(&app, &url).await;
    assert_eq!((status, got), (StatusCode::OK, bytes.clone()));

    // Server-side uploads never overwrite.
    let q = path("m1/file-2/thumb.png");
    store.upload("user-photos-thumbnails", &q, "image/png", Bytes::from_static(b"png")).await.unwrap();
    assert!(matches!(
        store.upload("user-photos-thumbnails", &q, "image/png", Bytes::from_static(b"other")).await,
        Err(StorageError::AlreadyExists)
    ));
    assert!(matches!(
        store
            .upload("user-photos-thumbnails", &path("m1/big.png"), "image/png", Bytes::from(vec![0u8; 1024 * 1024 + 1]))
            .await,
        Err(StorageError::TooLarge { .. })
    ));
    let (status, _, got) = get_bytes(&app, &store.public_url("user-photos-thumbnails", &q)).await;
    assert_eq!((status, &got[..]), (StatusCode::OK, &b"png"[..]));

    // Resumable uploads go to Supabase's own endpoint, with the same token.
    assert_eq!(signed.resumable_url.as_deref(), Some(format!("{}/upload/resumable/sign", base(&app)).as_str()));
    // A transformation is signed by Supabase, as a render URL that serves that rendering.
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(300, 200, image::Rgb([1, 2, 3])));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let r = path("m1/file-3/scene.png");
    store.upload("evidence", &r, "image/png", Bytes::from(png.into_inner())).await.unwrap();
    let transform = ward::storage::Transform { width: Some(150), ..Default::default() };
    let url = store.create_signed_download("evidence", &r, MINUTE, Some(&transform)).await.unwrap();
    assert!(url.starts_with(&format!("{}/render/image/sign/evidence/m1/file-3/scene.png?token=", base(&app))), "{url}");
    let (status, _, rendered) = get_bytes(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    let rendered = image::load_from_memory(&rendered).unwrap();
    assert_eq!((rendered.width(), rendered.height()), (150, 100));

    store.delete("evidence", &p).await.unwrap();
    assert_eq!(store.info("evidence", &p).await.unwrap(), None);
    assert!(matches!(store.delete("evidence", &p).await, Err(StorageError::NotFound)));
    assert!(matches!(store.download("evidence", &p, 1024).await, Err(StorageError::NotFound)));
    assert!(matches!(store.create_signed_download("evidence", &p, MINUTE, None).await, Err(StorageError::NotFound)));

    // A wrong service key is ward's misconfiguration, not the client's fault: INTERNAL.
    let wrong = SupabaseStore::new(&format!("http://{}", app.addr), Secret::new(app.token("admin@demo.test"))).unwrap();
    let err = wrong.info("evidence", &q).await.unwrap_err();
    assert!(matches!(err, StorageError::Other { .. }), "{err:?}");
    assert_eq!(ward::error::ApiError::from(err).code, ward::error::ErrorCode::Internal);
}

#[tokio::test]
async fn an_unreachable_supabase_is_unavailable_after_retries() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let store = SupabaseStore::new(&format!("http://{addr}"), Secret::new("key")).unwrap();
    let started = std::time::Instant::now();
    let err = store.info("evidence", &path("a/b")).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(600), "two retries with backoff");
}

#[tokio::test]
async fn deletes_pass_supabase_storages_guard_against_direct_deletes() {
    let app = spawn_app().await;
    // Supabase Storage's trigger on a hosted project: direct deletes from its tables are refused
    // unless the transaction sets `storage.allow_delete_query` (as its own API does).
    let owner = app.db.owner().await;
    owner
        .execute_unprepared(
            "create function storage.protect_delete() returns trigger language plpgsql as $$
             begin
               if coalesce(current_setting('storage.allow_delete_query', true), 'false') <> 'true' then
                 raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
                   using hint = 'This prevents accidental data loss from orphaned objects.', errcode = '42501';
               end if;
               return null;
             end $$;
             create trigger protect_objects_delete before delete on storage.objects
               for each statement execute function storage.protect_delete();",
        )
        .await
        .unwrap();
    let store = local_store(&app).await;
    let p = path("m/f/guarded.txt");
    store.upload("documents", &p, "text/plain", Bytes::from_static(b"guarded")).await.unwrap();
    // The guard is there: a plain delete is refused...
    let refused = owner.execute_unprepared("delete from storage.objects where name = 'm/f/guarded.txt'").await;
    assert!(refused.is_err(), "the guard trigger is not active");
    // ...and the local store's delete passes it, row and file.
    store.delete("documents", &p).await.unwrap();
    assert!(store.object("documents", &p).await.unwrap().is_none());
    assert!(!storage_root(&app).join("documents/m/f/guarded.txt").exists());
}

/// Anyone may ask a public image for any size: every answer is rendered, but the cache keeps
/// a bounded number of variants per object, and deleting the object removes them.
#[tokio::test]
async fn public_renderings_are_bounded_in_the_cache() {
    let app = spawn_app().await;
    let store = local_store(&app).await;
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 48, image::Rgb([10, 20, 30])));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let p = path("p/x/thumb.png");
    store.upload("user-photos-thumbnails", &p, "image/png", Bytes::from(png.into_inner())).await.unwrap();
    for width in 1..=40 {
        let url = format!(
            "{}/render/image/public/user-photos-thumbnails/p/x/thumb.png?width={width}&resize=fill",
            base(&app)
        );
        let response = app.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{width}");
        let rendered = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(rendered.width(), width);
    }
    let object = store.object("user-photos-thumbnails", &p).await.unwrap().unwrap();
    let cache = storage_root(&app).join(".render").join(object.id.simple().to_string());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 32);
    // Out of bounds and nonsense are refused.
    for query in ["width=0", "width=2501", "width=10&resize=crop", "width=10&quality=5", "height=abc"] {
        let url = format!("{}/render/image/public/user-photos-thumbnails/p/x/thumb.png?{query}", base(&app));
        assert_eq!(app.http.get(&url).send().await.unwrap().status(), StatusCode::BAD_REQUEST, "{query}");
    }
    store.remove("user-photos-thumbnails", &p).await.unwrap();
    assert!(!cache.exists(), "the variants go with their object");
}
