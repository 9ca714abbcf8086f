//! The queries and mutations about people: `me`, `profile`, `profiles`, editing and
//! registering profiles, roles, and photo uploads. Resolvers parse input at the edge and call
//! one domain function each.

use async_graphql::{Context, ID, MaybeUndefined, Object};

use super::context::{
    Prefetched, Scope, after_commit, aside_pool, caller, every, outside, parse_id, run, run_mutation, storage,
    storage_handle,
};
use super::photo::{Photo, PhotoUploadInput};
use super::profile::{Profile, ProfileConnection, RegisterProfileInput, Role, UpdateMyProfileInput};
use super::uploads::UploadIntent;
use crate::domain::municipalities;
use crate::domain::photos::{self, NewPhotoUpload};
use crate::domain::profiles::{self, ProfileChanges, ProfileCursor};
use crate::domain::values::{DisplayName, Phone, Slug};
use crate::error::ApiError;

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
        Ok(Some(Profile(me, scope)))
    }

    /// A profile the caller may see (their own; managers, SAPS liaisons and admins: their
    /// municipality's); null otherwise.
    async fn profile(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Profile>> {
        let id = parse_id(&id, "id")?;
        Ok(run(ctx, async |tx| profiles::get(tx, id).await).await?.map(|p| Profile(p, Scope::default())))
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
    async fn update_my_profile(&self, ctx: &Context<'_>, input: UpdateMyProfileInput) -> async_graphql::Result<Profile> {
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
        Ok(Profile(updated, Scope::default()))
    }

    /// Gives a person of your municipality another role (admins only; not your own).
    async fn set_profile_role(&self, ctx: &Context<'_>, profile_id: ID, role: Role) -> async_graphql::Result<Profile> {
        let profile_id = parse_id(&profile_id, "profileId")?;
        let caller = caller(ctx)?;
        let updated = run_mutation(ctx, async |tx| profiles::set_role(tx, caller, profile_id, role.into()).await).await?;
        Ok(Profile(updated, Scope::default()))
    }

    /// Creates your profile as a citizen of a municipality, when you have none.
    async fn register_profile(&self, ctx: &Context<'_>, input: RegisterProfileInput) -> async_graphql::Result<Profile> {
        let name = DisplayName::parse(&input.display_name).map_err(ApiError::from)?;
        let slug = Slug::parse(&input.municipality_slug).map_err(ApiError::from)?;
        let caller = caller(ctx)?;
        let created = run_mutation(ctx, async |tx| profiles::register(tx, caller, name, &slug).await).await?;
        Ok(Profile(created, Scope::default()))
    }

    /// Starts a photo upload: PUT the file to the intent's `uploadUrl`, then
    /// `confirmPhotoUpload`.
    async fn create_photo_upload(&self, ctx: &Context<'_>, input: PhotoUploadInput) -> async_graphql::Result<UploadIntent> {
        let upload = NewPhotoUpload::parse(&input.filename, &input.content_type, input.size_bytes.into())
            .map_err(ApiError::from)?;
        let mut created = create_photo_uploads(ctx, vec![upload]).await?;
        Ok(created.remove(0))
    }

    /// Starts several photo uploads at once (at most 10): all, or none on any bad input.
    async fn create_photo_uploads(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<PhotoUploadInput>,
    ) -> async_graphql::Result<Vec<UploadIntent>> {
        let uploads = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                NewPhotoUpload::parse(&input.filename, &input.content_type, input.size_bytes.into()).map_err(|e| {
                    let mut error = ApiError::from(e);
                    error.message = format!("inputs[{i}]: {}", error.message);
                    error
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(create_photo_uploads(ctx, uploads).await?)
    }

    /// Turns an uploaded file into a photo (checked, measured, with a thumbnail).
    async fn confirm_photo_upload(&self, ctx: &Context<'_>, intent_id: ID) -> async_graphql::Result<Photo> {
        let intent_id = parse_id(&intent_id, "intentId")?;
        let (caller, storage) = (caller(ctx)?, storage(ctx)?);
        let pending = run(ctx, async |tx| photos::confirmable(tx, caller, intent_id).await).await?;
        let checked = outside(ctx, photos::check_and_thumbnail(storage, &pending)).await?.map_err(ApiError::from)?;
        let photo = run_mutation(ctx, async |tx| photos::record_photo(tx, &pending, checked).await).await?;
        Ok(Photo(photo))
    }

    /// Deletes one of your photos and its thumbnail; returns its id. The files go once the
    /// deletion has committed.
    async fn delete_photo(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let id = parse_id(&id, "id")?;
        let caller = caller(ctx)?;
        let deleted = run_mutation(ctx, async |tx| photos::delete(tx, caller, id).await).await?;
        let storage = storage_handle(ctx)?;
        let photo_id = deleted.id;
        after_commit(ctx, async move { photos::remove_objects(storage.as_ref(), &deleted).await })?;
        Ok(ID(photo_id.to_string()))
    }
}

/// Plans the uploads (reads), signs their URLs outside the transaction, and records the
/// intents.
async fn create_photo_uploads(ctx: &Context<'_>, uploads: Vec<NewPhotoUpload>) -> Result<Vec<UploadIntent>, ApiError> {
    let (caller, storage) = (caller(ctx)?, storage(ctx)?);
    let me = run(ctx, async |tx| photos::uploader(tx, caller).await).await?;
    let planned = photos::plan(&me, uploads)?;
    let signed = outside(ctx, photos::sign(storage, &planned)).await??;
    let created = run_mutation(ctx, async |tx| photos::record_intents(tx, &me, planned, signed).await).await?;
    Ok(created.into_iter().map(|c| UploadIntent::new(c.intent, c.signed)).collect())
}
