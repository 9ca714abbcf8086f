//! The `Profile`, `Municipality` and `Role` types, the profile connection and inputs.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::enums::AppRole;
use entity::{municipality, profile};

use super::context::{Scope, run};
use super::photo::PhotoConnection;
use super::ticket::PageInfo;
use crate::domain::photos::{self, PhotoCursor};
use crate::domain::profiles::{self, ProfileCursor, ProfilePage};
use crate::error::ApiError;

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
        let id = self.0.municipality_id;
        if let Some(found) = self.1.ahead().and_then(|a| a.municipalities.as_ref()).and_then(|m| m.get(&id)) {
            return Ok(found.clone().map(Municipality));
        }
        let loaders = &self.1.data(ctx)?.loaders;
        Ok(loaders.municipality().load_one(id).await?.map(Municipality))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_utc()
    }

    /// The person's photos, newest first: only ever visible to the person themselves (empty
    /// for anyone else).
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn photos(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PhotoConnection> {
        let n = crate::domain::paging::size(first, "first").map_err(ApiError::from)?;
        let cursor = after.as_deref().map(PhotoCursor::decode).transpose().map_err(ApiError::from)?;
        let profile_id = self.0.id;
        let page = run(ctx, async |tx| photos::list(tx, profile_id, n, cursor).await).await?;
        Ok(PhotoConnection { page, profile_id, after: cursor.is_some() })
    }
}

/// A page of profiles, Relay style.
pub struct ProfileConnection {
    pub page: ProfilePage,
    pub role: Option<AppRole>,
    pub after: bool,
}

/// One profile of a page, with its cursor.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ProfileEdge {
    pub cursor: String,
    #[graphql(skip)]
    pub profile: profile::Model,
}

#[ComplexObject]
impl ProfileEdge {
    async fn node(&self) -> Profile {
        Profile(self.profile.clone(), Scope::default())
    }
}

#[Object]
impl ProfileConnection {
    async fn edges(&self) -> Vec<ProfileEdge> {
        self.page
            .profiles
            .iter()
            .map(|p| ProfileEdge { cursor: ProfileCursor::of(p).encode(), profile: p.clone() })
            .collect()
    }

    async fn nodes(&self) -> Vec<Profile> {
        self.page.profiles.iter().cloned().map(|p| Profile(p, Scope::default())).collect()
    }

    async fn page_info(&self) -> PageInfo {
        let cursor = |p: &profile::Model| ProfileCursor::of(p).encode();
        PageInfo {
            has_next_page: self.page.has_next_page,
            has_previous_page: self.after,
            start_cursor: self.page.profiles.first().map(cursor),
            end_cursor: self.page.profiles.last().map(cursor),
        }
    }

    /// How many profiles the caller may see (of the role asked for), on all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let n = run(ctx, async |tx| profiles::count(tx, self.role).await).await?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// Changes to your own profile; omitted fields stay as they are. Role and municipality are
/// not yours to change.
#[derive(InputObject)]
pub struct UpdateMyProfileInput {
    pub display_name: Option<String>,
    /// In international form (e.g. `+27821234567`), or null to remove it.
    pub phone: MaybeUndefined<String>,
}

/// A new profile for a signed-in person who has none.
#[derive(InputObject)]
pub struct RegisterProfileInput {
    pub display_name: String,
    /// The municipality to belong to, e.g. `demo`.
    pub municipality_slug: String,
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
