//! Reading tickets page by page: filters, sort orders, opaque cursors and Relay pages, the
//! page query, and counts that stay cheap in a large municipality.

use chrono::{DateTime, Utc};
use entity::enums::{TicketCategory, TicketStatus};
use entity::prelude::*;
use entity::ticket;
use sea_orm::{ActiveEnum, ConnectionTrait, DbBackend, EntityTrait, Statement, Value};
use uuid::Uuid;

use crate::domain::{DomainError, paging};

/// Which tickets a list holds (all conditions must hold).
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub statuses: Vec<TicketStatus>,
    pub categories: Vec<TicketCategory>,
    pub ward_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub is_sensitive: Option<bool>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Words to find in the title or description (case-insensitive).
    pub search: Option<String>,
}

/// What a list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderField {
    CreatedAt,
    UpdatedAt,
    SlaDueAt,
}

impl OrderField {
    fn column(self) -> &'static str {
        match self {
            OrderField::CreatedAt => "created_at",
            OrderField::UpdatedAt => "updated_at",
            OrderField::SlaDueAt => "sla_due_at",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            OrderField::CreatedAt => "t1c",
            OrderField::UpdatedAt => "t1u",
            OrderField::SlaDueAt => "t1s",
        }
    }

    fn value(self, t: &ticket::Model) -> DateTime<Utc> {
        match self {
            OrderField::CreatedAt => t.created_at.to_utc(),
            OrderField::UpdatedAt => t.updated_at.to_utc(),
            OrderField::SlaDueAt => t.sla_due_at.map(|d| d.to_utc()).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// Sort order: a field, then the id, in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketOrder {
    pub field: OrderField,
    pub descending: bool,
}

impl Default for TicketOrder {
    fn default() -> Self {
        TicketOrder { field: OrderField::CreatedAt, descending: true }
    }
}

/// A position in a sorted list: the sort value and id of a ticket. Opaque to clients; stable
/// under inserts because it names a place in the order, not an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    field: OrderField,
    value: DateTime<Utc>,
    id: Uuid,
}

impl Cursor {
    pub fn of(field: OrderField, ticket: &ticket::Model) -> Self {
        Cursor { field, value: field.value(ticket), id: ticket.id }
    }

    pub fn encode(&self) -> String {
        crate::domain::cursor::encode(self.field.tag(), self.value, self.id)
    }

    pub fn decode(text: &str, field: OrderField) -> Result<Self, DomainError> {
        let (value, id) = crate::domain::cursor::decode(field.tag(), text)?;
        Ok(Cursor { field, value, id })
    }
}

/// Which page of a list.
#[derive(Debug, Clone)]
pub enum Page {
    /// The first `n` after a cursor (or from the start).
    First { n: u64, after: Option<Cursor> },
    /// The last `n` before a cursor (or up to the end).
    Last { n: u64, before: Option<Cursor> },
}

impl Page {
    /// Reads Relay's `first`/`after`/`last`/`before`.
    pub fn from_relay(
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
        field: OrderField,
    ) -> Result<Self, DomainError> {
        let cursor = |c: Option<&str>| c.map(|c| Cursor::decode(c, field)).transpose();
        match (first, last) {
            (Some(_), Some(_)) => Err(DomainError::BadInput("use `first` or `last`, not both".into())),
            (_, Some(n)) => {
                if after.is_some() {
                    return Err(DomainError::BadInput("`last` pages backwards: use `before`, not `after`".into()));
                }
                Ok(Page::Last { n: paging::size(Some(n), "last")?, before: cursor(before)? })
            }
            (first, None) => {
                if before.is_some() {
                    return Err(DomainError::BadInput("`first` pages forwards: use `after`, not `before`".into()));
                }
                Ok(Page::First { n: paging::size(first, "first")?, after: cursor(after)? })
            }
        }
    }
}

/// One page of tickets, in list order.
#[derive(Debug, Clone)]
pub struct TicketPage {
    pub tickets: Vec<ticket::Model>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

/// SQL conditions with their bound values, numbered as they are added.
#[derive(Default)]
struct Conditions {
    sql: Vec<String>,
    values: Vec<Value>,
}

impl Conditions {
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    fn push(&mut self, condition: String) {
        self.sql.push(condition);
    }

    fn where_clause(&self) -> String {
        if self.sql.is_empty() { String::new() } else { format!("where {}", self.sql.join(" and ")) }
    }
}

/// The shortest search text looked up through the trigram indexes.
const MIN_INDEXED_SEARCH: usize = 3;

fn filter_conditions(filter: &TicketFilter) -> Conditions {
    let mut c = Conditions::default();
    if !filter.statuses.is_empty() {
        let list: Vec<String> = filter.statuses.iter().map(|s| c.bind(s.to_value())).collect();
        c.push(format!("status in ({})", list.join(", ")));
    }
    if !filter.categories.is_empty() {
        let list: Vec<String> = filter.categories.iter().map(|s| c.bind(s.to_value())).collect();
        c.push(format!("category in ({})", list.join(", ")));
    }
    if let Some(ward) = filter.ward_id {
        let p = c.bind(ward);
        c.push(format!("ward_id = {p}"));
    }
    if let Some(assignee) = filter.assignee_id {
        let p = c.bind(assignee);
        c.push(format!("assignee_id = {p}"));
    }
    if let Some(sensitive) = filter.is_sensitive {
        let p = c.bind(sensitive);
        c.push(format!("is_sensitive = {p}"));
    }
    if let Some(after) = filter.created_after {
        let p = c.bind(after);
        c.push(format!("created_at >= {p}"));
    }
    if let Some(before) = filter.created_before {
        let p = c.bind(before);
        c.push(format!("created_at < {p}"));
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let escaped = search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let p = c.bind(format!("%{escaped}%"));
        if search.chars().count() >= MIN_INDEXED_SEARCH {
            // Through the trigram indexes, visible tickets only (migration 0011, P-SEARCH);
            // the policy still applies to the rows read here.
            c.push(format!("id in (select app.search_ticket_ids({p}))"));
        } else {
            // Trigrams need three characters: shorter text is looked for among what the
            // caller sees, row by row.
            c.push(format!("(title ilike {p} escape '\\' or description ilike {p} escape '\\')"));
        }
    }
    c
}

/// One page of the tickets the caller can see.
#[tracing::instrument(skip_all)]
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &TicketFilter,
    order: TicketOrder,
    page: &Page,
) -> Result<TicketPage, DomainError> {
    let mut c = filter_conditions(filter);
    let column = order.field.column();
    // Walking backwards (`last`/`before`) reads in the opposite direction, then flips the page.
    let (limit, cursor, backwards) = match page {
        Page::First { n, after } => (*n, after.as_ref(), false),
        Page::Last { n, before } => (*n, before.as_ref(), true),
    };
    let descending = order.descending != backwards;
    if let Some(cursor) = cursor {
        let v = c.bind(cursor.value);
        let id = c.bind(cursor.id);
        let op = if descending { "<" } else { ">" };
        c.push(format!("({column}, id) {op} ({v}, {id})"));
    }
    let direction = if descending { "desc" } else { "asc" };
    // The limit is written into the statement, not bound: with `limit $n` PostgreSQL's generic
    // plan cannot know how few rows are wanted, so it planned the query afresh on every call.
    // It is a number the page already bounded (≤ 101), one cached statement per page size.
    let sql = format!(
        "select * from tickets {} order by {column} {direction}, id {direction} limit {}",
        c.where_clause(),
        limit + 1
    );
    let mut rows =
        Ticket::find().from_raw_sql(Statement::from_sql_and_values(DbBackend::Postgres, sql, c.values)).all(db).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    if backwards {
        rows.reverse();
        Ok(TicketPage { tickets: rows, has_next_page: cursor.is_some(), has_previous_page: more })
    } else {
        Ok(TicketPage { tickets: rows, has_next_page: more, has_previous_page: cursor.is_some() })
    }
}

/// Up to how many matching tickets a count is exact.
pub const EXACT_COUNT_LIMIT: i64 = 10_000;

/// How many tickets match a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketCount {
    pub count: i64,
    /// `false` past [`EXACT_COUNT_LIMIT`]: `count` is then PostgreSQL's estimate.
    pub exact: bool,
}

/// How many tickets the caller can see that match `filter`: exact up to
/// [`EXACT_COUNT_LIMIT`] (counting stops there, so a page view never reads a whole large
/// municipality), and beyond it the planner's estimate under the caller's policies.
#[tracing::instrument(skip_all)]
pub async fn count(db: &impl ConnectionTrait, filter: &TicketFilter) -> Result<TicketCount, DomainError> {
    let c = filter_conditions(filter);
    let sql = format!(
        "select count(*) as n from (select 1 from tickets {} limit {}) matching",
        c.where_clause(),
        EXACT_COUNT_LIMIT + 1
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, c.values.clone()))
        .await?
        .ok_or_else(|| DomainError::Db(sea_orm::DbErr::RecordNotFound("count".into())))?;
    let n = row.try_get::<i64>("", "n")?;
    if n <= EXACT_COUNT_LIMIT {
        return Ok(TicketCount { count: n, exact: true });
    }
    let explain = format!("explain (format json) select 1 from tickets {}", c.where_clause());
    let plan = db
        .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, explain, c.values))
        .await?
        .ok_or_else(|| DomainError::Db(sea_orm::DbErr::RecordNotFound("plan".into())))?;
    let plan: serde_json::Value = plan.try_get("", "QUERY PLAN")?;
    let estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64;
    // Never less than what was counted.
    Ok(TicketCount { count: estimate.max(n), exact: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let cursor = Cursor { field: OrderField::CreatedAt, value: Utc::now(), id: Uuid::new_v4() };
        let decoded = Cursor::decode(&cursor.encode(), OrderField::CreatedAt).unwrap();
        assert_eq!(decoded.id, cursor.id);
        assert_eq!(decoded.value.timestamp_micros(), cursor.value.timestamp_micros());
        assert!(Cursor::decode(&cursor.encode(), OrderField::UpdatedAt).is_err());
        assert!(Cursor::decode("bm9wZQ", OrderField::CreatedAt).is_err());
        assert!(Cursor::decode("%%%", OrderField::CreatedAt).is_err());
    }

    #[test]
    fn pages_are_bounded() {
        let f = OrderField::CreatedAt;
        assert!(matches!(Page::from_relay(None, None, None, None, f), Ok(Page::First { n: 20, .. })));
        assert!(Page::from_relay(Some(101), None, None, None, f).is_err());
        assert!(Page::from_relay(Some(-1), None, None, None, f).is_err());
        assert!(Page::from_relay(Some(5), None, Some(5), None, f).is_err());
        assert!(matches!(Page::from_relay(None, None, Some(100), None, f), Ok(Page::Last { n: 100, .. })));
    }
}
