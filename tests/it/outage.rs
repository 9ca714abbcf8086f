//! Fault injection: the database restarted (fast shutdown) and then crashed (immediate
//! shutdown) while 200 HTTP clients create and read tickets and 500 subscribers listen.
//! Every committed event reaches every subscriber who may see it, in order, once; the only
//! error clients see meanwhile is `UNAVAILABLE`; service comes back without restarting ward.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use ward::config::Secret;
use ward::db::embedded::ShutdownMode;

use crate::helpers::people::{CITIZEN, MANAGER, OTHER_CITIZEN, OTHER_MANAGER, SAPS, WORKER};
use crate::helpers::{AUTHENTICATOR_PASSWORD, OwnStack, caller};
use crate::subscriptions::{Client, Init, connect};

const UPDATES: &str = "subscription($after: ID) { ticketUpdates(after: $after) { eventId } }";
const SUBSCRIBERS: usize = 500;
const CREATORS: usize = 50;
const READERS: usize = 150;

/// What the HTTP clients saw: outcomes by kind (`ok`, an error code, a transport failure).
type Outcomes = Arc<Mutex<BTreeMap<String, usize>>>;

/// Sends one request and files its outcome; a 503 must carry UNAVAILABLE and `Retry-After`.
async fn request(stack: &OwnStack, token: &str, query: &str, variables: Value, outcomes: &Outcomes) -> bool {
    let sent = stack
        .http
        .post(format!("http://{}/graphql", stack.addr))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let outcome = match sent {
        Err(e) => format!("transport: {e}"),
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            match body["errors"][0]["extensions"]["code"].as_str() {
                None if status == 200 => "ok".to_string(),
                Some("UNAVAILABLE") if status == 503 && retry_after => "UNAVAILABLE".to_string(),
                code => format!("HTTP {status} {code:?}: {body}"),
            }
        }
    };
    let ok = outcome == "ok";
    *outcomes.lock().unwrap().entry(outcome).or_default() += 1;
    ok
}

/// The events `email` may see after `start`, in order, as the database's policies decide.
async fn visible_events(stack: &OwnStack, email: &str, start: i64) -> Vec<i64> {
    let url = Secret::new(stack.cluster.url("authenticator", AUTHENTICATOR_PASSWORD, "postgres"));
    let pool = ward::db::connect(&url, 1).await.unwrap();
    let tx = ward::db::begin(&pool, &caller(email), true).await.unwrap();
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("select id from ticket_events where id > {start} order by id"),
        ))
        .await
        .unwrap();
    rows.iter().map(|r| r.try_get::<i64>("", "id").unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarting_and_crashing_under_load_loses_nothing() {
    let stack = Arc::new(OwnStack::start("outage", &[("WARD_SUBSCRIBER_BUFFER", "8192".to_string())]).await);
    let start = stack.latest_event_id().await;

    // 500 subscribers, 100 for each of five people of two municipalities and four roles.
    let people = [MANAGER, CITIZEN, WORKER, SAPS, OTHER_MANAGER];
    let stop_listening = CancellationToken::new();
    let mut listeners = Vec::new();
    for n in 0..SUBSCRIBERS {
        let who = people[n % people.len()];
        let mut client = match connect(
            stack.addr,
            json!({ "Authorization": format!("Bearer {}", stack.token(who)) }),
            "graphql-transport-ws",
        )
        .await
        {
            Init::Acked(client) => client,
            Init::Closed(code, reason) => panic!("{who} refused: {code} {reason}"),
        };
        client.subscribe_to("1", UPDATES, json!({ "after": start.to_string() })).await;
        let received = Arc::new(Mutex::new(Vec::<i64>::new()));
        let (got, stop) = (received.clone(), stop_listening.clone());
        let task = tokio::spawn(async move {
            let mut client: Client = client;
            loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    message = client.next(Duration::from_secs(3600)) => message,
                };
                let Some(message) = message else { return Err("the connection ended".to_string()) };
                if message["type"] != "next" || message["payload"].get("errors").is_some() {
                    return Err(format!("{message}"));
                }
                let id = message["payload"]["data"]["ticketUpdates"]["eventId"].as_str().unwrap().parse().unwrap();
                got.lock().unwrap().push(id);
            }
        });
        listeners.push((who, received, task));
    }

    // 200 HTTP clients: 50 create tickets (citizens of both municipalities), 150 read.
    let outcomes: Outcomes = Arc::default();
    let stop_load = CancellationToken::new();
    let mut load = Vec::new();
    for n in 0..CREATORS + READERS {
        let (stack, outcomes, stop) = (stack.clone(), outcomes.clone(), stop_load.clone());
        load.push(tokio::spawn(async move {
            let creator = n < CREATORS;
            let who = match (creator, n % 2) {
                (true, 0) => CITIZEN,
                (true, _) => OTHER_CITIZEN,
                (false, 0) => MANAGER,
                (false, _) => OTHER_MANAGER,
            };
            let token = stack.token(who);
            let mut i = 0;
            while !stop.is_cancelled() {
                if creator {
                    let input = json!({ "input": { "title": format!("Outage {n}.{i}"), "category": "ROADS" } });
                    request(
                        &stack,
                        &token,
                        "mutation($input: CreateTicketInput!) { createTicket(input: $input) { id } }",
                        input,
                        &outcomes,
                    )
                    .await;
                    tokio::time::sleep(Duration::from_millis(700)).await;
                } else {
                    request(&stack, &token, "{ tickets(first: 10) { nodes { id status } } }", json!({}), &outcomes)
                        .await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                i += 1;
            }
        }));
    }

    // Under load: a fast restart, then a crash.
    let mut recovery = Vec::new();
    for mode in [ShutdownMode::Fast, ShutdownMode::Immediate] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let restarter = stack.clone();
        tokio::task::spawn_blocking(move || restarter.cluster.restart_with(mode)).await.unwrap().unwrap();
        // Back within seconds, with ward untouched.
        let back = Instant::now();
        let token = stack.token(MANAGER);
        let probe: Outcomes = Arc::default();
        while !request(&stack, &token, "{ me { id } }", json!({}), &probe).await {
            assert!(back.elapsed() < Duration::from_secs(15), "{mode:?}: not back after 15 s: {probe:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        recovery.push((mode, back.elapsed()));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_load.cancel();
    for task in load {
        task.await.unwrap();
    }

    // Every subscriber receives exactly what its person may see, in order, once.
    let mut expected = BTreeMap::new();
    for who in people {
        expected.insert(who, visible_events(&stack, who, start).await);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind = listeners.iter().filter(|(who, got, _)| got.lock().unwrap().len() < expected[who].len()).count();
        if behind == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_listening.cancel();
    let mut delivered = 0;
    for (who, got, task) in listeners {
        task.await.unwrap().unwrap_or_else(|e| panic!("{who}'s subscription ended: {e}"));
        let got = got.lock().unwrap().clone();
        assert_eq!(got, expected[who], "{who}: every visible committed event, once, in order");
        delivered += got.len();
    }
    let committed: BTreeSet<i64> = expected.values().flatten().copied().collect();
    let outcomes = outcomes.lock().unwrap().clone();
    let unexpected: Vec<_> = outcomes.keys().filter(|k| *k != "ok" && *k != "UNAVAILABLE").collect();
    assert!(unexpected.is_empty(), "only UNAVAILABLE during the outage: {outcomes:?}");
    assert!(committed.len() > 100, "too little happened to tell: {} events", committed.len());
    println!(
        "outage: {} events committed, {delivered} deliveries to {SUBSCRIBERS} subscribers, HTTP outcomes {outcomes:?}, back after {recovery:?}",
        committed.len()
    );
    Arc::into_inner(stack).expect("no other handle").shutdown().await;
}
