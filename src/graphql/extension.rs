//! Request hooks: choosing a read-only or read-write transaction from the operation, and
//! giving errors raised before execution a stable `extensions.code`.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};

use super::RequestData;
use crate::error::ErrorCode;

pub struct WardExtension;

impl ExtensionFactory for WardExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(WardExtension)
    }
}

fn with_code(mut error: ServerError, code: ErrorCode) -> ServerError {
    let has_code = error.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
    if !has_code {
        error.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
    }
    error
}

#[async_trait::async_trait]
impl Extension for WardExtension {
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
            .map_err(|e| with_code(e, ErrorCode::ParseFailed))?;
        let writes = document.operations.iter().any(|(_, op)| op.node.ty == OperationType::Mutation);
        if writes {
            if let Some(data) = ctx.data_opt::<RequestData>() {
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
            errors.into_iter().map(|e| with_code(e, ErrorCode::ValidationFailed)).collect()
        })
    }
}
