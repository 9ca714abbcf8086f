//! Tickets through GraphQL: the GBV firewall on reads, every mutation's permission and
//! bad-input cases, Relay paging, and the statement count of nested pages.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;
use ward::demo::{self, DEMO, TICKETS, WARDS};

use crate::helpers::people::*;
use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with};

const ALL: [&str; 7] = [CITIZEN, WORKER, MANAGER, SAPS, ADMIN, OTHER_CITIZEN, OTHER_MANAGER];

fn t(n: usize) -> String {
    TICKETS[n - 1].id.to_string()
}

fn pid(email: &str) -> String {
    demo::person(email).unwrap().profile_id.to_string()
}

async fn owner_exec(app: &TestApp, sql: &str) {
    app.db.owner().await.execute_unprepared(sql).await.unwrap();
}

/// One evidence file and one GBV file on the sensitive ticket t3, one evidence file on t1.
async fn add_media(app: &TestApp) {
    owner_exec(
        app,
        &format!(
            "insert into media (ticket_id, municipality_id, purpose, bucket, object_path, content_type, size_bytes) values
               ('{t3}', '{d}', 'GBV_EVIDENCE', 'gbv-evidence', '{d}/a/statement.pdf', 'application/pdf', 3),
               ('{t3}', '{d}', 'DOCUMENT', 'documents', '{d}/b/form.pdf', 'application/pdf', 3),
               ('{t1}', '{d}', 'EVIDENCE', 'evidence', '{d}/c/leak.jpg', 'image/jpeg', 3)",
            t3 = t(3),
            t1 = t(1),
            d = DEMO.id
        ),
    )
    .await;
}

fn data<'a>(response: &'a Value, field: &str) -> &'a Value {
    assert!(response.get("errors").is_none(), "{field}: {response}");
    &response["data"][field]
}

#[tokio::test]
async fn the_gbv_firewall_on_reads() {
    let app = spawn_app().await;
    add_media(&app).await;
    let query = "query($id: ID!) { ticket(id: $id) { isSensitive reporter { id } media { bucket } evidence { bucket } events { kind } } }";
    for who in ALL {
        let response = app.graphql(Some(who), query, json!({ "id": t(3) })).await;
        let ticket = data(&response, "ticket");
        let buckets: BTreeSet<String> = ticket["media"]
            .as_array()
            .map(|m| m.iter().map(|x| x["bucket"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        match who {
            // The reporter sees their case but none of its files: every file of a sensitive
            // ticket is for SAPS liaisons and admins (P-GBV-READ), documents too.
            CITIZEN => {
                assert_eq!(ticket["isSensitive"], true);
                assert_eq!(buckets, BTreeSet::new(), "{who}");
                assert_eq!(ticket["evidence"], json!([]), "{who}");
            }
            // Managers see the case but none of its files.
            MANAGER => {
                assert_eq!(buckets, BTreeSet::new(), "{who}");
                assert_eq!(ticket["evidence"], json!([]), "{who}");
            }
            SAPS | ADMIN => {
                assert_eq!(buckets, BTreeSet::from(["documents".to_string(), "gbv-evidence".to_string()]), "{who}");
                assert_eq!(ticket["evidence"], json!([{ "bucket": "gbv-evidence" }]), "{who}");
                assert_eq!(ticket["reporter"]["id"], pid(CITIZEN));
            }
            // Field workers and the other municipality: no such ticket.
            _ => assert!(ticket.is_null(), "{who} sees the sensitive ticket: {response}"),
        }
    }
    // The ordinary evidence of t1 reaches everyone who sees t1.
    for who in [CITIZEN, WORKER, MANAGER, SAPS, ADMIN] {
        let response = app.graphql(Some(who), query, json!({ "id": t(1) })).await;
        assert_eq!(data(&response, "ticket")["evidence"], json!([{ "bucket": "evidence" }]), "{who}");
    }
    for who in [OTHER_CITIZEN, OTHER_MANAGER] {
        let response = app.graphql(Some(who), query, json!({ "id": t(1) })).await;
        assert!(data(&response, "ticket").is_null(), "{who}");
    }
    // A page loads its tickets' files ahead: for every person and ticket it shows exactly
    // what the single ticket shows (checked against the contract above).
    let fields =
        "id media { bucket } evidence { bucket } events { kind } ward { name } reporter { id } assignee { id }";
    let page = format!("{{ tickets(first: 100) {{ nodes {{ {fields} }} }} }}");
    let single = format!("query($id: ID!) {{ ticket(id: $id) {{ {fields} }} }}");
    for who in ALL {
        let response = app.graphql(Some(who), &page, json!({})).await;
        let nodes = data(&response, "tickets")["nodes"].as_array().unwrap().clone();
        for n in [1, 3] {
            let in_page = nodes.iter().find(|node| node["id"] == t(n)).cloned().unwrap_or(Value::Null);
            let alone = app.graphql(Some(who), &single, json!({ "id": t(n) })).await;
            assert_eq!(&in_page, data(&alone, "ticket"), "{who}, ticket {n}");
        }
    }
}

#[tokio::test]
async fn reporter_and_assignee_are_null_where_the_profile_is_hidden() {
    let app = spawn_app().await;
    let query =
        "query($id: ID!) { ticket(id: $id) { reporter { displayName } assignee { displayName } ward { name } } }";
    // The citizen sees their ticket but not the field worker's profile.
    let response = app.graphql(Some(CITIZEN), query, json!({ "id": t(1) })).await;
    let ticket = data(&response, "ticket");
    assert_eq!(ticket["reporter"]["displayName"], "Thandi Citizen");
    assert!(ticket["assignee"].is_null());
    assert_eq!(ticket["ward"]["name"], WARDS[0].2);
    // The manager sees both.
    let response = app.graphql(Some(MANAGER), query, json!({ "id": t(1) })).await;
    let ticket = data(&response, "ticket");
    assert_eq!(ticket["assignee"]["displayName"], "Sipho Worker");

    // The same through a page, which loads its tickets' profiles ahead: by nodes and by edges.
    let page = "{ tickets(first: 100) { nodes { id reporter { displayName } assignee { displayName } }
        edges { node { id assignee { displayName } } } } }";
    let find = |response: &Value, list: &str, id: &str| -> Value {
        let items = data(response, "tickets")[list].as_array().unwrap().clone();
        let item = items.into_iter().find(|i| i["id"] == id || i["node"]["id"] == id).expect("the ticket in the page");
        if list == "edges" { item["node"].clone() } else { item }
    };
    let response = app.graphql(Some(CITIZEN), page, json!({})).await;
    let node = find(&response, "nodes", &t(1));
    assert_eq!(node["reporter"]["displayName"], "Thandi Citizen", "{node}");
    assert!(node["assignee"].is_null(), "{node}");
    assert!(find(&response, "edges", &t(1))["assignee"].is_null());
    let response = app.graphql(Some(MANAGER), page, json!({})).await;
    assert_eq!(find(&response, "nodes", &t(1))["assignee"]["displayName"], "Sipho Worker");
    assert_eq!(find(&response, "edges", &t(1))["assignee"]["displayName"], "Sipho Worker");
}

const CREATE: &str = "mutation($input: CreateTicketInput!) { createTicket(input: $input) {
    id trackingNumber status isSensitive slaDueAt createdAt version reporter { id } ward { id } } }";

#[tokio::test]
async fn creating_tickets() {
    let app = spawn_app().await;
    let input =
        |title: &str| json!({ "input": { "title": title, "category": "WATER", "wardId": WARDS[0].0.to_string() } });
    for who in [CITIZEN, MANAGER, SAPS, ADMIN] {
        let response = app.graphql(Some(who), CREATE, input("Leaking hydrant")).await;
        let ticket = data(&response, "createTicket");
        assert_eq!(ticket["reporter"]["id"], pid(who));
        assert_eq!(ticket["status"], "OPEN");
        assert_eq!(ticket["version"], 1);
        let number = ticket["trackingNumber"].as_str().unwrap();
        assert!(number.starts_with(&format!("DEMO-{}-", chrono::Utc::now().format("%Y"))), "{number}");
        let created = chrono::DateTime::parse_from_rfc3339(ticket["createdAt"].as_str().unwrap()).unwrap();
        let due = chrono::DateTime::parse_from_rfc3339(ticket["slaDueAt"].as_str().unwrap()).unwrap();
        assert_eq!((due - created).num_hours(), 48, "WATER has a 48 hour SLA");
    }
    let denied = app.graphql(Some(WORKER), CREATE, input("Worker's own")).await;
    assert_eq!(error_code(&denied), Some("FORBIDDEN"), "{denied}");
    let anonymous = app.graphql(None, CREATE, input("Anonymous")).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"), "{anonymous}");
    // A ward of another municipality, an empty title, an unknown category.
    let foreign_ward = json!({ "input": { "title": "x", "category": "WATER", "wardId": WARDS[2].0.to_string() } });
    assert_eq!(error_code(&app.graphql(Some(CITIZEN), CREATE, foreign_ward).await), Some("BAD_USER_INPUT"));
    assert_eq!(error_code(&app.graphql(Some(CITIZEN), CREATE, input("   ")).await), Some("BAD_USER_INPUT"));
    // A value the schema's types refuse is caught before execution.
    let bad_category = json!({ "input": { "title": "x", "category": "MAGIC" } });
    assert_eq!(error_code(&app.graphql(Some(CITIZEN), CREATE, bad_category).await), Some("GRAPHQL_VALIDATION_FAILED"));
    let bad_ward_id = json!({ "input": { "title": "x", "category": "WATER", "wardId": "not-a-uuid" } });
    assert_eq!(error_code(&app.graphql(Some(CITIZEN), CREATE, bad_ward_id).await), Some("BAD_USER_INPUT"));
    // Nothing was created by the refused attempts: the citizen has the three seeded tickets
    // plus the one above.
    let count = app.graphql(Some(CITIZEN), "{ tickets { totalCount } }", json!({})).await;
    assert_eq!(data(&count, "tickets")["totalCount"], 4);
}

#[tokio::test]
async fn tracking_numbers_are_unique_under_concurrent_creation() {
    let app = spawn_app().await;
    let requests = (0..24).map(|i| {
        let app = &app;
        async move {
            let who = if i % 2 == 0 { CITIZEN } else { MANAGER };
            let response = app
                .graphql(
                    Some(who),
                    CREATE,
                    json!({ "input": { "title": format!("Concurrent {i}"), "category": "ROADS" } }),
                )
                .await;
            data(&response, "createTicket")["trackingNumber"].as_str().unwrap().to_string()
        }
    });
    let numbers: Vec<String> = futures_util::future::join_all(requests).await;
    let distinct: BTreeSet<&String> = numbers.iter().collect();
    assert_eq!(distinct.len(), numbers.len(), "{numbers:?}");
}

const UPDATE: &str = "mutation($id: ID!, $input: UpdateTicketInput!, $v: Int!) {
    updateTicket(id: $id, input: $input, expectedVersion: $v) { title priority version } }";

#[tokio::test]
async fn updating_with_optimistic_concurrency() {
    let app = spawn_app().await;
    let vars =
        |n: usize, title: &str, v: i32| json!({ "id": t(n), "input": { "title": title, "priority": "HIGH" }, "v": v });
    let ok = app.graphql(Some(MANAGER), UPDATE, vars(2, "Pothole, deeper now", 1)).await;
    assert_eq!(data(&ok, "updateTicket"), &json!({ "title": "Pothole, deeper now", "priority": "HIGH", "version": 2 }));
    // Someone else still holding version 1 gets CONFLICT and changes nothing.
    let stale = app.graphql(Some(ADMIN), UPDATE, vars(2, "Overwritten", 1)).await;
    assert_eq!(error_code(&stale), Some("CONFLICT"), "{stale}");
    let now = app
        .graphql(Some(MANAGER), "query($id: ID!) { ticket(id: $id) { title version } }", json!({ "id": t(2) }))
        .await;
    assert_eq!(data(&now, "ticket"), &json!({ "title": "Pothole, deeper now", "version": 2 }));
    // Who may edit: not the reporter, not the field worker; SAPS only sensitive ones.
    assert_eq!(error_code(&app.graphql(Some(CITIZEN), UPDATE, vars(2, "Mine", 2)).await), Some("FORBIDDEN"));
    assert_eq!(error_code(&app.graphql(Some(WORKER), UPDATE, vars(1, "Mine", 1)).await), Some("FORBIDDEN"));
    assert_eq!(error_code(&app.graphql(Some(SAPS), UPDATE, vars(2, "Mine", 2)).await), Some("FORBIDDEN"));
    let saps = app.graphql(Some(SAPS), UPDATE, vars(3, "Case 3", 1)).await;
    assert_eq!(data(&saps, "updateTicket")["version"], 2);
    // Another municipality's ticket does not exist for them; unknown ids neither.
    assert_eq!(error_code(&app.graphql(Some(OTHER_MANAGER), UPDATE, vars(2, "x", 2)).await), Some("NOT_FOUND"));
    let unknown = json!({ "id": Uuid::new_v4().to_string(), "input": { "title": "x" }, "v": 1 });
    assert_eq!(error_code(&app.graphql(Some(MANAGER), UPDATE, unknown).await), Some("NOT_FOUND"));
    let nothing = json!({ "id": t(2), "input": {}, "v": 2 });
    assert_eq!(error_code(&app.graphql(Some(MANAGER), UPDATE, nothing).await), Some("BAD_USER_INPUT"));
}

const STATUS: &str = "mutation($id: ID!, $s: TicketStatus!, $note: String) {
    setTicketStatus(id: $id, status: $s, note: $note) { status version events { kind status message } } }";

#[tokio::test]
async fn status_transitions() {
    let app = spawn_app().await;
    let vars = |n: usize, s: &str| json!({ "id": t(n), "s": s });
    // The field worker starts work on an assigned ticket, with a note kept in the history.
    let started =
        app.graphql(Some(WORKER), STATUS, json!({ "id": t(1), "s": "IN_PROGRESS", "note": "Crew on site" })).await;
    let ticket = data(&started, "setTicketStatus");
    assert_eq!(ticket["status"], "IN_PROGRESS");
    assert_eq!(
        ticket["events"].as_array().unwrap().last().unwrap(),
        &json!({ "kind": "UPDATED", "status": "IN_PROGRESS", "message": "Crew on site" })
    );
    // but may not reject it, and cannot reach tickets not assigned to them.
    assert_eq!(error_code(&app.graphql(Some(WORKER), STATUS, vars(1, "REJECTED")).await), Some("FORBIDDEN"));
    assert_eq!(error_code(&app.graphql(Some(WORKER), STATUS, vars(2, "RESOLVED")).await), Some("NOT_FOUND"));
    // Citizens change no status, even of their own reports.
    assert_eq!(error_code(&app.graphql(Some(CITIZEN), STATUS, vars(2, "RESOLVED")).await), Some("FORBIDDEN"));
    // The workflow: no skipping from RESOLVED back to IN_PROGRESS, no same-status moves;
    // reopening is allowed.
    assert_eq!(error_code(&app.graphql(Some(MANAGER), STATUS, vars(5, "IN_PROGRESS")).await), Some("BAD_USER_INPUT"));
    assert_eq!(error_code(&app.graphql(Some(MANAGER), STATUS, vars(5, "RESOLVED")).await), Some("BAD_USER_INPUT"));
    assert_eq!(data(&app.graphql(Some(MANAGER), STATUS, vars(5, "OPEN")).await, "setTicketStatus")["status"], "OPEN");
    // SAPS liaisons move sensitive tickets only.
    assert_eq!(error_code(&app.graphql(Some(SAPS), STATUS, vars(2, "RESOLVED")).await), Some("FORBIDDEN"));
    assert_eq!(
        data(&app.graphql(Some(SAPS), STATUS, vars(3, "IN_PROGRESS")).await, "setTicketStatus")["status"],
        "IN_PROGRESS"
    );
    // Other municipality: not found. Over-long note: bad input.
    assert_eq!(error_code(&app.graphql(Some(OTHER_MANAGER), STATUS, vars(2, "RESOLVED")).await), Some("NOT_FOUND"));
    let long_note = json!({ "id": t(2), "s": "RESOLVED", "note": "x".repeat(2001) });
    assert_eq!(error_code(&app.graphql(Some(MANAGER), STATUS, long_note).await), Some("BAD_USER_INPUT"));
}

const ASSIGN: &str =
    "mutation($id: ID!, $a: ID!) { assignTicket(id: $id, assigneeId: $a) { assignee { id } version } }";

#[tokio::test]
async fn assignment() {
    let app = spawn_app().await;
    let vars = |n: usize, who: &str| json!({ "id": t(n), "a": pid(who) });
    let ok = app.graphql(Some(MANAGER), ASSIGN, vars(2, WORKER)).await;
    assert_eq!(data(&ok, "assignTicket")["assignee"]["id"], pid(WORKER));
    // Managers can be assignees too; citizens, SAPS liaisons and other tenants' staff cannot.
    assert!(app.graphql(Some(ADMIN), ASSIGN, vars(5, MANAGER)).await.get("errors").is_none());
    for bad in [CITIZEN, SAPS, OTHER_MANAGER] {
        let response = app.graphql(Some(MANAGER), ASSIGN, vars(2, bad)).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{bad}: {response}");
    }
    assert_eq!(error_code(&app.graphql(Some(WORKER), ASSIGN, vars(1, WORKER)).await), Some("FORBIDDEN"));
    assert_eq!(error_code(&app.graphql(Some(CITIZEN), ASSIGN, vars(1, WORKER)).await), Some("FORBIDDEN"));
    assert_eq!(error_code(&app.graphql(Some(SAPS), ASSIGN, vars(1, WORKER)).await), Some("FORBIDDEN"));
    assert_eq!(error_code(&app.graphql(Some(OTHER_MANAGER), ASSIGN, vars(1, WORKER)).await), Some("NOT_FOUND"));
    // Now the worker sees ticket 2.
    let seen = app.graphql(Some(WORKER), "query($id: ID!) { ticket(id: $id) { id } }", json!({ "id": t(2) })).await;
    assert_eq!(data(&seen, "ticket")["id"], t(2));
}

const NOTICE: &str = "mutation($id: ID!, $k: String!, $m: String!) {
    publishTicketNotice(ticketId: $id, kind: $k, message: $m) { kind noticeKind message actor { id } } }";

#[tokio::test]
async fn notices() {
    let app = spawn_app().await;
    let vars = |n: usize| json!({ "id": t(n), "k": "CREW_DISPATCHED", "m": "A crew is on its way" });
    let ok = app.graphql(Some(MANAGER), NOTICE, vars(1)).await;
    assert_eq!(
        data(&ok, "publishTicketNotice"),
        &json!({ "kind": "NOTICE", "noticeKind": "CREW_DISPATCHED", "message": "A crew is on its way", "actor": { "id": pid(MANAGER) } })
    );
    for who in [CITIZEN, WORKER, SAPS] {
        assert_eq!(error_code(&app.graphql(Some(who), NOTICE, vars(1)).await), Some("FORBIDDEN"), "{who}");
    }
    assert_eq!(error_code(&app.graphql(Some(OTHER_MANAGER), NOTICE, vars(1)).await), Some("NOT_FOUND"));
    let bad_kind = json!({ "id": t(1), "k": "crew dispatched", "m": "x" });
    assert_eq!(error_code(&app.graphql(Some(MANAGER), NOTICE, bad_kind).await), Some("BAD_USER_INPUT"));
    // The relay (service role) publishes on any ticket.
    let now = chrono::Utc::now().timestamp();
    let service = app.issuer.sign(&json!({ "role": "service_role", "iat": now, "exp": now + 60 })).unwrap();
    let response = app.graphql_with_header(Some(&format!("Bearer {service}")), NOTICE, vars(6)).await;
    assert_eq!(data(&response, "publishTicketNotice")["actor"], Value::Null);
}

#[tokio::test]
async fn sla_sweep_records_one_breach_per_ticket() {
    let app = spawn_app().await;
    owner_exec(
        &app,
        &format!(
            "update tickets set sla_due_at = now() - interval '1 hour' where id in ('{}', '{}', '{}')",
            t(1),
            t(5),
            t(6)
        ),
    )
    .await;
    let pool = app.db.app_pool().await;
    let sweep = || async {
        let tx = ward::db::begin(&pool, &ward::auth::Caller::Service, false).await.unwrap();
        let n = ward::domain::tickets::sweep_sla_breaches(&tx).await.unwrap();
        tx.commit().await.unwrap();
        n
    };
    // t5 is RESOLVED: not breached. Two sweeps in a row (or two servers) record each once.
    let (a, b) = tokio::join!(sweep(), sweep());
    assert_eq!(a + b, 2);
    assert_eq!(sweep().await, 0);
    let events = app
        .graphql(Some(MANAGER), "query($id: ID!) { ticket(id: $id) { events { noticeKind } } }", json!({ "id": t(1) }))
        .await;
    let kinds: Vec<&Value> =
        data(&events, "ticket")["events"].as_array().unwrap().iter().map(|e| &e["noticeKind"]).collect();
    // CREATED (seed), UPDATED (the due time moved above), then the breach.
    assert_eq!(kinds, vec![&Value::Null, &Value::Null, &json!("SLA_BREACHED")]);
}

const PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String, $filter: TicketFilter, $order: TicketOrder) {
    tickets(first: $first, after: $after, last: $last, before: $before, filter: $filter, orderBy: $order) {
      totalCount edges { cursor node { id title } } nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

fn ids(connection: &Value) -> Vec<String> {
    connection["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn paging_filtering_and_visibility() {
    let app = spawn_app().await;
    // Walk the manager's tickets two at a time.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let response = app.graphql(Some(MANAGER), PAGE, json!({ "first": 2, "after": after })).await;
        let page = data(&response, "tickets").clone();
        assert_eq!(page["totalCount"], if after.is_none() { 5 } else { 6 });
        seen.extend(ids(&page));
        if after.is_none() {
            // A ticket created meanwhile (newer, so before the cursor) does not shift the pages.
            let created = app
                .graphql(Some(MANAGER), CREATE, json!({ "input": { "title": "Meanwhile", "category": "OTHER" } }))
                .await;
            assert!(created.get("errors").is_none());
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(String::from);
    }
    let expected: BTreeSet<String> = (1..=5).map(t).collect();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);

    // Backwards: the last two, then the two before them.
    let last = app.graphql(Some(MANAGER), PAGE, json!({ "last": 2 })).await;
    let last = data(&last, "tickets").clone();
    assert_eq!(ids(&last), seen[3..5].to_vec());
    assert_eq!(last["pageInfo"]["hasPreviousPage"], true);
    let before =
        app.graphql(Some(MANAGER), PAGE, json!({ "last": 2, "before": last["pageInfo"]["startCursor"] })).await;
    assert_eq!(ids(data(&before, "tickets")), seen[1..3].to_vec());

    // Filters.
    let sensitive = app.graphql(Some(ADMIN), PAGE, json!({ "filter": { "isSensitive": true } })).await;
    assert_eq!(ids(data(&sensitive, "tickets")), vec![t(3)]);
    let water = app.graphql(Some(ADMIN), PAGE, json!({ "filter": { "category": ["WATER", "WASTE"] } })).await;
    assert_eq!(ids(data(&water, "tickets")).into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([t(1), t(5)]));
    let open_assigned =
        app.graphql(Some(ADMIN), PAGE, json!({ "filter": { "status": ["OPEN"], "assigneeId": pid(WORKER) } })).await;
    assert_eq!(ids(data(&open_assigned, "tickets")).into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([t(1), t(4)]));
    let search = app.graphql(Some(ADMIN), PAGE, json!({ "filter": { "search": "POTHOLE" } })).await;
    assert_eq!(ids(data(&search, "tickets")), vec![t(2)]);
    let wildcard = app.graphql(Some(ADMIN), PAGE, json!({ "filter": { "search": "%" } })).await;
    assert_eq!(ids(data(&wildcard, "tickets")), Vec::<String>::new(), "% is a literal, not a wildcard");
    let oldest_first = app
        .graphql(Some(ADMIN), PAGE, json!({ "order": { "field": "CREATED_AT", "direction": "ASC" }, "first": 1 }))
        .await;
    assert_eq!(ids(data(&oldest_first, "tickets")), vec![t(1)]);

    // What each person's list holds is what they may see.
    let cases: [(&str, Vec<usize>); 4] =
        [(CITIZEN, vec![1, 2, 3]), (WORKER, vec![1, 4]), (OTHER_CITIZEN, vec![6]), (OTHER_MANAGER, vec![6, 7])];
    for (who, expected) in cases {
        let response = app.graphql(Some(who), PAGE, json!({})).await;
        let got: BTreeSet<String> = ids(data(&response, "tickets")).into_iter().collect();
        assert_eq!(got, expected.into_iter().map(t).collect::<BTreeSet<_>>(), "{who}");
    }
    let anonymous = app.graphql(None, PAGE, json!({})).await;
    assert_eq!(data(&anonymous, "tickets")["totalCount"], 0);

    // Bad pages.
    for vars in [
        json!({ "first": 101 }),
        json!({ "first": -1 }),
        json!({ "first": 1, "last": 1 }),
        json!({ "after": "bm90LWEtY3Vyc29y" }),
        json!({ "first": 1, "after": last["pageInfo"]["startCursor"], "order": { "field": "UPDATED_AT" } }),
    ] {
        let response = app.graphql(Some(MANAGER), PAGE, vars.clone()).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{vars}: {response}");
    }
    let by_number = app
        .graphql(
            Some(CITIZEN),
            "query($n: String!) { ticketByTrackingNumber(trackingNumber: $n) { id } }",
            json!({ "n": "demo-2026-000001" }),
        )
        .await;
    assert!(by_number.get("errors").is_none(), "{by_number}");
    let bad_number = app
        .graphql(
            Some(CITIZEN),
            "query($n: String!) { ticketByTrackingNumber(trackingNumber: $n) { id } }",
            json!({ "n": "x' or 1=1" }),
        )
        .await;
    assert_eq!(error_code(&bad_number), Some("BAD_USER_INPUT"));
}

/// Statements requests ran in this database since the last reset as `authenticated`: every
/// statement of a signed-in request after its first (`BEGIN`, as `authenticator`), and none of
/// the server's background work (readiness pings, the listener), which would only add noise.
async fn statements(app: &TestApp) -> i64 {
    let owner = app.db.owner().await;
    let row = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select coalesce(sum(calls), 0)::bigint as n from pg_stat_statements
             where dbid = (select oid from pg_database where datname = current_database())
               and userid = 'authenticated'::regrole",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn reset_statements(app: &TestApp) {
    owner_exec(
        app,
        "select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)",
    )
    .await;
}

#[tokio::test]
async fn a_nested_page_of_50_costs_the_statements_of_a_page_of_5() {
    // No SLA sweep in the background: only the request's statements are counted.
    let app = spawn_app_with(&[("WARD_SLA_SWEEP_SECONDS", "0".to_string())]).await;
    owner_exec(&app, "create extension if not exists pg_stat_statements").await;
    // 60 more tickets with reporters, assignees, wards and a file each, created in the
    // manager's name so every history entry has an actor (both pages then load the same
    // kinds of things).
    owner_exec(
        &app,
        &format!(
            "begin;
             select set_config('request.jwt.claims', '{{\"sub\": \"{auth}\"}}', true);
             insert into tickets (municipality_id, category, title, reporter_id, assignee_id, ward_id)
               select '{d}', 'WATER', 'Bulk ' || i, case when i % 2 = 0 then '{c}'::uuid else '{m}'::uuid end,
                      '{w}', '{ward}' from generate_series(1, 60) i;
             insert into media (ticket_id, municipality_id, purpose, bucket, object_path, content_type, size_bytes)
               select id, municipality_id, 'EVIDENCE', 'evidence', municipality_id || '/' || id || '/x.jpg', 'image/jpeg', 1
               from tickets where title like 'Bulk %';
             commit;",
            auth = demo::person(MANAGER).unwrap().auth_user_id,
            d = DEMO.id,
            c = pid(CITIZEN),
            m = pid(MANAGER),
            w = pid(WORKER),
            ward = WARDS[0].0
        ),
    )
    .await;
    let query = "query($n: Int!) { tickets(first: $n) { nodes { id reporter { displayName } assignee { displayName }
        ward { name } evidence { path } events { kind actor { id } } } } }";
    let mut costs = Vec::new();
    for n in [5, 50] {
        // The fewest of three runs: a loader batch that a busy machine splits in two is noise
        // of the moment; a cost that grows with the page shows in every run.
        let mut runs = Vec::new();
        for _ in 0..3 {
            reset_statements(&app).await;
            let response = app.graphql(Some(MANAGER), query, json!({ "n": n })).await;
            let nodes = data(&response, "tickets")["nodes"].as_array().unwrap().len();
            assert_eq!(nodes, n as usize);
            runs.push(statements(&app).await);
        }
        costs.push(runs.into_iter().min().unwrap());
    }
    assert_eq!(costs[0], costs[1], "statements for 5 vs 50 tickets: {costs:?}");
    assert!(costs[0] <= 12, "a nested page costs {} statements", costs[0]);
}

/// `totalCount` is exact up to 10,000 matching tickets and an estimate beyond (counting
/// stops there), and says which: a manager of a large municipality gets an estimate, the
/// citizen beside them an exact count, a narrow filter an exact count.
#[tokio::test]
async fn counts_are_exact_up_to_a_bound_and_estimated_beyond() {
    let app = spawn_app().await;
    let manager = demo::person(MANAGER).unwrap().profile_id;
    let owner = app.db.owner().await;
    owner
        .execute_unprepared(&format!(
            "insert into tickets (municipality_id, category, title, reporter_id, ward_id)
             select '{}', 'WATER', 'Bulk ' || i, '{manager}', '{}' from generate_series(1, 10100) i;
             analyze tickets;",
            DEMO.id, WARDS[0].0
        ))
        .await
        .unwrap();
    let count = |who: &'static str, filter: Value| {
        let app = &app;
        async move {
            let q = "query($f: TicketFilter) { tickets(first: 2, filter: $f) { totalCount totalCountIsExact nodes { id } } }";
            let response = app.graphql(Some(who), q, json!({ "f": filter })).await;
            assert!(response.get("errors").is_none(), "{who}: {response}");
            let t = &response["data"]["tickets"];
            (t["totalCount"].as_i64().unwrap(), t["totalCountIsExact"].as_bool().unwrap())
        }
    };
    let (n, exact) = count(MANAGER, json!({})).await;
    assert!(!exact, "past the bound: an estimate");
    assert!((10_001..=12_500).contains(&n), "a fair estimate of ~10,104: {n}");
    let (n, exact) = count(CITIZEN, json!({})).await;
    let own = TICKETS.iter().filter(|t| t.reporter == CITIZEN).count() as i64;
    assert_eq!((n, exact), (own, true));
    let (n, exact) = count(MANAGER, json!({ "search": "Bulk 100" })).await;
    // "Bulk 100", "Bulk 1000"…"Bulk 1009", "Bulk 10000"…"Bulk 10099".
    assert_eq!((n, exact), (1 + 10 + 100, true));
    let (n, exact) = count(OTHER_MANAGER, json!({})).await;
    assert!(exact && n < 100, "another municipality's manager counts only theirs: {n}");
}

/// A municipality's millionth ticket of a year gets a seven-digit number, not the number of
/// its hundred-thousandth (lpad cut it to six digits, and the ticket could not be created).
#[tokio::test]
async fn tracking_numbers_grow_past_six_digits() {
    let app = spawn_app().await;
    let year = chrono::Utc::now().format("%Y").to_string();
    app.db
        .owner()
        .await
        .execute_unprepared(&format!(
            "insert into ticket_counters (municipality_id, year, last_value) values ('{}', {year}, 99999)
             on conflict (municipality_id, year) do update set last_value = 99999",
            DEMO.id
        ))
        .await
        .unwrap();
    let mut numbers = Vec::new();
    for (i, last) in [(0, 99_999), (1, 999_998)] {
        if i == 1 {
            app.db
                .owner()
                .await
                .execute_unprepared(&format!(
                    "update ticket_counters set last_value = {last} where municipality_id = '{}'",
                    DEMO.id
                ))
                .await
                .unwrap();
        }
        for who in [CITIZEN, MANAGER] {
            let response =
                app.graphql(Some(who), CREATE, json!({ "input": { "title": "Counted", "category": "ROADS" } })).await;
            numbers.push(data(&response, "createTicket")["trackingNumber"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(numbers, [100_000, 100_001, 999_999, 1_000_000].map(|n| format!("DEMO-{year}-{n:06}")), "{numbers:?}");
    // And it is found by its number.
    let found = app
        .graphql(
            Some(MANAGER),
            "query($n: String!) { ticketByTrackingNumber(trackingNumber: $n) { title } }",
            json!({ "n": numbers[3] }),
        )
        .await;
    assert_eq!(found["data"]["ticketByTrackingNumber"]["title"], "Counted", "{found}");
}
