//! GraphQL over server-sent events (`POST /graphql/stream`, graphql-sse's distinct connections
//! mode): one result or a subscription's updates as `next` events, then `complete`; errors as
//! events too; the stream ends with a coded error when the token expires.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use ward::demo::TICKETS;

use crate::helpers::people::{CITIZEN, MANAGER};
use crate::helpers::{TestApp, spawn_app};

/// A server-sent event stream, read event by event.
struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, authorization: Option<String>, query: &str, variables: Value) -> Events {
        let mut request = app
            .http
            .post(format!("http://{}/graphql/stream", app.addr))
            .header("accept", "text/event-stream")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Events { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event (name and data), skipping heartbeat comments; `None` when the stream ends.
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), Vec::new());
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue; // a comment: a heartbeat
                }
                return Some((event, data.join("\n")));
            }
            let chunk =
                tokio::time::timeout(Duration::from_secs(10), self.body.next()).await.expect("an event within 10 s")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    }

    /// The next `next` event's result.
    async fn result(&mut self) -> Value {
        let (event, data) = self.next().await.expect("an event");
        assert_eq!(event, "next", "{data}");
        serde_json::from_str(&data).unwrap()
    }

    async fn completes(&mut self) {
        let (event, _) = self.next().await.expect("complete");
        assert_eq!(event, "complete");
        assert!(self.next().await.is_none(), "nothing after complete");
    }
}

fn bearer(app: &TestApp, who: &str) -> Option<String> {
    Some(format!("Bearer {}", app.token(who)))
}

#[tokio::test]
async fn queries_mutations_and_errors_answer_once_as_events() {
    let app = spawn_app().await;
    let mut me = Events::open(&app, bearer(&app, CITIZEN), "{ me { email } }", json!({})).await;
    assert_eq!(me.result().await["data"]["me"]["email"], CITIZEN);
    me.completes().await;
    // A mutation commits, as over HTTP.
    let mut created = Events::open(
        &app,
        bearer(&app, CITIZEN),
        "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }",
        json!({ "i": { "title": "Reported over SSE", "category": "WATER" } }),
    )
    .await;
    let id = created.result().await["data"]["createTicket"]["id"].as_str().unwrap().to_string();
    created.completes().await;
    let seen = app.graphql(Some(MANAGER), "query($id: ID!) { ticket(id: $id) { title } }", json!({ "id": id })).await;
    assert_eq!(seen["data"]["ticket"]["title"], "Reported over SSE");
    // Errors before execution are events too, with their codes.
    for (authorization, query, code) in [
        (Some("Bearer not-a-token".to_string()), "{ me { id } }", "UNAUTHENTICATED"),
        (bearer(&app, CITIZEN), "{ me { id }", "GRAPHQL_PARSE_FAILED"),
        (bearer(&app, CITIZEN), "{ me { password } }", "GRAPHQL_VALIDATION_FAILED"),
        (None, "subscription { ticketUpdates { eventId } }", "UNAUTHENTICATED"),
    ] {
        let mut events = Events::open(&app, authorization, query, json!({})).await;
        let result = events.result().await;
        assert_eq!(result["errors"][0]["extensions"]["code"], code, "{query}: {result}");
        events.completes().await;
    }
}

#[tokio::test]
async fn a_subscription_streams_updates_and_ends_when_its_token_expires() {
    let app = spawn_app().await;
    let start = crate::subscriptions::latest_event_id(&app).await;
    // A token that expires in three seconds (verification allows 30 s of clock skew; the
    // stream ends at the expiry itself).
    let person = ward::demo::person(MANAGER).unwrap();
    let token = app.issuer.user_token(person.auth_user_id, Some(person.email), Some(person.phone), 3).unwrap();
    let mut updates = Events::open(
        &app,
        Some(format!("Bearer {token}")),
        "subscription($after: ID) { ticketUpdates(after: $after) { eventId ticket { id } } }",
        json!({ "after": start.to_string() }),
    )
    .await;
    crate::subscriptions::set_status(&app, MANAGER, 1, "IN_PROGRESS").await;
    let update = updates.result().await;
    assert_eq!(update["data"]["ticketUpdates"]["ticket"]["id"], TICKETS[0].id.to_string(), "{update}");
    let ended = updates.result().await;
    assert_eq!(ended["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{ended}");
    updates.completes().await;
}

#[tokio::test]
async fn a_subscription_stream_ends_with_a_coded_error_at_shutdown() {
    let mut app = spawn_app().await;
    let mut updates =
        Events::open(&app, bearer(&app, MANAGER), "subscription { ticketUpdates { eventId } }", json!({})).await;
    // Give the subscription a moment to register, then stop the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.begin_shutdown();
    let ended = updates.result().await;
    assert_eq!(ended["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{ended}");
    assert!(ended["errors"][0]["message"].as_str().unwrap().contains("shutting down"));
    updates.completes().await;
}

#[tokio::test]
async fn a_manager_demoted_while_streaming_loses_the_stream() {
    use crate::helpers::people::ADMIN;
    let app = spawn_app().await;
    let start = crate::subscriptions::latest_event_id(&app).await;
    let mut updates = Events::open(
        &app,
        bearer(&app, MANAGER),
        "subscription($after: ID) { ticketUpdates(after: $after) { eventId } }",
        json!({ "after": start.to_string() }),
    )
    .await;
    crate::subscriptions::set_status(&app, MANAGER, 1, "IN_PROGRESS").await;
    assert!(updates.result().await["data"]["ticketUpdates"]["eventId"].is_string());
    let demoted = app
        .graphql(
            Some(ADMIN),
            "mutation($id: ID!) { setProfileRole(profileId: $id, role: CITIZEN) { role } }",
            json!({ "id": ward::demo::person(MANAGER).unwrap().profile_id.to_string() }),
        )
        .await;
    assert_eq!(demoted["data"]["setProfileRole"]["role"], "CITIZEN", "{demoted}");
    // The stream ends at once with FORBIDDEN; nothing the old rights allowed comes after.
    crate::subscriptions::set_status(&app, ADMIN, 1, "RESOLVED").await;
    let ended = updates.result().await;
    assert_eq!(ended["errors"][0]["extensions"]["code"], "FORBIDDEN", "{ended}");
    updates.completes().await;
}
