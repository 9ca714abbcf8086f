//! Photos through GraphQL and real uploads to the local storage backend, under two or more
//! people: the upload → confirm → thumbnail → download → delete round trip, batches and
//! paging, and every kind of bad input (hostile file names, wrong types and sizes, expired,
//! reused and misdirected tokens, confirming twice or too early, someone else's photo). No
//! stored object is ever replaced or lost.

use std::io::Cursor;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;
use ward::demo;

use crate::helpers::people::*;
use crate::helpers::{TestApp, error_code, spawn_app};

const CREATE: &str = "mutation($input: PhotoUploadInput!) { createPhotoUpload(input: $input) { id purpose bucket path uploadUrl token expiresAt status } }";
const CREATE_MANY: &str =
    "mutation($inputs: [PhotoUploadInput!]!) { createPhotoUploads(inputs: $inputs) { id path uploadUrl status } }";
const CONFIRM: &str = "mutation($id: ID!) { confirmPhotoUpload(intentId: $id) { id url thumbnailUrl contentType sizeBytes width height createdAt } }";
const DELETE: &str = "mutation($id: ID!) { deletePhoto(id: $id) }";
const MY_PHOTOS: &str = "query($first: Int, $after: String) { me { photos(first: $first, after: $after) { totalCount nodes { id } edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }";

fn pid(email: &str) -> String {
    demo::person(email).unwrap().profile_id.to_string()
}

fn data<'a>(response: &'a Value, field: &str) -> &'a Value {
    assert!(response.get("errors").is_none(), "{field}: {response}");
    &response["data"][field]
}

fn message(response: &Value) -> &str {
    response["errors"][0]["message"].as_str().unwrap_or("")
}

/// An image of `width`×`height` in `format`.
fn image_bytes(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let image = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    }));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    image_bytes(width, height, image::ImageFormat::Png)
}

async fn create(app: &TestApp, who: &str, filename: &str, content_type: &str, size: usize) -> Value {
    let input = json!({ "filename": filename, "contentType": content_type, "sizeBytes": size });
    app.graphql(Some(who), CREATE, json!({ "input": input })).await
}

async fn put(app: &TestApp, url: &str, content_type: &str, body: Vec<u8>) -> StatusCode {
    app.http.put(url).header("content-type", content_type).body(body).send().await.unwrap().status()
}

async fn get(app: &TestApp, url: &str) -> (StatusCode, Vec<u8>) {
    let response = app.http.get(url).send().await.unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}

async fn owner_count(app: &TestApp, sql: &str) -> i64 {
    let row =
        app.db.owner().await.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn a_photo_round_trip_seen_only_by_its_owner() {
    let app = spawn_app().await;
    let bytes = png(640, 480);
    let response = create(&app, CITIZEN, "Holiday pic (1).png", "image/png", bytes.len()).await;
    let intent = data(&response, "createPhotoUpload").clone();
    let id = intent["id"].as_str().unwrap();
    assert_eq!(intent["purpose"], "PHOTO");
    assert_eq!(intent["bucket"], "user-photos");
    assert_eq!(intent["status"], "PENDING");
    assert_eq!(intent["path"], format!("{}/{id}/Holiday_pic_1_.png", pid(CITIZEN)));
    let url = intent["uploadUrl"].as_str().unwrap();
    assert!(url.starts_with(&format!("http://{}/storage/v1/object/upload/sign/user-photos/", app.addr)), "{url}");
    assert!(url.ends_with(&format!("token={}", intent["token"].as_str().unwrap())));
    let expires: chrono::DateTime<chrono::Utc> = intent["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::minutes(10));

    assert_eq!(put(&app, url, "image/png", bytes.clone()).await, StatusCode::OK);
    // Someone else cannot confirm it: for them it does not exist.
    let stolen = app.graphql(Some(OTHER_CITIZEN), CONFIRM, json!({ "id": id })).await;
    assert_eq!(error_code(&stolen), Some("NOT_FOUND"), "{stolen}");
    let stolen = app.graphql(Some(MANAGER), CONFIRM, json!({ "id": id })).await;
    assert_eq!(error_code(&stolen), Some("NOT_FOUND"), "{stolen}");

    let response = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": id })).await;
    let photo = data(&response, "confirmPhotoUpload").clone();
    assert_eq!(photo["id"], id, "the photo keeps its intent's id");
    assert_eq!(photo["contentType"], "image/png");
    assert_eq!(photo["sizeBytes"], bytes.len());
    assert_eq!((photo["width"].as_i64(), photo["height"].as_i64()), (Some(640), Some(480)));
    let (status, downloaded) = get(&app, photo["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(downloaded, bytes);
    // The thumbnail is public: no token needed.
    let thumbnail_url = photo["thumbnailUrl"].as_str().unwrap();
    assert!(!thumbnail_url.contains("token="), "{thumbnail_url}");
    let (status, thumbnail) = get(&app, thumbnail_url).await;
    assert_eq!(status, StatusCode::OK);
    let thumbnail = image::load_from_memory_with_format(&thumbnail, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (320, 240));

    // Confirming twice is refused and changes nothing.
    let twice = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": id })).await;
    assert_eq!(error_code(&twice), Some("BAD_USER_INPUT"), "{twice}");
    assert!(message(&twice).contains("already been confirmed"), "{twice}");

    // Only the owner sees it, through `me` or their profile.
    let mine = app.graphql(Some(CITIZEN), MY_PHOTOS, json!({})).await;
    let mine = &data(&mine, "me")["photos"];
    assert_eq!(mine["totalCount"], 1);
    assert_eq!(mine["nodes"][0]["id"], id);
    let theirs = app.graphql(Some(OTHER_CITIZEN), MY_PHOTOS, json!({})).await;
    assert_eq!(data(&theirs, "me")["photos"]["totalCount"], 0);
    let by_profile = "query($id: ID!) { profile(id: $id) { displayName photos { totalCount nodes { id } } } }";
    let staff = app.graphql(Some(MANAGER), by_profile, json!({ "id": pid(CITIZEN) })).await;
    let staff = data(&staff, "profile");
    assert_eq!(staff["displayName"], "Thandi Citizen", "the manager sees the profile");
    assert_eq!(staff["photos"], json!({ "totalCount": 0, "nodes": [] }), "but not the photos");
    let bad_ttl = app.graphql(Some(CITIZEN), "{ me { photos { nodes { url(expiresIn: 0) } } } }", json!({})).await;
    assert_eq!(error_code(&bad_ttl), Some("BAD_USER_INPUT"), "{bad_ttl}");

    // Resized on request: cover crops to the box, contain fits inside it, never enlarged.
    let sized = "{ me { photos { nodes { cover: url(width: 100, height: 100) contain: url(width: 100, height: 100, resize: CONTAIN) tall: url(height: 2000) } } } }";
    let sized = app.graphql(Some(CITIZEN), sized, json!({})).await;
    let node = &data(&sized, "me")["photos"]["nodes"][0];
    for (field, expected) in [("cover", (100, 100)), ("contain", (100, 75)), ("tall", (640, 480))] {
        let url = node[field].as_str().unwrap_or_else(|| panic!("{sized}"));
        assert!(url.contains("/storage/v1/render/image/sign/user-photos/"), "{url}");
        let (status, bytes) = get(&app, url).await;
        assert_eq!(status, StatusCode::OK, "{field}");
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap();
        assert_eq!((img.width(), img.height()), expected, "{field}");
    }
    let too_big = app.graphql(Some(CITIZEN), "{ me { photos { nodes { url(width: 2501) } } } }", json!({})).await;
    assert_eq!(error_code(&too_big), Some("BAD_USER_INPUT"), "{too_big}");

    // Nobody else deletes it.
    for who in [OTHER_CITIZEN, MANAGER] {
        let response = app.graphql(Some(who), DELETE, json!({ "id": id })).await;
        assert_eq!(error_code(&response), Some("NOT_FOUND"), "{who}: {response}");
    }
    let anonymous = app.graphql(None, DELETE, json!({ "id": id })).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"), "{anonymous}");
    assert_eq!(get(&app, photo["url"].as_str().unwrap()).await.0, StatusCode::OK);

    // The owner does: the row and both objects go.
    let response = app.graphql(Some(CITIZEN), DELETE, json!({ "id": id })).await;
    assert_eq!(data(&response, "deletePhoto"), id);
    let mine = app.graphql(Some(CITIZEN), MY_PHOTOS, json!({})).await;
    assert_eq!(data(&mine, "me")["photos"]["totalCount"], 0);
    assert_eq!(get(&app, thumbnail_url).await.0, StatusCode::NOT_FOUND);
    let objects = format!("select count(*) from storage.objects where name like '{}/%'", pid(CITIZEN));
    assert_eq!(owner_count(&app, &objects).await, 0);
    let again = app.graphql(Some(CITIZEN), DELETE, json!({ "id": id })).await;
    assert_eq!(error_code(&again), Some("NOT_FOUND"), "{again}");
}

#[tokio::test]
async fn batches_formats_and_paging() {
    let app = spawn_app().await;
    let formats = [
        ("a.jpg", image::ImageFormat::Jpeg, "image/jpeg"),
        ("b.gif", image::ImageFormat::Gif, "image/gif"),
        ("c.webp", image::ImageFormat::WebP, "image/webp"),
    ];
    let files: Vec<(Vec<u8>, &str)> = formats.iter().map(|(_, f, mime)| (image_bytes(64, 48, *f), *mime)).collect();
    let inputs: Vec<Value> = formats
        .iter()
        .zip(&files)
        .map(|((name, _, mime), (bytes, _))| json!({ "filename": name, "contentType": mime, "sizeBytes": bytes.len() }))
        .collect();
    let response = app.graphql(Some(OTHER_CITIZEN), CREATE_MANY, json!({ "inputs": inputs })).await;
    let intents = data(&response, "createPhotoUploads").as_array().unwrap().clone();
    assert_eq!(intents.len(), 3);
    for (intent, (bytes, mime)) in intents.iter().zip(&files) {
        assert!(intent["path"].as_str().unwrap().starts_with(&pid(OTHER_CITIZEN)));
        assert_eq!(put(&app, intent["uploadUrl"].as_str().unwrap(), mime, bytes.clone()).await, StatusCode::OK);
        let response = app.graphql(Some(OTHER_CITIZEN), CONFIRM, json!({ "id": intent["id"] })).await;
        let photo = data(&response, "confirmPhotoUpload");
        assert_eq!(photo["contentType"], *mime);
        assert_eq!((photo["width"].as_i64(), photo["height"].as_i64()), (Some(64), Some(48)));
    }

    // Paging, newest first, without repeats.
    let first = app.graphql(Some(OTHER_CITIZEN), MY_PHOTOS, json!({ "first": 2 })).await;
    let first = &data(&first, "me")["photos"];
    assert_eq!(first["totalCount"], 3);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let rest = app
        .graphql(Some(OTHER_CITIZEN), MY_PHOTOS, json!({ "first": 2, "after": first["pageInfo"]["endCursor"] }))
        .await;
    let rest = &data(&rest, "me")["photos"];
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    let mut seen: Vec<String> = first["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["nodes"].as_array().unwrap())
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen[0], intents[2]["id"].as_str().unwrap(), "newest first");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
    let bad = app.graphql(Some(OTHER_CITIZEN), MY_PHOTOS, json!({ "after": "garbage" })).await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"), "{bad}");
    // The demo citizen sees none of them.
    let demo_citizen = app.graphql(Some(CITIZEN), MY_PHOTOS, json!({})).await;
    assert_eq!(data(&demo_citizen, "me")["photos"]["totalCount"], 0);

    // A batch with one bad entry creates nothing; so does an oversized batch.
    let before = owner_count(&app, "select count(*) from upload_intents").await;
    let mixed = json!([
        { "filename": "ok.png", "contentType": "image/png", "sizeBytes": 10 },
        { "filename": "../evil.png", "contentType": "image/png", "sizeBytes": 10 },
    ]);
    let response = app.graphql(Some(CITIZEN), CREATE_MANY, json!({ "inputs": mixed })).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert!(message(&response).starts_with("inputs[1]"), "{response}");
    let many: Vec<Value> = (0..11)
        .map(|i| json!({ "filename": format!("{i}.png"), "contentType": "image/png", "sizeBytes": 10 }))
        .collect();
    let response = app.graphql(Some(CITIZEN), CREATE_MANY, json!({ "inputs": many })).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    let response = app.graphql(Some(CITIZEN), CREATE_MANY, json!({ "inputs": [] })).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert_eq!(owner_count(&app, "select count(*) from upload_intents").await, before);
}

#[tokio::test]
async fn bad_upload_requests_are_refused_with_clear_messages() {
    let app = spawn_app().await;
    let long = format!("{}.png", "x".repeat(300));
    let cases: Vec<(String, &str, i64, &str)> = vec![
        ("../../etc/passwd".into(), "image/png", 10, "without folders"),
        ("photos/me.png".into(), "image/png", 10, "without folders"),
        ("..\\..\\boot.ini".into(), "image/png", 10, "without folders"),
        ("..".into(), "image/png", 10, "without folders"),
        ("me\u{0}.png".into(), "image/png", 10, "control characters"),
        ("me\n.png".into(), "image/png", 10, "control characters"),
        (long, "image/png", 10, "at most 255"),
        ("".into(), "image/png", 10, "empty"),
        ("日本.png".into(), "image/png", 10, "ok"),
        ("me.svg".into(), "image/svg+xml", 10, "contentType"),
        ("me.html".into(), "text/html", 10, "contentType"),
        ("me.png".into(), "image/png", 0, "positive"),
        ("me.png".into(), "image/png", 10 * 1024 * 1024 + 1, "at most 10485760 bytes"),
    ];
    for (filename, content_type, size, expected) in cases {
        let input = json!({ "filename": filename, "contentType": content_type, "sizeBytes": size });
        let response = app.graphql(Some(CITIZEN), CREATE, json!({ "input": input })).await;
        if expected == "ok" {
            // Unusual characters are replaced, not refused.
            assert!(data(&response, "createPhotoUpload")["path"].as_str().unwrap().ends_with("png"), "{response}");
            continue;
        }
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{filename:?}: {response}");
        assert!(
            message(&response).contains(expected),
            "{filename:?}: `{}` should mention `{expected}`",
            message(&response)
        );
    }
    let anonymous = app
        .graphql(None, CREATE, json!({ "input": { "filename": "a.png", "contentType": "image/png", "sizeBytes": 10 } }))
        .await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"), "{anonymous}");
    let stranger = app.issuer.user_token(Uuid::new_v4(), Some("stranger@example.test"), None, 600).unwrap();
    let response = app
        .graphql_with_header(
            Some(&format!("Bearer {stranger}")),
            CREATE,
            json!({ "input": { "filename": "a.png", "contentType": "image/png", "sizeBytes": 10 } }),
        )
        .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"), "{response}");
    assert!(message(&response).contains("register a profile"), "{response}");
    assert_eq!(owner_count(&app, "select count(*) from upload_intents").await, 1);
    let bad_id = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": "nope" })).await;
    assert_eq!(error_code(&bad_id), Some("BAD_USER_INPUT"), "{bad_id}");
    let unknown = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": Uuid::new_v4() })).await;
    assert_eq!(error_code(&unknown), Some("NOT_FOUND"), "{unknown}");
}

#[tokio::test]
async fn uploads_that_break_their_promise_are_refused_and_nothing_is_overwritten() {
    let app = spawn_app().await;
    let original = png(100, 50);
    let intent = |response: &Value| data(response, "createPhotoUpload").clone();
    let a = intent(&create(&app, CITIZEN, "a.png", "image/png", original.len()).await);
    let b = intent(&create(&app, CITIZEN, "b.png", "image/png", original.len()).await);
    let (a_url, b_url) = (a["uploadUrl"].as_str().unwrap(), b["uploadUrl"].as_str().unwrap());

    // Confirming before uploading.
    let early = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": a["id"] })).await;
    assert_eq!(error_code(&early), Some("BAD_USER_INPUT"), "{early}");
    assert!(message(&early).contains("nothing has been uploaded"), "{early}");

    // A's token on B's path.
    let a_token = a["token"].as_str().unwrap();
    let b_with_a_token = format!("{}?token={a_token}", b_url.split('?').next().unwrap());
    assert_eq!(put(&app, &b_with_a_token, "image/png", original.clone()).await, StatusCode::FORBIDDEN);
    let early = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": b["id"] })).await;
    assert!(message(&early).contains("nothing has been uploaded"), "{early}");

    // A content type the bucket does not take.
    assert_eq!(put(&app, a_url, "text/plain", b"hello".to_vec()).await, StatusCode::BAD_REQUEST);

    // Upload once; the same token again (or anything else) cannot replace it.
    assert_eq!(put(&app, a_url, "image/png", original.clone()).await, StatusCode::OK);
    assert_eq!(put(&app, a_url, "image/png", png(10, 10)).await, StatusCode::CONFLICT);
    let response = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": a["id"] })).await;
    let photo = data(&response, "confirmPhotoUpload");
    assert_eq!((photo["width"].as_i64(), photo["height"].as_i64()), (Some(100), Some(50)));
    assert_eq!(get(&app, photo["url"].as_str().unwrap()).await.1, original);
    assert_eq!(put(&app, a_url, "image/png", png(10, 10)).await, StatusCode::CONFLICT);
    assert_eq!(get(&app, photo["url"].as_str().unwrap()).await.1, original);

    // Larger than declared: the signed URL takes at most the declared size...
    let small = intent(&create(&app, CITIZEN, "small.png", "image/png", 100).await);
    assert_eq!(
        put(&app, small["uploadUrl"].as_str().unwrap(), "image/png", png(200, 200)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let response = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": small["id"] })).await;
    assert!(message(&response).contains("nothing has been uploaded"), "{response}");
    // ...and the confirmation checks again what a backend that cannot bind it (Supabase) took.
    let small_path = small["path"].as_str().unwrap();
    assert_eq!(app.put_as_service("user-photos", small_path, "image/png", png(200, 200)).await, StatusCode::OK);
    let response = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": small["id"] })).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert!(message(&response).contains("more than the 100 declared"), "{response}");

    // Stored as another type than declared.
    let typed = intent(&create(&app, CITIZEN, "typed.png", "image/png", original.len()).await);
    assert_eq!(
        put(&app, typed["uploadUrl"].as_str().unwrap(), "image/jpeg", original.clone()).await,
        StatusCode::BAD_REQUEST
    );
    let typed_path = typed["path"].as_str().unwrap();
    assert_eq!(app.put_as_service("user-photos", typed_path, "image/jpeg", original.clone()).await, StatusCode::OK);
    let response = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": typed["id"] })).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert!(message(&response).contains("is not image/png"), "{response}");

    // Not an image at all, whatever the header said.
    let fake = intent(&create(&app, CITIZEN, "fake.png", "image/png", 100).await);
    assert_eq!(
        put(&app, fake["uploadUrl"].as_str().unwrap(), "image/png", b"<svg onload=alert(1)>".to_vec()).await,
        StatusCode::OK
    );
    let response = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": fake["id"] })).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert!(message(&response).contains("not a image/png image"), "{response}");

    // Expired before anything was uploaded.
    let late = intent(&create(&app, CITIZEN, "late.png", "image/png", 100).await);
    app.db
        .owner()
        .await
        .execute_unprepared(&format!(
            "update upload_intents set expires_at = now() - interval '1 minute' where id = '{}'",
            late["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    let response = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": late["id"] })).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert!(message(&response).contains("expired"), "{response}");

    // Only the one good photo exists, and the refused uploads were removed from storage.
    assert_eq!(owner_count(&app, "select count(*) from photos").await, 1);
    let prefix = pid(CITIZEN);
    let objects = owner_count(
        &app,
        &format!("select count(*) from storage.objects where bucket_id = 'user-photos' and name like '{prefix}/%'"),
    )
    .await;
    assert_eq!(objects, 1);
}
