//! GraphQL over HTTP. Authentication happens here, before execution: a bad credential ends
//! the request with `UNAUTHENTICATED` and never runs as anonymous.

use async_graphql::ParseRequestError;
use async_graphql::ServerError;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::{AuthError, Caller};
use crate::db::RlsSession;
use crate::error::{ApiError, ErrorCode};
use crate::graphql::context::{conclude, error_code};
use crate::graphql::{RequestData, prepare};
use crate::http::AppState;

/// A code that has no `ErrorCode` (HTTP-level refusals) with its message.
struct ApiErrorWithCode {
    code: &'static str,
    message: String,
}

impl From<ApiError> for ApiErrorWithCode {
    fn from(e: ApiError) -> Self {
        ApiErrorWithCode { code: e.code.as_str(), message: e.message }
    }
}

fn coded_response(error: ApiErrorWithCode) -> async_graphql::Response {
    let mut server_error = ServerError::new(error.message, None);
    server_error.extensions.get_or_insert_with(Default::default).set("code", error.code);
    async_graphql::Response::from_errors(vec![server_error])
}

fn error_response(error: ApiErrorWithCode) -> GraphQLResponse {
    coded_response(error).into()
}

/// `POST /graphql` and `GET /graphql`.
pub async fn graphql(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let request = match request {
        Ok(request) => request,
        Err(rejection) => return rejection_response(rejection, state.config.max_body_bytes),
    };
    let caller = match authenticate(&state, &headers).await {
        Ok(caller) => caller,
        Err(error) => return refused(&state, error),
    };
    let mut request = request.into_inner();
    let started = std::time::Instant::now();
    let prepared = match prepare_counted(&state, &mut request, started).await {
        Ok(prepared) => prepared,
        Err(response) => return GraphQLResponse::from(response).into_response(),
    };
    let operation = prepared.operation;
    if operation.writes && method == Method::GET {
        // A GET can be triggered across sites (a link, an image): it never writes.
        let error = ApiErrorWithCode { code: "BAD_REQUEST", message: "mutations must be sent with POST".into() };
        let response = coded_response(error);
        state.metrics.observe_operation(operation.kind, &response, Some(started.elapsed()));
        return GraphQLResponse::from(response).into_response();
    }
    let response = execute(&state, caller, request, prepared, started).await;
    let unavailable = response.errors.iter().any(|e| error_code(e) == Some(ErrorCode::Unavailable.as_str()));
    if unavailable {
        // Overload or an outage: a status proxies, load balancers and clients' retry logic know.
        let retry_after = [(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS))];
        return (StatusCode::SERVICE_UNAVAILABLE, retry_after, GraphQLResponse::from(response)).into_response();
    }
    GraphQLResponse::from(response).into_response()
}

/// Prepares a request ([`prepare::Preparer::prepare`]); a failure is the response, counted.
pub async fn prepare_counted(
    state: &AppState,
    request: &mut async_graphql::Request,
    started: std::time::Instant,
) -> Result<prepare::Prepared, async_graphql::Response> {
    state.preparer.prepare(request).await.map_err(|error| {
        let response = async_graphql::Response::from_errors(vec![error]);
        state.metrics.observe_operation("unknown", &response, Some(started.elapsed()));
        response
    })
}

/// Runs a prepared query or mutation as `caller` in an RLS session of its own, concludes the
/// session, codes the errors, and counts the operation (GraphQL over HTTP and over SSE).
pub async fn execute(
    state: &AppState,
    caller: Caller,
    request: async_graphql::Request,
    prepared: prepare::Prepared,
    started: std::time::Instant,
) -> async_graphql::Response {
    let operation = prepared.operation;
    let session = RlsSession::new(state.db.clone(), caller);
    if operation.writes {
        session.allow_writes();
    }
    let mut response = state.schema.execute(request.data(RequestData::new(session.clone()))).await;
    conclude(&session, &mut response).await;
    prepare::code_errors(&mut response);
    state.preparer.learn(prepared, &response).await;
    state.metrics.observe_operation(operation.kind, &response, Some(started.elapsed()));
    response
}

/// What `Retry-After` says on a 503: a second is long enough for a pool to drain.
const RETRY_AFTER_SECONDS: &str = "1";

/// The caller a request's `Authorization` header names (anonymous without one); a bad
/// credential is refused, never downgraded.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let authorization = match headers.get(AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => return Err(ApiError::from(AuthError::MalformedHeader)),
    };
    state.auth.authenticate(authorization).await.map_err(ApiError::from)
}

/// A request refused before it ran (a bad credential), counted in the metrics.
fn refused(state: &AppState, error: ApiError) -> Response {
    state.metrics.graphql_refused(error.code.as_str());
    error_response(error.into()).into_response()
}

/// A request that is not GraphQL over HTTP at all, as a GraphQL error with a fitting status.
fn rejection_response(rejection: GraphQLRejection, limit: usize) -> Response {
    // A body that turns out too long while streaming fails with the limit layer's i/o error.
    let too_large = match &rejection.0 {
        ParseRequestError::PayloadTooLarge => true,
        ParseRequestError::Io(e) => e.to_string().contains("length limit"),
        _ => false,
    };
    if too_large {
        return payload_too_large(limit);
    }
    let error = ApiErrorWithCode { code: "BAD_REQUEST", message: "the request is not a GraphQL request".into() };
    (StatusCode::BAD_REQUEST, error_response(error)).into_response()
}

fn payload_too_large(limit: usize) -> Response {
    let error = ApiErrorWithCode {
        code: "PAYLOAD_TOO_LARGE",
        message: format!("the request body is larger than {limit} bytes"),
    };
    (StatusCode::PAYLOAD_TOO_LARGE, error_response(error)).into_response()
}

/// Refuses a body whose declared length is over the limit before reading any of it.
pub async fn refuse_oversized(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = state.config.max_body_bytes;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return payload_too_large(limit);
    }
    next.run(request).await
}
