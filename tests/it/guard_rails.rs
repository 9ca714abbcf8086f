//! Guard rails: depth and complexity limits, the body limit, persisted queries, and no
//! mutations over GET — each refused with its own `extensions.code`.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, error_code, spawn_app};

async fn post(app: &TestApp, body: Value) -> Value {
    let token = app.token("manager@demo.test");
    app.http
        .post(format!("http://{}/graphql", app.addr))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn deep_and_costly_documents_are_refused_before_they_run() {
    let app = spawn_app().await;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(12),
        "} ".repeat(12)
    );
    let response = app.graphql(Some("manager@demo.test"), &deep, json!({})).await;
    assert_eq!(error_code(&response), Some("QUERY_TOO_DEEP"), "{response}");
    // Past async-graphql's own recursion limit (32, checked while parsing): the same code.
    let deeper = format!("{{ {}me{} }}", "a { ".repeat(40), " }".repeat(40));
    let response = app.graphql(Some("manager@demo.test"), &deeper, json!({})).await;
    assert_eq!(error_code(&response), Some("QUERY_TOO_DEEP"), "{response}");
    // An operation name the document does not have.
    let response = post(&app, json!({ "query": "query A { me { id } }", "operationName": "B" })).await;
    assert_eq!(error_code(&response), Some("GRAPHQL_VALIDATION_FAILED"), "{response}");

    let page = "tickets(first: 100) { nodes { id title description status category priority isSensitive trackingNumber
        createdAt updatedAt version slaDueAt reporter { id displayName email phone role } assignee { id displayName email phone role }
        ward { id name number } events { id kind status message noticeKind createdAt actor { id displayName } }
        media { id bucket path contentType sizeBytes createdAt } } }";
    let costly = format!("{{ a: {page} b: {page} }}");
    let response = app.graphql(Some("manager@demo.test"), &costly, json!({})).await;
    assert_eq!(error_code(&response), Some("QUERY_TOO_COMPLEX"), "{response}");
    assert!(response["data"].is_null());

    // The playground's introspection still fits.
    let introspection = format!(
        "{{ __schema {{ queryType {{ name }} types {{ name fields(includeDeprecated: true) {{ name args {{ name type {{ {t} }} }} type {{ {t} }} }} }} }} }}",
        t = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }"
    );
    let response = app.graphql(None, &introspection, json!({})).await;
    assert!(response.get("errors").is_none(), "{response}");
}

#[tokio::test]
async fn automatic_persisted_queries() {
    let app = spawn_app().await;
    let query = "{ me { displayName } }";
    let hash = format!("{:x}", Sha256::digest(query.as_bytes()));
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    // The hash alone, first time: unknown.
    let response = post(&app, json!({ "extensions": extensions })).await;
    assert_eq!(error_code(&response), Some("PERSISTED_QUERY_NOT_FOUND"), "{response}");
    // With the text it runs and is remembered...
    let response = post(&app, json!({ "query": query, "extensions": extensions })).await;
    assert_eq!(response["data"]["me"]["displayName"], "Lerato Manager", "{response}");
    // ...so the hash alone now works.
    let response = post(&app, json!({ "extensions": extensions })).await;
    assert_eq!(response["data"]["me"]["displayName"], "Lerato Manager", "{response}");
    // A hash that is not the text's is refused, and not remembered.
    let wrong = json!({ "persistedQuery": { "version": 1, "sha256Hash": "0".repeat(64) } });
    let response = post(&app, json!({ "query": query, "extensions": wrong })).await;
    assert_eq!(error_code(&response), Some("BAD_REQUEST"), "{response}");
    let response = post(&app, json!({ "extensions": wrong })).await;
    assert_eq!(error_code(&response), Some("PERSISTED_QUERY_NOT_FOUND"), "{response}");
}

#[tokio::test]
async fn oversized_bodies_and_non_graphql_requests() {
    let app = spawn_app().await;
    let huge = json!({ "query": format!("{{ me {{ id }} }} #{}", "x".repeat(ward::http::MAX_BODY_BYTES)) });
    let response = app.http.post(format!("http://{}/graphql", app.addr)).json(&huge).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("PAYLOAD_TOO_LARGE"), "{body}");

    let response = app
        .http
        .post(format!("http://{}/graphql", app.addr))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("BAD_REQUEST"), "{body}");
}

#[tokio::test]
async fn get_reads_but_never_writes() {
    let app = spawn_app().await;
    let get = |params: Vec<(&'static str, String)>| {
        let url = reqwest::Url::parse_with_params(&format!("http://{}/graphql", app.addr), params).unwrap();
        app.http.get(url).bearer_auth(app.token("manager@demo.test")).send()
    };
    let read: Value = get(vec![("query", "{ me { role } }".into())]).await.unwrap().json().await.unwrap();
    assert_eq!(read["data"]["me"]["role"], "MANAGER", "{read}");

    let mutation = "mutation { createTicket(input: { title: \"via GET\", category: OTHER }) { id } }";
    let write: Value = get(vec![("query", mutation.into())]).await.unwrap().json().await.unwrap();
    assert_eq!(error_code(&write), Some("BAD_REQUEST"), "{write}");
    // The same text once it has run over POST (and is remembered, parsed and persisted):
    // still refused over GET, by its text or by its hash.
    let hash = format!("{:x}", Sha256::digest(mutation.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let posted = post(&app, json!({ "query": mutation, "extensions": persisted })).await;
    assert!(posted["data"]["createTicket"]["id"].is_string(), "{posted}");
    let write: Value = get(vec![("query", mutation.into())]).await.unwrap().json().await.unwrap();
    assert_eq!(error_code(&write), Some("BAD_REQUEST"), "{write}");
    let write: Value = get(vec![("extensions", persisted.to_string())]).await.unwrap().json().await.unwrap();
    assert_eq!(error_code(&write), Some("BAD_REQUEST"), "{write}");
    // A document with a mutation in it is refused over GET even when a query is chosen.
    let both = format!("query Read {{ me {{ id }} }} {mutation}").replacen("mutation {", "mutation Write {", 1);
    let write: Value =
        get(vec![("query", both), ("operationName", "Read".into())]).await.unwrap().json().await.unwrap();
    assert_eq!(error_code(&write), Some("BAD_REQUEST"), "{write}");

    // Only the POST made a ticket.
    let count = app
        .graphql(Some("manager@demo.test"), "{ tickets(filter: { search: \"via GET\" }) { totalCount } }", json!({}))
        .await;
    assert_eq!(count["data"]["tickets"]["totalCount"], 1);
    let metrics = app.http.get(format!("http://{}/metrics", app.addr)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"ward_graphql_operations_total{operation="mutation",outcome="BAD_REQUEST"} 3"#),
        "{metrics}"
    );
}
