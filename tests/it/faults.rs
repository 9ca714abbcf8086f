//! Load and faults: many storage operations on the default pool, an exhausted pool answered
//! `UNAVAILABLE` at once, a failed request that keeps none of its changes, clients that hang
//! up mid-request, and the limits on what one client may hold.

use std::io::Cursor;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};
use ward::demo::TICKETS;

use crate::helpers::people::{CITIZEN, MANAGER};
use crate::helpers::{TestApp, error_code, log_lines, spawn_app_with};

fn t(n: usize) -> String {
    TICKETS[n - 1].id.to_string()
}

fn png(side: u32) -> Vec<u8> {
    let image =
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(side, side, |x, y| image::Rgb([x as u8, y as u8, 99])));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A failure of one operation: what it was and what came back.
type Failures = Vec<String>;

fn check(what: &str, response: &Value, failures: &mut Failures) {
    if response.get("errors").is_some() {
        failures.push(format!("{what}: {response}"));
    }
}

async fn put(app: &TestApp, url: &str, content_type: &str, body: Vec<u8>, failures: &mut Failures) {
    match app.http.put(url).header("content-type", content_type).body(body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => failures.push(format!("PUT: HTTP {}", r.status())),
        Err(e) => failures.push(format!("PUT: {e}")),
    }
}

/// Evidence for ticket 1: intent, upload, confirm (three storage operations).
async fn evidence_flow(app: &TestApp, n: usize) -> Failures {
    let mut failures = Vec::new();
    let bytes = format!("evidence {n}").into_bytes();
    let input = json!({ "input": { "ticketId": t(1), "purpose": "EVIDENCE", "filename": format!("e{n}.jpg"),
        "contentType": "image/jpeg", "sizeBytes": bytes.len() } });
    let intent = app
        .graphql(
            Some(MANAGER),
            "mutation($input: CreateUploadIntentInput!) { createUploadIntent(input: $input) { id uploadUrl } }",
            input,
        )
        .await;
    check("createUploadIntent", &intent, &mut failures);
    let Some(url) = intent["data"]["createUploadIntent"]["uploadUrl"].as_str() else { return failures };
    put(app, url, "image/jpeg", bytes, &mut failures).await;
    let id = intent["data"]["createUploadIntent"]["id"].clone();
    let confirmed = app
        .graphql(Some(MANAGER), "mutation($id: ID!) { confirmUpload(intentId: $id) { id } }", json!({ "id": id }))
        .await;
    check("confirmUpload", &confirmed, &mut failures);
    failures
}

/// A photo: intent, upload, confirm (decoded and thumbnailed).
async fn photo_flow(app: &TestApp, n: usize) -> Failures {
    let mut failures = Vec::new();
    let bytes = png(8 + (n % 8) as u32);
    let input =
        json!({ "input": { "filename": format!("p{n}.png"), "contentType": "image/png", "sizeBytes": bytes.len() } });
    let intent = app
        .graphql(
            Some(CITIZEN),
            "mutation($input: PhotoUploadInput!) { createPhotoUpload(input: $input) { id uploadUrl } }",
            input,
        )
        .await;
    check("createPhotoUpload", &intent, &mut failures);
    let Some(url) = intent["data"]["createPhotoUpload"]["uploadUrl"].as_str() else { return failures };
    put(app, url, "image/png", bytes, &mut failures).await;
    let id = intent["data"]["createPhotoUpload"]["id"].clone();
    let confirmed = app
        .graphql(Some(CITIZEN), "mutation($id: ID!) { confirmPhotoUpload(intentId: $id) { id } }", json!({ "id": id }))
        .await;
    check("confirmPhotoUpload", &confirmed, &mut failures);
    failures
}

async fn signed_urls(app: &TestApp) -> Failures {
    let mut failures = Vec::new();
    let response = app
        .graphql(
            Some(MANAGER),
            "query($id: ID!) { ticket(id: $id) { evidence { signedUrl(expiresIn: 60) } } }",
            json!({ "id": t(1) }),
        )
        .await;
    check("signedUrl", &response, &mut failures);
    if response["data"]["ticket"]["evidence"].as_array().is_none_or(|e| e.is_empty()) {
        failures.push(format!("signedUrl: no evidence in {response}"));
    }
    failures
}

async fn photo_list(app: &TestApp) -> Failures {
    let mut failures = Vec::new();
    let response = app
        .graphql(Some(CITIZEN), "{ me { photos(first: 20) { nodes { url(expiresIn: 60) thumbnailUrl } } } }", json!({}))
        .await;
    check("photos", &response, &mut failures);
    failures
}

#[tokio::test]
async fn two_hundred_concurrent_storage_operations_on_the_default_pool() {
    // The default pool (10 connections), not the harness's smaller one.
    let app = spawn_app_with(&[("WARD_DB_POOL_SIZE", "10".to_string())]).await;
    let first = evidence_flow(&app, 0).await;
    assert!(first.is_empty(), "{first:?}");
    // 50 evidence uploads and 50 photo uploads (intent, PUT, confirm: 300 calls), 50 reads
    // of signed URLs and 50 photo lists, all at once.
    let mut work: Vec<std::pin::Pin<Box<dyn Future<Output = Failures> + Send + '_>>> = Vec::new();
    for n in 1..=50 {
        work.push(Box::pin(evidence_flow(&app, n)));
        work.push(Box::pin(photo_flow(&app, n)));
        work.push(Box::pin(signed_urls(&app)));
        work.push(Box::pin(photo_list(&app)));
    }
    let failures: Failures = join_all(work).await.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{} failures, e.g. {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let count = app.graphql(Some(CITIZEN), "{ me { photos { totalCount } } }", json!({})).await;
    assert_eq!(count["data"]["me"]["photos"]["totalCount"], 50, "{count}");
}

/// Sends a GraphQL request as `who` in a task of its own: its HTTP status and body.
fn in_background(
    app: &TestApp,
    who: &str,
    query: &'static str,
    variables: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let request = app
        .http
        .post(format!("http://{}/graphql", app.addr))
        .bearer_auth(app.token(who))
        .json(&json!({ "query": query, "variables": variables }));
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json::<Value>().await.unwrap())
    })
}

/// Holds a row lock from the owner's side until the returned transaction ends.
async fn lock_row(owner: &DatabaseConnection, table: &str, id: &str) -> sea_orm::DatabaseTransaction {
    let tx = owner.begin().await.unwrap();
    tx.execute_unprepared(&format!("select 1 from {table} where id = '{id}' for update")).await.unwrap();
    tx
}

async fn lock_ticket_one(owner: &DatabaseConnection) -> sea_orm::DatabaseTransaction {
    lock_row(owner, "tickets", &t(1)).await
}

/// Waits until a request's statement in this database waits on a lock; returns its pid.
async fn waiting_on_lock(owner: &DatabaseConnection) -> i32 {
    for _ in 0..200 {
        let row = owner
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "select pid from pg_stat_activity where datname = current_database() \
                 and wait_event_type = 'Lock' and usename = 'authenticator' limit 1",
            ))
            .await
            .unwrap();
        if let Some(row) = row {
            return row.try_get("", "pid").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no request came to wait on the lock");
}

#[tokio::test]
async fn an_exhausted_pool_is_answered_unavailable_at_once_and_counted() {
    let app =
        spawn_app_with(&[("WARD_DB_POOL_SIZE", "1".to_string()), ("WARD_DB_ACQUIRE_TIMEOUT_MS", "300".to_string())])
            .await;
    let owner = app.db.owner().await;
    let lock = lock_ticket_one(&owner).await;
    // A mutation takes the pool's only connection and waits on the lock.
    let holder = in_background(
        &app,
        MANAGER,
        "mutation($id: ID!) { setTicketStatus(id: $id, status: IN_PROGRESS) { status } }",
        json!({ "id": t(1) }),
    );
    waiting_on_lock(&owner).await;
    // Anyone else now finds no connection: a quick, retryable answer, not a hang.
    let started = Instant::now();
    let response = app
        .http
        .post(format!("http://{}/graphql", app.addr))
        .bearer_auth(app.token(CITIZEN))
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("UNAVAILABLE"), "{body}");
    assert!(!body.to_string().contains("pool"), "no internals in {body}");
    assert!(waited < Duration::from_secs(3), "answered after {waited:?}");
    let metrics = app.http.get(format!("http://{}/metrics", app.addr)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ward_graphql_operations_total{") && l.contains("outcome=\"UNAVAILABLE\"")),
        "{metrics}"
    );
    assert!(metrics.lines().any(|l| l.starts_with("ward_http_requests_total{") && l.contains("status=\"503\"")));
    // The lock goes; the waiting mutation completes, and the server serves again.
    lock.rollback().await.unwrap();
    let (_, held) = holder.await.unwrap();
    assert_eq!(held["data"]["setTicketStatus"]["status"], "IN_PROGRESS", "{held}");
    let me = app.graphql(Some(CITIZEN), "{ me { id } }", json!({})).await;
    assert!(me["data"]["me"]["id"].is_string(), "{me}");
}

#[tokio::test]
async fn a_request_that_fails_reports_none_of_its_mutations_as_done() {
    let app = spawn_app_with(&[]).await;
    let owner = app.db.owner().await;
    let lock = lock_ticket_one(&owner).await;
    // Two mutations: the first succeeds, the second waits on the lock and is then cancelled
    // by the database (an internal failure), so the request's transaction rolls back.
    let request = in_background(
        &app,
        MANAGER,
        "mutation($id: ID!) {
            renamed: updateMyProfile(input: { displayName: \"Rolled Back\" }) { id displayName }
            moved: setTicketStatus(id: $id, status: IN_PROGRESS) { status } }",
        json!({ "id": t(1) }),
    );
    let pid = waiting_on_lock(&owner).await;
    owner.execute_unprepared(&format!("select pg_cancel_backend({pid})")).await.unwrap();
    let (status, body) = request.await.unwrap();
    assert_eq!(status, 200);
    lock.rollback().await.unwrap();
    assert_eq!(body["data"], Value::Null, "no field may say it happened: {body}");
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["extensions"]["code"] == "INTERNAL"), "{body}");
    assert!(errors.iter().any(|e| e["message"].as_str().unwrap().contains("nothing this request changed was kept")));
    // And indeed nothing was kept.
    let me = app.graphql(Some(MANAGER), "{ me { displayName } }", json!({})).await;
    assert_ne!(me["data"]["me"]["displayName"], "Rolled Back", "{me}");
    let ticket =
        app.graphql(Some(MANAGER), "query($id: ID!) { ticket(id: $id) { status } }", json!({ "id": t(1) })).await;
    assert_ne!(ticket["data"]["ticket"]["status"], "IN_PROGRESS");
    // A read-only request with a failed field keeps what it read (nothing to roll back).
    let ok = app.graphql(Some(MANAGER), "{ me { displayName } }", json!({})).await;
    assert!(ok["data"]["me"]["displayName"].is_string());
}

#[tokio::test]
async fn clients_hanging_up_mid_request_leave_no_connection_in_a_transaction() {
    let app = spawn_app_with(&[]).await;
    // Mutations and reads, each abandoned by its client after 0 to 30 ms: some before BEGIN,
    // some mid-statement, some while committing.
    let mut cut = 0;
    for round in 0..6 {
        let mut requests = Vec::new();
        for n in 0..40u64 {
            let (http, addr) = (app.http.clone(), app.addr);
            let (token, query) = if n % 2 == 0 {
                (
                    app.token(MANAGER),
                    format!(
                        "mutation {{ updateMyProfile(input: {{ displayName: \"Manager {round} {n}\" }}) {{ id }} }}"
                    ),
                )
            } else {
                (
                    app.token(CITIZEN),
                    "{ me { id displayName municipality { name } } tickets(first: 5) { nodes { id } } }".to_string(),
                )
            };
            let patience = Duration::from_millis((n * 7 + round * 3) % 31);
            requests.push(async move {
                let send = http
                    .post(format!("http://{addr}/graphql"))
                    .bearer_auth(token)
                    .json(&json!({ "query": query }))
                    .send();
                tokio::time::timeout(patience, send).await.is_err()
            });
        }
        cut += join_all(requests).await.into_iter().filter(|c| *c).count();
    }
    assert!(cut > 0, "no request was cut short");
    // Once the dust settles: no connection of ward's sits in a transaction...
    let owner = app.db.owner().await;
    let mut in_transaction = i64::MAX;
    for _ in 0..100 {
        let row = owner
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "select count(*) filter (where state <> 'idle') as busy from pg_stat_activity \
                 where datname = current_database() and usename = 'authenticator' and backend_type = 'client backend' \
                 and query not ilike 'listen%' and query not ilike 'unlisten%'",
            ))
            .await
            .unwrap()
            .unwrap();
        in_transaction = row.try_get("", "busy").unwrap();
        if in_transaction == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(in_transaction, 0, "connections left busy or in a transaction");
    // ...every request after it runs as its own caller (no one else's settings or transaction)...
    let checks = (0..20).map(|n| {
        let who = if n % 2 == 0 { CITIZEN } else { MANAGER };
        let app = &app;
        async move { (who, app.graphql(Some(who), "{ me { email role } }", json!({})).await) }
    });
    for (who, me) in join_all(checks).await {
        assert_eq!(me["data"]["me"]["email"], who, "{me}");
    }
    // ...and PostgreSQL never saw a COMMIT or ROLLBACK outside a transaction.
    let warnings = log_lines(&app.db.name, "there is no transaction in progress");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test]
async fn limits_on_what_one_client_may_hold() {
    let app = spawn_app_with(&[]).await;
    // A credential over 16 KiB is refused with a clear error, over HTTP...
    let huge = format!("Bearer {}", "a".repeat(20 * 1024));
    let response = app.graphql_with_header(Some(&huge), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"));
    assert!(response["errors"][0]["message"].as_str().unwrap().contains("16384 bytes"), "{response}");
    // ...and over a websocket.
    match crate::subscriptions::connect(app.addr, json!({ "Authorization": huge }), "graphql-transport-ws").await {
        crate::subscriptions::Init::Closed(code, reason) => {
            assert_eq!(code, 4403);
            assert!(reason.contains("16384"), "{reason}");
        }
        crate::subscriptions::Init::Acked(_) => panic!("a huge token was accepted"),
    }
    // Filter lists: repeats are one value; more than 50 values are refused, not sent to SQL.
    let query = "query($s: [TicketStatus!]) { tickets(first: 50, filter: { status: $s }) { nodes { id } } }";
    let repeated = app.graphql(Some(MANAGER), query, json!({ "s": vec!["OPEN"; 50] })).await;
    let once = app.graphql(Some(MANAGER), query, json!({ "s": ["OPEN"] })).await;
    assert!(repeated.get("errors").is_none(), "{repeated}");
    assert_eq!(repeated["data"], once["data"]);
    assert!(!once["data"]["tickets"]["nodes"].as_array().unwrap().is_empty());
    let long = app.graphql(Some(MANAGER), query, json!({ "s": vec!["OPEN"; 5000] })).await;
    assert_eq!(error_code(&long), Some("BAD_USER_INPUT"), "{long}");
    // Operations per websocket: 100 run; the 101st is refused with a coded error, and one
    // more is admitted once one completes.
    let mut client = crate::subscriptions::Client::new(&app, MANAGER).await;
    // From the current event on, so that a subscription still being set up when the ticket
    // changes replays the change.
    let after = json!({ "after": crate::subscriptions::latest_event_id(&app).await.to_string() });
    for id in 0..100 {
        client.subscribe(&id.to_string(), after.clone()).await;
    }
    client.subscribe("one-too-many", after.clone()).await;
    // The array form serde would also read as a message is dropped, not run uncounted.
    client.send_raw(json!(["subscribe", "sneaky", { "query": "subscription { ticketUpdates { eventId } }" }])).await;
    let refusal = client.next(Duration::from_secs(10)).await.expect("a refusal");
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["id"], "one-too-many");
    assert_eq!(refusal["payload"][0]["extensions"]["code"], "TOO_MANY_OPERATIONS");
    client.complete("7").await;
    client.subscribe("room-again", after).await;
    crate::subscriptions::set_status(&app, MANAGER, 1, "IN_PROGRESS").await;
    // Every running subscription gets the update, the newcomer among them; no error.
    let mut got = std::collections::HashSet::new();
    while got.len() < 100 {
        let Some(message) = client.next(Duration::from_secs(10)).await else {
            panic!("updates for {} subscriptions only", got.len());
        };
        if message["type"] == "complete" && message["id"] == "7" {
            continue;
        }
        assert_eq!(message["type"], "next", "{message}");
        got.insert(message["id"].as_str().unwrap().to_string());
    }
    assert!(
        got.contains("room-again") && !got.contains("7") && !got.contains("one-too-many") && !got.contains("sneaky")
    );
    // The service role does not get a long-lived connection.
    let now = chrono::Utc::now().timestamp();
    let service = app.issuer.sign(&json!({ "role": "service_role", "iat": now, "exp": now + 600 })).unwrap();
    match crate::subscriptions::connect(
        app.addr,
        json!({ "Authorization": format!("Bearer {service}") }),
        "graphql-transport-ws",
    )
    .await
    {
        crate::subscriptions::Init::Closed(code, _) => assert_eq!(code, 4403),
        crate::subscriptions::Init::Acked(_) => panic!("a service-role socket was accepted"),
    }
}

#[tokio::test]
async fn intents_nobody_confirmed_expire_once_and_lose_their_objects() {
    let app = spawn_app_with(&[("WARD_UPLOAD_SWEEP_SECONDS", "0".to_string())]).await;
    let intent = async |n: usize, upload: bool| {
        let bytes = png(8);
        let input = json!({ "input": { "filename": format!("x{n}.png"), "contentType": "image/png", "sizeBytes": bytes.len() } });
        let created = app
            .graphql(
                Some(CITIZEN),
                "mutation($input: PhotoUploadInput!) { createPhotoUpload(input: $input) { id path uploadUrl } }",
                input,
            )
            .await;
        let created = created["data"]["createPhotoUpload"].clone();
        if upload {
            let mut failures = Vec::new();
            put(&app, created["uploadUrl"].as_str().unwrap(), "image/png", bytes, &mut failures).await;
            assert!(failures.is_empty(), "{failures:?}");
        }
        (created["id"].as_str().unwrap().to_string(), created["path"].as_str().unwrap().to_string())
    };
    let (abandoned, abandoned_path) = intent(1, true).await;
    let (confirmed, confirmed_path) = intent(2, true).await;
    let (never_uploaded, _) = intent(3, false).await;
    let (fresh, fresh_path) = intent(4, true).await;
    let done = app
        .graphql(
            Some(CITIZEN),
            "mutation($id: ID!) { confirmPhotoUpload(intentId: $id) { id } }",
            json!({ "id": confirmed }),
        )
        .await;
    assert!(done.get("errors").is_none(), "{done}");
    let owner = app.db.owner().await;
    owner
        .execute_unprepared(&format!(
            "update upload_intents set expires_at = now() - interval '1 hour' where id in ('{abandoned}', '{confirmed}', '{never_uploaded}')"
        ))
        .await
        .unwrap();
    // Two servers sweep at once: each intent expires once.
    let (a, b) = (crate::storage::local_store(&app).await, crate::storage::local_store(&app).await);
    // A confirmation that stored a thumbnail and then lost its intent to the sweep left one.
    let citizen = ward::demo::person(CITIZEN).unwrap().profile_id;
    let orphan = ward::storage::ObjectPath::parse(&format!("{citizen}/{never_uploaded}/thumbnail.jpg")).unwrap();
    ward::storage::ObjectStore::upload(
        &a,
        "user-photos-thumbnails",
        &orphan,
        "image/jpeg",
        bytes::Bytes::from_static(b"thumb"),
    )
    .await
    .unwrap();
    let (pool_a, pool_b) = (app.db.app_pool().await, app.db.app_pool().await);
    let (first, second) =
        tokio::join!(ward::jobs::expire_uploads_once(&pool_a, &a), ward::jobs::expire_uploads_once(&pool_b, &b));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.0 + second.0, 2, "{first:?} {second:?}");
    assert_eq!(first.1 + second.1, 2, "the abandoned upload and the orphaned thumbnail: {first:?} {second:?}");
    assert!(!crate::storage::storage_root(&app).join("user-photos-thumbnails").join(orphan.as_str()).exists());
    let again = ward::jobs::expire_uploads_once(&pool_a, &a).await.unwrap();
    assert_eq!(again, (0, 0));
    let status = async |id: &str| {
        let row = owner
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("select status from upload_intents where id = '{id}'"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<String>("", "status").unwrap()
    };
    assert_eq!(status(&abandoned).await, "EXPIRED");
    assert_eq!(status(&never_uploaded).await, "EXPIRED");
    assert_eq!(status(&confirmed).await, "CONFIRMED");
    assert_eq!(status(&fresh).await, "PENDING");
    let object_exists = |path: &str| crate::storage::storage_root(&app).join("user-photos").join(path).exists();
    assert!(!object_exists(&abandoned_path), "the abandoned upload's file is gone");
    assert!(object_exists(&confirmed_path) && object_exists(&fresh_path), "the others' files stay");
    let late = app
        .graphql(
            Some(CITIZEN),
            "mutation($id: ID!) { confirmPhotoUpload(intentId: $id) { id } }",
            json!({ "id": abandoned }),
        )
        .await;
    assert_eq!(error_code(&late), Some("BAD_USER_INPUT"), "{late}");
    assert!(late["errors"][0]["message"].as_str().unwrap().contains("expired"));
}

/// How the fake Supabase Storage answers signing calls.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FakeMode {
    /// After 1.5 s, a signed URL.
    Slow,
    /// HTTP 503, every time.
    Down,
}

/// A stand-in for Supabase Storage's signing endpoint; `arrived` is notified as each call
/// comes in.
async fn fake_supabase_storage(
    mode: std::sync::Arc<std::sync::Mutex<FakeMode>>,
    arrived: std::sync::Arc<tokio::sync::Notify>,
) -> std::net::SocketAddr {
    use axum::response::IntoResponse;
    // Each signing call: noted, then answered as the mode says with `answer(bucket, path)`.
    let route = |answer: fn(&str, &str) -> Value| {
        let (mode, arrived) = (mode.clone(), arrived.clone());
        axum::routing::post(move |axum::extract::Path((bucket, path)): axum::extract::Path<(String, String)>| {
            let (mode, arrived) = (mode.clone(), arrived.clone());
            async move {
                arrived.notify_one();
                let mode = *mode.lock().unwrap();
                match mode {
                    FakeMode::Down => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response(),
                    FakeMode::Slow => {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                        axum::Json(answer(&bucket, &path)).into_response()
                    }
                }
            }
        })
    };
    let router = axum::Router::new()
        .route(
            "/storage/v1/object/sign/{bucket}/{*path}",
            route(|bucket, path| json!({ "signedURL": format!("/object/sign/{bucket}/{path}?token=fake") })),
        )
        .route(
            "/storage/v1/object/upload/sign/{bucket}/{*path}",
            route(|bucket, path| json!({ "url": format!("/object/upload/sign/{bucket}/{path}?token=fake"), "token": "fake" })),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test]
async fn slow_or_failing_storage_holds_no_connection_and_answers_unavailable() {
    let mode = std::sync::Arc::new(std::sync::Mutex::new(FakeMode::Slow));
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let fake = fake_supabase_storage(mode.clone(), arrived.clone()).await;
    // One connection, and little patience for it.
    let app = spawn_app_with(&[
        ("WARD_STORAGE", "supabase".to_string()),
        ("SUPABASE_URL", format!("http://{fake}")),
        ("SUPABASE_SERVICE_ROLE_KEY", "fake-service-key".to_string()),
        ("WARD_DB_POOL_SIZE", "1".to_string()),
        ("WARD_DB_ACQUIRE_TIMEOUT_MS", "500".to_string()),
    ])
    .await;
    let intent = json!({ "input": { "ticketId": t(1), "purpose": "EVIDENCE", "filename": "slow.jpg",
        "contentType": "image/jpeg", "sizeBytes": 10 } });
    const INTENT: &str =
        "mutation($input: CreateUploadIntentInput!) { createUploadIntent(input: $input) { id uploadUrl } }";
    let slow = in_background(&app, MANAGER, INTENT, intent.clone());
    // While storage takes its time over the signature, the request holds no connection: the
    // pool's only one serves others.
    tokio::time::timeout(Duration::from_secs(10), arrived.notified()).await.expect("the signing call");
    let me = app.graphql(Some(CITIZEN), "{ me { id } }", json!({})).await;
    assert!(me["data"]["me"]["id"].is_string(), "{me}");
    let (_, slow) = slow.await.unwrap();
    assert!(
        slow["data"]["createUploadIntent"]["uploadUrl"].as_str().unwrap().starts_with(&format!("http://{fake}/")),
        "{slow}"
    );
    // Reading a signed link to a file: the same, while Supabase signs it.
    let owner = app.db.owner().await;
    owner
        .execute_unprepared(&format!(
            "insert into media (ticket_id, municipality_id, purpose, bucket, object_path, content_type, size_bytes) \
             select id, municipality_id, 'EVIDENCE', 'evidence', municipality_id || '/f/photo.jpg', 'image/jpeg', 10 \
             from tickets where id = '{}'",
            t(1)
        ))
        .await
        .unwrap();
    let link = in_background(
        &app,
        MANAGER,
        "query($id: ID!) { ticket(id: $id) { evidence { signedUrl(expiresIn: 60) } } }",
        json!({ "id": t(1) }),
    );
    tokio::time::timeout(Duration::from_secs(10), arrived.notified()).await.expect("the signing call");
    let me = app.graphql(Some(CITIZEN), "{ me { id } }", json!({})).await;
    assert!(me["data"]["me"]["id"].is_string(), "{me}");
    let (_, link) = link.await.unwrap();
    assert!(
        link["data"]["ticket"]["evidence"][0]["signedUrl"].as_str().unwrap().starts_with(&format!("http://{fake}/")),
        "{link}"
    );
    // Storage down: UNAVAILABLE (retryable, 503), and no intent recorded for it.
    *mode.lock().unwrap() = FakeMode::Down;
    let down = app.graphql(Some(MANAGER), INTENT, intent).await;
    assert_eq!(error_code(&down), Some("UNAVAILABLE"), "{down}");
    assert!(!down.to_string().contains("upstream down"), "no upstream text reaches the client: {down}");
    let row = owner
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "select count(*) as n from upload_intents"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 1, "only the slow call's intent exists");
}

#[tokio::test]
async fn a_photo_deletion_that_rolls_back_keeps_its_files() {
    let app = spawn_app_with(&[]).await;
    let bytes = png(16);
    let input = json!({ "input": { "filename": "kept.png", "contentType": "image/png", "sizeBytes": bytes.len() } });
    let intent = app
        .graphql(
            Some(CITIZEN),
            "mutation($input: PhotoUploadInput!) { createPhotoUpload(input: $input) { id uploadUrl } }",
            input,
        )
        .await;
    let intent = &intent["data"]["createPhotoUpload"];
    let mut failures = Vec::new();
    put(&app, intent["uploadUrl"].as_str().unwrap(), "image/png", bytes, &mut failures).await;
    let photo = app
        .graphql(
            Some(CITIZEN),
            "mutation($id: ID!) { confirmPhotoUpload(intentId: $id) { id url } }",
            json!({ "id": intent["id"] }),
        )
        .await;
    assert!(failures.is_empty() && photo.get("errors").is_none(), "{failures:?} {photo}");
    let (photo_id, url) = (
        photo["data"]["confirmPhotoUpload"]["id"].clone(),
        photo["data"]["confirmPhotoUpload"]["url"].as_str().unwrap().to_string(),
    );
    // The deletion succeeds, then the request fails (its second mutation is cancelled while
    // it waits on a lock): the photo and its files stay.
    let owner = app.db.owner().await;
    let citizen = ward::demo::person(CITIZEN).unwrap().profile_id.to_string();
    let lock = lock_row(&owner, "profiles", &citizen).await;
    let request = in_background(
        &app,
        CITIZEN,
        "mutation($id: ID!) { deletePhoto(id: $id) renamed: updateMyProfile(input: { displayName: \"Late\" }) { id } }",
        json!({ "id": photo_id }),
    );
    let pid = waiting_on_lock(&owner).await;
    owner.execute_unprepared(&format!("select pg_cancel_backend({pid})")).await.unwrap();
    let (_, failed) = request.await.unwrap();
    lock.rollback().await.unwrap();
    assert_eq!(failed["data"], Value::Null, "{failed}");
    let still = app.graphql(Some(CITIZEN), "{ me { photos { totalCount } } }", json!({})).await;
    assert_eq!(still["data"]["me"]["photos"]["totalCount"], 1, "{still}");
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 200, "the photo's file is still there");
    // A deletion that commits removes the files.
    let deleted =
        app.graphql(Some(CITIZEN), "mutation($id: ID!) { deletePhoto(id: $id) }", json!({ "id": photo_id })).await;
    assert!(deleted.get("errors").is_none(), "{deleted}");
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 404, "the file went with the photo");
}

#[tokio::test]
async fn serving_through_a_transaction_mode_pooler_is_refused_at_start_with_the_way_out() {
    let url = "postgres://ward_requests.project:pw@127.0.0.1:6543/postgres";
    let config = ward::config::Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.to_string()),
        "WARD_BIND" => Some("127.0.0.1:0".to_string()),
        _ => None,
    })
    .unwrap();
    let prepared =
        ward::app::PreparedDatabase { request_url: ward::config::Secret::new(url), owner_url: None, cluster: None };
    let Err(refused) = ward::app::App::build_on(&config, prepared).await else {
        panic!("served through a transaction-mode pooler")
    };
    let message = format!("{refused:#}");
    assert!(message.contains("transaction-mode") && message.contains("port 5432"), "{message}");
}
