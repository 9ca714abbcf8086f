//! The query root, merged from one object per area (profiles, tickets).

use async_graphql::{Context, ID, MergedObject, Object};

use super::context::{parse_id, run};
use super::ticket::{Ticket, TicketConnection, TicketFilter, TicketOrder, ahead_for};
use crate::domain::tickets::{self, Page};
use crate::domain::values::TrackingNumber;
use crate::error::ApiError;

// The query root: one part per area, merged.
#[derive(MergedObject, Default)]
pub struct Query(super::profile_ops::ProfileQuery, TicketQuery);

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
        Ok(Some(Ticket(ticket, scope)))
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
        Ok(Some(Ticket(ticket, scope)))
    }

    /// The tickets the caller may see, a page at a time (at most 100 per page; 20 by default).
    #[graphql(complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
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
        let page = Page::from_relay(first, after.as_deref(), last, before.as_deref(), order.field)
            .map_err(ApiError::from)?;
        let result = run(ctx, async |tx| tickets::list(tx, &filter, order, &page).await).await?;
        Ok(TicketConnection { page: result, filter, field: order.field, items: Default::default(), count: Default::default() })
    }
}
