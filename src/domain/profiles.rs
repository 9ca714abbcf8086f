//! People's profiles: who the caller is (linking a first sign-in to the profile the relay
//! created for them), registering, the profiles the caller may see, editing one's own, and
//! admins changing roles. The policies on `profiles` and its guard trigger hold every rule
//! here regardless; the checks below are for clear errors.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::enums::AppRole;
use entity::prelude::*;
use entity::profile;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, Statement,
};
use uuid::Uuid;

use super::DomainError;
use super::values::{DisplayName, Phone, Slug};
use crate::auth::Caller;

/// The caller's own profile; `None` for anonymous and service callers and for people who have
/// no (linked) profile yet.
#[tracing::instrument(skip_all)]
pub async fn me(db: &impl ConnectionTrait, caller: &Caller) -> Result<Option<profile::Model>, DomainError> {
    let Some(user) = caller.user() else { return Ok(None) };
    Ok(Profile::find().filter(profile::Column::AuthUserId.eq(user.sub)).one(db).await?)
}

/// The caller's own profile, linking it first if this is the person's first sign-in and the
/// relay created a profile for their verified phone or email.
///
/// `me` is a query, so the request's transaction is READ ONLY and cannot link. Rather than
/// making every query's transaction writable (or guessing in the HTTP layer which requests
/// might link), the link runs on its own short transaction from `pool` (a small pool of its
/// own, so it never waits for connections that requests hold), as the same caller
/// (role `authenticated`, the same verified claims), calling the SECURITY DEFINER function
/// `app.link_profile()`, which commits before this returns. The request's transaction is READ
/// COMMITTED, so its next statement sees the link. This costs one extra transaction only on a
/// person's first request without a linked profile; later ones find the profile directly.
#[tracing::instrument(skip_all)]
pub async fn me_linking(
    db: &impl ConnectionTrait,
    pool: Option<&DatabaseConnection>,
    caller: &Caller,
) -> Result<Option<profile::Model>, DomainError> {
    if caller.user().is_none() {
        return Ok(None);
    }
    if let Some(found) = me(db, caller).await? {
        return Ok(Some(found));
    }
    let Some(pool) = pool else { return Ok(None) };
    let tx = crate::db::begin(pool, caller, false).await?;
    let linked = link(&tx).await?;
    tx.commit().await?;
    match linked {
        Some(id) => {
            tracing::info!(profile_id = %id, "profile linked to its first sign-in");
            Ok(Profile::find_by_id(id).one(db).await?)
        }
        None => Ok(None),
    }
}

/// Links the caller to their unlinked profile, in `db` (which must be writable); returns the
/// caller's profile id, linked now or before.
pub async fn link(db: &impl ConnectionTrait) -> Result<Option<Uuid>, DomainError> {
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, "select app.link_profile() as id")).await?;
    Ok(match row {
        Some(row) => row.try_get::<Option<Uuid>>("", "id")?,
        None => None,
    })
}

/// Creates a citizen profile for a signed-in person who has none, in the municipality with
/// this slug. The token's email and phone become the profile's.
#[tracing::instrument(skip_all)]
pub async fn register(
    db: &impl ConnectionTrait,
    caller: &Caller,
    display_name: DisplayName,
    municipality: &Slug,
) -> Result<profile::Model, DomainError> {
    let user = match caller {
        Caller::User(user) => user,
        Caller::Anonymous => return Err(DomainError::Unauthenticated("sign in to register a profile".into())),
        Caller::Service => return Err(DomainError::Forbidden("the service role does not register profiles".into())),
    };
    // A profile the relay made for this person is theirs already: link rather than duplicate.
    if link(db).await?.is_some() {
        return Err(DomainError::Conflict("you already have a profile; query `me`".into()));
    }
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select app.municipality_id_by_slug($1) as id",
            [municipality.as_str().into()],
        ))
        .await?;
    let municipality_id = match row {
        Some(row) => row.try_get::<Option<Uuid>>("", "id")?,
        None => None,
    }
    .ok_or_else(|| DomainError::BadInput(format!("there is no municipality `{}`", municipality.as_str())))?;
    // Supabase keeps phone numbers without the `+` that profiles store. The caller cannot see
    // other people's profiles: the unique indexes on phone and email decide about duplicates.
    let phone = user.phone.as_deref().map(|p| if p.starts_with('+') { p.to_string() } else { format!("+{p}") });
    let phone = phone.and_then(|p| Phone::parse(&p).ok()).map(Phone::into_inner);
    let model = profile::ActiveModel {
        id: Set(Uuid::new_v4()),
        auth_user_id: Set(Some(user.sub)),
        municipality_id: Set(municipality_id),
        role: Set(AppRole::Citizen),
        display_name: Set(display_name.into_inner()),
        phone: Set(phone),
        email: Set(user.email.clone().filter(|e| e.len() <= 254 && e.contains('@'))),
        ..Default::default()
    };
    match Profile::insert(model).exec_with_returning(db).await {
        Ok(created) => Ok(created),
        Err(e) => match crate::db::classify(&e) {
            crate::db::DbFailure::Duplicate(constraint) if constraint.contains("auth_user_id") => {
                Err(DomainError::Conflict("you already have a profile".into()))
            }
            crate::db::DbFailure::Duplicate(_) => {
                Err(DomainError::Conflict("another profile already has your email or phone number".into()))
            }
            _ => Err(e.into()),
        },
    }
}

/// The profiles with these ids that the caller may see (their own; staff: their municipality's).
#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn by_ids(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<HashMap<Uuid, profile::Model>, DomainError> {
    let rows = Profile::find().filter(profile::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    Ok(rows.into_iter().map(|p| (p.id, p)).collect())
}

/// A profile the caller may see.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<profile::Model>, DomainError> {
    Ok(Profile::find_by_id(id).one(db).await?)
}

/// A place in the list of profiles (by creation time, then id). Opaque to clients.
pub type ProfileCursor = super::cursor::Place<profile::Model>;

impl super::cursor::Listed for profile::Model {
    const TAG: &'static str = "p1";
    fn place(&self) -> (DateTime<Utc>, Uuid) {
        (self.created_at.to_utc(), self.id)
    }
}

/// One page of profiles.
#[derive(Debug, Clone)]
pub struct ProfilePage {
    pub profiles: Vec<profile::Model>,
    pub has_next_page: bool,
}

/// One page of the profiles the caller may see, optionally of one role.
#[tracing::instrument(skip_all)]
pub async fn list(
    db: &impl ConnectionTrait,
    role: Option<AppRole>,
    first: u64,
    after: Option<ProfileCursor>,
) -> Result<ProfilePage, DomainError> {
    let mut query = Profile::find();
    if let Some(role) = role {
        query = query.filter(profile::Column::Role.eq(role));
    }
    if let Some(after) = after {
        query = query.filter(after.after(profile::Column::CreatedAt, profile::Column::Id, false));
    }
    let mut rows = query
        .order_by_asc(profile::Column::CreatedAt)
        .order_by_asc(profile::Column::Id)
        .limit(first + 1)
        .all(db)
        .await?;
    let has_next_page = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok(ProfilePage { profiles: rows, has_next_page })
}

/// How many profiles the caller may see, optionally of one role.
pub async fn count(db: &impl ConnectionTrait, role: Option<AppRole>) -> Result<u64, DomainError> {
    use sea_orm::PaginatorTrait;
    let mut query = Profile::find();
    if let Some(role) = role {
        query = query.filter(profile::Column::Role.eq(role));
    }
    Ok(query.count(db).await?)
}

/// Changes to the caller's own profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    pub display_name: Option<DisplayName>,
    /// `Some(None)` removes the phone number.
    pub phone: Option<Option<Phone>>,
}

/// The caller's own profile, required to act.
pub async fn acting(db: &impl ConnectionTrait, caller: &Caller, what: &str) -> Result<profile::Model, DomainError> {
    match caller {
        Caller::User(_) => {
            me(db, caller).await?.ok_or_else(|| DomainError::Forbidden(format!("register a profile before {what}")))
        }
        Caller::Anonymous => Err(DomainError::Unauthenticated(format!("sign in before {what}"))),
        Caller::Service => Err(DomainError::Forbidden("the service role does not act as a person".into())),
    }
}

/// Edits the caller's own display name and phone number (never role or municipality).
#[tracing::instrument(skip_all)]
pub async fn update_mine(
    db: &impl ConnectionTrait,
    caller: &Caller,
    changes: ProfileChanges,
) -> Result<profile::Model, DomainError> {
    let mine = acting(db, caller, "editing your profile").await?;
    let mut model: profile::ActiveModel = mine.clone().into();
    if let Some(name) = changes.display_name {
        model.display_name = Set(name.into_inner());
    }
    if let Some(phone) = changes.phone {
        let phone = phone.map(Phone::into_inner);
        // P-PROFILE-CONTACT: the relay links people by phone, so a profile carries only the
        // number its owner's sign-in verified (or none).
        let verified = match caller {
            Caller::User(user) => user.phone.as_deref(),
            _ => None,
        };
        if phone.is_some() && phone.as_deref() != verified && phone != mine.phone {
            return Err(DomainError::Forbidden(
                "your phone number can only be the one your sign-in verified; verify it with sign-in first".into(),
            ));
        }
        model.phone = Set(phone);
    }
    match Profile::update(model).exec(db).await {
        Ok(updated) => Ok(updated),
        Err(e) if matches!(crate::db::classify(&e), crate::db::DbFailure::Duplicate(_)) => {
            Err(DomainError::Conflict("another profile already has this phone number".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Gives a person of the caller's municipality another role (admins only, never their own).
#[tracing::instrument(skip_all, fields(%profile_id))]
pub async fn set_role(
    db: &impl ConnectionTrait,
    caller: &Caller,
    profile_id: Uuid,
    role: AppRole,
) -> Result<profile::Model, DomainError> {
    let me = acting(db, caller, "changing roles").await?;
    if me.role != AppRole::Admin {
        return Err(DomainError::Forbidden("only an admin of the municipality may change roles".into()));
    }
    if me.id == profile_id {
        return Err(DomainError::Forbidden("you cannot change your own role".into()));
    }
    // Under RLS an admin sees only their own municipality's profiles: others are not found.
    let target = get(db, profile_id).await?.ok_or(DomainError::NotFound("profile"))?;
    if target.municipality_id != me.municipality_id {
        return Err(DomainError::NotFound("profile"));
    }
    let mut model: profile::ActiveModel = target.into();
    model.role = Set(role);
    Ok(Profile::update(model).exec(db).await?)
}
