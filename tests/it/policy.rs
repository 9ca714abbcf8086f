//! The policy matrix of docs/POLICY.md, at the SQL level through the RLS session: for every demo
//! person of both municipalities, every table, and select / insert / update / delete, what is
//! visible and what is not.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use uuid::{Uuid, uuid};
use ward::auth::Caller;
use ward::db::{DbFailure, classify};
use ward::demo::{self, DEMO, OTHER, PEOPLE, TICKETS, WARDS};

use crate::helpers::people::*;
use crate::helpers::{TestDb, caller, exec_as, ids_as, user_caller};

// Fixtures added to the seed by `fixtures`.
const T8_SENSITIVE_ASSIGNED: Uuid = uuid!("00000000-0000-4000-8000-0000000e0008");
const MEDIA_T1_EVIDENCE: Uuid = uuid!("00000000-0000-4000-8000-0000000f0001");
const MEDIA_T3_GBV: Uuid = uuid!("00000000-0000-4000-8000-0000000f0003");
const MEDIA_T4_DOCUMENT: Uuid = uuid!("00000000-0000-4000-8000-0000000f0004");
const MEDIA_T6_EVIDENCE: Uuid = uuid!("00000000-0000-4000-8000-0000000f0006");
const PHOTO_CITIZEN: Uuid = uuid!("00000000-0000-4000-8000-000000010001");
const PHOTO_MANAGER: Uuid = uuid!("00000000-0000-4000-8000-000000010003");
const PHOTO_OTHER: Uuid = uuid!("00000000-0000-4000-8000-000000010006");
const INTENT_CITIZEN: Uuid = uuid!("00000000-0000-4000-8000-000000020001");
const INTENT_MANAGER_GBV: Uuid = uuid!("00000000-0000-4000-8000-000000020003");

fn pid(email: &str) -> Uuid {
    demo::person(email).unwrap().profile_id
}

fn ticket(n: usize) -> Uuid {
    if n == 8 { T8_SENSITIVE_ASSIGNED } else { TICKETS[n - 1].id }
}

fn set(ids: &[Uuid]) -> BTreeSet<String> {
    ids.iter().map(Uuid::to_string).collect()
}

/// Adds, as the owner, what the seed lacks: a sensitive ticket assigned to the field worker,
/// media in each bucket, photos and upload intents.
pub(crate) async fn fixtures(owner: &DatabaseConnection) {
    let sql = format!(
        "insert into tickets (id, municipality_id, category, title, reporter_id, assignee_id, is_sensitive)
           values ('{t8}', '{demo}', 'SAFETY', 'Sensitive, assigned to the worker', '{saps}', '{worker}', true);
         insert into media (id, ticket_id, municipality_id, purpose, bucket, object_path, content_type, size_bytes) values
           ('{m1}', '{t1}', '{demo}', 'EVIDENCE', 'evidence', '{demo}/f1/leak.jpg', 'image/jpeg', 10),
           ('{m3}', '{t3}', '{demo}', 'GBV_EVIDENCE', 'gbv-evidence', '{demo}/f3/statement.pdf', 'application/pdf', 10),
           ('{m4}', '{t4}', '{demo}', 'DOCUMENT', 'documents', '{demo}/f4/report.pdf', 'application/pdf', 10),
           ('{m6}', '{t6}', '{other}', 'EVIDENCE', 'evidence', '{other}/f6/tap.jpg', 'image/jpeg', 10);
         insert into photos (id, profile_id, object_path, content_type, size_bytes) values
           ('{p1}', '{citizen}', '{citizen}/{p1}/me.jpg', 'image/jpeg', 10),
           ('{p3}', '{manager}', '{manager}/{p3}/me.jpg', 'image/jpeg', 10),
           ('{p6}', '{other_citizen}', '{other_citizen}/{p6}/me.jpg', 'image/jpeg', 10);
         insert into upload_intents (id, municipality_id, created_by, purpose, ticket_id, bucket, object_path,
                                     filename, content_type, max_size_bytes, expires_at) values
           ('{i1}', '{demo}', '{citizen}', 'PHOTO', null, 'user-photos', '{citizen}/x/a.jpg', 'a.jpg', 'image/jpeg', 100, now() + interval '1 hour'),
           ('{i3}', '{demo}', '{manager}', 'GBV_EVIDENCE', '{t3}', 'gbv-evidence', '{demo}/y/b.pdf', 'b.pdf', 'application/pdf', 100, now() + interval '1 hour');",
        t8 = T8_SENSITIVE_ASSIGNED,
        demo = DEMO.id,
        other = OTHER.id,
        saps = pid(SAPS),
        worker = pid(WORKER),
        citizen = pid(CITIZEN),
        manager = pid(MANAGER),
        other_citizen = pid(OTHER_CITIZEN),
        t1 = ticket(1),
        t3 = ticket(3),
        t4 = ticket(4),
        t6 = ticket(6),
        m1 = MEDIA_T1_EVIDENCE,
        m3 = MEDIA_T3_GBV,
        m4 = MEDIA_T4_DOCUMENT,
        m6 = MEDIA_T6_EVIDENCE,
        p1 = PHOTO_CITIZEN,
        p3 = PHOTO_MANAGER,
        p6 = PHOTO_OTHER,
        i1 = INTENT_CITIZEN,
        i3 = INTENT_MANAGER_GBV,
    );
    owner.execute_unprepared(&sql).await.expect("insert fixtures");
}

async fn setup() -> (TestDb, DatabaseConnection) {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    fixtures(&owner).await;
    owner.close().await.unwrap();
    let pool = db.app_pool().await;
    (db, pool)
}

async fn visible(pool: &DatabaseConnection, who: &Caller, table: &str) -> BTreeSet<String> {
    ids_as(pool, who, &format!("select id::text from {table}"))
        .await
        .unwrap_or_else(|e| panic!("select from {table}: {e}"))
}

/// Whether a write as `who` was refused (by a policy, a privilege or a guard), or how many
/// rows it touched.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Rows(u64),
    Denied,
}

/// Like [`write`], after `setup` in the same transaction (a refused setup is `Denied`).
async fn write_after(pool: &DatabaseConnection, who: &Caller, setup: &str, sql: &str) -> Outcome {
    let tx = ward::db::begin(pool, who, false).await.unwrap();
    let result = match tx.execute_unprepared(setup).await {
        Ok(_) => tx.execute_unprepared(sql).await,
        Err(e) => Err(e),
    };
    tx.rollback().await.unwrap();
    match result {
        Ok(done) => Outcome::Rows(done.rows_affected()),
        Err(e) => match classify(&e) {
            DbFailure::Denied(_) => Outcome::Denied,
            other => panic!("{sql}: unexpected failure {other:?}: {e}"),
        },
    }
}

async fn write(pool: &DatabaseConnection, who: &Caller, sql: &str) -> Outcome {
    match exec_as(pool, who, sql, vec![]).await {
        Ok(rows) => Outcome::Rows(rows),
        Err(e) => match classify(&e) {
            DbFailure::Denied(_) => Outcome::Denied,
            other => panic!("{sql}: unexpected failure {other:?}: {e}"),
        },
    }
}

#[tokio::test]
async fn select_matrix() {
    let (_db, pool) = setup().await;
    let demo_people: Vec<Uuid> = PEOPLE.iter().filter(|p| p.municipality.id == DEMO.id).map(|p| p.profile_id).collect();
    let demo_wards: Vec<Uuid> = WARDS.iter().filter(|w| w.1 == DEMO.id).map(|w| w.0).collect();
    let other_wards: Vec<Uuid> = WARDS.iter().filter(|w| w.1 == OTHER.id).map(|w| w.0).collect();
    let demo_staff_tickets = [ticket(1), ticket(2), ticket(3), ticket(4), ticket(5), ticket(8)];

    struct Expect {
        who: &'static str,
        municipalities: Vec<Uuid>,
        wards: Vec<Uuid>,
        profiles: Vec<Uuid>,
        tickets: Vec<Uuid>,
        media: Vec<Uuid>,
        photos: Vec<Uuid>,
        intents: Vec<Uuid>,
    }
    let expectations = [
        Expect {
            who: CITIZEN,
            municipalities: vec![DEMO.id],
            wards: demo_wards.clone(),
            profiles: vec![pid(CITIZEN)],
            // Their own reports, the sensitive one included, but not its GBV evidence.
            tickets: vec![ticket(1), ticket(2), ticket(3)],
            media: vec![MEDIA_T1_EVIDENCE],
            photos: vec![PHOTO_CITIZEN],
            intents: vec![INTENT_CITIZEN],
        },
        Expect {
            who: WORKER,
            municipalities: vec![DEMO.id],
            wards: demo_wards.clone(),
            profiles: vec![pid(WORKER)],
            // Assigned and not sensitive: t1 and t4, not t8.
            tickets: vec![ticket(1), ticket(4)],
            media: vec![MEDIA_T1_EVIDENCE, MEDIA_T4_DOCUMENT],
            photos: vec![],
            intents: vec![],
        },
        Expect {
            who: MANAGER,
            municipalities: vec![DEMO.id],
            wards: demo_wards.clone(),
            profiles: demo_people.clone(),
            tickets: demo_staff_tickets.to_vec(),
            // Managers may upload GBV evidence but not read it.
            media: vec![MEDIA_T1_EVIDENCE, MEDIA_T4_DOCUMENT],
            photos: vec![PHOTO_MANAGER],
            intents: vec![INTENT_MANAGER_GBV],
        },
        Expect {
            who: SAPS,
            municipalities: vec![DEMO.id],
            wards: demo_wards.clone(),
            profiles: demo_people.clone(),
            tickets: demo_staff_tickets.to_vec(),
            media: vec![MEDIA_T1_EVIDENCE, MEDIA_T3_GBV, MEDIA_T4_DOCUMENT],
            photos: vec![],
            intents: vec![],
        },
        Expect {
            who: ADMIN,
            municipalities: vec![DEMO.id],
            wards: demo_wards.clone(),
            profiles: demo_people.clone(),
            tickets: demo_staff_tickets.to_vec(),
            media: vec![MEDIA_T1_EVIDENCE, MEDIA_T3_GBV, MEDIA_T4_DOCUMENT],
            photos: vec![],
            intents: vec![],
        },
        Expect {
            who: OTHER_CITIZEN,
            municipalities: vec![OTHER.id],
            wards: other_wards.clone(),
            profiles: vec![pid(OTHER_CITIZEN)],
            tickets: vec![ticket(6)],
            media: vec![MEDIA_T6_EVIDENCE],
            photos: vec![PHOTO_OTHER],
            intents: vec![],
        },
        Expect {
            who: OTHER_MANAGER,
            municipalities: vec![OTHER.id],
            wards: other_wards.clone(),
            profiles: vec![pid(OTHER_CITIZEN), pid(OTHER_MANAGER)],
            tickets: vec![ticket(6), ticket(7)],
            media: vec![MEDIA_T6_EVIDENCE],
            photos: vec![],
            intents: vec![],
        },
    ];

    for e in &expectations {
        let who = caller(e.who);
        assert_eq!(visible(&pool, &who, "municipalities").await, set(&e.municipalities), "{}: municipalities", e.who);
        assert_eq!(visible(&pool, &who, "wards").await, set(&e.wards), "{}: wards", e.who);
        assert_eq!(visible(&pool, &who, "profiles").await, set(&e.profiles), "{}: profiles", e.who);
        assert_eq!(visible(&pool, &who, "tickets").await, set(&e.tickets), "{}: tickets", e.who);
        assert_eq!(visible(&pool, &who, "media").await, set(&e.media), "{}: media", e.who);
        assert_eq!(visible(&pool, &who, "photos").await, set(&e.photos), "{}: photos", e.who);
        assert_eq!(visible(&pool, &who, "upload_intents").await, set(&e.intents), "{}: upload_intents", e.who);
        // Ticket history follows ticket visibility exactly.
        let event_tickets = ids_as(&pool, &who, "select distinct ticket_id::text from ticket_events").await.unwrap();
        assert_eq!(event_tickets, set(&e.tickets), "{}: ticket_events", e.who);
        // The tracking-number counters are the trigger's alone.
        let counters = exec_as(&pool, &who, "select 1 from ticket_counters", vec![]).await;
        assert!(counters.is_err(), "{}: ticket_counters must be unreadable", e.who);
    }
}

#[tokio::test]
async fn anonymous_and_claimless_callers_see_nothing() {
    let (db, pool) = setup().await;
    let tables =
        ["municipalities", "wards", "profiles", "tickets", "ticket_events", "media", "photos", "upload_intents"];
    // anon, a signed-in person without a profile, and `authenticated` without any claims.
    let strangers = [Caller::Anonymous, user_caller(Uuid::new_v4(), Some("stranger@example.test"))];
    for who in &strangers {
        for table in tables {
            assert!(visible(&pool, who, table).await.is_empty(), "{who:?} sees {table}");
        }
    }
    let tx = sea_orm::TransactionTrait::begin(&pool).await.unwrap();
    tx.execute_unprepared("set local role authenticated").await.unwrap();
    for table in tables {
        let rows = tx
            .query_all_raw(Statement::from_string(DbBackend::Postgres, format!("select * from {table}")))
            .await
            .unwrap();
        assert!(rows.is_empty(), "authenticated without claims sees {table}");
    }
    tx.rollback().await.unwrap();
    // The login role itself, not switched to any role, may read nothing at all.
    let raw = db.app_pool().await;
    for table in tables {
        let result =
            raw.query_all_raw(Statement::from_string(DbBackend::Postgres, format!("select * from {table}"))).await;
        let err = result.expect_err("authenticator must not read tables");
        assert!(matches!(classify(&err), DbFailure::Denied(_)), "{table}: {err}");
    }
}

#[tokio::test]
async fn force_row_level_security_is_on_for_every_table() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let rows = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "select c.relname::text as name, c.relrowsecurity and c.relforcerowsecurity as forced
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname in ('public', 'storage') and c.relkind = 'r'
               and c.relname <> 'seaql_migrations'
             order by 1",
        ))
        .await
        .unwrap();
    let tables: Vec<(String, bool)> = rows
        .iter()
        .map(|r| (r.try_get::<String>("", "name").unwrap(), r.try_get::<bool>("", "forced").unwrap()))
        .collect();
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "buckets",
        "media",
        "municipalities",
        "objects",
        "photos",
        "profiles",
        "ticket_counters",
        "ticket_events",
        "tickets",
        "upload_intents",
        "wards",
    ] {
        assert!(names.contains(&expected), "table {expected} is missing: {names:?}");
    }
    for (name, forced) in &tables {
        assert!(forced, "{name} does not have ENABLE and FORCE ROW LEVEL SECURITY");
    }
}

#[tokio::test]
async fn ticket_inserts() {
    let (_db, pool) = setup().await;
    let insert = |reporter: Uuid, municipality: Uuid, sensitive: bool| {
        format!(
            "insert into tickets (municipality_id, category, title, reporter_id, is_sensitive)
             values ('{municipality}', 'WATER', 'New', '{reporter}', {sensitive})"
        )
    };
    for who in [CITIZEN, MANAGER, SAPS, ADMIN, OTHER_CITIZEN, OTHER_MANAGER] {
        let p = demo::person(who).unwrap();
        assert_eq!(
            write(&pool, &caller(who), &insert(p.profile_id, p.municipality.id, false)).await,
            Outcome::Rows(1),
            "{who}"
        );
        assert_eq!(
            write(&pool, &caller(who), &insert(p.profile_id, p.municipality.id, true)).await,
            Outcome::Rows(1),
            "{who} sensitive"
        );
    }
    // Field workers do not create tickets.
    assert_eq!(write(&pool, &caller(WORKER), &insert(pid(WORKER), DEMO.id, false)).await, Outcome::Denied);
    // Nobody reports in someone else's name or into another municipality.
    assert_eq!(write(&pool, &caller(CITIZEN), &insert(pid(MANAGER), DEMO.id, false)).await, Outcome::Denied);
    assert_eq!(write(&pool, &caller(MANAGER), &insert(pid(MANAGER), OTHER.id, false)).await, Outcome::Denied);
    assert_eq!(write(&pool, &Caller::Anonymous, &insert(pid(CITIZEN), DEMO.id, false)).await, Outcome::Denied);
}

#[tokio::test]
async fn ticket_updates_and_deletes() {
    let (_db, pool) = setup().await;
    let set_status = |n: usize| format!("update tickets set status = 'IN_PROGRESS' where id = '{}'", ticket(n));
    let set_title = |n: usize| format!("update tickets set title = 'Renamed' where id = '{}'", ticket(n));
    let assign = |n: usize| format!("update tickets set assignee_id = '{}' where id = '{}'", pid(WORKER), ticket(n));

    // Citizens change nothing, not even their own reports.
    assert_eq!(write(&pool, &caller(CITIZEN), &set_status(1)).await, Outcome::Rows(0));
    // The field worker moves the status of what is assigned to them, and nothing else.
    assert_eq!(write(&pool, &caller(WORKER), &set_status(1)).await, Outcome::Rows(1));
    assert_eq!(write(&pool, &caller(WORKER), &set_title(1)).await, Outcome::Denied);
    assert_eq!(write(&pool, &caller(WORKER), &set_status(2)).await, Outcome::Rows(0), "not assigned");
    assert_eq!(write(&pool, &caller(WORKER), &set_status(8)).await, Outcome::Rows(0), "sensitive");
    // Managers and admins change and assign any ticket of their municipality.
    for who in [MANAGER, ADMIN] {
        for n in [1, 2, 3, 8] {
            assert_eq!(write(&pool, &caller(who), &set_status(n)).await, Outcome::Rows(1), "{who} t{n}");
        }
        assert_eq!(write(&pool, &caller(who), &assign(2)).await, Outcome::Rows(1), "{who} assigns");
        assert_eq!(write(&pool, &caller(who), &set_status(6)).await, Outcome::Rows(0), "{who}: other municipality");
    }
    // SAPS liaisons change the sensitive ones only.
    assert_eq!(write(&pool, &caller(SAPS), &set_status(3)).await, Outcome::Rows(1));
    assert_eq!(write(&pool, &caller(SAPS), &set_status(8)).await, Outcome::Rows(1));
    assert_eq!(write(&pool, &caller(SAPS), &set_status(1)).await, Outcome::Rows(0));
    // The other municipality's manager reaches none of demo's tickets.
    assert_eq!(write(&pool, &caller(OTHER_MANAGER), &set_status(1)).await, Outcome::Rows(0));
    assert_eq!(write(&pool, &caller(OTHER_MANAGER), &set_status(7)).await, Outcome::Rows(1));
    // Nobody deletes tickets or their history.
    for who in [CITIZEN, WORKER, MANAGER, SAPS, ADMIN, OTHER_MANAGER] {
        assert_eq!(write(&pool, &caller(who), "delete from tickets").await, Outcome::Rows(0), "{who}");
        assert_eq!(write(&pool, &caller(who), "delete from ticket_events").await, Outcome::Rows(0), "{who}");
        assert_eq!(write(&pool, &caller(who), "delete from media").await, Outcome::Rows(0), "{who}");
    }
}

#[tokio::test]
async fn profile_writes() {
    let (_db, pool) = setup().await;
    let rename = |who: &str| format!("update profiles set display_name = 'New Name' where id = '{}'", pid(who));
    // Always a real change of role, whatever the current one is.
    let promote = |who: &str| {
        format!(
            "update profiles set role = case role when 'manager' then 'admin' else 'manager' end where id = '{}'",
            pid(who)
        )
    };
    let move_to_other = |who: &str| {
        let own = demo::person(who).unwrap().municipality.id;
        let elsewhere = if own == DEMO.id { OTHER.id } else { DEMO.id };
        format!("update profiles set municipality_id = '{elsewhere}' where id = '{}'", pid(who))
    };

    for who in [CITIZEN, WORKER, MANAGER, SAPS, ADMIN, OTHER_CITIZEN] {
        assert_eq!(write(&pool, &caller(who), &rename(who)).await, Outcome::Rows(1), "{who} renames self");
        assert_eq!(write(&pool, &caller(who), &promote(who)).await, Outcome::Denied, "{who} promotes self");
        assert_eq!(write(&pool, &caller(who), &move_to_other(who)).await, Outcome::Denied, "{who} moves");
    }
    // Only an admin of the same municipality changes another person's role, and only the role.
    assert_eq!(write(&pool, &caller(ADMIN), &promote(WORKER)).await, Outcome::Rows(1));
    assert_eq!(write(&pool, &caller(ADMIN), &rename(WORKER)).await, Outcome::Denied);
    assert_eq!(write(&pool, &caller(ADMIN), &promote(OTHER_CITIZEN)).await, Outcome::Rows(0));
    for who in [CITIZEN, MANAGER, SAPS, OTHER_MANAGER] {
        assert_eq!(write(&pool, &caller(who), &promote(WORKER)).await, Outcome::Rows(0), "{who}");
        assert_eq!(write(&pool, &caller(who), &rename(WORKER)).await, Outcome::Rows(0), "{who}");
    }
    // Nobody deletes profiles.
    assert_eq!(write(&pool, &caller(ADMIN), "delete from profiles").await, Outcome::Rows(0));
    // A person without a profile registers as a citizen, and only as themselves.
    let newcomer = Uuid::new_v4();
    let register = |auth: Uuid, role: &str| {
        format!(
            "insert into profiles (auth_user_id, municipality_id, role, display_name) values ('{auth}', '{}', '{role}', 'New')",
            DEMO.id
        )
    };
    let who = user_caller(newcomer, None);
    assert_eq!(write(&pool, &who, &register(newcomer, "citizen")).await, Outcome::Rows(1));
    assert_eq!(write(&pool, &who, &register(newcomer, "admin")).await, Outcome::Denied);
    assert_eq!(write(&pool, &who, &register(Uuid::new_v4(), "citizen")).await, Outcome::Denied);
    assert_eq!(write(&pool, &Caller::Anonymous, &register(newcomer, "citizen")).await, Outcome::Denied);
}

#[tokio::test]
async fn media_and_intent_writes_hold_the_gbv_firewall() {
    let (_db, pool) = setup().await;
    // A ticket file confirms its uploader's own pending intent (P-MEDIA-INSERT): the intent
    // first, then the row, in one transaction.
    let add_media = |who: &str, n: usize, bucket: &str, purpose: &str| {
        let muni = demo::person(who).unwrap().municipality.id;
        let (intent, path) = (Uuid::new_v4(), format!("{muni}/{}/f.bin", Uuid::new_v4()));
        (
            format!(
                "insert into upload_intents (id, municipality_id, created_by, purpose, ticket_id, bucket, object_path,
                                             filename, content_type, max_size_bytes, expires_at)
                 values ('{intent}', '{muni}', '{me}', '{purpose}', '{t}', '{bucket}', '{path}', 'f.bin',
                         'application/pdf', 100, now() + interval '1 hour')",
                me = pid(who),
                t = ticket(n)
            ),
            format!(
                "insert into media (ticket_id, municipality_id, purpose, bucket, object_path, content_type, size_bytes,
                                    uploaded_by, upload_intent_id)
                 values ('{}', '{muni}', '{purpose}', '{bucket}', '{path}', 'application/pdf', 1, '{}', '{intent}')",
                ticket(n),
                pid(who)
            ),
        )
    };
    let write_media = async |who: &str, n: usize, bucket: &str, purpose: &str| {
        let (intent, media) = add_media(who, n, bucket, purpose);
        write_after(&pool, &caller(who), &intent, &media).await
    };
    // GBV evidence: managers, SAPS liaisons and admins upload; citizens (even the reporter)
    // and field workers do not.
    for who in [MANAGER, SAPS, ADMIN] {
        assert_eq!(write_media(who, 3, "gbv-evidence", "GBV_EVIDENCE").await, Outcome::Rows(1), "{who}");
    }
    for who in [CITIZEN, WORKER] {
        assert_eq!(write_media(who, 3, "gbv-evidence", "GBV_EVIDENCE").await, Outcome::Denied, "{who}");
    }
    // Evidence and documents: for tickets the uploader can see.
    assert_eq!(write_media(CITIZEN, 1, "evidence", "EVIDENCE").await, Outcome::Rows(1));
    assert_eq!(write_media(WORKER, 4, "documents", "DOCUMENT").await, Outcome::Rows(1));
    assert_eq!(write_media(WORKER, 2, "evidence", "EVIDENCE").await, Outcome::Denied);
    assert_eq!(write_media(OTHER_MANAGER, 1, "evidence", "EVIDENCE").await, Outcome::Denied);
    // Without an intent of one's own, no file row (it would open the object to the storage
    // read policy).
    let (_, orphan) = add_media(CITIZEN, 1, "evidence", "EVIDENCE");
    assert_eq!(write(&pool, &caller(CITIZEN), &orphan).await, Outcome::Denied);

    let add_intent = |who: &str, n: usize, bucket: &str, purpose: &str| {
        let muni = demo::person(who).unwrap().municipality.id;
        format!(
            "insert into upload_intents (municipality_id, created_by, purpose, ticket_id, bucket, object_path, filename,
                                         content_type, max_size_bytes, expires_at)
             values ('{muni}', '{}', '{purpose}', '{}', '{bucket}', '{muni}/{}/f.pdf', 'f.pdf', 'application/pdf', 100,
                     now() + interval '1 hour')",
            pid(who),
            ticket(n),
            Uuid::new_v4()
        )
    };
    for who in [MANAGER, SAPS, ADMIN] {
        assert_eq!(
            write(&pool, &caller(who), &add_intent(who, 3, "gbv-evidence", "GBV_EVIDENCE")).await,
            Outcome::Rows(1),
            "{who}"
        );
    }
    assert_eq!(
        write(&pool, &caller(CITIZEN), &add_intent(CITIZEN, 3, "gbv-evidence", "GBV_EVIDENCE")).await,
        Outcome::Denied
    );
    assert_eq!(write(&pool, &caller(CITIZEN), &add_intent(CITIZEN, 1, "evidence", "EVIDENCE")).await, Outcome::Rows(1));
    assert_eq!(
        write(&pool, &caller(OTHER_CITIZEN), &add_intent(OTHER_CITIZEN, 1, "evidence", "EVIDENCE")).await,
        Outcome::Denied
    );
    // Intents are their creator's: others can neither read (see select_matrix) nor change
    // them, and the creator only confirms a pending one (P-INTENT-UPDATE).
    let status = |s: &str| format!("update upload_intents set status = '{s}' where id = '{INTENT_CITIZEN}'");
    assert_eq!(write(&pool, &caller(CITIZEN), &status("CONFIRMED")).await, Outcome::Rows(1));
    assert_eq!(write(&pool, &caller(CITIZEN), &status("EXPIRED")).await, Outcome::Denied);
    let move_it = format!(
        "update upload_intents set bucket = 'gbv-evidence', purpose = 'GBV_EVIDENCE' where id = '{INTENT_CITIZEN}'"
    );
    assert_eq!(write(&pool, &caller(CITIZEN), &move_it).await, Outcome::Denied);
    assert_eq!(write(&pool, &caller(ADMIN), &status("CONFIRMED")).await, Outcome::Rows(0));
}

#[tokio::test]
async fn photo_writes_are_owner_only() {
    let (_db, pool) = setup().await;
    let add = |owner: &str| {
        format!(
            "insert into photos (profile_id, object_path, content_type, size_bytes) values ('{0}', '{0}/{1}/p.jpg', 'image/png', 5)",
            pid(owner),
            Uuid::new_v4()
        )
    };
    let delete = |id: Uuid| format!("delete from photos where id = '{id}'");
    assert_eq!(write(&pool, &caller(CITIZEN), &add(CITIZEN)).await, Outcome::Rows(1));
    assert_eq!(write(&pool, &caller(CITIZEN), &add(MANAGER)).await, Outcome::Denied);
    assert_eq!(write(&pool, &caller(CITIZEN), &delete(PHOTO_CITIZEN)).await, Outcome::Rows(1));
    for who in [MANAGER, ADMIN, OTHER_CITIZEN] {
        assert_eq!(write(&pool, &caller(who), &delete(PHOTO_CITIZEN)).await, Outcome::Rows(0), "{who}");
    }
}

#[tokio::test]
async fn notices_are_staff_only_and_tenants_are_read_only() {
    let (_db, pool) = setup().await;
    let notice = |who: &str, n: usize, kind: &str| {
        format!(
            "insert into ticket_events (ticket_id, municipality_id, kind, notice_kind, message, status, actor_profile_id, payload)
             values ('{}', '{}', '{kind}', 'INFO', 'hello', 'OPEN', '{}', '{{}}')",
            ticket(n),
            demo::person(who).unwrap().municipality.id,
            pid(who)
        )
    };
    assert_eq!(write(&pool, &caller(MANAGER), &notice(MANAGER, 1, "NOTICE")).await, Outcome::Rows(1));
    assert_eq!(write(&pool, &caller(ADMIN), &notice(ADMIN, 3, "NOTICE")).await, Outcome::Rows(1));
    for who in [CITIZEN, WORKER, SAPS] {
        assert_eq!(write(&pool, &caller(who), &notice(who, 1, "NOTICE")).await, Outcome::Denied, "{who}");
    }
    assert_eq!(write(&pool, &caller(OTHER_MANAGER), &notice(OTHER_MANAGER, 1, "NOTICE")).await, Outcome::Denied);
    // Only notices are written by people; CREATED/UPDATED come from the trigger. (The check
    // constraint pairs kind and notice_kind, so use a matching row.)
    let forged = format!(
        "insert into ticket_events (ticket_id, municipality_id, kind, status, actor_profile_id, payload)
         values ('{}', '{}', 'UPDATED', 'OPEN', '{}', '{{}}')",
        ticket(1),
        DEMO.id,
        pid(MANAGER)
    );
    assert_eq!(write(&pool, &caller(MANAGER), &forged).await, Outcome::Denied);
    for who in [CITIZEN, MANAGER, ADMIN] {
        let c = caller(who);
        assert_eq!(
            write(&pool, &c, &format!("insert into municipalities (name, slug) values ('X', 'x-{}')", who.len())).await,
            Outcome::Denied
        );
        assert_eq!(
            write(&pool, &c, &format!("insert into wards (municipality_id, name) values ('{}', 'W')", DEMO.id)).await,
            Outcome::Denied
        );
        assert_eq!(write(&pool, &c, "update municipalities set name = 'Renamed'").await, Outcome::Rows(0));
        assert_eq!(write(&pool, &c, "delete from wards").await, Outcome::Rows(0));
    }
}

#[tokio::test]
async fn read_only_sessions_cannot_write() {
    let (_db, pool) = setup().await;
    let tx = ward::db::begin(&pool, &caller(MANAGER), true).await.unwrap();
    let result =
        tx.execute_unprepared(&format!("update tickets set status = 'CLOSED' where id = '{}'", ticket(1))).await;
    let err = result.expect_err("a read-only session wrote");
    assert!(matches!(classify(&err), DbFailure::Denied(_)), "{err}");
    tx.rollback().await.unwrap();
    // The role and claims are local to the transaction: the pooled connection keeps nothing.
    let role = pool
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select current_user::text as r, coalesce(current_setting('request.jwt.claims', true), '') as c",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(role.try_get::<String>("", "r").unwrap(), "authenticator");
    assert_eq!(role.try_get::<String>("", "c").unwrap(), "");
}

#[tokio::test]
async fn the_ticket_policy_is_inlined_so_pages_use_the_indexes() {
    let (_db, pool) = setup().await;
    let tx = ward::db::begin(&pool, &caller(MANAGER), true).await.unwrap();
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "explain (verbose, costs off) select * from tickets order by created_at desc, id desc limit 51",
        ))
        .await
        .unwrap();
    let plan: Vec<String> = rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect();
    tx.rollback().await.unwrap();
    let plan = plan.join("\n");
    // A function call left in the plan would run once per ticket of the municipality.
    assert!(!plan.contains("ticket_visible_to"), "the visibility function was not inlined:\n{plan}");
    assert!(plan.contains("municipality_id = $"), "the municipality condition is not visible to the planner:\n{plan}");
}

/// P-SEARCH: `app.search_ticket_ids` (which reads through the trigram indexes as its owner)
/// answers every caller exactly what a search of the table under the tickets policy would:
/// for each demo person, the service role, and patterns that match visible, hidden and
/// sensitive tickets; `anon` may not call it.
#[tokio::test]
async fn search_through_the_index_sees_what_the_policy_shows() {
    let (_db, pool) = setup().await;
    let patterns = ["%pipe%", "%violence%", "%o%", "%water%", "%culvert%", "%street%", "%nothing matches%"];
    let mut callers: Vec<(String, Caller)> = PEOPLE.iter().map(|p| (p.email.to_string(), caller(p.email))).collect();
    callers.push(("service".into(), Caller::Service));
    let mut nonempty = 0;
    for (who, c) in &callers {
        for pattern in patterns {
            let through_index = ids_as(
                &pool,
                c,
                &format!("select id::text from tickets where id in (select app.search_ticket_ids('{pattern}'))"),
            )
            .await
            .unwrap();
            let raw = ids_as(&pool, c, &format!("select app.search_ticket_ids('{pattern}')::text")).await.unwrap();
            let policy = ids_as(
                &pool,
                c,
                &format!("select id::text from tickets where title ilike '{pattern}' or description ilike '{pattern}'"),
            )
            .await
            .unwrap();
            assert_eq!(raw, policy, "{who} {pattern}: the function alone tells no more than the table");
            assert_eq!(through_index, policy, "{who} {pattern}");
            nonempty += usize::from(!policy.is_empty());
        }
    }
    assert!(nonempty > 20, "the patterns match something for most callers ({nonempty})");
    // The sensitive case is found by those who may read it and nobody else.
    let violence = |email: &str| {
        let pool = pool.clone();
        let c = caller(email);
        async move { ids_as(&pool, &c, "select app.search_ticket_ids('%violence%')::text").await.unwrap() }
    };
    assert_eq!(violence(SAPS).await, set(&[ticket(3)]));
    assert_eq!(violence(MANAGER).await, set(&[ticket(3)]), "managers see sensitive tickets of their municipality");
    assert!(violence(WORKER).await.is_empty());
    assert!(violence(OTHER_MANAGER).await.is_empty());
    let anon = exec_as(&pool, &Caller::Anonymous, "select app.search_ticket_ids('%pipe%')", vec![]).await;
    assert!(anon.is_err(), "anon may not call it");
}
