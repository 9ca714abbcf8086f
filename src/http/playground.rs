//! The GraphiQL playground on `/`, served from ward itself: the page, and the script and
//! stylesheet `build.rs` bundled from `playground/` (pinned npm packages, no CDN), under a
//! Content-Security-Policy that allows nothing but ward's own origin. With
//! `WARD_PLAYGROUND_DEMO` the page also carries the demo people's headers and example tabs.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::auth::TokenIssuer;
use crate::config::{Config, Secret};
use crate::demo;
use crate::http::AppState;

const SCRIPT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/playground/playground.js"));
const SCRIPT_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/playground/playground.js.gz"));
const STYLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/playground/playground.css"));
const STYLE_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/playground/playground.css.gz"));
/// Empty when the bundle is real; otherwise why `build.rs` could not make it.
const BUILD_STATUS: &str = include_str!(concat!(env!("OUT_DIR"), "/playground/status"));
/// A hash of the bundle: asset URLs carry it, so they can be cached for good.
const VERSION: &str = env!("WARD_PLAYGROUND_VERSION");

/// Self only. Styles may be inline: GraphiQL's components set `style` attributes and insert
/// `<style>` elements; scripts may not. Fonts and icons are data: URLs inside the bundle.
/// `'self'` covers `ws:`/`wss:` to the same host for the subscription endpoint (CSP Level 3).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// Lifetime of the demo tokens a page load hands out.
const DEMO_TOKEN_TTL_SECONDS: i64 = 86_400;
/// The person whose header the example tabs start with.
const DEMO_DEFAULT_PERSON: &str = "manager@demo.test";

/// What the playground page needs, built once at startup.
pub struct Playground {
    /// Signs the demo people's tokens; `Some` only with `WARD_PLAYGROUND_DEMO`.
    demo_issuer: Option<TokenIssuer>,
}

impl std::fmt::Debug for Playground {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playground").field("demo", &self.demo_issuer.is_some()).finish()
    }
}

impl Playground {
    /// `jwt_secret` signs the demo tokens when `WARD_PLAYGROUND_DEMO` is on.
    pub fn new(config: &Config, jwt_secret: &Secret) -> Arc<Playground> {
        let demo_issuer = config.playground_demo.then(|| TokenIssuer::new(jwt_secret));
        Arc::new(Playground { demo_issuer })
    }

    /// Whether this binary carries the real GraphiQL bundle (npm was there at build time).
    pub fn bundled() -> bool {
        BUILD_STATUS.trim().is_empty() && !SCRIPT.is_empty()
    }

    /// The settings the page's script reads.
    fn page_config(&self) -> Value {
        let demo = self.demo_issuer.as_ref().map(|issuer| {
            let people: Vec<Value> = demo::PEOPLE
                .iter()
                .filter_map(|p| {
                    let token = issuer
                        .user_token(p.auth_user_id, Some(p.email), Some(p.phone), DEMO_TOKEN_TTL_SECONDS)
                        .map_err(|error| tracing::error!(%error, "signing a playground demo token failed"))
                        .ok()?;
                    let role = format!("{} · {}", role_label(p.role), p.municipality.name);
                    Some(json!({ "email": p.email, "name": p.display_name, "role": role, "token": token }))
                })
                .collect();
            json!({ "people": people, "defaultPerson": DEMO_DEFAULT_PERSON, "examples": examples() })
        });
        json!({ "endpoint": "/graphql", "subscriptionPath": "/graphql/ws", "demo": demo })
    }
}

fn role_label(role: entity::enums::AppRole) -> &'static str {
    use entity::enums::AppRole;
    match role {
        AppRole::Citizen => "citizen",
        AppRole::FieldWorker => "field worker",
        AppRole::Manager => "manager",
        AppRole::SapsLiaison => "SAPS liaison",
        AppRole::Admin => "admin",
    }
}

/// One example tab per area of the API.
fn examples() -> Value {
    let ticket = demo::TICKETS[0].id;
    json!([
        { "query": "# Who am I? Pick a demo person in the sidebar to change the Authorization header.\nquery Me {\n  me {\n    id\n    displayName\n    role\n    municipality { name slug }\n  }\n}\n" },
        { "query": "# The tickets this person may see (row-level security decides), newest first.\nquery Tickets {\n  tickets(first: 10) {\n    totalCount\n    nodes {\n      id\n      trackingNumber\n      title\n      category\n      status\n      priority\n      isSensitive\n      assignee { displayName }\n      slaDueAt\n    }\n    pageInfo { hasNextPage endCursor }\n  }\n}\n" },
        { "query": "# Move a ticket through its workflow (managers; field workers for their own).\nmutation SetStatus($id: ID!) {\n  setTicketStatus(id: $id, status: IN_PROGRESS, note: \"On my way\") {\n    trackingNumber\n    status\n    version\n  }\n}\n",
          "variables": json!({ "id": ticket }).to_string() },
        { "query": "# Live updates over the websocket (/graphql/ws). Run it, then change a ticket in another tab.\nsubscription TicketUpdates {\n  ticketUpdates {\n    eventId\n    kind\n    status\n    notice\n    ticket { trackingNumber title status }\n  }\n}\n" },
    ])
}

/// The playground's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/playground/assets/playground.js", get(script))
        .route("/playground/assets/playground.css", get(style))
}

/// `GET /`.
async fn page(State(state): State<AppState>) -> Response {
    if !Playground::bundled() {
        return fallback_page();
    }
    // `<` escaped, so nothing in the JSON can close the script element.
    let config = state.playground.page_config().to_string().replace('<', "\\u003c");
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ward · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/playground/assets/playground.css?v={VERSION}">
</head>
<body>
<div id="graphiql">Loading…</div>
<script id="ward-playground-config" type="application/json">{config}</script>
<script src="/playground/assets/playground.js?v={VERSION}"></script>
</body>
</html>
"#
    );
    let mut response = ([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    // The page carries live demo tokens: keep it out of shared caches.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// What `/` says when this binary was built without npm.
fn fallback_page() -> Response {
    let reason = html_escape(BUILD_STATUS.trim());
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ward · no playground</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto; line-height: 1.5">
<h1>The GraphiQL playground is not in this build</h1>
<p>ward bundles GraphiQL from npm packages when it is compiled, and this binary was built
without them: <code>{reason}</code>.</p>
<p>Install Node.js 20 or newer with npm (<code>apt-get install nodejs npm</code>), then run
<code>cargo build</code> (or <code>cargo run</code>) again.</p>
<p>The API itself works: POST GraphQL to <code>/graphql</code>, subscribe on
<code>/graphql/ws</code>.</p>
</body></html>
"#
    );
    let mut response = ([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    response
        .headers_mut()
        .insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"));
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /playground/assets/playground.js`.
async fn script(headers: HeaderMap) -> Response {
    asset(&headers, SCRIPT, SCRIPT_GZ, "text/javascript; charset=utf-8")
}

/// `GET /playground/assets/playground.css`.
async fn style(headers: HeaderMap) -> Response {
    asset(&headers, STYLE, STYLE_GZ, "text/css; charset=utf-8")
}

/// One bundled file, gzipped when the client takes it (about a quarter of the size).
fn asset(request: &HeaderMap, plain: &'static [u8], gzipped: &'static [u8], content_type: &'static str) -> Response {
    if plain.is_empty() {
        return (StatusCode::NOT_FOUND, "the playground is not in this build").into_response();
    }
    let gzip = !gzipped.is_empty()
        && request.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
            |coding| {
                let mut parts = coding.split(';').map(str::trim);
                parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                    && !parts.any(|p| p.replace(' ', "") == "q=0")
            },
        );
    let body = if gzip { gzipped } else { plain };
    let mut response = ([(CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    // The URL carries the bundle's hash (`?v=`), so a new build is a new URL.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_only_when_accepted() {
        let mut headers = HeaderMap::new();
        let plain = asset(&headers, b"js", b"gz", "text/javascript");
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("br, gzip;q=0.8"));
        let gzipped = asset(&headers, b"js", b"gz", "text/javascript");
        assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0"));
        assert!(asset(&headers, b"js", b"gz", "text/javascript").headers().get(CONTENT_ENCODING).is_none());
    }

    #[test]
    fn the_page_config_has_demo_people_only_when_asked() {
        let secret = Secret::new("a-test-secret-long-enough-for-hs256-signing");
        let vars = |demo: &'static str| {
            Config::from_lookup(move |name| (name == "WARD_PLAYGROUND_DEMO").then(|| demo.to_string())).unwrap()
        };
        let off = Playground::new(&vars("off"), &secret).page_config();
        assert_eq!(off["demo"], Value::Null);
        assert_eq!(off["subscriptionPath"], "/graphql/ws");
        let on = Playground::new(&vars("on"), &secret).page_config();
        assert_eq!(on["demo"]["people"].as_array().map(Vec::len), Some(demo::PEOPLE.len()));
        assert!(on["demo"]["examples"].as_array().is_some_and(|e| e.len() >= 4));
    }
}
