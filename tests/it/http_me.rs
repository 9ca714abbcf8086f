//! `me` over real HTTP, for several demo people and anonymous callers, plus the plain
//! endpoints.

use serde_json::json;
use uuid::Uuid;
use ward::demo::{self, DEMO, OTHER};

use crate::helpers::{error_code, spawn_app};

const ME: &str = "{ me { id displayName email phone role municipality { id name slug } } }";

#[tokio::test]
async fn me_is_the_caller() {
    let app = spawn_app().await;
    let cases = [
        ("citizen@demo.test", "CITIZEN", DEMO),
        ("worker@demo.test", "FIELD_WORKER", DEMO),
        ("manager@demo.test", "MANAGER", DEMO),
        ("saps@demo.test", "SAPS_LIAISON", DEMO),
        ("admin@demo.test", "ADMIN", DEMO),
        ("citizen@other.test", "CITIZEN", OTHER),
        ("manager@other.test", "MANAGER", OTHER),
    ];
    for (email, role, municipality) in cases {
        let person = demo::person(email).unwrap();
        let response = app.graphql(Some(email), ME, json!({})).await;
        assert!(response.get("errors").is_none(), "{email}: {response}");
        let me = &response["data"]["me"];
        assert_eq!(me["id"], person.profile_id.to_string(), "{email}");
        assert_eq!(me["email"], email);
        assert_eq!(me["phone"], person.phone);
        assert_eq!(me["displayName"], person.display_name);
        assert_eq!(me["role"], role);
        assert_eq!(
            me["municipality"],
            json!({ "id": municipality.id.to_string(), "name": municipality.name, "slug": municipality.slug })
        );
    }
}

#[tokio::test]
async fn me_is_null_for_anonymous_callers_and_people_without_a_profile() {
    let app = spawn_app().await;
    assert_eq!(app.graphql(None, ME, json!({})).await, json!({ "data": { "me": null } }));
    let stranger = app.issuer.user_token(Uuid::new_v4(), Some("new@example.test"), None, 600).unwrap();
    let response = app.graphql_with_header(Some(&format!("Bearer {stranger}")), ME, json!({})).await;
    assert_eq!(response, json!({ "data": { "me": null } }));
}

#[tokio::test]
async fn bad_documents_get_stable_codes() {
    let app = spawn_app().await;
    let parse = app.graphql(None, "{ me { id ", json!({})).await;
    assert_eq!(error_code(&parse), Some("GRAPHQL_PARSE_FAILED"), "{parse}");
    let unknown = app.graphql(Some("citizen@demo.test"), "{ secrets }", json!({})).await;
    assert_eq!(error_code(&unknown), Some("GRAPHQL_VALIDATION_FAILED"), "{unknown}");
    assert!(unknown["data"].is_null());
    let deep = "{ me { municipality { __typename } } }".to_string();
    let fine = app.graphql(None, &deep, json!({})).await;
    assert!(fine.get("errors").is_none(), "{fine}");
}

#[tokio::test]
async fn health_ready_and_playground() {
    let app = spawn_app().await;
    let get = |path: &str| app.http.get(format!("http://{}{path}", app.addr)).send();
    let health = get("/health").await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = get("/ready").await.unwrap();
    assert_eq!(ready.status(), 200);
    let playground = get("/").await.unwrap();
    assert_eq!(playground.status(), 200);
    let html = playground.text().await.unwrap();
    assert!(html.contains("/graphql/ws"), "the playground knows the subscription endpoint");
    // A body over the limit is refused before it is read.
    let huge = "x".repeat(ward::http::MAX_BODY_BYTES + 1);
    let response = app
        .http
        .post(format!("http://{}/graphql", app.addr))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}
