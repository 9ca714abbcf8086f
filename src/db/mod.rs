//! The database: the request pool (as `authenticator`), the RLS session every request runs in,
//! migrations (as the owner), and the embedded cluster of the default setup.

pub mod embedded;
mod error;
mod session;

pub use error::{DbFailure, classify};
pub use session::{RlsSession, SessionError, begin, end};

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement};
use migration::MigratorTrait;

use crate::config::Secret;

/// Why ward will not serve on a database.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "the request connection's role `{role}` is a superuser or has BYPASSRLS, so row-level \
         security would not apply to any request: point DATABASE_URL at `authenticator` (or \
         another role without those rights) and use DATABASE_OWNER_URL for migrations"
    )]
    RoleBypassesRls { role: String },
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// Opens a pool for startup and maintenance work (migrations, the demo), whose callers can
/// wait: a checkout may take up to ten seconds.
pub async fn connect(url: &Secret, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    connect_pool(url, max_connections, Duration::from_secs(10)).await
}

/// Opens a pool whose checkouts give up after `acquire_timeout`: a request that waits longer
/// is answered `UNAVAILABLE` ([`DbFailure::Unavailable`]) instead of hanging.
pub async fn connect_pool(
    url: &Secret,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.expose().to_string());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(acquire_timeout)
        // sqlx pings a connection on every checkout by default: a round trip per request on
        // top of the ones it makes (and a second one comes on release). Ping only connections
        // that sat idle long enough for a proxy or firewall to have dropped them.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Refuses a request pool whose role ignores row-level security.
pub async fn check_request_role(db: &DatabaseConnection) -> Result<(), StartupError> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select current_user::text as role, rolsuper or rolbypassrls as bypasses \
             from pg_roles where rolname = current_user",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("the current role is not in pg_roles".into()))?;
    let role: String = row.try_get("", "role")?;
    let bypasses: bool = row.try_get("", "bypasses")?;
    if bypasses {
        return Err(StartupError::RoleBypassesRls { role });
    }
    Ok(())
}

/// Applies every pending migration, connecting as the schema owner.
pub async fn migrate(owner_url: &Secret) -> Result<(), DbErr> {
    let owner = connect(owner_url, 1).await?;
    migration::Migrator::up(&owner, None).await?;
    owner.close().await
}
