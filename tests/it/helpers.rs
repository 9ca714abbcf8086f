//! The test harness: the shared cluster, per-test databases, people, and a spawned server.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::OnceLock;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use serde_json::{Value, json};
use uuid::Uuid;
use ward::app::{App, PreparedDatabase};
use ward::auth::{Caller, TokenIssuer, UserClaims};
use ward::config::{Config, Secret};
use ward::db::embedded::{EmbeddedCluster, EmbeddedOptions};
use ward::{db, demo};

/// The demo people's emails (src/demo.rs), by role.
pub mod people {
    pub const CITIZEN: &str = "citizen@demo.test";
    pub const WORKER: &str = "worker@demo.test";
    pub const MANAGER: &str = "manager@demo.test";
    pub const SAPS: &str = "saps@demo.test";
    pub const ADMIN: &str = "admin@demo.test";
    pub const OTHER_CITIZEN: &str = "citizen@other.test";
    pub const OTHER_MANAGER: &str = "manager@other.test";
}

pub const SUPERUSER_PASSWORD: &str = "test-superuser-password";
pub const AUTHENTICATOR_PASSWORD: &str = "test-authenticator-password";
pub const JWT_SECRET: &str = "test-jwt-secret-that-is-long-enough-for-hs256";
const TEMPLATE: &str = "ward_template";

/// The cluster shared by every test of this binary. Its watchdog stops it when the test
/// process exits.
pub struct Cluster {
    pub cluster: EmbeddedCluster,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        // Tests run on many runtimes; set up on a thread with its own.
        std::thread::spawn(start_cluster).join().expect("the test cluster failed to start")
    })
}

/// A scratch directory for this test process, removing those of dead earlier runs.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().to_string();
            if let Some(pid) = file_name.strip_prefix("ward-it-").and_then(|r| r.split('-').next())
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    root.join(format!("ward-it-{}-{name}", std::process::id()))
}

fn start_cluster() -> Cluster {
    let dir = scratch_dir("cluster");
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = EmbeddedCluster::start(&EmbeddedOptions {
        data_dir: dir.join("pg"),
        bin_dir: None,
        superuser_password: SUPERUSER_PASSWORD.into(),
        ephemeral: true,
        // For the tests that count the statements a request costs.
        // The database in each log line: tests read the warnings of their own database.
        settings: vec![
            ("shared_preload_libraries".into(), "pg_stat_statements".into()),
            ("log_line_prefix".into(), "%m [%p] db=%d ".into()),
        ],
    })
    .expect("start the embedded cluster");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let admin =
            db::connect(&Secret::new(cluster.url("postgres", SUPERUSER_PASSWORD, "postgres")), 1).await.unwrap();
        ward::app::create_database_if_missing(&admin, TEMPLATE).await.unwrap();
        admin.close().await.unwrap();
        let owner_url = Secret::new(cluster.url("postgres", SUPERUSER_PASSWORD, TEMPLATE));
        db::migrate(&owner_url).await.expect("migrate the template");
        ward::app::set_authenticator_password(&owner_url, &Secret::new(AUTHENTICATOR_PASSWORD)).await.unwrap();
        let owner = db::connect(&owner_url, 1).await.unwrap();
        demo::seed(&owner).await.expect("seed the template");
        owner.close().await.unwrap();
    });
    Cluster { cluster }
}

impl Cluster {
    pub fn superuser_url(&self, database: &str) -> Secret {
        Secret::new(self.cluster.url("postgres", SUPERUSER_PASSWORD, database))
    }
}

/// A database of its own for one test, cloned from the migrated, seeded template.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let cluster = cluster();
        let name = format!("t_{}", Uuid::new_v4().simple());
        let admin = db::connect(&cluster.superuser_url("postgres"), 1).await.unwrap();
        admin
            .execute_unprepared(&format!("create database {name} template {TEMPLATE}"))
            .await
            .expect("clone the template database");
        admin.close().await.unwrap();
        TestDb { name }
    }

    /// As the schema owner (a superuser: bypasses RLS), for fixtures and inspection.
    pub fn owner_url(&self) -> Secret {
        cluster().superuser_url(&self.name)
    }

    /// As `authenticator`, like the server's request pool.
    pub fn app_url(&self) -> Secret {
        Secret::new(cluster().cluster.url("authenticator", AUTHENTICATOR_PASSWORD, &self.name))
    }

    pub async fn owner(&self) -> DatabaseConnection {
        db::connect(&self.owner_url(), 2).await.unwrap()
    }

    pub async fn app_pool(&self) -> DatabaseConnection {
        db::connect(&self.app_url(), 4).await.unwrap()
    }
}

/// The caller a demo person's verified token yields.
pub fn caller(email: &str) -> Caller {
    let person = demo::person(email).unwrap_or_else(|| panic!("{email} is not a demo person"));
    user_caller(person.auth_user_id, Some(person.email))
}

/// A signed-in caller with any user id (e.g. one who has no profile).
pub fn user_caller(sub: Uuid, email: Option<&str>) -> Caller {
    Caller::User(UserClaims {
        sub,
        email: email.map(String::from),
        phone: None,
        exp: i64::MAX,
        raw: json!({ "sub": sub, "role": "authenticated", "aud": "authenticated", "email": email }),
    })
}

/// Runs one statement inside a fresh RLS transaction as `caller`, then rolls back.
pub async fn exec_as(
    pool: &DatabaseConnection,
    caller: &Caller,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<u64, DbErr> {
    let tx = db::begin(pool, caller, false).await?;
    let result = tx.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await;
    tx.rollback().await?;
    Ok(result?.rows_affected())
}

/// The first column (as text) of every row a query returns as `caller`.
pub async fn ids_as(
    pool: &DatabaseConnection,
    caller: &Caller,
    sql: &str,
) -> Result<std::collections::BTreeSet<String>, DbErr> {
    let tx: db::Tx = db::begin(pool, caller, true).await?;
    let rows = tx.query_all_raw(Statement::from_string(DbBackend::Postgres, sql)).await;
    tx.rollback().await?;
    rows?.into_iter().map(|row| row.try_get_by_index::<String>(0)).collect()
}

/// A running server on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDb,
    pub http: reqwest::Client,
    pub issuer: TokenIssuer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// A running server with extra settings (e.g. `RELAY_WEBHOOK_SECRET`, `SUPABASE_JWKS_URL`).
pub async fn spawn_app_with(extra: &[(&str, String)]) -> TestApp {
    let db = TestDb::new().await;
    let data_dir = scratch_dir(&db.name);
    spawn_app_in(db, data_dir, extra).await
}

/// A running server on an existing database (a second server beside another one), keeping
/// its files in `data_dir`.
pub async fn spawn_app_in(db: TestDb, data_dir: std::path::PathBuf, extra: &[(&str, String)]) -> TestApp {
    let mut vars = vec![
        ("DATABASE_URL", db.app_url().expose().to_string()),
        ("SUPABASE_JWT_SECRET", JWT_SECRET.to_string()),
        ("WARD_BIND", "127.0.0.1:0".to_string()),
        ("WARD_DATA_DIR", data_dir.display().to_string()),
        ("WARD_DB_POOL_SIZE", "4".to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    let config =
        Config::from_lookup(|name| vars.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone())).unwrap();
    let prepared = PreparedDatabase { request_url: db.app_url(), owner_url: None, cluster: None };
    let app = App::build_on(&config, prepared).await.expect("build the app");
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let app = TestApp {
        addr,
        db,
        http: reqwest::Client::new(),
        issuer: TokenIssuer::new(&Secret::new(JWT_SECRET)),
        stop: Some(stop),
    };
    app.wait_until_ready().await;
    app
}

impl TestApp {
    /// Waits for `/ready` (the ticket listener connects in the background).
    pub async fn wait_until_ready(&self) {
        wait_for_ready(&self.http, self.addr).await;
    }

    /// A valid bearer token for a demo person.
    pub fn token(&self, email: &str) -> String {
        demo_token(&self.issuer, email)
    }

    /// A service-role bearer token (what the relay and Supabase's server side hold).
    pub fn service_token(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        self.issuer.sign(&json!({ "role": "service_role", "iat": now, "exp": now + 600 })).expect("sign")
    }

    /// Stores an object as the service role through the local backend's REST path, as a
    /// backend that cannot bind an intent's promise (Supabase) would accept it.
    pub async fn put_as_service(
        &self,
        bucket: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::StatusCode {
        self.http
            .post(format!("http://{}/storage/v1/object/{bucket}/{path}", self.addr))
            .bearer_auth(self.service_token())
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("send the upload")
            .status()
    }

    /// Begins the server's shutdown, as SIGTERM would.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// POSTs a GraphQL request with an optional raw `Authorization` header value.
    pub async fn graphql_with_header(&self, authorization: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(format!("http://{}/graphql", self.addr))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("send the request");
        let status = response.status();
        let retry_after = response.headers().contains_key("retry-after");
        let body: Value = response.json().await.expect("a JSON response");
        // UNAVAILABLE, and only it, comes with 503 and Retry-After.
        let unavailable = body["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|e| e["extensions"]["code"] == "UNAVAILABLE"));
        if unavailable {
            assert!(status == 503 && retry_after, "UNAVAILABLE with HTTP {status}: {body}");
        } else {
            assert!(status.is_success(), "HTTP {status}: {body}");
        }
        body
    }

    /// POSTs a GraphQL request as a demo person (or anonymously with `None`).
    pub async fn graphql(&self, email: Option<&str>, query: &str, variables: Value) -> Value {
        let header = email.map(|e| format!("Bearer {}", self.token(e)));
        self.graphql_with_header(header.as_deref(), query, variables).await
    }
}

/// Lines of the shared cluster's log about `database` that say `needle`.
pub fn log_lines(database: &str, needle: &str) -> Vec<String> {
    let log = std::fs::read_to_string(cluster().cluster.data_dir().join("server.log")).unwrap_or_default();
    log.lines().filter(|l| l.contains(&format!("db={database} ")) && l.contains(needle)).map(String::from).collect()
}

/// The `extensions.code` of a response's first error.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// A cluster of the test's own with a server on it, for tests that restart or crash the
/// database (doing that to the shared cluster would disturb every other test).
pub struct OwnStack {
    pub cluster: EmbeddedCluster,
    pub dir: std::path::PathBuf,
    /// As the superuser, on the server's database.
    pub owner_url: Secret,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub issuer: TokenIssuer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OwnStack {
    /// Starts a migrated, seeded cluster in a scratch folder named `name` and a server on it
    /// with `extra` settings; returns once the server is ready.
    pub async fn start(name: &str, extra: &[(&str, String)]) -> OwnStack {
        let dir = scratch_dir(name);
        let _ = std::fs::remove_dir_all(&dir);
        let options = EmbeddedOptions {
            data_dir: dir.join("pg"),
            bin_dir: None,
            superuser_password: SUPERUSER_PASSWORD.into(),
            ephemeral: true,
            // Ephemeral clusters commit asynchronously, and a crash loses what was reported
            // committed; these tests crash the server, so a commit must mean durable (fsync
            // can stay off: the operating system keeps what a crashed process wrote).
            settings: vec![("synchronous_commit".into(), "on".into())],
        };
        let cluster = tokio::task::block_in_place(|| EmbeddedCluster::start(&options)).unwrap();
        let owner_url = Secret::new(cluster.url("postgres", SUPERUSER_PASSWORD, "postgres"));
        db::migrate(&owner_url).await.unwrap();
        ward::app::set_authenticator_password(&owner_url, &Secret::new(AUTHENTICATOR_PASSWORD)).await.unwrap();
        let owner = db::connect(&owner_url, 1).await.unwrap();
        demo::seed(&owner).await.unwrap();
        owner.close().await.unwrap();
        let app_url = Secret::new(cluster.url("authenticator", AUTHENTICATOR_PASSWORD, "postgres"));
        let mut vars = vec![
            ("DATABASE_URL", app_url.expose().to_string()),
            ("SUPABASE_JWT_SECRET", JWT_SECRET.to_string()),
            ("WARD_BIND", "127.0.0.1:0".to_string()),
            ("WARD_DATA_DIR", dir.join("data").display().to_string()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        let config = Config::from_lookup(|n| vars.iter().rev().find(|(k, _)| *k == n).map(|(_, v)| v.clone())).unwrap();
        let app = App::build_on(&config, PreparedDatabase { request_url: app_url, owner_url: None, cluster: None })
            .await
            .unwrap();
        let addr = app.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        let stack = OwnStack {
            cluster,
            dir,
            owner_url,
            addr,
            http: reqwest::Client::new(),
            issuer: TokenIssuer::new(&Secret::new(JWT_SECRET)),
            stop: Some(stop),
        };
        stack.wait_ready().await;
        stack
    }

    /// Waits for `/ready`.
    pub async fn wait_ready(&self) {
        wait_for_ready(&self.http, self.addr).await;
    }

    /// A valid bearer token for a demo person.
    pub fn token(&self, email: &str) -> String {
        demo_token(&self.issuer, email)
    }

    /// A connection as the superuser.
    pub async fn owner(&self) -> DatabaseConnection {
        db::connect(&self.owner_url, 2).await.unwrap()
    }

    /// The highest ticket event id so far (0 when none).
    pub async fn latest_event_id(&self) -> i64 {
        let row = self
            .owner()
            .await
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "select coalesce(max(id), 0) as n from ticket_events",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }

    /// Stops the server and the cluster, and removes the folder.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let OwnStack { cluster, dir, .. } = self;
        tokio::task::block_in_place(|| cluster.stop()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Waits (at most 10 s) for a server's `/ready`.
async fn wait_for_ready(http: &reqwest::Client, addr: SocketAddr) {
    for _ in 0..400 {
        if http.get(format!("http://{addr}/ready")).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the server did not become ready");
}

/// A valid bearer token (verified email and phone) for a demo person.
fn demo_token(issuer: &TokenIssuer, email: &str) -> String {
    let p = demo::person(email).unwrap();
    issuer.user_token(p.auth_user_id, Some(p.email), Some(p.phone), 3600).unwrap()
}
