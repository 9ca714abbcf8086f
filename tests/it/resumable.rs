//! Resumable (TUS) uploads of the local backend over real HTTP, at the protocol level: what
//! tus-js-client (tests/clients/resumable.test.mjs) does not exercise — offset conflicts,
//! writes past the promised length, the protocol header, termination, a finished upload
//! seen again, another upload's token, the service-role routes, and expiry with the sweeper.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use ward::storage::local::resumable::UploadId;
use ward::storage::{ObjectPath, ObjectStore, UploadRules};

use crate::helpers::{TestApp, spawn_app};
use crate::storage::{local_store, storage_root};

const MINUTE: Duration = Duration::from_secs(60);

fn endpoint(app: &TestApp) -> String {
    format!("http://{}/storage/v1/upload/resumable", app.addr)
}

fn metadata(bucket: &str, path: &str, content_type: &str) -> String {
    format!(
        "bucketName {},objectName {},contentType {}",
        STANDARD.encode(bucket),
        STANDARD.encode(path),
        STANDARD.encode(content_type)
    )
}

struct Tus<'a> {
    app: &'a TestApp,
    /// `x-signature`, or the service role when `None`.
    token: Option<String>,
}

impl Tus<'_> {
    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.app.http.request(method, url).header("tus-resumable", "1.0.0");
        match &self.token {
            Some(token) => request.header("x-signature", token),
            None => request.bearer_auth(self.app.service_token()),
        }
    }

    async fn create(&self, bucket: &str, path: &str, length: u64, content_type: &str) -> reqwest::Response {
        let url = if self.token.is_some() { format!("{}/sign", endpoint(self.app)) } else { endpoint(self.app) };
        self.request(Method::POST, &url)
            .header("upload-length", length.to_string())
            .header("upload-metadata", metadata(bucket, path, content_type))
            .send()
            .await
            .unwrap()
    }

    async fn patch(&self, location: &str, offset: u64, body: Vec<u8>) -> reqwest::Response {
        self.request(Method::PATCH, location)
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn offset(&self, location: &str) -> (StatusCode, Option<u64>) {
        let response = self.request(Method::HEAD, location).send().await.unwrap();
        let offset = response.headers().get("upload-offset").and_then(|v| v.to_str().ok()?.parse().ok());
        (response.status(), offset)
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

async fn signed<'a>(app: &'a TestApp, bucket: &str, path: &str, rules: UploadRules) -> Tus<'a> {
    let store = local_store(app).await;
    let signed = store.create_signed_upload(bucket, &ObjectPath::parse(path).unwrap(), MINUTE, &rules).await.unwrap();
    Tus { app, token: Some(signed.token) }
}

#[tokio::test]
async fn the_protocol_holds_at_its_edges() {
    let app = spawn_app().await;
    let tus = signed(
        &app,
        "documents",
        "m/f/report.pdf",
        UploadRules { content_type: Some("application/pdf".into()), max_bytes: Some(1000) },
    )
    .await;

    // OPTIONS needs nothing and says what is supported; everything else needs the version.
    let options = app.http.request(Method::OPTIONS, endpoint(&app)).send().await.unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(options.headers()["tus-version"], "1.0.0");
    assert!(options.headers()["tus-extension"].to_str().unwrap().contains("termination"));
    let unversioned = app
        .http
        .post(format!("{}/sign", endpoint(&app)))
        .header("x-signature", tus.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(unversioned.headers()["tus-resumable"], "1.0.0");

    // Upload-Length over the token's promise: refused before any byte.
    assert_eq!(
        tus.create("documents", "m/f/report.pdf", 1001, "application/pdf").await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let created = tus.create("documents", "m/f/report.pdf", 1000, "application/pdf").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = location(&created);
    assert!(url.contains("/storage/v1/upload/resumable/sign/"), "{url}");
    assert!(created.headers().contains_key("upload-expires"));

    // Bytes at the wrong offset, of the wrong type, or past the length are refused.
    assert_eq!(tus.patch(&url, 0, vec![1; 400]).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(tus.offset(&url).await, (StatusCode::OK, Some(400)));
    assert_eq!(tus.patch(&url, 0, vec![2; 10]).await.status(), StatusCode::CONFLICT);
    assert_eq!(tus.patch(&url, 500, vec![2; 10]).await.status(), StatusCode::CONFLICT);
    let untyped =
        tus.request(Method::PATCH, &url).header("upload-offset", "400").body(vec![2; 10]).send().await.unwrap();
    assert_eq!(untyped.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(tus.patch(&url, 400, vec![3; 601]).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(tus.offset(&url).await, (StatusCode::OK, Some(400)), "a refused body adds nothing");

    // Another object's token cannot touch this upload.
    let other = signed(&app, "documents", "m/f/other.pdf", UploadRules::default()).await;
    assert_eq!(other.offset(&url).await.0, StatusCode::FORBIDDEN);
    assert_eq!(other.patch(&url, 400, vec![4; 10]).await.status(), StatusCode::FORBIDDEN);
    // Nor can an id made up for another object (ids name their bucket and path).
    let forged = url.replace(
        url.rsplit('/').next().unwrap(),
        "ZG9jdW1lbnRzL20vZi9vdGhlci5wZGYvMDAwMDAwMDAwMDAwNDAwMDgwMDAwMDAwMDAwMDAwMDE",
    );
    assert_eq!(other.offset(&forged).await.0, StatusCode::NOT_FOUND);

    // The last bytes publish the object; the upload then reads as complete, and stays so.
    let done = tus.patch(&url, 400, vec![5; 600]).await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert_eq!(done.headers()["upload-offset"], "1000");
    assert_eq!(done.headers()["tus-complete"], "1");
    assert_eq!(tus.offset(&url).await, (StatusCode::OK, Some(1000)));
    assert_eq!(tus.patch(&url, 1000, vec![6; 1]).await.status(), StatusCode::CONFLICT);
    assert_eq!(tus.request(Method::DELETE, &url).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    let store = local_store(&app).await;
    let info = store.info("documents", &ObjectPath::parse("m/f/report.pdf").unwrap()).await.unwrap().unwrap();
    assert_eq!((info.size, info.content_type.as_str()), (1000, "application/pdf"));
    // A second upload to the same object: the object exists, ward never overwrites.
    assert_eq!(tus.create("documents", "m/f/report.pdf", 10, "application/pdf").await.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn termination_the_service_routes_and_expiry() {
    let app = spawn_app().await;
    let service = Tus { app: &app, token: None };

    // Only the service role may use the unsigned routes.
    let citizen = app
        .http
        .post(endpoint(&app))
        .header("tus-resumable", "1.0.0")
        .bearer_auth(app.token(crate::helpers::people::CITIZEN))
        .header("upload-length", "10")
        .header("upload-metadata", metadata("evidence", "m/f/a.bin", "application/octet-stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(citizen.status(), StatusCode::FORBIDDEN);

    // Terminated: gone, and its bytes with it.
    let created = service.create("evidence", "m/f/a.bin", 10, "application/octet-stream").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = location(&created);
    assert!(!url.contains("/sign/"), "{url}");
    assert_eq!(service.patch(&url, 0, vec![1; 4]).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(service.request(Method::DELETE, &url).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(service.offset(&url).await.0, StatusCode::NOT_FOUND);

    // One object, one upload in progress: creating again replaces an idle unfinished one
    // (whose id then finds nothing), so a token cannot fill the disk with uploads.
    let first = location(&service.create("evidence", "m/f/r.bin", 10, "application/octet-stream").await);
    assert_eq!(service.patch(&first, 0, vec![1; 3]).await.status(), StatusCode::NO_CONTENT);
    let second = location(&service.create("evidence", "m/f/r.bin", 10, "application/octet-stream").await);
    assert_ne!(first, second);
    assert_eq!(service.offset(&first).await.0, StatusCode::NOT_FOUND);
    assert_eq!(service.offset(&second).await, (StatusCode::OK, Some(0)));
    assert_eq!(std::fs::read_dir(storage_root(&app).join(".resumable")).unwrap().count(), 1);

    // Every byte arrived but the last PATCH could not publish (the database or S3 was away):
    // the next HEAD publishes it before it says the upload is complete.
    let slot = std::fs::read_dir(storage_root(&app).join(".resumable")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(slot.join("data"), vec![9u8; 10]).unwrap();
    assert_eq!(service.offset(&second).await, (StatusCode::OK, Some(10)));
    let info = ObjectStore::info(&local_store(&app).await, "evidence", &ObjectPath::parse("m/f/r.bin").unwrap())
        .await
        .unwrap();
    assert_eq!(info.map(|i| i.size), Some(10), "published by the HEAD");
    std::fs::remove_dir_all(&slot).unwrap();

    // Abandoned: past its expiry it is 410 Gone, and the sweeper removes it after the grace.
    let store = local_store(&app).await;
    let path = ObjectPath::parse("m/f/b.bin").unwrap();
    let expired = Utc::now() - chrono::Duration::hours(1);
    let upload = store
        .create_resumable("evidence", &path, 10, "application/octet-stream", None, &UploadRules::default(), expired)
        .await
        .unwrap();
    let url = format!("{}/{}", endpoint(&app), upload.id());
    assert_eq!(service.offset(&url).await.0, StatusCode::GONE);
    let folders = || std::fs::read_dir(storage_root(&app).join(".resumable")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(folders(), 1);
    assert_eq!(store.sweep_resumable(Duration::from_secs(2 * 3600)).await.unwrap(), 0, "within the grace");
    let live = store
        .create_resumable(
            "evidence",
            &ObjectPath::parse("m/f/c.bin").unwrap(),
            10,
            "application/octet-stream",
            None,
            &UploadRules::default(),
            Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(store.sweep_resumable(Duration::ZERO).await.unwrap(), 1, "only the expired one");
    assert_eq!(folders(), 1);
    assert!(store.resumable(&UploadId::parse(&live.id()).unwrap()).await.is_ok());
    // What the server's own sweeper calls through the trait.
    assert_eq!(ObjectStore::sweep_abandoned(&store).await.unwrap(), 0);
}
