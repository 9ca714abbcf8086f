//! A migration made of one SQL script up and one down.

use sea_orm_migration::prelude::*;

/// A migration whose body is SQL text, run as one batch of statements.
pub struct SqlMigration {
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

impl MigrationName for SqlMigration {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SqlMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(self.up).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !self.down.trim().is_empty() {
            manager.get_connection().execute_unprepared(self.down).await?;
        }
        Ok(())
    }
}
