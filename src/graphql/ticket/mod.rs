//! Tickets in the schema: the `Ticket` type with its ward and history (here), the paged list
//! of tickets (`list`), and the queries and mutations about tickets (`ops`). A ticket's files
//! are `Media` (`graphql/media.rs`).

mod list;
mod ops;

pub use list::{TicketConnection, TicketFilter, TicketOrder, ahead_for};
pub use ops::{TicketMutation, TicketQuery};

use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};
use entity::enums::{self, UploadPurpose};
use entity::{media, profile, ticket, ticket_event, ward};
use uuid::Uuid;

use super::context::Scope;
use super::media::Media;
use super::profile::Profile;

macro_rules! mirror_enum {
    ($(#[$doc:meta])* $name:ident <=> $domain:path { $($variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl From<$domain> for $name {
            fn from(value: $domain) -> Self {
                match value { $(<$domain>::$variant => $name::$variant),+ }
            }
        }

        impl From<$name> for $domain {
            fn from(value: $name) -> Self {
                match value { $($name::$variant => <$domain>::$variant),+ }
            }
        }
    };
}

mirror_enum!(
    /// What a ticket is about.
    TicketCategory <=> enums::TicketCategory { Water, Electricity, Roads, Waste, Safety, Other }
);
mirror_enum!(
    /// Where a ticket is in its workflow: OPEN → IN_PROGRESS → RESOLVED → CLOSED, or REJECTED;
    /// resolved, closed and rejected tickets can be reopened.
    TicketStatus <=> enums::TicketStatus { Open, InProgress, Resolved, Closed, Rejected }
);
mirror_enum!(
    /// How urgent a ticket is.
    TicketPriority <=> enums::TicketPriority { Low, Normal, High, Urgent }
);
mirror_enum!(
    /// What a history entry records.
    TicketEventKind <=> enums::TicketEventKind { Created, Updated, Notice }
);
mirror_enum!(
    /// Why a file was uploaded.
    MediaPurpose <=> UploadPurpose { Photo, Evidence, Document, GbvEvidence }
);

/// A service request.
pub struct Ticket {
    pub row: ticket::Model,
    /// Where its nested fields are read: the request's session, or a subscriber's own.
    pub scope: Scope,
}

impl Ticket {
    pub fn new(row: ticket::Model, scope: Scope) -> Self {
        Ticket { row, scope }
    }
}

#[Object]
impl Ticket {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Per municipality and year, e.g. `DEMO-2026-000042`.
    async fn tracking_number(&self) -> &str {
        &self.row.tracking_number
    }

    async fn title(&self) -> &str {
        &self.row.title
    }

    async fn description(&self) -> &str {
        &self.row.description
    }

    async fn category(&self) -> TicketCategory {
        self.row.category.into()
    }

    async fn status(&self) -> TicketStatus {
        self.row.status.into()
    }

    async fn priority(&self) -> TicketPriority {
        self.row.priority.into()
    }

    /// A gender-based-violence case: visible to its reporter, SAPS liaisons and admins (and
    /// managers), its evidence only to SAPS liaisons and admins.
    async fn is_sensitive(&self) -> bool {
        self.row.is_sensitive
    }

    async fn ward(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Ward>> {
        let Some(id) = self.row.ward_id else { return Ok(None) };
        if let Some(found) = self.scope.ahead().and_then(|a| a.wards.as_ref()).and_then(|w| w.get(&id)) {
            return Ok(found.clone().map(Ward::new));
        }
        Ok(self.scope.data(ctx)?.loaders.ward().load_one(id).await?.map(Ward::new))
    }

    /// Who reported it; null where the caller may not see that profile.
    async fn reporter(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Profile>> {
        let Some(id) = self.row.reporter_id else { return Ok(None) };
        Ok(self.profile(ctx, id).await?.map(|p| Profile::new(p, self.scope.clone())))
    }

    /// Who works on it; null when unassigned or where the caller may not see that profile.
    async fn assignee(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Profile>> {
        let Some(id) = self.row.assignee_id else { return Ok(None) };
        Ok(self.profile(ctx, id).await?.map(|p| Profile::new(p, self.scope.clone())))
    }

    /// Evidence files (including GBV evidence, for those who may read it).
    async fn evidence(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Media>> {
        let all = self.media_rows(ctx).await?;
        Ok(all
            .into_iter()
            .filter(|m| matches!(m.purpose, UploadPurpose::Evidence | UploadPurpose::GbvEvidence))
            .map(|m| Media::new(m, self.scope.clone()))
            .collect())
    }

    /// Every file of the ticket the caller may read.
    async fn media(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Media>> {
        Ok(self.media_rows(ctx).await?.into_iter().map(|m| Media::new(m, self.scope.clone())).collect())
    }

    /// The ticket's history, oldest first.
    async fn events(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketEvent>> {
        let events = match self.scope.ahead().and_then(|a| a.events.as_ref()) {
            Some(ahead) => ahead.get(&self.row.id).cloned(),
            None => self.scope.data(ctx)?.loaders.ticket_events().load_one(self.row.id).await?,
        };
        Ok(events.unwrap_or_default().into_iter().map(|e| TicketEvent::new(e, self.scope.clone())).collect())
    }

    /// When the service-level agreement for its category runs out.
    async fn sla_due_at(&self) -> Option<DateTime<Utc>> {
        self.row.sla_due_at.map(|d| d.to_utc())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at.to_utc()
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at.to_utc()
    }

    /// Increases with every change; pass it as `expectedVersion` to `updateTicket`.
    async fn version(&self) -> i32 {
        self.row.version
    }
}

impl Ticket {
    /// A profile the ticket refers to: loaded ahead by its page, or through the loader.
    async fn profile(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<profile::Model>> {
        if let Some(found) = self.scope.ahead().and_then(|a| a.profiles.as_ref()).and_then(|p| p.get(&id)) {
            return Ok(found.clone());
        }
        Ok(self.scope.data(ctx)?.loaders.profile().load_one(id).await?)
    }

    async fn media_rows(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<media::Model>> {
        if let Some(media) = self.scope.ahead().and_then(|a| a.media.as_ref()) {
            return Ok(media.get(&self.row.id).cloned().unwrap_or_default());
        }
        Ok(self.scope.data(ctx)?.loaders.ticket_media().load_one(self.row.id).await?.unwrap_or_default())
    }
}

/// A ward of a municipality.
pub struct Ward {
    pub row: ward::Model,
}

impl Ward {
    pub fn new(row: ward::Model) -> Self {
        Ward { row }
    }
}

#[Object]
impl Ward {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.row.name
    }

    async fn number(&self) -> Option<i32> {
        self.row.number
    }
}

/// An entry of a ticket's history: its creation, a change, or a notice.
pub struct TicketEvent {
    pub row: ticket_event::Model,
    /// Where its nested fields are read: the request's session, or a subscriber's own.
    pub scope: Scope,
}

impl TicketEvent {
    pub fn new(row: ticket_event::Model, scope: Scope) -> Self {
        TicketEvent { row, scope }
    }
}

#[Object]
impl TicketEvent {
    /// Increasing: later events have larger ids.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn kind(&self) -> TicketEventKind {
        self.row.kind.into()
    }

    /// For notices, e.g. `SLA_BREACHED`.
    async fn notice_kind(&self) -> Option<&str> {
        self.row.notice_kind.as_deref()
    }

    /// A notice's text, or the note given with a status change.
    async fn message(&self) -> Option<&str> {
        self.row.message.as_deref()
    }

    /// The ticket's status after this event.
    async fn status(&self) -> TicketStatus {
        self.row.status.into()
    }

    /// Who acted; null for the system and where the caller may not see that profile.
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Profile>> {
        let Some(id) = self.row.actor_profile_id else { return Ok(None) };
        Ok(self.scope.data(ctx)?.loaders.profile().load_one(id).await?.map(|p| Profile::new(p, self.scope.clone())))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at.to_utc()
    }
}
