//! The websocket schema's hook: a stable `extensions.code` on the parse and validation
//! errors of operations sent over a websocket (over HTTP, `prepare` does this without a
//! schema extension).

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};

use super::prepare::{set_code, validation_code};
use crate::error::ErrorCode;

pub struct WardExtension;

impl ExtensionFactory for WardExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(WardExtension)
    }
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
        next.run(ctx, query, variables).await.map_err(|mut e| {
            set_code(&mut e, ErrorCode::ParseFailed.as_str());
            e
        })
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
