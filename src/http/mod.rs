//! The HTTP surface: routes, the GraphQL endpoints over HTTP, websockets and server-sent
//! events, the playground, metrics, health checks, and the layers every request passes
//! (request id, tracing, CORS, body limit).

mod graphql;
mod health;
mod metrics;
pub mod playground;
mod sse;
mod state;
mod storage;
pub(crate) mod ws;

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::get;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::CorsOrigins;

pub use state::AppState;

/// The default `WARD_MAX_BODY_BYTES`: larger requests are refused with 413 before they are read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The application's routes.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let mut router = Router::new()
        .route("/graphql", get(graphql::graphql).post(graphql::graphql))
        .route("/graphql/ws", get(ws::graphql_ws))
        .route("/graphql/stream", axum::routing::post(sse::graphql_sse))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        // Outside the limit layer: a declared oversize body gets a GraphQL-shaped 413.
        .layer(axum::middleware::from_fn_with_state(state.clone(), graphql::refuse_oversized));
    // Merged after the body limit: uploads are capped by each bucket's own limit instead.
    if state.local_storage.is_some() {
        router = router.merge(storage::router());
    }
    if config.playground {
        router = router.merge(playground::router());
    }
    if config.metrics {
        router = router.route("/metrics", get(metrics::serve));
    }
    // Routed requests only, labelled by their route pattern.
    router = router.route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track_http));
    if let Some(cors) = cors(&config.cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Outermost: the id exists before the span is made, and is kept when a proxy sent one.
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// The span every request's logs are in. It names the route pattern, never the path: storage
/// paths end in the uploader's filename, which for GBV evidence can name the victim, and
/// signed URLs carry their token in the query (docs/POLICY.md, P-LOGS).
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    let route = request.extensions().get::<MatchedPath>().map_or("(no route)", MatchedPath::as_str);
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        route = %route,
    )
}

/// `WARD_CORS_ORIGINS` as a layer; `None` adds no CORS headers at all.
fn cors(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow_origin = match origins {
        CorsOrigins::None => return None,
        CorsOrigins::Any => AllowOrigin::from(Any),
        CorsOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()))
        }
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT, REQUEST_ID])
            .expose_headers([REQUEST_ID])
            .max_age(Duration::from_secs(3600)),
    )
}
