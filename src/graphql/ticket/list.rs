//! A page of tickets, Relay style: the filter and order a list takes, its connection and
//! edges, and the look-ahead that loads a page's nested rows in one statement per kind.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::ticket;
use uuid::Uuid;

use super::{Ticket, TicketCategory, TicketStatus};
use crate::domain::tickets::{self, Cursor, OrderField, TicketFilter as DomainFilter, TicketPage};
use crate::domain::{municipalities, profiles};
use crate::error::ApiError;
use crate::graphql::connection::PageInfo;
use crate::graphql::context::{Prefetched, Scope, every, parse_id, run};

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
        if let Some(search) = &self.search
            && search.chars().count() > 200
        {
            return Err(ApiError::new(crate::error::ErrorCode::BadUserInput, "search must be at most 200 characters"));
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
// The schema's names: CREATED_AT, UPDATED_AT, SLA_DUE_AT.
#[allow(clippy::enum_variant_names)]
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
        Ticket::new(self.ticket.clone(), self.scope.clone())
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
        Ok(self.page.tickets.iter().cloned().map(|t| Ticket::new(t, scope.clone())).collect())
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
