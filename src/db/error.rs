//! What a database error means for a caller, from its SQLSTATE. The error text itself never
//! leaves the server.

use sea_orm::{DbErr, RuntimeErr};

/// The kinds of database failure a request can cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbFailure {
    /// A policy, a privilege or a guard trigger said no (42501), or a read-only transaction
    /// was asked to write (25006).
    Denied(String),
    /// A unique constraint (23505), with its name.
    Duplicate(String),
    /// A foreign key (23503), with its name.
    MissingReference(String),
    /// A check or not-null constraint (23514, 23502), with its name.
    Invalid(String),
    /// A serialization failure or deadlock (40001, 40P01): retry.
    Contention,
    /// A function reported that the row it needs does not exist for this caller (P0002).
    NotFound,
    /// Anything else: an internal error.
    Other,
}

/// Classifies a sea-orm error.
pub fn classify(err: &DbErr) -> DbFailure {
    let sqlx_error = match err {
        DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e,
        _ => return DbFailure::Other,
    };
    let Some(db_error) = sqlx_error.as_database_error() else { return DbFailure::Other };
    let constraint = db_error.constraint().unwrap_or_default().to_string();
    match db_error.code().as_deref() {
        Some("42501") => DbFailure::Denied(db_error.message().to_string()),
        Some("25006") => DbFailure::Denied("this request may not write".to_string()),
        Some("23505") => DbFailure::Duplicate(constraint),
        Some("23503") => DbFailure::MissingReference(constraint),
        Some("23514" | "23502") => DbFailure::Invalid(constraint),
        Some("40001" | "40P01") => DbFailure::Contention,
        Some("P0002") => DbFailure::NotFound,
        _ => DbFailure::Other,
    }
}
