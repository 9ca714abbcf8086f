//! Startup: preparing the database (the embedded cluster or `DATABASE_URL`), building the one
//! application state, binding the listener, and serving until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, TokenIssuer};
use crate::config::{Config, Secret};
use crate::db::embedded::{EmbeddedCluster, EmbeddedOptions};
use crate::graphql::{Services, schema_builder};
use crate::http::AppState;
use crate::local_secrets::LocalSecrets;
use crate::metrics::{MeteredStore, Metrics};
use crate::realtime::Realtime;
use crate::{db, demo};

/// Where the database is and how to reach it, once prepared.
pub struct PreparedDatabase {
    /// Connection for requests (as `authenticator`).
    pub request_url: Secret,
    /// Connection as the schema owner, when known.
    pub owner_url: Option<Secret>,
    /// The embedded cluster, when ward runs one; stopped when dropped.
    pub cluster: Option<EmbeddedCluster>,
}

/// The name of the embedded cluster's database.
const EMBEDDED_DATABASE: &str = "ward";

/// The secret tokens are verified with: `SUPABASE_JWT_SECRET`, or the local one.
pub fn jwt_secret(config: &Config) -> anyhow::Result<Secret> {
    match &config.supabase_jwt_secret {
        Some(secret) => Ok(secret.clone()),
        None => Ok(LocalSecrets::load_or_create(&config.data_dir)
            .with_context(|| format!("reading the local secrets in {}", config.data_dir.display()))?
            .jwt_secret),
    }
}

/// Starts the embedded cluster (when `DATABASE_URL` is unset), migrates, and seeds the demo.
pub async fn prepare_database(config: &Config) -> anyhow::Result<PreparedDatabase> {
    let prepared = match &config.database_url {
        Some(url) => {
            PreparedDatabase { request_url: url.clone(), owner_url: config.database_owner_url.clone(), cluster: None }
        }
        None => start_embedded(config).await?,
    };
    if let Some(owner_url) = &prepared.owner_url {
        db::migrate(owner_url).await.context("running migrations")?;
        if config.demo {
            let owner = db::connect(owner_url, 1).await?;
            demo::seed(&owner).await.context("seeding the demo")?;
            owner.close().await?;
        }
    }
    Ok(prepared)
}

async fn start_embedded(config: &Config) -> anyhow::Result<PreparedDatabase> {
    let secrets = LocalSecrets::load_or_create(&config.data_dir)
        .with_context(|| format!("reading the local secrets in {}", config.data_dir.display()))?;
    let options = EmbeddedOptions {
        data_dir: config.data_dir.join("pg"),
        bin_dir: config.pg_bin_dir.clone(),
        superuser_password: secrets.postgres_password.expose().to_string(),
        ephemeral: false,
        settings: Vec::new(),
    };
    let started = std::time::Instant::now();
    let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&options))
        .await
        .context("starting the embedded PostgreSQL cluster")??;
    tracing::info!(
        port = cluster.port(),
        data_dir = %cluster.data_dir().display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "embedded PostgreSQL started"
    );
    let password = secrets.postgres_password.expose();
    let admin = db::connect(&Secret::new(cluster.url("postgres", password, "postgres")), 1).await?;
    create_database_if_missing(&admin, EMBEDDED_DATABASE).await?;
    admin.close().await?;
    let owner_url = Secret::new(cluster.url("postgres", password, EMBEDDED_DATABASE));
    // The role exists once the first migration has run; prepare_database runs the rest.
    db::migrate(&owner_url).await.context("running migrations")?;
    set_authenticator_password(&owner_url, &secrets.authenticator_password).await?;
    let request_url =
        Secret::new(cluster.url("authenticator", secrets.authenticator_password.expose(), EMBEDDED_DATABASE));
    Ok(PreparedDatabase { request_url, owner_url: Some(owner_url), cluster: Some(cluster) })
}

/// Creates `name` unless it exists (used by the embedded default and the test harness).
pub async fn create_database_if_missing(admin: &DatabaseConnection, name: &str) -> anyhow::Result<()> {
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select 1 as one from pg_database where datname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    if !exists {
        admin.execute_unprepared(&format!("create database \"{}\"", name.replace('"', "\"\""))).await?;
    }
    Ok(())
}

/// Gives the `authenticator` login role the embedded default's password.
pub async fn set_authenticator_password(owner_url: &Secret, password: &Secret) -> anyhow::Result<()> {
    let owner = db::connect(owner_url, 1).await?;
    owner
        .execute_unprepared(&format!(
            "alter role authenticator with login password '{}'",
            password.expose().replace('\'', "''")
        ))
        .await?;
    owner.close().await?;
    Ok(())
}

/// A built application: listening, not yet serving.
pub struct App {
    listener: TcpListener,
    state: AppState,
    database: PreparedDatabase,
}

impl App {
    /// Prepares the database and binds `config.bind` (port 0 picks a free port).
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        let database = prepare_database(config).await?;
        Self::build_on(config, database).await
    }

    /// Builds the application on an already prepared database.
    pub async fn build_on(config: &Config, database: PreparedDatabase) -> anyhow::Result<App> {
        config.check_pooler()?;
        let pool = db::connect_pool(&database.request_url, config.db_pool_size, config.db_acquire_timeout)
            .await
            .context("connecting to the database")?;
        db::check_request_role(&pool).await?;
        // See `graphql::Services::aside`: two connections, the first opened now.
        let aside = db::connect_pool(&database.request_url, 2, config.db_acquire_timeout)
            .await
            .context("connecting to the database")?;
        let secret = jwt_secret(config)?;
        let listener = TcpListener::bind(config.bind).await.with_context(|| format!("listening on {}", config.bind))?;
        // Signed URLs must name the address clients reach: WARD_PUBLIC_URL, or the bound one
        // (the real port when WARD_BIND asked for port 0).
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", listener.local_addr().context("reading the bound address")?),
        };
        let (storage, local_storage) = crate::storage::build(config, &database.request_url, &secret, &public_url)
            .await
            .context("setting up object storage")?;
        let shutdown = CancellationToken::new();
        let listen_url = config.database_listen_url.clone().unwrap_or_else(|| database.request_url.clone());
        let realtime = Realtime::start(pool.clone(), listen_url, config.subscriber_buffer, shutdown.clone());
        let metrics = Metrics::new(realtime.clone(), pool.clone(), config.db_pool_size, config.metrics_token.as_ref());
        let storage = MeteredStore::wrap(storage, metrics.clone());
        let services = Services {
            realtime: realtime.clone(),
            pool: pool.clone(),
            aside: crate::graphql::AsidePool(aside),
            storage: storage.clone(),
            fetcher: crate::fetch::Fetcher {
                allow_private: config.ingest_allow_private,
                timeout: Duration::from_secs(config.ingest_timeout_seconds),
                max_bytes: crate::domain::uploads::MAX_INGEST_BYTES,
            },
        };
        // Two schemas over the same types and services: HTTP requests are prepared, coded and
        // counted around execution (`graphql::prepare`); websocket operations, whose
        // execution async-graphql's protocol drives, through extensions.
        let http_schema = schema_builder(Some(services.clone()));
        // One cache of persisted queries and parsed documents for HTTP and websockets.
        let preparer = crate::graphql::prepare::Preparer::default();
        let ws_schema = schema_builder(Some(services))
            .data(preparer.clone())
            .extension(crate::graphql::WardExtension)
            .extension(metrics.graphql_extension());
        let (http_schema, ws_schema) = if config.introspection {
            (http_schema, ws_schema)
        } else {
            (http_schema.disable_introspection(), ws_schema.disable_introspection())
        };
        let http_schema = http_schema.finish();
        let state = AppState {
            multiplex: Arc::new(crate::graphql::multiplex::Multiplexer::new(http_schema.clone(), realtime.clone())),
            schema: http_schema,
            ws_schema: ws_schema.finish(),
            preparer,
            db: pool,
            realtime,
            shutdown,
            auth: Arc::new(
                Authenticator::new(&secret)
                    .with_jwks(config.jwks_url().as_deref())
                    .with_relay_secret(config.relay_webhook_secret.as_ref()),
            ),
            storage,
            local_storage,
            playground: crate::http::playground::Playground::new(config, &secret),
            config: Arc::new(config.clone()),
            metrics,
        };
        Ok(App { listener, state, database })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains requests (bounded) and stops the
    /// embedded cluster.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let App { listener, state, database } = self;
        let pool = state.db.clone();
        let stopping = state.shutdown.clone();
        // How long in-flight HTTP requests get to finish after a shutdown signal.
        let drain_timeout = state.config.shutdown_timeout;
        let sweeper = (state.config.sla_sweep_seconds > 0).then(|| {
            let period = Duration::from_secs(state.config.sla_sweep_seconds);
            tokio::spawn(crate::jobs::sla_sweeper(pool.clone(), period, stopping.clone()))
        });
        let upload_sweeper = (state.config.upload_sweep_seconds > 0).then(|| {
            let period = Duration::from_secs(state.config.upload_sweep_seconds);
            tokio::spawn(crate::jobs::upload_sweeper(pool.clone(), state.storage.clone(), period, stopping.clone()))
        });
        let server = axum::serve(listener, crate::http::router(state))
            .with_graceful_shutdown(stopping.clone().cancelled_owned());
        let signal = stopping.clone();
        let drain = async move {
            shutdown.await;
            tracing::info!("shutting down");
            signal.cancel();
            tokio::time::sleep(drain_timeout).await;
        };
        tokio::select! {
            result = server => result.context("serving HTTP")?,
            () = drain => tracing::warn!(timeout_s = drain_timeout.as_secs(), "requests still running at the drain deadline"),
        }
        stopping.cancel();
        for job in [sweeper, upload_sweeper].into_iter().flatten() {
            let _ = job.await;
        }
        let _ = pool.close().await;
        if let Some(cluster) = database.cluster {
            tokio::task::spawn_blocking(move || cluster.stop()).await??;
            tracing::info!("embedded PostgreSQL stopped");
        }
        Ok(())
    }
}

/// The demo people's bearer tokens, for the startup banner.
pub fn demo_tokens(config: &Config, ttl_seconds: i64) -> anyhow::Result<Vec<(&'static str, String)>> {
    let issuer = TokenIssuer::new(&jwt_secret(config)?);
    demo::PEOPLE
        .iter()
        .map(|p| {
            let token = issuer.user_token(p.auth_user_id, Some(p.email), Some(p.phone), ttl_seconds)?;
            Ok((p.email, token))
        })
        .collect()
}
