//! Profiles through GraphQL, each under two or more people: who sees which profiles, editing
//! one's own, admins changing roles, registering, and linking a first sign-in to the profile
//! the relay made (exactly once, also under concurrent first requests).

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;
use ward::demo::{self, DEMO, OTHER, PEOPLE};

use crate::helpers::people::*;
use crate::helpers::{TestApp, error_code, spawn_app};

fn pid(email: &str) -> String {
    demo::person(email).unwrap().profile_id.to_string()
}

fn data<'a>(response: &'a Value, field: &str) -> &'a Value {
    assert!(response.get("errors").is_none(), "{field}: {response}");
    &response["data"][field]
}

fn ids(nodes: &Value) -> BTreeSet<String> {
    nodes.as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_string()).collect()
}

fn people_of(municipality: Uuid) -> BTreeSet<String> {
    PEOPLE.iter().filter(|p| p.municipality.id == municipality).map(|p| p.profile_id.to_string()).collect()
}

/// A token for anyone, with arbitrary extra claims.
fn token_for(app: &TestApp, sub: Uuid, extra: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({ "sub": sub.to_string(), "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + 600 });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    format!("Bearer {}", app.issuer.sign(&claims).unwrap())
}

async fn owner_exec(app: &TestApp, sql: &str) {
    app.db.owner().await.execute_unprepared(sql).await.unwrap();
}

async fn owner_count(app: &TestApp, sql: &str) -> i64 {
    let row =
        app.db.owner().await.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

const PROFILES: &str = "query($role: Role) { profiles(role: $role) { totalCount nodes { id } edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }";
const PROFILE: &str = "query($id: ID!) { profile(id: $id) { id displayName role } }";

#[tokio::test]
async fn profiles_and_profile_follow_the_policy_contract() {
    let app = spawn_app().await;
    let demo_people = people_of(DEMO.id);
    let other_people = people_of(OTHER.id);
    for who in [CITIZEN, WORKER, MANAGER, SAPS, ADMIN, OTHER_CITIZEN, OTHER_MANAGER] {
        let response = app.graphql(Some(who), PROFILES, json!({})).await;
        let connection = data(&response, "profiles");
        let seen = ids(&connection["nodes"]);
        let expected = match who {
            // Citizens and field workers see only themselves.
            CITIZEN | WORKER | OTHER_CITIZEN => BTreeSet::from([pid(who)]),
            // Staff see their own municipality's people, never the other's.
            MANAGER | SAPS | ADMIN => demo_people.clone(),
            _ => other_people.clone(),
        };
        assert_eq!(seen, expected, "{who}");
        assert_eq!(connection["totalCount"], expected.len(), "{who}");
        assert_eq!(ids(&connection["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()), expected);
    }
    // Anonymous callers see nobody.
    let anonymous = app.graphql(None, PROFILES, json!({})).await;
    assert_eq!(data(&anonymous, "profiles")["totalCount"], 0);

    // One profile: the citizen's, as seen by each.
    for (who, visible) in [
        (CITIZEN, true),
        (WORKER, false),
        (MANAGER, true),
        (SAPS, true),
        (ADMIN, true),
        (OTHER_CITIZEN, false),
        (OTHER_MANAGER, false),
    ] {
        let response = app.graphql(Some(who), PROFILE, json!({ "id": pid(CITIZEN) })).await;
        let profile = data(&response, "profile");
        assert_eq!(!profile.is_null(), visible, "{who}: {response}");
    }
    let anonymous = app.graphql(None, PROFILE, json!({ "id": pid(CITIZEN) })).await;
    assert!(data(&anonymous, "profile").is_null());
    let bad = app.graphql(Some(ADMIN), PROFILE, json!({ "id": "not-a-uuid" })).await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"), "{bad}");

    // The role filter.
    let citizens = app.graphql(Some(MANAGER), PROFILES, json!({ "role": "CITIZEN" })).await;
    assert_eq!(ids(&data(&citizens, "profiles")["nodes"]), BTreeSet::from([pid(CITIZEN)]));
    let citizens = app.graphql(Some(OTHER_MANAGER), PROFILES, json!({ "role": "CITIZEN" })).await;
    assert_eq!(ids(&data(&citizens, "profiles")["nodes"]), BTreeSet::from([pid(OTHER_CITIZEN)]));
    let none = app.graphql(Some(CITIZEN), PROFILES, json!({ "role": "ADMIN" })).await;
    assert_eq!(data(&none, "profiles")["totalCount"], 0);
}

#[tokio::test]
async fn profiles_page_with_cursors() {
    let app = spawn_app().await;
    let query = "query($after: String) { profiles(first: 2, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } totalCount } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    for page in 0.. {
        let response = app.graphql(Some(ADMIN), query, json!({ "after": after })).await;
        let connection = data(&response, "profiles");
        assert_eq!(connection["totalCount"], 5);
        seen.extend(ids(&connection["nodes"]));
        if connection["pageInfo"]["hasNextPage"] == false {
            assert_eq!(page, 2);
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), people_of(DEMO.id));
    // The other municipality's manager pages through their own people only.
    let response = app.graphql(Some(OTHER_MANAGER), query, json!({ "after": null })).await;
    assert_eq!(ids(&data(&response, "profiles")["nodes"]), people_of(OTHER.id));

    for (first, after) in [(101, Value::Null), (-1, Value::Null), (2, json!("bm90LWEtY3Vyc29y"))] {
        let response = app
            .graphql(
                Some(ADMIN),
                "query($first: Int, $after: String) { profiles(first: $first, after: $after) { totalCount } }",
                json!({ "first": first, "after": after }),
            )
            .await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    }
}

const UPDATE: &str = "mutation($input: UpdateMyProfileInput!) { updateMyProfile(input: $input) { id displayName phone role municipality { slug } } }";

#[tokio::test]
async fn update_my_profile_changes_name_and_phone_only() {
    let app = spawn_app().await;
    let input = json!({ "input": { "displayName": "  Thandi M. ", "phone": "+27 83 555 0101" } });
    // A phone number the caller's sign-in has not verified is refused (P-PROFILE-CONTACT):
    // the relay links people by phone.
    let unverified = app.graphql(Some(CITIZEN), UPDATE, input.clone()).await;
    assert_eq!(error_code(&unverified), Some("FORBIDDEN"), "{unverified}");
    // With a token that vouches for that number (Supabase writes it without the `+`).
    let citizen = demo::person(CITIZEN).unwrap();
    let verified = token_for(&app, citizen.auth_user_id, json!({ "email": citizen.email, "phone": "27835550101" }));
    let response = app.graphql_with_header(Some(&verified), UPDATE, input).await;
    let updated = data(&response, "updateMyProfile");
    assert_eq!(updated["id"], pid(CITIZEN));
    assert_eq!(updated["displayName"], "Thandi M.");
    assert_eq!(updated["phone"], "+27835550101");
    assert_eq!(updated["role"], "CITIZEN");
    // Another person is untouched, and still cannot see the citizen.
    let other = app.graphql(Some(OTHER_CITIZEN), "{ me { displayName } }", json!({})).await;
    assert_eq!(data(&other, "me")["displayName"], "Pieter Citizen");
    let other = app.graphql(Some(OTHER_CITIZEN), PROFILE, json!({ "id": pid(CITIZEN) })).await;
    assert!(data(&other, "profile").is_null());
    // The manager sees the change.
    let seen = app.graphql(Some(MANAGER), PROFILE, json!({ "id": pid(CITIZEN) })).await;
    assert_eq!(data(&seen, "profile")["displayName"], "Thandi M.");

    // Null removes the phone; omitted fields stay.
    let response = app.graphql(Some(CITIZEN), UPDATE, json!({ "input": { "phone": null } })).await;
    let updated = data(&response, "updateMyProfile");
    assert_eq!(updated["phone"], Value::Null);
    assert_eq!(updated["displayName"], "Thandi M.");

    // Role and municipality are not in the input at all.
    for input in [json!({ "role": "ADMIN" }), json!({ "municipalityId": OTHER.id.to_string() })] {
        let response = app.graphql(Some(CITIZEN), UPDATE, json!({ "input": input })).await;
        assert_eq!(error_code(&response), Some("GRAPHQL_VALIDATION_FAILED"), "{response}");
    }
    // Bad values, someone else's phone, anonymous callers.
    for input in
        [json!({ "displayName": "" }), json!({ "displayName": "x".repeat(121) }), json!({ "phone": "0820000001" })]
    {
        let response = app.graphql(Some(CITIZEN), UPDATE, json!({ "input": input })).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{input}: {response}");
    }
    let taken =
        app.graphql(Some(CITIZEN), UPDATE, json!({ "input": { "phone": demo::person(WORKER).unwrap().phone } })).await;
    assert_eq!(error_code(&taken), Some("FORBIDDEN"), "{taken}");
    let anonymous = app.graphql(None, UPDATE, json!({ "input": { "displayName": "Nobody" } })).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"), "{anonymous}");
    let me = app.graphql(Some(CITIZEN), "{ me { role municipality { slug } } }", json!({})).await;
    assert_eq!(data(&me, "me"), &json!({ "role": "CITIZEN", "municipality": { "slug": "demo" } }));
}

const SET_ROLE: &str = "mutation($id: ID!, $role: Role!) { setProfileRole(profileId: $id, role: $role) { id role } }";

#[tokio::test]
async fn set_profile_role_is_for_admins_of_the_same_municipality() {
    let app = spawn_app().await;
    let response = app.graphql(Some(ADMIN), SET_ROLE, json!({ "id": pid(WORKER), "role": "MANAGER" })).await;
    assert_eq!(data(&response, "setProfileRole"), &json!({ "id": pid(WORKER), "role": "MANAGER" }));
    let me = app.graphql(Some(WORKER), "{ me { role } }", json!({})).await;
    assert_eq!(data(&me, "me")["role"], "MANAGER");

    let cases = [
        (MANAGER, pid(CITIZEN), "FORBIDDEN"),
        (SAPS, pid(CITIZEN), "FORBIDDEN"),
        (CITIZEN, pid(CITIZEN), "FORBIDDEN"),
        (OTHER_MANAGER, pid(OTHER_CITIZEN), "FORBIDDEN"),
        // Another municipality's people do not exist for this admin.
        (ADMIN, pid(OTHER_CITIZEN), "NOT_FOUND"),
        (ADMIN, Uuid::new_v4().to_string(), "NOT_FOUND"),
        // Nobody changes their own role.
        (ADMIN, pid(ADMIN), "FORBIDDEN"),
    ];
    for (who, target, code) in cases {
        let response = app.graphql(Some(who), SET_ROLE, json!({ "id": target, "role": "ADMIN" })).await;
        assert_eq!(error_code(&response), Some(code), "{who} → {target}: {response}");
    }
    let anonymous = app.graphql(None, SET_ROLE, json!({ "id": pid(CITIZEN), "role": "ADMIN" })).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));
    // Nothing else changed.
    let roles = owner_count(&app, "select count(*) from profiles where role = 'admin'").await;
    assert_eq!(roles, 1);
    let other = app.graphql(Some(OTHER_CITIZEN), "{ me { role } }", json!({})).await;
    assert_eq!(data(&other, "me")["role"], "CITIZEN");
}

const REGISTER: &str = "mutation($input: RegisterProfileInput!) { registerProfile(input: $input) { id displayName role email phone municipality { slug } } }";
const ME: &str = "{ me { id displayName role municipality { slug } } }";

#[tokio::test]
async fn register_profile_creates_a_citizen_once() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    let token = token_for(&app, sub, json!({ "email": "New.Person@Example.test", "phone": "27831110000" }));
    let me = app.graphql_with_header(Some(&token), ME, json!({})).await;
    assert!(data(&me, "me").is_null(), "{me}");

    let input = json!({ "displayName": "New Person", "municipalitySlug": "Demo" });
    let response = app.graphql_with_header(Some(&token), REGISTER, json!({ "input": input })).await;
    let created = data(&response, "registerProfile").clone();
    assert_eq!(created["role"], "CITIZEN");
    assert_eq!(created["municipality"]["slug"], "demo");
    assert_eq!(created["email"], "new.person@example.test");
    assert_eq!(created["phone"], "+27831110000");
    let me = app.graphql_with_header(Some(&token), ME, json!({})).await;
    assert_eq!(data(&me, "me")["id"], created["id"]);

    // Once only.
    let again = app.graphql_with_header(Some(&token), REGISTER, json!({ "input": input })).await;
    assert_eq!(error_code(&again), Some("CONFLICT"), "{again}");
    // The demo manager now sees the new citizen; the other municipality's does not.
    let seen = app.graphql(Some(MANAGER), PROFILE, json!({ "id": created["id"] })).await;
    assert_eq!(data(&seen, "profile")["displayName"], "New Person");
    let unseen = app.graphql(Some(OTHER_MANAGER), PROFILE, json!({ "id": created["id"] })).await;
    assert!(data(&unseen, "profile").is_null());

    // Bad input, existing people, anonymous callers.
    let stranger = token_for(&app, Uuid::new_v4(), json!({ "email": "stranger@example.test" }));
    for (input, code) in [
        (json!({ "displayName": "X", "municipalitySlug": "atlantis" }), "BAD_USER_INPUT"),
        (json!({ "displayName": "X", "municipalitySlug": "not a slug" }), "BAD_USER_INPUT"),
        (json!({ "displayName": "", "municipalitySlug": "demo" }), "BAD_USER_INPUT"),
    ] {
        let response = app.graphql_with_header(Some(&stranger), REGISTER, json!({ "input": input })).await;
        assert_eq!(error_code(&response), Some(code), "{input}: {response}");
    }
    let existing = app
        .graphql(Some(CITIZEN), REGISTER, json!({ "input": { "displayName": "Twin", "municipalitySlug": "other" } }))
        .await;
    assert_eq!(error_code(&existing), Some("CONFLICT"), "{existing}");
    let anonymous =
        app.graphql(None, REGISTER, json!({ "input": { "displayName": "X", "municipalitySlug": "demo" } })).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));
    // Someone whose token carries another person's email cannot take it over.
    let squatter = token_for(&app, Uuid::new_v4(), json!({ "email": CITIZEN }));
    let response = app
        .graphql_with_header(
            Some(&squatter),
            REGISTER,
            json!({ "input": { "displayName": "Squatter", "municipalitySlug": "demo" } }),
        )
        .await;
    assert_eq!(error_code(&response), Some("CONFLICT"), "{response}");
    assert_eq!(owner_count(&app, "select count(*) from profiles").await, 8);
}

#[tokio::test]
async fn a_first_sign_in_links_the_relays_profile_exactly_once() {
    let app = spawn_app().await;
    let relay_profile = Uuid::new_v4();
    owner_exec(
        &app,
        &format!(
            "insert into profiles (id, municipality_id, display_name, phone) values ('{relay_profile}', '{}', 'Relay Person', '+27830000099')",
            DEMO.id
        ),
    )
    .await;
    let sub = Uuid::new_v4();
    // Supabase writes phone numbers without the `+`.
    let token = token_for(&app, sub, json!({ "phone": "27830000099" }));
    // Many concurrent first requests: each sees the one profile, which is linked once.
    let requests = (0..8).map(|_| app.graphql_with_header(Some(&token), ME, json!({})));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(data(&response, "me")["id"], relay_profile.to_string(), "{response}");
        assert_eq!(data(&response, "me")["role"], "CITIZEN");
    }
    assert_eq!(owner_count(&app, &format!("select count(*) from profiles where auth_user_id = '{sub}'")).await, 1);
    let me = app.graphql_with_header(Some(&token), ME, json!({})).await;
    assert_eq!(data(&me, "me")["displayName"], "Relay Person");

    // A second person claiming the same phone gets nothing: the profile is taken.
    let second = token_for(&app, Uuid::new_v4(), json!({ "phone": "+27830000099" }));
    let response = app.graphql_with_header(Some(&second), ME, json!({})).await;
    assert!(data(&response, "me").is_null(), "{response}");
    assert_eq!(
        owner_count(
            &app,
            &format!("select count(*) from profiles where id = '{relay_profile}' and auth_user_id = '{sub}'")
        )
        .await,
        1
    );

    // By email: an unverified email links nothing; the verified one does.
    let by_email = Uuid::new_v4();
    owner_exec(
        &app,
        &format!("insert into profiles (id, municipality_id, display_name, email) values ('{by_email}', '{}', 'Mail Person', 'mail@example.test')", OTHER.id),
    )
    .await;
    let person = Uuid::new_v4();
    for unverified in [
        json!({ "email": "mail@example.test", "user_metadata": { "email_verified": false } }),
        json!({ "email": "mail@example.test", "email_verified": false }),
        json!({ "email": "mail@example.test", "email_confirmed_at": null }),
        json!({ "email": "mail@example.test", "is_anonymous": true }),
    ] {
        let token = token_for(&app, person, unverified.clone());
        let response = app.graphql_with_header(Some(&token), ME, json!({})).await;
        assert!(data(&response, "me").is_null(), "{unverified}: {response}");
    }
    let token =
        token_for(&app, person, json!({ "email": "MAIL@example.test", "user_metadata": { "email_verified": true } }));
    let response = app.graphql_with_header(Some(&token), ME, json!({})).await;
    assert_eq!(data(&response, "me")["id"], by_email.to_string());
    assert_eq!(data(&response, "me")["municipality"]["slug"], "other");
    // Linked people of each municipality are seen by their own staff only.
    let staff = app.graphql(Some(OTHER_MANAGER), PROFILE, json!({ "id": by_email.to_string() })).await;
    assert_eq!(data(&staff, "profile")["displayName"], "Mail Person");
    let staff = app.graphql(Some(MANAGER), PROFILE, json!({ "id": by_email.to_string() })).await;
    assert!(data(&staff, "profile").is_null());
    // A person with a profile already is never linked to another one.
    let demo_citizen = demo::person(CITIZEN).unwrap();
    owner_exec(
        &app,
        &format!(
            "insert into profiles (municipality_id, display_name, email) values ('{}', 'Dup', 'dup@example.test')",
            DEMO.id
        ),
    )
    .await;
    let token = token_for(&app, demo_citizen.auth_user_id, json!({ "email": "dup@example.test" }));
    let response = app.graphql_with_header(Some(&token), ME, json!({})).await;
    assert_eq!(data(&response, "me")["id"], pid(CITIZEN));
    assert_eq!(
        owner_count(&app, "select count(*) from profiles where email = 'dup@example.test' and auth_user_id is null")
            .await,
        1
    );
}
