//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;

use crate::http::AppState;

/// The process is up.
pub async fn health() -> &'static str {
    "ok"
}

/// The database answers and the ticket listener is connected and caught up.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if let Err(error) = state.db.ping().await {
        tracing::warn!(%error, "readiness check failed");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    }
    if !state.realtime.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "live updates catching up");
    }
    (StatusCode::OK, "ready")
}
