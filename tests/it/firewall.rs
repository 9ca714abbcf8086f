//! The GBV firewall follows the ticket (docs/POLICY.md, P-GBV-READ, P-GBV-UNFLAG): evidence
//! attached before a ticket is flagged sensitive becomes SAPS/admin-only the moment it is
//! flagged — in GraphQL, in signed links handed out before, and for every demo person — and
//! only SAPS liaisons and admins lift the flag.

use reqwest::StatusCode;
use serde_json::{Value, json};
use ward::demo::{PEOPLE, TICKETS};

use crate::helpers::people::*;
use crate::helpers::{TestApp, error_code, spawn_app};

const INTENT: &str = "mutation($input: CreateUploadIntentInput!) {
    createUploadIntent(input: $input) { id uploadUrl } }";
const CONFIRM: &str = "mutation($id: ID!) { confirmUpload(intentId: $id) { id bucket } }";
const EVIDENCE: &str =
    "query($id: ID!) { ticket(id: $id) { id isSensitive version evidence { id bucket signedUrl(expiresIn: 600) } } }";
const FLAG: &str = "mutation($id: ID!, $v: Int!, $s: Boolean!) {
    updateTicket(id: $id, input: { isSensitive: $s }, expectedVersion: $v) { isSensitive version } }";

/// The citizen reports evidence on their ticket 1 (not sensitive yet): the media id.
async fn citizen_attaches_evidence(app: &TestApp) -> String {
    let ticket = TICKETS[0].id.to_string();
    let input = json!({ "input": { "ticketId": ticket, "purpose": "EVIDENCE", "filename": "bruises.jpg",
                                   "contentType": "image/jpeg", "sizeBytes": 4 } });
    let intent = app.graphql(Some(CITIZEN), INTENT, input).await;
    let intent = &intent["data"]["createUploadIntent"];
    let put = app
        .http
        .put(intent["uploadUrl"].as_str().unwrap())
        .header("content-type", "image/jpeg")
        .body(vec![1u8, 2, 3, 4])
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let confirmed = app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": intent["id"] })).await;
    assert_eq!(confirmed["data"]["confirmUpload"]["bucket"], "evidence", "{confirmed}");
    confirmed["data"]["confirmUpload"]["id"].as_str().unwrap().to_string()
}

async fn evidence_as(app: &TestApp, who: &str) -> Value {
    app.graphql(Some(who), EVIDENCE, json!({ "id": TICKETS[0].id.to_string() })).await
}

async fn set_sensitive(app: &TestApp, who: &str, sensitive: bool) -> Value {
    let version = evidence_as(app, ADMIN).await["data"]["ticket"]["version"].clone();
    app.graphql(Some(who), FLAG, json!({ "id": TICKETS[0].id.to_string(), "v": version, "s": sensitive })).await
}

async fn download(app: &TestApp, url: &str) -> StatusCode {
    app.http.get(url).send().await.unwrap().status()
}

#[tokio::test]
async fn evidence_attached_before_the_flag_is_saps_and_admin_only_after_it() {
    let app = spawn_app().await;
    let media = citizen_attaches_evidence(&app).await;
    // Before the flag the manager reads it and keeps a link.
    let before = evidence_as(&app, MANAGER).await;
    let early_link = before["data"]["ticket"]["evidence"][0]["signedUrl"].as_str().expect("a link").to_string();
    assert_eq!(download(&app, &early_link).await, StatusCode::OK);

    let flagged = set_sensitive(&app, MANAGER, true).await;
    assert_eq!(flagged["data"]["updateTicket"]["isSensitive"], true, "{flagged}");

    // Every demo person: SAPS liaisons and admins see the file and can download it; the
    // reporter and the manager still see the ticket but not its files; the others not even
    // the ticket.
    for person in PEOPLE {
        let response = evidence_as(&app, person.email).await;
        assert!(response.get("errors").is_none(), "{}: {response}", person.email);
        let ticket = &response["data"]["ticket"];
        match person.email {
            SAPS | ADMIN => {
                let files = ticket["evidence"].as_array().unwrap();
                assert_eq!(files.len(), 1, "{}: {response}", person.email);
                assert_eq!(files[0]["id"], media.as_str());
                let link = files[0]["signedUrl"].as_str().unwrap();
                assert_eq!(download(&app, link).await, StatusCode::OK, "{}", person.email);
            }
            CITIZEN | MANAGER => {
                assert_eq!(ticket["isSensitive"], true, "{}: {response}", person.email);
                assert_eq!(ticket["evidence"], json!([]), "{}: {response}", person.email);
            }
            _ => assert!(ticket.is_null(), "{}: {response}", person.email),
        }
    }
    // The link handed out before the flag stops working at once.
    assert_eq!(download(&app, &early_link).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_saps_liaisons_and_admins_lift_the_flag() {
    let app = spawn_app().await;
    citizen_attaches_evidence(&app).await;
    assert_eq!(set_sensitive(&app, MANAGER, true).await["data"]["updateTicket"]["isSensitive"], true);

    for who in [MANAGER, CITIZEN, WORKER, OTHER_MANAGER] {
        let refused = set_sensitive(&app, who, false).await;
        assert!(matches!(error_code(&refused), Some("FORBIDDEN" | "NOT_FOUND")), "{who}: {refused}");
    }
    assert_eq!(evidence_as(&app, MANAGER).await["data"]["ticket"]["evidence"], json!([]));

    let lifted = set_sensitive(&app, SAPS, false).await;
    assert_eq!(lifted["data"]["updateTicket"]["isSensitive"], false, "{lifted}");
    // Back to an ordinary ticket: the manager reads its (ordinary) evidence again.
    let files = evidence_as(&app, MANAGER).await;
    assert_eq!(files["data"]["ticket"]["evidence"].as_array().map(Vec::len), Some(1), "{files}");

    // An admin may lift it too.
    assert_eq!(set_sensitive(&app, MANAGER, true).await["data"]["updateTicket"]["isSensitive"], true);
    assert_eq!(set_sensitive(&app, ADMIN, false).await["data"]["updateTicket"]["isSensitive"], false);
}

#[tokio::test]
async fn citizens_do_not_choose_priority_and_nobody_forges_an_sla_breach() {
    let app = spawn_app().await;
    let create = "mutation($p: TicketPriority) { createTicket(input: { title: \"Leak\", category: WATER, priority: $p }) { priority status } }";
    let refused = app.graphql(Some(CITIZEN), create, json!({ "p": "URGENT" })).await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    let plain = app.graphql(Some(CITIZEN), create, json!({ "p": null })).await;
    assert_eq!(plain["data"]["createTicket"]["priority"], "NORMAL", "{plain}");
    let staff = app.graphql(Some(MANAGER), create, json!({ "p": "URGENT" })).await;
    assert_eq!(staff["data"]["createTicket"]["priority"], "URGENT", "{staff}");

    let notice =
        "mutation($id: ID!) { publishTicketNotice(ticketId: $id, kind: \"SLA_BREACHED\", message: \"fake\") { id } }";
    for who in [MANAGER, ADMIN] {
        let forged = app.graphql(Some(who), notice, json!({ "id": TICKETS[0].id.to_string() })).await;
        assert_eq!(error_code(&forged), Some("FORBIDDEN"), "{who}: {forged}");
    }
}

/// A JPEG of `w` × `h`.
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 60])
    }));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// Renderings follow the firewall like originals: a link to a resized image, handed out before
/// the flag, stops working with it, and afterwards only SAPS liaisons and admins get one.
#[tokio::test]
async fn rendered_links_follow_the_flag_too() {
    let app = spawn_app().await;
    let photo = jpeg(400, 300);
    let input = json!({ "input": { "ticketId": TICKETS[0].id.to_string(), "purpose": "EVIDENCE", "filename": "scene.jpg",
                                   "contentType": "image/jpeg", "sizeBytes": photo.len() } });
    let intent = app.graphql(Some(CITIZEN), INTENT, input).await;
    let intent = &intent["data"]["createUploadIntent"];
    let put = app
        .http
        .put(intent["uploadUrl"].as_str().unwrap())
        .header("content-type", "image/jpeg")
        .body(photo)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    assert!(app.graphql(Some(CITIZEN), CONFIRM, json!({ "id": intent["id"] })).await.get("errors").is_none());

    const RENDERED: &str =
        "query($id: ID!) { ticket(id: $id) { evidence { signedUrl(expiresIn: 600, transform: { width: 100 }) } } }";
    let rendered = |who: &'static str| {
        let app = &app;
        async move {
            let response = app.graphql(Some(who), RENDERED, json!({ "id": TICKETS[0].id.to_string() })).await;
            assert!(response.get("errors").is_none(), "{who}: {response}");
            response["data"]["ticket"]["evidence"]
                .as_array()
                .unwrap()
                .first()
                .map(|f| f["signedUrl"].as_str().unwrap().to_string())
        }
    };
    let size = |bytes: &[u8]| {
        let img = image::load_from_memory(bytes).unwrap();
        (img.width(), img.height())
    };
    let mut early = Vec::new();
    for who in [CITIZEN, MANAGER] {
        let link = rendered(who).await.unwrap_or_else(|| panic!("{who} gets a link"));
        assert!(link.contains("/render/image/sign/"), "{link}");
        let response = app.http.get(&link).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(size(&response.bytes().await.unwrap()), (100, 75), "{who}");
        early.push(link);
    }
    // Out of bounds is a clear refusal.
    let bad = app
        .graphql(
            Some(MANAGER),
            "query($id: ID!) { ticket(id: $id) { evidence { signedUrl(transform: { width: 3000 }) } } }",
            json!({ "id": TICKETS[0].id.to_string() }),
        )
        .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"), "{bad}");

    let flagged = set_sensitive(&app, MANAGER, true).await;
    assert_eq!(flagged["data"]["updateTicket"]["isSensitive"], true, "{flagged}");
    for link in &early {
        assert_eq!(download(&app, link).await, StatusCode::NOT_FOUND, "a rendering signed before the flag");
    }
    assert_eq!(rendered(CITIZEN).await, None);
    assert_eq!(rendered(MANAGER).await, None);
    for who in [SAPS, ADMIN] {
        let link = rendered(who).await.unwrap_or_else(|| panic!("{who} gets a link"));
        assert_eq!(size(&app.http.get(&link).send().await.unwrap().bytes().await.unwrap()), (100, 75), "{who}");
    }
}
