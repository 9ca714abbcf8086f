//! The websocket schema's hook: queries and mutations sent over a websocket run in an RLS
//! session of their own, concluded like an HTTP request's; a stable `extensions.code` on the
//! parse and validation errors; documents over the selection bound refused (over HTTP,
//! `prepare` and the handler do all this without a schema extension); and persisted queries
//! resolved from the same cache HTTP uses.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};

use super::RequestData;
use super::context::conclude;
use super::prepare::{Prepared, Preparer};
use super::prepare::{operation_kind, parse_code, set_code, validation_code, within_bounds};
use crate::auth::Caller;
use crate::db::RlsSession;

pub struct WardExtension;

impl ExtensionFactory for WardExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(WardExtension)
    }
}

#[async_trait::async_trait]
impl Extension for WardExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // Persisted queries and parsed documents from the cache HTTP uses: a hash alone runs a
        // remembered document, or asks Apollo clients for the text (PERSISTED_QUERY_NOT_FOUND).
        let mut request = request;
        let prepared = match ctx.data_opt::<Preparer>() {
            Some(preparer) => Some(preparer.prepare(&mut request).await?),
            None => None,
        };
        let request = with_session(ctx, request)?;
        let request = match prepared {
            // Remembered once the operation has run without a validation error.
            Some(prepared) => request.data(ToLearn(std::sync::Mutex::new(Some(prepared)))),
            None => request,
        };
        next.run(ctx, request).await
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        if let Some(data) = ctx.data_opt::<RequestData>() {
            conclude(&data.session, &mut response).await;
            super::prepare::code_errors(&mut response);
        }
        let learn = ctx.data_opt::<ToLearn>().and_then(|l| l.0.lock().ok().and_then(|mut p| p.take()));
        if let (Some(prepared), Some(preparer)) = (learn, ctx.data_opt::<Preparer>()) {
            preparer.learn(prepared, &response).await;
        }
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await.map_err(|mut e| {
            let code = parse_code(&e);
            set_code(&mut e, code);
            e
        })?;
        within_bounds(&document)?;
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|mut e| {
                    let code = validation_code(&e);
                    set_code(&mut e, code);
                    e
                })
                .collect()
        })
    }
}

/// A query or mutation over the socket runs like one over HTTP: in an RLS session of its own,
/// as the connection's caller (from `connection_init`), read-only unless it holds a mutation.
/// A subscription has its own scope per event (`graphql::subscription`). A caller whose token
/// has expired since the connection opened is refused (the socket closes at expiry anyway).
fn with_session(ctx: &ExtensionContext<'_>, mut request: Request) -> ServerResult<Request> {
    let operation_name = request.operation_name.clone();
    let document = request.parsed_query().map_err(|mut e| {
        let code = parse_code(&e);
        set_code(&mut e, code);
        e
    })?;
    within_bounds(document)?;
    let kind = operation_kind(document, operation_name.as_deref());
    if kind == "subscription" {
        return Ok(request);
    }
    let writes = kind == "mutation";
    let caller = ctx.data_opt::<Caller>().cloned().unwrap_or(Caller::Anonymous);
    if let Caller::User(user) = &caller
        && user.exp <= chrono::Utc::now().timestamp()
    {
        let mut error = ServerError::new("the connection's token has expired; reconnect with a fresh one", None);
        set_code(&mut error, "UNAUTHENTICATED");
        return Err(error);
    }
    let Some(pool) = ctx.data_opt::<sea_orm::DatabaseConnection>() else {
        let mut error = ServerError::new("internal error: no database", None);
        set_code(&mut error, "INTERNAL");
        return Err(error);
    };
    let session = RlsSession::new(pool.clone(), caller);
    if writes {
        session.allow_writes();
    }
    Ok(request.data(RequestData::new(session)))
}

/// A websocket operation's newly parsed document, to remember after it has run.
struct ToLearn(std::sync::Mutex<Option<Prepared>>);
