//! People in the schema: the `Profile`, `Municipality` and `Role` types, the profile
//! connection and inputs, and the queries and mutations about people (`me`, `profile`,
//! `profiles`, registering, editing, roles). Resolvers parse input at the edge and call one
//! domain function each.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::enums::AppRole;
use entity::{municipality, profile};

use super::connection::PageInfo;
use super::context::{Prefetched, Scope, aside_pool, caller, every, parse_id, run, run_mutation};
use super::photo::PhotoConnection;
use crate::domain::municipalities;
use crate::domain::photos::{self, PhotoCursor};
use crate::domain::profiles::{self, ProfileChanges, ProfileCursor, ProfilePage};
use crate::domain::values::{DisplayName, Phone, Slug};
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
pub struct Profile {
    pub row: profile::Model,
    /// Where its nested fields are read: the request's session, or a subscriber's own.
    pub scope: Scope,
}

impl Profile {
    pub fn new(row: profile::Model, scope: Scope) -> Self {
        Profile { row, scope }
    }
}

#[Object]
impl Profile {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn display_name(&self) -> &str {
        &self.row.display_name
    }

    async fn email(&self) -> Option<&str> {
        self.row.email.as_deref()
    }

    /// In E.164 form, e.g. `+27821234567`.
    async fn phone(&self) -> Option<&str> {
        self.row.phone.as_deref()
    }

    async fn role(&self) -> Role {
        self.row.role.into()
    }

    /// The municipality the person belongs to.
    async fn municipality(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Municipality>> {
        let id = self.row.municipality_id;
        if let Some(found) = self.scope.ahead().and_then(|a| a.municipalities.as_ref()).and_then(|m| m.get(&id)) {
            return Ok(found.clone().map(Municipality::new));
        }
        let loaders = &self.scope.data(ctx)?.loaders;
        Ok(loaders.municipality().load_one(id).await?.map(Municipality::new))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at.to_utc()
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
        let profile_id = self.row.id;
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
        Profile::new(self.profile.clone(), Scope::default())
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
        self.page.profiles.iter().cloned().map(|p| Profile::new(p, Scope::default())).collect()
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
pub struct Municipality {
    pub row: municipality::Model,
}

impl Municipality {
    pub fn new(row: municipality::Model) -> Self {
        Municipality { row }
    }
}

#[Object]
impl Municipality {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.row.name
    }

    /// Short lowercase name, also the prefix of tracking numbers (e.g. `demo`).
    async fn slug(&self) -> &str {
        &self.row.slug
    }
}

/// Queries about people.
#[derive(Default)]
pub struct ProfileQuery;

#[Object]
impl ProfileQuery {
    /// The signed-in person's profile: null for anonymous callers and for people who have not
    /// registered yet. On a person's first sign-in it is linked to the profile made for their
    /// verified phone number or email, if there is one.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Profile>> {
        let caller = caller(ctx)?;
        let pool = aside_pool(ctx);
        let Some(me) = run(ctx, async |tx| profiles::me_linking(tx, pool, caller).await).await? else {
            return Ok(None);
        };
        // Asked for nearly every time (a client's first question), so loaded here rather than
        // through the municipality loader's batch round.
        let scope = if ctx.look_ahead().field("municipality").exists() {
            let ids = [me.municipality_id];
            let found = run(ctx, async |tx| municipalities::by_ids(tx, &ids).await).await?;
            Scope::prefetched(Prefetched { municipalities: Some(every(&ids, found)), ..Default::default() })
        } else {
            Scope::default()
        };
        Ok(Some(Profile::new(me, scope)))
    }

    /// A profile the caller may see (their own; managers, SAPS liaisons and admins: their
    /// municipality's); null otherwise.
    async fn profile(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Profile>> {
        let id = parse_id(&id, "id")?;
        Ok(run(ctx, async |tx| profiles::get(tx, id).await).await?.map(|p| Profile::new(p, Scope::default())))
    }

    /// The profiles the caller may see, oldest first, a page at a time (at most 100; 20 by
    /// default), optionally of one role.
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn profiles(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        role: Option<Role>,
    ) -> async_graphql::Result<ProfileConnection> {
        let n = crate::domain::paging::size(first, "first").map_err(ApiError::from)?;
        let cursor = after.as_deref().map(ProfileCursor::decode).transpose().map_err(ApiError::from)?;
        let role = role.map(Into::into);
        let page = run(ctx, async |tx| profiles::list(tx, role, n, cursor).await).await?;
        Ok(ProfileConnection { page, role, after: cursor.is_some() })
    }
}

/// Mutations of people's profiles and photos.
#[derive(Default)]
pub struct ProfileMutation;

#[Object]
impl ProfileMutation {
    /// Changes your display name or phone number.
    async fn update_my_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateMyProfileInput,
    ) -> async_graphql::Result<Profile> {
        let changes = ProfileChanges {
            display_name: input.display_name.as_deref().map(DisplayName::parse).transpose().map_err(ApiError::from)?,
            phone: match input.phone {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(phone) => Some(Some(Phone::parse(&phone).map_err(ApiError::from)?)),
            },
        };
        let caller = caller(ctx)?;
        let updated = run_mutation(ctx, async |tx| profiles::update_mine(tx, caller, changes).await).await?;
        Ok(Profile::new(updated, Scope::default()))
    }

    /// Gives a person of your municipality another role (admins only; not your own).
    async fn set_profile_role(&self, ctx: &Context<'_>, profile_id: ID, role: Role) -> async_graphql::Result<Profile> {
        let profile_id = parse_id(&profile_id, "profileId")?;
        let caller = caller(ctx)?;
        let updated =
            run_mutation(ctx, async |tx| profiles::set_role(tx, caller, profile_id, role.into()).await).await?;
        Ok(Profile::new(updated, Scope::default()))
    }

    /// Creates your profile as a citizen of a municipality, when you have none.
    async fn register_profile(&self, ctx: &Context<'_>, input: RegisterProfileInput) -> async_graphql::Result<Profile> {
        let name = DisplayName::parse(&input.display_name).map_err(ApiError::from)?;
        let slug = Slug::parse(&input.municipality_slug).map_err(ApiError::from)?;
        let caller = caller(ctx)?;
        let created = run_mutation(ctx, async |tx| profiles::register(tx, caller, name, &slug).await).await?;
        Ok(Profile::new(created, Scope::default()))
    }
}
