//! Per-request DataLoaders. Each is created inside one request's session, so a batch never
//! mixes two callers' rows, and each batch is one statement under that caller's policies:
//! a page of 50 tickets costs the same number of statements as a page of 5.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{media, municipality, profile, ticket_event, ward};
use uuid::Uuid;

use crate::db::RlsSession;
use crate::domain::{municipalities, profiles, tickets};
use crate::error::ApiError;

/// A loader that batches keys into one domain call in the request's session.
macro_rules! session_loader {
    ($(#[$doc:meta])* $name:ident: $value:ty = $fetch:path) => {
        $(#[$doc])*
        pub struct $name {
            session: Arc<RlsSession>,
        }

        impl Loader<Uuid> for $name {
            type Value = $value;
            type Error = ApiError;

            async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
                self.session.run(async |tx| $fetch(tx, keys).await).await.map_err(ApiError::from)
            }
        }
    };
}

session_loader!(
    /// Municipalities by id.
    MunicipalityLoader: municipality::Model = municipalities::by_ids
);
session_loader!(
    /// Wards by id.
    WardLoader: ward::Model = municipalities::wards_by_ids
);
session_loader!(
    /// Profiles by id; one the caller may not see is simply absent.
    ProfileLoader: profile::Model = profiles::by_ids
);
session_loader!(
    /// A ticket's history, by ticket id.
    TicketEventsLoader: Vec<ticket_event::Model> = tickets::events_by_ticket
);
session_loader!(
    /// A ticket's files, by ticket id.
    TicketMediaLoader: Vec<media::Model> = tickets::media_by_ticket
);

/// The loaders of one request.
pub struct Loaders {
    pub municipality: DataLoader<MunicipalityLoader>,
    pub ward: DataLoader<WardLoader>,
    pub profile: DataLoader<ProfileLoader>,
    pub ticket_events: DataLoader<TicketEventsLoader>,
    pub ticket_media: DataLoader<TicketMediaLoader>,
}

impl Loaders {
    pub fn new(session: Arc<RlsSession>) -> Self {
        let s = || session.clone();
        // async-graphql polls a list's items in passes of at most 32; a batch waits this long
        // for the keys of the later passes (its default, 1 ms, splits big pages on busy machines).
        let delay = std::time::Duration::from_millis(3);
        Loaders {
            municipality: DataLoader::new(MunicipalityLoader { session: s() }, tokio::spawn).delay(delay),
            ward: DataLoader::new(WardLoader { session: s() }, tokio::spawn).delay(delay),
            profile: DataLoader::new(ProfileLoader { session: s() }, tokio::spawn).delay(delay),
            ticket_events: DataLoader::new(TicketEventsLoader { session: s() }, tokio::spawn).delay(delay),
            ticket_media: DataLoader::new(TicketMediaLoader { session: s() }, tokio::spawn).delay(delay),
        }
    }
}
