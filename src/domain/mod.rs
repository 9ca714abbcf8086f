//! The rules of ward, free of HTTP and GraphQL. Functions take the caller's RLS transaction
//! (`&impl ConnectionTrait`), so PostgreSQL's policies apply beneath whatever they check.

mod error;
pub mod profiles;

pub use error::DomainError;
