//! The mutation root, merged from one object per area. Each mutation runs in a savepoint of
//! the request's transaction.

use async_graphql::{Context, ID, MergedObject, Object};

use super::context::{Scope, caller, parse_id, run_mutation};
use super::ticket::{CreateTicketInput, Ticket, TicketEvent, TicketStatus, UpdateTicketInput};
use crate::domain::tickets::{self, NewTicket, TicketChanges};
use crate::domain::values::{Description, Message, NoticeKind, Title};
use crate::error::ApiError;

// The mutation root: one part per area, merged.
#[derive(MergedObject, Default)]
pub struct Mutation(super::profile_ops::ProfileMutation, TicketMutation, super::ticket_uploads::TicketUploadMutation);

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
        Ok(Ticket(run_mutation(ctx, async |tx| tickets::create(tx, caller, new).await).await?, Scope::default()))
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
        Ok(Ticket(run_mutation(ctx, async |tx| tickets::update(tx, caller, id, changes, expected_version).await).await?, Scope::default()))
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
        Ok(Ticket(run_mutation(ctx, async |tx| tickets::set_status(tx, caller, id, status.into(), note).await).await?, Scope::default()))
    }

    /// Assigns a ticket to a field worker or manager of its municipality.
    async fn assign_ticket(&self, ctx: &Context<'_>, id: ID, assignee_id: ID) -> async_graphql::Result<Ticket> {
        let id = parse_id(&id, "id")?;
        let assignee = parse_id(&assignee_id, "assigneeId")?;
        let caller = caller(ctx)?;
        Ok(Ticket(run_mutation(ctx, async |tx| tickets::assign(tx, caller, id, assignee).await).await?, Scope::default()))
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
        let event = run_mutation(ctx, async |tx| tickets::publish_notice(tx, caller, ticket_id, &kind, &message).await).await?;
        Ok(TicketEvent(event, Scope::default()))
    }
}
