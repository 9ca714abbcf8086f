//! The state every handler shares, built once at startup (`app.rs`).

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::graphql::WardSchema;
use crate::metrics::Metrics;
use crate::realtime::Realtime;
use crate::storage::{LocalStore, ObjectStore};

/// The state every handler shares, built once at startup.
#[derive(Clone)]
pub struct AppState {
    /// The request pool, connected as `authenticator`; used only through RLS sessions.
    pub db: DatabaseConnection,
    /// The GraphQL schema for requests over HTTP (no extensions: see `graphql::prepare`).
    pub schema: WardSchema,
    /// The same schema for websocket operations, with the extensions that code their errors
    /// and count them.
    pub ws_schema: WardSchema,
    /// Subscription documents whose updates are rendered once for many subscribers.
    pub multiplex: Arc<crate::graphql::multiplex::Multiplexer>,
    /// Persisted queries and the preparation of HTTP requests.
    pub preparer: crate::graphql::prepare::Preparer,
    /// Verifies bearer tokens.
    pub auth: Arc<Authenticator>,
    /// Live ticket updates: the listener and the subscribers of this process.
    pub realtime: Realtime,
    /// Cancelled when the server begins to shut down (websockets close with 1001).
    pub shutdown: CancellationToken,
    /// Object storage (`WARD_STORAGE`): Supabase Storage, or the local backend.
    pub storage: Arc<dyn ObjectStore>,
    /// The local backend again when it is the one in use: ward then serves its REST paths
    /// (`/storage/v1/...`, `src/http/storage.rs`).
    pub local_storage: Option<Arc<LocalStore>>,
    /// The GraphiQL page's settings (`src/http/playground.rs`), with the demo token signer
    /// when `WARD_PLAYGROUND_DEMO` is on.
    pub playground: Arc<super::playground::Playground>,
    /// The settings the HTTP layer reads per request (playground, metrics, CORS, limits).
    pub config: Arc<Config>,
    /// Prometheus metrics (`GET /metrics`, `src/metrics.rs`).
    pub metrics: Arc<Metrics>,
}
