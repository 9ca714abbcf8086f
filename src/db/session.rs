//! The RLS session: one transaction per request on one pooled connection, carrying the
//! caller's role and JWT claims, so that PostgreSQL's policies decide what the request sees.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio::sync::RwLock;

use super::tx::{FinishedIfDropped, Tx, begin, end};
use crate::auth::Caller;

/// The message of the error [`RlsSession::finish`] returns when a commit's outcome could not
/// be learned.
pub const COMMIT_OUTCOME_UNKNOWN: &str = "the outcome of a commit is unknown";

/// How long a commit whose answer was lost may take to learn its outcome.
const RESOLVE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Commits a transaction that wrote, and when the connection is lost before the server's
/// answer (the server crashed, the network dropped), learns what became of it: the
/// transaction's id is read before `COMMIT`, and `txid_status` on another connection says
/// whether it committed. Committed: success after all. Aborted: the original error (nothing
/// happened; retryable). Unknown within [`RESOLVE_FOR`]: [`COMMIT_OUTCOME_UNKNOWN`].
async fn commit_resolved(db: &DatabaseConnection, tx: Tx) -> Result<(), DbErr> {
    let xid: Option<i64> = tx
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "select txid_current_if_assigned() as xid"))
        .await?
        .and_then(|row| row.try_get::<Option<i64>>("", "xid").ok().flatten());
    let error = match tx.commit().await {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    let Some(xid) = xid.filter(|_| !super::answered(&error)) else { return Err(error) };
    let deadline = tokio::time::Instant::now() + RESOLVE_FOR;
    while tokio::time::Instant::now() < deadline {
        let status = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select txid_status($1) as status",
                [xid.into()],
            ))
            .await;
        match status
            .ok()
            .flatten()
            .and_then(|row| row.try_get::<Option<String>>("", "status").ok().flatten())
            .as_deref()
        {
            Some("committed") => {
                tracing::warn!(xid, "a commit's answer was lost; it had committed");
                return Ok(());
            }
            Some("aborted") => return Err(error),
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
    tracing::error!(xid, %error, "a commit's answer was lost and its outcome could not be learned");
    Err(DbErr::Custom(COMMIT_OUTCOME_UNKNOWN.into()))
}

/// Failures of the session itself.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the request's transaction has already ended")]
    Finished,
    #[error(transparent)]
    Db(#[from] DbErr),
}

enum State {
    Idle,
    Open(Tx),
    Finished,
}

/// A request's session. The transaction begins on first use (requests that never touch the
/// database cost nothing) and ends with [`RlsSession::finish`].
pub struct RlsSession {
    db: DatabaseConnection,
    caller: Caller,
    read_only: AtomicBool,
    state: RwLock<State>,
    /// Work to run once the transaction has committed (removing deleted objects).
    after_commit: std::sync::Mutex<Vec<AfterCommit>>,
}

/// A task [`RlsSession::after_commit`] runs once the transaction has committed.
pub type AfterCommit = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

impl std::fmt::Debug for RlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RlsSession").field("role", &self.caller.db_role()).finish()
    }
}

impl RlsSession {
    /// A read-only session for `caller`; see [`RlsSession::allow_writes`].
    pub fn new(db: DatabaseConnection, caller: Caller) -> Arc<Self> {
        Arc::new(RlsSession {
            db,
            caller,
            read_only: AtomicBool::new(true),
            state: RwLock::new(State::Idle),
            after_commit: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The caller this session runs as.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Whether the session may write (its request holds a mutation).
    pub fn writes(&self) -> bool {
        !self.read_only.load(Ordering::Relaxed)
    }

    /// Makes the transaction read-write (mutations). Has no effect once it has begun.
    pub fn allow_writes(&self) {
        self.read_only.store(false, Ordering::Relaxed);
    }

    /// Runs `f` inside the request's transaction, beginning it if needed. Calls may overlap;
    /// the transaction serialises their statements.
    pub async fn run<T, E>(&self, f: impl AsyncFnOnce(&Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<SessionError>,
    {
        loop {
            self.ensure_begun().await.map_err(E::from)?;
            let state = self.state.read().await;
            match &*state {
                State::Open(tx) => return f(tx).await,
                // Ended by a concurrent `outside` between the two locks: begin again.
                State::Idle => continue,
                State::Finished => return Err(SessionError::Finished.into()),
            }
        }
    }

    /// Runs `work` (calls to object storage, decoding an image) without holding a pooled
    /// connection, when the transaction has nothing to keep yet: if it has written nothing and
    /// locked no row (PostgreSQL assigned it no transaction id), it only read, and under READ
    /// COMMITTED each statement reads afresh anyway, so it is ended and the next use begins
    /// another. A transaction that has written must stay open for its commit, and `work`
    /// runs while it waits.
    pub async fn outside<T>(&self, work: impl Future<Output = T>) -> Result<T, SessionError> {
        {
            let mut state = self.state.write().await;
            if let State::Open(tx) = &*state {
                let row = tx
                    .query_one_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "select txid_current_if_assigned() is null as clean",
                    ))
                    .await?;
                let clean = row.and_then(|r| r.try_get::<bool>("", "clean").ok()).unwrap_or(false);
                if clean && let State::Open(tx) = std::mem::replace(&mut *state, State::Idle) {
                    end(tx, false).await?;
                }
            }
        }
        Ok(work.await)
    }

    /// Runs `task` after the transaction commits, before the response goes out; a client
    /// hanging up does not stop it. Dropped if the transaction rolls back.
    pub fn after_commit(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.after_commit.lock().unwrap_or_else(|p| p.into_inner()).push(Box::pin(task));
    }

    async fn ensure_begun(&self) -> Result<(), SessionError> {
        if !matches!(*self.state.read().await, State::Idle) {
            return Ok(());
        }
        let mut state = self.state.write().await;
        if matches!(*state, State::Idle) {
            let read_only = self.read_only.load(Ordering::Relaxed);
            *state = State::Open(begin(&self.db, &self.caller, read_only).await?);
        }
        Ok(())
    }

    /// Commits (or rolls back) the transaction, if one began, then runs the
    /// [`RlsSession::after_commit`] tasks if it committed. Waits for running calls.
    pub async fn finish(&self, commit: bool) -> Result<(), DbErr> {
        let mut state = self.state.write().await;
        let tasks = std::mem::take(&mut *self.after_commit.lock().unwrap_or_else(|p| p.into_inner()));
        let open = match std::mem::replace(&mut *state, State::Finished) {
            State::Open(tx) => Some(tx),
            State::Idle | State::Finished => None,
        };
        // Ending and the tasks after it finish even if the request is dropped meanwhile.
        let (db, writes) = (self.db.clone(), self.writes());
        FinishedIfDropped::new(async move {
            let ended = match open {
                Some(tx) if commit && writes => commit_resolved(&db, tx).await,
                Some(tx) if commit => tx.commit().await,
                Some(tx) => tx.rollback().await,
                None => Ok(()),
            };
            if commit && ended.is_ok() {
                for task in tasks {
                    task.await;
                }
            }
            ended
        })
        .await
    }
}
