//! The closed sets of values that the schema's CHECK constraints allow, as Rust enums.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A person's role in their municipality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum AppRole {
    #[sea_orm(string_value = "citizen")]
    Citizen,
    #[sea_orm(string_value = "field_worker")]
    FieldWorker,
    #[sea_orm(string_value = "manager")]
    Manager,
    #[sea_orm(string_value = "saps_liaison")]
    SapsLiaison,
    #[sea_orm(string_value = "admin")]
    Admin,
}

/// What a ticket is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketCategory {
    #[sea_orm(string_value = "WATER")]
    Water,
    #[sea_orm(string_value = "ELECTRICITY")]
    Electricity,
    #[sea_orm(string_value = "ROADS")]
    Roads,
    #[sea_orm(string_value = "WASTE")]
    Waste,
    #[sea_orm(string_value = "SAFETY")]
    Safety,
    #[sea_orm(string_value = "OTHER")]
    Other,
}

/// Where a ticket is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketStatus {
    #[sea_orm(string_value = "OPEN")]
    Open,
    #[sea_orm(string_value = "IN_PROGRESS")]
    InProgress,
    #[sea_orm(string_value = "RESOLVED")]
    Resolved,
    #[sea_orm(string_value = "CLOSED")]
    Closed,
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
}

/// How urgent a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketPriority {
    #[sea_orm(string_value = "LOW")]
    Low,
    #[sea_orm(string_value = "NORMAL")]
    Normal,
    #[sea_orm(string_value = "HIGH")]
    High,
    #[sea_orm(string_value = "URGENT")]
    Urgent,
}

/// What a `ticket_events` row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketEventKind {
    #[sea_orm(string_value = "CREATED")]
    Created,
    #[sea_orm(string_value = "UPDATED")]
    Updated,
    #[sea_orm(string_value = "NOTICE")]
    Notice,
}

/// Why a file is being uploaded; decides its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UploadPurpose {
    #[sea_orm(string_value = "PHOTO")]
    Photo,
    #[sea_orm(string_value = "EVIDENCE")]
    Evidence,
    #[sea_orm(string_value = "DOCUMENT")]
    Document,
    #[sea_orm(string_value = "GBV_EVIDENCE")]
    GbvEvidence,
}

/// Where an upload intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UploadStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "CONFIRMED")]
    Confirmed,
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
}
