//! The database: the request pool (as `authenticator`), the RLS session every request runs in,
//! migrations (as the owner), and the embedded cluster of the default setup.

pub mod embedded;
mod error;
mod session;
mod tx;

pub use error::{DbFailure, answered, classify};
pub use session::{COMMIT_OUTCOME_UNKNOWN, RlsSession, SessionError};
pub use tx::{Tx, begin, begin_sql, begin_statement, end};

use std::time::Duration;

use migration::MigratorTrait;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement};

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
const RESERVED_ROLES: [&str; 6] =
    ["postgres", "authenticator", "anon", "authenticated", "service_role", "supabase_admin"];

/// The comment ward puts on the request roles it creates (and looks for before altering one).
const REQUEST_ROLE_COMMENT: &str = "ward request role (ward migrate --request-role)";

/// Why a request role could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RequestRoleError {
    #[error(
        "`{0}` is not a role name ward creates: use lower-case letters, digits and `_`, at most 63, starting with a letter"
    )]
    BadName(String),
    #[error("`{0}` is reserved (Supabase's or PostgreSQL's own role): choose a name of your own, e.g. `ward_requests`")]
    Reserved(String),
    #[error("the request role's password must be at least 16 characters")]
    WeakPassword,
    #[error("a role `{0}` exists that ward did not create: choose another name, or drop it first")]
    NotOurs(String),
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
    // Only a role ward made (it carries ward's comment) is ever altered: an existing role of
    // that name that someone else made is refused, never taken over.
    let existing = owner
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select shobj_description(oid, 'pg_authid') as comment from pg_roles where rolname = $1",
            [name.into()],
        ))
        .await?;
    if let Some(row) = &existing {
        let comment: Option<String> = row.try_get("", "comment")?;
        if comment.as_deref() != Some(REQUEST_ROLE_COMMENT) {
            return Err(RequestRoleError::NotOurs(name.to_string()));
        }
    }
    // The statement is built by the server (`%I`, `%L` quote as PostgreSQL itself does); the
    // name is also checked above.
    let verb = if existing.is_some() { "alter" } else { "create" };
    let row = owner
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "select format('{verb} role %I login noinherit nosuperuser nobypassrls password %L', $1::text, $2::text) as ddl"
            ),
            [name.into(), password.expose().into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("format() returned no row".into()))?;
    let ddl: String = row.try_get("", "ddl")?;
    owner.execute_unprepared(&ddl).await?;
    owner
        .execute_unprepared(&format!(
            "grant anon, authenticated, service_role to {name}; \
             alter role {name} set statement_timeout = '8s'; \
             comment on role {name} is '{REQUEST_ROLE_COMMENT}'"
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
