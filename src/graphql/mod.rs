//! The GraphQL API: the schema, its types and resolvers, and the per-request DataLoaders.
//! Resolvers are thin: they read the request's session, call one domain function, and convert.

mod context;
mod extension;
mod loaders;
mod mutation;
mod profile;
mod query;
mod subscription;
mod ticket;

pub use context::RequestData;
pub use loaders::Loaders;

use async_graphql::extensions::apollo_persisted_queries::{ApolloPersistedQueries, LruCacheStorage};
use async_graphql::Schema;
use sea_orm::DatabaseConnection;

use extension::WardExtension;
use mutation::Mutation;
use query::Query;
use subscription::Subscription;

/// ward's executable schema.
pub type WardSchema = Schema<Query, Mutation, Subscription>;

/// Nesting deeper than this is refused before execution.
pub const MAX_DEPTH: usize = 15;
/// Documents costlier than this (one point per field, times page sizes) are refused.
pub const MAX_COMPLEXITY: usize = 5_000;

/// Automatic Persisted Queries remembered (per process).
pub const APQ_CACHE_ENTRIES: usize = 1024;

/// Builds the schema; `live` gives subscriptions their hub and pool (`ward schema` needs none).
pub fn build_schema(live: Option<(crate::realtime::Realtime, DatabaseConnection)>) -> WardSchema {
    let mut builder = Schema::build(Query::default(), Mutation::default(), Subscription);
    if let Some((realtime, pool)) = live {
        builder = builder.data(realtime).data(pool);
    }
    builder
        // Registered first, so it sees (and codes) the errors of the extensions after it.
        .extension(WardExtension)
        .extension(ApolloPersistedQueries::new(LruCacheStorage::new(APQ_CACHE_ENTRIES)))
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, as `ward schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    build_schema(None).sdl()
}
