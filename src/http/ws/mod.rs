//! GraphQL over websockets (`graphql-transport-ws` and the legacy `graphql-ws`), with the
//! lifecycle a subscription client expects: authentication in `connection_init` (refused with
//! 4403), the connection closed with 4401 when its token expires, and 1001 at server shutdown.

mod protocol;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::SEC_WEBSOCKET_PROTOCOL;
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, BoxStream, SplitSink};
use futures_util::{FutureExt as _, SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamMap;

use self::protocol::{ClientMessage, Incoming, Protocol};
use crate::auth::{AuthError, Authenticator, Caller};
use crate::error::ApiError;
use crate::graphql::multiplex::{Forward, Group, Handover};
use crate::http::AppState;
use crate::realtime::{Delivery, SubscriptionError};

/// Close codes of `graphql-transport-ws` (and the websocket standard's).
const CLOSE_UNAUTHORIZED: u16 = 4401;
const CLOSE_FORBIDDEN: u16 = 4403;
const CLOSE_SUBSCRIBER_EXISTS: u16 = 4409;
const CLOSE_TOO_MANY_INITS: u16 = 4429;
const CLOSE_TIMEOUT: u16 = 3008;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// The longest reason a close frame carries.
const MAX_CLOSE_REASON: usize = 123;
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
/// The most messages written to one socket at once (see `Connection::send_results`).
const MAX_BATCH: usize = 32;
/// Grouped subscriptions handing their deliveries over, waiting for the socket to take them.
const HANDOVERS_QUEUED: usize = 4;

/// `GET /graphql/ws`.
pub async fn graphql_ws(State(state): State<AppState>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    // The first subprotocol the client offers that we speak; none named: graphql-transport-ws.
    let offered = headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(',')
        .find_map(|p| p.trim().parse::<Protocol>().ok());
    let protocol = offered.unwrap_or(Protocol::GraphQLWS);
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

/// A connection's running operation.
struct Operation {
    id: String,
    /// The id as a JSON string, spliced into each message about the operation.
    quoted: Arc<str>,
    /// Its group when its updates are rendered once for many (`graphql::multiplex`).
    group: Option<Arc<Group>>,
    /// Once its live deliveries are handed over: where the error that ends them goes back.
    ended: Option<oneshot::Sender<SubscriptionError>>,
}

/// Which of an operation's streams an output comes from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Results,
    Live,
}

/// What an operation's streams yield: an async-graphql result (`None`: the operation is
/// over), or a grouped subscription's handed-over delivery (`None`: the deliveries ended).
enum Output {
    Result(Option<async_graphql::Response>),
    Live(Option<Result<Delivery, SubscriptionError>>),
}

/// The loop stops: the connection is closed or closing.
struct End;

type Step = Result<(), End>;

/// One websocket connection: its caller once `connection_init` is accepted, its operations
/// (each an async-graphql response stream), and the live deliveries its grouped subscriptions
/// handed over, sent their group's rendered payload.
struct Connection {
    state: AppState,
    protocol: Protocol,
    sink: SplitSink<WebSocket, Message>,
    initialised: bool,
    data: Option<Arc<Data>>,
    /// The caller's token expiry, taken by the loop to set its timer.
    expires_at: Option<i64>,
    next_operation: u64,
    operations: HashMap<String, u64>,
    running: HashMap<u64, Operation>,
    /// Every operation's results, and a grouped subscription's handed-over deliveries beside
    /// them, polled together.
    outputs: StreamMap<(u64, Source), BoxStream<'static, Output>>,
    handover: mpsc::Sender<Handover>,
    handovers: mpsc::Receiver<Handover>,
}

async fn serve(socket: WebSocket, state: AppState, protocol: Protocol) {
    let (sink, mut input) = socket.split();
    let (handover, handovers) = mpsc::channel(HANDOVERS_QUEUED);
    let stop = state.shutdown.clone();
    let mut connection = Connection {
        state,
        protocol,
        sink,
        initialised: false,
        data: None,
        expires_at: None,
        next_operation: 1,
        operations: HashMap::new(),
        running: HashMap::new(),
        outputs: StreamMap::new(),
        handover,
        handovers,
    };
    // Made once, not per message: a fresh timer and a fresh wait on the server-wide shutdown
    // token in every turn of the loop cost each delivery a timer-wheel insert and a lock
    // shared by all connections. A year stands in for "never" until the token's expiry is known.
    let shutdown = stop.cancelled();
    tokio::pin!(shutdown);
    let keepalive = tokio::time::sleep(KEEPALIVE);
    tokio::pin!(keepalive);
    let token_expiry = tokio::time::sleep(Duration::from_secs(365 * 86_400));
    tokio::pin!(token_expiry);
    let mut expiring = false;
    loop {
        // Not biased: a backlog of updates must not starve the client's own messages (a
        // `complete`, a ping).
        let step = tokio::select! {
            () = &mut shutdown => connection.close(CLOSE_GOING_AWAY, "the server is shutting down").await,
            () = &mut token_expiry, if expiring => {
                connection.close(CLOSE_UNAUTHORIZED, "the token has expired; reconnect with a fresh one").await
            }
            Some(handover) = connection.handovers.recv() => connection.take_over(handover),
            Some(((operation, _), output)) = connection.outputs.next(), if !connection.outputs.is_empty() => {
                connection.send_outputs(operation, output).await
            }
            message = input.next() => match message {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => match protocol::read(&message.into_data()) {
                    Incoming::Ignored => Ok(()),
                    Incoming::Malformed(error) => connection.close(CLOSE_PROTOCOL_ERROR, &error).await,
                    Incoming::Message(message) => {
                        keepalive.as_mut().reset(tokio::time::Instant::now() + KEEPALIVE);
                        // Boxed: client messages are rare, and their handling (authentication
                        // at init, starting an operation) would otherwise size every idle
                        // connection's task for its largest step.
                        Box::pin(connection.handle(*message)).await
                    }
                },
                // Pings are answered by the websocket layer; a close frame is followed by the end.
                Some(Ok(_)) => Ok(()),
                Some(Err(_)) | None => Err(End),
            },
            () = &mut keepalive => connection.refuse(CLOSE_TIMEOUT, "timeout").await,
        };
        if step.is_err() {
            return;
        }
        if let Some(exp) = connection.expires_at.take() {
            let left = u64::try_from(exp - chrono::Utc::now().timestamp()).unwrap_or(0);
            token_expiry.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(left));
            expiring = true;
        }
    }
}

impl Connection {
    async fn handle(&mut self, message: ClientMessage) -> Step {
        match message {
            ClientMessage::ConnectionInit { payload } => self.init(payload.unwrap_or_default()).await,
            ClientMessage::Start { id, payload } => self.start(id, payload).await,
            ClientMessage::Stop { id } => self.stop(&id).await,
            ClientMessage::ConnectionTerminate => Err(End),
            ClientMessage::Ping { .. } => self.send(protocol::PONG.into()).await,
            ClientMessage::Pong { .. } => Ok(()),
        }
    }

    /// `connection_init`: the caller, from the token in its payload.
    async fn init(&mut self, payload: Value) -> Step {
        if std::mem::replace(&mut self.initialised, true) {
            return self.refuse(CLOSE_TOO_MANY_INITS, "Too many initialisation requests.").await;
        }
        match connection_init_caller(&self.state.auth, &payload).await {
            Ok(caller) => {
                if let Caller::User(user) = &caller {
                    self.expires_at = Some(user.exp);
                }
                let mut data = Data::default();
                data.insert(caller);
                self.data = Some(Arc::new(data));
                self.send(protocol::ACK.into()).await
            }
            Err(error) => self.refuse(CLOSE_FORBIDDEN, &ApiError::from(error).message).await,
        }
    }

    /// `subscribe` (legacy: `start`): the operation runs as the connection's caller.
    async fn start(&mut self, id: String, request: async_graphql::Request) -> Step {
        let Some(data) = self.data.clone() else {
            return self.close(CLOSE_UNAUTHORIZED, "Unauthorized").await;
        };
        if let Some(&running) = self.operations.get(&id) {
            match self.protocol {
                Protocol::GraphQLWS => {
                    return self.close(CLOSE_SUBSCRIBER_EXISTS, "an operation with this id is already running").await;
                }
                // The legacy protocol has no such error: the new operation replaces the old.
                Protocol::SubscriptionsTransportWS => {
                    self.drop_outputs(running);
                    self.running.remove(&running);
                }
            }
        }
        if self.running.len() >= MAX_OPERATIONS_PER_SOCKET {
            let message =
                format!("this connection already runs {MAX_OPERATIONS_PER_SOCKET} operations; complete one first");
            return self.send(protocol::error(self.protocol, &id, &message, "TOO_MANY_OPERATIONS")).await;
        }
        let operation = self.next_operation;
        self.next_operation += 1;
        let mut request = request;
        let group = self.state.multiplex.group(&mut request);
        let request = match group {
            Some(_) => request.data(Forward { operation, to: self.handover.clone() }),
            None => request,
        };
        let results = self.state.ws_schema.execute_stream_with_session_data(request, data);
        let results = results.map(|r| Output::Result(Some(r))).chain(stream::once(async { Output::Result(None) }));
        self.outputs.insert((operation, Source::Results), results.boxed());
        self.operations.insert(id.clone(), operation);
        self.running.insert(operation, Operation { quoted: protocol::quoted(&id).into(), id, group, ended: None });
        Ok(())
    }

    /// `complete` (legacy: `stop`) from the client: the operation ends, and says so.
    async fn stop(&mut self, id: &str) -> Step {
        let Some(operation) = self.operations.remove(id) else { return Ok(()) };
        self.drop_outputs(operation);
        match self.running.remove(&operation) {
            Some(ended) => self.send(protocol::complete(&ended.quoted)).await,
            None => Ok(()),
        }
    }

    /// Outputs of operations, with those already waiting behind them, in one write: a
    /// subscriber with a backlog (a burst of changes, a busy server) costs one system call per
    /// batch rather than one per message, and nothing waits for company when there is none.
    async fn send_outputs(&mut self, operation: u64, output: Output) -> Step {
        let mut next = (operation, output);
        for fed in 1..=MAX_BATCH {
            match next.1 {
                Output::Result(result) => self.feed_result(next.0, result).await?,
                Output::Live(delivery) => self.feed_live(next.0, delivery).await?,
            }
            // Counted before taking the next one: a message taken is a message sent.
            if fed == MAX_BATCH {
                break;
            }
            match self.outputs.next().now_or_never() {
                Some(Some(((operation, _), output))) => next = (operation, output),
                _ => break,
            }
        }
        self.flush().await
    }

    /// A grouped subscription's live deliveries, handed over after its first update.
    fn take_over(&mut self, handover: Handover) -> Step {
        // An operation completed meanwhile: dropping the deliveries ends its subscription.
        if let Some(running) = self.running.get_mut(&handover.operation) {
            running.ended = Some(handover.ended);
            let deliveries = handover.deliveries.map(|d| Output::Live(Some(d)));
            let deliveries = deliveries.chain(stream::once(async { Output::Live(None) }));
            self.outputs.insert((handover.operation, Source::Live), deliveries.boxed());
        }
        Ok(())
    }

    fn drop_outputs(&mut self, operation: u64) {
        self.outputs.remove(&(operation, Source::Results));
        self.outputs.remove(&(operation, Source::Live));
    }

    async fn feed_result(&mut self, operation: u64, result: Option<async_graphql::Response>) -> Step {
        match result {
            Some(response) => {
                // An operation the client completed meanwhile says nothing more.
                let Some(running) = self.running.get(&operation) else { return Ok(()) };
                let text = protocol::response(self.protocol, &running.quoted, &response);
                self.feed(text).await
            }
            None => match self.running.remove(&operation) {
                Some(ended) => {
                    self.operations.remove(&ended.id);
                    self.feed(protocol::complete(&ended.quoted)).await
                }
                None => Ok(()),
            },
        }
    }

    /// A grouped update: its group's payload, rendered once for all who receive it. The error
    /// that ends the deliveries goes back to the subscription, which answers it the usual way
    /// (after everything fed before it); their end completes the subscription.
    async fn feed_live(&mut self, operation: u64, delivery: Option<Result<Delivery, SubscriptionError>>) -> Step {
        let Some(running) = self.running.get_mut(&operation) else { return Ok(()) };
        match delivery {
            Some(Ok(delivery)) => {
                let Some(group) = running.group.clone() else { return Ok(()) };
                let quoted = running.quoted.clone();
                let payload = self.state.multiplex.payload(&group, &delivery).await;
                self.feed(protocol::next(self.protocol, &quoted, &payload)).await
            }
            Some(Err(error)) => {
                if let Some(ended) = running.ended.take() {
                    let _ = ended.send(error);
                }
                Ok(())
            }
            None => {
                running.ended = None;
                Ok(())
            }
        }
    }

    async fn feed(&mut self, text: String) -> Step {
        self.sink.feed(Message::Text(text.into())).await.map_err(|_| End)
    }

    async fn flush(&mut self) -> Step {
        self.sink.flush().await.map_err(|_| End)
    }

    async fn send(&mut self, text: String) -> Step {
        self.sink.send(Message::Text(text.into())).await.map_err(|_| End)
    }

    /// Closes the connection with `code`; the loop ends.
    async fn close(&mut self, code: u16, reason: &str) -> Step {
        let reason = clip(reason, MAX_CLOSE_REASON);
        let _ = self.sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
        Err(End)
    }

    /// Ends the connection for a reason of the protocol: graphql-transport-ws closes with the
    /// code; the legacy protocol says it in a `connection_error` first.
    async fn refuse(&mut self, code: u16, reason: &str) -> Step {
        if self.protocol == Protocol::SubscriptionsTransportWS {
            let _ = self.send(protocol::connection_error(reason)).await;
        }
        self.close(code, reason).await
    }
}

/// At most `max` bytes of `text`, cut at a character boundary (a close frame's reason is
/// limited to 123 bytes).
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
