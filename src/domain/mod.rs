//! The rules of ward, free of HTTP and GraphQL. Functions take the caller's RLS transaction
//! (`&impl ConnectionTrait`), so PostgreSQL's policies apply beneath whatever they check.

pub mod cursor;
mod error;
pub mod municipalities;
pub mod paging;
pub mod photos;
pub mod profiles;
pub mod tickets;
pub mod uploads;
pub mod values;

pub use error::DomainError;
