//! The S3 backend against a real S3 server on loopback (s3s-fs: buckets are folders, SigV4
//! signatures are checked, presigned URLs included): two ward processes on one database and
//! one bucket share uploads, photos, thumbnails and renderings; downloads are checked by ward
//! and redirected to short-lived presigned GETs; large objects go up in parts; deletes remove
//! the bytes.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ward::demo::TICKETS;

use crate::helpers::people::*;
use crate::helpers::{TestApp, TestDb, scratch_dir, spawn_app_in};

const BUCKET: &str = "ward-objects";
const ACCESS_KEY: &str = "ward-test-access";
const SECRET_KEY: &str = "ward-test-secret-key";

/// Starts s3s-fs on 127.0.0.1:0 over a fresh folder holding the bucket: its endpoint and folder.
async fn start_s3(root: PathBuf) -> String {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let mut service = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(&root).unwrap());
    service.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = service.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let connection =
                Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(socket), service.clone()).into_owned();
            tokio::spawn(connection);
        }
    });
    format!("http://{addr}")
}

/// Two servers on one database and one S3 bucket, each with its own data folder.
async fn two_servers() -> (TestApp, TestApp, PathBuf) {
    let db = TestDb::new().await;
    let s3_root = scratch_dir(&format!("{}-s3", db.name));
    let endpoint = start_s3(s3_root.clone()).await;
    let settings = vec![
        ("WARD_STORAGE", "s3".to_string()),
        ("WARD_S3_BUCKET", BUCKET.to_string()),
        ("WARD_S3_ENDPOINT", endpoint),
        ("WARD_S3_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        ("WARD_S3_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
    ];
    let second = TestDb { name: db.name.clone() };
    let a = spawn_app_in(db, scratch_dir(&format!("{}-a", second.name)), &settings).await;
    let b = spawn_app_in(second, scratch_dir(&format!("{}-b", a.db.name)), &settings).await;
    (a, b, s3_root.join(BUCKET))
}

fn data<'a>(response: &'a Value, field: &str) -> &'a Value {
    assert!(response.get("errors").is_none(), "{response}");
    &response["data"][field]
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
    }));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A URL of one server, rewritten to reach the other.
fn on(app: &TestApp, url: &str, from: &TestApp) -> String {
    url.replace(&from.addr.to_string(), &app.addr.to_string())
}

async fn get(app: &TestApp, url: &str) -> (StatusCode, Vec<u8>) {
    let response = app.http.get(url).send().await.unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn two_servers_share_one_bucket() {
    let (a, b, objects) = two_servers().await;

    // A photo: uploaded through A, confirmed (and thumbnailed) by B.
    let bytes = png(640, 480);
    let create = "mutation($input: PhotoUploadInput!) { createPhotoUpload(input: $input) { id path uploadUrl } }";
    let intent = a
        .graphql(
            Some(CITIZEN),
            create,
            json!({ "input": { "filename": "me.png", "contentType": "image/png", "sizeBytes": bytes.len() } }),
        )
        .await;
    let intent = data(&intent, "createPhotoUpload").clone();
    let put = a
        .http
        .put(intent["uploadUrl"].as_str().unwrap())
        .header("content-type", "image/png")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let photo_blob =
        objects.join("user-photos").join(object_id(&a, "user-photos", intent["path"].as_str().unwrap()).await);
    assert!(photo_blob.is_file(), "the bytes are in the bucket, under the object's id");
    let confirm = "mutation($id: ID!) { confirmPhotoUpload(intentId: $id) { id width height url thumbnailUrl small: url(width: 64) } }";
    let photo = b.graphql(Some(CITIZEN), confirm, json!({ "id": intent["id"] })).await;
    let photo = data(&photo, "confirmPhotoUpload").clone();
    assert_eq!((photo["width"].as_i64(), photo["height"].as_i64()), (Some(640), Some(480)));

    // Its link, from B, works on both servers: checked by ward, then redirected to S3.
    let url = photo["url"].as_str().unwrap();
    for server in [&a, &b] {
        let no_follow = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let redirect = no_follow.get(on(server, url, &b)).send().await.unwrap();
        assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
        let location = redirect.headers()["location"].to_str().unwrap().to_string();
        assert!(location.contains("X-Amz-Signature=") && location.contains("X-Amz-Expires=60"), "{location}");
        assert_eq!(get(server, &location).await, (StatusCode::OK, bytes.clone()));
        // Tampered: S3 refuses it.
        let tampered = location.replace("X-Amz-Expires=60", "X-Amz-Expires=86400");
        assert_eq!(get(server, &tampered).await.0, StatusCode::FORBIDDEN);
    }
    // The thumbnail B made, and a rendering, are readable through A.
    let (status, thumbnail) = get(&a, &on(&a, photo["thumbnailUrl"].as_str().unwrap(), &b)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(image::load_from_memory(&thumbnail).unwrap().width(), 320);
    let (status, small) = get(&a, &on(&a, photo["small"].as_str().unwrap(), &b)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(image::load_from_memory(&small).unwrap().width(), 64);

    // A link that does not verify never reaches S3.
    let forged = format!("{}x", on(&a, url, &b));
    assert_eq!(get(&a, &forged).await.0, StatusCode::FORBIDDEN);

    // A large evidence file (20 MiB, written in parts) through B, read back through A.
    let video: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let intent_q =
        "mutation($input: CreateUploadIntentInput!) { createUploadIntent(input: $input) { id path uploadUrl } }";
    let input = json!({ "input": { "ticketId": TICKETS[0].id.to_string(), "purpose": "EVIDENCE", "filename": "clip.mp4",
                                   "contentType": "video/mp4", "sizeBytes": video.len() } });
    let intent = b.graphql(Some(CITIZEN), intent_q, input).await;
    let intent = data(&intent, "createUploadIntent").clone();
    let put = b
        .http
        .put(intent["uploadUrl"].as_str().unwrap())
        .header("content-type", "video/mp4")
        .body(video.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let confirmed = a
        .graphql(
            Some(CITIZEN),
            "mutation($id: ID!) { confirmUpload(intentId: $id) { sizeBytes signedUrl(expiresIn: 60) } }",
            json!({ "id": intent["id"] }),
        )
        .await;
    let media = data(&confirmed, "confirmUpload");
    assert_eq!(media["sizeBytes"], video.len());
    let (status, read) = get(&a, media["signedUrl"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Sha256::digest(&read), Sha256::digest(&video));

    // Deleting the photo through A removes its bytes and its thumbnail's from the bucket.
    let deleted =
        a.graphql(Some(CITIZEN), "mutation($id: ID!) { deletePhoto(id: $id) }", json!({ "id": photo["id"] })).await;
    data(&deleted, "deletePhoto");
    let gone = async {
        for _ in 0..50 {
            if !photo_blob.exists() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(gone.await, "the photo's bytes are removed");
    assert_eq!(get(&b, &on(&b, url, &b)).await.0, StatusCode::NOT_FOUND);
}

/// The id of a stored object (its bytes' key in the bucket).
async fn object_id(app: &TestApp, bucket: &str, name: &str) -> String {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let row = app
        .db
        .owner()
        .await
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select replace(id::text, '-', '') as id from storage.objects where bucket_id = $1 and name = $2",
            [bucket.into(), name.into()],
        ))
        .await
        .unwrap()
        .expect("the object's row");
    row.try_get("", "id").unwrap()
}
