//! Bearer tokens through HTTP: a valid token is the person; anything wrong with a token is
//! `UNAUTHENTICATED`, never a quiet anonymous request.

use base64::Engine as _;
use serde_json::{Value, json};
use ward::auth::TokenIssuer;
use ward::config::Secret;

use crate::helpers::{error_code, spawn_app};

const ME: &str = "{ me { displayName } }";

fn claims(overrides: Value) -> Value {
    let person = ward::demo::person("citizen@demo.test").unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "sub": person.auth_user_id.to_string(),
        "aud": "authenticated",
        "role": "authenticated",
        "email": person.email,
        "iat": now,
        "exp": now + 600,
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn token_outcomes() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let sign = |c: Value| app.issuer.sign(&c).unwrap();
    let wrong_issuer = TokenIssuer::new(&Secret::new("some-other-secret-some-other-secret"));

    // Valid: the person.
    let ok = app.graphql_with_header(Some(&format!("Bearer {}", sign(claims(json!({}))))), ME, json!({})).await;
    assert_eq!(ok["data"]["me"]["displayName"], "Thandi Citizen", "{ok}");
    // No header: anonymous, `me` is null, no error.
    let anon = app.graphql_with_header(None, ME, json!({})).await;
    assert_eq!(anon, json!({ "data": { "me": null } }));

    let alg_none = format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(&claims(json!({}))));
    let rs256_header =
        format!("{}.{}.c2lnbmF0dXJl", b64(&json!({ "alg": "RS256", "typ": "JWT" })), b64(&claims(json!({}))));
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", format!("Bearer {}", sign(claims(json!({ "exp": now - 3600 })))), "expired"),
        ("wrong secret", format!("Bearer {}", wrong_issuer.sign(&claims(json!({}))).unwrap()), "signature"),
        ("alg none", format!("Bearer {alg_none}"), "algorithm"),
        ("RS256 header on an HS256 deployment", format!("Bearer {rs256_header}"), "algorithm"),
        ("garbage", "Bearer not-a-token".to_string(), "malformed"),
        ("wrong audience", format!("Bearer {}", sign(claims(json!({ "aud": "somebody-else" })))), "audience"),
        ("no audience", format!("Bearer {}", sign(claims(json!({ "aud": null })))), "audience"),
        ("no expiry", format!("Bearer {}", sign(claims(json!({ "exp": null })))), "exp"),
        ("not yet valid", format!("Bearer {}", sign(claims(json!({ "nbf": now + 3600 })))), "not valid yet"),
        ("unknown role", format!("Bearer {}", sign(claims(json!({ "role": "postgres" })))), "role"),
        ("subject not a uuid", format!("Bearer {}", sign(claims(json!({ "sub": "1 or 1=1" })))), "subject"),
        ("basic scheme", "Basic dXNlcjpwYXNz".to_string(), "Bearer"),
        ("empty bearer", "Bearer ".to_string(), "Bearer"),
    ];
    for (name, header, message_part) in cases {
        let response = app.graphql_with_header(Some(&header), ME, json!({})).await;
        assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{name}: {response}");
        assert!(response["data"].is_null(), "{name}: data leaked: {response}");
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(message_part), "{name}: message `{message}` should mention `{message_part}`");
        assert!(!message.contains(header.trim_start_matches("Bearer ")) || header.len() < 10, "{name}: token echoed");
    }
}

#[tokio::test]
async fn anon_and_service_keys_are_recognised_by_role() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let anon_key =
        app.issuer.sign(&json!({ "role": "anon", "iss": "supabase", "iat": now, "exp": now + 600 })).unwrap();
    let response = app.graphql_with_header(Some(&format!("Bearer {anon_key}")), ME, json!({})).await;
    assert_eq!(response, json!({ "data": { "me": null } }));
    // A service key is not a person: `me` is null, and it is not refused.
    let service_key =
        app.issuer.sign(&json!({ "role": "service_role", "iss": "supabase", "iat": now, "exp": now + 600 })).unwrap();
    let response = app.graphql_with_header(Some(&format!("Bearer {service_key}")), ME, json!({})).await;
    assert_eq!(response, json!({ "data": { "me": null } }));
}
