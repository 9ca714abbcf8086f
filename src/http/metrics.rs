//! Metrics over HTTP: `GET /metrics` (behind `WARD_METRICS_TOKEN` when set) and the
//! middleware that counts and times every routed request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::SharedSecret;

/// `GET /metrics`. With `WARD_METRICS_TOKEN`, only for `Authorization: Bearer <token>`.
pub async fn serve(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics.scrape_token()
        && !bearer_matches(&headers, token)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
            "a bearer token is required\n",
        )
            .into_response();
    }
    match state.metrics.render() {
        Ok(text) => {
            ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response()
        }
    }
}

/// Whether the request's `Authorization: Bearer` is the scrape token.
fn bearer_matches(headers: &HeaderMap, token: &SharedSecret) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .is_some_and(|given| token.matches(given.trim()))
}

/// Middleware: counts and times every routed request by its route pattern.
pub async fn track_http(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or("unmatched");
    state.metrics.observe_http(&method, route, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn the_metrics_token_is_a_bearer() {
        let token = SharedSecret::new(&Secret::new("s3cret")).unwrap();
        let mut headers = HeaderMap::new();
        assert!(!bearer_matches(&headers, &token));
        headers.insert(AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(!bearer_matches(&headers, &token));
        headers.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(bearer_matches(&headers, &token));
    }
}
