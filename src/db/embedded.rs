//! The embedded PostgreSQL cluster: ward's default database when `DATABASE_URL` is unset.
//!
//! It runs the machine's own PostgreSQL server binaries on a private data directory, listening
//! on 127.0.0.1 and a unix socket inside the data directory. PostgreSQL refuses to run as root,
//! so under root the cluster runs as the `postgres` system user. A small watchdog process stops
//! the cluster when ward's process ends in any way, even SIGKILL, so no `postgres` is orphaned.
//!
//! One file (about 450 lines and its tests): finding the binaries, initdb, start, the watchdog
//! and stop are one lifecycle over the same data directory and processes.

use std::ffi::OsStr;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Why the embedded cluster could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries found (looked in WARD_PG_BINDIR, or else PATH, \
         `pg_config --bindir` and /usr/lib/postgresql/*/bin): install the PostgreSQL server package, e.g. \
         `apt-get install postgresql`, or set DATABASE_URL"
    )]
    BinariesNotFound,
    #[error(
        "ward runs as root, so PostgreSQL must run as the `postgres` system user, and there is \
         none: install the PostgreSQL server package (it creates the user) or set DATABASE_URL"
    )]
    NoPostgresUser,
    #[error(
        "the data directory {0} cannot be reached by the `postgres` system user (a parent \
         directory such as /root is not searchable by others): set WARD_DATA_DIR to a path \
         outside it"
    )]
    Unreachable(PathBuf),
    #[error("{what} failed: {detail}")]
    Command { what: &'static str, detail: String },
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError + '_ {
    move |source| EmbeddedError::Io { path: path.to_owned(), source }
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// The cluster's data directory; created by `initdb` on first start.
    pub data_dir: PathBuf,
    /// Use the server binaries in this directory instead of searching for them.
    pub bin_dir: Option<PathBuf>,
    /// Password of the bootstrap superuser `postgres`, set at `initdb`.
    pub superuser_password: String,
    /// Trade durability for speed (tests): no fsync, no synchronous commit.
    pub ephemeral: bool,
    /// Extra server settings, e.g. `("shared_preload_libraries", "pg_stat_statements")`.
    pub settings: Vec<(String, String)>,
}

/// How the server stops before a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Running transactions are rolled back, clients disconnected, then a clean stop.
    Fast,
    /// The server processes quit at once; the next start recovers from the WAL.
    Immediate,
}

/// A running cluster. Stop it with [`EmbeddedCluster::stop`]; dropping it stops it too (via
/// the watchdog).
pub struct EmbeddedCluster {
    data_dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    run_as: Option<SystemUser>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl std::fmt::Debug for EmbeddedCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedCluster").field("data_dir", &self.data_dir).field("port", &self.port).finish()
    }
}

#[derive(Debug, Clone, Copy)]
struct SystemUser {
    uid: u32,
    gid: u32,
}

impl EmbeddedCluster {
    /// Initialises the data directory if it is new, recovers from a stale or orphaned server
    /// left by a killed run, and starts the server on a free port.
    pub fn start(options: &EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let run_as = if running_as_root() { Some(postgres_user()?) } else { None };
        let data_dir = absolute(&options.data_dir)?;
        let bin_dir = match &options.bin_dir {
            Some(dir) if has_server_binaries(dir) => dir.clone(),
            Some(_) => return Err(EmbeddedError::BinariesNotFound),
            None => find_bin_dir(existing_major_version(&data_dir).as_deref())?,
        };
        let mut cluster = EmbeddedCluster { data_dir, bin_dir, port: 0, run_as, watchdog: None };
        if !cluster.data_dir.join("PG_VERSION").exists() {
            cluster.init(&options.superuser_password)?;
        }
        cluster.recover_stale()?;
        cluster.launch(options)?;
        Ok(cluster)
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A connection URL for `user` with `password` to `database` over TCP.
    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            urlencode(user),
            urlencode(password),
            self.port,
            urlencode(database)
        )
    }

    /// The process id of the running postmaster, from `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<u32> {
        read_postmaster_pid(&self.data_dir)
    }

    /// Restarts the server on the same port and settings (fast shutdown first): what a
    /// database restart looks like to clients.
    pub fn restart(&self) -> Result<(), EmbeddedError> {
        self.restart_with(ShutdownMode::Fast)
    }

    /// Restarts the server on the same port and settings after a shutdown of `mode`:
    /// `Immediate` is a crash as far as clients and recovery are concerned.
    pub fn restart_with(&self, mode: ShutdownMode) -> Result<(), EmbeddedError> {
        let mode = match mode {
            ShutdownMode::Fast => "fast",
            ShutdownMode::Immediate => "immediate",
        };
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.data_dir.join("server.log"))
            .args(["-m", mode, "-w", "-t", "60", "restart"])
            .output();
        check_output("pg_ctl restart", output)
    }

    /// Stops the server (fast shutdown: running transactions are rolled back) and waits for it.
    pub fn stop(mut self) -> Result<(), EmbeddedError> {
        let result = self.pg_ctl_stop("fast");
        self.disarm_watchdog();
        result
    }

    fn init(&self, superuser_password: &str) -> Result<(), EmbeddedError> {
        let parent = self.data_dir.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        // A data directory without PG_VERSION is an initdb that never finished: start over.
        if self.data_dir.exists() {
            std::fs::remove_dir_all(&self.data_dir).map_err(io_err(&self.data_dir))?;
        }
        std::fs::create_dir_all(&self.data_dir).map_err(io_err(&self.data_dir))?;
        std::fs::set_permissions(&self.data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(&self.data_dir))?;
        let pwfile = parent.join(format!(".pg-pwfile-{}", std::process::id()));
        {
            let mut file = std::fs::File::create(&pwfile).map_err(io_err(&pwfile))?;
            file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io_err(&pwfile))?;
            file.write_all(superuser_password.as_bytes()).map_err(io_err(&pwfile))?;
        }
        if let Some(user) = self.run_as {
            if !reachable_by_others(&self.data_dir) {
                let _ = std::fs::remove_file(&pwfile);
                return Err(EmbeddedError::Unreachable(self.data_dir.clone()));
            }
            for path in [&self.data_dir, &pwfile] {
                std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(io_err(path))?;
            }
        }
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=peer", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output();
        let _ = std::fs::remove_file(&pwfile);
        check_output("initdb", output)
    }

    /// Handles a `postmaster.pid` left behind: a server still running from a killed ward is
    /// stopped (it may hold a port we no longer know); a dead one's lock file is removed.
    fn recover_stale(&self) -> Result<(), EmbeddedError> {
        let Some(pid) = read_postmaster_pid(&self.data_dir) else { return Ok(()) };
        if is_postgres_process(pid) {
            tracing::warn!(pid, "stopping a PostgreSQL server left running by an earlier ward");
            if self.pg_ctl_stop("fast").is_err() {
                self.pg_ctl_stop("immediate")?;
            }
        } else {
            let lock = self.data_dir.join("postmaster.pid");
            tracing::warn!(pid, "removing a stale postmaster.pid");
            std::fs::remove_file(&lock).map_err(io_err(&lock))?;
        }
        Ok(())
    }

    fn launch(&mut self, options: &EmbeddedOptions) -> Result<(), EmbeddedError> {
        let socket_dir = self.data_dir.display().to_string();
        // The unix socket path is limited to 107 bytes; on a deeper data directory ward uses
        // TCP alone.
        let sockets = if socket_dir.len() + 20 < 107 { socket_dir } else { String::new() };
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let mut opts = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='{sockets}' \
                 -c max_connections=200 -c shared_buffers=64MB"
            );
            if options.ephemeral {
                opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            }
            for (name, value) in &options.settings {
                opts.push_str(&format!(" -c {name}='{}'", value.replace('\'', "")));
            }
            let log = self.data_dir.join("server.log");
            let output = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&log)
                .args(["-o", &opts, "-w", "-t", "60", "start"])
                .output();
            match check_output("pg_ctl start", output) {
                Ok(()) => {
                    self.port = port;
                    self.arm_watchdog()?;
                    return Ok(());
                }
                Err(e) => {
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                    tracing::warn!(error = %e, log = ?tail, "PostgreSQL did not start; retrying");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or(EmbeddedError::Command { what: "pg_ctl start", detail: "gave up".into() }))
    }

    /// Starts a shell that waits for its stdin to close (which happens when this process
    /// exits, however it exits) and then stops the cluster.
    fn arm_watchdog(&mut self) -> Result<(), EmbeddedError> {
        let mut command = self.command_at("sh");
        command
            .arg("-c")
            .arg(r#"trap '' INT TERM HUP; cat >/dev/null; exec "$0" -D "$1" -m fast -w stop >/dev/null 2>&1"#)
            .arg(self.bin_dir.join("pg_ctl"))
            .arg(&self.data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command
            .spawn()
            .map_err(|e| EmbeddedError::Command { what: "the cluster watchdog", detail: e.to_string() })?;
        let Some(stdin) = child.stdin.take() else {
            return Err(EmbeddedError::Command { what: "the cluster watchdog", detail: "no stdin".into() });
        };
        self.watchdog = Some((child, stdin));
        Ok(())
    }

    fn disarm_watchdog(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), EmbeddedError> {
        let output =
            self.command("pg_ctl").arg("-D").arg(&self.data_dir).args(["-m", mode, "-w", "-t", "60", "stop"]).output();
        check_output("pg_ctl stop", output)
    }

    fn command(&self, program: &str) -> Command {
        self.command_at(self.bin_dir.join(program))
    }

    fn command_at(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        // The child's working directory must be one it may enter (not /root).
        command.current_dir(self.data_dir.parent().unwrap_or(Path::new("/")));
        command.env_remove("PGDATA").env("LC_ALL", "C");
        if let Some(user) = self.run_as {
            // std drops root's supplementary groups when it switches uid.
            command.uid(user.uid).gid(user.gid);
        }
        command
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        // Closing the watchdog's stdin makes it stop the cluster.
        self.disarm_watchdog();
    }
}

fn check_output(what: &'static str, output: std::io::Result<std::process::Output>) -> Result<(), EmbeddedError> {
    let output = output.map_err(|e| EmbeddedError::Command { what, detail: e.to_string() })?;
    if output.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&output.stdout).trim().to_string();
    }
    Err(EmbeddedError::Command { what, detail })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn postgres_user() -> Result<SystemUser, EmbeddedError> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io_err(Path::new("/etc/passwd")))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                ["postgres", _, uid, gid, ..] => Some(SystemUser { uid: uid.parse().ok()?, gid: gid.parse().ok()? }),
                _ => None,
            }
        })
        .ok_or(EmbeddedError::NoPostgresUser)
}

/// Whether every existing directory above `path` lets other users through (search
/// permission); missing ones will be created with the usual 0755.
fn reachable_by_others(path: &Path) -> bool {
    path.ancestors().skip(1).all(|dir| match std::fs::metadata(dir) {
        Ok(meta) => meta.permissions().mode() & 0o001 != 0,
        Err(_) => true,
    })
}

fn absolute(path: &Path) -> Result<PathBuf, EmbeddedError> {
    std::path::absolute(path).map_err(io_err(path))
}

fn free_port() -> Result<u16, EmbeddedError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| EmbeddedError::Command { what: "finding a free port", detail: e.to_string() })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| EmbeddedError::Command { what: "finding a free port", detail: e.to_string() })
}

fn read_postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn is_postgres_process(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim().starts_with("postgres"))
        .unwrap_or(false)
}

/// The major version an existing data directory was initialised with.
fn existing_major_version(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join("PG_VERSION")).ok().map(|v| v.trim().to_string())
}

/// Finds a directory holding `initdb`, `pg_ctl` and `postgres`: PATH first, then
/// `pg_config --bindir`, then `/usr/lib/postgresql/*/bin`, newest version first. A data
/// directory's own major version wins when its binaries are there.
fn find_bin_dir(wanted_major: Option<&str>) -> Result<PathBuf, EmbeddedError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versioned: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .collect();
        versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versioned.into_iter().map(|(_, dir)| dir));
    }
    let usable: Vec<PathBuf> = candidates.into_iter().filter(|dir| has_server_binaries(dir)).collect();
    if let Some(major) = wanted_major
        && let Some(dir) = usable.iter().find(|dir| server_major(dir).as_deref() == Some(major))
    {
        return Ok(dir.clone());
    }
    usable.into_iter().next().ok_or(EmbeddedError::BinariesNotFound)
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file())
}

/// `postgres --version` → "15" for "postgres (PostgreSQL) 15.18 (Debian ...)".
fn server_major(bin_dir: &Path) -> Option<String> {
    let output = Command::new(bin_dir.join("postgres")).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().nth(2)?;
    Some(version.split('.').next()?.to_string())
}

/// Percent-encodes a URL userinfo or path component.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_components_are_encoded() {
        assert_eq!(urlencode("a b/c@d"), "a%20b%2Fc%40d");
        assert_eq!(urlencode("plain-Name_1.2~"), "plain-Name_1.2~");
    }

    #[test]
    fn reachability_follows_directory_modes() {
        let dir = std::env::temp_dir().join(format!("ward-reach-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("open")).unwrap();
        std::fs::create_dir_all(dir.join("closed")).unwrap();
        std::fs::set_permissions(dir.join("closed"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(reachable_by_others(&dir.join("open/not-yet/pg")));
        assert!(!reachable_by_others(&dir.join("closed/pg")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
