//! What a database error means for a caller, from its SQLSTATE. The error text itself never
//! leaves the server.

use sea_orm::{DbErr, RuntimeErr, SqlxError};

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
    /// No connection could be had in time (the pool is exhausted), the connection broke, or
    /// the server is shutting down, starting or out of connections: retry shortly.
    Unavailable,
    /// Anything else: an internal error.
    Other,
}

/// Classifies a sea-orm error.
pub fn classify(err: &DbErr) -> DbFailure {
    let sqlx_error = match err {
        DbErr::ConnectionAcquire(_) => return DbFailure::Unavailable,
        DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return DbFailure::Unavailable,
        _ => return DbFailure::Other,
    };
    let Some(db_error) = sqlx_error.as_database_error() else {
        return match &**sqlx_error {
            SqlxError::Io(_)
            | SqlxError::Tls(_)
            | SqlxError::PoolTimedOut
            | SqlxError::PoolClosed
            | SqlxError::WorkerCrashed => DbFailure::Unavailable,
            _ => DbFailure::Other,
        };
    };
    let code = db_error.code();
    // Connection exceptions (08), insufficient resources (53: too many connections, out of
    // memory or disk), and the server shutting down or starting (57P01-57P03).
    if code
        .as_deref()
        .is_some_and(|c| c.starts_with("08") || c.starts_with("53") || matches!(c, "57P01" | "57P02" | "57P03"))
    {
        return DbFailure::Unavailable;
    }
    let constraint = db_error.constraint().unwrap_or_default().to_string();
    match code.as_deref() {
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

/// Whether the server answered with this error (a database error with a SQLSTATE), rather than
/// the connection failing without an answer.
pub fn answered(err: &DbErr) -> bool {
    match err {
        DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e.as_database_error().is_some(),
        _ => false,
    }
}
