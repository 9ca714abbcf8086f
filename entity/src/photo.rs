//! `photos`: a person's photos in `user-photos`, each with a public thumbnail.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "photos")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub profile_id: Uuid,
    pub bucket: String,
    pub object_path: String,
    pub thumbnail_path: Option<String>,
    pub content_type: String,
    pub size_bytes: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::profile::Entity", from = "Column::ProfileId", to = "super::profile::Column::Id")]
    Profile,
}

impl ActiveModelBehavior for ActiveModel {}
