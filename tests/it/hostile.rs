//! A corpus of hostile input (tokens, GraphQL documents and variables, cursors, file names,
//! uploads, ingest URLs): every case is answered with a coded client error (or, for input
//! that sanitises into something harmless, a success), never a 5xx, `INTERNAL`, a panic or
//! SQL text, and nothing is left half-written in the database or the store.

use std::io::Cursor;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::header::HeaderValue;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use ward::demo::TICKETS;
use ward::storage::ObjectStore as _;

use crate::helpers::people::{CITIZEN, MANAGER, OTHER_MANAGER};
use crate::helpers::{TestApp, spawn_app};

/// The codes a refused client input may carry.
const CLIENT_CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_DEEP",
    "QUERY_TOO_COMPLEX",
    "PAYLOAD_TOO_LARGE",
    "BAD_REQUEST",
    "PERSISTED_QUERY_NOT_FOUND",
];

/// What SQL or internals look like in a message.
const LEAKS: &[&str] = &["select ", "insert ", "relation \"", "violates", "constraint", "sqlx", "panicked", "/tmp/"];

/// One case: what is sent, and whether a success is acceptable (input that sanitises).
struct Case {
    name: String,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Vec<u8>,
    success_ok: bool,
    /// Whether `UNAVAILABLE` is a fair answer: a host name only the network can judge (it
    /// may not resolve here, or only for now).
    unavailable_ok: bool,
}

impl Case {
    fn graphql(name: impl Into<String>, authorization: Option<HeaderValue>, query: &str, variables: Value) -> Case {
        let mut headers = vec![("content-type", HeaderValue::from_static("application/json"))];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        let body = json!({ "query": query, "variables": variables }).to_string().into_bytes();
        Case { name: name.into(), headers, body, success_ok: false, unavailable_ok: false }
    }

    fn may_succeed(mut self) -> Case {
        self.success_ok = true;
        self
    }

    fn network_decides(mut self) -> Case {
        self.unavailable_ok = true;
        self
    }
}

/// Sends a case; returns a description of what was wrong with the answer, if anything.
async fn judge(app: &TestApp, case: &Case) -> Option<String> {
    let mut request = app.http.post(format!("http://{}/graphql", app.addr)).body(case.body.clone());
    for (name, value) in &case.headers {
        request = request.header(*name, value.clone());
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Some(format!("{}: no answer: {e}", case.name)),
    };
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let unavailable = status == 503 && text.contains("\"UNAVAILABLE\"");
    if status >= 500 && !(case.unavailable_ok && unavailable) {
        return Some(format!("{}: HTTP {status}: {text:.300}", case.name));
    }
    let lower = text.to_lowercase();
    if let Some(leak) = LEAKS.iter().find(|l| lower.contains(*l)) {
        return Some(format!("{}: leaks {leak:?}: {text:.300}", case.name));
    }
    let body: Value = match serde_json::from_str(&text) {
        Ok(body) => body,
        Err(_) => return Some(format!("{}: not JSON: {text:.300}", case.name)),
    };
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    if errors.is_empty() {
        return (!case.success_ok).then(|| format!("{}: accepted: {text:.300}", case.name));
    }
    for error in &errors {
        let code = error["extensions"]["code"].as_str().unwrap_or("(none)");
        if !CLIENT_CODES.contains(&code) && (!case.unavailable_ok || code != "UNAVAILABLE") {
            return Some(format!("{}: code {code}: {text:.300}", case.name));
        }
    }
    None
}

fn bearer(token: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(&format!("Bearer {token}")).unwrap())
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

const ME: &str = "{ me { id } }";

fn token_cases(app: &TestApp) -> Vec<Case> {
    let now = chrono::Utc::now().timestamp();
    let good = app.token(CITIZEN);
    let person = ward::demo::person(CITIZEN).unwrap();
    let sub = person.auth_user_id.to_string();
    let claims = |extra: Value| {
        let mut c =
            json!({ "sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 600 });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let signed = |c: Value| app.issuer.sign(&c).unwrap();
    let (header, payload, signature) = {
        let mut parts = good.split('.');
        (parts.next().unwrap().to_string(), parts.next().unwrap().to_string(), parts.next().unwrap().to_string())
    };
    let mut cases = Vec::new();
    let mut add = |name: String, value: Option<HeaderValue>| {
        cases.push(Case::graphql(format!("token: {name}"), value, ME, json!({})))
    };
    for cut in [1, 10, 20, 40, good.len() / 2, good.len() - 1] {
        add(format!("truncated to {cut}"), bearer(&good[..cut]));
    }
    for alg in ["none", "None", "HS512", "HS384", "RS256", "ES256", "PS256", "EdDSA", "", "hs256"] {
        let h = b64(&json!({ "alg": alg, "typ": "JWT" }));
        add(format!("alg {alg:?}"), bearer(&format!("{h}.{payload}.{signature}")));
        add(format!("alg {alg:?}, no signature"), bearer(&format!("{h}.{payload}.")));
    }
    add("huge".into(), bearer(&"a".repeat(200 * 1024)));
    add("huge but well-formed".into(), bearer(&signed(claims(json!({ "pad": "x".repeat(100 * 1024) })))));
    let mut nested = json!(1);
    for _ in 0..2000 {
        nested = json!([nested]);
    }
    add("deeply nested claims".into(), bearer(&format!("{header}.{}.{signature}", b64(&json!({ "sub": nested })))));
    add("deeply nested signed claims".into(), bearer(&signed(claims(json!({ "x": nested })))));
    for bytes in [&b"Bearer \xff\xfe\xfd"[..], b"Bearer abc.\x80\x81.def", b"\xc3\x28", b"Bearer \xe2\x82"] {
        add("not UTF-8".into(), Some(HeaderValue::from_bytes(bytes).unwrap()));
    }
    for raw in [
        "Bearer",
        "Bearer ",
        "bearer",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer a b c",
        "Bearer ...",
        "Bearer ..",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer =====",
        "Bearer %00",
        "Bearer null",
        "Bearer undefined",
        "Bearer {}",
        "Bearer eyJ",
        "Bearer eyJhbGciOiJIUzI1NiJ9",
        "Bearer eyJhbGciOiJIUzI1NiJ9..",
        "Bearer e30.e30.e30",
    ] {
        add(format!("header {raw:?}"), Some(HeaderValue::from_str(raw).unwrap()));
    }
    for (name, c) in [
        ("expired", claims(json!({ "exp": now - 3600 }))),
        ("not yet valid", claims(json!({ "nbf": now + 3600 }))),
        ("no exp", json!({ "sub": sub, "role": "authenticated", "aud": "authenticated" })),
        ("exp as text", claims(json!({ "exp": "tomorrow" }))),
        ("exp huge", claims(json!({ "exp": 1e300 }))),
        ("exp negative", claims(json!({ "exp": -1 }))),
        ("sub a number", claims(json!({ "sub": 42 }))),
        ("sub not a uuid", claims(json!({ "sub": "../../admin" }))),
        ("sub empty", claims(json!({ "sub": "" }))),
        ("role postgres", claims(json!({ "role": "postgres" }))),
        ("role authenticator", claims(json!({ "role": "authenticator" }))),
        ("role supabase_admin", claims(json!({ "role": "supabase_admin" }))),
        ("role a list", claims(json!({ "role": ["service_role"] }))),
        ("role with SQL", claims(json!({ "role": "authenticated'; drop table tickets; --" }))),
        ("wrong audience", claims(json!({ "aud": "other" }))),
        ("audience list without ours", claims(json!({ "aud": ["a", "b"] }))),
    ] {
        add(name.into(), bearer(&signed(c)));
    }
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(b"not the secret"),
    )
    .unwrap();
    add("signed with another secret".into(), bearer(&forged));
    add(
        "signature of another token".into(),
        bearer(&format!("{header}.{}.{signature}", b64(&claims(json!({ "role": "service_role" }))))),
    );
    add(
        "standard base64".into(),
        bearer(&format!("{}.{}.{signature}", STANDARD.encode(r#"{"alg":"HS256"}"#), STANDARD.encode("{}"))),
    );
    cases
}

fn document_cases(app: &TestApp) -> Vec<Case> {
    let auth = bearer(&app.token(MANAGER));
    let mut cases = Vec::new();
    let mut add = |name: &str, query: String, variables: Value| {
        cases.push(Case::graphql(format!("document: {name}"), auth.clone(), &query, variables))
    };
    let deep = |n: usize| {
        format!(
            "{{ me {{ {} id {} }} }}",
            "municipality { tickets(first: 1) { nodes { reporter { ".repeat(n),
            "} } } } ".repeat(n)
        )
    };
    add("deep", deep(10), json!({}));
    add("very deep", format!("{}{}", "{ a: me ".repeat(5000), "}".repeat(5000)), json!({}));
    add("deep brackets", "{".repeat(100_000), json!({}));
    add(
        "deep list variable",
        "query($s: [TicketStatus!]) { tickets(filter: { status: $s }) { totalCount } }".into(),
        {
            let mut v = json!("OPEN");
            for _ in 0..500 {
                v = json!([v]);
            }
            json!({ "s": v })
        },
    );
    let wide: String = (0..20_000).map(|i| format!("a{i}: __typename ")).collect();
    add("wide aliases", format!("{{ {wide} }}"), json!({}));
    let expensive: String =
        (0..200).map(|i| format!("t{i}: tickets(first: 100) {{ nodes {{ id title reporter {{ id }} }} }} ")).collect();
    add("complex", format!("{{ {expensive} }}"), json!({}));
    add(
        "fragment cycle",
        "query { me { ...A } } fragment A on Profile { ...B } fragment B on Profile { ...A }".into(),
        json!({}),
    );
    add("self fragment", "query { me { ...A } } fragment A on Profile { id ...A }".into(), json!({}));
    add("unknown fragment", "query { me { ...Nope } }".into(), json!({}));
    add("fragment on wrong type", "query { me { ...T } } fragment T on Ticket { id }".into(), json!({}));
    add("unknown field", "{ me { password } }".into(), json!({}));
    add("unknown root", "{ pg_sleep }".into(), json!({}));
    add("unknown directive", "{ me @evil { id } }".into(), json!({}));
    add("skip with junk", "{ me @skip(if: \"yes\") { id } }".into(), json!({}));
    add("syntax", "{ me { id }".into(), json!({}));
    add("empty", String::new(), json!({}));
    add("only whitespace", "   \n\t ".into(), json!({}));
    add("null byte", "{ me { id } }\u{0}".into(), json!({}));
    add("bidi and zero width", "{ me\u{202e} { id\u{200b} } }".into(), json!({}));
    add("two anonymous operations", "{ me { id } } { me { id } }".into(), json!({}));
    add("duplicate operation names", "query A { me { id } } query A { me { id } }".into(), json!({}));
    add("subscription over HTTP", "subscription { ticketUpdates { eventId } }".into(), json!({}));
    add("huge string literal", format!("{{ ticket(id: \"{}\") {{ id }} }}", "x".repeat(900_000)), json!({}));
    add(
        "huge string variable",
        "query($id: ID!) { ticket(id: $id) { id } }".into(),
        json!({ "id": "x".repeat(900_000) }),
    );
    add("body over the limit", "{ me { id } }".into(), json!({ "pad": "x".repeat(2 * 1024 * 1024) }));
    for (name, variables) in [
        ("id a number", json!({ "id": 42 })),
        ("id an object", json!({ "id": { "$ne": null } })),
        ("id a list", json!({ "id": ["a"] })),
        ("id null", json!({ "id": null })),
        ("id missing", json!({})),
        ("id with SQL", json!({ "id": "'; drop table tickets; --" })),
        ("id not a uuid", json!({ "id": "00000000-0000-0000-0000-00000000000g" })),
        ("id unicode", json!({ "id": "ｔｉｃｋｅｔ" })),
        ("variables a list", json!([1, 2])),
    ] {
        add(name, "query($id: ID!) { ticket(id: $id) { id } }".into(), variables);
    }
    for first in
        [json!(-1), json!(1e100), json!(2147483648i64), json!("10"), json!(1.5), json!(101), json!(-2147483649i64)]
    {
        add(
            &format!("first {first}"),
            "query($n: Int) { tickets(first: $n) { totalCount } }".into(),
            json!({ "n": first }),
        );
    }
    for status in [json!("DELETED"), json!("open"), json!(1), json!([null]), json!({ "OPEN": true })] {
        add(
            &format!("status {status}"),
            "query($s: [TicketStatus!]) { tickets(filter: { status: $s }) { totalCount } }".into(),
            json!({ "s": status }),
        );
    }
    add(
        "too many filter values",
        "query($s: [TicketStatus!]) { tickets(filter: { status: $s }) { totalCount } }".into(),
        json!({ "s": vec!["OPEN"; 51] }),
    );
    add(
        "search too long",
        "query($q: String) { tickets(filter: { search: $q }) { totalCount } }".into(),
        json!({ "q": "%".repeat(201) }),
    );
    add(
        "dates out of range",
        "query($d: DateTime) { tickets(filter: { createdAfter: $d }) { totalCount } }".into(),
        json!({ "d": "99999-01-01T00:00:00Z" }),
    );
    add(
        "date junk",
        "query($d: DateTime) { tickets(filter: { createdAfter: $d }) { totalCount } }".into(),
        json!({ "d": "yesterday" }),
    );
    add(
        "mutation with bad enum",
        "mutation { setTicketStatus(id: \"00000000-0000-0000-0000-000000000000\", status: EXPLODED) { id } }".into(),
        json!({}),
    );
    add(
        "mutation on a missing ticket",
        "mutation { setTicketStatus(id: \"00000000-0000-0000-0000-000000000000\", status: CLOSED) { id } }".into(),
        json!({}),
    );
    add(
        "title too long",
        "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }".into(),
        json!({ "i": { "title": "x".repeat(10_000), "category": "ROADS" } }),
    );
    add(
        "title empty",
        "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }".into(),
        json!({ "i": { "title": "", "category": "ROADS" } }),
    );
    add(
        "title control characters",
        "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }".into(),
        json!({ "i": { "title": "\u{0}\u{1}\u{7}", "category": "ROADS" } }),
    );
    add(
        "extra input field",
        "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }".into(),
        json!({ "i": { "title": "x", "category": "ROADS", "reporterId": "00000000-0000-0000-0000-000000000000" } }),
    );
    add(
        "another municipality's ward",
        "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }".into(),
        json!({ "i": { "title": "x", "category": "ROADS", "wardId": ward::demo::WARDS[2].0.to_string() } }),
    );
    add(
        "display name huge",
        "mutation($n: String!) { updateMyProfile(input: { displayName: $n }) { id } }".into(),
        json!({ "n": "x".repeat(100_000) }),
    );
    add(
        "phone junk",
        "mutation($p: String!) { updateMyProfile(input: { phone: $p }) { id } }".into(),
        json!({ "p": "+27'; --" }),
    );
    // Not JSON, or JSON that is not a GraphQL request.
    for (name, body, content_type) in [
        ("not JSON", "{ me { id } }".as_bytes().to_vec(), "application/json"),
        ("JSON junk", b"{\"query\": ".to_vec(), "application/json"),
        ("query a number", br#"{"query": 42}"#.to_vec(), "application/json"),
        ("query null", br#"{"query": null}"#.to_vec(), "application/json"),
        ("empty batch", b"[]".to_vec(), "application/json"),
        ("a string", br#""{ me { id } }""#.to_vec(), "application/json"),
        ("not UTF-8", b"{\"query\": \"\xff\xfe\"}".to_vec(), "application/json"),
        ("form encoded", b"query=%7B%20me%20%7B%20id%20%7D%20%7D".to_vec(), "application/x-www-form-urlencoded"),
        ("xml", b"<query/>".to_vec(), "application/xml"),
        (
            "persisted query unknown",
            br#"{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}"#.to_vec(),
            "application/json",
        ),
        (
            "operation name of no operation",
            br#"{"query":"query A { me { id } }","operationName":"B"}"#.to_vec(),
            "application/json",
        ),
        (
            "persisted query with wrong hash",
            br#"{"query":"{ me { id } }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}"#.to_vec(),
            "application/json",
        ),
    ] {
        cases.push(Case {
            name: format!("document: {name}"),
            headers: vec![("content-type", HeaderValue::from_static(content_type))],
            body,
            success_ok: false,
            unavailable_ok: false,
        });
    }
    cases
}

fn cursor_cases(app: &TestApp) -> Vec<Case> {
    let auth = bearer(&app.token(MANAGER));
    let foreign_ticket = format!("t1|{}|{}", chrono::Utc::now().timestamp_micros(), uuid::Uuid::new_v4());
    let junk = [
        String::new(),
        "%%%".into(),
        "=".into(),
        "a".repeat(10_000),
        URL_SAFE_NO_PAD.encode("t1|x|y"),
        URL_SAFE_NO_PAD.encode("t1||"),
        URL_SAFE_NO_PAD.encode("t1|99999999999999999999|00000000-0000-0000-0000-000000000000"),
        URL_SAFE_NO_PAD.encode("zz1|0|00000000-0000-0000-0000-000000000000"),
        URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x00]),
        URL_SAFE_NO_PAD.encode("t1|-9223372036854775808|00000000-0000-0000-0000-000000000000"),
        URL_SAFE_NO_PAD.encode("'; drop table tickets; --"),
        "ｃｕｒｓｏｒ".into(),
        "\u{0}".into(),
        "../../".into(),
        STANDARD.encode("t1|0|00000000-0000-0000-0000-000000000000") + "==",
        URL_SAFE_NO_PAD.encode(&foreign_ticket) + "!",
    ];
    let mut cases = Vec::new();
    for (list, query) in [
        ("tickets", "query($c: String) { tickets(first: 5, after: $c) { nodes { id } } }"),
        ("tickets backwards", "query($c: String) { tickets(last: 5, before: $c) { nodes { id } } }"),
        ("profiles", "query($c: String) { profiles(first: 5, after: $c) { nodes { id } } }"),
        ("photos", "query($c: String) { me { photos(first: 5, after: $c) { nodes { id } } } }"),
    ] {
        for (n, cursor) in junk.iter().enumerate() {
            cases.push(Case::graphql(format!("cursor {list} #{n}"), auth.clone(), query, json!({ "c": cursor })));
        }
    }
    cases
}

fn filename_cases(app: &TestApp) -> Vec<Case> {
    let auth = bearer(&app.token(CITIZEN));
    let manager = bearer(&app.token(MANAGER));
    let names = [
        "../../etc/passwd",
        "..\\..\\windows\\system32",
        "/etc/shadow",
        "a/../../b.png",
        "....//....//x.png",
        "%2e%2e%2fx.png",
        "x.png\u{0}.exe",
        "\u{0}",
        "\u{7}\u{8}\u{1b}[31m.png",
        "line\nbreak.png",
        "tab\t.png",
        "ｆｕｌｌｗｉｄｔｈ.png",
        "e\u{301}te\u{301}.png",
        "\u{202e}gnp.exe",
        "zero\u{200b}width.png",
        "日本語.png",
        "😀.png",
        "CON.png",
        "nul",
        ".htaccess",
        ".",
        "..",
        "...",
        " ",
        "",
        "a".repeat(10_000).as_str().to_owned().leak(),
        &*format!("{}.png", "b".repeat(300)).leak(),
        "name.PNG",
        "name.png.php",
        "name;rm -rf.png",
        "$(reboot).png",
        "`id`.png",
        "<script>.png",
        "x\"y'.png",
        "%00.png",
        "C:\\x.png",
        "\\\\server\\share.png",
        "~/.ssh/id_rsa",
        "a:b.png",
        "*.png",
        "?.png",
    ];
    let mut cases = Vec::new();
    for name in names {
        let photo = json!({ "input": { "filename": name, "contentType": "image/png", "sizeBytes": 100 } });
        cases.push(
            Case::graphql(
                format!("photo filename {name:.40?}"),
                auth.clone(),
                "mutation($input: PhotoUploadInput!) { createPhotoUpload(input: $input) { path } }",
                photo,
            )
            .may_succeed(),
        );
        let file = json!({ "input": { "ticketId": TICKETS[0].id.to_string(), "purpose": "EVIDENCE", "filename": name, "contentType": "image/png", "sizeBytes": 100 } });
        cases.push(
            Case::graphql(
                format!("ticket filename {name:.40?}"),
                manager.clone(),
                "mutation($input: CreateUploadIntentInput!) { createUploadIntent(input: $input) { path } }",
                file,
            )
            .may_succeed(),
        );
    }
    for (name, content_type, size) in [
        ("wrong type", "text/html", 10),
        ("empty type", "", 10),
        ("type with a line break", "image/png\nX-Injected: 1", 10),
        ("zero size", "image/png", 0),
        ("negative size", "image/png", -1),
        ("huge size", "image/png", i64::from(i32::MAX)),
    ] {
        let photo = json!({ "input": { "filename": "x.png", "contentType": content_type, "sizeBytes": size } });
        cases.push(Case::graphql(
            format!("photo {name}"),
            auth.clone(),
            "mutation($input: PhotoUploadInput!) { createPhotoUpload(input: $input) { path } }",
            photo,
        ));
    }
    cases
}

fn url_cases(app: &TestApp) -> Vec<Case> {
    let now = chrono::Utc::now().timestamp();
    let service = bearer(&app.issuer.sign(&json!({ "role": "service_role", "iat": now, "exp": now + 600 })).unwrap());
    let urls = [
        "",
        "not a url",
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "http://",
        "http://:80/",
        "http://127.0.0.1/",
        "http://127.1/",
        "http://0/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://017700000001/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[fe80::1%25eth0]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://user:pass@127.0.0.1/",
        "http://example.com@127.0.0.1/",
        "http://10.0.0.1/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://198.18.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://224.0.0.1/",
        "https://127.0.0.1:443/",
        "http://localhost:5432/",
        "http://xn--/",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://[::1",
        "//127.0.0.1/x",
    ];
    let mut cases: Vec<Case> = urls
        .iter()
        .map(|url| {
            let case = Case::graphql(
                format!("ingest {url:?}"),
                service.clone(),
                "mutation($id: ID!, $url: String!) { ingestTicketMedia(ticketId: $id, url: $url) { id } }",
                json!({ "id": TICKETS[0].id.to_string(), "url": url }),
            );
            // A name (not an address) that does not resolve here is the network's to judge.
            let named = reqwest::Url::parse(url).ok().and_then(|u| u.domain().map(String::from));
            if named.is_some_and(|d| !d.eq_ignore_ascii_case("localhost")) { case.network_decides() } else { case }
        })
        .collect();
    let long = format!("http://example.com/{}", "a".repeat(100_000));
    cases.push(Case::graphql(
        "ingest a 100 KB URL",
        service.clone(),
        "mutation($id: ID!, $url: String!) { ingestTicketMedia(ticketId: $id, url: $url) { id } }",
        json!({ "id": TICKETS[0].id.to_string(), "url": long }),
    ));
    cases
}

/// Image bytes of the kinds a hostile upload might be.
fn hostile_images() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let png = {
        let image = image::DynamicImage::ImageRgb8(image::RgbImage::new(64, 64));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let jpeg = {
        let image = image::DynamicImage::ImageRgb8(image::RgbImage::new(64, 64));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    };
    // A PNG header claiming 100,000 × 100,000 pixels: a decompression bomb's promise.
    let bomb = {
        let mut bytes = png[..16].to_vec();
        bytes.extend_from_slice(&100_000u32.to_be_bytes());
        bytes.extend_from_slice(&100_000u32.to_be_bytes());
        bytes.extend_from_slice(&png[24..]);
        bytes
    };
    let mut corrupt = png.clone();
    for b in corrupt.iter_mut().skip(40).step_by(7) {
        *b ^= 0x5a;
    }
    vec![
        ("truncated png", "image/png", png[..png.len() / 2].to_vec()),
        ("png header only", "image/png", png[..8].to_vec()),
        ("corrupt png", "image/png", corrupt),
        ("png claiming huge dimensions", "image/png", bomb),
        ("jpeg declared as png", "image/png", jpeg.clone()),
        ("truncated jpeg", "image/jpeg", jpeg[..jpeg.len() / 3].to_vec()),
        ("html as png", "image/png", b"<html><script>alert(1)</script></html>".to_vec()),
        ("zero bytes", "image/png", Vec::new()),
        ("one byte", "image/png", vec![0x89]),
        ("gif header, png type", "image/png", b"GIF89a\x01\x00\x01\x00".to_vec()),
    ]
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let row =
        app.db.owner().await.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
    row.try_get("", "n").unwrap()
}

/// Counts that hostile input must leave as they were.
async fn footprint(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["tickets", "ticket_events", "media", "photos", "profiles", "storage.objects"] {
        counts.push(count(app, &format!("select count(*) as n from {table}")).await);
    }
    counts
}

#[tokio::test]
async fn hostile_input_gets_coded_client_errors_and_changes_nothing() {
    let app = spawn_app().await;
    let before = footprint(&app).await;
    let mut cases = token_cases(&app);
    cases.extend(document_cases(&app));
    cases.extend(cursor_cases(&app));
    cases.extend(filename_cases(&app));
    cases.extend(url_cases(&app));
    let total = cases.len();
    let mut problems = Vec::new();
    for case in &cases {
        if let Some(problem) = judge(&app, case).await {
            problems.push(problem);
        }
    }

    // Uploads that break their promise: refused at confirmation, the object removed.
    let images = hostile_images();
    for (name, content_type, bytes) in &images {
        let input = json!({ "input": { "filename": "hostile.png", "contentType": content_type, "sizeBytes": bytes.len().max(1) } });
        let intent = app
            .graphql(
                Some(CITIZEN),
                "mutation($input: PhotoUploadInput!) { createPhotoUpload(input: $input) { id uploadUrl } }",
                input,
            )
            .await;
        let Some(url) = intent["data"]["createPhotoUpload"]["uploadUrl"].as_str() else {
            problems.push(format!("upload {name}: no intent: {intent}"));
            continue;
        };
        let put = app.http.put(url).header("content-type", *content_type).body(bytes.clone()).send().await.unwrap();
        if put.status().as_u16() >= 500 {
            problems.push(format!("upload {name}: PUT answered {}", put.status()));
        }
        let confirmed = app
            .graphql(
                Some(CITIZEN),
                "mutation($id: ID!) { confirmPhotoUpload(intentId: $id) { id } }",
                json!({ "id": intent["data"]["createPhotoUpload"]["id"] }),
            )
            .await;
        let code = confirmed["errors"][0]["extensions"]["code"].as_str();
        if code != Some("BAD_USER_INPUT") {
            problems.push(format!("upload {name}: confirmation answered {confirmed}"));
        }
    }
    let after = footprint(&app).await;
    assert!(
        problems.is_empty(),
        "{} of {} cases went wrong:\n{}",
        problems.len(),
        total + images.len(),
        problems.join("\n")
    );
    assert_eq!(before, after, "nothing half-written (tickets, events, media, photos, profiles, objects)");
    // Only intents of file names that sanitised into something harmless remain, each with a
    // path of safe characters and no way out of its folder.
    let paths = app
        .db
        .owner()
        .await
        .query_all_raw(Statement::from_string(DbBackend::Postgres, "select object_path from upload_intents"))
        .await
        .unwrap();
    for row in paths {
        let path: String = row.try_get("", "object_path").unwrap();
        assert!(ward::storage::ObjectPath::parse(&path).is_ok(), "{path}");
        assert!(path.split('/').all(|s| s != ".." && !s.starts_with('.')), "{path}");
        assert_eq!(path.split('/').count(), 3, "{path}");
    }
    // Still serving, and still telling tenants apart.
    let me = app.graphql(Some(OTHER_MANAGER), "{ me { municipality { slug } } }", json!({})).await;
    assert!(me["data"]["me"]["municipality"]["slug"].is_string(), "{me}");
    println!("hostile corpus: {} cases", total + images.len());
    assert!(total + images.len() >= 300, "the corpus holds {} cases", total + images.len());
}

/// Hostile requests to the storage routes added for resumable uploads and rendering: every one
/// is answered with a 4xx, never a 5xx or internals, and nothing is stored.
#[tokio::test]
async fn hostile_storage_requests_get_client_errors() {
    let app = spawn_app().await;
    let before = footprint(&app).await;
    let store = crate::storage::local_store(&app).await;
    let p = ward::storage::ObjectPath::parse("m/f/clip.mp4").unwrap();
    let rules = ward::storage::UploadRules { content_type: Some("video/mp4".into()), max_bytes: Some(1000) };
    let token = ward::storage::ObjectStore::create_signed_upload(
        &store,
        "evidence",
        &p,
        std::time::Duration::from_secs(60),
        &rules,
    )
    .await
    .unwrap()
    .token;
    let base = format!("http://{}/storage/v1", app.addr);
    let meta = |bucket: &str, path: &str, ct: &str| {
        format!(
            "bucketName {},objectName {},contentType {}",
            STANDARD.encode(bucket),
            STANDARD.encode(path),
            STANDARD.encode(ct)
        )
    };
    let good_meta = meta("evidence", "m/f/clip.mp4", "video/mp4");
    let huge = "A".repeat(10_000);
    let creations: Vec<(String, Vec<(&str, String)>)> = vec![
        ("no length".into(), vec![("upload-metadata", good_meta.clone())]),
        ("negative length".into(), vec![("upload-length", "-1".into()), ("upload-metadata", good_meta.clone())]),
        (
            "huge length".into(),
            vec![("upload-length", "18446744073709551615".into()), ("upload-metadata", good_meta.clone())],
        ),
        (
            "length past the promise".into(),
            vec![("upload-length", "1001".into()), ("upload-metadata", good_meta.clone())],
        ),
        ("deferred length".into(), vec![("upload-defer-length", "1".into()), ("upload-metadata", good_meta.clone())]),
        ("no metadata".into(), vec![("upload-length", "10".into())]),
        (
            "metadata not base64".into(),
            vec![("upload-length", "10".into()), ("upload-metadata", "bucketName ***".into())],
        ),
        ("metadata too long".into(), vec![("upload-length", "10".into()), ("upload-metadata", format!("x {huge}"))]),
        (
            "traversal".into(),
            vec![
                ("upload-length", "10".into()),
                ("upload-metadata", meta("evidence", "../../etc/passwd", "video/mp4")),
            ],
        ),
        (
            "bad bucket".into(),
            vec![("upload-length", "10".into()), ("upload-metadata", meta("../x", "m/f/clip.mp4", "video/mp4"))],
        ),
        (
            "other type".into(),
            vec![("upload-length", "10".into()), ("upload-metadata", meta("evidence", "m/f/clip.mp4", "text/html"))],
        ),
        (
            "control characters in the type".into(),
            vec![
                ("upload-length", "10".into()),
                ("upload-metadata", meta("evidence", "m/f/clip.mp4", "video/mp4\r\nx: y")),
            ],
        ),
        (
            "another object".into(),
            vec![("upload-length", "10".into()), ("upload-metadata", meta("evidence", "m/f/other.mp4", "video/mp4"))],
        ),
        (
            "upsert".into(),
            vec![("upload-length", "10".into()), ("upload-metadata", good_meta.clone()), ("x-upsert", "true".into())],
        ),
    ];
    let mut problems = Vec::new();
    let mut total = 0;
    let mut check = |name: String, status: u16, text: String, problems: &mut Vec<String>| {
        total += 1;
        let lower = text.to_lowercase();
        if !(400..500).contains(&status) {
            problems.push(format!("{name}: HTTP {status}: {text:.200}"));
        } else if let Some(leak) = LEAKS.iter().find(|l| lower.contains(*l)) {
            problems.push(format!("{name}: leaks {leak:?}: {text:.200}"));
        }
    };
    for (name, headers) in creations {
        let mut request = app
            .http
            .post(format!("{base}/upload/resumable/sign"))
            .header("tus-resumable", "1.0.0")
            .header("x-signature", &token);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        check(format!("create: {name}"), status, response.text().await.unwrap_or_default(), &mut problems);
    }
    // Made-up, forged and malformed upload ids, and bad PATCHes to a real upload.
    let created = app
        .http
        .post(format!("{base}/upload/resumable/sign"))
        .header("tus-resumable", "1.0.0")
        .header("x-signature", &token)
        .header("upload-length", "100")
        .header("upload-metadata", &good_meta)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    // (what it is, URL, headers, body)
    type Patch<'a> = (String, String, Vec<(&'a str, String)>, Vec<u8>);
    let patches: Vec<Patch> = vec![
        (
            "made-up id".into(),
            format!("{base}/upload/resumable/sign/bm9wZQ"),
            vec![("upload-offset", "0".into())],
            vec![1; 10],
        ),
        (
            "id with traversal".into(),
            format!(
                "{base}/upload/resumable/sign/{}",
                URL_SAFE_NO_PAD.encode("evidence/../../x/00000000000040008000000000000001")
            ),
            vec![("upload-offset", "0".into())],
            vec![1; 10],
        ),
        (
            "huge id".into(),
            format!("{base}/upload/resumable/sign/{huge}"),
            vec![("upload-offset", "0".into())],
            vec![1; 10],
        ),
        ("no offset".into(), location.clone(), vec![], vec![1; 10]),
        ("negative offset".into(), location.clone(), vec![("upload-offset", "-5".into())], vec![1; 10]),
        ("offset ahead".into(), location.clone(), vec![("upload-offset", "50".into())], vec![1; 10]),
        ("past the length".into(), location.clone(), vec![("upload-offset", "0".into())], vec![1; 101]),
        (
            "no token".into(),
            location.clone(),
            vec![("upload-offset", "0".into()), ("x-signature", String::new())],
            vec![1; 10],
        ),
        (
            "garbage token".into(),
            location.clone(),
            vec![("upload-offset", "0".into()), ("x-signature", "a.b.c".into())],
            vec![1; 10],
        ),
    ];
    for (name, url, headers, body) in patches {
        let mut request = app
            .http
            .patch(&url)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream");
        if !headers.iter().any(|(k, _)| *k == "x-signature") {
            request = request.header("x-signature", &token);
        }
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request.body(body).send().await.unwrap();
        let status = response.status().as_u16();
        check(format!("patch: {name}"), status, response.text().await.unwrap_or_default(), &mut problems);
    }
    // Render queries that are out of bounds or not renderings at all.
    store
        .upload(
            "evidence",
            &ward::storage::ObjectPath::parse("m/f/notes.pdf").unwrap(),
            "application/pdf",
            bytes::Bytes::from_static(b"%PDF"),
        )
        .await
        .unwrap();
    let key = app.service_token();
    for query in [
        "",
        "width=0",
        "width=99999",
        "width=1&height=-1",
        "width=1e9",
        "width=10&resize=%00",
        "width=10&format=svg",
        "width=10&quality=101",
        "width=%FF",
    ] {
        for target in ["m/f/notes.pdf", "m/f/missing.png"] {
            let response = app
                .http
                .get(format!("{base}/render/image/authenticated/evidence/{target}?{query}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            check(format!("render {target}?{query}"), status, response.text().await.unwrap_or_default(), &mut problems);
        }
    }
    store.remove("evidence", &ward::storage::ObjectPath::parse("m/f/notes.pdf").unwrap()).await.unwrap();
    assert!(problems.is_empty(), "{} of {total} requests went wrong:\n{}", problems.len(), problems.join("\n"));
    assert_eq!(footprint(&app).await, before, "nothing stored");
    println!("hostile storage requests: {total}");
}
