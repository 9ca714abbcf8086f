//! HTTP throughput: Q1 `me`, Q2 a page of 50 tickets with reporter and evidence, M1
//! `createTicket`, each under `wrk`, against PostGraphile v5 answering the same documents on
//! the same database (the peer), and against `pgbench` running the SQL ward sends for the same
//! request (with the same preamble per transaction) as the PostgreSQL ceiling.
//!
//! One file for the three sides of a round (ward, the peer, the ceiling): they share the
//! alternation, the check that both servers return the same rows, and the table; the peer's
//! process is in `postgraphile.rs`.

use std::process::Command;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use ward::demo::{self, DEMO, OTHER, WARDS};

use crate::cpu::CpuSample;
use crate::env::{AUTHENTICATOR_PASSWORD, Env, JWT_SECRET, Statements, quantile};
use crate::postgraphile::PostGraphile;

/// A GraphQL server under load: where it listens and which process to charge its CPU to.
struct Server<'a> {
    base: &'a str,
    pid: u32,
}

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
    /// Leave PostGraphile out (it needs `npm ci` in bench/postgraphile).
    #[arg(long)]
    no_peer: bool,
    /// Another ward build, run on the same database in the same rounds, for a comparison.
    #[arg(long)]
    baseline: Option<String>,
}

pub async fn run(ward_bin: &str, options: &Options) -> anyhow::Result<()> {
    // No SLA sweeper: its first sweep of the seeded tickets (thousands of breaches recorded at
    // once) would land inside whichever measurement runs a minute after ward starts.
    let pool = options.connections.max(4);
    let env = Env::start(ward_bin, pool, &[("WARD_SLA_SWEEP_SECONDS", "0".into())]).await?;
    // Started after migrating and seeding the demo, before the bulk seed: PostGraphile reads
    // the schema once, at start.
    let peer = if options.no_peer { None } else { Some(PostGraphile::start(&env, pool)) }.transpose();
    let baseline = match &options.baseline {
        Some(bin) => Some(
            crate::env::spawn_ward(
                bin,
                &env.cluster,
                &env.dir.join("baseline"),
                pool,
                &[("WARD_SLA_SWEEP_SECONDS", "0".into())],
            )
            .await,
        ),
        None => None,
    }
    .transpose();
    let result = match (peer, baseline) {
        (Ok(peer), Ok(mut baseline)) => {
            let other = baseline.as_ref().map(|(child, addr)| (format!("http://{addr}"), child.id()));
            let result = measure(&env, peer.as_ref(), other.as_ref().map(|(b, pid)| (b.as_str(), *pid)), options).await;
            if let Some(peer) = peer {
                peer.stop();
            }
            if let Some((child, _)) = baseline.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
            result
        }
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    env.stop();
    result
}

async fn measure(
    env: &Env,
    peer: Option<&PostGraphile>,
    baseline: Option<(&str, u32)>,
    options: &Options,
) -> anyhow::Result<()> {
    let Options { tickets, seconds, connections, .. } = *options;
    let rounds = options.rounds.max(1);
    let owner = env.owner().await?;
    seed(&owner, tickets).await?;
    let manager = demo::person("manager@demo.test").context("manager")?;
    let token = env.token(manager.email);
    // The very claims ward puts into the transaction for this token (PostgreSQL parses them
    // in the policies, so their size is part of the cost), passed as a parameter like ward
    // does: pgbench binds its variable `:claims` (set with -D) in prepared mode.
    let claims =
        ward::auth::Authenticator::new(&ward::config::Secret::new(JWT_SECRET)).verify(&token).await?.claims_json();
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

    // ward's own opening statement, with the claims as pgbench's variable (bound in prepared
    // mode); pgbench sends its two statements one at a time, ward both in one round trip.
    let begin_ro = format!("{};", ward::db::begin_sql(true, "'authenticated'", ":claims"));
    let begin_rw = format!("{};", ward::db::begin_sql(false, "'authenticated'", ":claims"));
    // The peer's documents ask for the same rows: PostGraphile has no `me` (the profile by the
    // token's user id, with its municipality), names uuid columns `rowId`, takes enums as
    // strings, and needs the municipality and reporter of a new ticket from the client
    // (ward derives them from the caller).
    let cases = [
        Case {
            name: "Q1 me",
            ward: r#"{"query":"{ me { id displayName role municipality { id name slug } } }"}"#.to_string(),
            peer: format!(
                r#"{{"query":"{{ profileByAuthUserId(authUserId: \"{}\") {{ rowId displayName role municipalityByMunicipalityId {{ rowId name slug }} }} }}"}}"#,
                manager.auth_user_id
            ),
            sql: format!(
                "{begin_ro}\nSELECT * FROM profiles WHERE auth_user_id = '{}' LIMIT 1;\nSELECT * FROM municipalities WHERE id IN ('{}');\nCOMMIT;\n",
                manager.auth_user_id, DEMO.id
            ),
        },
        Case {
            name: "Q2 tickets(first: 50) with reporter and evidence",
            ward: r#"{"query":"{ tickets(first: 50) { nodes { id trackingNumber title status reporter { id displayName } evidence { id path contentType } } pageInfo { hasNextPage endCursor } } }"}"#.to_string(),
            peer: r#"{"query":"{ allTickets(first: 50, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { rowId trackingNumber title status profileByMunicipalityIdAndReporterId { rowId displayName } mediaByMunicipalityIdAndTicketId(orderBy: [CREATED_AT_ASC, ROW_ID_ASC]) { nodes { rowId objectPath contentType } } } pageInfo { hasNextPage endCursor } } }"}"#.to_string(),
            sql: format!(
                "{begin_ro}\nSELECT * FROM tickets ORDER BY created_at DESC, id DESC LIMIT 51;\nSELECT * FROM profiles WHERE id IN ({});\nSELECT * FROM media WHERE ticket_id IN ({ids}) ORDER BY created_at, id;\nCOMMIT;\n",
                people.join(", ")
            ),
        },
        Case {
            name: "M1 createTicket",
            ward: format!(
                r#"{{"query":"mutation {{ createTicket(input: {{ title: \"Bench\", category: WATER, wardId: \"{}\" }}) {{ id trackingNumber }} }}"}}"#,
                WARDS[0].0
            ),
            peer: format!(
                r#"{{"query":"mutation {{ createTicket(input: {{ ticket: {{ municipalityId: \"{}\", reporterId: \"{}\", title: \"Bench\", category: \"WATER\", wardId: \"{}\" }} }}) {{ ticket {{ rowId trackingNumber }} }} }}"}}"#,
                DEMO.id, manager.profile_id, WARDS[0].0
            ),
            sql: format!(
                "{begin_rw}\nSELECT * FROM profiles WHERE auth_user_id = '{}' LIMIT 1;\nSELECT * FROM wards WHERE id = '{}' LIMIT 1;\nINSERT INTO tickets (municipality_id, category, title, description, priority, ward_id, reporter_id, is_sensitive) VALUES ('{}', 'WATER', 'Bench', '', 'NORMAL', '{}', '{}', false) RETURNING *;\nCOMMIT;\n",
                manager.auth_user_id, WARDS[0].0, DEMO.id, WARDS[0].0, manager.profile_id
            ),
        },
    ];
    let wanted = |name: &str| options.cases.is_empty() || options.cases.iter().any(|c| name.starts_with(c.as_str()));
    for case in &options.cases {
        anyhow::ensure!(cases.iter().any(|c| c.name.starts_with(case.as_str())), "no case {case}: Q1, Q2 or M1");
    }
    let ward_server = Server { base: &env.base, pid: env.ward.id() };
    let peer_server = peer.map(|p| Server { base: &p.base, pid: p.pid() });
    let baseline_server = baseline.map(|(base, pid)| Server { base, pid });
    let mut rows = Vec::new();
    let mut baseline_rows = Vec::new();
    let mut cpu_rows = Vec::new();
    for case in cases.iter().filter(|c| wanted(c.name)) {
        // Check the requests work, and ask for the same rows, before loading them.
        let ours = post(&ward_server, &token, &case.ward).await?;
        if let Some(peer) = &peer_server {
            let theirs = post(peer, &token, &case.peer).await?;
            same_rows(case.name, &ours, &theirs)?;
        }
        // The sides alternate, so a slow spell of the shared machine falls on all; the row is
        // the round with the median ward / ceiling ratio. A short unmeasured run of each first:
        // connections opened, statements prepared, the peer's JIT warmed.
        wrk(env, &ward_server, &token, &case.ward, 1, connections)?;
        if let Some(other) = &baseline_server {
            post(other, &token, &case.ward).await?;
            wrk(env, other, &token, &case.ward, 1, connections)?;
        }
        if let Some(peer) = &peer_server {
            wrk(env, peer, &token, &case.peer, 2, connections)?;
        }
        pgbench(env, &case.sql, &claims, 1, connections)?;
        let mut measured = Vec::new();
        for _ in 0..rounds {
            let ward =
                counted(env, &owner, || wrk(env, &ward_server, &token, &case.ward, seconds, connections)).await?;
            let before = match &baseline_server {
                Some(other) => {
                    Some(counted(env, &owner, || wrk(env, other, &token, &case.ward, seconds, connections)).await?)
                }
                None => None,
            };
            let theirs = match &peer_server {
                Some(peer) => {
                    Some(counted(env, &owner, || wrk(env, peer, &token, &case.peer, seconds, connections)).await?)
                }
                None => None,
            };
            let ceiling = counted(env, &owner, || pgbench(env, &case.sql, &claims, seconds, connections)).await?;
            measured.push(Round { ward, baseline: before, peer: theirs, ceiling });
        }
        let to_peer: Vec<f64> = measured.iter().filter_map(|r| Some(r.ward.rps / r.peer.as_ref()?.rps)).collect();
        let to_baseline: Vec<(f64, &Load, &Load)> =
            measured.iter().filter_map(|r| r.baseline.as_ref().map(|b| (r.ward.rps / b.rps, &r.ward, b))).collect();
        if !to_baseline.is_empty() {
            let mut sorted = to_baseline.clone();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (ratio, this, other) = sorted[sorted.len() / 2];
            baseline_rows.push(format!(
                "| {} | {:.0} | {:.0} | {:.2}× ({}) | {:.2} / {:.2} | {:.3} | {:.3} | {:.3} | {:.3} |",
                case.name,
                this.rps,
                other.rps,
                ratio,
                to_baseline.iter().map(|(r, _, _)| format!("{r:.2}×")).collect::<Vec<_>>().join(", "),
                this.p99_ms,
                other.p99_ms,
                this.cpu.ward,
                other.cpu.ward,
                this.cpu.postgres,
                other.cpu.postgres
            ));
        }
        measured.sort_by(|a, b| (a.ward.rps / a.ceiling.rps).total_cmp(&(b.ward.rps / b.ceiling.rps)));
        let ratios: Vec<String> =
            measured.iter().map(|r| format!("{:.0}%", 100.0 * r.ward.rps / r.ceiling.rps)).collect();
        let Round { ward, peer: theirs, ceiling, .. } = &measured[measured.len() / 2];
        let mut to_peer_sorted = to_peer.clone();
        to_peer_sorted.sort_by(f64::total_cmp);
        let peer_cells = match theirs {
            Some(p) => format!(
                "{:.0} | {:.2} | {:.2} | {:.2}× ({})",
                p.rps,
                p.p50_ms,
                p.p99_ms,
                quantile(&to_peer_sorted, 0.5),
                to_peer.iter().map(|r| format!("{r:.2}×")).collect::<Vec<_>>().join(", ")
            ),
            None => "– | – | – | –".into(),
        };
        rows.push(format!(
            "| {} | {:.0} | {:.2} | {:.2} | {peer_cells} | {:.0} | {:.0}% ({}) |",
            case.name,
            ward.rps,
            ward.p50_ms,
            ward.p99_ms,
            ceiling.rps,
            100.0 * ward.rps / ceiling.rps,
            ratios.join(", ")
        ));
        let peer_cpu = theirs.as_ref().map_or("– | – | –".into(), |p| {
            format!("{:.3} | {:.3} | {:.1} / {:.1}", p.cpu.ward, p.cpu.postgres, p.statements, p.plans)
        });
        cpu_rows.push(format!(
            "| {} | {:.3} | {:.3} | {:.1} / {:.1} | {peer_cpu} | {:.3} | {:.1} / {:.1} |",
            case.name,
            ward.cpu.ward,
            ward.cpu.postgres,
            ward.statements,
            ward.plans,
            ceiling.cpu.postgres,
            ceiling.statements,
            ceiling.plans
        ));
    }
    println!(
        "| case | ward req/s | ward p50 ms | ward p99 ms | PostGraphile req/s | PostGraphile p50 ms | PostGraphile p99 ms | ward / PostGraphile (median; every round) | PostgreSQL ceiling tx/s | ward / ceiling (median; every round) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        println!("{row}");
    }
    println!(
        "\nCPU milliseconds per request, same rounds (2 cores shared by all), and statements / plans per request:\n"
    );
    println!(
        "| case | ward | PostgreSQL under ward | statements / plans, ward | PostGraphile (node) | PostgreSQL under PostGraphile | statements / plans, PostGraphile | PostgreSQL under pgbench | statements / plans, pgbench |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in cpu_rows {
        println!("{row}");
    }
    if !baseline_rows.is_empty() {
        println!(
            "\nThis build against the baseline build, same rounds (the row is the round with the median ratio):\n"
        );
        println!(
            "| case | this build req/s | baseline req/s | this / baseline (median; every round) | p99 ms this / baseline | ward CPU ms/request, this | baseline | PostgreSQL CPU ms/request under this | under baseline |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for row in baseline_rows {
            println!("{row}");
        }
    }
    Ok(())
}

struct Case {
    name: &'static str,
    /// ward's request body.
    ward: String,
    /// PostGraphile's request body for the same rows.
    peer: String,
    /// The SQL ward sends for the request, for pgbench.
    sql: String,
}

struct Round {
    ward: Load,
    baseline: Option<Load>,
    peer: Option<Load>,
    ceiling: Load,
}

async fn post(server: &Server<'_>, token: &str, body: &str) -> anyhow::Result<serde_json::Value> {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/graphql", server.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(answer.get("errors").is_none(), "{}: {answer}", server.base);
    Ok(answer)
}

/// The uuids in an answer, in order (ward's `id`, PostGraphile's `rowId`): each object's own
/// id first, then its children's, so the two namings give the same sequence.
fn ids(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(id)) = map.get("id").or_else(|| map.get("rowId")) {
                out.push(id.clone());
            }
            map.iter().filter(|(k, _)| !matches!(k.as_str(), "id" | "rowId")).for_each(|(_, v)| ids(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| ids(v, out)),
        _ => {}
    }
}

fn same_rows(case: &str, ours: &serde_json::Value, theirs: &serde_json::Value) -> anyhow::Result<()> {
    if case.starts_with('M') {
        return Ok(());
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    ids(ours, &mut a);
    ids(theirs, &mut b);
    anyhow::ensure!(a.len() > 1 && a == b, "{case}: ward and PostGraphile answered different rows:\n{ours}\n{theirs}");
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

fn wrk(
    env: &Env,
    server: &Server<'_>,
    token: &str,
    body: &str,
    seconds: u32,
    connections: u32,
) -> anyhow::Result<Load> {
    let script = env.dir.join("wrk.lua");
    let lua_body = body.replace('\\', "\\\\").replace('\'', "\\'");
    std::fs::write(
        &script,
        format!(
            "wrk.method = 'POST'\nwrk.body = '{lua_body}'\nwrk.headers['Content-Type'] = 'application/json'\nwrk.headers['Authorization'] = 'Bearer {token}'\n"
        ),
    )?;
    let before = CpuSample::now(server.pid, env.cluster.postmaster_pid());
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(format!("{}/graphql", server.base))
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw errors:\n{text}");
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("wrk printed no Requests/sec")?;
    let percentile =
        |p: &str| text.lines().map(str::trim).find_map(|l| l.strip_prefix(p)).and_then(parse_ms).unwrap_or(f64::NAN);
    // "12345 requests in 5.00s, 3.2MB read"
    let requests: f64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("wrk printed no request count")?;
    let cpu = before.per_request_ms(
        &CpuSample::settled(server.pid, env.cluster.postmaster_pid(), before.postgres_processes),
        requests,
    );
    Ok(Load {
        rps,
        requests,
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
        cpu,
        statements: f64::NAN,
        plans: f64::NAN,
    })
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
        latencies
            .extend(log.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok()).map(|us| us / 1000.0));
    }
    let requests: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split(['/', ' ']).next())
        .and_then(|v| v.trim().parse().ok())
        .context("pgbench printed no transaction count")?;
    let cpu = before.per_request_ms(&env.cpu_settled(&before), requests);
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(Load {
        rps,
        requests,
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        cpu,
        statements: f64::NAN,
        plans: f64::NAN,
    })
}
