//! The queries and mutations about tickets. Each mutation runs in a savepoint of the
//! request's transaction.

use async_graphql::{Context, ID, InputObject, Object};

use super::{
    Ticket, TicketCategory, TicketConnection, TicketEvent, TicketFilter, TicketOrder, TicketPriority, TicketStatus,
    ahead_for,
};
use crate::domain::tickets::{self, NewTicket, Page, TicketChanges};
use crate::domain::values::{Description, Message, NoticeKind, Title, TrackingNumber};
use crate::error::ApiError;
use crate::graphql::context::{Scope, caller, parse_id, run, run_mutation};

/// Queries about tickets.
#[derive(Default)]
pub struct TicketQuery;

#[Object]
impl TicketQuery {
    /// A ticket the caller may see; null otherwise.
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Ticket>> {
        let id = parse_id(&id, "id")?;
        let Some(ticket) = run(ctx, async |tx| tickets::get(tx, id).await).await? else { return Ok(None) };
        let scope = ahead_for(ctx, std::slice::from_ref(&ticket), ctx.look_ahead()).await?;
        Ok(Some(Ticket::new(ticket, scope)))
    }

    /// A ticket by its tracking number, e.g. `DEMO-2026-000042`; null if the caller may not see it.
    async fn ticket_by_tracking_number(
        &self,
        ctx: &Context<'_>,
        tracking_number: String,
    ) -> async_graphql::Result<Option<Ticket>> {
        let number = TrackingNumber::parse(&tracking_number).map_err(ApiError::from)?;
        let Some(ticket) = run(ctx, async |tx| tickets::by_tracking_number(tx, &number).await).await? else {
            return Ok(None);
        };
        let scope = ahead_for(ctx, std::slice::from_ref(&ticket), ctx.look_ahead()).await?;
        Ok(Some(Ticket::new(ticket, scope)))
    }

    /// The tickets the caller may see, a page at a time (at most 100 per page; 20 by default).
    #[graphql(complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)] // Relay's four paging arguments, a filter and an order
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<TicketFilter>,
        order_by: Option<TicketOrder>,
    ) -> async_graphql::Result<TicketConnection> {
        let order = order_by.unwrap_or_default().into_domain();
        let filter = filter.unwrap_or_default().into_domain()?;
        let page =
            Page::from_relay(first, after.as_deref(), last, before.as_deref(), order.field).map_err(ApiError::from)?;
        let result = run(ctx, async |tx| tickets::list(tx, &filter, order, &page).await).await?;
        Ok(TicketConnection {
            page: result,
            filter,
            field: order.field,
            items: Default::default(),
            count: Default::default(),
        })
    }
}

/// Mutations of tickets.
#[derive(Default)]
pub struct TicketMutation;

#[Object]
impl TicketMutation {
    /// Reports a ticket in the caller's municipality (citizens, managers, SAPS liaisons, admins).
    async fn create_ticket(&self, ctx: &Context<'_>, input: CreateTicketInput) -> async_graphql::Result<Ticket> {
        let new = NewTicket {
            title: Title::parse(&input.title).map_err(ApiError::from)?,
            description: Description::parse(&input.description).map_err(ApiError::from)?,
            category: input.category.into(),
            priority: input.priority.map(Into::into),
            ward_id: input.ward_id.as_ref().map(|id| parse_id(id, "wardId")).transpose()?,
            is_sensitive: input.is_sensitive,
        };
        let caller = caller(ctx)?;
        Ok(Ticket::new(run_mutation(ctx, async |tx| tickets::create(tx, caller, new).await).await?, Scope::default()))
    }

    /// Edits a ticket if it is still at `expectedVersion` (else `CONFLICT`).
    async fn update_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateTicketInput,
        expected_version: i32,
    ) -> async_graphql::Result<Ticket> {
        let id = parse_id(&id, "id")?;
        let changes = TicketChanges {
            title: input.title.as_deref().map(Title::parse).transpose().map_err(ApiError::from)?,
            description: input.description.as_deref().map(Description::parse).transpose().map_err(ApiError::from)?,
            category: input.category.map(Into::into),
            priority: input.priority.map(Into::into),
            ward_id: match input.ward_id {
                async_graphql::MaybeUndefined::Undefined => None,
                async_graphql::MaybeUndefined::Null => Some(None),
                async_graphql::MaybeUndefined::Value(ward) => Some(Some(parse_id(&ward, "wardId")?)),
            },
            is_sensitive: input.is_sensitive,
        };
        let caller = caller(ctx)?;
        Ok(Ticket::new(
            run_mutation(ctx, async |tx| tickets::update(tx, caller, id, changes, expected_version).await).await?,
            Scope::default(),
        ))
    }

    /// Moves a ticket through its workflow, with an optional note kept in its history.
    async fn set_ticket_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: TicketStatus,
        note: Option<String>,
    ) -> async_graphql::Result<Ticket> {
        let id = parse_id(&id, "id")?;
        let note = note.as_deref().map(Message::parse).transpose().map_err(ApiError::from)?;
        let caller = caller(ctx)?;
        Ok(Ticket::new(
            run_mutation(ctx, async |tx| tickets::set_status(tx, caller, id, status.into(), note).await).await?,
            Scope::default(),
        ))
    }

    /// Assigns a ticket to a field worker or manager of its municipality.
    async fn assign_ticket(&self, ctx: &Context<'_>, id: ID, assignee_id: ID) -> async_graphql::Result<Ticket> {
        let id = parse_id(&id, "id")?;
        let assignee = parse_id(&assignee_id, "assigneeId")?;
        let caller = caller(ctx)?;
        Ok(Ticket::new(
            run_mutation(ctx, async |tx| tickets::assign(tx, caller, id, assignee).await).await?,
            Scope::default(),
        ))
    }

    /// Records a notice on a ticket and announces it to subscribers (managers, admins and the
    /// service role).
    async fn publish_ticket_notice(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        kind: String,
        message: String,
    ) -> async_graphql::Result<TicketEvent> {
        let ticket_id = parse_id(&ticket_id, "ticketId")?;
        let kind = NoticeKind::parse(&kind).map_err(ApiError::from)?;
        let message = Message::parse(&message).map_err(ApiError::from)?;
        let caller = caller(ctx)?;
        let event =
            run_mutation(ctx, async |tx| tickets::publish_notice(tx, caller, ticket_id, &kind, &message).await).await?;
        Ok(TicketEvent::new(event, Scope::default()))
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
