//! What operators see and set: `/metrics` (its counts, and its bearer protection), request
//! ids, the production settings (introspection, playground, metrics off; CORS origins; body
//! limit), and the playground page's self-containment (the browser test is
//! `tests/clients/playground.test.mjs`).

use std::time::Duration;

use serde_json::{Value, json};
use ward::demo::TICKETS;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::subscriptions::Client;

pub async fn metrics_text(app: &TestApp) -> String {
    let response = app.http.get(format!("http://{}/metrics", app.addr)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels, exactly).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_operations_and_live_updates() {
    let app = spawn_app().await;
    let me = app.graphql(Some("manager@demo.test"), "{ me { id } }", json!({})).await;
    assert!(me.get("errors").is_none(), "{me}");
    let refused = app.graphql_with_header(Some("Bearer not-a-token"), "{ me { id } }", json!({})).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let broken = app.graphql(Some("manager@demo.test"), "{ me { id ", json!({})).await;
    assert!(broken.get("errors").is_some());

    let mut client = Client::new(&app, "manager@demo.test").await;
    client.subscribe("1", json!({})).await;
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics_text(&app).await;
        if sample(&text, "ward_subscriptions_active") == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sample(&text, "ward_subscriptions_active"), Some(1.0), "{text}");
    let mutation = app
        .graphql(
            Some("manager@demo.test"),
            "mutation($id: ID!) { setTicketStatus(id: $id, status: RESOLVED) { status } }",
            json!({ "id": TICKETS[1].id.to_string() }),
        )
        .await;
    assert!(mutation.get("errors").is_none(), "{mutation}");
    let update = client.update().await;
    assert_eq!(update["status"], "RESOLVED");

    // A storage call (signing an upload), and the signed upload on the storage routes.
    let intent = app
        .graphql(
            Some("manager@demo.test"),
            "mutation($input: CreateUploadIntentInput!) { createUploadIntent(input: $input) { uploadUrl } }",
            json!({ "input": { "ticketId": TICKETS[0].id.to_string(), "purpose": "EVIDENCE",
                               "filename": "photo.jpg", "contentType": "image/jpeg", "sizeBytes": 4 } }),
        )
        .await;
    let upload_url = intent["data"]["createUploadIntent"]["uploadUrl"].as_str().unwrap_or_else(|| panic!("{intent}"));
    let put =
        app.http.put(upload_url).header("content-type", "image/jpeg").body(vec![1u8, 2, 3, 4]).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    let text = metrics_text(&app).await;
    let at_least_one = |series: &str| {
        let value = sample(&text, series);
        assert!(value.is_some_and(|v| v >= 1.0), "{series} = {value:?} in\n{text}");
    };
    at_least_one(r#"ward_graphql_operations_total{operation="query",outcome="ok"}"#);
    at_least_one(r#"ward_graphql_operations_total{operation="mutation",outcome="ok"}"#);
    at_least_one(r#"ward_graphql_operations_total{operation="subscription",outcome="ok"}"#);
    at_least_one(r#"ward_graphql_operations_total{operation="unknown",outcome="UNAUTHENTICATED"}"#);
    at_least_one(r#"ward_graphql_operations_total{operation="unknown",outcome="GRAPHQL_PARSE_FAILED"}"#);
    at_least_one(r#"ward_graphql_operation_duration_seconds_count{operation="query"}"#);
    at_least_one(r#"ward_http_requests_total{method="POST",route="/graphql",status="200"}"#);
    at_least_one(r#"ward_http_requests_total{method="GET",route="/graphql/ws",status="101"}"#);
    at_least_one(r#"ward_http_request_duration_seconds_count{method="POST",route="/graphql"}"#);
    at_least_one(r#"ward_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/graphql"}"#);
    at_least_one("ward_realtime_events_total");
    at_least_one("ward_realtime_deliveries_total");
    assert_eq!(sample(&text, "ward_realtime_listener_reconnects_total"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "ward_db_pool_max_connections"), Some(4.0), "{text}");
    assert!(sample(&text, r#"ward_db_pool_connections{state="idle"}"#).is_some(), "{text}");
    at_least_one(r#"ward_storage_calls_total{call="create_signed_upload",outcome="ok"}"#);
    at_least_one(r#"ward_storage_call_duration_seconds_count{call="create_signed_upload",outcome="ok"}"#);
    assert!(text.trim_end().ends_with("# EOF"));
    // Paths with ids are labelled by their pattern, never by the raw path (or its token).
    let storage_routes: Vec<&str> =
        text.lines().filter(|l| l.starts_with("ward_http_requests_total{method=\"PUT\"")).collect();
    assert_eq!(storage_routes.len(), 1, "{text}");
    assert!(storage_routes[0].contains("/{") && !storage_routes[0].contains("photo.jpg"), "{text}");
    assert!(!text.contains("token="), "{text}");
}

#[tokio::test]
async fn a_metrics_token_protects_the_metrics() {
    let app = spawn_app_with(&[("WARD_METRICS_TOKEN", "metrics-secret".to_string())]).await;
    let url = format!("http://{}/metrics", app.addr);
    let anonymous = app.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = app.http.get(&url).bearer_auth("metrics-secreT").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.http.get(&url).bearer_auth("metrics-secret").send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("ward_http_requests"));
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let url = format!("http://{}/health", app.addr);
    let fresh = app.http.get(&url).send().await.unwrap();
    let id = fresh.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    // One a proxy set is kept.
    let given = app.http.get(&url).header("x-request-id", "from-the-proxy-1").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "from-the-proxy-1");
}

#[tokio::test]
async fn production_settings_turn_things_off_and_limit() {
    let app = spawn_app_with(&[
        ("WARD_INTROSPECTION", "off".to_string()),
        ("WARD_PLAYGROUND", "off".to_string()),
        ("WARD_METRICS", "off".to_string()),
        ("WARD_CORS_ORIGINS", "https://app.example".to_string()),
        ("WARD_MAX_BODY_BYTES", "4096".to_string()),
    ])
    .await;
    let base = format!("http://{}", app.addr);

    // async-graphql answers introspection fields with null when it is off.
    let introspection =
        app.graphql(None, r#"{ __schema { queryType { name } } __type(name: "Ticket") { name } }"#, json!({})).await;
    assert_eq!(introspection["data"]["__schema"], Value::Null, "{introspection}");
    assert_eq!(introspection["data"]["__type"], Value::Null, "{introspection}");
    let typename = app.graphql(None, "{ __typename }", json!({})).await;
    assert_eq!(typename["data"]["__typename"], "Query", "{typename}");

    assert_eq!(app.http.get(format!("{base}/")).send().await.unwrap().status(), 404);
    assert_eq!(app.http.get(format!("{base}/metrics")).send().await.unwrap().status(), 404);

    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{base}/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let allowed_headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed_headers.contains("authorization"), "{allowed_headers}");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let big = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(5000)) });
    let refused = app.http.post(format!("{base}/graphql")).json(&big).send().await.unwrap();
    assert_eq!(refused.status(), 413);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("http://{}/graphql", app.addr))
        .header("origin", "https://app.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_playground_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let base = format!("http://{}", app.addr);
    let page = app.http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();
    if !ward::http::playground::Playground::bundled() {
        // Built without npm: the page says how to get the playground.
        assert!(html.contains("npm"), "{html}");
        return;
    }
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("http") && !csp.contains('*'), "{csp}");
    assert!(!html.contains("unpkg") && !html.contains("https://") && !html.contains("http://"), "{html}");
    // With DATABASE_URL the demo tokens stay out of the page.
    assert!(html.contains(r#""demo":null"#), "{html}");
    assert!(!html.contains("Bearer"), "{html}");
    for (asset, content_type) in [("playground.js", "text/javascript"), ("playground.css", "text/css")] {
        let src = html
            .split('"')
            .find(|s| s.starts_with(&format!("/playground/assets/{asset}?v=")))
            .unwrap_or_else(|| panic!("{asset} in {html}"));
        let response = app.http.get(format!("{base}{src}")).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(content_type));
        assert!(response.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        assert_eq!(response.headers()["content-encoding"], "gzip");
        assert!(response.bytes().await.unwrap().len() > 10_000);
    }

    let demo = spawn_app_with(&[("WARD_PLAYGROUND_DEMO", "on".to_string())]).await;
    let html = demo.http.get(format!("http://{}/", demo.addr)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("manager@demo.test") && html.contains("subscription TicketUpdates"), "{html}");
}
