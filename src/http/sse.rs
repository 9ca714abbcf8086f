//! GraphQL over Server-Sent Events: the `graphql-sse` protocol's "distinct connections" mode
//! on `POST /graphql/stream`, for clients and proxies where websockets are blocked. One
//! request, one event stream: `next` events with results, then `complete`. Subscriptions
//! stream their updates (resume with `after`, like over websockets); queries and mutations
//! answer once, run exactly as over HTTP. Errors before execution (a bad token, a document
//! that does not parse) are `next` events too, as the protocol asks: a non-stream answer
//! would fail an `EventSource` without saying why. Heartbeat comments keep proxies from
//! closing a quiet stream; the stream ends when the token expires and at shutdown, each
//! time with a coded error first.

use std::convert::Infallible;
use std::time::Duration;

use async_graphql::ServerError;
use async_graphql_axum::GraphQLRequest;
use async_graphql_axum::rejection::GraphQLRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;

/// How often a quiet stream gets a heartbeat comment (proxies close idle ones at 30–60 s).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Events waiting for a slow reader before the subscription waits for it.
const EVENT_BUFFER: usize = 64;

/// `POST /graphql/stream`.
pub async fn graphql_sse(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let caller = match super::graphql::authenticate(&state, &headers).await {
        Ok(caller) => caller,
        Err(error) => return refused(&state, error),
    };
    let Ok(request) = request else {
        return once(error_response(ApiError::new(ErrorCode::BadUserInput, "the request is not a GraphQL request")));
    };
    let mut request = request.into_inner();
    let started = std::time::Instant::now();
    let prepared = match super::graphql::prepare_counted(&state, &mut request, started).await {
        Ok(prepared) => prepared,
        Err(response) => return once(response),
    };
    if prepared.operation.kind != "subscription" {
        return once(super::graphql::execute(&state, caller, request, prepared, started).await);
    }
    match super::ws::refuse_service(caller) {
        Ok(caller) => subscribe(state, caller, request),
        Err(error) => refused(&state, ApiError::from(error)),
    }
}

/// A subscription's stream: its updates as `next` events until it ends, the client goes, the
/// token expires or the server shuts down; then `complete`.
fn subscribe(state: AppState, caller: Caller, request: async_graphql::Request) -> Response {
    let expires = match &caller {
        Caller::User(user) => {
            let left = u64::try_from(user.exp - chrono::Utc::now().timestamp()).unwrap_or(0);
            Some(tokio::time::Instant::now() + Duration::from_secs(left))
        }
        _ => None,
    };
    let (events, received) = mpsc::channel::<Event>(EVENT_BUFFER);
    let updates = state.ws_schema.execute_stream(request.data(caller));
    tokio::spawn(async move {
        let mut updates = std::pin::pin!(updates);
        let never = tokio::time::Instant::now() + Duration::from_secs(365 * 86_400);
        let expiry = tokio::time::sleep_until(expires.unwrap_or(never));
        tokio::pin!(expiry);
        let ending = loop {
            tokio::select! {
                update = updates.next() => match update {
                    Some(response) => {
                        if events.send(next(&response)).await.is_err() {
                            return; // the client went away: the subscription ends with it
                        }
                    }
                    None => break None,
                },
                () = &mut expiry => break Some(ApiError::new(ErrorCode::Unauthenticated, "the token has expired; subscribe again with a fresh one (and `after`)")),
                () = state.shutdown.cancelled() => break Some(ApiError::new(ErrorCode::Unavailable, "the server is shutting down; subscribe again (with `after`)")),
                () = events.closed() => return,
            }
        };
        if let Some(error) = ending {
            let _ = events.send(next(&error_response(error))).await;
        }
        let _ = events.send(complete()).await;
    });
    stream_response(received)
}

/// One result as an event stream: `next`, then `complete`.
fn once(response: async_graphql::Response) -> Response {
    let (events, received) = mpsc::channel::<Event>(2);
    let _ = events.try_send(next(&response));
    let _ = events.try_send(complete());
    stream_response(received)
}

fn stream_response(received: mpsc::Receiver<Event>) -> Response {
    let stream = futures_util::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|event| (Ok::<_, Infallible>(event), received))
    });
    sse(stream)
}

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    let mut response = Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT)).into_response();
    // Proxies that buffer responses (nginx) would hold the events back.
    response.headers_mut().insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    response
}

fn next(response: &async_graphql::Response) -> Event {
    let data =
        serde_json::to_string(response).unwrap_or_else(|_| r#"{"errors":[{"message":"internal error"}]}"#.into());
    Event::default().event("next").data(data)
}

fn complete() -> Event {
    // An empty `data` line: `EventSource` drops events without one.
    Event::default().event("complete").data("")
}

fn error_response(error: ApiError) -> async_graphql::Response {
    let mut server_error = ServerError::new(error.message, None);
    server_error.extensions.get_or_insert_with(Default::default).set("code", error.code.as_str());
    async_graphql::Response::from_errors(vec![server_error])
}

/// A credential refused before anything ran, counted like over HTTP.
fn refused(state: &AppState, error: ApiError) -> Response {
    state.metrics.graphql_refused(error.code.as_str());
    once(error_response(error))
}
