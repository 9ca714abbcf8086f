//! GraphQL over websockets (`graphql-transport-ws` and the legacy `graphql-ws`), with the
//! lifecycle a subscription client expects: authentication in `connection_init` (refused with
//! 4403), the connection closed with 4401 when its token expires, and 1001 at server shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket as GraphQLStream, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::SEC_WEBSOCKET_PROTOCOL;
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt as _, SinkExt, StreamExt, future};
use serde_json::Value;
use tokio::sync::watch;

use crate::auth::{AuthError, Authenticator, Caller};
use crate::error::ApiError;
use crate::http::AppState;

/// Close codes of `graphql-transport-ws` (and the websocket standard's "going away").
const CLOSE_UNAUTHORIZED: u16 = 4401;
const CLOSE_FORBIDDEN: u16 = 4403;
const CLOSE_GOING_AWAY: u16 = 1001;
/// Websocket buffer sizes and the largest message a client may send. The read buffer is
/// allocated up front for every connection, and client messages are small GraphQL requests
/// (a longer one is read in several chunks).
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 4 * 1024;
const MAX_CLIENT_MESSAGE: usize = 256 * 1024;
/// How long a connection may stay silent (the clients ping) before it is closed.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// The most operations one connection may have running at once: a dashboard needs a
/// handful; each costs the server a stream and a place in the realtime fan-out.
pub const MAX_OPERATIONS_PER_SOCKET: usize = 100;
/// The most messages written to one socket at once (see the write loop in `serve`).
const MAX_BATCH: usize = 32;
/// Refusals waiting to be sent on one socket.
const REFUSALS_QUEUED: usize = 16;

/// The ids of a connection's running operations, seen in the messages both ways: a client's
/// `subscribe` (legacy: `start`) adds one, its `complete` (legacy: `stop`) or the server's
/// `complete` removes it.
#[derive(Default)]
struct Running(std::sync::Mutex<std::collections::HashSet<String>>);

/// The operation a server message is about.
#[derive(serde::Deserialize)]
struct Envelope {
    id: Option<String>,
}

/// What happens to a client message.
enum Verdict {
    /// On to the protocol.
    Pass,
    /// Refused: this error message goes back instead.
    Refuse(String),
    /// Not a protocol message (a JSON object with a string `type`): dropped. async-graphql
    /// would also read other shapes (serde accepts an array for a tagged enum), which the
    /// count of operations would then miss.
    Drop,
}

impl Running {
    /// What becomes of a client message; a new operation over the limit is refused.
    fn admit(&self, message: &[u8], protocol: WebSocketProtocols) -> Verdict {
        let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(message) else {
            return Verdict::Drop;
        };
        let Some(kind) = object.get("type").and_then(|t| t.as_str()) else { return Verdict::Drop };
        let Some(id) = object.get("id").and_then(|id| id.as_str()) else { return Verdict::Pass };
        let mut running = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match kind {
            "subscribe" | "start" if !running.contains(id) => {
                if running.len() >= MAX_OPERATIONS_PER_SOCKET {
                    return Verdict::Refuse(too_many(id, protocol));
                }
                running.insert(id.to_string());
            }
            "complete" | "stop" => {
                running.remove(id);
            }
            _ => {}
        }
        Verdict::Pass
    }

    /// Notes a server message: a `complete` ends its operation. Only messages that start like
    /// one are parsed (the tag comes first in async-graphql's messages), not every delivery.
    fn observe(&self, text: &str) {
        if text.starts_with(r#"{"type":"complete""#)
            && let Ok(Envelope { id: Some(id), .. }) = serde_json::from_str::<Envelope>(text)
        {
            self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&id);
        }
    }
}

/// The protocol's error message for an operation refused as one too many.
fn too_many(id: &str, protocol: WebSocketProtocols) -> String {
    let error = serde_json::json!({
        "message": format!("this connection already runs {MAX_OPERATIONS_PER_SOCKET} operations; complete one first"),
        "extensions": { "code": "TOO_MANY_OPERATIONS" },
    });
    // graphql-transport-ws sends a list of errors; the legacy protocol one error.
    let payload = match protocol {
        WebSocketProtocols::GraphQLWS => serde_json::json!([error]),
        _ => error,
    };
    serde_json::json!({ "type": "error", "id": id, "payload": payload }).to_string()
}

/// `GET /graphql/ws`.
pub async fn graphql_ws(State(state): State<AppState>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    // The first subprotocol the client offers that we speak; none named: graphql-transport-ws.
    let offered = headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(',')
        .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok());
    let protocol = offered.unwrap_or(WebSocketProtocols::GraphQLWS);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Subscribers mostly sit idle: small buffers keep each connection's memory low (the
        // defaults reserve 128 KiB to read), and client messages are small GraphQL requests.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, state, protocol))
        .into_response()
}

async fn serve(socket: WebSocket, state: AppState, protocol: WebSocketProtocols) {
    let (mut sink, stream) = socket.split();
    let running = Arc::new(Running::default());
    // Refusals of operations over the limit, sent by the loop below; a client that keeps
    // sending more without reading loses the surplus refusals, not server memory.
    let (refusals, mut refused_operations) = tokio::sync::mpsc::channel::<String>(REFUSALS_QUEUED);
    let admitted = running.clone();
    let input = stream.take_while(|message| future::ready(message.is_ok())).filter_map(move |message| {
        future::ready(match message {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                let data = message.into_data();
                match admitted.admit(&data, protocol) {
                    Verdict::Pass => Some(data),
                    Verdict::Refuse(refusal) => {
                        let _ = refusals.try_send(refusal);
                        None
                    }
                    Verdict::Drop => None,
                }
            }
            _ => None,
        })
    });
    let refused = Arc::new(AtomicBool::new(false));
    let (expiry_tx, mut expiry) = watch::channel::<Option<i64>>(None);
    let auth = state.auth.clone();
    let refused_flag = refused.clone();
    let mut output = GraphQLStream::new(state.ws_schema.clone(), input, protocol)
        .on_connection_init(move |payload| async move {
            match connection_init_caller(&auth, &payload).await {
                Ok(caller) => {
                    if let Caller::User(user) = &caller {
                        let _ = expiry_tx.send(Some(user.exp));
                    }
                    let mut data = Data::default();
                    data.insert(caller);
                    Ok(data)
                }
                Err(error) => {
                    refused_flag.store(true, Ordering::Relaxed);
                    Err(ApiError::from(error).into())
                }
            }
        })
        .keepalive_timeout(KEEPALIVE);

    let close = |code: u16, reason: &str| Message::Close(Some(CloseFrame { code, reason: reason.to_string().into() }));
    // Made once, not per message: a fresh timer and a fresh wait on the server-wide shutdown
    // token in every turn of the loop cost each delivery a timer-wheel insert and a lock
    // shared by all connections. A year stands in for "never" until the token's expiry is known.
    let shutdown = state.shutdown.cancelled();
    tokio::pin!(shutdown);
    let token_expiry = tokio::time::sleep(Duration::from_secs(365 * 86_400));
    tokio::pin!(token_expiry);
    let mut expiring = false;
    let mut watching = true;
    loop {
        tokio::select! {
            message = output.next() => {
                // This message and the ones already waiting behind it go out in one write: a
                // subscriber with a backlog (a burst of changes, a busy server) costs one
                // system call per batch rather than one per message, and nothing waits for
                // company when there is none.
                let mut next = message;
                let mut fed = 0;
                loop {
                    match next {
                        Some(WsMessage::Text(text)) => {
                            running.observe(&text);
                            if sink.feed(Message::Text(text.into())).await.is_err() {
                                return;
                            }
                        }
                        Some(WsMessage::Close(code, reason)) => {
                            // async-graphql closes a refused init with 1002; say what it was.
                            let code = if refused.load(Ordering::Relaxed) { CLOSE_FORBIDDEN } else { code };
                            let _ = sink.send(close(code, &reason)).await;
                            return;
                        }
                        None => {
                            let _ = sink.flush().await;
                            return;
                        }
                    }
                    fed += 1;
                    if fed == MAX_BATCH {
                        break;
                    }
                    match output.next().now_or_never() {
                        Some(message) => next = message,
                        None => break,
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            changed = expiry.changed(), if watching => match changed {
                Ok(()) => {
                    if let Some(exp) = *expiry.borrow_and_update() {
                        let left = u64::try_from(exp - chrono::Utc::now().timestamp()).unwrap_or(0);
                        token_expiry.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(left));
                        expiring = true;
                    }
                }
                // The init callback has run and is gone: nothing more will come.
                Err(_) => watching = false,
            },
            () = &mut token_expiry, if expiring => {
                let _ = sink.send(close(CLOSE_UNAUTHORIZED, "the token has expired; reconnect with a fresh one")).await;
                return;
            }
            Some(refusal) = refused_operations.recv() => {
                if sink.send(Message::Text(refusal.into())).await.is_err() {
                    return;
                }
            }
            () = &mut shutdown => {
                let _ = sink.send(close(CLOSE_GOING_AWAY, "the server is shutting down")).await;
                return;
            }
        }
    }
}

/// The caller of a websocket, from `connection_init`'s payload: `Authorization` (any case) at
/// the top level or under `headers`.
async fn connection_init_caller(auth: &Authenticator, payload: &Value) -> Result<Caller, AuthError> {
    let find = |object: &Value| {
        object
            .as_object()
            .and_then(|map| map.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.clone()))
    };
    let value = find(payload).or_else(|| payload.get("headers").and_then(find));
    let caller = match value {
        None | Some(Value::Null) => auth.authenticate(None).await,
        Some(Value::String(header)) => auth.authenticate(Some(&header)).await,
        Some(_) => Err(AuthError::MalformedHeader),
    }?;
    refuse_service(caller)
}

/// The service role works over plain HTTP only: a long-lived connection would keep its
/// RLS-bypassing rights past the credential's expiry (the relay's secret has none).
pub fn refuse_service(caller: Caller) -> Result<Caller, AuthError> {
    match caller {
        Caller::Service => Err(AuthError::BadRole("service_role".into())),
        other => Ok(other),
    }
}
