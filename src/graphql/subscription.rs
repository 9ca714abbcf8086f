//! The subscription root: live ticket updates over websockets.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Subscription};
use chrono::{DateTime, Utc};
use entity::enums::TicketEventKind;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sea_orm::DatabaseConnection;

use super::context::{Scope, parse_id};
use super::multiplex::{Deliveries, Forward, Handover, Rendering};
use super::ticket::{Ticket, TicketStatus};
use crate::auth::Caller;
use crate::db;
use crate::domain::{profiles, tickets};
use crate::error::{ApiError, ErrorCode};
use crate::realtime::{Delivery, Realtime, SubscriptionError, Viewer};

pub struct Subscription;

/// What happened to a ticket.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum TicketUpdateKind {
    Created,
    Updated,
    Notice,
}

/// One change of a ticket the subscriber may see.
pub struct TicketUpdate {
    delivery: Delivery,
    scope: Scope,
}

#[Object]
impl TicketUpdate {
    /// Pass the last one you received as `after` when you resubscribe, to miss nothing.
    async fn event_id(&self) -> ID {
        ID(self.delivery.event.id.to_string())
    }

    async fn kind(&self) -> TicketUpdateKind {
        match self.delivery.event.kind {
            TicketEventKind::Created => TicketUpdateKind::Created,
            TicketEventKind::Updated => TicketUpdateKind::Updated,
            TicketEventKind::Notice => TicketUpdateKind::Notice,
        }
    }

    /// The ticket as it is when the update is sent; its nested fields (reporter, evidence, …)
    /// are read under the subscriber's own policies.
    async fn ticket(&self) -> Option<Ticket> {
        self.delivery.ticket.as_deref().map(|t| Ticket::new(t.clone(), self.scope.clone()))
    }

    /// The ticket's status after this event.
    async fn status(&self) -> TicketStatus {
        self.delivery.event.status.into()
    }

    /// For notices: what kind (e.g. `SLA_BREACHED`).
    async fn notice_kind(&self) -> Option<&str> {
        self.delivery.event.notice_kind.as_deref()
    }

    /// For notices, the message; for status changes, the note given with them.
    async fn notice(&self) -> Option<&str> {
        self.delivery.event.message.as_deref()
    }

    async fn occurred_at(&self) -> DateTime<Utc> {
        self.delivery.event.created_at.to_utc()
    }
}

impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        match e {
            SubscriptionError::Unavailable => ApiError::new(ErrorCode::Unavailable, e.to_string()),
            SubscriptionError::TooFarBehind => ApiError::new(ErrorCode::BadUserInput, e.to_string()),
            SubscriptionError::SlowConsumer { .. } => ApiError::new(ErrorCode::SlowConsumer, e.to_string()),
            SubscriptionError::RightsChanged => ApiError::new(ErrorCode::Forbidden, e.to_string()),
            SubscriptionError::Db(db) => ApiError::from(&db),
        }
    }
}

fn service<'a, T: Send + Sync + 'static>(ctx: &Context<'a>) -> Result<&'a T, ApiError> {
    ctx.data::<T>().map_err(|_| ApiError::new(ErrorCode::Internal, "internal error: live updates are not configured"))
}

/// Who the subscriber is, under their own policies.
async fn viewer(pool: &DatabaseConnection, caller: &Caller) -> Result<Viewer, ApiError> {
    let tx = db::begin(pool, caller, true).await.map_err(|e| ApiError::from(&e))?;
    let me = profiles::me(&tx, caller).await;
    let _ = tx.rollback().await;
    match (me?, caller) {
        (Some(p), _) => Ok(Viewer { profile_id: p.id, role: p.role, municipality_id: p.municipality_id }),
        (None, Caller::Anonymous) => {
            Err(ApiError::new(ErrorCode::Unauthenticated, "sign in to subscribe to ticket updates"))
        }
        (None, _) => Err(ApiError::new(ErrorCode::Forbidden, "only people with a profile subscribe to ticket updates")),
    }
}

#[Subscription]
impl Subscription {
    /// Changes to the tickets the caller may see in their municipality, as they happen.
    /// `after`: replay the updates since that `eventId` first (after a reconnect); `ticketId`:
    /// only this ticket's updates.
    async fn ticket_updates(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
        ticket_id: Option<ID>,
    ) -> async_graphql::Result<BoxStream<'static, async_graphql::Result<TicketUpdate>>> {
        // Rendering a group's document for one event (`multiplex`): that event, nothing else.
        if let Some(Rendering(delivery)) = ctx.data_opt::<Rendering>() {
            let update = TicketUpdate { delivery: delivery.clone(), scope: Scope::default() };
            return Ok(futures_util::stream::once(async move { Ok(update) }).boxed());
        }
        let caller = service::<Caller>(ctx)?.clone();
        let realtime = service::<Realtime>(ctx)?.clone();
        let pool = service::<DatabaseConnection>(ctx)?.clone();
        let after = after
            .map(|id| id.parse::<i64>().ok().filter(|n| *n >= 0))
            .map(|id| id.ok_or_else(|| ApiError::new(ErrorCode::BadUserInput, "`after` is not an event id")))
            .transpose()?;
        let ticket_id = ticket_id.as_ref().map(|id| parse_id(id, "ticketId")).transpose()?;
        let viewer = viewer(&pool, &caller).await?;
        if let Some(ticket) = ticket_id {
            let tx = db::begin(&pool, &caller, true).await.map_err(|e| ApiError::from(&e))?;
            let visible = tickets::get(&tx, ticket).await;
            let _ = tx.rollback().await;
            if visible.map_err(ApiError::from)?.is_none() {
                return Err(ApiError::new(ErrorCode::NotFound, "ticket not found").into());
            }
        }
        let stream = realtime.subscribe(caller.clone(), viewer, after, ticket_id).await.map_err(ApiError::from)?;
        let subscriber = Arc::new((pool, caller));
        let deliveries = match ctx.data_opt::<Forward>() {
            Some(forward) => hand_over(stream.boxed(), forward.operation, forward.to.clone()),
            None => stream.map(|item| item.map_err(|error| ApiError::from(error).into())).boxed(),
        };
        Ok(deliveries
            .map(move |item| match item {
                // Nested fields of this update read in a session of the subscriber's own.
                Ok(delivery) => Ok(TicketUpdate { delivery, scope: Scope::own(subscriber.clone()) }),
                Err(error) => Err(error),
            })
            .boxed())
    }
}

/// A grouped subscription's deliveries: still here (and whether one was yielded), or given
/// to the websocket.
enum Handing {
    Here(Deliveries, bool),
    Done,
}

/// A grouped subscription's deliveries (`multiplex`): the first one and any replayed ones are
/// yielded for execution like any subscription's; from the first live one after that, the
/// stream is handed to the websocket, which sends each the group's payload, and hands back
/// the error that ends it (or drops it when the stream ended), which is yielded the usual way.
fn hand_over(
    deliveries: Deliveries,
    operation: u64,
    to: tokio::sync::mpsc::Sender<Handover>,
) -> BoxStream<'static, async_graphql::Result<Delivery>> {
    let coded = |error: SubscriptionError| async_graphql::Error::from(ApiError::from(error));
    futures_util::stream::unfold(Handing::Here(deliveries, false), move |handing| {
        let to = to.clone();
        async move {
            match handing {
                Handing::Here(mut stream, yielded) => match stream.next().await? {
                    Ok(delivery) if yielded && delivery.renders.is_some() => {
                        let rest = futures_util::stream::once(async { Ok(delivery) }).chain(stream).boxed();
                        // Waits here until the websocket hands back the error that ends them.
                        let (ended, end) = tokio::sync::oneshot::channel();
                        to.send(Handover { operation, deliveries: rest, ended }).await.ok()?;
                        Some((Err(coded(end.await.ok()?)), Handing::Done))
                    }
                    Ok(delivery) => Some((Ok(delivery), Handing::Here(stream, true))),
                    Err(error) => Some((Err(coded(error)), Handing::Done)),
                },
                Handing::Done => None,
            }
        }
    })
    .boxed()
}
