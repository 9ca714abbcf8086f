//! Settings, read once from the environment (and a `.env` file) at startup. Nothing else in
//! ward reads the environment. Secrets are wrapped so that they never print.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A value that must not appear in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where objects (photos, evidence, documents) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// Files under `WARD_DATA_DIR/storage`, served by ward on Supabase Storage's REST paths.
    Local,
    /// Supabase Storage over its REST API (`SUPABASE_URL`, `SUPABASE_SERVICE_ROLE_KEY`).
    Supabase,
}

/// Everything ward can be told from outside. Each field names its environment variable.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: the database requests use, connecting as `authenticator` (or a role like
    /// it that cannot bypass RLS). Unset: ward starts its embedded PostgreSQL cluster.
    pub database_url: Option<Secret>,
    /// `DATABASE_OWNER_URL`: a connection as the schema owner, for migrations (`ward migrate`,
    /// and at `serve` start when set). The embedded default sets this up itself.
    pub database_owner_url: Option<Secret>,
    /// `DATABASE_LISTEN_URL`: a direct (session) connection for LISTEN, when `DATABASE_URL`
    /// goes through a transaction pooler. Default: `DATABASE_URL`.
    pub database_listen_url: Option<Secret>,
    /// `WARD_SUBSCRIBER_BUFFER`: updates one subscription may have waiting before it is ended
    /// as too slow. Default 256.
    pub subscriber_buffer: usize,
    /// `WARD_BIND`: the address the HTTP server listens on. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `WARD_PUBLIC_URL`: the absolute base URL clients reach ward at (signed upload and
    /// download URLs of the local storage backend start with it), e.g. `https://ward.example`.
    /// Unset: `http://` and the address the listener is bound to.
    pub public_url: Option<String>,
    /// `WARD_STORAGE`: `local` or `supabase`. Default: `supabase` when `SUPABASE_URL` and
    /// `SUPABASE_SERVICE_ROLE_KEY` are both set, `local` otherwise.
    pub storage: StorageBackend,
    /// `WARD_DATA_DIR`: the embedded cluster, local secrets and local storage. Default `./.ward`.
    pub data_dir: PathBuf,
    /// `WARD_PG_BINDIR`: the PostgreSQL server binaries for the embedded cluster, when the
    /// search (PATH, `pg_config --bindir`, /usr/lib/postgresql/*/bin) should not decide.
    pub pg_bin_dir: Option<PathBuf>,
    /// `WARD_DB_POOL_SIZE`: connections in the request pool. Default 10.
    pub db_pool_size: u32,
    /// `SUPABASE_URL`: the Supabase project, e.g. `https://xyz.supabase.co`.
    pub supabase_url: Option<String>,
    /// `SUPABASE_SERVICE_ROLE_KEY`: the project's service-role key (storage calls).
    pub supabase_service_role_key: Option<Secret>,
    /// `SUPABASE_JWT_SECRET`: the HS256 secret tokens are signed with. Unset: a secret
    /// generated once and kept in `WARD_DATA_DIR/secrets.json`.
    pub supabase_jwt_secret: Option<Secret>,
    /// `RELAY_WEBHOOK_SECRET`: the bearer secret of the messaging relay (service role).
    pub relay_webhook_secret: Option<Secret>,
    /// `WARD_LOG`: a tracing filter, e.g. `info,ward=debug`. Default `info,sqlx=warn,sea_orm_migration=warn`.
    pub log_filter: String,
    /// `WARD_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `WARD_DEMO`: seed the demo municipalities and people. Default: on for the embedded
    /// default, off with `DATABASE_URL`.
    pub demo: bool,
}

/// A setting that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("setting {name}: {problem}")]
pub struct ConfigError {
    name: &'static str,
    problem: String,
}

impl Config {
    /// Reads `.env` (if any) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds a config from any source of variables (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let secret = |name: &str| get(name).map(Secret::new);
        let database_url = secret("DATABASE_URL");
        let bind = match get("WARD_BIND") {
            Some(v) => v.parse().map_err(|_| ConfigError {
                name: "WARD_BIND",
                problem: format!("`{v}` is not an address like 127.0.0.1:8080"),
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let db_pool_size = match get("WARD_DB_POOL_SIZE") {
            Some(v) => v.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or(ConfigError {
                name: "WARD_DB_POOL_SIZE",
                problem: format!("`{v}` is not a number from 1 to 1000"),
            })?,
            None => 10,
        };
        let log_format = match get("WARD_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    name: "WARD_LOG_FORMAT",
                    problem: format!("`{other}` is neither `text` nor `json`"),
                });
            }
        };
        let subscriber_buffer = match get("WARD_SUBSCRIBER_BUFFER") {
            Some(v) => v.parse().ok().filter(|n| (1..=100_000).contains(n)).ok_or(ConfigError {
                name: "WARD_SUBSCRIBER_BUFFER",
                problem: format!("`{v}` is not a number from 1 to 100000"),
            })?,
            None => 256,
        };
        let public_url = match get("WARD_PUBLIC_URL") {
            Some(v) => {
                let v = v.trim().trim_end_matches('/').to_string();
                let ok = reqwest::Url::parse(&v)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.query().is_none());
                if !ok {
                    return Err(ConfigError {
                        name: "WARD_PUBLIC_URL",
                        problem: format!("`{v}` is not an absolute http(s) URL like https://ward.example"),
                    });
                }
                Some(v)
            }
            None => None,
        };
        let supabase_url = get("SUPABASE_URL").map(|u| u.trim_end_matches('/').to_string());
        let supabase_service_role_key = secret("SUPABASE_SERVICE_ROLE_KEY");
        let storage = match get("WARD_STORAGE").as_deref() {
            None if supabase_url.is_some() && supabase_service_role_key.is_some() => StorageBackend::Supabase,
            None | Some("local") => StorageBackend::Local,
            Some("supabase") if supabase_url.is_some() && supabase_service_role_key.is_some() => {
                StorageBackend::Supabase
            }
            Some("supabase") => {
                return Err(ConfigError {
                    name: "WARD_STORAGE",
                    problem: "`supabase` needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY".into(),
                });
            }
            Some(other) => {
                return Err(ConfigError {
                    name: "WARD_STORAGE",
                    problem: format!("`{other}` is neither `local` nor `supabase`"),
                });
            }
        };
        let demo = match get("WARD_DEMO").as_deref() {
            None => database_url.is_none(),
            Some("1" | "true" | "on" | "yes") => true,
            Some("0" | "false" | "off" | "no") => false,
            Some(other) => {
                return Err(ConfigError {
                    name: "WARD_DEMO",
                    problem: format!("`{other}` is not true or false"),
                });
            }
        };
        Ok(Config {
            database_url,
            database_owner_url: secret("DATABASE_OWNER_URL"),
            database_listen_url: secret("DATABASE_LISTEN_URL"),
            subscriber_buffer,
            bind,
            public_url,
            storage,
            data_dir: get("WARD_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".ward")),
            pg_bin_dir: get("WARD_PG_BINDIR").map(PathBuf::from),
            db_pool_size,
            supabase_url,
            supabase_service_role_key,
            supabase_jwt_secret: secret("SUPABASE_JWT_SECRET"),
            relay_webhook_secret: secret("RELAY_WEBHOOK_SECRET"),
            log_filter: get("WARD_LOG").unwrap_or_else(|| "info,sqlx=warn,sea_orm_migration=warn".to_string()),
            log_format,
            demo,
        })
    }

    /// Whether ward runs its own PostgreSQL cluster.
    pub fn embedded(&self) -> bool {
        self.database_url.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_demo() {
        let c = config(&[]).unwrap();
        assert!(c.embedded());
        assert!(c.demo);
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from(".ward"));
    }

    #[test]
    fn a_database_url_turns_the_demo_off() {
        let c = config(&[("DATABASE_URL", "postgres://authenticator@db/ward")]).unwrap();
        assert!(!c.embedded());
        assert!(!c.demo);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = config(&[("WARD_BIND", "nowhere")]).unwrap_err().to_string();
        assert!(err.contains("WARD_BIND"), "{err}");
        let err = config(&[("WARD_LOG_FORMAT", "xml")]).unwrap_err().to_string();
        assert!(err.contains("WARD_LOG_FORMAT"), "{err}");
    }

    #[test]
    fn storage_is_local_unless_supabase_is_configured() {
        let c = config(&[]).unwrap();
        assert_eq!(c.storage, StorageBackend::Local);
        assert_eq!(c.public_url, None);
        let supabase = [("SUPABASE_URL", "https://p.supabase.co/"), ("SUPABASE_SERVICE_ROLE_KEY", "k")];
        assert_eq!(config(&supabase).unwrap().storage, StorageBackend::Supabase);
        let mut local = supabase.to_vec();
        local.push(("WARD_STORAGE", "local"));
        assert_eq!(config(&local).unwrap().storage, StorageBackend::Local);
        let err = config(&[("WARD_STORAGE", "supabase")]).unwrap_err().to_string();
        assert!(err.contains("WARD_STORAGE"), "{err}");
        let err = config(&[("WARD_STORAGE", "s3")]).unwrap_err().to_string();
        assert!(err.contains("WARD_STORAGE"), "{err}");
    }

    #[test]
    fn the_public_url_must_be_absolute() {
        let c = config(&[("WARD_PUBLIC_URL", "https://ward.example/")]).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://ward.example"));
        for bad in ["ward.example", "ftp://x", "/relative", "http://x/?q=1"] {
            let err = config(&[("WARD_PUBLIC_URL", bad)]).unwrap_err().to_string();
            assert!(err.contains("WARD_PUBLIC_URL"), "{err}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let c = config(&[("SUPABASE_JWT_SECRET", "hunter2")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
