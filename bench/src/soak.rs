//! Soak: a bounded run of mixed load on the release binary — reads, ticket writes, photo
//! uploads (intent, PUT, confirm, delete), clients that hang up mid-request — while a
//! thousand websocket subscribers listen. Samples ward's memory, file descriptors, threads
//! and database connections along the way; at the end they must be flat (within 5% of the
//! sample taken once warmed up), and PostgreSQL's log free of stray COMMIT/ROLLBACK notices.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use ward::demo::{self, TICKETS};

use crate::env::Env;

#[derive(clap::Args)]
pub struct Options {
    /// Minutes of load.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Websocket subscribers, connected before the load starts.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 30)]
    sample_seconds: u64,
}

/// What was counted while the load ran.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    hung_up: AtomicU64,
    deliveries: AtomicU64,
    subscriptions_ended: AtomicU64,
    outcomes: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn outcome(&self, outcome: String) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *self.outcomes.lock().unwrap().entry(outcome).or_default() += 1;
    }
}

/// One sample of the server's resources.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    db_connections: i64,
    requests: u64,
    deliveries: u64,
}

pub async fn run(ward_bin: &str, options: &Options) -> anyhow::Result<()> {
    let env = Env::start(ward_bin, 10, &[("WARD_SUBSCRIBER_BUFFER", "4096".into())]).await?;
    let result = soak(&env, options).await;
    env.stop();
    result
}

async fn soak(env: &Env, options: &Options) -> anyhow::Result<()> {
    let owner = env.owner().await?;
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tokens: Vec<String> = demo::PEOPLE.iter().map(|p| env.token(p.email)).collect();
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    for i in 0..options.subscribers {
        let (url, token, counters, gate) =
            (format!("ws://{}/graphql/ws", env.addr), tokens[i % tokens.len()].clone(), counters.clone(), gate.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            if let Err(error) = subscriber(url, token, &counters, permit.ok()).await {
                eprintln!("subscriber {i}: {error}");
            }
            counters.subscriptions_ended.fetch_add(1, Ordering::Relaxed);
        });
    }
    let started = Instant::now();
    let mut clients = Vec::new();
    for n in 0..options.clients {
        let (base, counters, stop) = (env.base.clone(), counters.clone(), stop.clone());
        let tokens = (env.token("citizen@demo.test"), env.token("manager@demo.test"));
        clients.push(tokio::spawn(async move { client(n, base, tokens, counters, stop).await }));
    }
    let duration = Duration::from_secs(options.minutes * 60);
    let period = Duration::from_secs(options.sample_seconds);
    // Warmed up after a fifth of the run (at least one period): caches, pools and allocator
    // arenas full (a 10-minute run's RSS still grew between its first and second minute).
    let warm_at = (duration / 5).max(period);
    let mut samples = Vec::new();
    let mut warm: Option<Sample> = None;
    println!("| minute | RSS MiB | fds | threads | DB connections | requests | deliveries |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    while started.elapsed() < duration {
        tokio::time::sleep(period.min(duration.saturating_sub(started.elapsed()))).await;
        let sample = sample(env, &owner, &counters, started.elapsed()).await?;
        println!(
            "| {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            sample.at.as_secs_f64() / 60.0,
            sample.rss_kib as f64 / 1024.0,
            sample.fds,
            sample.threads,
            sample.db_connections,
            sample.requests,
            sample.deliveries
        );
        if warm.is_none() && sample.at >= warm_at {
            warm = Some(sample);
        }
        samples.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    // Idle again: the last sample, taken once the load has stopped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = sample(env, &owner, &counters, started.elapsed()).await?;
    let warm = warm.unwrap_or(samples[0]);
    let change = |a: f64, b: f64| if a == 0.0 { 0.0 } else { (b - a) / a * 100.0 };
    let notices = std::fs::read_to_string(env.cluster.data_dir().join("server.log"))
        .unwrap_or_default()
        .matches("there is no transaction in progress")
        .count();
    println!();
    println!("| resource | warmed up ({:.1} min) | end (idle) | change |", warm.at.as_secs_f64() / 60.0);
    println!("| --- | --- | --- | --- |");
    println!(
        "| RSS MiB | {:.1} | {:.1} | {:+.1}% |",
        warm.rss_kib as f64 / 1024.0,
        end.rss_kib as f64 / 1024.0,
        change(warm.rss_kib as f64, end.rss_kib as f64)
    );
    println!("| file descriptors | {} | {} | {:+.1}% |", warm.fds, end.fds, change(warm.fds as f64, end.fds as f64));
    println!(
        "| threads | {} | {} | {:+.1}% |",
        warm.threads,
        end.threads,
        change(warm.threads as f64, end.threads as f64)
    );
    println!(
        "| DB connections | {} | {} | {:+.1}% |",
        warm.db_connections,
        end.db_connections,
        change(warm.db_connections as f64, end.db_connections as f64)
    );
    println!();
    println!(
        "{} requests ({} abandoned by their client mid-request), {} deliveries, {} subscriptions ended early, {notices} \"no transaction in progress\" notices",
        end.requests,
        counters.hung_up.load(Ordering::Relaxed),
        end.deliveries,
        counters.subscriptions_ended.load(Ordering::Relaxed)
    );
    println!("outcomes: {:?}", counters.outcomes.lock().unwrap());
    Ok(())
}

async fn sample(
    env: &Env,
    owner: &sea_orm::DatabaseConnection,
    counters: &Counters,
    at: Duration,
) -> anyhow::Result<Sample> {
    let pid = env.ward.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let row = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select count(*) as n from pg_stat_activity where usename = 'authenticator'",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(Sample {
        at,
        rss_kib: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
        db_connections: row.try_get("", "n")?,
        requests: counters.requests.load(Ordering::Relaxed),
        deliveries: counters.deliveries.load(Ordering::Relaxed),
    })
}

/// One websocket subscriber, counting deliveries until its connection ends.
async fn subscriber(
    url: String,
    token: String,
    counters: &Counters,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> anyhow::Result<()> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    ws.send(Message::text(init.to_string())).await?;
    let subscribe =
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { ticketUpdates { eventId } }" } });
    ws.send(Message::text(subscribe.to_string())).await?;
    drop(permit);
    // Clients ping; a connection silent for a minute is closed by the server.
    let mut pings = tokio::time::interval(Duration::from_secs(20));
    loop {
        tokio::select! {
            _ = pings.tick() => ws.send(Message::text(r#"{"type":"ping"}"#)).await?,
            message = ws.next() => match message {
                None => return Ok(()),
                Some(message) => match message? {
                    Message::Text(text) if text.contains("\"next\"") => {
                        counters.deliveries.fetch_add(1, Ordering::Relaxed);
                    }
                    Message::Text(text) if text.contains("\"ping\"") => ws.send(Message::text(r#"{"type":"pong"}"#)).await?,
                    Message::Close(_) => return Ok(()),
                    _ => {}
                },
            },
        }
    }
}

fn png(n: u32) -> Vec<u8> {
    let image = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(32 + n % 32, 32, |x, y| {
        image::Rgb([x as u8, y as u8, n as u8])
    }));
    let mut out = Cursor::new(Vec::new());
    let _ = image.write_to(&mut out, image::ImageFormat::Png);
    out.into_inner()
}

/// One HTTP client's loop of mixed requests.
async fn client(
    n: usize,
    base: String,
    (citizen, manager): (String, String),
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    let graphql = |token: &str, query: &str, variables: Value| {
        http.post(format!("{base}/graphql")).bearer_auth(token).json(&json!({ "query": query, "variables": variables }))
    };
    let mut i = n as u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let outcome = match i % 10 {
            0..=3 => send(graphql(&citizen, "{ me { id displayName municipality { name } } }", json!({}))).await.1,
            4 | 5 => {
                send(graphql(
                    &manager,
                    "{ tickets(first: 20) { nodes { id title reporter { id } media { id } } } }",
                    json!({}),
                ))
                .await
                .1
            }
            6 => {
                let input = json!({ "input": { "title": format!("Soak {n}.{i}"), "category": "ROADS" } });
                send(graphql(
                    &citizen,
                    "mutation($input: CreateTicketInput!) { createTicket(input: $input) { id } }",
                    input,
                ))
                .await
                .1
            }
            7 => {
                // Read the version, then edit (a concurrent edit makes this a CONFLICT).
                let id = TICKETS[(i % 2) as usize].id.to_string();
                let (ticket, outcome) =
                    send(graphql(&manager, "query($id: ID!) { ticket(id: $id) { version } }", json!({ "id": id })))
                        .await;
                match ticket["data"]["ticket"]["version"].as_i64() {
                    None => outcome,
                    Some(version) => {
                        let input = json!({ "id": id, "v": version, "input": { "title": format!("Soak title {i}") } });
                        let edit = "mutation($id: ID!, $v: Int!, $input: UpdateTicketInput!) { updateTicket(id: $id, input: $input, expectedVersion: $v) { id } }";
                        send(graphql(&manager, edit, input)).await.1
                    }
                }
            }
            8 => photo_round_trip(&http, &base, &citizen, i as u32).await,
            _ => {
                // A client that hangs up after a few milliseconds, often mid-request.
                let request = graphql(
                    &manager,
                    "mutation { updateMyProfile(input: { displayName: \"Soak Manager\" }) { id } }",
                    json!({}),
                );
                match tokio::time::timeout(Duration::from_millis(1 + i % 5), request.send()).await {
                    Err(_) => {
                        counters.hung_up.fetch_add(1, Ordering::Relaxed);
                        "hung up".to_string()
                    }
                    Ok(sent) => outcome_of(sent).await.1,
                }
            }
        };
        counters.outcome(outcome);
    }
}

/// Uploads a photo (intent, PUT, confirm) and deletes it again.
async fn photo_round_trip(http: &reqwest::Client, base: &str, token: &str, n: u32) -> String {
    let bytes = png(n);
    let post = |query: &str, variables: Value| {
        http.post(format!("{base}/graphql")).bearer_auth(token).json(&json!({ "query": query, "variables": variables }))
    };
    let input = json!({ "input": { "filename": format!("soak-{n}.png"), "contentType": "image/png", "sizeBytes": bytes.len() } });
    let (intent, outcome) =
        send(post("mutation($input: PhotoUploadInput!) { createPhotoUpload(input: $input) { id uploadUrl } }", input))
            .await;
    let Some(url) = intent["data"]["createPhotoUpload"]["uploadUrl"].as_str() else { return outcome };
    if !http
        .put(url)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        return "PUT failed".to_string();
    }
    let id = intent["data"]["createPhotoUpload"]["id"].clone();
    let (photo, outcome) =
        send(post("mutation($id: ID!) { confirmPhotoUpload(intentId: $id) { id } }", json!({ "id": id }))).await;
    let Some(photo) = photo["data"]["confirmPhotoUpload"]["id"].as_str() else { return outcome };
    send(post("mutation($id: ID!) { deletePhoto(id: $id) }", json!({ "id": photo }))).await.1
}

async fn send(request: reqwest::RequestBuilder) -> (Value, String) {
    outcome_of(request.send().await).await
}

/// The body and `ok`, the first error's code, or how the request failed.
async fn outcome_of(sent: reqwest::Result<reqwest::Response>) -> (Value, String) {
    match sent {
        Err(e) => (Value::Null, format!("transport: {e}")),
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let outcome = match body["errors"][0]["extensions"]["code"].as_str() {
                None if status == 200 => "ok".to_string(),
                Some(code) => code.to_string(),
                None => format!("HTTP {status}"),
            };
            (body, outcome)
        }
    }
}
