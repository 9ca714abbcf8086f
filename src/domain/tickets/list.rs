//! Reading tickets page by page: filters, sort orders, opaque cursors and Relay pages, the
//! page query, and counts that stay cheap in a large municipality.

use chrono::{DateTime, Utc};
use entity::enums::{TicketCategory, TicketStatus};
use entity::prelude::*;
use entity::ticket;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    Statement,
};
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
    fn column(self) -> ticket::Column {
        match self {
            OrderField::CreatedAt => ticket::Column::CreatedAt,
            OrderField::UpdatedAt => ticket::Column::UpdatedAt,
            OrderField::SlaDueAt => ticket::Column::SlaDueAt,
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

/// The shortest search text looked up through the trigram indexes.
const MIN_INDEXED_SEARCH: usize = 3;

/// The condition a filter puts on tickets, as sea-query builds it (bound values, never text
/// pasted into SQL).
fn filter_condition(filter: &TicketFilter) -> Condition {
    let mut cond = Condition::all();
    if !filter.statuses.is_empty() {
        cond = cond.add(ticket::Column::Status.is_in(filter.statuses.iter().cloned()));
    }
    if !filter.categories.is_empty() {
        cond = cond.add(ticket::Column::Category.is_in(filter.categories.iter().cloned()));
    }
    if let Some(ward) = filter.ward_id {
        cond = cond.add(ticket::Column::WardId.eq(ward));
    }
    if let Some(assignee) = filter.assignee_id {
        cond = cond.add(ticket::Column::AssigneeId.eq(assignee));
    }
    if let Some(sensitive) = filter.is_sensitive {
        cond = cond.add(ticket::Column::IsSensitive.eq(sensitive));
    }
    if let Some(after) = filter.created_after {
        cond = cond.add(ticket::Column::CreatedAt.gte(after));
    }
    if let Some(before) = filter.created_before {
        cond = cond.add(ticket::Column::CreatedAt.lt(before));
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let escaped = search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        if search.chars().count() >= MIN_INDEXED_SEARCH {
            // Through the trigram indexes, visible tickets only (migration 0011, P-SEARCH);
            // the policy still applies to the rows read here.
            let ids = Query::select().expr(Expr::cust_with_values("app.search_ticket_ids($1)", [pattern])).to_owned();
            cond = cond.add(Expr::col(ticket::Column::Id).in_subquery(ids));
        } else {
            // Trigrams need three characters: shorter text is looked for among what the
            // caller sees, row by row.
            // (sea-query writes ILIKE … ESCAPE in parentheses PostgreSQL does not accept.)
            cond = cond.add(Expr::cust_with_values(
                "(title ilike $1 escape '\\' or description ilike $2 escape '\\')",
                [pattern.clone(), pattern],
            ));
        }
    }
    cond
}

/// `statement` with `limit` written into it rather than bound: with `LIMIT $n` PostgreSQL's
/// generic plan cannot know how few rows are wanted, so it planned the query afresh on every
/// call. The limit is a number ward bounded (a page of at most 101, the count's 10,001): one
/// cached statement per page size.
fn with_limit(statement: Statement, limit: u64) -> Statement {
    let values = statement.values.map(|v| v.0).unwrap_or_default();
    Statement::from_sql_and_values(DbBackend::Postgres, format!("{} LIMIT {limit}", statement.sql), values)
}

/// One page of the tickets the caller can see.
#[tracing::instrument(skip_all)]
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &TicketFilter,
    order: TicketOrder,
    page: &Page,
) -> Result<TicketPage, DomainError> {
    let column = order.field.column();
    // Walking backwards (`last`/`before`) reads in the opposite direction, then flips the page.
    let (limit, cursor, backwards) = match page {
        Page::First { n, after } => (*n, after.as_ref(), false),
        Page::Last { n, before } => (*n, before.as_ref(), true),
    };
    let descending = order.descending != backwards;
    let mut select = Ticket::find().filter(filter_condition(filter));
    if let Some(cursor) = cursor {
        let here = Expr::tuple([Expr::col(column), Expr::col(ticket::Column::Id)]);
        let there = Expr::tuple([Expr::val(cursor.value), Expr::val(cursor.id)]);
        select = select.filter(if descending { here.lt(there) } else { here.gt(there) });
    }
    let direction = if descending { Order::Desc } else { Order::Asc };
    let statement =
        select.order_by(column, direction.clone()).order_by(ticket::Column::Id, direction).build(DbBackend::Postgres);
    let mut rows = Ticket::find().from_raw_sql(with_limit(statement, limit + 1)).all(db).await?;
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
    let matching =
        Ticket::find().select_only().expr(Expr::cust("1")).filter(filter_condition(filter)).build(DbBackend::Postgres);
    let bounded = with_limit(matching.clone(), (EXACT_COUNT_LIMIT + 1) as u64);
    let counted = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("select count(*) as n from ({}) matching", bounded.sql),
        bounded.values.map(|v| v.0).unwrap_or_default(),
    );
    let row = db
        .query_one_raw(counted)
        .await?
        .ok_or_else(|| DomainError::Db(sea_orm::DbErr::RecordNotFound("count".into())))?;
    let n = row.try_get::<i64>("", "n")?;
    if n <= EXACT_COUNT_LIMIT {
        return Ok(TicketCount { count: n, exact: true });
    }
    let explain = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("explain (format json) {}", matching.sql),
        matching.values.map(|v| v.0).unwrap_or_default(),
    );
    let plan = db
        .query_one_raw(explain)
        .await?
        .ok_or_else(|| DomainError::Db(sea_orm::DbErr::RecordNotFound("plan".into())))?;
    let plan: serde_json::Value = plan.try_get("", "QUERY PLAN")?;
    let estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64;
    // Never less than what was counted.
    Ok(TicketCount { count: std::cmp::max(estimate, n), exact: false })
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
