//! `tickets`: service requests. `tracking_number`, `sla_due_at`, `version` and `updated_at`
//! are maintained by triggers.

use sea_orm::entity::prelude::*;

use crate::enums::{TicketCategory, TicketPriority, TicketStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tickets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub municipality_id: Uuid,
    #[sea_orm(unique)]
    pub tracking_number: String,
    pub category: TicketCategory,
    pub title: String,
    pub description: String,
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub ward_id: Option<Uuid>,
    pub reporter_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    /// A gender-based-violence case: readable only by SAPS liaisons and admins (and its reporter).
    pub is_sensitive: bool,
    pub sla_due_at: Option<DateTimeWithTimeZone>,
    pub version: i32,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::municipality::Entity",
        from = "Column::MunicipalityId",
        to = "super::municipality::Column::Id"
    )]
    Municipality,
}

impl ActiveModelBehavior for ActiveModel {}
