//! The one error a client sees: a stable `extensions.code` and a message safe to show. Every
//! module's own error converts into it; internal causes are logged here, whole, and replaced
//! by a generic message.

use crate::auth::AuthError;
use crate::db::{DbFailure, SessionError, classify};
use crate::domain::DomainError;

/// The stable codes of `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    Internal,
    /// The database or storage is overloaded or down for now: retry (over HTTP: status 503
    /// with `Retry-After`).
    Unavailable,
    /// A subscription fell too far behind and was ended: resubscribe with `after`.
    SlowConsumer,
    /// The document does not parse.
    ParseFailed,
    /// The document does not validate against the schema.
    ValidationFailed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::SlowConsumer => "SLOW_CONSUMER",
            ErrorCode::ParseFailed => "GRAPHQL_PARSE_FAILED",
            ErrorCode::ValidationFailed => "GRAPHQL_VALIDATION_FAILED",
        }
    }
}

/// An error as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    /// Logs `cause` with its whole chain and returns the censored `INTERNAL` error.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = vec![cause.to_string()];
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        tracing::error!(cause = ?chain, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error")
    }
}

// ApiError deliberately implements neither Display nor Error: async-graphql converts any
// Display type into an error without a code, and this conversion must be the only one.

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(ErrorCode::Unauthenticated, e.to_string())
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Unauthenticated(why) => ApiError::new(ErrorCode::Unauthenticated, why),
            DomainError::NotFound(what) => ApiError::new(ErrorCode::NotFound, format!("{what} not found")),
            DomainError::Forbidden(why) => ApiError::new(ErrorCode::Forbidden, why),
            DomainError::BadInput(why) => ApiError::new(ErrorCode::BadUserInput, why),
            DomainError::Conflict(why) => ApiError::new(ErrorCode::Conflict, why),
            DomainError::Db(db) => ApiError::from(&db),
            DomainError::Session(SessionError::Db(db)) => ApiError::from(&db),
            DomainError::Session(e @ SessionError::Finished) => ApiError::internal(&e),
            DomainError::Storage(e) => ApiError::from(e),
        }
    }
}

impl From<&sea_orm::DbErr> for ApiError {
    fn from(e: &sea_orm::DbErr) -> Self {
        match classify(e) {
            DbFailure::Denied(_) => ApiError::new(ErrorCode::Forbidden, "not allowed"),
            // P-LOGS: no constraint, column or SQL reaches a client; the log has the cause.
            DbFailure::Duplicate(constraint) => {
                tracing::debug!(%constraint, "unique violation");
                ApiError::new(ErrorCode::Conflict, "this already exists")
            }
            DbFailure::MissingReference(constraint) => {
                tracing::debug!(%constraint, "foreign key violation");
                ApiError::new(ErrorCode::BadUserInput, "this refers to something that does not exist")
            }
            DbFailure::Invalid(constraint) => {
                tracing::debug!(%constraint, "check violation");
                ApiError::new(ErrorCode::BadUserInput, "a value is not valid here")
            }
            DbFailure::Contention => ApiError::new(ErrorCode::Conflict, "the data changed concurrently; try again"),
            DbFailure::NotFound => ApiError::new(ErrorCode::NotFound, "not found"),
            DbFailure::Unavailable => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::new(ErrorCode::Unavailable, "the database is busy or unavailable; try again shortly")
            }
            DbFailure::Other => ApiError::internal(e),
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        let mut error = async_graphql::Error::new(e.message);
        error.extensions.get_or_insert_with(Default::default).set("code", e.code.as_str());
        error
    }
}
