//! Request hooks: choosing a read-only or read-write transaction from the operation, refusing
//! mutations over GET, and giving errors raised before execution a stable `extensions.code`.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, ServerError, ServerResult, ValidationResult, Variables};

use super::RequestData;
use crate::error::ErrorCode;

pub struct WardExtension;

impl ExtensionFactory for WardExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(WardExtension)
    }
}

/// The code of an error async-graphql raised before execution, from its (fixed) message.
fn validation_code(error: &ServerError) -> &'static str {
    match error.message.as_str() {
        "Query is nested too deep." => "QUERY_TOO_DEEP",
        "Query is too complex." => "QUERY_TOO_COMPLEX",
        _ => ErrorCode::ValidationFailed.as_str(),
    }
}

fn set_code(mut error: ServerError, code: &str) -> ServerError {
    let has_code = error.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
    if !has_code {
        error.extensions.get_or_insert_with(Default::default).set("code", code);
    }
    error
}

#[async_trait::async_trait]
impl Extension for WardExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // Apollo clients recognise an unknown persisted query by this code and resend the text.
        next.run(ctx, request).await.map_err(|e| {
            let code = if e.message == "PersistedQueryNotFound" { "PERSISTED_QUERY_NOT_FOUND" } else { "BAD_REQUEST" };
            set_code(e, code)
        })
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next
            .run(ctx, query, variables)
            .await
            .map_err(|e| set_code(e, ErrorCode::ParseFailed.as_str()))?;
        let writes = document.operations.iter().any(|(_, op)| op.node.ty == OperationType::Mutation);
        if writes {
            if let Some(data) = ctx.data_opt::<RequestData>() {
                // A GET can be triggered across sites (a link, an image): it never writes.
                if !data.writes_allowed {
                    return Err(set_code(
                        ServerError::new("mutations must be sent with POST", None),
                        "BAD_REQUEST",
                    ));
                }
                data.session.allow_writes();
            }
        }
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
                .map(|e| {
                    let code = validation_code(&e);
                    set_code(e, code)
                })
                .collect()
        })
    }
}
