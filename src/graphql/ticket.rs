//! The ticket types: `Ticket`, its history and files, the enums, the connection, and inputs.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::enums::{self, UploadPurpose};
use entity::{media, profile, ticket, ticket_event, ward};
use uuid::Uuid;

use super::context::{Prefetched, Scope, every, parse_id, run, storage, storage_read};
use super::image::ImageTransform;
use super::profile::Profile;
use crate::domain::{municipalities, profiles};
use crate::domain::tickets::{self, Cursor, OrderField, TicketFilter as DomainFilter, TicketPage};
use crate::domain::uploads;
use crate::error::ApiError;

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
pub struct Ticket(pub ticket::Model, pub Scope);

#[Object]
impl Ticket {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Per municipality and year, e.g. `DEMO-2026-000042`.
    async fn tracking_number(&self) -> &str {
        &self.0.tracking_number
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn description(&self) -> &str {
        &self.0.description
    }

    async fn category(&self) -> TicketCategory {
        self.0.category.into()
    }

    async fn status(&self) -> TicketStatus {
        self.0.status.into()
    }

    async fn priority(&self) -> TicketPriority {
        self.0.priority.into()
    }

    /// A gender-based-violence case: visible to its reporter, SAPS liaisons and admins (and
    /// managers), its evidence only to SAPS liaisons and admins.
    async fn is_sensitive(&self) -> bool {
        self.0.is_sensitive
    }

    async fn ward(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Ward>> {
        let Some(id) = self.0.ward_id else { return Ok(None) };
        if let Some(found) = self.1.ahead().and_then(|a| a.wards.as_ref()).and_then(|w| w.get(&id)) {
            return Ok(found.clone().map(Ward));
        }
        Ok(self.1.data(ctx)?.loaders.ward().load_one(id).await?.map(Ward))
    }

    /// Who reported it; null where the caller may not see that profile.
    async fn reporter(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Profile>> {
        let Some(id) = self.0.reporter_id else { return Ok(None) };
        Ok(self.profile(ctx, id).await?.map(|p| Profile(p, self.1.clone())))
    }

    /// Who works on it; null when unassigned or where the caller may not see that profile.
    async fn assignee(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Profile>> {
        let Some(id) = self.0.assignee_id else { return Ok(None) };
        Ok(self.profile(ctx, id).await?.map(|p| Profile(p, self.1.clone())))
    }

    /// Evidence files (including GBV evidence, for those who may read it).
    async fn evidence(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Media>> {
        let all = self.media_rows(ctx).await?;
        Ok(all
            .into_iter()
            .filter(|m| matches!(m.purpose, UploadPurpose::Evidence | UploadPurpose::GbvEvidence))
            .map(|m| Media(m, self.1.clone()))
            .collect())
    }

    /// Every file of the ticket the caller may read.
    async fn media(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Media>> {
        Ok(self.media_rows(ctx).await?.into_iter().map(|m| Media(m, self.1.clone())).collect())
    }

    /// The ticket's history, oldest first.
    async fn events(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketEvent>> {
        let events = match self.1.ahead().and_then(|a| a.events.as_ref()) {
            Some(ahead) => ahead.get(&self.0.id).cloned(),
            None => self.1.data(ctx)?.loaders.ticket_events().load_one(self.0.id).await?,
        };
        Ok(events.unwrap_or_default().into_iter().map(|e| TicketEvent(e, self.1.clone())).collect())
    }

    /// When the service-level agreement for its category runs out.
    async fn sla_due_at(&self) -> Option<DateTime<Utc>> {
        self.0.sla_due_at.map(|d| d.to_utc())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_utc()
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at.to_utc()
    }

    /// Increases with every change; pass it as `expectedVersion` to `updateTicket`.
    async fn version(&self) -> i32 {
        self.0.version
    }
}

impl Ticket {
    /// A profile the ticket refers to: loaded ahead by its page, or through the loader.
    async fn profile(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<profile::Model>> {
        if let Some(found) = self.1.ahead().and_then(|a| a.profiles.as_ref()).and_then(|p| p.get(&id)) {
            return Ok(found.clone());
        }
        Ok(self.1.data(ctx)?.loaders.profile().load_one(id).await?)
    }

    async fn media_rows(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<media::Model>> {
        if let Some(media) = self.1.ahead().and_then(|a| a.media.as_ref()) {
            return Ok(media.get(&self.0.id).cloned().unwrap_or_default());
        }
        Ok(self.1.data(ctx)?.loaders.ticket_media().load_one(self.0.id).await?.unwrap_or_default())
    }
}

/// A ward of a municipality.
pub struct Ward(pub ward::Model);

#[Object]
impl Ward {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn number(&self) -> Option<i32> {
        self.0.number
    }
}

/// An entry of a ticket's history: its creation, a change, or a notice.
pub struct TicketEvent(pub ticket_event::Model, pub Scope);

#[Object]
impl TicketEvent {
    /// Increasing: later events have larger ids.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn kind(&self) -> TicketEventKind {
        self.0.kind.into()
    }

    /// For notices, e.g. `SLA_BREACHED`.
    async fn notice_kind(&self) -> Option<&str> {
        self.0.notice_kind.as_deref()
    }

    /// A notice's text, or the note given with a status change.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }

    /// The ticket's status after this event.
    async fn status(&self) -> TicketStatus {
        self.0.status.into()
    }

    /// Who acted; null for the system and where the caller may not see that profile.
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Profile>> {
        let Some(id) = self.0.actor_profile_id else { return Ok(None) };
        Ok(self.1.data(ctx)?.loaders.profile().load_one(id).await?.map(|p| Profile(p, self.1.clone())))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_utc()
    }
}

/// A file attached to a ticket.
pub struct Media(pub media::Model, pub Scope);

#[Object]
impl Media {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn purpose(&self) -> MediaPurpose {
        self.0.purpose.into()
    }

    async fn bucket(&self) -> &str {
        &self.0.bucket
    }

    /// The object path in its bucket: `{municipality_id}/{file_id}/{filename}`.
    async fn path(&self) -> &str {
        &self.0.object_path
    }

    async fn content_type(&self) -> &str {
        &self.0.content_type
    }

    async fn size_bytes(&self) -> i64 {
        self.0.size_bytes
    }

    /// A link to download the file, valid for `expiresIn` seconds (1 to 604800, 7 days).
    /// Only for those who may read the file: managers upload GBV evidence but get no link.
    /// With a `transform`, the link serves the image rendered that way (images only).
    async fn signed_url(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3600)] expires_in: i32,
        transform: Option<ImageTransform>,
    ) -> async_graphql::Result<String> {
        let transform = transform.map(|t| t.to_storage()).transpose()?;
        let storage = storage(ctx)?;
        let session = &self.1.data(ctx)?.session;
        let id = self.0.id;
        let file = session.run(async |tx| uploads::readable_file(tx, id).await).await.map_err(ApiError::from)?;
        // Signing may call Supabase Storage: no connection is held meanwhile.
        let signing = uploads::sign_file(storage, &file, i64::from(expires_in), transform.as_ref());
        let url = storage_read(session, storage, signing).await?;
        Ok(url.map_err(ApiError::from)?)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_utc()
    }
}

/// Which tickets a list holds; every given condition must hold.
#[derive(InputObject, Default)]
pub struct TicketFilter {
    pub status: Option<Vec<TicketStatus>>,
    pub category: Option<Vec<TicketCategory>>,
    pub ward_id: Option<ID>,
    pub assignee_id: Option<ID>,
    pub is_sensitive: Option<bool>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Text to find in the title or description (case-insensitive).
    pub search: Option<String>,
}

impl TicketFilter {
    pub fn into_domain(self) -> Result<DomainFilter, ApiError> {
        if let Some(search) = &self.search {
            if search.chars().count() > 200 {
                return Err(ApiError::new(crate::error::ErrorCode::BadUserInput, "search must be at most 200 characters"));
            }
        }
        Ok(DomainFilter {
            statuses: distinct(self.status, "status")?.into_iter().map(Into::into).collect(),
            categories: distinct(self.category, "category")?.into_iter().map(Into::into).collect(),
            ward_id: self.ward_id.as_ref().map(|id| parse_id(id, "wardId")).transpose()?,
            assignee_id: self.assignee_id.as_ref().map(|id| parse_id(id, "assigneeId")).transpose()?,
            is_sensitive: self.is_sensitive,
            created_after: self.created_after,
            created_before: self.created_before,
            search: self.search,
        })
    }
}

/// The longest list a filter takes: more values than any enum of the schema has, far fewer
/// than would reach PostgreSQL's limit on bind parameters.
pub const MAX_FILTER_VALUES: usize = 50;

/// A filter's list without repeats (in first-seen order), refused when longer than
/// [`MAX_FILTER_VALUES`].
fn distinct<T: PartialEq>(values: Option<Vec<T>>, name: &str) -> Result<Vec<T>, ApiError> {
    let values = values.unwrap_or_default();
    if values.len() > MAX_FILTER_VALUES {
        return Err(ApiError::new(
            crate::error::ErrorCode::BadUserInput,
            format!("`{name}` takes at most {MAX_FILTER_VALUES} values"),
        ));
    }
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    Ok(out)
}

/// What to sort tickets by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum TicketOrderField {
    #[default]
    CreatedAt,
    UpdatedAt,
    SlaDueAt,
}

/// A sort direction.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OrderDirection {
    Asc,
    #[default]
    Desc,
}

/// How to sort tickets (ties broken by id, in the same direction).
#[derive(InputObject, Default)]
pub struct TicketOrder {
    #[graphql(default)]
    pub field: TicketOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl TicketOrder {
    pub fn into_domain(self) -> tickets::TicketOrder {
        tickets::TicketOrder {
            field: match self.field {
                TicketOrderField::CreatedAt => OrderField::CreatedAt,
                TicketOrderField::UpdatedAt => OrderField::UpdatedAt,
                TicketOrderField::SlaDueAt => OrderField::SlaDueAt,
            },
            descending: self.direction == OrderDirection::Desc,
        }
    }
}

/// A page of tickets, Relay style.
pub struct TicketConnection {
    pub page: TicketPage,
    pub filter: DomainFilter,
    pub field: OrderField,
    /// The scope its tickets are made in, with what was loaded ahead for them (once, by
    /// whichever of `nodes` and `edges` comes first).
    pub items: tokio::sync::OnceCell<Scope>,
    /// The count, once, for `totalCount` and `totalCountIsExact`.
    pub count: tokio::sync::OnceCell<tickets::TicketCount>,
}

/// One ticket of a page, with its cursor.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct TicketEdge {
    pub cursor: String,
    #[graphql(skip)]
    pub ticket: ticket::Model,
    #[graphql(skip)]
    pub scope: Scope,
}

#[ComplexObject]
impl TicketEdge {
    async fn node(&self) -> Ticket {
        Ticket(self.ticket.clone(), self.scope.clone())
    }
}

impl TicketConnection {
    /// The scope the page's tickets are made in (see [`ahead_for`]), loaded once.
    async fn items(&self, ctx: &Context<'_>, ticket: async_graphql::Lookahead<'_>) -> Result<Scope, ApiError> {
        let scope = self.items.get_or_try_init(|| ahead_for(ctx, &self.page.tickets, ticket)).await?;
        Ok(scope.clone())
    }

    /// How many tickets match, counted once.
    async fn counted(&self, ctx: &Context<'_>) -> async_graphql::Result<tickets::TicketCount> {
        let count = self.count.get_or_try_init(|| run(ctx, async |tx| tickets::count(tx, &self.filter).await)).await?;
        Ok(*count)
    }
}

/// The scope to make `tickets` in: the profiles, files, wards and histories their selected
/// fields (`ticket`, the look-ahead of one ticket) will ask for, loaded ahead, one statement
/// for each kind selected.
pub async fn ahead_for(
    ctx: &Context<'_>,
    tickets: &[ticket::Model],
    ticket: async_graphql::Lookahead<'_>,
) -> Result<Scope, ApiError> {
    let wants_profiles = ticket.field("reporter").exists() || ticket.field("assignee").exists();
    let wants_media = ticket.field("evidence").exists() || ticket.field("media").exists();
    let wants_wards = ticket.field("ward").exists();
    let wants_events = ticket.field("events").exists();
    if tickets.is_empty() || !(wants_profiles || wants_media || wants_wards || wants_events) {
        return Ok(Scope::default());
    }
    let ids = |of: fn(&ticket::Model) -> [Option<Uuid>; 2]| {
        let mut ids: Vec<Uuid> = tickets.iter().flat_map(of).flatten().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let profile_ids = ids(|t| [t.reporter_id, t.assignee_id]);
    let ward_ids = ids(|t| [t.ward_id, None]);
    let ticket_ids: Vec<Uuid> = tickets.iter().map(|t| t.id).collect();
    let mut ahead = Prefetched::default();
    run(ctx, async |tx| {
        if wants_profiles {
            ahead.profiles = Some(every(&profile_ids, profiles::by_ids(tx, &profile_ids).await?));
        }
        if wants_media {
            ahead.media = Some(tickets::media_by_ticket(tx, &ticket_ids).await?);
        }
        if wants_wards {
            ahead.wards = Some(every(&ward_ids, municipalities::wards_by_ids(tx, &ward_ids).await?));
        }
        if wants_events {
            ahead.events = Some(tickets::events_by_ticket(tx, &ticket_ids).await?);
        }
        Ok(())
    })
    .await?;
    Ok(Scope::prefetched(ahead))
}

/// Where a page sits in its list.
#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

#[Object]
impl TicketConnection {
    async fn edges(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketEdge>> {
        let scope = self.items(ctx, ctx.look_ahead().field("node")).await?;
        Ok(self
            .page
            .tickets
            .iter()
            .map(|t| TicketEdge { cursor: Cursor::of(self.field, t).encode(), ticket: t.clone(), scope: scope.clone() })
            .collect())
    }

    async fn nodes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Ticket>> {
        let scope = self.items(ctx, ctx.look_ahead()).await?;
        Ok(self.page.tickets.iter().cloned().map(|t| Ticket(t, scope.clone())).collect())
    }

    async fn page_info(&self) -> PageInfo {
        let cursor = |t: &ticket::Model| Cursor::of(self.field, t).encode();
        PageInfo {
            has_next_page: self.page.has_next_page,
            has_previous_page: self.page.has_previous_page,
            start_cursor: self.page.tickets.first().map(cursor),
            end_cursor: self.page.tickets.last().map(cursor),
        }
    }

    /// How many tickets match the filter (all pages): exact up to 10,000; beyond that
    /// PostgreSQL's estimate (see `totalCountIsExact`), so that a page view of a large city
    /// does not count all of it.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.counted(ctx).await?.count)
    }

    /// Whether `totalCount` is exact (false past 10,000 matching tickets: an estimate).
    async fn total_count_is_exact(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.counted(ctx).await?.exact)
    }
}

/// A new ticket, reported by the caller.
#[derive(InputObject)]
pub struct CreateTicketInput {
    pub title: String,
    #[graphql(default)]
    pub description: String,
    pub category: TicketCategory,
    pub ward_id: Option<ID>,
    #[graphql(default)]
    pub is_sensitive: bool,
    pub priority: Option<TicketPriority>,
}

/// Changes to a ticket; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateTicketInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<TicketCategory>,
    pub priority: Option<TicketPriority>,
    /// A ward id, or null to clear it.
    pub ward_id: async_graphql::MaybeUndefined<ID>,
    pub is_sensitive: Option<bool>,
}
