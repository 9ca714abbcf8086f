//! HTTP throughput: Q1 `me`, Q2 a page of 50 tickets with reporter and evidence, M1
//! `createTicket`, each under `wrk`, against `pgbench` running the SQL ward sends for the same
//! request (with the same `set_config` preamble per transaction) as the PostgreSQL ceiling.

use std::process::Command;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use ward::demo::{self, DEMO, OTHER, WARDS};

use crate::cpu::CpuSample;
use crate::env::{AUTHENTICATOR_PASSWORD, Env, JWT_SECRET, Statements, quantile};

struct Load {
    rps: f64,
    /// Requests (transactions) completed in the whole run, as the load generator counted them.
    requests: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU milliseconds per request: ward (idle during the ceiling), PostgreSQL, wrk or pgbench.
    cpu: CpuSample,
    /// Statements run and plans made per request.
    statements: f64,
    plans: f64,
}

#[derive(clap::Args)]
pub struct Options {
    /// Tickets per municipality.
    #[arg(long, default_value_t = 20_000)]
    tickets: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Rounds of ward then the ceiling per case; the median ratio is reported.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Concurrent connections (wrk) and clients (pgbench).
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Only these cases (Q1, Q2, M1); all by default.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
}

pub async fn run(ward_bin: &str, options: &Options) -> anyhow::Result<()> {
    // No SLA sweeper: its first sweep of the seeded tickets (thousands of breaches recorded at
    // once) would land inside whichever measurement runs a minute after ward starts.
    let env = Env::start(ward_bin, options.connections.max(4), &[("WARD_SLA_SWEEP_SECONDS", "0".into())]).await?;
    let result = measure(&env, options).await;
    env.stop();
    result
}

async fn measure(env: &Env, options: &Options) -> anyhow::Result<()> {
    let Options { tickets, seconds, connections, .. } = *options;
    let rounds = options.rounds.max(1);
    let owner = env.owner().await?;
    seed(&owner, tickets).await?;
    let manager = demo::person("manager@demo.test").context("manager")?;
    let token = env.token(manager.email);
    // The very claims ward puts into the transaction for this token (PostgreSQL parses them
    // in the policies, so their size is part of the cost), passed as a parameter like ward
    // does: pgbench binds its variable `:claims` (set with -D) in prepared mode.
    let claims = ward::auth::Authenticator::new(&ward::config::Secret::new(JWT_SECRET))
        .verify(&token)
        .await?
        .claims_json();
    let page_ids: Vec<String> = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("select id::text as id from tickets where municipality_id = '{}' order by created_at desc, id desc limit 50", DEMO.id),
        ))
        .await?
        .iter()
        .filter_map(|r| r.try_get::<String>("", "id").ok())
        .collect();
    let ids = page_ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ");
    let people: Vec<String> = demo::PEOPLE.iter().take(3).map(|p| format!("'{}'", p.profile_id)).collect();

    let preamble_ro = "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', :claims, true), set_config('transaction_read_only', 'on', true);";
    let preamble_rw = "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', :claims, true);";
    let cases = [
        (
            "Q1 me",
            r#"{"query":"{ me { id displayName role municipality { id name slug } } }"}"#.to_string(),
            format!(
                "BEGIN;\n{preamble_ro}\nSELECT * FROM profiles WHERE auth_user_id = '{}' LIMIT 1;\nSELECT * FROM municipalities WHERE id IN ('{}');\nCOMMIT;\n",
                manager.auth_user_id, DEMO.id
            ),
        ),
        (
            "Q2 tickets(first: 50) with reporter and evidence",
            r#"{"query":"{ tickets(first: 50) { nodes { id trackingNumber title status reporter { id displayName } evidence { id path contentType } } pageInfo { hasNextPage endCursor } } }"}"#.to_string(),
            format!(
                "BEGIN;\n{preamble_ro}\nSELECT * FROM tickets ORDER BY created_at DESC, id DESC LIMIT 51;\nSELECT * FROM profiles WHERE id IN ({});\nSELECT * FROM media WHERE ticket_id IN ({ids}) ORDER BY created_at, id;\nCOMMIT;\n",
                people.join(", ")
            ),
        ),
        (
            "M1 createTicket",
            format!(
                r#"{{"query":"mutation {{ createTicket(input: {{ title: \"Bench\", category: WATER, wardId: \"{}\" }}) {{ id trackingNumber }} }}"}}"#,
                WARDS[0].0
            ),
            format!(
                "BEGIN;\n{preamble_rw}\nSELECT * FROM profiles WHERE auth_user_id = '{}' LIMIT 1;\nSELECT * FROM wards WHERE id = '{}' LIMIT 1;\nINSERT INTO tickets (municipality_id, category, title, description, priority, ward_id, reporter_id, is_sensitive) VALUES ('{}', 'WATER', 'Bench', '', 'NORMAL', '{}', '{}', false) RETURNING *;\nCOMMIT;\n",
                manager.auth_user_id, WARDS[0].0, DEMO.id, WARDS[0].0, manager.profile_id
            ),
        ),
    ];
    println!(
        "| case | ward req/s | ward p50 ms | ward p99 ms | PostgreSQL ceiling tx/s | ceiling p50 ms | ceiling p99 ms | ward / ceiling (median; every round) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut cpu_rows = Vec::new();
    let wanted = |name: &str| options.cases.is_empty() || options.cases.iter().any(|c| name.starts_with(c.as_str()));
    for case in &options.cases {
        anyhow::ensure!(cases.iter().any(|(name, _, _)| name.starts_with(case.as_str())), "no case {case}: Q1, Q2 or M1");
    }
    for (name, body, sql) in cases.into_iter().filter(|(name, _, _)| wanted(name)) {
        // Check the request works before loading it.
        let check: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/graphql", env.base))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(check.get("errors").is_none(), "{name}: {check}");
        // ward and the ceiling alternate, so a slow spell of the shared machine falls on both;
        // the row is the round with the median ratio.
        // A short unmeasured run of each first: connections opened, statements prepared.
        wrk(env, &token, &body, 1, connections)?;
        pgbench(env, &sql, &claims, 1, connections)?;
        let mut measured = Vec::new();
        for _ in 0..rounds {
            let ward = counted(env, &owner, || wrk(env, &token, &body, seconds, connections)).await?;
            let ceiling = counted(env, &owner, || pgbench(env, &sql, &claims, seconds, connections)).await?;
            measured.push((ward.rps / ceiling.rps, ward, ceiling));
        }
        measured.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ratios: Vec<String> = measured.iter().map(|(r, _, _)| format!("{:.0}%", 100.0 * r)).collect();
        let (ratio, ward, ceiling) = &measured[measured.len() / 2];
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0}% ({}) |",
            ward.rps,
            ward.p50_ms,
            ward.p99_ms,
            ceiling.rps,
            ceiling.p50_ms,
            ceiling.p99_ms,
            100.0 * ratio,
            ratios.join(", ")
        );
        cpu_rows.push(format!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} / {:.1} | {:.1} / {:.1} |",
            ward.cpu.ward,
            ward.cpu.postgres,
            ward.cpu.load,
            ceiling.cpu.postgres,
            ceiling.cpu.load,
            ward.statements,
            ward.plans,
            ceiling.statements,
            ceiling.plans
        ));
    }
    println!("\nCPU milliseconds per request, same rounds (2 cores shared by all):\n");
    println!(
        "| case | ward | PostgreSQL under ward | wrk | PostgreSQL under pgbench | pgbench | statements / plans per request, ward | the same, pgbench |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in cpu_rows {
        println!("{row}");
    }
    Ok(())
}

async fn seed(owner: &sea_orm::DatabaseConnection, tickets: u32) -> anyhow::Result<()> {
    let citizen = demo::person("citizen@demo.test").context("citizen")?.profile_id;
    let manager = demo::person("manager@demo.test").context("manager")?.profile_id;
    let worker = demo::person("worker@demo.test").context("worker")?.profile_id;
    let other_citizen = demo::person("citizen@other.test").context("citizen")?.profile_id;
    let other_manager = demo::person("manager@other.test").context("manager")?.profile_id;
    for (municipality, a, b, assignee, ward) in [
        (DEMO.id, citizen, manager, Some(worker), WARDS[0].0),
        (OTHER.id, other_citizen, other_manager, None, WARDS[2].0),
    ] {
        let assignee = assignee.map(|w| format!("'{w}'")).unwrap_or_else(|| "null".into());
        owner
            .execute_unprepared(&format!(
                "insert into tickets (municipality_id, category, title, description, reporter_id, assignee_id, ward_id, created_at)
                 select '{municipality}', (array['WATER','ELECTRICITY','ROADS','WASTE','OTHER'])[1 + i % 5],
                        'Seeded ticket ' || i, 'Bulk data for the benchmark', case when i % 2 = 0 then '{a}'::uuid else '{b}'::uuid end,
                        case when i % 3 = 0 then {assignee}::uuid end, '{ward}', now() - (i || ' minutes')::interval
                 from generate_series(1, {tickets}) i;
                 insert into media (ticket_id, municipality_id, purpose, bucket, object_path, content_type, size_bytes)
                   select id, municipality_id, 'EVIDENCE', 'evidence', municipality_id || '/' || id || '/photo.jpg', 'image/jpeg', 1000
                   from tickets where municipality_id = '{municipality}' and title like 'Seeded ticket %';"
            ))
            .await?;
    }
    // Vacuumed now rather than by autovacuum during whichever measurement comes first.
    for table in ["tickets", "media", "profiles", "municipalities", "wards"] {
        owner.execute_unprepared(&format!("vacuum (analyze) {table}")).await?;
    }
    Ok(())
}

/// Runs one measurement with the statement counts reset before it and read after it (and
/// printed with `WARD_BENCH_STATEMENTS=1`).
async fn counted(
    env: &Env,
    owner: &sea_orm::DatabaseConnection,
    run: impl FnOnce() -> anyhow::Result<Load>,
) -> anyhow::Result<Load> {
    env.reset_statements(owner).await?;
    let mut load = run()?;
    load.count_statements(env.request_statements(owner).await?);
    if std::env::var_os("WARD_BENCH_STATEMENTS").is_some() {
        env.print_statements(owner).await?;
    }
    Ok(load)
}

impl Load {
    fn count_statements(&mut self, counted: Statements) {
        self.statements = counted.calls as f64 / self.requests;
        self.plans = counted.plans as f64 / self.requests;
    }
}

fn parse_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Some(v) = text.strip_suffix("us") {
        v.parse::<f64>().ok().map(|v| v / 1000.0)
    } else if let Some(v) = text.strip_suffix("ms") {
        v.parse().ok()
    } else if let Some(v) = text.strip_suffix('s') {
        v.parse::<f64>().ok().map(|v| v * 1000.0)
    } else {
        None
    }
}

fn wrk(env: &Env, token: &str, body: &str, seconds: u32, connections: u32) -> anyhow::Result<Load> {
    let script = env.dir.join("wrk.lua");
    let lua_body = body.replace('\\', "\\\\").replace('\'', "\\'");
    std::fs::write(
        &script,
        format!(
            "wrk.method = 'POST'\nwrk.body = '{lua_body}'\nwrk.headers['Content-Type'] = 'application/json'\nwrk.headers['Authorization'] = 'Bearer {token}'\n"
        ),
    )?;
    let before = env.cpu();
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(format!("{}/graphql", env.base))
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw errors:\n{text}");
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("wrk printed no Requests/sec")?;
    let percentile = |p: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .and_then(parse_ms)
            .unwrap_or(f64::NAN)
    };
    // "12345 requests in 5.00s, 3.2MB read"
    let requests: f64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("wrk printed no request count")?;
    let cpu = before.per_request_ms(&env.cpu_settled(&before), requests);
    Ok(Load { rps, requests, p50_ms: percentile("50%"), p99_ms: percentile("99%"), cpu, statements: f64::NAN, plans: f64::NAN })
}

fn pgbench(env: &Env, sql: &str, claims: &str, seconds: u32, connections: u32) -> anyhow::Result<Load> {
    let script = env.dir.join("pgbench.sql");
    std::fs::write(&script, sql)?;
    let log_dir = env.dir.join("pgbench-log");
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;
    let pgbench = ["/usr/lib/postgresql/15/bin/pgbench", "pgbench"]
        .into_iter()
        .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
        .unwrap_or("pgbench");
    let before = env.cpu();
    let output = Command::new(pgbench)
        .current_dir(&log_dir)
        .env("PGPASSWORD", AUTHENTICATOR_PASSWORD)
        .args(["-n", "-h", "127.0.0.1", "-p", &env.cluster.port().to_string(), "-U", "authenticator"])
        .args(["-D", &format!("claims={claims}")])
        .args(["-c", &connections.to_string(), "-j", "2", "-T", &seconds.to_string(), "-M", "prepared", "-l", "-f"])
        .arg(&script)
        .arg("ward")
        .output()
        .context("running pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "pgbench failed: {}\n{text}", String::from_utf8_lossy(&output.stderr));
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("pgbench printed no tps")?;
    let mut latencies: Vec<f64> = Vec::new();
    for entry in std::fs::read_dir(&log_dir)?.flatten() {
        let log = std::fs::read_to_string(entry.path())?;
        latencies.extend(log.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok()).map(|us| us / 1000.0));
    }
    let requests: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split(['/', ' ']).next())
        .and_then(|v| v.trim().parse().ok())
        .context("pgbench printed no transaction count")?;
    let cpu = before.per_request_ms(&env.cpu_settled(&before), requests);
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(Load { rps, requests, p50_ms: quantile(&latencies, 0.5), p99_ms: quantile(&latencies, 0.99), cpu, statements: f64::NAN, plans: f64::NAN })
}
