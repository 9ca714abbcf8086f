//! Per-request DataLoaders. Each is created inside one request's session, so a batch never
//! mixes two callers' rows, and each batch is one statement under that caller's policies:
//! a page of 50 tickets costs the same number of statements as a page of 5. Resolvers that
//! know their objects' nested fields in advance load them ahead instead (see
//! `context::Prefetched`), which spares the batch task, its wait and its wake-ups.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

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

/// async-graphql polls a list's items in passes of at most 32; a batch waits this long for
/// the keys of the later passes (its default, 1 ms, splits big pages on busy machines).
const BATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(3);

fn loader<T: Loader<Uuid>>(inner: T) -> DataLoader<T> {
    DataLoader::new(inner, tokio::spawn).delay(BATCH_DELAY)
}

/// The loaders of one request, each made the first time a resolver asks for it (most
/// requests need one or two of them).
pub struct Loaders {
    session: Arc<RlsSession>,
    municipality: OnceLock<DataLoader<MunicipalityLoader>>,
    ward: OnceLock<DataLoader<WardLoader>>,
    profile: OnceLock<DataLoader<ProfileLoader>>,
    ticket_events: OnceLock<DataLoader<TicketEventsLoader>>,
    ticket_media: OnceLock<DataLoader<TicketMediaLoader>>,
}

macro_rules! accessor {
    ($field:ident: $loader:ident) => {
        pub fn $field(&self) -> &DataLoader<$loader> {
            self.$field.get_or_init(|| loader($loader { session: self.session.clone() }))
        }
    };
}

impl Loaders {
    pub fn new(session: Arc<RlsSession>) -> Self {
        Loaders {
            session,
            municipality: OnceLock::new(),
            ward: OnceLock::new(),
            profile: OnceLock::new(),
            ticket_events: OnceLock::new(),
            ticket_media: OnceLock::new(),
        }
    }

    accessor!(municipality: MunicipalityLoader);
    accessor!(ward: WardLoader);
    accessor!(profile: ProfileLoader);
    accessor!(ticket_events: TicketEventsLoader);
    accessor!(ticket_media: TicketMediaLoader);
}
