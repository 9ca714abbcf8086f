//! The `ward` command: `serve` (the default), `migrate`, `schema`, `seed`, `token`.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ward::app::{self, App};
use ward::auth::TokenIssuer;
use ward::config::Config;
use ward::{db, demo, graphql, telemetry};

#[derive(Parser)]
#[command(name = "ward", version, about = "GraphQL API server secured by PostgreSQL row-level security")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default). Without DATABASE_URL, on an embedded PostgreSQL cluster.
    Serve,
    /// Apply pending migrations (as DATABASE_OWNER_URL, or on the embedded cluster).
    Migrate {
        /// Also create (or update) this login role for ward's requests, with the password in
        /// WARD_REQUEST_ROLE_PASSWORD: what DATABASE_URL connects as on a hosted Supabase
        /// project, where `authenticator` is reserved.
        #[arg(long, value_name = "NAME")]
        request_role: Option<String>,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Insert the demo municipalities, people and tickets where missing.
    Seed,
    /// Print a bearer token for a demo person.
    Token {
        /// The person's email, e.g. manager@demo.test.
        #[arg(long)]
        email: String,
        /// How long the token stays valid, in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: i64,
    },
}

/// Token lifetime in the startup banner.
const BANNER_TOKEN_TTL: i64 = 7 * 86_400;

/// mimalloc instead of glibc malloc: serving GraphQL is many small, short-lived allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ward: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    telemetry::init(&config.log_filter, config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Token { email, ttl } => {
            let person = demo::person(&email).with_context(|| {
                let known: Vec<&str> = demo::PEOPLE.iter().map(|p| p.email).collect();
                format!("`{email}` is not a demo person; try one of: {}", known.join(", "))
            })?;
            anyhow::ensure!(ttl > 0 && ttl <= 366 * 86_400, "--ttl must be between 1 second and a year");
            let issuer = TokenIssuer::new(&app::jwt_secret(&config)?);
            println!("{}", issuer.user_token(person.auth_user_id, Some(person.email), Some(person.phone), ttl)?);
            Ok(())
        }
        Command::Migrate { request_role } => {
            let password = match &request_role {
                Some(_) => Some(
                    std::env::var("WARD_REQUEST_ROLE_PASSWORD")
                        .map(ward::config::Secret::new)
                        .context("--request-role needs the role's password in WARD_REQUEST_ROLE_PASSWORD")?,
                ),
                None => None,
            };
            let database = with_owner(&config).await?;
            if let Some(owner) = &database.owner_url {
                db::migrate(owner).await?;
                println!("migrations applied");
                if let (Some(name), Some(password)) = (&request_role, &password) {
                    db::ensure_request_role(owner, name, password).await?;
                    println!("request role `{name}` is ready: connect DATABASE_URL as it");
                }
            }
            stop(database).await
        }
        Command::Seed => {
            let database = with_owner(&config).await?;
            let owner_url = database.owner_url.as_ref().context("DATABASE_OWNER_URL is required")?;
            let owner = db::connect(owner_url, 1).await?;
            demo::seed(&owner).await?;
            owner.close().await?;
            println!("demo data seeded");
            stop(database).await
        }
    }
}

/// The database prepared (and, on the embedded default, migrated) with an owner connection.
async fn with_owner(config: &Config) -> anyhow::Result<app::PreparedDatabase> {
    anyhow::ensure!(
        config.embedded() || config.database_owner_url.is_some(),
        "DATABASE_OWNER_URL is required with DATABASE_URL: migrations run as the schema owner"
    );
    let config = Config { demo: false, ..config.clone() };
    app::prepare_database(&config).await
}

async fn stop(database: app::PreparedDatabase) -> anyhow::Result<()> {
    if let Some(cluster) = database.cluster {
        tokio::task::spawn_blocking(move || cluster.stop()).await??;
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(&config).await?;
    let addr = app.local_addr()?;
    println!("\nward is serving GraphQL at http://{addr}/graphql");
    println!("GraphiQL playground:      http://{addr}/");
    if config.embedded() && config.demo {
        println!("\nDemo people (paste one as a request header in GraphiQL):");
        for (email, token) in app::demo_tokens(&config, BANNER_TOKEN_TTL)? {
            println!("  {email:<22} {{\"Authorization\": \"Bearer {token}\"}}");
        }
    }
    println!();
    app.run(shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
