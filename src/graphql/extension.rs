//! The websocket schema's hook: a stable `extensions.code` on the parse and validation
//! errors of operations sent over a websocket, documents over the selection bound refused
//! (over HTTP, `prepare` does both without a schema extension), and a persisted query
//! refused so that Apollo clients send the text.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError, ServerResult, ValidationResult, Variables};

use super::prepare::{parse_code, set_code, validation_code, within_bounds};

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
        // Persisted queries are an HTTP feature here; Apollo clients answer this by sending
        // the document's text (and stop sending hashes on this link).
        if request.query.is_empty() && request.extensions.contains_key("persistedQuery") {
            let mut error = ServerError::new("PersistedQueryNotSupported", None);
            set_code(&mut error, "PERSISTED_QUERY_NOT_SUPPORTED");
            return Err(error);
        }
        next.run(ctx, request).await
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
