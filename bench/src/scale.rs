//! Reads that must not grow with the data: one municipality seeded with 10,000, 100,000 and
//! 1,000,000 tickets in turn, and the demo manager (who sees all of it) timing single
//! requests — the first page, page 21, a status and category page, `totalCount`, and a text
//! search — over HTTP, and the previous queries for the count and the search (a full count;
//! ILIKE under the policy) beside the current ones in SQL, in the same RLS session ward opens.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Client;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use ward::auth::{Caller, UserClaims};
use ward::demo::{self, DEMO, WARDS};

use crate::env::{Env, quantile};

#[derive(clap::Args)]
pub struct Options {
    /// Tickets in the municipality at each step (cumulative).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub tickets: Vec<u64>,
    /// Timed requests per measurement (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
}

const WORDS: [&str; 20] = [
    "burst",
    "leaking",
    "broken",
    "blocked",
    "missing",
    "flooded",
    "damaged",
    "fallen",
    "noisy",
    "dark",
    "overflowing",
    "cracked",
    "loose",
    "stolen",
    "exposed",
    "sinking",
    "smoking",
    "rusted",
    "dumped",
    "faded",
];
const THINGS: [&str; 20] = [
    "pipe",
    "hydrant",
    "streetlight",
    "drain",
    "manhole",
    "meter",
    "cable",
    "pothole",
    "sign",
    "bin",
    "culvert",
    "bridge",
    "tap",
    "valve",
    "transformer",
    "pavement",
    "fence",
    "gutter",
    "kerb",
    "pole",
];

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    quantile(&samples, 0.5)
}

async fn seed_to(owner: &sea_orm::DatabaseConnection, from: u64, to: u64) -> anyhow::Result<()> {
    let citizen = demo::person("citizen@demo.test").context("citizen")?.profile_id;
    let words = WORDS.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(",");
    let things = THINGS.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(",");
    // The trigram indexes are built after the rows, not kept up row by row (the same indexes,
    // ten times faster to seed).
    owner
        .execute_unprepared(
            "drop index if exists tickets_title_trgm_idx; drop index if exists tickets_description_trgm_idx",
        )
        .await?;
    // In batches: each statement's trigger work (tracking numbers, events) stays small.
    let mut start = from + 1;
    while start <= to {
        let end = (start + 99_999).min(to);
        owner
            .execute_unprepared(&format!(
                "insert into tickets (municipality_id, category, status, title, description, reporter_id, ward_id, created_at)
                 select '{muni}', (array['WATER','ELECTRICITY','ROADS','WASTE','OTHER'])[1 + i % 5],
                        (array['OPEN','IN_PROGRESS','RESOLVED'])[1 + i % 3],
                        (array[{words}])[1 + i % 20] || ' ' || (array[{things}])[1 + (i / 20) % 20] || ' #' || i,
                        'Reported by a resident, ticket ' || i, '{citizen}', '{ward}', now() - (i || ' seconds')::interval
                 from generate_series({start}, {end}) i",
                muni = DEMO.id,
                ward = WARDS[0].0,
            ))
            .await?;
        start = end + 1;
    }
    owner
        .execute_unprepared(
            "create index tickets_title_trgm_idx on public.tickets using gin (title extensions.gin_trgm_ops);
             create index tickets_description_trgm_idx on public.tickets using gin (description extensions.gin_trgm_ops)",
        )
        .await?;
    owner.execute_unprepared("vacuum (analyze) tickets").await?;
    Ok(())
}

async fn graphql(
    http: &Client,
    env: &Env,
    token: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<(Duration, Value)> {
    let started = Instant::now();
    let body: Value = http
        .post(format!("{}/graphql", env.base))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(body.get("errors").is_none(), "{body}");
    Ok((elapsed, body))
}

async fn timed_http(
    http: &Client,
    env: &Env,
    token: &str,
    query: &str,
    variables: Value,
    samples: usize,
) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        times.push(graphql(http, env, token, query, variables.clone()).await?.0.as_secs_f64() * 1000.0);
    }
    Ok(median(times))
}

/// One statement in a fresh RLS transaction as `caller` (ward's own session code), timed.
async fn timed_sql(
    pool: &sea_orm::DatabaseConnection,
    caller: &Caller,
    sql: &str,
    samples: usize,
) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let tx = ward::db::begin(pool, caller, true).await?;
        let started = Instant::now();
        tx.query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_string())).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        ward::db::end(tx, true).await?;
    }
    Ok(median(times))
}

pub async fn run(ward_bin: &str, options: &Options) -> anyhow::Result<()> {
    let env = Env::start(ward_bin, 10, &[("WARD_SLA_SWEEP_SECONDS", "0".into())]).await?;
    let http = Client::new();
    let owner = env.owner().await?;
    let pool = ward::db::connect(
        &ward::config::Secret::new(env.cluster.url("authenticator", crate::env::AUTHENTICATOR_PASSWORD, "ward")),
        2,
    )
    .await?;
    let token = env.token("manager@demo.test");
    let person = demo::person("manager@demo.test").context("manager")?;
    let manager = Caller::User(UserClaims {
        sub: person.auth_user_id,
        email: Some(person.email.to_string()),
        phone: None,
        exp: i64::MAX,
        raw: json!({ "sub": person.auth_user_id, "role": "authenticated", "aud": "authenticated" }),
    });
    let page = "query($after: String, $f: TicketFilter) { tickets(first: 20, after: $after, filter: $f) { nodes { id trackingNumber title status } pageInfo { endCursor } } }";
    let count = "{ tickets(first: 1) { totalCount totalCountIsExact } }";
    // A frequent term (1 ticket in 400 matches) and a rare one (a ticket number: 1 at 100k).
    let searches = [("leaking hydrant", "frequent"), ("#54321", "rare")];

    println!(
        "| tickets | first page ms | page 21 ms | status + category page ms | totalCount ms (exact?) | SQL: full count ms | SQL: bounded count ms |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut search_rows = Vec::new();
    let mut seeded = 0;
    for &n in &options.tickets {
        seed_to(&owner, seeded, n).await?;
        seeded = n;
        // Page 21: walk 20 pages once for its cursor.
        let mut after = Value::Null;
        for _ in 0..20 {
            let (_, body) = graphql(&http, &env, &token, page, json!({ "after": after })).await?;
            after = body["data"]["tickets"]["pageInfo"]["endCursor"].clone();
        }
        let s = options.samples;
        let first = timed_http(&http, &env, &token, page, json!({}), s).await?;
        let page21 = timed_http(&http, &env, &token, page, json!({ "after": after }), s).await?;
        let filtered = timed_http(
            &http,
            &env,
            &token,
            page,
            json!({ "f": { "status": ["IN_PROGRESS"], "category": ["ROADS"] } }),
            s,
        )
        .await?;
        let counted = timed_http(&http, &env, &token, count, json!({}), s).await?;
        let (_, body) = graphql(&http, &env, &token, count, json!({})).await?;
        let exact = body["data"]["tickets"]["totalCountIsExact"].as_bool().unwrap_or(false);
        for (term, kind) in searches {
            let searched = timed_http(&http, &env, &token, page, json!({ "f": { "search": term } }), s).await?;
            let pattern = format!("%{term}%");
            let ilike = timed_sql(
                &pool,
                &manager,
                &format!("select * from tickets where title ilike '{pattern}' or description ilike '{pattern}' order by created_at desc, id desc limit 21"),
                s,
            )
            .await?;
            let indexed = timed_sql(
                &pool,
                &manager,
                &format!("select * from tickets where id in (select app.search_ticket_ids('{pattern}')) order by created_at desc, id desc limit 21"),
                s,
            )
            .await?;
            search_rows.push(format!("| {n} | {kind} (`{term}`) | {searched:.2} | {ilike:.2} | {indexed:.2} |"));
        }
        let full_count = timed_sql(&pool, &manager, "select count(*) from tickets", s).await?;
        let bounded_count =
            timed_sql(&pool, &manager, "select count(*) from (select 1 from tickets limit 10001) m", s).await?;
        println!(
            "| {n} | {first:.2} | {page21:.2} | {filtered:.2} | {counted:.2} ({}) | {full_count:.2} | {bounded_count:.2} |",
            if exact { "exact" } else { "estimate" }
        );
    }
    println!("\n| tickets | search | page over HTTP ms | SQL: ILIKE under the policy ms | SQL: through the index ms |");
    println!("| --- | --- | --- | --- | --- |");
    for row in search_rows {
        println!("{row}");
    }
    env.stop();
    Ok(())
}
