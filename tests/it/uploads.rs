//! Ticket files through GraphQL: upload intents, confirmation and signed links under the GBV
//! firewall, their bad input, and the relay's ingest from a URL (against a small HTTP server
//! started here).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use ward::demo::TICKETS;

use crate::helpers::people::*;
use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with};

const INTENT: &str = "mutation($input: CreateUploadIntentInput!) {
    createUploadIntent(input: $input) { id purpose bucket path uploadUrl token expiresAt status } }";
const CONFIRM: &str =
    "mutation($id: ID!) { confirmUpload(intentId: $id) { id purpose bucket path contentType sizeBytes } }";

fn t(n: usize) -> String {
    TICKETS[n - 1].id.to_string()
}

fn intent_input(ticket: usize, purpose: &str, filename: &str, content_type: &str, size: i64) -> Value {
    json!({ "input": { "ticketId": t(ticket), "purpose": purpose, "filename": filename, "contentType": content_type, "sizeBytes": size } })
}

async fn put(app: &TestApp, url: &str, content_type: &str, bytes: Vec<u8>) -> StatusCode {
    app.http.put(url).header("content-type", content_type).body(bytes).send().await.unwrap().status()
}

/// Intent, upload, confirm: the confirmed media.
async fn attach(app: &TestApp, who: &str, ticket: usize, purpose: &str, bytes: &[u8]) -> Value {
    let intent = app
        .graphql(Some(who), INTENT, intent_input(ticket, purpose, "photo.jpg", "image/jpeg", bytes.len() as i64))
        .await;
    assert!(intent.get("errors").is_none(), "{who}: {intent}");
    let intent = &intent["data"]["createUploadIntent"];
    assert!(put(app, intent["uploadUrl"].as_str().unwrap(), "image/jpeg", bytes.to_vec()).await.is_success());
    let confirmed = app.graphql(Some(who), CONFIRM, json!({ "id": intent["id"] })).await;
    assert!(confirmed.get("errors").is_none(), "{who}: {confirmed}");
    confirmed["data"]["confirmUpload"].clone()
}

const FILES: &str = "query($id: ID!) { ticket(id: $id) { media { id bucket signedUrl(expiresIn: 60) } } }";

#[tokio::test]
async fn the_gbv_firewall_on_uploads_and_links() {
    let app = spawn_app().await;
    // Sensitive ticket 3: evidence always lands in gbv-evidence.
    let input = intent_input(3, "EVIDENCE", "statement.jpg", "image/jpeg", 10);
    for (who, expected) in [
        (CITIZEN, Some("FORBIDDEN")),
        (WORKER, Some("NOT_FOUND")),
        (OTHER_MANAGER, Some("NOT_FOUND")),
        (MANAGER, None),
        (SAPS, None),
        (ADMIN, None),
    ] {
        let response = app.graphql(Some(who), INTENT, input.clone()).await;
        match expected {
            Some(code) => assert_eq!(error_code(&response), Some(code), "{who}: {response}"),
            None => {
                let intent = &response["data"]["createUploadIntent"];
                assert_eq!(intent["bucket"], "gbv-evidence", "{who}");
                assert_eq!(intent["purpose"], "GBV_EVIDENCE", "{who}");
                assert_eq!(intent["status"], "PENDING");
                assert!(intent["path"].as_str().unwrap().starts_with(&ward::demo::DEMO.id.to_string()));
            }
        }
    }
    // A manager uploads GBV evidence but cannot read it back.
    let bytes = b"gbv evidence bytes".to_vec();
    let media = attach(&app, MANAGER, 3, "EVIDENCE", &bytes).await;
    assert_eq!(media["bucket"], "gbv-evidence");
    let link = app.graphql(Some(MANAGER), FILES, json!({ "id": t(3) })).await;
    assert_eq!(link["data"]["ticket"]["media"], json!([]), "{link}");
    // SAPS liaisons and admins read it, through a signed link that returns the bytes.
    for who in [SAPS, ADMIN] {
        let files = app.graphql(Some(who), FILES, json!({ "id": t(3) })).await;
        let url = files["data"]["ticket"]["media"][0]["signedUrl"].as_str().unwrap_or_else(|| panic!("{who}: {files}"));
        let body = app.http.get(url).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(body.to_vec(), bytes, "{who}");
    }
    // The reporter sees the case but not its evidence.
    let files = app.graphql(Some(CITIZEN), FILES, json!({ "id": t(3) })).await;
    assert_eq!(files["data"]["ticket"]["media"], json!([]));
}

#[tokio::test]
async fn ordinary_evidence_and_documents() {
    let app = spawn_app().await;
    let bytes = vec![7u8; 2048];
    let media = attach(&app, CITIZEN, 1, "EVIDENCE", &bytes).await;
    assert_eq!(media["bucket"], "evidence");
    assert_eq!(media["sizeBytes"], 2048);
    // Whoever sees ticket 1 reads it: the field worker assigned to it, the manager.
    for who in [WORKER, MANAGER, CITIZEN] {
        let files = app.graphql(Some(who), FILES, json!({ "id": t(1) })).await;
        let url = files["data"]["ticket"]["media"][0]["signedUrl"].as_str().unwrap_or_else(|| panic!("{who}: {files}"));
        assert_eq!(app.http.get(url).send().await.unwrap().bytes().await.unwrap().to_vec(), bytes, "{who}");
    }
    // GBV evidence belongs to sensitive tickets only; documents go to their own bucket.
    let gbv = app.graphql(Some(MANAGER), INTENT, intent_input(1, "GBV_EVIDENCE", "a.pdf", "application/pdf", 5)).await;
    assert_eq!(error_code(&gbv), Some("BAD_USER_INPUT"), "{gbv}");
    let document =
        app.graphql(Some(MANAGER), INTENT, intent_input(4, "DOCUMENT", "report.pdf", "application/pdf", 5)).await;
    assert_eq!(document["data"]["createUploadIntent"]["bucket"], "documents", "{document}");
}

#[tokio::test]
async fn bad_uploads_are_refused_and_lose_nothing() {
    let app = spawn_app().await;
    let bad = [
        intent_input(1, "EVIDENCE", "x.exe", "application/x-msdownload", 5),
        intent_input(1, "EVIDENCE", "x.jpg", "image/jpeg", 0),
        // Evidence (video from a phone) up to 500 MiB, documents up to 50 MiB.
        intent_input(1, "EVIDENCE", "x.mp4", "video/mp4", 500 * 1024 * 1024 + 1),
        intent_input(1, "DOCUMENT", "x.pdf", "application/pdf", 50 * 1024 * 1024 + 1),
        intent_input(1, "EVIDENCE", "", "image/jpeg", 5),
        intent_input(1, "EVIDENCE", "\u{0}\u{1}", "image/jpeg", 5),
    ];
    for input in bad {
        let response = app.graphql(Some(CITIZEN), INTENT, input.clone()).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{input}: {response}");
    }
    // Directory parts of a file name never reach the path.
    let sneaky =
        app.graphql(Some(CITIZEN), INTENT, intent_input(1, "EVIDENCE", "../../etc/passwd.jpg", "image/jpeg", 5)).await;
    let path = sneaky["data"]["createUploadIntent"]["path"].as_str().unwrap_or_else(|| panic!("{sneaky}"));
    assert!(!path.contains(".."), "{path}");

    // Confirming before uploading, uploading what was not declared, confirming twice.
    let intent = app.graphql(Some(CITIZEN), INTENT, intent_input(1, "EVIDENCE", "p.png", "image/png", 100)).await;
    let intent = intent["data"]["createUploadIntent"].clone();
    let early = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": intent["id"] })).await;
    assert_eq!(error_code(&early), Some("BAD_USER_INPUT"), "{early}");
    // Someone else's intent does not exist for them.
    let theirs = app.graphql(Some(MANAGER), CONFIRM, json!({ "id": intent["id"] })).await;
    assert_eq!(error_code(&theirs), Some("NOT_FOUND"), "{theirs}");
    // The signed URL takes the declared type only; what a backend that cannot bind it
    // (Supabase) would take is checked again at confirmation.
    assert_eq!(
        put(&app, intent["uploadUrl"].as_str().unwrap(), "application/pdf", vec![1; 50]).await,
        StatusCode::BAD_REQUEST
    );
    let path = intent["path"].as_str().unwrap();
    assert_eq!(app.put_as_service("evidence", path, "application/pdf", vec![1; 50]).await, StatusCode::OK);
    let mismatch = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": intent["id"] })).await;
    assert_eq!(error_code(&mismatch), Some("BAD_USER_INPUT"), "{mismatch}");
    // The upload URL cannot overwrite what is there.
    assert!(!put(&app, intent["uploadUrl"].as_str().unwrap(), "image/png", vec![2; 50]).await.is_success());

    let ok = app.graphql(Some(CITIZEN), INTENT, intent_input(1, "EVIDENCE", "q.png", "image/png", 100)).await;
    let ok = ok["data"]["createUploadIntent"].clone();
    assert!(put(&app, ok["uploadUrl"].as_str().unwrap(), "image/png", vec![3; 60]).await.is_success());
    assert!(app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": ok["id"] })).await.get("errors").is_none());
    let twice = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": ok["id"] })).await;
    assert_eq!(error_code(&twice), Some("CONFLICT"), "{twice}");
    // Link lifetimes are bounded.
    for expires in [0, 604_801] {
        let q = format!("query($id: ID!) {{ ticket(id: $id) {{ media {{ signedUrl(expiresIn: {expires}) }} }} }}");
        let response = app.graphql(Some(CITIZEN), &q, json!({ "id": t(1) })).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{expires}: {response}");
    }
}

/// A server that declares a 60 MiB body and sends a few bytes: refused on the header alone.
async fn declared_huge_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 2048];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 62914560\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&[0u8; 16]).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    addr
}

/// A small HTTP server standing in for WhatsApp's and Twilio's media URLs.
async fn media_server() -> std::net::SocketAddr {
    async fn jpeg() -> Response {
        ([(header::CONTENT_TYPE, "image/jpeg")], vec![0xFFu8, 0xD8, 0xFF, 0xE0, 1, 2, 3]).into_response()
    }
    async fn html() -> Response {
        ([(header::CONTENT_TYPE, "text/html")], "<html></html>").into_response()
    }
    async fn streamed_huge() -> Response {
        let chunk = bytes::Bytes::from(vec![0u8; 1024 * 1024]);
        let stream = futures_util::stream::iter((0..60).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        ([(header::CONTENT_TYPE, "image/jpeg")], Body::from_stream(stream)).into_response()
    }
    async fn slow() -> Response {
        tokio::time::sleep(Duration::from_secs(5)).await;
        jpeg().await
    }
    let router = Router::new()
        .route("/media/photo.jpg", get(jpeg))
        .route("/media/page.html", get(html))
        .route("/media/streamed", get(streamed_huge))
        .route("/media/slow", get(slow))
        .route("/media/moved", get(|| async { Redirect::temporary("/media/photo.jpg") }))
        // Each hop within a one-second limit, the whole chain not.
        .route(
            "/media/dawdle/{n}",
            get(|axum::extract::Path(n): axum::extract::Path<u32>| async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                if n == 0 {
                    jpeg().await
                } else {
                    Redirect::temporary(&format!("/media/dawdle/{}", n - 1)).into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

const INGEST: &str = "mutation($id: ID!, $url: String!, $type: String) {
    ingestTicketMedia(ticketId: $id, url: $url, contentType: $type) { bucket purpose contentType sizeBytes path } }";

fn service_header(app: &TestApp) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("Bearer {}", app.issuer.sign(&json!({ "role": "service_role", "iat": now, "exp": now + 600 })).unwrap())
}

#[tokio::test]
async fn the_relay_ingests_media_from_urls() {
    let app = spawn_app_with(&[
        ("WARD_INGEST_ALLOW_PRIVATE", "true".to_string()),
        ("WARD_INGEST_TIMEOUT_SECONDS", "1".to_string()),
    ])
    .await;
    let server = media_server().await;
    let service = service_header(&app);
    let ingest = |ticket: usize, path: &str, content_type: Option<&str>| json!({ "id": t(ticket), "url": format!("http://{server}{path}"), "type": content_type });
    let ok = app.graphql_with_header(Some(&service), INGEST, ingest(1, "/media/photo.jpg", Some("image/jpeg"))).await;
    let media = &ok["data"]["ingestTicketMedia"];
    assert_eq!(media["bucket"], "evidence", "{ok}");
    assert_eq!(media["sizeBytes"], 7);
    assert!(media["path"].as_str().unwrap().ends_with("/photo.jpg"));
    // A sensitive ticket's media goes behind the GBV firewall; redirects are followed.
    let gbv = app.graphql_with_header(Some(&service), INGEST, ingest(3, "/media/moved", None)).await;
    assert_eq!(gbv["data"]["ingestTicketMedia"]["bucket"], "gbv-evidence", "{gbv}");
    assert_eq!(gbv["data"]["ingestTicketMedia"]["purpose"], "GBV_EVIDENCE");
    // What is refused.
    for (path, declared, code) in [
        ("/media/page.html", None, "BAD_USER_INPUT"),
        ("/media/photo.jpg", Some("application/pdf"), "BAD_USER_INPUT"),
        ("/media/streamed", None, "BAD_USER_INPUT"),
        ("/media/slow", None, "UNAVAILABLE"),
        ("/media/dawdle/3", None, "UNAVAILABLE"),
        ("/media/missing", None, "BAD_USER_INPUT"),
    ] {
        let response = app.graphql_with_header(Some(&service), INGEST, ingest(1, path, declared)).await;
        assert_eq!(error_code(&response), Some(code), "{path}: {response}");
    }
    let huge = declared_huge_server().await;
    let response = app
        .graphql_with_header(Some(&service), INGEST, json!({ "id": t(1), "url": format!("http://{huge}/huge.jpg") }))
        .await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "declared too large: {response}");
    // Nothing but the two good files was recorded.
    let files = app
        .graphql(
            Some(ADMIN),
            "query($a: ID!, $b: ID!) { a: ticket(id: $a) { media { id } } b: ticket(id: $b) { media { id } } }",
            json!({ "a": t(1), "b": t(3) }),
        )
        .await;
    assert_eq!(files["data"]["a"]["media"].as_array().unwrap().len(), 1, "{files}");
    assert_eq!(files["data"]["b"]["media"].as_array().unwrap().len(), 1, "{files}");
    // Only the relay ingests.
    let manager = app.graphql(Some(MANAGER), INGEST, ingest(1, "/media/photo.jpg", None)).await;
    assert_eq!(error_code(&manager), Some("FORBIDDEN"));
}

#[tokio::test]
async fn ingest_refuses_internal_addresses_outside_tests() {
    let app = spawn_app().await;
    let server = media_server().await;
    let service = service_header(&app);
    let special = [
        "http://localhost:1/x",
        "http://169.254.169.254/latest",
        "http://[64:ff9b::a9fe:a9fe]/latest",
        "http://[2002:7f00:1::1]/",
        "http://240.0.0.1/",
        "http://[::ffff:7f00:1]/",
        "http://0x7f.1/",
        "http://2130706433/",
    ];
    for url in std::iter::once(format!("http://{server}/media/photo.jpg")).chain(special.map(String::from)) {
        let response = app.graphql_with_header(Some(&service), INGEST, json!({ "id": t(1), "url": url })).await;
        assert_eq!(error_code(&response), Some("FORBIDDEN"), "{url}: {response}");
    }
    let response =
        app.graphql_with_header(Some(&service), INGEST, json!({ "id": t(1), "url": "ftp://example.com/x" })).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"));
}

/// Each kind of file has its own limit (evidence video 500 MiB, documents 50 MiB), in GraphQL
/// and in the database's intent guard for direct SQL as `authenticated`.
#[tokio::test]
async fn size_limits_follow_the_purpose() {
    let app = spawn_app().await;
    let big_video = intent_input(1, "EVIDENCE", "clip.mp4", "video/mp4", 400 * 1024 * 1024);
    for who in [CITIZEN, MANAGER] {
        let ok = app.graphql(Some(who), INTENT, big_video.clone()).await;
        assert_eq!(ok["data"]["createUploadIntent"]["bucket"], "evidence", "{who}: {ok}");
    }
    let big_document = intent_input(1, "DOCUMENT", "scan.pdf", "application/pdf", 60 * 1024 * 1024);
    for who in [CITIZEN, MANAGER] {
        let refused = app.graphql(Some(who), INTENT, big_document.clone()).await;
        assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"), "{who}: {refused}");
    }

    // The same promises made in SQL as the citizen.
    let pool = app.db.app_pool().await;
    let me = ward::demo::person(CITIZEN).expect("the demo citizen").profile_id;
    let ticket = TICKETS.iter().find(|t| t.reporter == CITIZEN && !t.is_sensitive).expect("a citizen's ticket");
    let insert = |purpose: &str, bucket: &str, size: i64| {
        format!(
            "insert into public.upload_intents (municipality_id, created_by, purpose, ticket_id, bucket, object_path,
               filename, content_type, max_size_bytes, expires_at)
             values ('{m}', '{me}', '{purpose}', '{t}', '{bucket}', '{m}/{f}/f.bin', 'f.bin', 'video/mp4', {size},
               now() + interval '1 hour')",
            m = ticket.municipality,
            t = ticket.id,
            f = uuid::Uuid::new_v4(),
        )
    };
    let citizen = crate::helpers::caller(CITIZEN);
    let as_citizen = |sql: String| {
        let pool = pool.clone();
        let citizen = citizen.clone();
        async move { crate::helpers::exec_as(&pool, &citizen, &sql, vec![]).await }
    };
    assert_eq!(as_citizen(insert("EVIDENCE", "evidence", 500 * 1024 * 1024)).await.expect("500 MiB of evidence"), 1);
    assert!(as_citizen(insert("EVIDENCE", "evidence", 500 * 1024 * 1024 + 1)).await.is_err());
    assert_eq!(as_citizen(insert("DOCUMENT", "documents", 50 * 1024 * 1024)).await.expect("50 MiB of documents"), 1);
    assert!(as_citizen(insert("DOCUMENT", "documents", 50 * 1024 * 1024 + 1)).await.is_err());
    let owner = app.db.owner().await;
    let limit = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select file_size_limit from storage.buckets where id = 'gbv-evidence'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "file_size_limit")
        .unwrap();
    assert_eq!(limit, 500 * 1024 * 1024);
}
