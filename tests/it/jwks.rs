//! Asymmetric tokens and the relay, over real HTTP: a JWKS served by a small server inside the
//! test (its requests counted), ES256 and RS256 keys generated here, key rotation with one
//! refresh per interval, algorithm confusion refused, and the relay's shared secret as the
//! only other way to the service role.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use ward::demo::{self, TICKETS};

use crate::helpers::{TestApp, error_code, spawn_app_with};

const ME: &str = "{ me { displayName } }";

/// A signing key pair with its `kid`, its public JWK and a way to sign claims.
struct KeyPair {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    /// The public key as PEM (what an attacker would use as an HMAC secret).
    public_pem: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn es256(kid: &str) -> KeyPair {
    let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let point = secret.public_key().to_encoded_point(false);
    KeyPair {
        kid: kid.into(),
        algorithm: Algorithm::ES256,
        encoding: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        jwk: json!({ "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                      "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()) }),
        public_pem: secret.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    }
}

fn rs256(kid: &str) -> KeyPair {
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = private.to_pkcs1_pem(LineEnding::LF).unwrap();
    let public = private.to_public_key();
    KeyPair {
        kid: kid.into(),
        algorithm: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        jwk: json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                      "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()) }),
        public_pem: rsa::pkcs8::EncodePublicKey::to_public_key_pem(&public, LineEnding::LF).unwrap(),
    }
}

impl KeyPair {
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The citizen's claims, with overrides.
fn claims(overrides: Value) -> Value {
    let person = demo::person("citizen@demo.test").unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({ "sub": person.auth_user_id.to_string(), "aud": "authenticated", "role": "authenticated",
                             "email": person.email, "iat": now, "exp": now + 600 });
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

/// A JWKS endpoint that counts its requests.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(keys: Value) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let hits = Arc::new(AtomicUsize::new(0));
        let (k, h) = (keys.clone(), hits.clone());
        let router = axum::Router::new().route(
            "/auth/v1/.well-known/jwks.json",
            axum::routing::get(move || {
                let (k, h) = (k.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    axum::Json(k.lock().await.clone())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/auth/v1/.well-known/jwks.json", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        JwksServer { url, keys, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn me_as(app: &TestApp, token: &str) -> Value {
    app.graphql_with_header(Some(&format!("Bearer {token}")), ME, json!({})).await
}

fn assert_refused(response: &Value, message_part: &str) {
    assert_eq!(error_code(response), Some("UNAUTHENTICATED"), "{response}");
    assert!(response["data"].is_null(), "{response}");
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(message_part), "`{message}` should mention `{message_part}`");
}

#[tokio::test]
async fn asymmetric_tokens_verify_with_the_projects_keys_and_rotation_refreshes_once() {
    let (ec, rsa_key) = (es256("ec-1"), tokio::task::spawn_blocking(|| rs256("rsa-1")).await.unwrap());
    let server = JwksServer::start(json!({ "keys": [ec.jwk, rsa_key.jwk] })).await;
    let app = spawn_app_with(&[("SUPABASE_JWKS_URL", server.url.clone())]).await;
    assert_eq!(server.hits(), 0, "keys are fetched when first needed");

    // ES256 and RS256 tokens of the citizen are the citizen; one fetch serves both.
    for key in [&ec, &rsa_key] {
        let response = me_as(&app, &key.sign(&claims(json!({})))).await;
        assert_eq!(response["data"]["me"]["displayName"], "Thandi Citizen", "{:?}: {response}", key.algorithm);
    }
    assert_eq!(server.hits(), 1);
    // HS256 tokens with the project secret still work, and cost no fetch.
    let response = app.graphql(Some("manager@demo.test"), ME, json!({})).await;
    assert_eq!(response["data"]["me"]["displayName"], "Lerato Manager");

    // A new key is published: the first token naming it causes one refresh.
    let rotated = es256("ec-2");
    server.keys.lock().await["keys"].as_array_mut().unwrap().push(rotated.jwk.clone());
    let response = me_as(&app, &rotated.sign(&claims(json!({})))).await;
    assert_eq!(response["data"]["me"]["displayName"], "Thandi Citizen", "{response}");
    assert_eq!(server.hits(), 2);
    // Another unknown `kid` soon after: refused without asking the server again.
    let unknown = es256("ec-3");
    assert_refused(&me_as(&app, &unknown.sign(&claims(json!({})))).await, "not one of the project's keys");
    assert_refused(&me_as(&app, &unknown.sign(&claims(json!({})))).await, "not one of the project's keys");
    assert_eq!(server.hits(), 2);

    // A known `kid` on a token signed by another key.
    let mut forged = es256("ec-1");
    forged.kid = "ec-1".into();
    assert_refused(&me_as(&app, &forged.sign(&claims(json!({})))).await, "signature");

    // Algorithm confusion: HS256 with the RSA public key as the HMAC secret…
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused =
        jsonwebtoken::encode(&header, &claims(json!({})), &EncodingKey::from_secret(rsa_key.public_pem.as_bytes()))
            .unwrap();
    assert_refused(&me_as(&app, &confused).await, "signature");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("ec-1".into());
    let confused =
        jsonwebtoken::encode(&header, &claims(json!({})), &EncodingKey::from_secret(ec.public_pem.as_bytes())).unwrap();
    assert_refused(&me_as(&app, &confused).await, "signature");
    // …an RS256 header on the EC key's `kid`, an ES256 header on the RSA key's…
    let swap = |alg: &str, kid: &str, signed_by: &KeyPair| {
        let token = signed_by.sign(&claims(json!({})));
        let rest = token.split_once('.').unwrap().1.to_string();
        format!("{}.{rest}", b64(json!({ "alg": alg, "typ": "JWT", "kid": kid }).to_string().as_bytes()))
    };
    assert_refused(&me_as(&app, &swap("RS256", "ec-1", &ec)).await, "does not match its signing key");
    assert_refused(&me_as(&app, &swap("ES256", "rsa-1", &rsa_key)).await, "does not match its signing key");
    // …and algorithms ward does not take at all.
    assert_refused(&me_as(&app, &swap("ES384", "ec-1", &ec)).await, "algorithm");
    assert_refused(&me_as(&app, &swap("none", "ec-1", &ec)).await, "algorithm");

    // No `kid`, expiry and leeway.
    let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims(json!({})), &ec.encoding).unwrap();
    assert_refused(&me_as(&app, &no_kid).await, "kid");
    let now = chrono::Utc::now().timestamp();
    assert_refused(&me_as(&app, &ec.sign(&claims(json!({ "exp": now - 120 })))).await, "expired");
    assert_refused(&me_as(&app, &ec.sign(&claims(json!({ "nbf": now + 120 })))).await, "not valid yet");
    // A few seconds of clock skew either way are tolerated.
    let skewed = ec.sign(&claims(json!({ "exp": now - 5, "nbf": now + 5 })));
    assert_eq!(me_as(&app, &skewed).await["data"]["me"]["displayName"], "Thandi Citizen");
    assert_eq!(server.hits(), 2, "nothing above needed another fetch");
}

#[tokio::test]
async fn an_unreachable_jwks_is_unauthenticated_not_anonymous() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let app = spawn_app_with(&[("SUPABASE_JWKS_URL", url)]).await;
    let key = es256("ec-1");
    assert_refused(&me_as(&app, &key.sign(&claims(json!({})))).await, "could not be fetched");
    // HS256 tokens are unaffected.
    let response = app.graphql(Some("citizen@demo.test"), ME, json!({})).await;
    assert_eq!(response["data"]["me"]["displayName"], "Thandi Citizen");
}

const SECRET: &str = "relay-webhook-secret-0123456789abcdef";

#[tokio::test]
async fn the_relay_secret_is_the_service_role_and_nothing_else_is() {
    let app = spawn_app_with(&[("RELAY_WEBHOOK_SECRET", SECRET.to_string())]).await;
    // The service role bypasses row-level security: it sees any ticket, an anonymous caller none.
    let query = "query($id: ID!) { ticket(id: $id) { id } me { id } }";
    let ticket = TICKETS[6].id.to_string();
    let vars = json!({ "id": ticket });
    let relay = app.graphql_with_header(Some(&format!("Bearer {SECRET}")), query, vars.clone()).await;
    assert_eq!(relay, json!({ "data": { "ticket": { "id": ticket }, "me": null } }));
    let anonymous = app.graphql_with_header(None, query, vars.clone()).await;
    assert_eq!(anonymous, json!({ "data": { "ticket": null, "me": null } }));
    // A service-role JWT is the service role too.
    let now = chrono::Utc::now().timestamp();
    let service_key = app.issuer.sign(&json!({ "role": "service_role", "iat": now, "exp": now + 600 })).unwrap();
    let service = app.graphql_with_header(Some(&format!("Bearer {service_key}")), query, vars.clone()).await;
    assert_eq!(service["data"]["ticket"]["id"], ticket);

    // Anything close to the secret is refused, never anonymous.
    let almost = [
        format!("Bearer {}", &SECRET[..SECRET.len() - 1]),
        format!("Bearer {SECRET}x"),
        format!("Bearer {}", SECRET.to_uppercase()),
        format!("Basic {SECRET}"),
        SECRET.to_string(),
        "Bearer wrong-secret".to_string(),
    ];
    for header in almost {
        let response = app.graphql_with_header(Some(&header), query, vars.clone()).await;
        assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{header}: {response}");
        assert!(response["data"].is_null(), "{header}: {response}");
        assert!(!response.to_string().contains(SECRET), "the secret is never echoed");
    }
    // A person's token is still the person, not the service role.
    let citizen = app.graphql(Some("citizen@demo.test"), query, vars.clone()).await;
    assert_eq!(citizen["data"]["ticket"], Value::Null);
    assert!(citizen["data"]["me"]["id"].is_string());

    // Without RELAY_WEBHOOK_SECRET, the same header is just a bad token.
    let plain = crate::helpers::spawn_app().await;
    let response = plain.graphql_with_header(Some(&format!("Bearer {SECRET}")), query, vars).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
}
