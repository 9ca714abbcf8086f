//! The messages of GraphQL over websockets, in both protocols ward speaks:
//! `graphql-transport-ws` (graphql-ws, Apollo, urql) and the legacy `graphql-ws` of
//! subscriptions-transport-ws. Client messages are read with async-graphql's own definition;
//! server messages are written here, the shared `next` payload spliced in as it was rendered.

pub use async_graphql::http::{ClientMessage, WebSocketProtocols as Protocol};
use serde_json::json;

/// What a client's websocket message is.
pub enum Incoming {
    /// A protocol message.
    Message(Box<ClientMessage>),
    /// A JSON object with a string `type` that is not a valid message: the connection closes.
    Malformed(String),
    /// Anything else (not an object, no string `type`): dropped unanswered.
    Ignored,
}

/// Reads one client message.
pub fn read(data: &[u8]) -> Incoming {
    let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_slice::<serde_json::Value>(data) else {
        return Incoming::Ignored;
    };
    if !value.get("type").is_some_and(serde_json::Value::is_string) {
        return Incoming::Ignored;
    }
    match serde_json::from_value::<ClientMessage>(value) {
        Ok(message) => Incoming::Message(Box::new(message)),
        Err(error) => Incoming::Malformed(error.to_string()),
    }
}

pub const ACK: &str = r#"{"type":"connection_ack"}"#;
pub const PONG: &str = r#"{"type":"pong"}"#;

/// An operation's id as a JSON string, made once per operation for the messages about it.
pub fn quoted(id: &str) -> String {
    serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into())
}

/// A result of operation `id` (quoted) whose payload is already JSON text.
pub fn next(protocol: Protocol, id: &str, payload: &str) -> String {
    let kind = match protocol {
        Protocol::GraphQLWS => "next",
        Protocol::SubscriptionsTransportWS => "data",
    };
    let mut message = String::with_capacity(payload.len() + id.len() + 32);
    message.push_str(r#"{"type":""#);
    message.push_str(kind);
    message.push_str(r#"","id":"#);
    message.push_str(id);
    message.push_str(r#","payload":"#);
    message.push_str(payload);
    message.push('}');
    message
}

/// A result of operation `id` (quoted), executed for this subscriber alone.
pub fn response(protocol: Protocol, id: &str, response: &async_graphql::Response) -> String {
    let payload = serde_json::to_string(response).unwrap_or_else(|_| r#"{"data":null}"#.into());
    next(protocol, id, &payload)
}

/// Operation `id` (quoted) is over.
pub fn complete(id: &str) -> String {
    format!(r#"{{"type":"complete","id":{id}}}"#)
}

/// An operation refused before it ran, with this error (graphql-transport-ws sends a list of
/// errors, the legacy protocol one).
pub fn error(protocol: Protocol, id: &str, message: &str, code: &str) -> String {
    let error = json!({ "message": message, "extensions": { "code": code } });
    let payload = match protocol {
        Protocol::GraphQLWS => json!([error]),
        Protocol::SubscriptionsTransportWS => error,
    };
    json!({ "type": "error", "id": id, "payload": payload }).to_string()
}

/// The legacy protocol's way to refuse or end a connection.
pub fn connection_error(message: &str) -> String {
    json!({ "type": "connection_error", "payload": { "message": message } }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_valid_json_whatever_the_id() {
        let id = quoted("a\"b\\c\n");
        for text in [next(Protocol::GraphQLWS, &id, r#"{"data":{"x":1}}"#), complete(&id)] {
            let value: serde_json::Value = serde_json::from_str(&text).expect("json");
            assert_eq!(value["id"], "a\"b\\c\n");
        }
        let legacy: serde_json::Value =
            serde_json::from_str(&next(Protocol::SubscriptionsTransportWS, &id, "{}")).expect("json");
        assert_eq!(legacy["type"], "data");
    }

    #[test]
    fn what_is_read() {
        assert!(matches!(read(b"[1]"), Incoming::Ignored));
        assert!(matches!(read(br#"{"type":1}"#), Incoming::Ignored));
        assert!(matches!(read(br#"{"type":"subscribe"}"#), Incoming::Malformed(_)));
        assert!(
            matches!(read(br#"{"type":"ping"}"#), Incoming::Message(m) if matches!(*m, ClientMessage::Ping { .. }))
        );
    }
}
