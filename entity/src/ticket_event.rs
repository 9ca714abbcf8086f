//! `ticket_events`: the durable, ordered history of ticket changes and notices.

use sea_orm::entity::prelude::*;

use crate::enums::{TicketEventKind, TicketStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticket_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub ticket_id: Uuid,
    pub municipality_id: Uuid,
    pub kind: TicketEventKind,
    pub notice_kind: Option<String>,
    pub message: Option<String>,
    pub status: TicketStatus,
    pub actor_profile_id: Option<Uuid>,
    pub payload: Json,
    pub created_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::ticket::Entity", from = "Column::TicketId", to = "super::ticket::Column::Id")]
    Ticket,
}

impl ActiveModelBehavior for ActiveModel {}
