//! ward's integration tests: one binary (one link of the whole stack), one embedded
//! PostgreSQL cluster for the whole run, and a fresh database per test cloned from a template
//! that is migrated and seeded once.

// A test panics on what it did not expect: that is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod adversary;
mod embedded;
mod faults;
mod firewall;
mod guard_rails;
mod hostile;
mod http_me;
mod jwks;
mod live_rights;
mod migrations;
mod operations;
mod outage;
mod photos;
mod policy;
mod profiles;
mod realtime;
mod resumable;
mod s3;
mod schema;
mod session;
mod shutdown;
mod sse;
mod storage;
pub mod subscriptions;
mod tickets;
mod tokens;
mod trigger;
mod uploads;
