//! GraphQL over HTTP and over websockets. Authentication happens here, before execution: a
//! bad credential ends the request with `UNAUTHENTICATED` and never runs as anonymous.

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::{Data, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use crate::app::AppState;
use crate::auth::{AuthError, Caller};
use crate::db::RlsSession;
use crate::error::{ApiError, ErrorCode};
use crate::graphql::RequestData;

/// The GraphiQL playground.
pub async fn playground() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("ward")
            .finish(),
    )
}

fn error_response(error: ApiError) -> GraphQLResponse {
    let mut server_error = ServerError::new(error.message, None);
    server_error.extensions.get_or_insert_with(Default::default).set("code", error.code.as_str());
    async_graphql::Response::from_errors(vec![server_error]).into()
}

/// `POST /graphql` and `GET /graphql`.
pub async fn graphql(State(state): State<AppState>, headers: HeaderMap, request: GraphQLRequest) -> GraphQLResponse {
    let authorization = match headers.get(AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => return error_response(AuthError::MalformedHeader.into()),
    };
    let caller = match state.auth.authenticate(authorization) {
        Ok(caller) => caller,
        Err(error) => return error_response(error.into()),
    };
    let session = RlsSession::new(state.db.clone(), caller);
    let request = request.into_inner().data(RequestData::new(session.clone()));
    let mut response = state.schema.execute(request).await;
    // The request's writes stand only if everything in it succeeded.
    let commit = response.errors.is_empty();
    if let Err(error) = session.finish(commit).await {
        let api_error = ApiError::internal(&error);
        response = async_graphql::Response::from_errors(vec![ServerError::new(api_error.message, None)]);
    }
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            // What async-graphql reports itself during execution is about the input
            // (variables, arguments); everything ward raises carries its own code.
            extensions.set("code", ErrorCode::BadUserInput.as_str());
        }
    }
    response.into()
}

/// `GET /graphql/ws`: subscriptions over `graphql-transport-ws` and the legacy `graphql-ws`.
pub async fn graphql_ws(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            let auth = state.auth.clone();
            GraphQLWebSocket::new(stream, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let caller = connection_init_caller(&auth, &payload).map_err(ApiError::from)?;
                    let mut data = Data::default();
                    data.insert(caller);
                    Ok(data)
                })
                .serve()
        })
        .into_response()
}

/// The caller of a websocket, from `connection_init`'s payload: `Authorization` (any case) at
/// the top level or under `headers`.
fn connection_init_caller(
    auth: &crate::auth::Authenticator,
    payload: &Value,
) -> Result<Caller, AuthError> {
    let find = |object: &Value| {
        object.as_object().and_then(|map| {
            map.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.clone())
        })
    };
    let value = find(payload).or_else(|| payload.get("headers").and_then(find));
    match value {
        None | Some(Value::Null) => auth.authenticate(None),
        Some(Value::String(header)) => auth.authenticate(Some(&header)),
        Some(_) => Err(AuthError::MalformedHeader),
    }
}
