//! A transaction as a caller on one pooled connection: begun together with the caller's role
//! and claims in one round trip, ended read-only without one, and used by the domain through
//! sea-orm's `ConnectionTrait` like any sea-orm connection.
//!
//! sea-orm's own transaction sends `BEGIN` alone (it gives sqlx no custom `BEGIN`), so the
//! claims cost a second round trip, and its `COMMIT` a third even when the transaction only
//! read. Here `BEGIN` and the `set_config` preamble go as one simple query, and a read-only
//! transaction's end (a `ROLLBACK`, which for a reader is the same as a commit) is queued and
//! goes out with the check sqlx makes of every connection on its way back to the pool.

use std::pin::Pin;
use std::task::{Context, Poll};

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::PgTransactionManager;
use sea_orm::sqlx::{self, Executor as _, Postgres, SqlSafeStr as _};
// sqlx does not re-export the trait through which a custom `BEGIN` is sent.
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr,
    Statement,
};
use sea_query_sqlx::SqlxValues;
use sqlx_core::transaction::TransactionManager as _;
use tokio::sync::Mutex;

use crate::auth::Caller;

/// An open transaction as one caller. Dropped without [`Tx::commit`], it rolls back (the
/// `ROLLBACK` is queued and sent before the connection can serve anyone else).
pub struct Tx {
    conn: Mutex<Open>,
    read_only: bool,
}

/// The pooled connection while its transaction is open; dropping it queues the rollback.
struct Open(PoolConnection<Postgres>);

impl Drop for Open {
    fn drop(&mut self) {
        if PgTransactionManager::get_transaction_depth(&self.0) > 0 {
            PgTransactionManager::start_rollback(&mut self.0);
        }
    }
}

/// The statement that opens a transaction as `caller`: `BEGIN` and the preamble every policy
/// relies on (the role, `request.jwt.claims`), sent as one simple query. A simple query takes
/// no parameters, so the values are written in as escaped literals ([`literal`]); the
/// `set_config` calls stay a `SELECT`, so `pg_stat_statements` keeps one entry for them
/// rather than one per token.
pub fn begin_statement(caller: &Caller, read_only: bool) -> String {
    begin_sql(read_only, &literal(caller.db_role()), &literal(&caller.claims_json()))
}

/// [`begin_statement`] with the role and the claims given as SQL expressions: literals, or the
/// variables of a benchmark that sends what ward sends.
pub fn begin_sql(read_only: bool, role: &str, claims: &str) -> String {
    format!(
        "{}; select set_config('role', {role}, true), set_config('request.jwt.claims', {claims}, true)",
        if read_only { "begin read only" } else { "begin" },
    )
}

/// `text` as a PostgreSQL escape-string literal. Its meaning does not depend on
/// `standard_conforming_strings`: backslashes and quotes are both escaped. Text from outside
/// (a person's name in the token's metadata) cannot end the literal. A NUL, which no
/// PostgreSQL text may hold, is dropped (serialised JSON writes it as `\u0000` anyway).
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str("E'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Opens a transaction as `caller` in one round trip (see [`begin_statement`]).
///
/// Finished in a task of its own if the caller is dropped meanwhile: sqlx counts a
/// transaction as open only once the server has answered its `BEGIN`, so a request cancelled
/// in between would otherwise return the connection to the pool inside a transaction, and the
/// next user of that connection would find itself in a stranger's transaction. Finished, the
/// transaction is dropped as usual, which rolls it back. If the server refuses the preamble
/// the connection is closed rather than returned, for the same reason.
pub async fn begin(db: &DatabaseConnection, caller: &Caller, read_only: bool) -> Result<Tx, DbErr> {
    let pool = db.get_postgres_connection_pool().clone();
    let statement = begin_statement(caller, read_only);
    FinishedIfDropped::new(async move {
        let mut conn = pool.acquire().await.map_err(acquire_error)?;
        if let Err(error) =
            PgTransactionManager::begin(&mut conn, Some(sqlx::AssertSqlSafe(statement).into_sql_str())).await
        {
            conn.close_on_drop();
            return Err(DbErr::Exec(RuntimeErr::SqlxError(error.into())));
        }
        Ok(Tx { conn: Mutex::new(Open(conn)), read_only })
    })
    .await
}

/// Commits or rolls back `tx`, and finishes doing so even if the caller is cancelled.
///
/// sqlx counts a transaction as ended only once the server has answered its `COMMIT` or
/// `ROLLBACK`. A caller cancelled in between (a client that hangs up while its request
/// commits) would drop a transaction that still counts as open; dropping queues another
/// `ROLLBACK`, which then reaches a connection with no transaction (PostgreSQL's warning
/// "there is no transaction in progress"), and the request's own outcome is left to chance.
/// Finished in a task of its own, the transaction ends exactly once, as asked.
pub async fn end(tx: Tx, commit: bool) -> Result<(), DbErr> {
    FinishedIfDropped::new(async move { if commit { tx.commit().await } else { tx.rollback().await } }).await
}

impl Tx {
    /// Commits. A read-only transaction has nothing to commit: it is dropped, and its
    /// `ROLLBACK` goes out with the pool's check of the connection, saving the round trip.
    pub async fn commit(self) -> Result<(), DbErr> {
        if self.read_only {
            return Ok(());
        }
        let mut open = self.conn.into_inner();
        PgTransactionManager::commit(&mut open.0).await.map_err(exec_error)
    }

    /// Rolls back. A read-only transaction's rollback is queued like its commit (nothing it
    /// did can outlive it); a writing one's is awaited.
    pub async fn rollback(self) -> Result<(), DbErr> {
        if self.read_only {
            return Ok(());
        }
        let mut open = self.conn.into_inner();
        PgTransactionManager::rollback(&mut open.0).await.map_err(exec_error)
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("read_only", &self.read_only).finish()
    }
}

fn bound(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt.values.clone().unwrap_or(sea_orm::Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

fn exec_error(error: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(error.into()))
}

fn query_error(error: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(error.into()))
}

/// The errors sea-orm gives for a failed checkout, so callers classify them alike.
fn acquire_error(error: sqlx::Error) -> DbErr {
    match error {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        other => DbErr::Conn(RuntimeErr::SqlxError(other.into())),
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Tx {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let mut conn = self.conn.lock().await;
        bound(&stmt).execute(&mut *conn.0).await.map(Into::into).map_err(exec_error)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut conn = self.conn.lock().await;
        conn.0.execute(sqlx::AssertSqlSafe(sql.to_owned())).await.map(Into::into).map_err(exec_error)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut conn = self.conn.lock().await;
        match bound(&stmt).fetch_one(&mut *conn.0).await {
            Ok(row) => Ok(Some(row.into())),
            Err(sqlx::Error::RowNotFound) => Ok(None),
            Err(error) => Err(query_error(error)),
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut conn = self.conn.lock().await;
        let rows = bound(&stmt).fetch_all(&mut *conn.0).await.map_err(query_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

/// A future that, if dropped before it is done, is finished in a task of its own. Only a
/// cancelled caller pays for the task.
pub(super) struct FinishedIfDropped<F: Future + Send + 'static>(Option<Pin<Box<F>>>)
where
    F::Output: Send + 'static;

impl<F: Future + Send + 'static> FinishedIfDropped<F>
where
    F::Output: Send + 'static,
{
    pub(super) fn new(future: F) -> Self {
        FinishedIfDropped(Some(Box::pin(future)))
    }
}

impl<F: Future + Send + 'static> Future for FinishedIfDropped<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(future) = self.0.as_mut() else {
            panic!("FinishedIfDropped polled after it finished");
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for FinishedIfDropped<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let (Some(future), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(future);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::literal;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("plain"), "E'plain'");
        assert_eq!(literal(r#"{"name":"O'Brien \"x\" \\"}"#), r#"E'{"name":"O''Brien \\"x\\" \\\\"}'"#);
        assert_eq!(literal("a\0b"), "E'ab'");
    }
}
