//! The demo: two municipalities, their wards, seven people and a few tickets, seeded on the
//! embedded default (and in tests). Ids are fixed, so tokens printed by `ward token` keep
//! working across restarts and re-seeding changes nothing.

use entity::enums::AppRole;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use uuid::{Uuid, uuid};

/// A demo municipality.
#[derive(Debug, Clone, Copy)]
pub struct DemoMunicipality {
    pub id: Uuid,
    pub slug: &'static str,
    pub name: &'static str,
}

pub const DEMO: DemoMunicipality =
    DemoMunicipality { id: uuid!("00000000-0000-4000-8000-00000000d001"), slug: "demo", name: "Demo Municipality" };
pub const OTHER: DemoMunicipality =
    DemoMunicipality { id: uuid!("00000000-0000-4000-8000-00000000d002"), slug: "other", name: "Other Municipality" };

/// A demo person.
#[derive(Debug, Clone, Copy)]
pub struct DemoPerson {
    pub email: &'static str,
    pub display_name: &'static str,
    pub role: AppRole,
    pub municipality: DemoMunicipality,
    /// The profile's id.
    pub profile_id: Uuid,
    /// The auth user id (the `sub` of their tokens).
    pub auth_user_id: Uuid,
    pub phone: &'static str,
}

macro_rules! person {
    ($email:literal, $name:literal, $role:ident, $muni:ident, $n:literal, $phone:literal) => {
        DemoPerson {
            email: $email,
            display_name: $name,
            role: AppRole::$role,
            municipality: $muni,
            profile_id: uuid!(concat!("00000000-0000-4000-8000-0000000a000", $n)),
            auth_user_id: uuid!(concat!("00000000-0000-4000-8000-0000000b000", $n)),
            phone: $phone,
        }
    };
}

/// The demo people, in the order docs/POLICY.md lists them.
pub const PEOPLE: [DemoPerson; 7] = [
    person!("citizen@demo.test", "Thandi Citizen", Citizen, DEMO, "1", "+27820000001"),
    person!("worker@demo.test", "Sipho Worker", FieldWorker, DEMO, "2", "+27820000002"),
    person!("manager@demo.test", "Lerato Manager", Manager, DEMO, "3", "+27820000003"),
    person!("saps@demo.test", "Officer Naidoo", SapsLiaison, DEMO, "4", "+27820000004"),
    person!("admin@demo.test", "Ayesha Admin", Admin, DEMO, "5", "+27820000005"),
    person!("citizen@other.test", "Pieter Citizen", Citizen, OTHER, "6", "+27820000006"),
    person!("manager@other.test", "Nomvula Manager", Manager, OTHER, "7", "+27820000007"),
];

/// The demo person with this email (case-insensitive).
pub fn person(email: &str) -> Option<&'static DemoPerson> {
    PEOPLE.iter().find(|p| p.email.eq_ignore_ascii_case(email.trim()))
}

/// A demo ward: (id, municipality, name, number).
pub const WARDS: [(Uuid, Uuid, &str, i32); 4] = [
    (uuid!("00000000-0000-4000-8000-0000000c0001"), DEMO.id, "Ward 1 (Central)", 1),
    (uuid!("00000000-0000-4000-8000-0000000c0002"), DEMO.id, "Ward 2 (Harbour)", 2),
    (uuid!("00000000-0000-4000-8000-0000000c0003"), OTHER.id, "Ward 1 (Hillside)", 1),
    (uuid!("00000000-0000-4000-8000-0000000c0004"), OTHER.id, "Ward 2 (River)", 2),
];

/// A demo ticket.
#[derive(Debug, Clone, Copy)]
pub struct DemoTicket {
    pub id: Uuid,
    pub municipality: Uuid,
    pub category: &'static str,
    pub title: &'static str,
    pub status: &'static str,
    pub ward: Uuid,
    pub reporter: &'static str,
    pub assignee: Option<&'static str>,
    pub is_sensitive: bool,
}

macro_rules! ticket {
    ($n:literal, $muni:ident, $cat:literal, $title:literal, $status:literal, $ward:literal,
     $reporter:literal, $assignee:expr, $sensitive:literal) => {
        DemoTicket {
            id: uuid!(concat!("00000000-0000-4000-8000-0000000e000", $n)),
            municipality: $muni.id,
            category: $cat,
            title: $title,
            status: $status,
            ward: WARDS[$ward].0,
            reporter: $reporter,
            assignee: $assignee,
            is_sensitive: $sensitive,
        }
    };
}

/// The demo tickets: in `demo`, two of the citizen's, one sensitive case, and two of the
/// manager's (one assigned to the field worker); in `other`, one each.
pub const TICKETS: [DemoTicket; 7] = [
    ticket!(
        "1",
        DEMO,
        "WATER",
        "Burst pipe on Main Road",
        "OPEN",
        0,
        "citizen@demo.test",
        Some("worker@demo.test"),
        false
    ),
    ticket!("2", DEMO, "ROADS", "Pothole outside the clinic", "IN_PROGRESS", 1, "citizen@demo.test", None, false),
    ticket!("3", DEMO, "SAFETY", "Domestic violence report", "OPEN", 0, "citizen@demo.test", None, true),
    ticket!(
        "4",
        DEMO,
        "ELECTRICITY",
        "Streetlights out in Harbour Street",
        "OPEN",
        1,
        "manager@demo.test",
        Some("worker@demo.test"),
        false
    ),
    ticket!("5", DEMO, "WASTE", "Missed refuse collection", "RESOLVED", 0, "manager@demo.test", None, false),
    ticket!("6", OTHER, "WATER", "No water pressure", "OPEN", 2, "citizen@other.test", None, false),
    ticket!("7", OTHER, "ROADS", "Collapsed culvert", "OPEN", 3, "manager@other.test", None, false),
];

fn profile_id(email: &str) -> Option<Uuid> {
    person(email).map(|p| p.profile_id)
}

async fn exec(db: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    Ok(())
}

/// Inserts the demo rows that are missing. Runs as the schema owner.
pub async fn seed(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    for m in [DEMO, OTHER] {
        exec(
            db,
            "insert into municipalities (id, name, slug) values ($1, $2, $3) on conflict do nothing",
            vec![m.id.into(), m.name.into(), m.slug.into()],
        )
        .await?;
    }
    for (id, municipality, name, number) in WARDS {
        exec(
            db,
            "insert into wards (id, municipality_id, name, number) values ($1, $2, $3, $4) \
             on conflict do nothing",
            vec![id.into(), municipality.into(), name.into(), number.into()],
        )
        .await?;
    }
    for p in PEOPLE {
        exec(
            db,
            "insert into profiles (id, auth_user_id, municipality_id, role, display_name, phone, email) \
             values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing",
            vec![
                p.profile_id.into(),
                p.auth_user_id.into(),
                p.municipality.id.into(),
                sea_orm::ActiveEnum::to_value(&p.role).into(),
                p.display_name.into(),
                p.phone.into(),
                p.email.into(),
            ],
        )
        .await?;
    }
    for t in TICKETS {
        // `where not exists` rather than `on conflict`: a conflicting insert would still draw a
        // tracking number from the counter.
        exec(
            db,
            "insert into tickets (id, municipality_id, category, title, description, status, ward_id, \
             reporter_id, assignee_id, is_sensitive) \
             select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
             where not exists (select 1 from tickets where id = $1)",
            vec![
                t.id.into(),
                t.municipality.into(),
                t.category.into(),
                t.title.into(),
                format!("Demo ticket: {}.", t.title.to_lowercase()).into(),
                t.status.into(),
                t.ward.into(),
                profile_id(t.reporter).into(),
                t.assignee.and_then(profile_id).into(),
                t.is_sensitive.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_have_distinct_ids() {
        let mut ids: Vec<Uuid> = PEOPLE.iter().flat_map(|p| [p.profile_id, p.auth_user_id]).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), PEOPLE.len() * 2);
    }

    #[test]
    fn people_are_found_by_email() {
        assert_eq!(person("Manager@Demo.test").map(|p| p.role), Some(AppRole::Manager));
        assert!(person("nobody@demo.test").is_none());
    }
}
