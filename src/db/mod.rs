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

/// Roles that must never be made ward's request role: Supabase's and PostgreSQL's own.
const RESERVED_ROLES: [&str; 6] = ["postgres", "authenticator", "anon", "authenticated", "service_role", "supabase_admin"];

/// Why a request role could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RequestRoleError {
    #[error("`{0}` is not a role name ward creates: use lower-case letters, digits and `_`, at most 63, starting with a letter")]
    BadName(String),
    #[error("`{0}` is reserved (Supabase's or PostgreSQL's own role): choose a name of your own, e.g. `ward_requests`")]
    Reserved(String),
    #[error("the request role's password must be at least 16 characters")]
    WeakPassword,
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// Creates (or updates) a login role for ward's requests, connecting as the owner: LOGIN,
/// NOINHERIT (it holds no rights of its own until a request switches role), member of `anon`,
/// `authenticated` and `service_role` (so requests can `set role` to them), with `password`
/// and Supabase's `authenticator` statement timeout (8 s). On a hosted Supabase project this
/// is what `DATABASE_URL` connects as: `authenticator` is reserved there and its password is
/// Supabase's.
pub async fn ensure_request_role(owner_url: &Secret, name: &str, password: &Secret) -> Result<(), RequestRoleError> {
    let well_formed = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(RequestRoleError::BadName(name.chars().take(70).collect()));
    }
    if RESERVED_ROLES.contains(&name) || name.starts_with("pg_") || name.starts_with("supabase") {
        return Err(RequestRoleError::Reserved(name.to_string()));
    }
    if password.expose().chars().count() < 16 {
        return Err(RequestRoleError::WeakPassword);
    }
    let owner = connect(owner_url, 1).await?;
    let exists = owner
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select 1 as one from pg_roles where rolname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    // The name is checked above (no quoting needed); the password is a quoted literal.
    let password = format!("'{}'", password.expose().replace('\'', "''"));
    let verb = if exists { "alter" } else { "create" };
    owner
        .execute_unprepared(&format!(
            "{verb} role {name} login noinherit nosuperuser nobypassrls password {password}; \
             grant anon, authenticated, service_role to {name}; \
             alter role {name} set statement_timeout = '8s'"
        ))
        .await?;
    owner.close().await?;
    Ok(())
}

/// Applies every pending migration, connecting as the schema owner.
pub async fn migrate(owner_url: &Secret) -> Result<(), DbErr> {
    let owner = connect(owner_url, 1).await?;
    migration::Migrator::up(&owner, None).await?;
    owner.close().await
}
