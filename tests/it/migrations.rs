//! Migrations: running them again changes nothing, and they apply to a database that already
//! has what Supabase provides (roles, `auth`, `storage` owned by other roles) when run by a
//! non-superuser owner with BYPASSRLS, like `postgres` on a hosted project.

use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use ward::config::Secret;

use crate::helpers::{TestDb, cluster};

/// A fingerprint of everything the migrations create.
async fn fingerprint(db: &DatabaseConnection) -> String {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select concat_ws(' | ',
               (select string_agg(schemaname || '.' || tablename || ':' || policyname || ':' || cmd || ':' || coalesce(qual, '') || coalesce(with_check, ''), ',' order by 1) from pg_policies),
               (select string_agg(n.nspname || '.' || p.proname || ':' || md5(p.prosrc), ',' order by 1)
                  from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('app', 'auth', 'storage', 'public')),
               (select string_agg(tgname, ',' order by 1) from pg_trigger where not tgisinternal),
               (select string_agg(id || ':' || public::text, ',' order by 1) from storage.buckets),
               (select string_agg(indexname, ',' order by 1) from pg_indexes where schemaname in ('public', 'storage')),
               (select count(*)::text from seaql_migrations)) as f",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<String>("", "f").unwrap()
}

#[tokio::test]
async fn running_the_migrations_again_changes_nothing() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let before = fingerprint(&owner).await;
    migration::Migrator::up(&owner, None).await.unwrap();
    // Even forcing every script to run again (as on a database migrated by another tool's
    // bookkeeping) leaves roles, auth, storage and buckets as they were.
    for script in [
        include_str!("../../migration/src/sql/0001_roles_and_auth.sql"),
        include_str!("../../migration/src/sql/0002_storage.sql"),
        include_str!("../../migration/src/sql/0004_storage_policies.sql"),
    ] {
        owner.execute_unprepared(script).await.unwrap();
    }
    assert_eq!(fingerprint(&owner).await, before);
}

#[tokio::test]
async fn migrations_apply_over_supabase_roles_auth_and_storage() {
    let cluster = cluster();
    let admin = ward::db::connect(&cluster.superuser_url("postgres"), 1).await.unwrap();
    let name = format!("supa_{}", uuid::Uuid::new_v4().simple());
    // A stand-in for a hosted project: `supabase_admin` owns auth and storage; `supa_owner`
    // (like hosted `postgres`) is no superuser but has BYPASSRLS and owns the database.
    admin
        .execute_unprepared("do $$ begin
               if not exists (select 1 from pg_roles where rolname = 'supabase_admin') then create role supabase_admin; end if;
               if not exists (select 1 from pg_roles where rolname = 'supa_owner') then
                 create role supa_owner login password 'supa' bypassrls createrole;
               end if;
             end $$;")
        .await
        .unwrap();
    admin.execute_unprepared(&format!("create database {name} owner supa_owner")).await.unwrap();
    admin.close().await.unwrap();
    let superuser = ward::db::connect(&cluster.superuser_url(&name), 1).await.unwrap();
    superuser
        .execute_unprepared(
            "create schema auth authorization supabase_admin;
             create function auth.uid() returns uuid language sql stable as
               $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
             create function auth.role() returns text language sql stable as
               $$ select nullif(current_setting('request.jwt.claim.role', true), '')::text $$;
             create function auth.jwt() returns jsonb language sql stable as
               $$ select nullif(current_setting('request.jwt.claims', true), '')::jsonb $$;
             alter function auth.uid() owner to supabase_admin;
             alter function auth.role() owner to supabase_admin;
             alter function auth.jwt() owner to supabase_admin;
             grant usage on schema auth to supa_owner, anon, authenticated, service_role;
             create schema storage authorization supabase_admin;
             create table storage.buckets (id text primary key, name text not null unique, owner uuid,
               public boolean default false, file_size_limit bigint, allowed_mime_types text[],
               created_at timestamptz default now(), updated_at timestamptz default now());
             create table storage.objects (id uuid primary key default gen_random_uuid(), bucket_id text references storage.buckets(id),
               name text, owner uuid, metadata jsonb, created_at timestamptz default now(),
               updated_at timestamptz default now(), last_accessed_at timestamptz default now());
             create function storage.foldername(name text) returns text[] language sql immutable as
               $$ select (string_to_array(name, '/'))[1:array_length(string_to_array(name, '/'), 1) - 1] $$;
             alter table storage.buckets owner to supabase_admin;
             alter table storage.objects owner to supabase_admin;
             alter table storage.objects enable row level security;
             grant usage on schema storage to supa_owner, anon, authenticated, service_role;
             grant select, insert on storage.buckets to supa_owner;
             insert into storage.buckets (id, name, public) values ('avatars', 'avatars', true);",
        )
        .await
        .unwrap();
    superuser.close().await.unwrap();

    let owner_url = Secret::new(cluster.cluster.url("supa_owner", "supa", &name));
    ward::db::migrate(&owner_url).await.expect("migrations apply over Supabase's schemas");
    ward::db::migrate(&owner_url).await.expect("and again");

    let owner = ward::db::connect(&owner_url, 1).await.unwrap();
    let row = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select (select count(*) from storage.buckets) as buckets,
                    (select count(*) from pg_tables where schemaname = 'public' and rowsecurity) as tables,
                    (select pg_get_userbyid(proowner)::text from pg_proc where oid = 'auth.uid()'::regprocedure) as uid_owner",
        ))
        .await
        .unwrap()
        .unwrap();
    // Supabase's own bucket stays, ward's five are added; auth.uid() is still Supabase's.
    assert_eq!(row.try_get::<i64>("", "buckets").unwrap(), 6);
    assert!(row.try_get::<i64>("", "tables").unwrap() >= 9);
    assert_eq!(row.try_get::<String>("", "uid_owner").unwrap(), "supabase_admin");
    owner.close().await.unwrap();
}

#[tokio::test]
async fn migrations_refuse_an_owner_that_cannot_bypass_rls() {
    let cluster = cluster();
    let admin = ward::db::connect(&cluster.superuser_url("postgres"), 1).await.unwrap();
    let name = format!("weak_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(
            "do $$ begin
               if not exists (select 1 from pg_roles where rolname = 'weak_owner') then
                 create role weak_owner login password 'weak';
               end if;
             end $$;",
        )
        .await
        .unwrap();
    admin.execute_unprepared(&format!("create database {name} owner weak_owner")).await.unwrap();
    admin.close().await.unwrap();
    let err = ward::db::migrate(&Secret::new(cluster.cluster.url("weak_owner", "weak", &name)))
        .await
        .expect_err("a weak owner must be refused");
    assert!(err.to_string().contains("bypasses row-level security"), "{err}");
}

#[tokio::test]
async fn a_request_pool_that_bypasses_rls_is_refused() {
    let db = TestDb::new().await;
    let superuser = db.owner().await;
    let err = ward::db::check_request_role(&superuser).await.expect_err("superuser pool refused");
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    ward::db::check_request_role(&db.app_pool().await).await.expect("authenticator accepted");
}

#[tokio::test]
async fn migrate_can_set_up_a_dedicated_request_role_that_serves_under_rls() {
    let test_db = crate::helpers::TestDb::new().await;
    let name = format!("ward_requests_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = Secret::new("a-request-role-password-long-enough");
    // Names and passwords that must not be accepted.
    for reserved in ["authenticator", "postgres", "service_role", "supabase_admin", "pg_monitor"] {
        let refused = ward::db::ensure_request_role(&test_db.owner_url(), reserved, &password).await;
        assert!(matches!(refused, Err(ward::db::RequestRoleError::Reserved(_))), "{reserved}");
    }
    for bad in ["Ward", "ward-requests", "x; drop role postgres", "", "1ward"] {
        let refused = ward::db::ensure_request_role(&test_db.owner_url(), bad, &password).await;
        assert!(matches!(refused, Err(ward::db::RequestRoleError::BadName(_))), "{bad:?}");
    }
    // A role of that name made by someone else is not taken over.
    let foreign = format!("{name}_x");
    let owner = test_db.owner().await;
    owner.execute_unprepared(&format!("create role {foreign} nologin")).await.unwrap();
    let taken = ward::db::ensure_request_role(&test_db.owner_url(), &foreign, &password).await;
    assert!(matches!(taken, Err(ward::db::RequestRoleError::NotOurs(_))), "{taken:?}");
    owner.execute_unprepared(&format!("drop role {foreign}")).await.unwrap();
    let weak = ward::db::ensure_request_role(&test_db.owner_url(), &name, &Secret::new("short")).await;
    assert!(matches!(weak, Err(ward::db::RequestRoleError::WeakPassword)));
    // Created, then updated in place (a second run is how a password is rotated).
    ward::db::ensure_request_role(&test_db.owner_url(), &name, &Secret::new("the-first-password-of-the-role"))
        .await
        .unwrap();
    ward::db::ensure_request_role(&test_db.owner_url(), &name, &password).await.unwrap();
    let url = Secret::new(crate::helpers::cluster().cluster.url(&name, password.expose(), &test_db.name));
    let pool = ward::db::connect(&url, 2).await.unwrap();
    // ward serves as it (no superuser, no BYPASSRLS)...
    ward::db::check_request_role(&pool).await.unwrap();
    // ...it has no table rights of its own...
    let direct = pool.execute_unprepared("select count(*) from public.tickets").await;
    assert!(direct.is_err(), "the login role must not read tables itself");
    // ...and requests as it see what their caller's policies allow: a citizen of demo, not
    // other's tickets; a manager of other, only other's.
    let citizen = crate::helpers::ids_as(
        &pool,
        &crate::helpers::caller("citizen@demo.test"),
        "select m.slug from tickets t join municipalities m on m.id = t.municipality_id",
    )
    .await
    .unwrap();
    assert!(!citizen.is_empty() && citizen.iter().all(|s| s == "demo"), "{citizen:?}");
    let other = crate::helpers::ids_as(
        &pool,
        &crate::helpers::caller("manager@other.test"),
        "select m.slug from tickets t join municipalities m on m.id = t.municipality_id",
    )
    .await
    .unwrap();
    assert!(!other.is_empty() && other.iter().all(|s| s == "other"), "{other:?}");
    pool.close().await.unwrap();
    // Roles are the cluster's: leave none behind.
    let owner = test_db.owner().await;
    owner.execute_unprepared(&format!("drop owned by {name}; drop role {name}")).await.unwrap();
}
