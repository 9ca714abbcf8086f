//! ward: a GraphQL API server for a multi-tenant civic service platform, where each request's
//! JWT claims travel into its PostgreSQL transaction and row-level security decides what the
//! caller may read and write. See ARCHITECTURE.md for the request flow.

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod fetch;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod local_secrets;
pub mod metrics;
pub mod realtime;
pub mod storage;
pub mod telemetry;
