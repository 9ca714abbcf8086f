//! What a resolver finds in a request's data, fetched without panicking.

use std::sync::Arc;

use async_graphql::Context;

use super::Loaders;
use crate::db::{RlsSession, SessionError};
use crate::domain::DomainError;
use crate::error::{ApiError, ErrorCode};

/// The per-request data every GraphQL request over HTTP carries.
#[derive(Clone)]
pub struct RequestData {
    pub session: Arc<RlsSession>,
    pub loaders: Arc<Loaders>,
}

impl RequestData {
    pub fn new(session: Arc<RlsSession>) -> Self {
        RequestData { loaders: Arc::new(Loaders::new(session.clone())), session }
    }
}

/// The request's data, or an internal error if the request was built without it.
pub fn request<'a>(ctx: &Context<'a>) -> Result<&'a RequestData, ApiError> {
    ctx.data::<RequestData>()
        .map_err(|_| ApiError::new(ErrorCode::Internal, "internal error: no request session"))
}

/// Runs a domain function in the request's RLS transaction and converts its error.
pub async fn run<T>(
    ctx: &Context<'_>,
    f: impl AsyncFnOnce(&sea_orm::DatabaseTransaction) -> Result<T, DomainError>,
) -> Result<T, ApiError> {
    let session = &request(ctx)?.session;
    session.run(f).await.map_err(ApiError::from)
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        ApiError::from(DomainError::Session(e))
    }
}
