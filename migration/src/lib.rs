//! ward's database schema as sea-orm migrations. Each migration is plain SQL (roles, RLS
//! policies and triggers do not fit a query builder) and is written to apply both to a bare
//! PostgreSQL and to a Supabase project that already has roles, `auth` and `storage`.

pub use sea_orm_migration::prelude::*;

mod sql_migration;

use sql_migration::SqlMigration;

/// The ordered list of ward's migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(SqlMigration {
                name: "m20261123_000001_roles_and_auth",
                up: include_str!("sql/0001_roles_and_auth.sql"),
                // Roles and `auth` may predate ward (Supabase): never dropped.
                down: "",
            }),
            Box::new(SqlMigration {
                name: "m20261123_000002_storage",
                up: include_str!("sql/0002_storage.sql"),
                // Supabase Storage refuses direct deletes unless the transaction allows them.
                down: "select set_config('storage.allow_delete_query', 'true', true); \
                       delete from storage.buckets where id in ('evidence', 'documents', \
                       'gbv-evidence', 'user-photos', 'user-photos-thumbnails') \
                       and not exists (select 1 from storage.objects o where o.bucket_id = buckets.id);",
            }),
            Box::new(SqlMigration {
                name: "m20261123_000003_domain",
                up: include_str!("sql/0003_domain.sql"),
                down: include_str!("sql/0003_domain_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261123_000004_storage_policies",
                up: include_str!("sql/0004_storage_policies.sql"),
                down: include_str!("sql/0004_storage_policies_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261123_000005_ticket_workflow",
                up: include_str!("sql/0005_ticket_workflow.sql"),
                down: include_str!("sql/0005_ticket_workflow_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261123_000006_realtime",
                up: include_str!("sql/0006_realtime.sql"),
                down: include_str!("sql/0006_realtime_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261123_000007_profiles_photos",
                up: include_str!("sql/0007_profiles_photos.sql"),
                down: include_str!("sql/0007_profiles_photos_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261123_000008_inline_visibility",
                up: include_str!("sql/0008_inline_visibility.sql"),
                down: include_str!("sql/0008_inline_visibility_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261129_000009_contract",
                up: include_str!("sql/0009_contract.sql"),
                down: include_str!("sql/0009_contract_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261129_000010_upload_limits",
                up: include_str!("sql/0010_upload_limits.sql"),
                down: include_str!("sql/0010_upload_limits_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261129_000011_ticket_search",
                up: include_str!("sql/0011_ticket_search.sql"),
                down: include_str!("sql/0011_ticket_search_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261129_000012_tracking_numbers",
                up: include_str!("sql/0012_tracking_numbers.sql"),
                down: include_str!("sql/0012_tracking_numbers_down.sql"),
            }),
            Box::new(SqlMigration {
                name: "m20261129_000013_one_event_payload",
                up: include_str!("sql/0013_one_event_payload.sql"),
                down: include_str!("sql/0013_one_event_payload_down.sql"),
            }),
        ]
    }
}
