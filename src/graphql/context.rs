//! What a resolver finds in a request's data, fetched without panicking.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::Context;
use entity::{media, municipality, profile, ticket_event, ward};
use uuid::Uuid;

use super::Loaders;
use crate::db::{RlsSession, SessionError};
use crate::domain::DomainError;
use crate::error::{ApiError, ErrorCode};

/// The per-request data every GraphQL request over HTTP carries.
#[derive(Clone)]
pub struct RequestData {
    pub session: Arc<RlsSession>,
    pub loaders: Arc<Loaders>,
}

impl RequestData {
    pub fn new(session: Arc<RlsSession>) -> Self {
        RequestData { loaders: Arc::new(Loaders::new(session.clone())), session }
    }
}

/// Ends a request's session once it has executed, over HTTP and websockets alike: commits
/// unless a field failed `INTERNAL` or `UNAVAILABLE` (refused mutations ran in savepoints and
/// left nothing), rolls back otherwise. Nothing in the response may claim rolled-back work:
/// a failed commit replaces it with its error, and a rolled-back mutation's response has
/// `data: null` and an error saying that nothing was kept.
pub async fn conclude(session: &RlsSession, response: &mut async_graphql::Response) {
    let failure = response.errors.iter().find_map(|e| match error_code(e) {
        Some(code) if code == ErrorCode::Internal.as_str() => Some(ErrorCode::Internal),
        Some(code) if code == ErrorCode::Unavailable.as_str() => Some(ErrorCode::Unavailable),
        _ => None,
    });
    match session.finish(failure.is_none()).await {
        Err(error) => {
            // The commit failed, and nothing happened (a lost answer was resolved through
            // the transaction's id when the server could be asked), unless even that could
            // not be learned: then the outcome is unknown, which is not offered as retryable
            // (a retry could do the work twice).
            let unknown = matches!(&error, sea_orm::DbErr::Custom(m) if m == crate::db::COMMIT_OUTCOME_UNKNOWN);
            let error = if unknown {
                ApiError::new(
                    ErrorCode::Internal,
                    "the connection to the database was lost while committing: whether the changes were kept is \
                     unknown; check before retrying",
                )
            } else {
                ApiError::from(&error)
            };
            *response = async_graphql::Response::from_errors(vec![coded(error.code.as_str(), error.message)]);
        }
        Ok(()) => {
            if let (Some(code), true) = (failure, session.writes()) {
                response.data = async_graphql::Value::Null;
                let message = "nothing this request changed was kept: it failed, so its whole transaction was \
                               rolled back (mutations reported before the failure did not happen either)";
                response.errors.push(coded(code.as_str(), message.into()));
            }
        }
    }
}

/// An error's `extensions.code`, when it has one.
pub fn error_code(error: &async_graphql::ServerError) -> Option<&str> {
    match error.extensions.as_ref().and_then(|x| x.get("code")) {
        Some(async_graphql::Value::String(code)) => Some(code),
        _ => None,
    }
}

fn coded(code: &str, message: String) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", code);
    error
}

/// Where an object's nested fields load from: the HTTP request's data, or, for objects of a
/// subscription event, a scope of their own (a websocket has no request transaction), whose
/// session and loaders are made only if a nested field asks for them. A list may also hand
/// its items rows it loaded ahead for them (see [`Prefetched`]).
#[derive(Clone, Default)]
pub struct Scope {
    own: Option<Arc<OwnScope>>,
    ahead: Option<Arc<Prefetched>>,
}

/// Rows a resolver loaded ahead for the nested fields of the objects it returns, seen with
/// look-ahead: one statement for all of them and no DataLoader round (a spawned batch task,
/// its wait and its wake-ups). Loaded in the request's session, so under the caller's
/// policies like the loaders. A field whose rows were not loaded ahead uses its loader.
#[derive(Default)]
pub struct Prefetched {
    /// Every municipality id asked for: `None` where the caller may not see it.
    pub municipalities: Option<HashMap<Uuid, Option<municipality::Model>>>,
    /// Every profile id the page refers to: `None` where the caller may not see it.
    pub profiles: Option<HashMap<Uuid, Option<profile::Model>>>,
    /// The files of every ticket of the page (absent: none).
    pub media: Option<HashMap<Uuid, Vec<media::Model>>>,
    /// Every ward id asked for: `None` where the caller may not see it.
    pub wards: Option<HashMap<Uuid, Option<ward::Model>>>,
    /// The history of every ticket of the page (absent: none).
    pub events: Option<HashMap<Uuid, Vec<ticket_event::Model>>>,
}

/// A subscription event's own scope.
pub struct OwnScope {
    subscriber: Arc<(sea_orm::DatabaseConnection, crate::auth::Caller)>,
    data: std::sync::OnceLock<RequestData>,
}

impl Scope {
    /// A scope of its own for one event of `subscriber` (its pool and caller).
    pub fn own(subscriber: Arc<(sea_orm::DatabaseConnection, crate::auth::Caller)>) -> Self {
        Scope { own: Some(Arc::new(OwnScope { subscriber, data: std::sync::OnceLock::new() })), ahead: None }
    }

    /// The request's scope, with rows loaded ahead for the objects made in it.
    pub fn prefetched(ahead: Prefetched) -> Self {
        Scope { own: None, ahead: Some(Arc::new(ahead)) }
    }

    /// What was loaded ahead for this object, if anything.
    pub fn ahead(&self) -> Option<&Prefetched> {
        self.ahead.as_deref()
    }

    pub fn data<'a>(&'a self, ctx: &Context<'a>) -> Result<&'a RequestData, ApiError> {
        match &self.own {
            Some(own) => Ok(own.data.get_or_init(|| {
                let (pool, caller) = &*own.subscriber;
                RequestData::new(RlsSession::new(pool.clone(), caller.clone()))
            })),
            None => request(ctx),
        }
    }
}

/// `found` for every id of `ids`: `None` where no row came back (the caller may not see it).
pub fn every<V>(ids: &[Uuid], mut found: HashMap<Uuid, V>) -> HashMap<Uuid, Option<V>> {
    ids.iter().map(|id| (*id, found.remove(id))).collect()
}

/// The request's data, or an internal error if the request was built without it.
pub fn request<'a>(ctx: &Context<'a>) -> Result<&'a RequestData, ApiError> {
    ctx.data::<RequestData>().map_err(|_| ApiError::new(ErrorCode::Internal, "internal error: no request session"))
}

/// Runs a domain function in the request's RLS transaction and converts its error.
pub async fn run<T>(
    ctx: &Context<'_>,
    f: impl AsyncFnOnce(&crate::db::Tx) -> Result<T, DomainError>,
) -> Result<T, ApiError> {
    let session = &request(ctx)?.session;
    session.run(f).await.map_err(ApiError::from)
}

/// Runs a mutation's domain function in a savepoint of the request's transaction: a failed
/// mutation leaves nothing behind, while the request's other mutations keep their effects.
///
/// The savepoint is plain SQL rather than sea-orm's nested transaction: sqlx counts nested
/// transactions, and one dropped mid-`RELEASE` (a client hanging up) queues a `ROLLBACK TO
/// SAVEPOINT` for a savepoint already gone, which fails on the connection's way back to the
/// pool and costs a reconnect. Here a cancelled request leaves only the transaction itself to
/// roll back, which works in any state.
pub async fn run_mutation<T>(
    ctx: &Context<'_>,
    f: impl AsyncFnOnce(&crate::db::Tx) -> Result<T, DomainError>,
) -> Result<T, ApiError> {
    use sea_orm::ConnectionTrait;
    run(ctx, async |tx| {
        tx.execute_unprepared("savepoint mutation").await?;
        match f(tx).await {
            Ok(value) => {
                tx.execute_unprepared("release savepoint mutation").await?;
                Ok(value)
            }
            Err(error) => {
                tx.execute_unprepared("rollback to savepoint mutation; release savepoint mutation").await?;
                Err(error)
            }
        }
    })
    .await
}

/// Runs `work` (storage calls, decoding) without holding the request's connection when its
/// transaction has nothing to keep yet (see [`RlsSession::outside`]).
pub async fn outside<T>(ctx: &Context<'_>, work: impl Future<Output = T>) -> Result<T, ApiError> {
    request(ctx)?.session.outside(work).await.map_err(ApiError::from)
}

/// Runs a storage call made while reading (signing a link): outside the transaction when the
/// store calls out to another service ([`ObjectStore::calls_out`]). The local store's calls
/// are quick, and ending and beginning the transaction around each link of a page would cost
/// more round trips than the calls themselves.
///
/// [`ObjectStore::calls_out`]: crate::storage::ObjectStore::calls_out
pub async fn storage_read<T>(
    session: &RlsSession,
    storage: &dyn crate::storage::ObjectStore,
    call: impl Future<Output = T>,
) -> Result<T, ApiError> {
    if storage.calls_out() { session.outside(call).await.map_err(ApiError::from) } else { Ok(call.await) }
}

/// Runs `task` once the request's transaction has committed (not at all if it rolls back).
pub fn after_commit(ctx: &Context<'_>, task: impl Future<Output = ()> + Send + 'static) -> Result<(), ApiError> {
    request(ctx)?.session.after_commit(task);
    Ok(())
}

/// The caller of the request.
pub fn caller<'a>(ctx: &Context<'a>) -> Result<&'a crate::auth::Caller, ApiError> {
    Ok(request(ctx)?.session.caller())
}

/// Object storage, present on a running server.
pub fn storage<'a>(ctx: &Context<'a>) -> Result<&'a dyn crate::storage::ObjectStore, ApiError> {
    ctx.data::<Arc<dyn crate::storage::ObjectStore>>()
        .map(|store| store.as_ref())
        .map_err(|_| ApiError::new(ErrorCode::Internal, "internal error: no object storage"))
}

/// Object storage as a shared handle, for work that outlives the resolver (after commit).
pub fn storage_handle(ctx: &Context<'_>) -> Result<Arc<dyn crate::storage::ObjectStore>, ApiError> {
    ctx.data::<Arc<dyn crate::storage::ObjectStore>>()
        .cloned()
        .map_err(|_| ApiError::new(ErrorCode::Internal, "internal error: no object storage"))
}

/// The pool for short transactions outside the request's own, present on a running server.
pub fn aside_pool<'a>(ctx: &Context<'a>) -> Option<&'a sea_orm::DatabaseConnection> {
    ctx.data::<super::AsidePool>().ok().map(|p| &p.0)
}

/// Parses an `ID` argument that must be a UUID.
pub fn parse_id(id: &async_graphql::ID, name: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id.as_str())
        .map_err(|_| ApiError::new(ErrorCode::BadUserInput, format!("`{name}` is not a valid id")))
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        ApiError::from(DomainError::Session(e))
    }
}
