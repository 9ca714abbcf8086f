//! The realtime hub under stress: a PostgreSQL restart in the middle of a stream of updates
//! (zero lost, zero duplicated), and a slow consumer that is ended without delaying others.

use std::time::Duration;

use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use ward::demo::{self, TICKETS};
use ward::realtime::{Realtime, SubscriptionError, Viewer};

use crate::helpers::{OwnStack, TestDb, caller};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_stream_loses_and_duplicates_nothing() {
    let stack = OwnStack::start("restart", &[]).await;
    let (addr, owner_url) = (stack.addr, stack.owner_url.clone());
    let manager = demo::person("manager@demo.test").unwrap();
    let token = stack.issuer.user_token(manager.auth_user_id, Some(manager.email), None, 600).unwrap();
    let mut client = match crate::subscriptions::connect(
        addr,
        json!({ "Authorization": format!("Bearer {token}") }),
        "graphql-transport-ws",
    )
    .await
    {
        crate::subscriptions::Init::Acked(client) => client,
        crate::subscriptions::Init::Closed(code, reason) => panic!("{code} {reason}"),
    };
    let start = stack.latest_event_id().await;
    client.subscribe("1", json!({ "after": start.to_string() })).await;

    // A writer changes a ticket 60 times, retrying what fails while the database is down,
    // while the database restarts after the 20th change.
    let writer_url = owner_url.clone();
    let writer = tokio::spawn(async move {
        let mut done = 0;
        while done < 60 {
            let attempt = async {
                let db = ward::db::connect(&writer_url, 1).await?;
                db.execute_unprepared(&format!(
                    "update tickets set priority = case priority when 'HIGH' then 'LOW' else 'HIGH' end where id = '{}'",
                    TICKETS[0].id
                ))
                .await?;
                db.close().await
            };
            if attempt.await.is_ok() {
                done += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let mut received = Vec::new();
    let mut restarted = false;
    while received.len() < 60 {
        // A nested field read while the database is down fails UNAVAILABLE (the update itself,
        // fanned out once the listener has caught up, still arrives).
        let message = client.next(Duration::from_secs(10)).await.expect("an update within 10 s");
        assert_eq!(message["type"], "next", "{message}");
        if let Some(errors) = message["payload"]["errors"].as_array() {
            assert!(errors.iter().all(|e| e["extensions"]["code"] == "UNAVAILABLE"), "{message}");
        }
        let update = &message["payload"]["data"]["ticketUpdates"];
        received.push(update["eventId"].as_str().unwrap().parse::<i64>().unwrap());
        if received.len() == 20 && !restarted {
            tokio::task::block_in_place(|| stack.cluster.restart()).unwrap();
            restarted = true;
        }
    }
    writer.await.unwrap();
    client.nothing_for(Duration::from_millis(500)).await;
    let owner = ward::db::connect(&owner_url, 1).await.unwrap();
    let committed: Vec<i64> = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("select id from ticket_events where id > {start} and ticket_id = '{}' order by id", TICKETS[0].id),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<i64>("", "id").unwrap())
        .collect();
    assert_eq!(received, committed, "every committed event, once, in order");
    stack.wait_ready().await;
    stack.shutdown().await;
}

/// A realtime hub on `db` with subscriber buffers of `buffer`, once its listener is ready.
async fn ready_hub(db: &TestDb, buffer: usize) -> (Realtime, CancellationToken) {
    let stop = CancellationToken::new();
    let realtime = Realtime::start(db.app_pool().await, db.app_url(), buffer, stop.clone());
    for _ in 0..200 {
        if realtime.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (realtime, stop)
}

/// The demo manager as a subscriber and as a caller.
fn manager() -> (Viewer, ward::auth::Caller) {
    let person = demo::person("manager@demo.test").unwrap();
    let viewer = Viewer { profile_id: person.profile_id, role: person.role, municipality_id: person.municipality.id };
    (viewer, caller("manager@demo.test"))
}

#[tokio::test]
async fn a_slow_consumer_is_ended_and_does_not_hold_up_others() {
    let db = TestDb::new().await;
    let (realtime, stop) = ready_hub(&db, 4).await;
    let (viewer, who) = manager();
    let slow = realtime.subscribe(who.clone(), viewer, None, None).await.unwrap();
    let mut fast = Box::pin(realtime.subscribe(who, viewer, None, None).await.unwrap());
    let owner = db.owner().await;
    for i in 0..10 {
        owner
            .execute_unprepared(&format!("update tickets set title = 'Change {i}' where id = '{}'", TICKETS[1].id))
            .await
            .unwrap();
        // The fast subscriber keeps up.
        let delivery = tokio::time::timeout(Duration::from_secs(5), fast.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(delivery.ticket.unwrap().title, format!("Change {i}"));
    }
    // The slow one gets what fit in its buffer, then an error telling it where to resume.
    let mut slow = Box::pin(slow);
    let mut got = Vec::new();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), slow.next()).await.unwrap() {
            Some(Ok(delivery)) => got.push(delivery.event.id),
            Some(Err(error)) => break error,
            None => panic!("ended without saying why"),
        }
    };
    assert_eq!(got.len(), 4);
    match ended {
        SubscriptionError::SlowConsumer { last_event_id } => assert_eq!(last_event_id, got[3]),
        other => panic!("{other:?}"),
    }
    assert!(slow.next().await.is_none());
    assert_eq!(realtime.stats().slow_consumers.load(std::sync::atomic::Ordering::Relaxed), 1);
    stop.cancel();
}

#[tokio::test]
async fn subscribing_while_the_last_subscriber_leaves_never_loses_the_channel() {
    let db = TestDb::new().await;
    let (realtime, stop) = ready_hub(&db, 16).await;
    let (viewer, who) = manager();
    let owner = db.owner().await;
    let mut current = Box::pin(realtime.subscribe(who.clone(), viewer, None, None).await.unwrap());
    for round in 0..200 {
        // A newcomer subscribes while the only subscriber leaves: the Listen and the Unlisten
        // of the one municipality race, in a different interleaving each round.
        let newcomer = {
            let (realtime, who) = (realtime.clone(), who.clone());
            tokio::spawn(async move { realtime.subscribe(who, viewer, None, None).await.map(Box::pin) })
        };
        for _ in 0..(round % 5) {
            tokio::task::yield_now().await;
        }
        drop(current);
        current = newcomer.await.unwrap().unwrap();
        if round % 20 == 19 {
            // The channel is still listened to: a change reaches the newcomer.
            owner
                .execute_unprepared(&format!(
                    "update tickets set title = 'Round {round}' where id = '{}'",
                    TICKETS[0].id
                ))
                .await
                .unwrap();
            let delivery = tokio::time::timeout(Duration::from_secs(5), current.next())
                .await
                .unwrap_or_else(|_| panic!("round {round}: the update never came"))
                .unwrap()
                .unwrap();
            assert_eq!(delivery.ticket.unwrap().title, format!("Round {round}"));
        }
    }
    assert_eq!(realtime.subscriber_count(), 1);
    stop.cancel();
}
