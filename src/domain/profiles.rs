//! People's profiles: who the caller is, and the municipalities profiles belong to.

use std::collections::HashMap;

use entity::prelude::*;
use entity::{municipality, profile};
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

/// The municipalities with these ids that the caller may see.
#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn municipalities_by_id(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, municipality::Model>, DomainError> {
    let rows = Municipality::find()
        .filter(municipality::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}
