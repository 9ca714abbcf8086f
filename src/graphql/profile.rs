//! The `Profile`, `Municipality` and `Role` types.

use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};
use entity::enums::AppRole;
use entity::{municipality, profile};

use super::context::Scope;

/// A person's role in their municipality.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Citizen,
    FieldWorker,
    Manager,
    /// A police (SAPS) liaison: reads and manages gender-based-violence cases.
    SapsLiaison,
    Admin,
}

impl From<AppRole> for Role {
    fn from(role: AppRole) -> Self {
        match role {
            AppRole::Citizen => Role::Citizen,
            AppRole::FieldWorker => Role::FieldWorker,
            AppRole::Manager => Role::Manager,
            AppRole::SapsLiaison => Role::SapsLiaison,
            AppRole::Admin => Role::Admin,
        }
    }
}

impl From<Role> for AppRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Citizen => AppRole::Citizen,
            Role::FieldWorker => AppRole::FieldWorker,
            Role::Manager => AppRole::Manager,
            Role::SapsLiaison => AppRole::SapsLiaison,
            Role::Admin => AppRole::Admin,
        }
    }
}

/// A person.
pub struct Profile(pub profile::Model, pub Scope);

#[Object]
impl Profile {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn display_name(&self) -> &str {
        &self.0.display_name
    }

    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }

    /// In E.164 form, e.g. `+27821234567`.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }

    async fn role(&self) -> Role {
        self.0.role.into()
    }

    /// The municipality the person belongs to.
    async fn municipality(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Municipality>> {
        let loaders = &self.1.data(ctx)?.loaders;
        Ok(loaders.municipality.load_one(self.0.municipality_id).await?.map(Municipality))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_utc()
    }
}

/// A municipality: the tenant everything else belongs to.
pub struct Municipality(pub municipality::Model);

#[Object]
impl Municipality {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Short lowercase name, also the prefix of tracking numbers (e.g. `demo`).
    async fn slug(&self) -> &str {
        &self.0.slug
    }
}
