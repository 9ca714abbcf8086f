//! `profiles`: one row per person, linked to the auth provider's user once they sign in.

use sea_orm::entity::prelude::*;

use crate::enums::AppRole;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The auth provider's user id (the JWT `sub`); null until the person first signs in.
    #[sea_orm(unique)]
    pub auth_user_id: Option<Uuid>,
    pub municipality_id: Uuid,
    pub role: AppRole,
    pub display_name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
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

impl Related<super::municipality::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Municipality.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
