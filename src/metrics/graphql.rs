//! The async-graphql extension that counts and times websocket operations by type and
//! outcome (HTTP operations are counted by the HTTP handler).

use super::*;

/// The async-graphql extension (factory) behind `ward_graphql_operations`.
pub struct GraphqlMetrics(pub(super) Arc<Metrics>);

impl ExtensionFactory for GraphqlMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetrics { metrics: self.0.clone(), seen: Arc::default() })
    }
}

/// One request's view: the document's operations (from parsing) and the one asked for.
struct OperationMetrics {
    metrics: Arc<Metrics>,
    /// Shared with the response stream of a websocket operation, which is built before the
    /// document is parsed.
    seen: Arc<Mutex<Seen>>,
}

/// The operation name from the request, then, once the document is parsed, the type of the
/// operation it runs.
#[derive(Default)]
struct Seen {
    operation_name: Option<String>,
    kind: Option<&'static str>,
}

fn operation_type(seen: &Mutex<Seen>) -> &'static str {
    seen.lock().ok().and_then(|seen| seen.kind).unwrap_or("unknown")
}

#[async_trait]
impl Extension for OperationMetrics {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> GqlResponse {
        let started = Instant::now();
        let response = next.run(ctx).await;
        self.metrics.observe_operation(operation_type(&self.seen), &response, Some(started.elapsed()));
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, GqlResponse>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, GqlResponse> {
        // Over a websocket every operation is a stream; count it at its first response.
        let metrics = self.metrics.clone();
        let seen = self.seen.clone();
        let mut first = true;
        next.run(ctx, stream)
            .inspect(move |response| {
                if std::mem::take(&mut first) {
                    metrics.observe_operation(operation_type(&seen), response, None);
                }
            })
            .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.operation_name = request.operation_name.clone();
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
        let document = next.run(ctx, query, variables).await?;
        if let Ok(mut seen) = self.seen.lock() {
            seen.kind = Some(crate::graphql::prepare::operation_kind(&document, seen.operation_name.as_deref()));
        }
        Ok(document)
    }
}
