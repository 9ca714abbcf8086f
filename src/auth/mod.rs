//! Who is calling: bearer tokens and relay secrets turned into a [`Caller`], the only identity
//! the rest of ward knows. A bad credential is an error, never a quiet downgrade to anonymous.

mod error;
mod jwks;
mod jwt;
mod shared_secret;

pub use error::AuthError;
pub use jwks::{MAX_AGE as JWKS_MAX_AGE, MIN_REFRESH_INTERVAL as JWKS_MIN_REFRESH_INTERVAL};
pub use jwt::{Authenticator, TokenIssuer};
pub use shared_secret::SharedSecret;

use serde_json::{Value, json};
use uuid::Uuid;

/// The verified identity of a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No credentials, or Supabase's anon key: the `anon` database role.
    Anonymous,
    /// A signed-in person: the `authenticated` database role.
    User(UserClaims),
    /// The backend relay or a service-role key: the `service_role` database role (bypasses
    /// row-level security; used only for ingest and notices).
    Service,
}

/// The verified claims of a signed-in person's token.
#[derive(Debug, Clone)]
pub struct UserClaims {
    /// The auth provider's user id (`sub`).
    pub sub: Uuid,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Every claim as the token carried it, handed to PostgreSQL as `request.jwt.claims`.
    pub raw: Value,
}

impl Caller {
    /// The database role a request of this caller runs as.
    pub fn db_role(&self) -> &'static str {
        match self {
            Caller::Anonymous => "anon",
            Caller::User(_) => "authenticated",
            Caller::Service => "service_role",
        }
    }

    /// The claims PostgreSQL sees through `auth.jwt()`, `auth.uid()` and `auth.role()`.
    pub fn claims_json(&self) -> String {
        match self {
            Caller::User(user) => user.raw.to_string(),
            other => json!({ "role": other.db_role() }).to_string(),
        }
    }

    /// The signed-in person, if any.
    pub fn user(&self) -> Option<&UserClaims> {
        match self {
            Caller::User(user) => Some(user),
            _ => None,
        }
    }
}
