//! Errors of the domain rules.

use crate::db::SessionError;
use crate::storage::StorageError;

/// A rule said no, or the database failed.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error")]
    Db(#[from] sea_orm::DbErr),
    #[error("session error")]
    Session(#[from] SessionError),
    #[error("storage error")]
    Storage(#[from] StorageError),
}
