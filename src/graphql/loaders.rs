//! Per-request DataLoaders. Each is created inside one request's session, so a batch never
//! mixes two callers' rows, and each batch is one statement under that caller's policies.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::municipality;
use uuid::Uuid;

use crate::db::RlsSession;
use crate::domain::profiles;
use crate::error::ApiError;

/// The loaders of one request.
pub struct Loaders {
    pub municipality: DataLoader<MunicipalityLoader>,
}

impl Loaders {
    pub fn new(session: Arc<RlsSession>) -> Self {
        Loaders { municipality: DataLoader::new(MunicipalityLoader { session }, tokio::spawn) }
    }
}

/// Municipalities by id.
pub struct MunicipalityLoader {
    session: Arc<RlsSession>,
}

impl Loader<Uuid> for MunicipalityLoader {
    type Value = municipality::Model;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        self.session
            .run(async |tx| profiles::municipalities_by_id(tx, keys).await)
            .await
            .map_err(ApiError::from)
    }
}
