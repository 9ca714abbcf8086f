//! The GraphQL API: the schema, its types and resolvers, and the per-request DataLoaders.
//! Resolvers are thin: they read the request's session, call one domain function, and convert.

pub mod connection;
pub mod context;
mod extension;
mod image;
mod loaders;
mod media;
pub mod multiplex;
mod mutation;
mod photo;
pub mod prepare;
mod profile;
mod query;
mod subscription;
mod ticket;
pub mod uploads;

pub use context::RequestData;
pub use loaders::Loaders;

use std::sync::Arc;

use async_graphql::Schema;
use sea_orm::DatabaseConnection;

pub use extension::WardExtension;
use mutation::Mutation;
use query::Query;
use subscription::Subscription;

/// ward's executable schema.
pub type WardSchema = Schema<Query, Mutation, Subscription>;

/// Nesting deeper than this is refused before execution.
pub const MAX_DEPTH: usize = 15;
/// Documents costlier than this (one point per field, times page sizes) are refused.
pub const MAX_COMPLEXITY: usize = 5_000;

/// The pool of [`Services::aside`].
#[derive(Clone)]
pub struct AsidePool(pub DatabaseConnection);

/// What resolvers of a running server reach beyond their request's session.
#[derive(Clone)]
pub struct Services {
    /// Live ticket updates (subscriptions).
    pub realtime: crate::realtime::Realtime,
    /// The request pool: subscriptions open their own sessions on it.
    pub pool: DatabaseConnection,
    /// A small pool for the short transactions of their own that a request needs while it
    /// holds its request connection (`me` linking a first sign-in: see
    /// `domain::profiles::me_linking`). Separate, so such a transaction never waits for a
    /// connection that requests hold, and a burst of them cannot deadlock the request pool.
    pub aside: AsidePool,
    /// Object storage: signed URLs, checks and thumbnails of uploads.
    pub storage: Arc<dyn crate::storage::ObjectStore>,
    /// Downloads the relay's media URLs (`ingestTicketMedia`).
    pub fetcher: crate::fetch::Fetcher,
}

/// Builds the schema; `services` are those of a running server (`ward schema` needs none).
pub fn build_schema(services: Option<Services>) -> WardSchema {
    schema_builder(services).finish()
}

/// The schema's builder, for the server to add what its settings ask (`WARD_INTROSPECTION`,
/// and for websockets the extensions) before `finish`. No extensions here: requests over
/// HTTP are prepared and coded by `prepare`, which keeps fields off async-graphql's
/// per-field extension path.
pub fn schema_builder(services: Option<Services>) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    let mut builder = Schema::build(Query::default(), Mutation::default(), Subscription);
    if let Some(Services { realtime, pool, aside, storage, fetcher }) = services {
        builder = builder.data(realtime).data(pool).data(aside).data(storage).data(fetcher);
    }
    builder.limit_depth(MAX_DEPTH).limit_complexity(MAX_COMPLEXITY)
}

/// The schema in SDL, as `ward schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    build_schema(None).sdl()
}
