//! Why a storage operation failed, and what each failure means for a client (`extensions.code`
//! in GraphQL, an HTTP status on the local backend's REST paths). File system paths, SQL and
//! upstream response bodies stay in the logged cause, never in a client message.

use crate::error::{ApiError, ErrorCode};

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket or object does not exist.
    #[error("object not found")]
    NotFound,
    /// An object already exists at the path: ward never overwrites.
    #[error("an object already exists at this path")]
    AlreadyExists,
    /// The declared or actual size is over the limit (in bytes, when known).
    #[error("the object is larger than allowed{}", limit.map(|l| format!(" ({l} bytes)")).unwrap_or_default())]
    TooLarge { limit: Option<u64> },
    /// The bucket name, object path or file name is not acceptable.
    #[error("invalid object path: {0}")]
    InvalidPath(String),
    /// Some other input is not acceptable (content type, expiry, …).
    #[error("{0}")]
    InvalidInput(String),
    /// A signed token that does not verify, or is for another object or purpose.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A signed token past its expiry.
    #[error("the token has expired")]
    Expired,
    /// The storage service cannot be reached or answered with a server error.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else (I/O, database, an unexpected upstream answer): logged, shown as internal.
    #[error("storage failure: {context}")]
    Other {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StorageError {
    /// Wraps an unexpected failure with a fixed description of what was being done.
    pub fn other(context: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StorageError::Other { context, source: source.into() }
    }

    /// A database failure of the local backend: [`StorageError::Unavailable`] when retrying
    /// may help (no connection in time, the server going away), otherwise internal.
    pub fn db(context: &'static str, source: sea_orm::DbErr) -> Self {
        match crate::db::classify(&source) {
            crate::db::DbFailure::Unavailable => {
                tracing::warn!(error = %source, context, "storage database unavailable");
                StorageError::Unavailable(context.to_string())
            }
            _ => StorageError::other(context, source),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ApiError::new(ErrorCode::NotFound, "object not found"),
            StorageError::AlreadyExists => ApiError::new(ErrorCode::Conflict, e.to_string()),
            StorageError::TooLarge { .. } | StorageError::InvalidPath(_) | StorageError::InvalidInput(_) => {
                ApiError::new(ErrorCode::BadUserInput, e.to_string())
            }
            StorageError::InvalidToken(_) | StorageError::Expired => ApiError::new(ErrorCode::Forbidden, e.to_string()),
            StorageError::Unavailable(_) => {
                tracing::warn!(error = %e, "storage unavailable");
                ApiError::new(ErrorCode::Unavailable, "storage is unavailable for now; try again shortly")
            }
            StorageError::Other { .. } => ApiError::internal(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_internal_causes_are_censored() {
        let code = |e: StorageError| ApiError::from(e).code;
        assert_eq!(code(StorageError::NotFound), ErrorCode::NotFound);
        assert_eq!(code(StorageError::AlreadyExists), ErrorCode::Conflict);
        assert_eq!(code(StorageError::TooLarge { limit: Some(1) }), ErrorCode::BadUserInput);
        assert_eq!(code(StorageError::InvalidPath("x".into())), ErrorCode::BadUserInput);
        assert_eq!(code(StorageError::Expired), ErrorCode::Forbidden);
        assert_eq!(code(StorageError::InvalidToken("x".into())), ErrorCode::Forbidden);
        let io = std::io::Error::other("/secret/path/on/disk");
        let api = ApiError::from(StorageError::other("writing an object", io));
        assert_eq!(api.code, ErrorCode::Internal);
        assert!(!api.message.contains("/secret"));
    }
}
