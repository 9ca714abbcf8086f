//! Municipalities and their wards, as the caller may see them (their own only).

use std::collections::HashMap;

use entity::prelude::*;
use entity::{municipality, ward};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::DomainError;

/// The municipalities with these ids that the caller may see.
#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, municipality::Model>, DomainError> {
    let rows = Municipality::find().filter(municipality::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

/// The wards with these ids that the caller may see.
#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn wards_by_ids(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<HashMap<Uuid, ward::Model>, DomainError> {
    let rows = Ward::find().filter(ward::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    Ok(rows.into_iter().map(|w| (w.id, w)).collect())
}
