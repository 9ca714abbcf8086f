//! Live-update fan-out: N graphql-transport-ws subscribers (the demo people of both
//! municipalities, round robin) while tickets of both municipalities change at a fixed rate.
//! Measures commit → client latency, deliveries per second, SQL statements per event, ward's
//! CPU per delivered message (from `/proc`), and server memory per idle subscriber.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use ward::demo::{self, DEMO, TICKETS};

use crate::env::{Env, quantile};

/// What the subscribers select: only the rows' own fields, which ward renders once per event
/// for all of them (`graphql::multiplex`) ...
const SHARED_QUERY: &str = "subscription { ticketUpdates { eventId ticket { title } } }";
/// ... or with a field read under each subscriber's own policies, executed per subscriber.
const PERSONAL_QUERY: &str = "subscription { ticketUpdates { eventId ticket { title reporter { id } } } }";

/// The parts of a server message the clients read.
#[derive(Deserialize)]
struct ServerMessage<'a> {
    #[serde(borrow)]
    r#type: &'a str,
    #[serde(borrow)]
    payload: Option<Payload<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, rename = "ticketUpdates")]
    ticket_updates: Update<'a>,
}

#[derive(Deserialize)]
struct Update<'a> {
    #[serde(borrow)]
    ticket: Option<Titled<'a>>,
}

#[derive(Deserialize)]
struct Titled<'a> {
    /// Borrowed unless the JSON string has escapes.
    #[serde(borrow)]
    title: std::borrow::Cow<'a, str>,
}

struct Shared {
    /// When each change was sent (just before its autocommitted UPDATE), as nanoseconds since
    /// `base` (0: not sent yet), by change number.
    base: Instant,
    sent: Vec<AtomicU64>,
    /// Each subscriber's latencies (ms), in a list of its own: no lock shared per message.
    latencies_ms: Mutex<Vec<Arc<Mutex<Vec<f64>>>>>,
    /// The subscription document.
    query: &'static str,
    delivered: AtomicU64,
    subscribed: AtomicUsize,
    probed: AtomicUsize,
}

/// Runs every subscriber count with `ward_bin`, and first with each `baseline` build (other
/// builds, labelled by file name, alternating, so all meet the same spells of the shared
/// machine).
pub async fn run(
    ward_bin: &str,
    baseline: &[String],
    counts: &[usize],
    rate: u32,
    seconds: u64,
    personal: bool,
) -> anyhow::Result<()> {
    let query = if personal { PERSONAL_QUERY } else { SHARED_QUERY };
    println!("subscribers' document: `{query}`\n");
    println!(
        "| build | subscribers | changes/s | deliveries expected | delivered | deliveries/s | p50 ms | p99 ms | max ms | SQL statements/event | RSS/idle subscriber | ward CPU µs/delivery |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for &n in counts {
        let others = baseline.iter().map(|bin| (bin.rsplit('/').next().unwrap_or(bin), bin.as_str()));
        for (label, bin) in others.chain([("this build", ward_bin)]) {
            let env = Env::start(bin, 16, &[("WARD_SUBSCRIBER_BUFFER", "4096".into())]).await?;
            let result = one_run(&env, n, rate, seconds, query).await;
            env.stop();
            let row = result?;
            println!("| {label} {row}");
        }
    }
    Ok(())
}

async fn one_run(env: &Env, n: usize, rate: u32, seconds: u64, query: &'static str) -> anyhow::Result<String> {
    let owner = env.owner().await?;
    let total = u64::from(rate) * seconds;
    let shared = Arc::new(Shared {
        base: Instant::now(),
        sent: (0..total).map(|_| AtomicU64::new(0)).collect(),
        latencies_ms: Mutex::new(Vec::new()),
        query,
        delivered: AtomicU64::new(0),
        subscribed: AtomicUsize::new(0),
        probed: AtomicUsize::new(0),
    });
    let tokens: Vec<String> = demo::PEOPLE.iter().map(|p| env.token(p.email)).collect();
    let demo_viewers = (0..n).filter(|i| demo::PEOPLE[i % 7].municipality.id == DEMO.id).count();
    let other_viewers = n - demo_viewers;
    // Memory per subscriber is the slope between half and all of them connected (each time
    // probed, so every one has handled an update): fixed costs (allocator arenas, the pools)
    // fall out of it.
    let half = n / 2;
    let started = Instant::now();
    let mut probe = 0;
    connect(env, &tokens, 0..half, &shared);
    settle(&owner, &shared, half, &mut probe, started).await?;
    let rss_half = env.ward_rss_kib();
    connect(env, &tokens, half..n, &shared);
    settle(&owner, &shared, n, &mut probe, started).await?;
    let rss_after = env.ward_rss_kib();
    for list in shared.latencies_ms.lock().map(|l| l.clone()).unwrap_or_default() {
        list.lock().map(|mut l| l.clear()).ok();
    }
    shared.delivered.store(0, Ordering::Relaxed);
    env.reset_statements(&owner).await?;

    // The changes: alternately a demo ticket (5 of 7 people see it) and an other one (2 of 7).
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut ticks = tokio::time::interval(period);
    let mut expected = 0u64;
    let cpu_before = env.cpu();
    let begin = Instant::now();
    for seq in 0..total {
        ticks.tick().await;
        let (ticket, viewers) =
            if seq % 2 == 0 { (TICKETS[0].id, demo_viewers) } else { (TICKETS[5].id, other_viewers) };
        expected += viewers as u64;
        if let Some(sent) = usize::try_from(seq).ok().and_then(|i| shared.sent.get(i)) {
            sent.store(u64::try_from(shared.base.elapsed().as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        owner.execute_unprepared(&format!("update tickets set title = 'bench-{seq}' where id = '{ticket}'")).await?;
    }
    let writing = begin.elapsed();
    let drain_start = Instant::now();
    while shared.delivered.load(Ordering::Relaxed) < expected && drain_start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = begin.elapsed();
    let cpu_after = env.cpu();
    let statements = env.request_statements(&owner).await?.calls;
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let mut latencies: Vec<f64> = Vec::new();
    for list in shared.latencies_ms.lock().map(|l| l.clone()).unwrap_or_default() {
        latencies.extend(list.lock().map(|l| l.clone()).unwrap_or_default());
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let per_subscriber_kib = rss_after.saturating_sub(rss_half) as f64 / (n - half).max(1) as f64;
    let _ = writing;
    Ok(format!(
        "| {n} | {rate} | {expected} | {delivered} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} KiB | {:.1} |",
        delivered as f64 / elapsed.as_secs_f64(),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        statements as f64 / total as f64,
        per_subscriber_kib,
        1e6 * (cpu_after.ward - cpu_before.ward) / delivered.max(1) as f64,
    ))
}

/// Opens subscribers `range` (the demo people in turn), at most 200 handshakes at a time.
fn connect(env: &Env, tokens: &[String], range: std::ops::Range<usize>, shared: &Arc<Shared>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    for i in range {
        let token = tokens[i % tokens.len()].clone();
        let url = format!("ws://{}/graphql/ws", env.addr);
        let shared = shared.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            if let Err(error) = subscriber(url, token, shared, permit.ok()).await {
                eprintln!("subscriber {i}: {error}");
            }
        });
    }
}

/// Waits until `count` subscribers have subscribed, then changes a demo ticket until every
/// demo subscriber among them has seen it (until then the server may still be registering
/// them), and a second more.
async fn settle(
    owner: &sea_orm::DatabaseConnection,
    shared: &Shared,
    count: usize,
    probe: &mut u64,
    started: Instant,
) -> anyhow::Result<()> {
    while shared.subscribed.load(Ordering::Relaxed) < count {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(300), "subscribers did not all connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let demo_viewers = (0..count).filter(|i| demo::PEOPLE[i % 7].municipality.id == DEMO.id).count();
    while shared.probed.load(Ordering::Relaxed) < demo_viewers {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "probes did not reach every subscriber");
        owner
            .execute_unprepared(&format!("update tickets set title = 'probe-{probe}' where id = '{}'", TICKETS[0].id))
            .await?;
        *probe += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

async fn subscriber(
    url: String,
    token: String,
    shared: Arc<Shared>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> anyhow::Result<()> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    ws.send(Message::text(
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }).to_string(),
    ))
    .await?;
    let ack = ws.next().await.ok_or_else(|| anyhow::anyhow!("closed before ack"))??;
    anyhow::ensure!(ack.to_text()?.contains("connection_ack"), "no ack: {ack}");
    ws.send(Message::text(json!({ "id": "1", "type": "subscribe", "payload": { "query": shared.query } }).to_string()))
        .await?;
    shared.subscribed.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    let mut probed = false;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    shared.latencies_ms.lock().map(|mut l| l.push(latencies.clone())).ok();
    while let Some(message) = ws.next().await {
        let text = match message? {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        // Only what the measurement needs, borrowed from the message: the clients share the
        // machine with ward, so they should cost it as little as they can.
        let Ok(message) = serde_json::from_str::<ServerMessage<'_>>(&text) else {
            eprintln!("unexpected message: {text}");
            continue;
        };
        if message.r#type == "ping" {
            ws.send(Message::text(json!({ "type": "pong" }).to_string())).await?;
            continue;
        }
        let Some(title) = message.payload.and_then(|p| p.data).and_then(|d| d.ticket_updates.ticket).map(|t| t.title)
        else {
            continue;
        };
        if let Some(seq) = title.strip_prefix("bench-").and_then(|s| s.parse::<usize>().ok()) {
            let sent = shared.sent.get(seq).map(|s| s.load(Ordering::Relaxed)).filter(|ns| *ns > 0);
            if let Some(sent) = sent {
                let now = u64::try_from(shared.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                latencies.lock().map(|mut l| l.push(now.saturating_sub(sent) as f64 / 1e6)).ok();
            }
            shared.delivered.fetch_add(1, Ordering::Relaxed);
        } else if title.starts_with("probe-") && !probed {
            probed = true;
            shared.probed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}
