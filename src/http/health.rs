//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;

use crate::app::AppState;

/// The process is up.
pub async fn health() -> &'static str {
    "ok"
}

/// The database answers.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
