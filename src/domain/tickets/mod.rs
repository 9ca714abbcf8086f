//! Tickets: the service-request workflow (create, edit with optimistic concurrency, status
//! transitions, assignment, notices) here, and reading them page by page in `list.rs`. Each
//! rule here is checked for a clear error; the policies and guard triggers in the database
//! hold them regardless.

use std::collections::HashMap;

use entity::enums::{AppRole, TicketCategory, TicketPriority, TicketStatus};
use entity::prelude::*;
use entity::ticket;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Set, Statement,
};
use uuid::Uuid;

mod list;

pub use list::{
    Cursor, EXACT_COUNT_LIMIT, OrderField, Page, TicketCount, TicketFilter, TicketOrder, TicketPage, count, list,
};

use super::DomainError;
use super::profiles;
use super::values::{Description, Message, NoticeKind, Title, TrackingNumber};
use crate::auth::Caller;

/// A ticket to create.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub title: Title,
    pub description: Description,
    pub category: TicketCategory,
    /// Chosen by staff only; `None` is `NORMAL`.
    pub priority: Option<TicketPriority>,
    pub ward_id: Option<Uuid>,
    pub is_sensitive: bool,
}

/// Edits to a ticket; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TicketChanges {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub category: Option<TicketCategory>,
    pub priority: Option<TicketPriority>,
    /// `Some(None)` clears the ward.
    pub ward_id: Option<Option<Uuid>>,
    pub is_sensitive: Option<bool>,
}

/// A ticket the caller can see.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<ticket::Model>, DomainError> {
    Ok(Ticket::find_by_id(id).one(db).await?)
}

/// A ticket the caller can see, by tracking number.
pub async fn by_tracking_number(
    db: &impl ConnectionTrait,
    number: &TrackingNumber,
) -> Result<Option<ticket::Model>, DomainError> {
    Ok(Ticket::find().filter(ticket::Column::TrackingNumber.eq(number.as_str())).one(db).await?)
}

async fn visible(db: &impl ConnectionTrait, id: Uuid) -> Result<ticket::Model, DomainError> {
    get(db, id).await?.ok_or(DomainError::NotFound("ticket"))
}

/// Creates a ticket reported by the caller, in the caller's municipality. The database gives
/// it its tracking number and SLA due time.
#[tracing::instrument(skip_all)]
pub async fn create(db: &impl ConnectionTrait, caller: &Caller, new: NewTicket) -> Result<ticket::Model, DomainError> {
    let me = profiles::acting(db, caller, "working with tickets").await?;
    if me.role == AppRole::FieldWorker {
        return Err(DomainError::Forbidden("field workers do not create tickets".into()));
    }
    // P-TICKET-INSERT: staff triage; a reporter's ticket starts at NORMAL.
    if new.priority.is_some() && me.role == AppRole::Citizen {
        return Err(DomainError::Forbidden("staff set a ticket's priority; leave it out".into()));
    }
    if let Some(ward) = new.ward_id
        && Ward::find_by_id(ward).one(db).await?.is_none()
    {
        return Err(DomainError::BadInput("no such ward in your municipality".into()));
    }
    let model = ticket::ActiveModel {
        municipality_id: Set(me.municipality_id),
        category: Set(new.category),
        title: Set(new.title.into_inner()),
        description: Set(new.description.into_inner()),
        priority: Set(new.priority.unwrap_or(TicketPriority::Normal)),
        ward_id: Set(new.ward_id),
        reporter_id: Set(Some(me.id)),
        is_sensitive: Set(new.is_sensitive),
        ..Default::default()
    };
    Ok(Ticket::insert(model).exec_with_returning(db).await?)
}

/// Whether the caller's role lets them edit or assign this ticket.
fn may_manage(role: AppRole, ticket: &ticket::Model) -> bool {
    match role {
        AppRole::Manager | AppRole::Admin => true,
        AppRole::SapsLiaison => ticket.is_sensitive,
        AppRole::Citizen | AppRole::FieldWorker => false,
    }
}

/// Applies `changes` if the ticket is still at `expected_version`.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn update(
    db: &impl ConnectionTrait,
    caller: &Caller,
    id: Uuid,
    changes: TicketChanges,
    expected_version: i32,
) -> Result<ticket::Model, DomainError> {
    let me = profiles::acting(db, caller, "working with tickets").await?;
    let current = visible(db, id).await?;
    if !may_manage(me.role, &current) {
        return Err(DomainError::Forbidden("you may not edit this ticket".into()));
    }
    if let Some(Some(ward)) = changes.ward_id
        && Ward::find_by_id(ward).one(db).await?.is_none()
    {
        return Err(DomainError::BadInput("no such ward in your municipality".into()));
    }
    let mut update =
        Ticket::update_many().filter(ticket::Column::Id.eq(id)).filter(ticket::Column::Version.eq(expected_version));
    let mut changed = false;
    if let Some(title) = changes.title {
        update = update.col_expr(ticket::Column::Title, Expr::value(title.into_inner()));
        changed = true;
    }
    if let Some(description) = changes.description {
        update = update.col_expr(ticket::Column::Description, Expr::value(description.into_inner()));
        changed = true;
    }
    if let Some(category) = changes.category {
        update = update.col_expr(ticket::Column::Category, Expr::value(category.to_value()));
        changed = true;
    }
    if let Some(priority) = changes.priority {
        update = update.col_expr(ticket::Column::Priority, Expr::value(priority.to_value()));
        changed = true;
    }
    if let Some(ward) = changes.ward_id {
        update = update.col_expr(ticket::Column::WardId, Expr::value(ward));
        changed = true;
    }
    if let Some(sensitive) = changes.is_sensitive {
        // P-GBV-UNFLAG: whether a case is gender-based violence is for SAPS and admins to undo.
        if current.is_sensitive && !sensitive && !matches!(me.role, AppRole::SapsLiaison | AppRole::Admin) {
            return Err(DomainError::Forbidden("only SAPS liaisons and admins lift a ticket's sensitive flag".into()));
        }
        update = update.col_expr(ticket::Column::IsSensitive, Expr::value(sensitive));
        changed = true;
    }
    if !changed {
        return Err(DomainError::BadInput("nothing to change".into()));
    }
    let updated = update.exec_with_returning(db).await?;
    finish_update(db, id, expected_version, updated).await
}

/// The updated row, or why there is none: the version moved (`CONFLICT`) or a policy refused.
async fn finish_update(
    db: &impl ConnectionTrait,
    id: Uuid,
    expected_version: i32,
    updated: Vec<ticket::Model>,
) -> Result<ticket::Model, DomainError> {
    if let Some(ticket) = updated.into_iter().next() {
        return Ok(ticket);
    }
    match get(db, id).await? {
        Some(now) if now.version != expected_version => Err(DomainError::Conflict(format!(
            "the ticket changed since version {expected_version}; it is at version {} now",
            now.version
        ))),
        Some(_) => Err(DomainError::Forbidden("you may not change this ticket".into())),
        None => Err(DomainError::NotFound("ticket")),
    }
}

/// Whether the workflow goes from `from` to `to` (reopening included).
pub fn transition_allowed(from: TicketStatus, to: TicketStatus) -> bool {
    use TicketStatus::*;
    matches!(
        (from, to),
        (Open, InProgress | Resolved | Rejected | Closed)
            | (InProgress, Open | Resolved | Rejected)
            | (Resolved, Closed | Open)
            | (Closed, Open)
            | (Rejected, Open)
    )
}

/// Whether a role may make this move on this ticket (given that the workflow allows it).
fn may_move(role: AppRole, me: Uuid, ticket: &ticket::Model, to: TicketStatus) -> bool {
    use TicketStatus::*;
    match role {
        AppRole::FieldWorker => {
            ticket.assignee_id == Some(me)
                && !ticket.is_sensitive
                && matches!((ticket.status, to), (Open, InProgress | Resolved) | (InProgress, Open | Resolved))
        }
        other => may_manage(other, ticket),
    }
}

/// Moves a ticket to `status`, recording `note` with the change.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn set_status(
    db: &impl ConnectionTrait,
    caller: &Caller,
    id: Uuid,
    status: TicketStatus,
    note: Option<Message>,
) -> Result<ticket::Model, DomainError> {
    let me = profiles::acting(db, caller, "working with tickets").await?;
    let current = visible(db, id).await?;
    if current.status == status {
        return Err(DomainError::BadInput(format!("the ticket is already {}", status.to_value())));
    }
    if !transition_allowed(current.status, status) {
        return Err(DomainError::BadInput(format!(
            "a ticket cannot go from {} to {}",
            current.status.to_value(),
            status.to_value()
        )));
    }
    if !may_move(me.role, me.id, &current, status) {
        return Err(DomainError::Forbidden("you may not change this ticket's status".into()));
    }
    set_event_note(db, note.as_ref().map(|n| n.clone().into_inner()).unwrap_or_default()).await?;
    let updated = Ticket::update_many()
        .col_expr(ticket::Column::Status, Expr::value(status.to_value()))
        .filter(ticket::Column::Id.eq(id))
        .filter(ticket::Column::Version.eq(current.version))
        .exec_with_returning(db)
        .await?;
    set_event_note(db, String::new()).await?;
    finish_update(db, id, current.version, updated).await
}

/// The note the ticket trigger records with the next change in this transaction.
async fn set_event_note(db: &impl ConnectionTrait, note: String) -> Result<(), DomainError> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select set_config('ward.event_note', $1, true)",
        [note.into()],
    ))
    .await?;
    Ok(())
}

/// Assigns a ticket to a field worker or manager of its municipality.
#[tracing::instrument(skip_all, fields(%id, %assignee_id))]
pub async fn assign(
    db: &impl ConnectionTrait,
    caller: &Caller,
    id: Uuid,
    assignee_id: Uuid,
) -> Result<ticket::Model, DomainError> {
    let me = profiles::acting(db, caller, "working with tickets").await?;
    let current = visible(db, id).await?;
    if !may_manage(me.role, &current) {
        return Err(DomainError::Forbidden("you may not assign this ticket".into()));
    }
    let assignee = Profile::find_by_id(assignee_id).one(db).await?;
    let fits = assignee.is_some_and(|a| {
        a.municipality_id == current.municipality_id && matches!(a.role, AppRole::FieldWorker | AppRole::Manager)
    });
    if !fits {
        return Err(DomainError::BadInput(
            "the assignee must be a field worker or manager of the ticket's municipality".into(),
        ));
    }
    let updated = Ticket::update_many()
        .col_expr(ticket::Column::AssigneeId, Expr::value(assignee_id))
        .filter(ticket::Column::Id.eq(id))
        .filter(ticket::Column::Version.eq(current.version))
        .exec_with_returning(db)
        .await?;
    finish_update(db, id, current.version, updated).await
}

/// Records a notice on a ticket and announces it; returns the event.
#[tracing::instrument(skip_all, fields(%ticket_id))]
pub async fn publish_notice(
    db: &impl ConnectionTrait,
    caller: &Caller,
    ticket_id: Uuid,
    kind: &NoticeKind,
    message: &Message,
) -> Result<entity::ticket_event::Model, DomainError> {
    if !matches!(caller, Caller::Service) {
        let me = profiles::acting(db, caller, "working with tickets").await?;
        if !matches!(me.role, AppRole::Manager | AppRole::Admin) {
            return Err(DomainError::Forbidden("only managers and admins publish notices".into()));
        }
        if kind.as_str() == "SLA_BREACHED" {
            return Err(DomainError::Forbidden("SLA_BREACHED notices are recorded by the SLA sweeper only".into()));
        }
        visible(db, ticket_id).await?;
    }
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select app.publish_ticket_notice($1, $2, $3) as id",
            [ticket_id.into(), kind.as_str().into(), message.clone().into_inner().into()],
        ))
        .await?
        .ok_or(DomainError::NotFound("ticket"))?;
    let event_id: i64 = row.try_get("", "id")?;
    TicketEvent::find_by_id(event_id).one(db).await?.ok_or(DomainError::NotFound("ticket event"))
}

/// The history of these tickets (those the caller can see), oldest first.
#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn events_by_ticket(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<entity::ticket_event::Model>>, DomainError> {
    use entity::ticket_event::Column;
    let rows = TicketEvent::find()
        .filter(Column::TicketId.is_in(ids.iter().copied()))
        .order_by_asc(Column::Id)
        .all(db)
        .await?;
    Ok(group_by(rows, |e| e.ticket_id))
}

/// The files of these tickets the caller may read, oldest first (GBV evidence only for SAPS
/// liaisons and admins: the media policy decides).
#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn media_by_ticket(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<entity::media::Model>>, DomainError> {
    use entity::media::Column;
    let rows = Media::find()
        .filter(Column::TicketId.is_in(ids.iter().copied()))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await?;
    Ok(group_by(rows, |m| m.ticket_id))
}

fn group_by<T>(rows: Vec<T>, key: impl Fn(&T) -> Uuid) -> HashMap<Uuid, Vec<T>> {
    let mut groups: HashMap<Uuid, Vec<T>> = HashMap::new();
    for row in rows {
        groups.entry(key(&row)).or_default().push(row);
    }
    groups
}

/// Records an `SLA_BREACHED` notice for every open ticket past its due time that has none yet.
/// Runs as the service role; returns how many were recorded.
pub async fn sweep_sla_breaches(db: &impl ConnectionTrait) -> Result<i32, DomainError> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "select app.sweep_sla_breaches() as n"))
        .await?
        .ok_or_else(|| DomainError::Db(sea_orm::DbErr::RecordNotFound("sweep".into())))?;
    Ok(row.try_get::<i32>("", "n")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketStatus::*;

    #[test]
    fn the_workflow_allows_reopening_but_not_skipping_back() {
        assert!(transition_allowed(Open, InProgress));
        assert!(transition_allowed(InProgress, Resolved));
        assert!(transition_allowed(Resolved, Closed));
        assert!(transition_allowed(Resolved, Open));
        assert!(transition_allowed(Closed, Open));
        assert!(transition_allowed(Rejected, Open));
        assert!(!transition_allowed(Closed, Resolved));
        assert!(!transition_allowed(Rejected, Closed));
        assert!(!transition_allowed(Resolved, InProgress));
        assert!(!transition_allowed(Open, Open));
    }
}
