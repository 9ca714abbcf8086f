//! The adversary suite (docs/POLICY.md, threat model): what PostgREST or pg_graphql would
//! accept with a real token, tried directly in SQL. Connected as `authenticator` and switched
//! to `authenticated` with each demo person's claims (and to `anon`), it tries every INSERT and
//! UPDATE of every column of every table, and every DELETE, with hostile values: another
//! municipality's ids, other people's phone and email, chosen tracking numbers, statuses,
//! priorities, buckets and paths, timestamps far away. The columns come from the catalogue, so
//! a new column is attacked without editing this file; the contract (`legit_update`,
//! `legit_insert`) is deny-by-default, so a new column nobody guards fails the test.
//!
//! Each attempt runs in its own transaction, rolled back. It passes when the database refused
//! it (an error, or no row touched) or reset the value to one the contract allows; it fails
//! when a hostile value survives.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use uuid::Uuid;
use ward::auth::Caller;
use ward::db;
use ward::demo::{self, DEMO, OTHER, PEOPLE, TICKETS, WARDS};

use crate::helpers::people::*;
use crate::helpers::{TestDb, caller, user_caller};

/// One person (or nobody) attacking.
#[derive(Clone)]
struct Attacker {
    name: &'static str,
    caller: Caller,
    /// (profile id, role, municipality) when they have a profile.
    me: Option<(Uuid, &'static str, Uuid)>,
}

fn attackers() -> Vec<Attacker> {
    let mut all: Vec<Attacker> = PEOPLE
        .iter()
        .map(|p| Attacker {
            name: p.email,
            caller: caller(p.email),
            me: Some((p.profile_id, role_name(p.email), p.municipality.id)),
        })
        .collect();
    all.push(Attacker { name: "anon", caller: Caller::Anonymous, me: None });
    all
}

fn role_name(email: &str) -> &'static str {
    match email {
        CITIZEN | OTHER_CITIZEN => "citizen",
        WORKER => "field_worker",
        MANAGER | OTHER_MANAGER => "manager",
        SAPS => "saps_liaison",
        ADMIN => "admin",
        _ => unreachable!(),
    }
}

fn pid(email: &str) -> Uuid {
    demo::person(email).unwrap().profile_id
}

fn other_muni(m: Uuid) -> Uuid {
    if m == DEMO.id { OTHER.id } else { DEMO.id }
}

/// A column of a table, from the catalogue.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    data_type: String,
}

async fn catalogue(owner: &DatabaseConnection) -> BTreeMap<String, Vec<Column>> {
    let rows = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "select c.table_name::text as t, c.column_name::text as c, c.data_type::text as d
             from information_schema.columns c
             join pg_tables p on p.schemaname = c.table_schema and p.tablename = c.table_name
             where c.table_schema = 'public' and c.table_name <> 'seaql_migrations'
             order by c.table_name, c.ordinal_position",
        ))
        .await
        .unwrap();
    let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for row in rows {
        let table: String = row.try_get("", "t").unwrap();
        tables
            .entry(table)
            .or_default()
            .push(Column { name: row.try_get("", "c").unwrap(), data_type: row.try_get("", "d").unwrap() });
    }
    tables
}

/// A row under attack, with what the contract needs to know about it.
#[derive(Debug, Clone, Default)]
struct Row {
    id: String,
    municipality: Option<Uuid>,
    owner: Option<Uuid>,
    status: Option<String>,
    sensitive: bool,
    assignee: Option<Uuid>,
}

/// Every row of a table (the seed plus the fixtures), as the owner sees it.
async fn rows(owner: &DatabaseConnection, table: &str) -> Vec<Row> {
    let (municipality, who, status, sensitive, assignee) = match table {
        "tickets" => ("municipality_id", "reporter_id", "status", "is_sensitive", "assignee_id"),
        "profiles" => ("municipality_id", "id", "null", "false", "null"),
        "photos" => (
            "(select p.municipality_id from public.profiles p where p.id = photos.profile_id)",
            "profile_id",
            "null",
            "false",
            "null",
        ),
        "upload_intents" => ("municipality_id", "created_by", "status", "false", "null"),
        "media" => ("municipality_id", "uploaded_by", "null", "false", "null"),
        "ticket_events" => ("municipality_id", "actor_profile_id", "null", "false", "null"),
        "wards" => ("municipality_id", "null", "null", "false", "null"),
        "municipalities" => ("id", "null", "null", "false", "null"),
        _ => ("null", "null", "null", "false", "null"),
    };
    let key = if table == "ticket_counters" { "municipality_id::text || ':' || year" } else { "id::text" };
    let sql = format!(
        "select {key} as id, {municipality}::uuid as m, {who}::uuid as o, {status}::text as s,
                {sensitive}::bool as x, {assignee}::uuid as a
         from public.{table} order by 1"
    );
    owner
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .into_iter()
        .map(|r| Row {
            id: r.try_get("", "id").unwrap(),
            municipality: r.try_get("", "m").unwrap(),
            owner: r.try_get("", "o").unwrap(),
            status: r.try_get("", "s").unwrap(),
            sensitive: r.try_get("", "x").unwrap(),
            assignee: r.try_get("", "a").unwrap(),
        })
        .collect()
}

/// Hostile values for a column, as SQL literals: what an attacker would like to write there.
/// `row_muni` is the municipality of the row attacked (or the attacker's, for inserts).
fn hostile(table: &str, column: &Column, row_muni: Uuid, taken_id: &str) -> Vec<String> {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let other = other_muni(row_muni);
    let same_citizen = if row_muni == DEMO.id { pid(CITIZEN) } else { pid(OTHER_CITIZEN) };
    let foreign_citizen = if row_muni == DEMO.id { pid(OTHER_CITIZEN) } else { pid(CITIZEN) };
    let foreign_ticket = TICKETS.iter().find(|t| t.municipality == other).unwrap().id;
    let foreign_ward = WARDS.iter().find(|w| w.1 == other).unwrap().0;
    let slug = if row_muni == DEMO.id { "DEMO" } else { "OTHER" };
    let name = column.name.as_str();
    let values: Vec<String> = match (table, name) {
        (_, "id") if column.data_type == "uuid" => vec![q(taken_id)],
        (_, "id") => vec!["99999999".into()],
        (_, "municipality_id") => vec![q(&other.to_string())],
        (_, "reporter_id" | "assignee_id" | "created_by" | "uploaded_by" | "actor_profile_id" | "profile_id") => {
            vec![q(&same_citizen.to_string()), q(&foreign_citizen.to_string())]
        }
        (_, "auth_user_id") => vec![q(&demo::person(MANAGER).unwrap().auth_user_id.to_string())],
        (_, "ticket_id") => vec![q(&foreign_ticket.to_string()), q(&TICKETS[2].id.to_string())],
        (_, "upload_intent_id") => vec![q(&Uuid::new_v4().to_string())],
        (_, "ward_id") => vec![q(&foreign_ward.to_string())],
        (_, "tracking_number") => vec![q(&format!("{slug}-2026-999999")), q("OTHER-2026-000042")],
        ("tickets" | "ticket_events", "status") => vec![q("RESOLVED"), q("CLOSED")],
        ("upload_intents", "status") => vec![q("CONFIRMED"), q("EXPIRED")],
        (_, "priority") => vec![q("URGENT")],
        (_, "role") => vec![q("admin")],
        (_, "category") => vec![q("SAFETY")],
        (_, "bucket") => vec![q("gbv-evidence"), q("evidence")],
        (_, "object_path" | "thumbnail_path") => {
            vec![q(&format!("{other}/stolen/x.jpg")), q(&format!("{foreign_citizen}/x/y.jpg"))]
        }
        (_, "phone") => vec![q("+27820000003"), q("+27820000007")],
        (_, "email") => vec![q("manager@demo.test"), q("attacker@evil.test")],
        (_, "kind") => vec![q("CREATED")],
        (_, "notice_kind") => vec![q("SLA_BREACHED")],
        (_, "purpose") => vec![q("GBV_EVIDENCE"), q("PHOTO")],
        (_, "content_type") => vec![q("text/html")],
        (_, "slug") => vec![q("hijacked")],
        (_, "year") => vec!["1999".into()],
        _ => match column.data_type.as_str() {
            "text" => vec![q("hostile")],
            "timestamp with time zone" => vec![q("2036-01-01 00:00:00+00")],
            "integer" => vec!["999".into()],
            "bigint" => vec!["999999999".into()],
            "boolean" => vec!["true".into(), "false".into()],
            "jsonb" => vec![q(r#"{"forged": true}"#)],
            other => panic!("no hostile value for {table}.{name} of type {other}: add one"),
        },
    };
    values
}

/// Whether the contract lets `who` give `row`'s `column` the value `value` (docs/POLICY.md).
fn legit_update(who: &Attacker, table: &str, column: &str, row: &Row, value: &str) -> bool {
    let Some((me, role, muni)) = who.me else { return false };
    let same_muni = row.municipality == Some(muni);
    let v = value.trim_matches('\'');
    match table {
        "tickets" => {
            let manages =
                same_muni && (matches!(role, "manager" | "admin") || (role == "saps_liaison" && row.sensitive));
            let status = row.status.as_deref().unwrap_or("");
            match column {
                "title" | "description" | "category" | "priority" => manages,
                "is_sensitive" => {
                    manages && (v == "true" || !row.sensitive || matches!(role, "saps_liaison" | "admin"))
                }
                "status" => {
                    let moves = |to: &str| {
                        matches!(
                            (status, to),
                            ("OPEN", "IN_PROGRESS" | "RESOLVED" | "REJECTED" | "CLOSED")
                                | ("IN_PROGRESS", "OPEN" | "RESOLVED" | "REJECTED")
                                | ("RESOLVED", "CLOSED" | "OPEN")
                                | ("CLOSED" | "REJECTED", "OPEN")
                        )
                    };
                    let worker = role == "field_worker"
                        && row.assignee == Some(me)
                        && !row.sensitive
                        && matches!(
                            (status, v),
                            ("OPEN" | "IN_PROGRESS", "RESOLVED") | ("OPEN", "IN_PROGRESS") | ("IN_PROGRESS", "OPEN")
                        );
                    moves(v) && (manages || worker)
                }
                _ => false,
            }
        }
        "profiles" => match column {
            "display_name" => row.owner == Some(me),
            "role" => role == "admin" && same_muni && row.owner != Some(me),
            _ => false,
        },
        "upload_intents" => {
            column == "status" && row.owner == Some(me) && row.status.as_deref() == Some("PENDING") && v == "CONFIRMED"
        }
        _ => false,
    }
}

/// Whether the contract lets `who` insert a row with `column` = `value` (the rest of the row
/// being a legitimate one of theirs).
fn legit_insert(who: &Attacker, table: &str, column: &str, value: &str) -> bool {
    let Some((_, role, muni)) = who.me else { return false };
    let staff = matches!(role, "manager" | "saps_liaison" | "admin");
    let own_ticket = TICKETS.iter().any(|t| t.municipality == muni && value.trim_matches('\'') == t.id.to_string());
    match (table, column) {
        // Managers and admins publish notices on any ticket of their municipality.
        ("ticket_events", "ticket_id") => own_ticket && matches!(role, "manager" | "admin"),
        ("tickets", "title" | "description" | "category" | "is_sensitive") => true,
        ("tickets", "priority") => staff,
        ("ticket_events", "message") => true,
        ("upload_intents", "filename" | "content_type") => true,
        ("photos", "size_bytes" | "width" | "height") => true,
        // Registering: a newcomer picks the municipality they live in.
        ("profiles", "display_name" | "municipality_id") => true,
        _ => {
            let _ = value;
            false
        }
    }
}

/// A legitimate row of `table` for `who` to insert (columns and SQL literals), with the
/// statements that must run first (e.g. the intent a media row confirms).
fn baseline(who: &Attacker, table: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let q = |s: String| format!("'{s}'");
    let (me, _, muni) = who.me.unwrap_or((Uuid::nil(), "anon", DEMO.id));
    let own_ticket = TICKETS.iter().find(|t| t.municipality == muni && !t.is_sensitive).unwrap().id;
    let ward = WARDS.iter().find(|w| w.1 == muni).unwrap().0;
    let mut setup = Vec::new();
    let row: Vec<(&str, String)> = match table {
        "tickets" => vec![
            ("municipality_id", q(muni.to_string())),
            ("category", q("WATER".into())),
            ("title", q("t".into())),
            ("reporter_id", q(me.to_string())),
            ("ward_id", q(ward.to_string())),
        ],
        "profiles" => vec![
            ("auth_user_id", "auth.uid()".into()),
            ("municipality_id", q(muni.to_string())),
            ("display_name", q("Newcomer".into())),
        ],
        "photos" => {
            let id = Uuid::new_v4();
            vec![
                ("id", q(id.to_string())),
                ("profile_id", q(me.to_string())),
                ("object_path", q(format!("{me}/{id}/p.jpg"))),
                ("content_type", q("image/jpeg".into())),
                ("size_bytes", "10".into()),
            ]
        }
        "upload_intents" => vec![
            ("municipality_id", q(muni.to_string())),
            ("created_by", q(me.to_string())),
            ("purpose", q("EVIDENCE".into())),
            ("ticket_id", q(own_ticket.to_string())),
            ("bucket", q("evidence".into())),
            ("object_path", q(format!("{muni}/{}/f.jpg", Uuid::new_v4()))),
            ("filename", q("f.jpg".into())),
            ("content_type", q("image/jpeg".into())),
            ("max_size_bytes", "100".into()),
            ("expires_at", "now() + interval '1 hour'".into()),
        ],
        "media" => {
            let intent = Uuid::new_v4();
            let path = format!("{muni}/{}/f.jpg", Uuid::new_v4());
            setup.push(format!(
                "insert into public.upload_intents (id, municipality_id, created_by, purpose, ticket_id, bucket,
                   object_path, filename, content_type, max_size_bytes, expires_at)
                 values ('{intent}', '{muni}', '{me}', 'EVIDENCE', '{own_ticket}', 'evidence', '{path}', 'f.jpg',
                   'image/jpeg', 100, now() + interval '1 hour')"
            ));
            vec![
                ("ticket_id", q(own_ticket.to_string())),
                ("municipality_id", q(muni.to_string())),
                ("purpose", q("EVIDENCE".into())),
                ("bucket", q("evidence".into())),
                ("object_path", q(path)),
                ("content_type", q("image/jpeg".into())),
                ("size_bytes", "10".into()),
                ("uploaded_by", q(me.to_string())),
                ("upload_intent_id", q(intent.to_string())),
            ]
        }
        "ticket_events" => vec![
            ("ticket_id", q(own_ticket.to_string())),
            ("municipality_id", q(muni.to_string())),
            ("kind", q("NOTICE".into())),
            ("notice_kind", q("CREW_DISPATCHED".into())),
            ("message", q("m".into())),
            ("status", q("OPEN".into())),
            ("actor_profile_id", q(me.to_string())),
            ("payload", "'{}'".into()),
        ],
        "wards" => vec![("municipality_id", q(muni.to_string())), ("name", q("Ward X".into()))],
        "municipalities" => vec![("name", q("Evil".into())), ("slug", q("evil".into()))],
        "ticket_counters" => {
            vec![("municipality_id", q(muni.to_string())), ("year", "2026".into()), ("last_value", "0".into())]
        }
        other => panic!("no baseline row for {other}: add one"),
    };
    (setup, row.into_iter().map(|(c, v)| (c.to_string(), v)).collect())
}

/// The condition that picks `row` of `table`.
fn row_key(table: &str, row: &Row) -> String {
    if table == "ticket_counters" {
        format!("municipality_id::text || ':' || year = '{}'", row.id)
    } else {
        format!("id::text = '{}'", row.id)
    }
}

/// Whether the row already holds `value` in `column`.
async fn unchanged(owner: &DatabaseConnection, table: &str, column: &str, key: &str, value: &str) -> bool {
    let sql = format!("select ({column} is not distinct from {value})::text from public.{table} where {key}");
    let row = owner.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap();
    row.is_some_and(|r| r.try_get_by_index::<String>(0).unwrap() == "true")
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    attempts: u32,
    refused: u32,
    reset: u32,
    survived: u32,
}

/// Runs `setup` then `sql` (which returns the attacked column as text) as `who`; `None` when
/// the database refused (an error, or no row), else the value that was written.
async fn attempt(pool: &DatabaseConnection, who: &Caller, setup: &[String], sql: &str) -> Option<Option<String>> {
    let tx = db::begin(pool, who, false).await.unwrap();
    for statement in setup {
        if tx.execute_unprepared(statement).await.is_err() {
            let _ = tx.rollback().await;
            return None;
        }
    }
    let result = tx.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await;
    let _ = tx.rollback().await;
    match result {
        Ok(Some(row)) => Some(row.try_get_by_index::<Option<String>>(0).unwrap()),
        Ok(None) | Err(_) => None,
    }
}

/// Whether `written` is the hostile literal `value` (as PostgreSQL prints it back).
fn same(written: &Option<String>, value: &str, column: &Column) -> bool {
    let Some(written) = written else { return value == "null" };
    let literal = value.trim_matches('\'').replace("''", "'");
    match column.data_type.as_str() {
        "timestamp with time zone" => written.starts_with("2036-01-01"),
        "jsonb" => written.contains("forged"),
        _ => *written == literal,
    }
}

#[tokio::test]
async fn no_hostile_write_survives_as_any_demo_person_or_anon() {
    let test_db = TestDb::new().await;
    let owner = test_db.owner().await;
    crate::policy::fixtures(&owner).await;
    let pool = test_db.app_pool().await;
    let tables = catalogue(&owner).await;
    assert!(tables.len() >= 9, "the catalogue lists ward's tables: {:?}", tables.keys());
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut survivors = Vec::new();
    let attackers = attackers();
    let newcomer = Attacker {
        name: "newcomer (no profile yet)",
        caller: user_caller(Uuid::new_v4(), Some("newcomer@demo.test")),
        me: Some((Uuid::nil(), "citizen", DEMO.id)),
    };

    for (table, columns) in &tables {
        let targets = rows(&owner, table).await;
        let taken_id = targets.first().map(|r| r.id.clone()).unwrap_or_default();
        // UPDATE: every column of every row, by everyone.
        for who in &attackers {
            for row in &targets {
                let key = row_key(table, row);
                for column in columns {
                    for value in
                        hostile(table, column, row.municipality.unwrap_or(DEMO.id), &Uuid::new_v4().to_string())
                    {
                        if unchanged(&owner, table, &column.name, &key, &value).await {
                            continue; // the row already holds it: no attack
                        }
                        let sql = format!(
                            "update public.{table} set {c} = {value} where {key} returning {c}::text",
                            c = column.name
                        );
                        let outcome = attempt(&pool, &who.caller, &[], &sql).await;
                        let t = tally.entry(table.clone()).or_default();
                        match outcome {
                            None => {
                                t.attempts += 1;
                                t.refused += 1;
                            }
                            Some(written) => {
                                let kept = same(&written, &value, column);
                                if legit_update(who, table, &column.name, row, &value) {
                                    continue; // the contract allows it: not an attack
                                }
                                t.attempts += 1;
                                if kept {
                                    t.survived += 1;
                                    survivors.push(format!(
                                        "{} updated {table}.{} of {} to {value}",
                                        who.name, column.name, row.id
                                    ));
                                } else {
                                    t.reset += 1;
                                }
                            }
                        }
                    }
                }
            }
        }

        // INSERT: a legitimate row of theirs with one hostile column, by everyone.
        let mut inserters: Vec<&Attacker> = attackers.iter().collect();
        if table == "profiles" {
            inserters.push(&newcomer);
        }
        for who in inserters {
            let muni = who.me.map_or(DEMO.id, |m| m.2);
            for column in columns {
                for value in hostile(table, column, muni, &taken_id) {
                    let (setup, mut row) = baseline(who, table);
                    if row.get(&column.name) == Some(&value) {
                        continue; // the legitimate value itself
                    }
                    row.insert(column.name.clone(), value.clone());
                    let names: Vec<&str> = row.keys().map(String::as_str).collect();
                    let values: Vec<&str> = row.values().map(String::as_str).collect();
                    let overriding =
                        if table == "ticket_events" && column.name == "id" { " overriding system value" } else { "" };
                    let sql = format!(
                        "insert into public.{table} ({}){overriding} values ({}) returning {}::text",
                        names.join(", "),
                        values.join(", "),
                        column.name
                    );
                    let outcome = attempt(&pool, &who.caller, &setup, &sql).await;
                    let t = tally.entry(table.clone()).or_default();
                    match outcome {
                        None => {
                            t.attempts += 1;
                            t.refused += 1;
                        }
                        Some(written) => {
                            let kept = same(&written, &value, column);
                            if legit_insert(who, table, &column.name, &value) {
                                continue;
                            }
                            t.attempts += 1;
                            if kept {
                                t.survived += 1;
                                survivors
                                    .push(format!("{} inserted into {table} with {} = {value}", who.name, column.name));
                            } else {
                                t.reset += 1;
                            }
                        }
                    }
                }
            }
        }

        // DELETE: every row, by everyone. Only a photo's owner may delete it.
        for who in &attackers {
            for row in &targets {
                let key = row_key(table, row);
                let sql = format!("delete from public.{table} where {key} returning 'deleted'");
                let outcome = attempt(&pool, &who.caller, &[], &sql).await;
                let own_photo = table == "photos" && who.me.is_some_and(|m| Some(m.0) == row.owner);
                if own_photo && outcome.is_some() {
                    continue;
                }
                let t = tally.entry(table.clone()).or_default();
                t.attempts += 1;
                if outcome.is_some() {
                    t.survived += 1;
                    survivors.push(format!("{} deleted {table} row {}", who.name, row.id));
                } else {
                    t.refused += 1;
                }
            }
        }
    }

    let total: u32 = tally.values().map(|t| t.attempts).sum();
    for (table, t) in &tally {
        println!(
            "adversary: {table:<16} {:>5} hostile attempts, {:>5} refused, {:>4} reset, {:>3} survived",
            t.attempts, t.refused, t.reset, t.survived
        );
    }
    println!("adversary: {total} hostile attempts in all");
    assert!(total >= 300, "the suite makes at least 300 hostile attempts, made {total}");
    assert!(survivors.is_empty(), "{} hostile writes survived:\n{}", survivors.len(), survivors.join("\n"));
}
