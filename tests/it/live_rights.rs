//! Live updates follow the subscriber's current rights (docs/POLICY.md, P-LIVE-RIGHTS): a
//! demotion, a move to another municipality or a deleted profile ends the open subscription
//! within a second, and nothing sensitive arrives afterwards; a forged `pg_notify` on a ticket
//! channel moves nothing (P-LIVE-NOTIFY).

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use ward::db;
use ward::demo::{self, DEMO, TICKETS};

use crate::helpers::people::*;
use crate::helpers::{caller, spawn_app};
use crate::subscriptions::{Client, SHARED_UPDATES, latest_event_id, set_status};

/// Waits for the server to end subscription `id`: an error with `code`, then `complete`.
async fn ended(client: &mut Client, code: &str, within: Duration) {
    let started = Instant::now();
    let message = client.next(within).await.expect("the subscription ends");
    assert!(started.elapsed() <= within, "ended after {:?}", started.elapsed());
    let error: &Value = match message["type"].as_str() {
        Some("next") => &message["payload"]["errors"][0],
        Some("error") => &message["payload"][0],
        _ => panic!("expected the end of the subscription, got {message}"),
    };
    assert_eq!(error["extensions"]["code"], code, "{message}");
    if message["type"] == "next" {
        let complete = client.next(Duration::from_secs(2)).await.expect("complete");
        assert_eq!(complete["type"], "complete", "{complete}");
    }
}

#[tokio::test]
async fn a_demoted_manager_loses_the_open_subscription_at_once() {
    let app = spawn_app().await;
    let start = latest_event_id(&app).await.to_string();
    let mut manager = Client::new(&app, MANAGER).await;
    let mut saps = Client::new(&app, SAPS).await;
    manager.subscribe("1", json!({ "after": start })).await;
    saps.subscribe("1", json!({ "after": start })).await;
    // Both see a change of the sensitive case while the manager is a manager.
    set_status(&app, SAPS, 3, "IN_PROGRESS").await;
    assert_eq!(manager.update().await["ticket"]["id"], TICKETS[2].id.to_string());
    assert_eq!(saps.update().await["ticket"]["id"], TICKETS[2].id.to_string());

    let demoted = app
        .graphql(
            Some(ADMIN),
            "mutation($id: ID!) { setProfileRole(profileId: $id, role: CITIZEN) { role } }",
            json!({ "id": demo::person(MANAGER).unwrap().profile_id.to_string() }),
        )
        .await;
    assert_eq!(demoted["data"]["setProfileRole"]["role"], "CITIZEN", "{demoted}");
    ended(&mut manager, "FORBIDDEN", Duration::from_secs(1)).await;

    // Sensitive and other people's tickets keep changing: the SAPS liaison sees it, the demoted
    // person (over the same socket) does not.
    set_status(&app, SAPS, 3, "RESOLVED").await;
    set_status(&app, ADMIN, 2, "RESOLVED").await;
    assert_eq!(saps.update().await["ticket"]["id"], TICKETS[2].id.to_string());
    manager.nothing_for(Duration::from_millis(500)).await;

    // Subscribing again gives the rights they have now: their own tickets only (none).
    manager.subscribe("2", json!({})).await;
    set_status(&app, SAPS, 3, "CLOSED").await;
    set_status(&app, ADMIN, 2, "CLOSED").await;
    manager.nothing_for(Duration::from_millis(500)).await;
}

/// The same with a document rendered once for a group (P-LIVE-SHARED): the group shares the
/// bytes of an update, never the decision of who receives it. After two updates the
/// subscription's deliveries are with the websocket, which must still end it at once.
#[tokio::test]
async fn a_demoted_manager_in_a_group_loses_the_open_subscription_at_once() {
    let app = spawn_app().await;
    let after = json!({ "after": latest_event_id(&app).await.to_string() });
    let mut manager = Client::new(&app, MANAGER).await;
    let mut saps = Client::new(&app, SAPS).await;
    manager.subscribe_to("1", SHARED_UPDATES, after.clone()).await;
    saps.subscribe_to("1", SHARED_UPDATES, after).await;
    for status in ["IN_PROGRESS", "RESOLVED"] {
        set_status(&app, SAPS, 3, status).await;
        assert_eq!(manager.update().await["ticket"]["id"], TICKETS[2].id.to_string());
        assert_eq!(saps.update().await["ticket"]["id"], TICKETS[2].id.to_string());
    }

    let demoted = app
        .graphql(
            Some(ADMIN),
            "mutation($id: ID!) { setProfileRole(profileId: $id, role: CITIZEN) { role } }",
            json!({ "id": demo::person(MANAGER).unwrap().profile_id.to_string() }),
        )
        .await;
    assert_eq!(demoted["data"]["setProfileRole"]["role"], "CITIZEN", "{demoted}");
    ended(&mut manager, "FORBIDDEN", Duration::from_secs(1)).await;

    // The group goes on for the SAPS liaison; nothing reaches the demoted person's socket.
    set_status(&app, SAPS, 3, "CLOSED").await;
    set_status(&app, ADMIN, 2, "RESOLVED").await;
    assert_eq!(saps.update().await["ticket"]["id"], TICKETS[2].id.to_string());
    assert_eq!(saps.update().await["ticket"]["id"], TICKETS[1].id.to_string());
    manager.nothing_for(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_move_to_another_municipality_or_a_deleted_profile_ends_the_subscription() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let start = latest_event_id(&app).await.to_string();
    let mut saps = Client::new(&app, SAPS).await;
    let mut worker = Client::new(&app, WORKER).await;
    let mut admin = Client::new(&app, ADMIN).await;
    for client in [&mut saps, &mut worker, &mut admin] {
        client.subscribe("1", json!({ "after": start })).await;
    }
    set_status(&app, ADMIN, 1, "IN_PROGRESS").await;
    for client in [&mut saps, &mut worker, &mut admin] {
        assert_eq!(client.update().await["ticket"]["id"], TICKETS[0].id.to_string());
    }

    // The SAPS liaison moves to the other municipality (the platform's service side does it).
    owner
        .execute_unprepared(&format!(
            "update profiles set municipality_id = '{}' where id = '{}'",
            demo::OTHER.id,
            demo::person(SAPS).unwrap().profile_id
        ))
        .await
        .unwrap();
    ended(&mut saps, "FORBIDDEN", Duration::from_secs(1)).await;

    // The field worker's profile is removed.
    let worker_id = demo::person(WORKER).unwrap().profile_id;
    owner
        .execute_unprepared(&format!(
            "update tickets set assignee_id = null where assignee_id = '{worker_id}';
             delete from profiles where id = '{worker_id}'"
        ))
        .await
        .unwrap();
    ended(&mut worker, "FORBIDDEN", Duration::from_secs(1)).await;

    // The admin, unchanged, keeps receiving (the unassignments above, then this).
    set_status(&app, ADMIN, 1, "RESOLVED").await;
    let mut last = admin.update().await;
    while last["status"] != "RESOLVED" {
        last = admin.update().await;
    }
    saps.nothing_for(Duration::from_millis(300)).await;
    worker.nothing_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_forged_notify_moves_nothing() {
    let app = spawn_app().await;
    let start = latest_event_id(&app).await.to_string();
    let mut manager = Client::new(&app, MANAGER).await;
    manager.subscribe("1", json!({ "after": start })).await;
    set_status(&app, MANAGER, 1, "IN_PROGRESS").await;
    let first = manager.update().await;
    let first_id: i64 = first["eventId"].as_str().unwrap().parse().unwrap();

    // Any role may pg_notify: a citizen announces an event far in the future on the
    // municipality's channel, one on the profile channel, and one through the event writers'
    // own announcer (migration 0013), which authenticated may call.
    let pool = app.db.app_pool().await;
    let tx = db::begin(&pool, &caller(CITIZEN), false).await.unwrap();
    tx.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        format!(
            "select pg_notify('ticket_updates:{m}', '{{\"event_id\": 999999999, \"municipality_id\": \"{m}\", \"ticket_id\": \"{t}\", \"status\": \"CLOSED\"}}'),
                    pg_notify('ward_profile_changes', 'not a profile id'),
                    app.announce_ticket_event('{m}', 999999998, '{{\"ticket_id\": \"{t}\", \"status\": \"CLOSED\"}}'::jsonb)",
            m = DEMO.id,
            t = TICKETS[2].id
        ),
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // Nothing arrives for the forgery, and the subscription lives on.
    manager.nothing_for(Duration::from_millis(500)).await;

    // The next real event is delivered: the watermark did not move to the forged id.
    set_status(&app, MANAGER, 1, "RESOLVED").await;
    let next = manager.update().await;
    let next_id: i64 = next["eventId"].as_str().unwrap().parse().unwrap();
    assert!(next_id > first_id && next_id < 999_999_999, "{next}");
    assert_eq!(next["status"], "RESOLVED");
}
