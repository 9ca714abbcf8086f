//! A benchmark environment: an embedded PostgreSQL cluster of its own (with
//! pg_stat_statements, to count what requests cost), migrated and seeded, and the real `ward`
//! binary serving on it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use ward::auth::TokenIssuer;
use ward::config::Secret;
use ward::db::embedded::{EmbeddedCluster, EmbeddedOptions};

pub const SUPERUSER_PASSWORD: &str = "bench-superuser";
pub const AUTHENTICATOR_PASSWORD: &str = "bench-authenticator";
pub const JWT_SECRET: &str = "bench-jwt-secret-bench-jwt-secret-bench";
const DATABASE: &str = "ward";

pub struct Env {
    pub cluster: EmbeddedCluster,
    pub ward: Child,
    pub base: String,
    pub addr: String,
    pub issuer: TokenIssuer,
    pub dir: std::path::PathBuf,
}

impl Env {
    pub async fn start(ward_bin: &str, pool_size: u32, extra_env: &[(&str, String)]) -> anyhow::Result<Env> {
        let dir = std::env::temp_dir().join(format!("ward-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let options = EmbeddedOptions {
            data_dir: dir.join("pg"),
            bin_dir: None,
            superuser_password: SUPERUSER_PASSWORD.into(),
            ephemeral: true,
            settings: vec![
                ("shared_preload_libraries".into(), "pg_stat_statements".into()),
                // Count plans too: a statement planned on every call costs PostgreSQL far more.
                ("pg_stat_statements.track_planning".into(), "on".into()),
                ("max_connections".into(), "300".into()),
            ],
        };
        let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&options)).await??;
        let admin = ward::db::connect(&Secret::new(cluster.url("postgres", SUPERUSER_PASSWORD, "postgres")), 1).await?;
        ward::app::create_database_if_missing(&admin, DATABASE).await?;
        admin.close().await?;
        let owner_url = Secret::new(cluster.url("postgres", SUPERUSER_PASSWORD, DATABASE));
        ward::db::migrate(&owner_url).await?;
        ward::app::set_authenticator_password(&owner_url, &Secret::new(AUTHENTICATOR_PASSWORD)).await?;
        let owner = ward::db::connect(&owner_url, 1).await?;
        ward::demo::seed(&owner).await?;
        owner.execute_unprepared("create extension if not exists pg_stat_statements").await?;
        owner.close().await?;

        let (ward, addr) = spawn_ward(ward_bin, &cluster, &dir.join("data"), pool_size, extra_env).await?;
        let base = format!("http://{addr}");
        Ok(Env { cluster, ward, base, addr, issuer: TokenIssuer::new(&Secret::new(JWT_SECRET)), dir })
    }

    pub fn owner_url(&self) -> Secret {
        Secret::new(self.cluster.url("postgres", SUPERUSER_PASSWORD, DATABASE))
    }

    pub async fn owner(&self) -> anyhow::Result<DatabaseConnection> {
        Ok(ward::db::connect(&self.owner_url(), 4).await?)
    }

    pub fn token(&self, email: &str) -> String {
        let p = ward::demo::person(email).expect("a demo person");
        self.issuer.user_token(p.auth_user_id, Some(p.email), Some(p.phone), 3600).expect("a token")
    }

    /// CPU seconds used so far by ward, the cluster, and this benchmark's finished children.
    pub fn cpu(&self) -> crate::cpu::CpuSample {
        crate::cpu::CpuSample::now(self.ward.id(), self.cluster.postmaster_pid())
    }

    /// [`Env::cpu`] once PostgreSQL is back to `before`'s processes (a run's backends gone).
    pub fn cpu_settled(&self, before: &crate::cpu::CpuSample) -> crate::cpu::CpuSample {
        crate::cpu::CpuSample::settled(self.ward.id(), self.cluster.postmaster_pid(), before.postgres_processes)
    }

    /// Resident set size of the ward process, in KiB.
    pub fn ward_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.ward.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Statements run, and plans made for them, since the last reset by everyone but the
    /// benchmark's own `postgres` connection: ward (as `authenticator` and the roles it
    /// switches to) or pgbench.
    pub async fn request_statements(&self, owner: &DatabaseConnection) -> anyhow::Result<Statements> {
        let row = owner
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "select coalesce(sum(calls), 0)::bigint as calls, coalesce(sum(plans), 0)::bigint as plans \
                 from pg_stat_statements where userid <> 'postgres'::regrole",
            ))
            .await?
            .context("no row")?;
        Ok(Statements { calls: row.try_get("", "calls")?, plans: row.try_get("", "plans")? })
    }

    /// Prints what ran since the last reset, most called first (`WARD_BENCH_STATEMENTS=1`).
    pub async fn print_statements(&self, owner: &DatabaseConnection) -> anyhow::Result<()> {
        let rows = owner
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "select calls, plans, round(mean_exec_time::numeric, 3)::text as exec_ms, \
                        round(mean_plan_time::numeric, 3)::text as plan_ms, left(query, 300) as query \
                 from pg_stat_statements where userid <> 'postgres'::regrole order by calls desc limit 20",
            ))
            .await?;
        for row in rows {
            let calls: i64 = row.try_get("", "calls")?;
            let plans: i64 = row.try_get("", "plans")?;
            let exec: String = row.try_get("", "exec_ms")?;
            let plan: String = row.try_get("", "plan_ms")?;
            let query: String = row.try_get("", "query")?;
            eprintln!(
                "{calls:>8} calls {plans:>8} plans {exec:>8} ms exec {plan:>8} ms plan  {}",
                query.replace('\n', " ")
            );
        }
        Ok(())
    }

    pub async fn reset_statements(&self, owner: &DatabaseConnection) -> anyhow::Result<()> {
        owner.execute_unprepared("select pg_stat_statements_reset()").await?;
        Ok(())
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.ward.id().to_string()]).status();
        let _ = self.ward.wait();
        let _ = self.cluster.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Counts from `pg_stat_statements`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Statements {
    pub calls: i64,
    pub plans: i64,
}

/// The value at quantile `q` (0..1) of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Starts the `ward` binary at `ward_bin` on the benchmark's cluster (as `authenticator`, with
/// its data in `data_dir`) and waits until it is ready; returns the process and its address.
pub async fn spawn_ward(
    ward_bin: &str,
    cluster: &EmbeddedCluster,
    data_dir: &std::path::Path,
    pool_size: u32,
    extra_env: &[(&str, String)],
) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let mut command = Command::new(ward_bin);
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", cluster.url("authenticator", AUTHENTICATOR_PASSWORD, DATABASE))
        .env("SUPABASE_JWT_SECRET", JWT_SECRET)
        .env("WARD_BIND", &addr)
        .env("WARD_DATA_DIR", data_dir)
        .env("WARD_DB_POOL_SIZE", pool_size.to_string())
        .env("WARD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // tokio reads its worker count from the environment: let a run try other counts.
    if let Ok(workers) = std::env::var("TOKIO_WORKER_THREADS") {
        command.env("TOKIO_WORKER_THREADS", workers);
    }
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let ward = command.spawn().with_context(|| format!("starting {ward_bin}"))?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..400 {
        if http.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(ready, "ward did not become ready");
    Ok((ward, addr))
}
