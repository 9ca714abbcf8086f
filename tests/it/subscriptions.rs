//! Live ticket updates over real websockets: who receives what, replay with `after`, narrowing
//! to one ticket, the connection lifecycle, a PostgreSQL restart mid-stream, and slow consumers.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ward::demo::{self, TICKETS};

use crate::helpers::{TestApp, spawn_app};

const UPDATES: &str = "subscription($after: ID, $ticketId: ID) {
    ticketUpdates(after: $after, ticketId: $ticketId) { eventId kind status notice ticket { id isSensitive reporter { id } } } }";

/// A `graphql-transport-ws` client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Results of other operations read while waiting for one (`result_of`).
    stash: Vec<Value>,
}

/// How a connection attempt ended.
#[allow(clippy::large_enum_variant)] // one per connection attempt in tests
pub enum Init {
    Acked(Client),
    Closed(u16, String),
}

pub async fn connect(addr: std::net::SocketAddr, payload: Value, protocol: &str) -> Init {
    let mut request = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("websocket upgrade");
    ws.send(Message::text(json!({ "type": "connection_init", "payload": payload }).to_string())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an answer to connection_init") {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                match message["type"].as_str() {
                    Some("connection_ack") => return Init::Acked(Client { ws, stash: Vec::new() }),
                    Some("ka") => continue,
                    _ => panic!("unexpected {message}"),
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let frame = frame.expect("a close frame");
                return Init::Closed(frame.code.into(), frame.reason.to_string());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

impl Client {
    pub async fn new(app: &TestApp, email: &str) -> Client {
        match connect(
            app.addr,
            json!({ "Authorization": format!("Bearer {}", app.token(email)) }),
            "graphql-transport-ws",
        )
        .await
        {
            Init::Acked(client) => client,
            Init::Closed(code, reason) => panic!("refused: {code} {reason}"),
        }
    }

    pub async fn subscribe(&mut self, id: &str, variables: Value) {
        self.subscribe_to(id, UPDATES, variables).await;
    }

    /// Subscribes with a document of the caller's choosing.
    pub async fn subscribe_to(&mut self, id: &str, query: &str, variables: Value) {
        let message = json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
        self.ws.send(Message::text(message.to_string())).await.unwrap();
    }

    /// Sends any JSON as a text frame.
    pub async fn send_raw(&mut self, message: Value) {
        self.ws.send(Message::text(message.to_string())).await.unwrap();
    }

    /// Ends one of this connection's operations.
    pub async fn complete(&mut self, id: &str) {
        let message = json!({ "id": id, "type": "complete" });
        self.ws.send(Message::text(message.to_string())).await.unwrap();
    }

    /// The next protocol message (answering pings), or `None` after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(wait, self.ws.next()).await.ok()??;
            match message {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == "ping" {
                        self.ws.send(Message::text(json!({ "type": "pong" }).to_string())).await.unwrap();
                        continue;
                    }
                    return Some(value);
                }
                Ok(Message::Close(frame)) => {
                    let code: u16 = frame.map(|f| f.code.into()).unwrap_or(0);
                    return Some(json!({ "type": "closed", "code": code }));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// The next result of operation `id` (its payload), whichever protocol; results of other
    /// operations read meanwhile are kept for their turn.
    pub async fn result_of(&mut self, id: &str) -> Value {
        let message = match self.stash.iter().position(|m| m["id"] == id) {
            Some(at) => self.stash.remove(at),
            None => loop {
                let message = self.next(Duration::from_secs(10)).await.expect("an update within 10 s");
                if message["type"] == "ka" {
                    continue;
                }
                if message["id"] == id {
                    break message;
                }
                self.stash.push(message);
            },
        };
        assert!(matches!(message["type"].as_str(), Some("next" | "data")), "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        message["payload"].clone()
    }

    /// The next update's `ticketUpdates` object.
    pub async fn update(&mut self) -> Value {
        let message = self.next(Duration::from_secs(10)).await.expect("an update within 10 s");
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        message["payload"]["data"]["ticketUpdates"].clone()
    }

    pub async fn nothing_for(&mut self, wait: Duration) {
        if let Some(message) = self.next(wait).await {
            panic!("expected nothing, got {message}");
        }
    }
}

pub async fn latest_event_id(app: &TestApp) -> i64 {
    let owner = app.db.owner().await;
    let row = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select coalesce(max(id), 0) as n from ticket_events",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

pub async fn set_status(app: &TestApp, who: &str, ticket: usize, status: &str) {
    let response = app
        .graphql(
            Some(who),
            "mutation($id: ID!, $s: TicketStatus!) { setTicketStatus(id: $id, status: $s) { status } }",
            json!({ "id": TICKETS[ticket - 1].id.to_string(), "s": status }),
        )
        .await;
    assert!(response.get("errors").is_none(), "{response}");
}

#[tokio::test]
async fn each_person_receives_exactly_what_they_may_see() {
    let app = spawn_app().await;
    let start = latest_event_id(&app).await;
    let mut clients = BTreeMap::new();
    for person in demo::PEOPLE {
        let mut client = Client::new(&app, person.email).await;
        // `after` closes the race between subscribing and the first change below.
        client.subscribe("1", json!({ "after": start.to_string() })).await;
        clients.insert(person.email, client);
    }
    // A non-sensitive ticket reported by the citizen, not assigned to the worker.
    set_status(&app, "manager@demo.test", 2, "RESOLVED").await;
    // The sensitive case: reporter, manager, SAPS and admin; never the field worker.
    set_status(&app, "saps@demo.test", 3, "IN_PROGRESS").await;
    // The other municipality's ticket.
    set_status(&app, "manager@other.test", 7, "IN_PROGRESS").await;

    let t2 = TICKETS[1].id.to_string();
    let t3 = TICKETS[2].id.to_string();
    let t7 = TICKETS[6].id.to_string();
    let expected: [(&str, Vec<&String>); 7] = [
        ("citizen@demo.test", vec![&t2, &t3]),
        ("worker@demo.test", vec![]),
        ("manager@demo.test", vec![&t2, &t3]),
        ("saps@demo.test", vec![&t2, &t3]),
        ("admin@demo.test", vec![&t2, &t3]),
        ("citizen@other.test", vec![]),
        ("manager@other.test", vec![&t7]),
    ];
    for (who, tickets) in expected {
        let client = clients.get_mut(who).unwrap();
        let mut previous = start;
        for ticket in tickets {
            let update = client.update().await;
            assert_eq!(update["kind"], "UPDATED", "{who}: {update}");
            assert_eq!(&update["ticket"]["id"], ticket, "{who}: {update}");
            let id: i64 = update["eventId"].as_str().unwrap().parse().unwrap();
            assert!(id > previous, "{who}: events in order");
            previous = id;
        }
        client.nothing_for(Duration::from_millis(300)).await;
    }
    // Nested fields are read under the subscriber's own policies: the citizen's update of the
    // sensitive case shows the reporter (themselves); the admin's too.
    let created = app
        .graphql(
            Some("citizen@demo.test"),
            "mutation { createTicket(input: { title: \"Live\", category: WATER }) { id } }",
            json!({}),
        )
        .await;
    let new_id = created["data"]["createTicket"]["id"].clone();
    for who in ["citizen@demo.test", "manager@demo.test"] {
        let update = clients.get_mut(who).unwrap().update().await;
        assert_eq!(update["kind"], "CREATED");
        assert_eq!(update["ticket"]["id"], new_id);
        assert_eq!(
            update["ticket"]["reporter"]["id"],
            demo::person("citizen@demo.test").unwrap().profile_id.to_string()
        );
    }
    clients.get_mut("worker@demo.test").unwrap().nothing_for(Duration::from_millis(200)).await;
}

/// A document of the rows' own fields only: its updates are the same for everyone who may
/// receive them, so they are rendered once per event for the whole group.
pub const SHARED_UPDATES: &str = "subscription($after: ID) { ticketUpdates(after: $after) { eventId kind status ticket { id title status isSensitive version } } }";

#[tokio::test]
async fn one_document_for_many_is_rendered_once_per_event_and_reaches_only_who_may_see_it() {
    let app = spawn_app().await;
    // `after` closes the race between subscribing and the first change below.
    let after = json!({ "after": latest_event_id(&app).await.to_string() });
    let mut clients = BTreeMap::new();
    for person in demo::PEOPLE {
        let mut client = Client::new(&app, person.email).await;
        client.subscribe_to("s", SHARED_UPDATES, after.clone()).await;
        clients.insert(person.email, client);
    }
    // The same document over the legacy protocol joins the same group.
    let token = app.token("admin@demo.test");
    let Init::Acked(mut legacy) =
        connect(app.addr, json!({ "Authorization": format!("Bearer {token}") }), "graphql-ws").await
    else {
        panic!("refused")
    };
    let start = json!({ "id": "s", "type": "start", "payload": { "query": SHARED_UPDATES, "variables": after } });
    legacy.send_raw(start).await;
    // Beside it, documents with a per-person field run per subscriber, as before.
    for who in ["citizen@demo.test", "manager@demo.test"] {
        clients.get_mut(who).unwrap().subscribe("p", after.clone()).await;
    }
    let recipients = ["citizen@demo.test", "manager@demo.test", "saps@demo.test", "admin@demo.test"];
    let t2 = TICKETS[1].id.to_string();
    let t3 = TICKETS[2].id.to_string();

    // A first change every recipient receives: each subscription is live after it. (A
    // subscription's first update runs like any operation's; the group's start after it.)
    set_status(&app, "manager@demo.test", 2, "RESOLVED").await;
    for who in recipients {
        let client = clients.get_mut(who).unwrap();
        let first = client.result_of("s").await;
        assert_eq!(first["data"]["ticketUpdates"]["ticket"]["id"], t2, "{who}");
    }
    let first = legacy.result_of("s").await;
    assert_eq!(first["data"]["ticketUpdates"]["ticket"]["id"], t2);

    // Two more changes: each rendered once for the group, whoever receives it.
    set_status(&app, "saps@demo.test", 3, "IN_PROGRESS").await;
    set_status(&app, "manager@demo.test", 2, "CLOSED").await;
    let mut payloads: Vec<Vec<Value>> = Vec::new();
    for who in recipients {
        let client = clients.get_mut(who).unwrap();
        payloads.push(vec![client.result_of("s").await, client.result_of("s").await]);
    }
    payloads.push(vec![legacy.result_of("s").await, legacy.result_of("s").await]);
    for other in &payloads[1..] {
        assert_eq!(other, &payloads[0], "everyone receives the same updates");
    }
    let updates: Vec<&Value> = payloads[0].iter().map(|p| &p["data"]["ticketUpdates"]).collect();
    assert_eq!(updates[0]["ticket"]["id"], t3);
    assert_eq!(updates[0]["ticket"]["isSensitive"], true);
    assert_eq!(updates[0]["status"], "IN_PROGRESS");
    assert_eq!(updates[1]["ticket"]["id"], t2);
    assert_eq!(updates[1]["status"], "CLOSED");
    assert!(
        updates[0]["eventId"].as_str().unwrap().parse::<i64>().unwrap()
            < updates[1]["eventId"].as_str().unwrap().parse::<i64>().unwrap()
    );

    // Who may not see them received nothing: the worker (neither ticket), the other city.
    for who in ["worker@demo.test", "citizen@other.test", "manager@other.test"] {
        clients.get_mut(who).unwrap().nothing_for(Duration::from_millis(200)).await;
    }
    // The per-person documents still read the reporter under each subscriber's policies.
    for who in ["citizen@demo.test", "manager@demo.test"] {
        let client = clients.get_mut(who).unwrap();
        for ticket in [&t2, &t3, &t2] {
            let update = client.result_of("p").await;
            let update = &update["data"]["ticketUpdates"];
            assert_eq!(&update["ticket"]["id"], ticket, "{who}");
            assert_eq!(
                update["ticket"]["reporter"]["id"],
                demo::person("citizen@demo.test").unwrap().profile_id.to_string(),
                "{who}"
            );
        }
    }
    // Rendered once per event for the group (the first change went to each as its first
    // update); sent to its five recipients each time; the per-person documents not counted.
    let metrics = crate::operations::metrics_text(&app).await;
    assert_eq!(crate::operations::sample(&metrics, "ward_realtime_group_renders_total"), Some(2.0), "{metrics}");
    assert_eq!(crate::operations::sample(&metrics, "ward_realtime_group_deliveries_total"), Some(10.0), "{metrics}");
}

#[tokio::test]
async fn protocol_violations_close_with_the_protocol_codes() {
    let app = spawn_app().await;
    // A subscribe before connection_init: 4401.
    let request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut early = Client { ws, stash: Vec::new() };
    early.subscribe_to("1", SHARED_UPDATES, json!({})).await;
    assert_eq!(early.next(Duration::from_secs(5)).await, Some(json!({ "type": "closed", "code": 4401 })));
    // The same id twice while the first runs: 4409.
    let mut client = Client::new(&app, "manager@demo.test").await;
    client.subscribe_to("1", SHARED_UPDATES, json!({})).await;
    client.subscribe_to("1", SHARED_UPDATES, json!({})).await;
    assert_eq!(client.next(Duration::from_secs(5)).await, Some(json!({ "type": "closed", "code": 4409 })));
    // A second connection_init: 4429.
    let mut client = Client::new(&app, "manager@demo.test").await;
    client.send_raw(json!({ "type": "connection_init", "payload": {} })).await;
    assert_eq!(client.next(Duration::from_secs(5)).await, Some(json!({ "type": "closed", "code": 4429 })));
    // An id may be used again once its operation is complete.
    let mut client = Client::new(&app, "manager@demo.test").await;
    client.subscribe_to("1", SHARED_UPDATES, json!({})).await;
    client.complete("1").await;
    // `after` closes the race between subscribing and the change below.
    let after = json!({ "after": latest_event_id(&app).await.to_string() });
    client.subscribe_to("1", SHARED_UPDATES, after).await;
    set_status(&app, "manager@demo.test", 1, "IN_PROGRESS").await;
    loop {
        let message = client.next(Duration::from_secs(10)).await.expect("an answer");
        match message["type"].as_str() {
            Some("complete") => assert_eq!(message["id"], "1"),
            Some("next") => {
                assert_eq!(message["payload"]["data"]["ticketUpdates"]["status"], "IN_PROGRESS");
                break;
            }
            _ => panic!("{message}"),
        }
    }
}

#[tokio::test]
async fn replay_after_an_event_id_then_live_without_gaps_or_duplicates() {
    let app = spawn_app().await;
    let start = latest_event_id(&app).await;
    set_status(&app, "manager@demo.test", 1, "IN_PROGRESS").await;
    set_status(&app, "manager@demo.test", 2, "RESOLVED").await;
    set_status(&app, "manager@demo.test", 1, "RESOLVED").await;
    let mut client = Client::new(&app, "manager@demo.test").await;
    client.subscribe("a", json!({ "after": start.to_string() })).await;
    let mut ids = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let update = client.update().await;
        ids.push(update["eventId"].as_str().unwrap().parse::<i64>().unwrap());
        statuses.push(update["status"].as_str().unwrap().to_string());
    }
    assert_eq!(statuses, ["IN_PROGRESS", "RESOLVED", "RESOLVED"]);
    // Live from here.
    set_status(&app, "manager@demo.test", 2, "CLOSED").await;
    let live = client.update().await;
    let live_id: i64 = live["eventId"].as_str().unwrap().parse().unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && live_id > ids[2]);
    client.nothing_for(Duration::from_millis(300)).await;

    // A client that reconnects with its last event id misses nothing that happened meanwhile.
    drop(client);
    set_status(&app, "manager@demo.test", 2, "OPEN").await;
    let mut again = Client::new(&app, "manager@demo.test").await;
    again.subscribe("b", json!({ "after": live_id.to_string() })).await;
    assert_eq!(again.update().await["status"], "OPEN");
    again.nothing_for(Duration::from_millis(300)).await;
}

/// A burst of events (one transaction changing a ticket 150 times) reaches a subscriber
/// whole and in order: the server writes the messages waiting for a socket in batches, and no
/// batch boundary may drop or repeat one.
#[tokio::test]
async fn a_burst_of_updates_arrives_whole_and_in_order() {
    let app = spawn_app().await;
    let start = latest_event_id(&app).await;
    // Three subscribers of one document of fields the server answers from the event itself, so
    // updates are ready back to back, and rendered once for the three; from `start`, so the
    // first change is not missed while the subscriptions are being registered.
    let mut clients = Vec::new();
    let shared = "subscription($after: ID) { ticketUpdates(after: $after) { eventId status } }";
    // And one beside them whose document reads a per-person field, executed for it alone.
    let personal =
        "subscription($after: ID) { ticketUpdates(after: $after) { eventId status ticket { reporter { id } } } }";
    let subscribers = [
        ("manager@demo.test", shared),
        ("saps@demo.test", shared),
        ("admin@demo.test", shared),
        ("manager@demo.test", personal),
    ];
    for (who, document) in subscribers {
        let mut client = Client::new(&app, who).await;
        client.subscribe_to("burst", document, json!({ "after": start.to_string() })).await;
        clients.push(client);
    }
    set_status(&app, "manager@demo.test", 1, "IN_PROGRESS").await;
    for client in &mut clients {
        client.update().await;
    }
    const BURST: usize = 150;
    app.db
        .owner()
        .await
        .execute_unprepared(&format!(
            "do $$ begin for i in 1..{BURST} loop update tickets set title = 'Burst ' || i where id = '{}'; end loop; end $$",
            TICKETS[0].id
        ))
        .await
        .unwrap();
    for client in &mut clients {
        let mut ids = Vec::new();
        for _ in 0..BURST {
            let update = client.update().await;
            ids.push(update["eventId"].as_str().unwrap().parse::<i64>().unwrap());
        }
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "gaps or repeats in {ids:?}");
        client.nothing_for(Duration::from_millis(300)).await;
    }
    // Each event of the burst rendered once for the three, however far apart they read it.
    let metrics = crate::operations::metrics_text(&app).await;
    let renders = crate::operations::sample(&metrics, "ward_realtime_group_renders_total");
    assert_eq!(renders, Some(BURST as f64), "{metrics}");
}

#[tokio::test]
async fn narrowing_to_one_ticket() {
    let app = spawn_app().await;
    let mut client = Client::new(&app, "manager@demo.test").await;
    let t1 = TICKETS[0].id.to_string();
    client.subscribe("one", json!({ "after": latest_event_id(&app).await.to_string(), "ticketId": t1 })).await;
    set_status(&app, "manager@demo.test", 2, "RESOLVED").await;
    set_status(&app, "manager@demo.test", 1, "IN_PROGRESS").await;
    let update = client.update().await;
    assert_eq!(update["ticket"]["id"], t1);
    client.nothing_for(Duration::from_millis(300)).await;
    // A ticket the subscriber may not see cannot be narrowed to.
    let mut worker = Client::new(&app, "worker@demo.test").await;
    worker.subscribe("x", json!({ "ticketId": TICKETS[2].id.to_string() })).await;
    let message = worker.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(message["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND", "{message}");
}

#[tokio::test]
async fn connection_lifecycle() {
    let app = spawn_app().await;
    // A bad token is refused at init with 4403, in both header placements.
    for payload in [
        json!({ "Authorization": "Bearer not-a-token" }),
        json!({ "headers": { "authorization": "Bearer not-a-token" } }),
    ] {
        match connect(app.addr, payload, "graphql-transport-ws").await {
            Init::Closed(code, reason) => {
                assert_eq!(code, 4403);
                assert!(reason.contains("token"), "{reason}");
            }
            Init::Acked(_) => panic!("a bad token was accepted"),
        }
    }
    // The token under `headers` works too.
    let token = app.token("manager@demo.test");
    assert!(matches!(
        connect(app.addr, json!({ "headers": { "Authorization": format!("Bearer {token}") } }), "graphql-transport-ws")
            .await,
        Init::Acked(_)
    ));
    // Anonymous connections are accepted, but subscribing needs a person.
    let Init::Acked(mut anonymous) = connect(app.addr, json!({}), "graphql-transport-ws").await else {
        panic!("refused")
    };
    anonymous.subscribe("1", json!({})).await;
    let message = anonymous.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(message["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{message}");
    // A token that expires while connected ends the connection with 4401.
    let person = demo::person("manager@demo.test").unwrap();
    let short = app.issuer.user_token(person.auth_user_id, Some(person.email), None, 2).unwrap();
    let Init::Acked(mut expiring) =
        connect(app.addr, json!({ "Authorization": format!("Bearer {short}") }), "graphql-transport-ws").await
    else {
        panic!("refused")
    };
    expiring.subscribe("1", json!({})).await;
    let closed = expiring.next(Duration::from_secs(6)).await.expect("closed within 6 s");
    assert_eq!(closed, json!({ "type": "closed", "code": 4401 }));
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_works_too() {
    let app = spawn_app().await;
    let token = app.token("manager@demo.test");
    let Init::Acked(mut client) =
        connect(app.addr, json!({ "Authorization": format!("Bearer {token}") }), "graphql-ws").await
    else {
        panic!("refused")
    };
    let start = latest_event_id(&app).await;
    let message = json!({ "id": "1", "type": "start", "payload": { "query": UPDATES, "variables": { "after": start.to_string() } } });
    client.ws.send(Message::text(message.to_string())).await.unwrap();
    set_status(&app, "manager@demo.test", 1, "IN_PROGRESS").await;
    loop {
        let message = client.next(Duration::from_secs(10)).await.expect("data");
        if message["type"] == "ka" {
            continue;
        }
        assert_eq!(message["type"], "data", "{message}");
        assert_eq!(message["payload"]["data"]["ticketUpdates"]["status"], "IN_PROGRESS");
        break;
    }
    // A query over the legacy protocol: one `data`, as the connection's caller, then `complete`.
    let query = json!({ "id": "2", "type": "start", "payload": { "query": "{ me { email } }" } });
    client.ws.send(Message::text(query.to_string())).await.unwrap();
    let mut answered = false;
    loop {
        let message = client.next(Duration::from_secs(10)).await.expect("an answer");
        match (message["type"].as_str(), message["id"].as_str()) {
            (Some("data"), Some("2")) => {
                assert_eq!(message["payload"]["data"]["me"]["email"], "manager@demo.test", "{message}");
                answered = true;
            }
            (Some("complete"), Some("2")) => break,
            _ => continue,
        }
    }
    assert!(answered);
}

#[tokio::test]
async fn errors_over_the_websocket_carry_codes() {
    let app = spawn_app().await;
    let mut client = Client::new(&app, "manager@demo.test").await;
    let deep = format!("subscription {}ticketUpdates{}", "{ a ".repeat(40), " }".repeat(40));
    let cases = [
        (json!({ "query": "subscription { ticketUpdates { " }), "GRAPHQL_PARSE_FAILED"),
        (json!({ "query": deep }), "QUERY_TOO_DEEP"),
        (json!({ "query": "subscription { ticketUpdates { nope } }" }), "GRAPHQL_VALIDATION_FAILED"),
        // An unknown persisted query: Apollo clients send the text on this code.
        (
            json!({ "query": "", "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "0".repeat(64) } } }),
            "PERSISTED_QUERY_NOT_FOUND",
        ),
        // A hash that is not the text's.
        (
            json!({ "query": "{ me { id } }", "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "0".repeat(64) } } }),
            "BAD_REQUEST",
        ),
    ];
    for (n, (payload, code)) in cases.into_iter().enumerate() {
        let id = format!("e{n}");
        let message = json!({ "id": id, "type": "subscribe", "payload": payload });
        client.ws.send(Message::text(message.to_string())).await.unwrap();
        let answer = client.next(Duration::from_secs(5)).await.expect("an answer");
        assert_eq!(answer["id"], id.as_str(), "{answer}");
        // async-graphql answers a request that fails before execution with `next` carrying
        // the errors (and then `complete`), or with `error`.
        let errors = match answer["type"].as_str() {
            Some("error") => answer["payload"].clone(),
            Some("next") => answer["payload"]["errors"].clone(),
            _ => panic!("unexpected {answer}"),
        };
        assert_eq!(errors[0]["extensions"]["code"], code, "{answer}");
        if answer["type"] == "next" {
            let complete = client.next(Duration::from_secs(5)).await.expect("complete");
            assert_eq!(complete["type"], "complete", "{complete}");
        }
    }
    // The connection is still usable afterwards.
    client.subscribe("live", json!({})).await;
    client.nothing_for(Duration::from_millis(200)).await;
    // Automatic persisted queries, shared with HTTP: the text with its hash once, then the
    // hash alone runs it (here over HTTP, then over the socket).
    use sha2::Digest;
    let query = "{ me { email } }";
    let hash = format!("{:x}", sha2::Sha256::digest(query.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let registered = app
        .http
        .post(format!("http://{}/graphql", app.addr))
        .bearer_auth(app.token("manager@demo.test"))
        .json(&json!({ "query": query, "extensions": persisted }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(registered["data"]["me"]["email"], "manager@demo.test", "{registered}");
    client
        .send_raw(json!({ "id": "apq", "type": "subscribe", "payload": { "query": "", "extensions": persisted } }))
        .await;
    let answer = client.next(Duration::from_secs(5)).await.expect("an answer");
    assert_eq!((answer["type"].as_str(), answer["id"].as_str()), (Some("next"), Some("apq")), "{answer}");
    assert_eq!(answer["payload"]["data"]["me"]["email"], "manager@demo.test", "{answer}");
}

/// The one result of a query or mutation sent over the socket as `id`: its `next` payload,
/// after which the operation completes.
async fn single_result(client: &mut Client, id: &str, query: &str, variables: Value) -> Value {
    client.subscribe_to(id, query, variables).await;
    let next = client.next(Duration::from_secs(10)).await.expect("a result");
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], id);
    let complete = client.next(Duration::from_secs(10)).await.expect("completion");
    assert_eq!((complete["type"].as_str(), complete["id"].as_str()), (Some("complete"), Some(id)), "{complete}");
    next["payload"].clone()
}

#[tokio::test]
async fn queries_and_mutations_over_the_websocket_run_as_the_connection() {
    use crate::helpers::people::{CITIZEN, MANAGER};
    let app = spawn_app().await;
    let mut citizen = Client::new(&app, CITIZEN).await;
    let me = single_result(&mut citizen, "me", "{ me { email role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["email"], CITIZEN, "{me}");
    // The policies decide, as over HTTP: ticket 6 is the other municipality's.
    let hidden = single_result(
        &mut citizen,
        "t6",
        "query($id: ID!) { ticket(id: $id) { id } }",
        json!({ "id": TICKETS[5].id.to_string() }),
    )
    .await;
    assert_eq!(hidden["data"]["ticket"], Value::Null, "{hidden}");
    // A mutation commits.
    let created = single_result(
        &mut citizen,
        "create",
        "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id trackingNumber } }",
        json!({ "i": { "title": "Reported over a socket", "category": "ROADS" } }),
    )
    .await;
    let id = created["data"]["createTicket"]["id"].as_str().expect("a ticket").to_string();
    let seen = app.graphql(Some(MANAGER), "query($id: ID!) { ticket(id: $id) { title } }", json!({ "id": id })).await;
    assert_eq!(seen["data"]["ticket"]["title"], "Reported over a socket", "{seen}");
    // Refusals carry their codes; a refused mutation leaves nothing.
    let refused = single_result(
        &mut citizen,
        "status",
        "mutation($id: ID!) { setTicketStatus(id: $id, status: CLOSED) { status } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");
    let unchanged =
        app.graphql(Some(MANAGER), "query($id: ID!) { ticket(id: $id) { status } }", json!({ "id": id })).await;
    assert_eq!(unchanged["data"]["ticket"]["status"], "OPEN");
    let invalid = single_result(&mut citizen, "bad", "{ me { password } }", json!({})).await;
    assert_eq!(invalid["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{invalid}");
    // An anonymous socket is anonymous: no one's data, no writes.
    let mut anonymous = match connect(app.addr, json!({}), "graphql-transport-ws").await {
        Init::Acked(client) => client,
        Init::Closed(code, reason) => panic!("{code} {reason}"),
    };
    let nobody = single_result(&mut anonymous, "me", "{ me { id } }", json!({})).await;
    assert_eq!(nobody["data"]["me"], Value::Null, "{nobody}");
    let denied = single_result(
        &mut anonymous,
        "create",
        "mutation { createTicket(input: { title: \"x\", category: ROADS }) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(denied["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{denied}");
}
