//! Settings, read once from the environment (and a `.env` file) at startup. Nothing else in
//! ward reads the environment. Secrets are wrapped so that they never print.
//!
//! Long on purpose: every setting is parsed and checked in one place, with one list of what is
//! wrong, so that no other module reads the environment; a quarter of the file is its tests.

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
    /// ward's own storage (as `Local`) with the bytes in an S3-compatible bucket
    /// ([`Config::s3`]), shared by every ward process on the same database.
    S3,
}

/// The S3 backend's settings (`WARD_STORAGE=s3`).
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `WARD_S3_BUCKET`: the one bucket holding every ward bucket's objects (required).
    pub bucket: String,
    /// `WARD_S3_ENDPOINT`: for MinIO, R2, Ceph…, e.g. `http://127.0.0.1:9000`. Unset: AWS.
    pub endpoint: Option<String>,
    /// `WARD_S3_REGION` (or `AWS_REGION`). Default `us-east-1`.
    pub region: String,
    /// `WARD_S3_ACCESS_KEY_ID` and `WARD_S3_SECRET_ACCESS_KEY`. Unset: the `AWS_*` variables
    /// (and instance credentials) as the AWS SDKs read them.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// `WARD_S3_PREFIX`: a key prefix, e.g. `ward/` (default none).
    pub prefix: String,
    /// `WARD_S3_VIRTUAL_HOSTED`: `bucket.host` addressing. Default: on for AWS, off (path
    /// style) with `WARD_S3_ENDPOINT`.
    pub virtual_hosted: bool,
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
    /// `WARD_SLA_SWEEP_SECONDS`: how often the SLA sweeper records breached tickets; 0 turns
    /// it off (another server sweeps). Default 60.
    pub sla_sweep_seconds: u64,
    /// `WARD_UPLOAD_SWEEP_SECONDS`: how often upload intents past their expiry are marked
    /// `EXPIRED` and their unconfirmed objects removed; 0 turns it off. Default 300.
    pub upload_sweep_seconds: u64,
    /// `WARD_INGEST_TIMEOUT_SECONDS`: how long `ingestTicketMedia` may take to download one
    /// file. Default 30.
    pub ingest_timeout_seconds: u64,
    /// `WARD_INGEST_ALLOW_PRIVATE`: let `ingestTicketMedia` fetch from private and loopback
    /// addresses (tests only). Default false.
    pub ingest_allow_private: bool,
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
    /// `WARD_DB_POOLER`: what `DATABASE_URL` connects through: `direct` (PostgreSQL itself, or
    /// a session-mode pooler) or `transaction` (a transaction-mode pooler such as Supavisor on
    /// port 6543), which ward refuses at start (see [`Config::check_pooler`]). Default:
    /// `transaction` when `DATABASE_URL`'s port is 6543 (Supabase's transaction-mode port),
    /// `direct` otherwise.
    pub db_pooler: Pooler,
    /// `WARD_DB_POOL_SIZE`: connections in the request pool. Default 10.
    pub db_pool_size: u32,
    /// `WARD_DB_ACQUIRE_TIMEOUT_MS`: how long a request waits for a pooled connection before
    /// it is answered `UNAVAILABLE` (HTTP 503 with `Retry-After`). Default 2000.
    pub db_acquire_timeout: std::time::Duration,
    /// The S3 backend's settings, with `WARD_STORAGE=s3`.
    pub s3: Option<S3Settings>,
    /// `SUPABASE_URL`: the Supabase project, e.g. `https://xyz.supabase.co`.
    pub supabase_url: Option<String>,
    /// `SUPABASE_JWKS_URL`: the project's public signing keys, for ES256/RS256 tokens. Default:
    /// `SUPABASE_URL` + `/auth/v1/.well-known/jwks.json` when `SUPABASE_URL` is set; with
    /// neither, only HS256 tokens (`SUPABASE_JWT_SECRET`) are accepted. See [`Config::jwks_url`].
    pub supabase_jwks_url: Option<String>,
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
    /// `WARD_PLAYGROUND`: serve GraphiQL on `/`. Default on.
    pub playground: bool,
    /// `WARD_PLAYGROUND_DEMO`: the playground offers the demo people's `Authorization`
    /// headers (live tokens) and an example tab per area. Default: on for the embedded default
    /// with its demo, off with `DATABASE_URL` — the tokens it hands out are real.
    pub playground_demo: bool,
    /// `WARD_INTROSPECTION`: answer `__schema`/`__type` queries. Default on.
    pub introspection: bool,
    /// `WARD_CORS_ORIGINS`: browser origins allowed to call the API cross-origin, comma
    /// separated (`https://app.example,https://admin.example`), or `*` for any. Default: none
    /// (no CORS headers; same-origin pages only).
    pub cors_origins: CorsOrigins,
    /// `WARD_MAX_BODY_BYTES`: the largest request body on `/graphql` (uploads have their own
    /// limits per bucket). Default 1 MiB.
    pub max_body_bytes: usize,
    /// `WARD_METRICS`: serve Prometheus metrics on `GET /metrics`. Default on.
    pub metrics: bool,
    /// `WARD_METRICS_TOKEN`: when set, `/metrics` wants `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    /// `WARD_SHUTDOWN_TIMEOUT`: seconds in-flight HTTP requests get to finish after SIGTERM or
    /// SIGINT before ward stops anyway. Default 10.
    pub shutdown_timeout: std::time::Duration,
}

/// The port of a `postgres://` URL, when it names one.
fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// What the request connections go through (`WARD_DB_POOLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// PostgreSQL itself, or a pooler that keeps a server connection per client connection.
    Direct,
    /// A pooler that hands out a server connection per transaction: refused (named prepared
    /// statements would land on another server connection, and LISTEN has no session).
    Transaction,
}

/// Which browser origins may call ward cross-origin (`WARD_CORS_ORIGINS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers: browsers allow same-origin pages only.
    None,
    /// Any origin (`*`); credentials are bearer headers, never cookies, so this exposes nothing
    /// a token holder could not already do.
    Any,
    /// Exactly these origins (scheme, host and port, no path).
    List(Vec<String>),
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
        let db_pooler = match get("WARD_DB_POOLER").as_deref() {
            Some("direct" | "session") => Pooler::Direct,
            Some("transaction") => Pooler::Transaction,
            Some(other) => {
                return Err(ConfigError {
                    name: "WARD_DB_POOLER",
                    problem: format!("`{other}` is neither `direct` nor `transaction`"),
                });
            }
            None => match database_url.as_ref().and_then(|url| url_port(url.expose())) {
                Some(6543) => Pooler::Transaction,
                _ => Pooler::Direct,
            },
        };
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
        let db_acquire_timeout = match get("WARD_DB_ACQUIRE_TIMEOUT_MS") {
            Some(v) => v.parse().ok().filter(|n| (10..=60_000).contains(n)).ok_or(ConfigError {
                name: "WARD_DB_ACQUIRE_TIMEOUT_MS",
                problem: format!("`{v}` is not a number of milliseconds from 10 to 60000"),
            })?,
            None => 5000,
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
        let ingest_timeout_seconds = match get("WARD_INGEST_TIMEOUT_SECONDS") {
            Some(v) => v.parse().ok().filter(|n| (1..=600).contains(n)).ok_or(ConfigError {
                name: "WARD_INGEST_TIMEOUT_SECONDS",
                problem: format!("`{v}` is not a number of seconds from 1 to 600"),
            })?,
            None => 30,
        };
        let ingest_allow_private = match get("WARD_INGEST_ALLOW_PRIVATE").as_deref() {
            None | Some("0" | "false" | "off" | "no") => false,
            Some("1" | "true" | "on" | "yes") => true,
            Some(other) => {
                return Err(ConfigError {
                    name: "WARD_INGEST_ALLOW_PRIVATE",
                    problem: format!("`{other}` is not true or false"),
                });
            }
        };
        let sla_sweep_seconds = match get("WARD_SLA_SWEEP_SECONDS") {
            Some(v) => v.parse().ok().filter(|n| *n <= 86_400).ok_or(ConfigError {
                name: "WARD_SLA_SWEEP_SECONDS",
                problem: format!("`{v}` is not a number of seconds from 0 to 86400"),
            })?,
            None => 60,
        };
        let upload_sweep_seconds = match get("WARD_UPLOAD_SWEEP_SECONDS") {
            Some(v) => v.parse().ok().filter(|n| *n <= 86_400).ok_or(ConfigError {
                name: "WARD_UPLOAD_SWEEP_SECONDS",
                problem: format!("`{v}` is not a number of seconds from 0 to 86400"),
            })?,
            None => 300,
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
        let supabase_jwks_url = match get("SUPABASE_JWKS_URL") {
            Some(v) => {
                let v = v.trim().to_string();
                let ok =
                    reqwest::Url::parse(&v).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok {
                    return Err(ConfigError {
                        name: "SUPABASE_JWKS_URL",
                        problem: format!("`{v}` is not an absolute http(s) URL"),
                    });
                }
                Some(v)
            }
            None => None,
        };
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
            Some("s3") => StorageBackend::S3,
            Some(other) => {
                return Err(ConfigError {
                    name: "WARD_STORAGE",
                    problem: format!("`{other}` is not `local`, `supabase` or `s3`"),
                });
            }
        };
        let s3 = match storage {
            StorageBackend::S3 => {
                let bucket = get("WARD_S3_BUCKET").filter(|b| !b.trim().is_empty()).ok_or(ConfigError {
                    name: "WARD_S3_BUCKET",
                    problem: "`WARD_STORAGE=s3` needs the bucket's name".into(),
                })?;
                let endpoint = match get("WARD_S3_ENDPOINT") {
                    Some(v) => {
                        let v = v.trim().trim_end_matches('/').to_string();
                        if !reqwest::Url::parse(&v)
                            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                        {
                            return Err(ConfigError {
                                name: "WARD_S3_ENDPOINT",
                                problem: format!("`{v}` is not an absolute http(s) URL"),
                            });
                        }
                        Some(v)
                    }
                    None => None,
                };
                let virtual_hosted = match get("WARD_S3_VIRTUAL_HOSTED").as_deref() {
                    None => endpoint.is_none(),
                    Some("1" | "true" | "on" | "yes") => true,
                    Some("0" | "false" | "off" | "no") => false,
                    Some(other) => {
                        return Err(ConfigError {
                            name: "WARD_S3_VIRTUAL_HOSTED",
                            problem: format!("`{other}` is not true or false"),
                        });
                    }
                };
                let access_key_id = get("WARD_S3_ACCESS_KEY_ID");
                let secret_access_key = secret("WARD_S3_SECRET_ACCESS_KEY");
                if access_key_id.is_some() != secret_access_key.is_some() {
                    return Err(ConfigError {
                        name: "WARD_S3_ACCESS_KEY_ID",
                        problem: "set both WARD_S3_ACCESS_KEY_ID and WARD_S3_SECRET_ACCESS_KEY, or neither".into(),
                    });
                }
                let prefix = get("WARD_S3_PREFIX").unwrap_or_default();
                if !prefix.is_empty() && !prefix.ends_with('/') {
                    return Err(ConfigError { name: "WARD_S3_PREFIX", problem: "a prefix ends with `/`".into() });
                }
                Some(S3Settings {
                    bucket,
                    endpoint,
                    region: get("WARD_S3_REGION").or_else(|| get("AWS_REGION")).unwrap_or_else(|| "us-east-1".into()),
                    access_key_id,
                    secret_access_key,
                    prefix,
                    virtual_hosted,
                })
            }
            _ => None,
        };
        let demo = match get("WARD_DEMO").as_deref() {
            None => database_url.is_none(),
            Some("1" | "true" | "on" | "yes") => true,
            Some("0" | "false" | "off" | "no") => false,
            Some(other) => {
                return Err(ConfigError { name: "WARD_DEMO", problem: format!("`{other}` is not true or false") });
            }
        };
        let flag = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match get(name).as_deref().map(str::trim) {
                None => Ok(default),
                Some("1" | "true" | "on" | "yes") => Ok(true),
                Some("0" | "false" | "off" | "no") => Ok(false),
                Some(other) => Err(ConfigError { name, problem: format!("`{other}` is not on or off") }),
            }
        };
        let playground = flag("WARD_PLAYGROUND", true)?;
        let playground_demo = flag("WARD_PLAYGROUND_DEMO", database_url.is_none() && demo)?;
        let introspection = flag("WARD_INTROSPECTION", true)?;
        let metrics = flag("WARD_METRICS", true)?;
        let cors_origins = match get("WARD_CORS_ORIGINS") {
            None => CorsOrigins::None,
            Some(v) if v.trim() == "*" => CorsOrigins::Any,
            Some(v) => {
                let mut origins = Vec::new();
                for origin in v.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                    let origin = origin.trim_end_matches('/');
                    let ok = reqwest::Url::parse(origin).is_ok_and(|u| {
                        matches!(u.scheme(), "http" | "https")
                            && u.host().is_some()
                            && u.path() == "/"
                            && u.query().is_none()
                            && u.fragment().is_none()
                    });
                    if !ok {
                        return Err(ConfigError {
                            name: "WARD_CORS_ORIGINS",
                            problem: format!("`{origin}` is not an origin like https://app.example"),
                        });
                    }
                    origins.push(origin.to_string());
                }
                CorsOrigins::List(origins)
            }
        };
        let max_body_bytes = match get("WARD_MAX_BODY_BYTES") {
            Some(v) => {
                v.trim().parse().ok().filter(|n| (1024..=1024 * 1024 * 1024).contains(n)).ok_or(ConfigError {
                    name: "WARD_MAX_BODY_BYTES",
                    problem: format!("`{v}` is not a number of bytes from 1024 to 1073741824"),
                })?
            }
            None => 1024 * 1024,
        };
        let shutdown_timeout = match get("WARD_SHUTDOWN_TIMEOUT") {
            Some(v) => v.trim().parse::<u64>().ok().filter(|n| (1..=3600).contains(n)).ok_or(ConfigError {
                name: "WARD_SHUTDOWN_TIMEOUT",
                problem: format!("`{v}` is not a number of seconds from 1 to 3600"),
            })?,
            None => 10,
        };
        Ok(Config {
            database_url,
            database_owner_url: secret("DATABASE_OWNER_URL"),
            database_listen_url: secret("DATABASE_LISTEN_URL"),
            db_pooler,
            subscriber_buffer,
            sla_sweep_seconds,
            upload_sweep_seconds,
            ingest_timeout_seconds,
            ingest_allow_private,
            bind,
            public_url,
            storage,
            data_dir: get("WARD_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".ward")),
            pg_bin_dir: get("WARD_PG_BINDIR").map(PathBuf::from),
            db_pool_size,
            db_acquire_timeout: std::time::Duration::from_millis(db_acquire_timeout),
            supabase_url,
            supabase_jwks_url,
            supabase_service_role_key,
            s3,
            supabase_jwt_secret: secret("SUPABASE_JWT_SECRET"),
            relay_webhook_secret: secret("RELAY_WEBHOOK_SECRET"),
            log_filter: get("WARD_LOG").unwrap_or_else(|| "info,sqlx=warn,sea_orm_migration=warn".to_string()),
            log_format,
            demo,
            playground,
            playground_demo,
            introspection,
            cors_origins,
            max_body_bytes,
            metrics,
            metrics_token: secret("WARD_METRICS_TOKEN"),
            shutdown_timeout: std::time::Duration::from_secs(shutdown_timeout),
        })
    }

    /// Where the project's public signing keys are: `SUPABASE_JWKS_URL`, else derived from
    /// `SUPABASE_URL`; `None` when neither is set (asymmetric tokens are then refused).
    pub fn jwks_url(&self) -> Option<String> {
        self.supabase_jwks_url
            .clone()
            .or_else(|| self.supabase_url.as_ref().map(|u| format!("{u}/auth/v1/.well-known/jwks.json")))
    }

    /// Whether ward runs its own PostgreSQL cluster.
    /// Refuses a transaction-mode pooler (checked at `serve` start). ward keeps a pool of its
    /// own, so such a pooler adds nothing, and it breaks two things ward relies on: sqlx (under
    /// sea-orm) prepares statements by name, and a name lives on one server connection while
    /// the pooler hands the next transaction another; and LISTEN needs a session of its own.
    /// (`set_config(..., true)` would be fine: it lasts one transaction.)
    pub fn check_pooler(&self) -> Result<(), ConfigError> {
        if self.db_pooler == Pooler::Transaction {
            return Err(ConfigError {
                name: "DATABASE_URL",
                problem: "it goes through a transaction-mode pooler (port 6543, or WARD_DB_POOLER=transaction), \
                          which ward does not support: its statements are prepared by name and live updates need \
                          LISTEN. Connect through the session-mode pooler or directly instead (on Supabase: the \
                          same pooler host on port 5432, or db.PROJECT.supabase.co:5432); ward pools its own \
                          connections (WARD_DB_POOL_SIZE)"
                    .into(),
            });
        }
        Ok(())
    }

    pub fn embedded(&self) -> bool {
        self.database_url.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
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
    fn a_transaction_mode_pooler_is_recognised_and_refused_with_the_way_out() {
        let supavisor = "postgres://ward_requests.PROJECT:pw@aws-0-eu.pooler.supabase.com:6543/postgres";
        let c = config(&[("DATABASE_URL", supavisor)]).unwrap();
        assert_eq!(c.db_pooler, Pooler::Transaction);
        let refused = c.check_pooler().unwrap_err().to_string();
        assert!(refused.contains("transaction-mode") && refused.contains("5432"), "{refused}");
        let direct = "postgres://ward_requests.PROJECT:pw@aws-0-eu.pooler.supabase.com:5432/postgres";
        assert!(config(&[("DATABASE_URL", direct)]).unwrap().check_pooler().is_ok());
        assert_eq!(config(&[("DATABASE_URL", direct)]).unwrap().db_pooler, Pooler::Direct);
        assert_eq!(config(&[("DATABASE_URL", "postgres://u@h/db")]).unwrap().db_pooler, Pooler::Direct);
        let pgbouncer =
            config(&[("DATABASE_URL", "postgres://u@h:6432/db"), ("WARD_DB_POOLER", "transaction")]).unwrap();
        assert_eq!(pgbouncer.db_pooler, Pooler::Transaction);
        let forced = config(&[("DATABASE_URL", supavisor), ("WARD_DB_POOLER", "direct")]).unwrap();
        assert_eq!(forced.db_pooler, Pooler::Direct);
        assert!(config(&[("WARD_DB_POOLER", "statement")]).is_err());
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
        assert!(err.contains("WARD_S3_BUCKET"), "{err}");
        let s3 = config(&[
            ("WARD_STORAGE", "s3"),
            ("WARD_S3_BUCKET", "ward"),
            ("WARD_S3_ENDPOINT", "http://127.0.0.1:9000/"),
        ])
        .unwrap();
        assert_eq!(s3.storage, StorageBackend::S3);
        let settings = s3.s3.unwrap();
        assert_eq!((settings.endpoint.as_deref(), settings.virtual_hosted), (Some("http://127.0.0.1:9000"), false));
        let aws = config(&[("WARD_STORAGE", "s3"), ("WARD_S3_BUCKET", "ward")]).unwrap().s3.unwrap();
        assert!(aws.virtual_hosted && aws.endpoint.is_none());
        for bad in [
            vec![("WARD_STORAGE", "s3"), ("WARD_S3_BUCKET", "ward"), ("WARD_S3_ENDPOINT", "ftp://x")],
            vec![("WARD_STORAGE", "s3"), ("WARD_S3_BUCKET", "ward"), ("WARD_S3_ACCESS_KEY_ID", "only-half")],
            vec![("WARD_STORAGE", "s3"), ("WARD_S3_BUCKET", "ward"), ("WARD_S3_PREFIX", "no-slash")],
            vec![("WARD_STORAGE", "ftp")],
        ] {
            assert!(config(&bad).is_err(), "{bad:?}");
        }
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
    fn the_jwks_url_is_explicit_or_derived_from_the_project() {
        assert_eq!(config(&[]).unwrap().jwks_url(), None);
        let derived = config(&[("SUPABASE_URL", "https://p.supabase.co/")]).unwrap();
        assert_eq!(derived.jwks_url().as_deref(), Some("https://p.supabase.co/auth/v1/.well-known/jwks.json"));
        let explicit =
            config(&[("SUPABASE_URL", "https://p.supabase.co"), ("SUPABASE_JWKS_URL", "http://127.0.0.1:9/keys")])
                .unwrap();
        assert_eq!(explicit.jwks_url().as_deref(), Some("http://127.0.0.1:9/keys"));
        let err = config(&[("SUPABASE_JWKS_URL", "keys.json")]).unwrap_err().to_string();
        assert!(err.contains("SUPABASE_JWKS_URL"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let c = config(&[("SUPABASE_JWT_SECRET", "hunter2"), ("WARD_METRICS_TOKEN", "metrics-hunter3")]).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("hunter3"), "{printed}");
    }

    #[test]
    fn the_playground_demo_is_for_the_embedded_default_only() {
        let c = config(&[]).unwrap();
        assert!(c.playground && c.playground_demo && c.introspection && c.metrics);
        let c = config(&[("DATABASE_URL", "postgres://authenticator@db/ward")]).unwrap();
        assert!(c.playground && !c.playground_demo);
        let c =
            config(&[("DATABASE_URL", "postgres://authenticator@db/ward"), ("WARD_PLAYGROUND_DEMO", "on")]).unwrap();
        assert!(c.playground_demo);
        let c = config(&[("WARD_DEMO", "off")]).unwrap();
        assert!(!c.playground_demo);
        let c = config(&[("WARD_PLAYGROUND", "off"), ("WARD_INTROSPECTION", "false")]).unwrap();
        assert!(!c.playground && !c.introspection);
        let err = config(&[("WARD_PLAYGROUND", "maybe")]).unwrap_err().to_string();
        assert!(err.contains("WARD_PLAYGROUND"), "{err}");
    }

    #[test]
    fn production_settings_parse() {
        let c = config(&[]).unwrap();
        assert_eq!(c.cors_origins, CorsOrigins::None);
        assert_eq!(c.max_body_bytes, 1024 * 1024);
        assert_eq!(c.shutdown_timeout, std::time::Duration::from_secs(10));
        let c = config(&[
            ("WARD_CORS_ORIGINS", "https://app.example/, http://localhost:5173"),
            ("WARD_MAX_BODY_BYTES", "65536"),
            ("WARD_SHUTDOWN_TIMEOUT", "3"),
        ])
        .unwrap();
        assert_eq!(
            c.cors_origins,
            CorsOrigins::List(vec!["https://app.example".into(), "http://localhost:5173".into()])
        );
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.shutdown_timeout, std::time::Duration::from_secs(3));
        assert_eq!(config(&[("WARD_CORS_ORIGINS", "*")]).unwrap().cors_origins, CorsOrigins::Any);
        for (name, bad) in [
            ("WARD_CORS_ORIGINS", "app.example"),
            ("WARD_CORS_ORIGINS", "https://app.example/path"),
            ("WARD_MAX_BODY_BYTES", "12"),
            ("WARD_SHUTDOWN_TIMEOUT", "0"),
        ] {
            let err = config(&[(name, bad)]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
