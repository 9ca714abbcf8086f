//! The ticket trigger: every insert and update writes one `ticket_events` row and one
//! notification on the municipality's channel, with the documented payload.

use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::Value;
use ward::demo::{DEMO, OTHER};

use crate::helpers::{TestDb, caller};

async fn event_count(db: &TestDb, ticket: &str) -> i64 {
    let owner = db.owner().await;
    let row = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("select count(*) as n from ticket_events where ticket_id = '{ticket}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn next(listener: &mut PgListener) -> Value {
    let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .unwrap();
    assert_eq!(notification.channel(), format!("ticket_updates:{}", DEMO.id));
    serde_json::from_str(notification.payload()).unwrap()
}

#[tokio::test]
async fn insert_and_update_each_record_an_event_and_notify() {
    let db = TestDb::new().await;
    let mut demo_listener = PgListener::connect(db.owner_url().expose()).await.unwrap();
    demo_listener.listen(&format!("ticket_updates:{}", DEMO.id)).await.unwrap();
    let mut other_listener = PgListener::connect(db.owner_url().expose()).await.unwrap();
    other_listener.listen(&format!("ticket_updates:{}", OTHER.id)).await.unwrap();

    let pool = db.app_pool().await;
    let manager = caller("manager@demo.test");
    let tx = ward::db::begin(&pool, &manager, false).await.unwrap();
    let row = tx
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "insert into tickets (municipality_id, category, title, reporter_id, ward_id)
                 values ('{}', 'ROADS', 'Trigger test', app.current_profile_id(), '{}')
                 returning id::text as id, tracking_number",
                DEMO.id,
                ward::demo::WARDS[0].0
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let id: String = row.try_get("", "id").unwrap();
    let tracking: String = row.try_get("", "tracking_number").unwrap();
    assert!(tracking.starts_with("DEMO-"), "{tracking}");

    let created = next(&mut demo_listener).await;
    assert_eq!(created["type"], "CREATED");
    assert_eq!(created["ticket_id"], id.as_str());
    assert_eq!(created["tracking_number"], tracking.as_str());
    assert_eq!(created["status"], "OPEN");
    assert_eq!(created["category"], "ROADS");
    assert_eq!(created["municipality_id"], DEMO.id.to_string());
    assert_eq!(created["ward_id"], ward::demo::WARDS[0].0.to_string());
    assert_eq!(created["is_sensitive"], false);
    assert!(created["updated_at"].is_string());
    assert!(created["event_id"].is_i64());
    assert_eq!(event_count(&db, &id).await, 1);

    let tx = ward::db::begin(&pool, &manager, false).await.unwrap();
    tx.execute_unprepared(&format!("update tickets set status = 'IN_PROGRESS' where id = '{id}'")).await.unwrap();
    tx.commit().await.unwrap();
    let updated = next(&mut demo_listener).await;
    assert_eq!(updated["type"], "UPDATED");
    assert_eq!(updated["status"], "IN_PROGRESS");
    assert!(updated["event_id"].as_i64() > created["event_id"].as_i64());
    assert_eq!(event_count(&db, &id).await, 2);

    // The event rows carry what the notifications said, and who acted.
    let owner = db.owner().await;
    let rows = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "select id, kind, status, actor_profile_id::text as actor from ticket_events
                 where ticket_id = '{id}' order by id"
            ),
        ))
        .await
        .unwrap();
    let kinds: Vec<(i64, String, String)> = rows
        .iter()
        .map(|r| (r.try_get("", "id").unwrap(), r.try_get("", "kind").unwrap(), r.try_get("", "status").unwrap()))
        .collect();
    assert_eq!(kinds[0], (created["event_id"].as_i64().unwrap(), "CREATED".into(), "OPEN".into()));
    assert_eq!(kinds[1], (updated["event_id"].as_i64().unwrap(), "UPDATED".into(), "IN_PROGRESS".into()));
    let actor: String = rows[0].try_get("", "actor").unwrap();
    assert_eq!(actor, ward::demo::person("manager@demo.test").unwrap().profile_id.to_string());

    // Nothing went to the other municipality's channel.
    let other = tokio::time::timeout(Duration::from_millis(300), other_listener.recv()).await;
    assert!(other.is_err(), "the other municipality was notified: {other:?}");
}

#[tokio::test]
async fn a_rolled_back_change_neither_records_nor_notifies() {
    let db = TestDb::new().await;
    let mut listener = PgListener::connect(db.owner_url().expose()).await.unwrap();
    listener.listen(&format!("ticket_updates:{}", DEMO.id)).await.unwrap();
    let pool = db.app_pool().await;
    let tx = ward::db::begin(&pool, &caller("manager@demo.test"), false).await.unwrap();
    tx.execute_unprepared(&format!("update tickets set status = 'CLOSED' where id = '{}'", ward::demo::TICKETS[0].id))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let got = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(got.is_err(), "a rolled-back update notified: {got:?}");
    assert_eq!(event_count(&db, &ward::demo::TICKETS[0].id.to_string()).await, 1, "only the seed's CREATED");
}
