//! SIGTERM on the real `ward` binary, on the embedded default: the open subscription is closed
//! with 1001, the process exits 0 within the drain bound, and no `postgres` process of its
//! cluster is left behind. Its JSON logs are checked on the way: request ids, no secrets.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use ward::auth::TokenIssuer;
use ward::config::Secret;
use ward::demo;

use crate::helpers::{JWT_SECRET, scratch_dir};
use crate::subscriptions::{Init, connect};

/// Processes whose command line runs PostgreSQL on `data_dir`.
fn postgres_processes(data_dir: &Path) -> Vec<String> {
    let needle = data_dir.display().to_string();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .map(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " "))
                .filter(|cmd| cmd.contains("postgres") && cmd.contains(&needle))
                .collect()
        })
        .unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the child if the test fails before it has exited.
struct Ward(Child);

impl Drop for Ward {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_subscriptions_and_stops_the_cluster() {
    let dir = scratch_dir("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The cluster runs as `postgres` when the tests run as root: it must get in.
    Command::new("chmod").arg("755").arg(&dir).status().unwrap();
    let log_path = dir.join("ward.log");
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ward"))
        .arg("serve")
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE_OWNER_URL")
        .env_remove("SUPABASE_URL")
        .env_remove("SUPABASE_SERVICE_ROLE_KEY")
        .env_remove("WARD_STORAGE")
        .env("WARD_DATA_DIR", &dir)
        .env("WARD_BIND", addr.to_string())
        .env("SUPABASE_JWT_SECRET", JWT_SECRET)
        .env("WARD_SHUTDOWN_TIMEOUT", "5")
        .env("WARD_LOG", "info,sqlx=warn,sea_orm_migration=warn,tower_http=debug")
        .env("WARD_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start ward");
    let mut ward = Ward(child);
    let pid = ward.0.id();

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(ward.0.try_wait().unwrap().is_none(), "ward exited before it was ready");
        let ready = http.get(format!("http://{addr}/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "ward was not ready in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pg_dir = dir.join("pg");
    assert!(!postgres_processes(&pg_dir).is_empty(), "the embedded cluster runs");

    let manager = demo::person("manager@demo.test").unwrap();
    let token = TokenIssuer::new(&Secret::new(JWT_SECRET))
        .user_token(manager.auth_user_id, Some(manager.email), None, 600)
        .unwrap();
    let me = http
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(&token)
        .header("x-request-id", "shutdown-test-request")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(me.headers()["x-request-id"], "shutdown-test-request");
    let mut client =
        match connect(addr, json!({ "Authorization": format!("Bearer {token}") }), "graphql-transport-ws").await {
            Init::Acked(client) => client,
            Init::Closed(code, reason) => panic!("refused: {code} {reason}"),
        };
    client.subscribe("1", json!({})).await;
    // The subscription is live once an update reaches it; nothing is expected yet.
    client.nothing_for(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(killed.success());

    let closed = client.next(Duration::from_secs(5)).await.expect("a close frame after SIGTERM");
    assert_eq!(closed["type"], "closed", "{closed}");
    assert_eq!(closed["code"], 1001, "{closed}");

    let status = loop {
        if let Some(status) = ward.0.try_wait().unwrap() {
            break status;
        }
        // The drain bound (5 s) plus stopping the cluster.
        assert!(signalled.elapsed() < Duration::from_secs(20), "ward did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "ward exited with {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "an idle server stops at once, not at the drain deadline: {:?}",
        signalled.elapsed()
    );
    // `pg_ctl stop -m fast` waits for the postmaster; give its children a moment to be reaped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !postgres_processes(&pg_dir).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(postgres_processes(&pg_dir), Vec::<String>::new(), "no postgres left on the data dir");
    assert!(!pg_dir.join("postmaster.pid").exists(), "the cluster shut down cleanly");

    // WARD_LOG_FORMAT=json: one JSON object a line, requests in a span with their id, fixed
    // messages, and neither the JWT secret nor a bearer token anywhere.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["span"]["request_id"] == "shutdown-test-request" && l["span"]["route"] == "/graphql"),
        "{log}"
    );
    assert!(lines.iter().any(|l| l["message"] == "shutting down"), "{log}");
    assert!(!log.contains(JWT_SECRET) && !log.contains(&token), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
