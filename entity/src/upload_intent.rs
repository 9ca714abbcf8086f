//! `upload_intents`: a promise to upload one file to one object path before it expires.

use sea_orm::entity::prelude::*;

use crate::enums::{UploadPurpose, UploadStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upload_intents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub municipality_id: Uuid,
    pub created_by: Uuid,
    pub purpose: UploadPurpose,
    pub ticket_id: Option<Uuid>,
    pub bucket: String,
    pub object_path: String,
    pub filename: String,
    pub content_type: String,
    pub max_size_bytes: i64,
    pub status: UploadStatus,
    pub expires_at: DateTimeWithTimeZone,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
