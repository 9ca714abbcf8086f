//! People's profiles: who the caller is, and the profiles the caller may see.

use std::collections::HashMap;

use entity::prelude::*;
use entity::profile;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::DomainError;
use crate::auth::Caller;

/// The caller's own profile; `None` for anonymous and service callers and for people who have
/// no profile yet.
#[tracing::instrument(skip_all)]
pub async fn me(db: &impl ConnectionTrait, caller: &Caller) -> Result<Option<profile::Model>, DomainError> {
    let Some(user) = caller.user() else { return Ok(None) };
    Ok(Profile::find().filter(profile::Column::AuthUserId.eq(user.sub)).one(db).await?)
}

/// The profiles with these ids that the caller may see (their own; staff: their municipality's).
#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn by_ids(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<HashMap<Uuid, profile::Model>, DomainError> {
    let rows = Profile::find().filter(profile::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    Ok(rows.into_iter().map(|p| (p.id, p)).collect())
}
