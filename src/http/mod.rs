//! The HTTP surface: routes, the GraphQL endpoints over HTTP and websockets, the playground,
//! and health checks.

mod graphql;
mod health;
mod ws;
mod storage;

use axum::Router;
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;

/// Requests larger than this are refused with 413 before they are read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The application's routes.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/", get(graphql::playground))
        .route("/graphql", get(graphql::graphql).post(graphql::graphql))
        .route("/graphql/ws", get(ws::graphql_ws))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // Outside the limit layer: a declared oversize body gets a GraphQL-shaped 413.
        .layer(axum::middleware::from_fn(graphql::refuse_oversized));
    // Merged after the body limit: uploads are capped by each bucket's own limit instead.
    if state.local_storage.is_some() {
        router = router.merge(storage::router());
    }
    router.layer(TraceLayer::new_for_http()).with_state(state)
}
