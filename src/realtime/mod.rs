//! Live ticket updates. One LISTEN connection per process (see `listener`) receives the
//! `ticket_updates:{municipality}` notifications of the ticket trigger; each event is fanned out
//! to this process's subscribers through bounded buffers. Which subscriber may see an event's
//! ticket is decided by PostgreSQL — the same `app.ticket_visible_to` the tickets policy uses,
//! with each subscriber's *current* profile joined in — in one statement per event for all
//! subscribers at once (docs/POLICY.md, P-LIVE-RIGHTS). A notification is only a wake-up: the
//! events themselves are read from `ticket_events` after the channel's watermark, so a forged
//! `pg_notify` moves nothing. A change of a subscriber's role or municipality, or the removal
//! of their profile, ends their subscriptions (`ward_profile_changes`). `ticket_events` makes
//! the stream resumable: subscribers replay from an event id, and the listener catches up
//! after a gap.
//!
//! One file for the hub and the subscriber streams: they share the watermark, the buffers and
//! the rights checks, and the ordering argument that makes the stream gap-free spans both.

mod listener;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use entity::enums::AppRole;
use entity::prelude::*;
use entity::{ticket, ticket_event};
use futures_util::Stream;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::Caller;
use crate::config::Secret;
use crate::db;

/// The most events one subscription replays with `after`; further behind, it must reload.
pub const MAX_REPLAY: u64 = 1_000;
/// How long a new subscription waits for the listener to be listening.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The most events read from `ticket_events` in one go when a channel catches up.
const CATCH_UP_BATCH: u64 = 500;

/// Who a subscriber was when they subscribed. Visibility is decided from their current profile;
/// this snapshot only tells when it changed (and the subscription must end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Viewer {
    pub profile_id: Uuid,
    pub role: AppRole,
    pub municipality_id: Uuid,
}

/// Why the server ended a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    SlowConsumer,
    RightsChanged,
}

/// One event for one subscriber, with the ticket as it was when the event was fanned out.
/// Shared, not copied, between the subscribers it goes to.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Arc<ticket_event::Model>,
    pub ticket: Option<Arc<ticket::Model>>,
    /// What was made of this event once for many of its deliveries (the payloads rendered for
    /// groups of subscribers, `graphql::multiplex`), shared by every live delivery of it and
    /// gone with the last; `None` for a replayed event, which is read for one subscriber.
    pub renders: Option<Arc<Renders>>,
}

/// An event's rendered forms, by the key of whoever rendered them.
pub type Renders = Mutex<Vec<(u64, Arc<tokio::sync::OnceCell<Arc<str>>>)>>;

/// Why a subscription could not start or had to end.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("live updates are unavailable right now; retry shortly")]
    Unavailable,
    #[error("more than {MAX_REPLAY} events happened since that event id; reload, then subscribe without `after`")]
    TooFarBehind,
    #[error("this subscription fell too far behind and was ended; resubscribe with after: \"{last_event_id}\"")]
    SlowConsumer { last_event_id: i64 },
    #[error("your role or municipality changed, so this subscription was ended; subscribe again")]
    RightsChanged,
    #[error("database error")]
    Db(#[from] DbErr),
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct RealtimeStats {
    pub events_fanned_out: AtomicU64,
    pub deliveries: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub listener_reconnects: AtomicU64,
    /// Updates rendered once for a group of subscribers (`graphql::multiplex`), and the
    /// deliveries that were sent such a rendered payload.
    pub group_renders: AtomicU64,
    pub group_deliveries: AtomicU64,
}

/// The process's live-update hub.
#[derive(Clone)]
pub struct Realtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime").field("ready", &self.is_ready()).finish()
    }
}

struct Inner {
    pool: DatabaseConnection,
    buffer: usize,
    ready: AtomicBool,
    next_id: AtomicU64,
    state: Mutex<State>,
    commands: mpsc::UnboundedSender<listener::Command>,
    stats: RealtimeStats,
}

#[derive(Default)]
struct State {
    municipalities: HashMap<Uuid, Channel>,
}

/// The subscribers of one municipality's channel.
struct Channel {
    subscribers: HashMap<u64, Subscriber>,
    /// The last event id fanned out here (live or caught up); -1 until listening has begun
    /// and the starting point has been read.
    watermark: i64,
    /// Whether the listener has LISTENed to this channel (since its last connect).
    listening: bool,
}

impl Default for Channel {
    fn default() -> Self {
        Channel { subscribers: HashMap::new(), watermark: -1, listening: false }
    }
}

struct Subscriber {
    viewer: Viewer,
    ticket_id: Option<Uuid>,
    tx: mpsc::Sender<Delivery>,
    ended: Arc<OnceLock<Ending>>,
}

impl Realtime {
    /// Starts the listener on `listen_url` (a direct connection: LISTEN does not survive a
    /// transaction pooler). `buffer` bounds each subscriber's backlog.
    pub fn start(pool: DatabaseConnection, listen_url: Secret, buffer: usize, stop: CancellationToken) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            pool,
            buffer: buffer.max(1),
            ready: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            state: Mutex::new(State::default()),
            commands,
            stats: RealtimeStats::default(),
        });
        tokio::spawn(listener::run(inner.clone(), listen_url, receiver, stop));
        Realtime { inner }
    }

    /// Whether the listener is connected and caught up.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> &RealtimeStats {
        &self.inner.stats
    }

    /// How many subscriptions are open in this process.
    pub fn subscriber_count(&self) -> usize {
        self.inner.lock().municipalities.values().map(|c| c.subscribers.len()).sum()
    }

    /// Subscribes `viewer` (whose RLS identity is `caller`) to its municipality's ticket
    /// updates, optionally only one ticket's, replaying the events after `after` first.
    pub async fn subscribe(
        &self,
        caller: Caller,
        viewer: Viewer,
        after: Option<i64>,
        ticket_id: Option<Uuid>,
    ) -> Result<impl Stream<Item = Result<Delivery, SubscriptionError>> + Send + use<>, SubscriptionError> {
        let municipality = viewer.municipality_id;
        // Registered first, then the listener is asked to listen: a subscriber counts from the
        // moment it exists, so the last one of this municipality leaving meanwhile cannot
        // UNLISTEN from under it (the listener handles both requests in order, and stops
        // listening only to a channel without subscribers). Registered before the replay is
        // read, so nothing falls between the two; the stream drops live events it already
        // replayed.
        let (tx, rx) = mpsc::channel(self.inner.buffer);
        let ended = Arc::new(OnceLock::new());
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .lock()
            .municipalities
            .entry(municipality)
            .or_default()
            .subscribers
            .insert(id, Subscriber { viewer, ticket_id, tx, ended: ended.clone() });
        let registration = Registration { inner: self.inner.clone(), municipality, id };
        let (ack, acked) = oneshot::channel();
        self.inner
            .commands
            .send(listener::Command::Listen(municipality, ack))
            .map_err(|_| SubscriptionError::Unavailable)?;
        match tokio::time::timeout(LISTEN_TIMEOUT, acked).await {
            Ok(Ok(())) => {}
            _ => return Err(SubscriptionError::Unavailable),
        }

        let (replay, start) = self.inner.replay(&caller, municipality, after, ticket_id).await?;
        let state =
            StreamState { replay: replay.into(), rx, last: start, ended, done: false, _registration: registration };
        Ok(futures_util::stream::unfold(state, next_delivery))
    }
}

struct StreamState {
    replay: VecDeque<Delivery>,
    rx: mpsc::Receiver<Delivery>,
    last: i64,
    ended: Arc<OnceLock<Ending>>,
    done: bool,
    _registration: Registration,
}

async fn next_delivery(mut st: StreamState) -> Option<(Result<Delivery, SubscriptionError>, StreamState)> {
    if st.done {
        return None;
    }
    // Rights that changed end the stream at once: nothing already queued under the old ones
    // is sent.
    let rights_changed = |st: &StreamState| st.ended.get() == Some(&Ending::RightsChanged);
    if rights_changed(&st) {
        st.done = true;
        return Some((Err(SubscriptionError::RightsChanged), st));
    }
    if let Some(delivery) = st.replay.pop_front() {
        st.last = delivery.event.id;
        return Some((Ok(delivery), st));
    }
    loop {
        let received = st.rx.recv().await;
        if rights_changed(&st) {
            st.done = true;
            return Some((Err(SubscriptionError::RightsChanged), st));
        }
        match received {
            Some(delivery) if delivery.event.id <= st.last => continue,
            Some(delivery) => {
                st.last = delivery.event.id;
                return Some((Ok(delivery), st));
            }
            None if st.ended.get() == Some(&Ending::SlowConsumer) => {
                st.done = true;
                let last_event_id = st.last;
                return Some((Err(SubscriptionError::SlowConsumer { last_event_id }), st));
            }
            None => return None,
        }
    }
}

/// Removes a subscriber when its stream is dropped; the last one of a municipality stops the
/// listening.
struct Registration {
    inner: Arc<Inner>,
    municipality: Uuid,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        let empty = match state.municipalities.get_mut(&self.municipality) {
            Some(channel) => {
                channel.subscribers.remove(&self.id);
                channel.subscribers.is_empty()
            }
            None => false,
        };
        drop(state);
        if empty {
            let _ = self.inner.commands.send(listener::Command::Unlisten(self.municipality));
        }
    }
}

/// The highest id of a municipality's events that `db`'s caller can see (0 when none).
async fn max_event_id(db: &impl ConnectionTrait, municipality: Uuid) -> Result<i64, DbErr> {
    let max: Option<i64> = TicketEvent::find()
        .select_only()
        .column_as(ticket_event::Column::Id.max(), "max")
        .filter(ticket_event::Column::MunicipalityId.eq(municipality))
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    Ok(max.unwrap_or(0))
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing live updates, so carry on with the data.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The events after `after` the caller may see (under their own policies), and the id the
    /// live stream continues from.
    async fn replay(
        &self,
        caller: &Caller,
        municipality: Uuid,
        after: Option<i64>,
        ticket_id: Option<Uuid>,
    ) -> Result<(Vec<Delivery>, i64), SubscriptionError> {
        let tx = db::begin(&self.pool, caller, true).await?;
        let result = async {
            let Some(after) = after else {
                return Ok((Vec::new(), max_event_id(&tx, municipality).await?));
            };
            let mut query = TicketEvent::find()
                .filter(ticket_event::Column::MunicipalityId.eq(municipality))
                .filter(ticket_event::Column::Id.gt(after))
                .order_by_asc(ticket_event::Column::Id)
                .limit(MAX_REPLAY + 1);
            if let Some(ticket) = ticket_id {
                query = query.filter(ticket_event::Column::TicketId.eq(ticket));
            }
            let events = query.all(&tx).await?;
            if events.len() as u64 > MAX_REPLAY {
                return Err(SubscriptionError::TooFarBehind);
            }
            let ids: Vec<Uuid> = events.iter().map(|e| e.ticket_id).collect();
            let tickets: HashMap<Uuid, Arc<ticket::Model>> = Ticket::find()
                .filter(ticket::Column::Id.is_in(ids))
                .all(&tx)
                .await?
                .into_iter()
                .map(|t| (t.id, Arc::new(t)))
                .collect();
            let deliveries = events
                .into_iter()
                .map(|event| Delivery {
                    ticket: tickets.get(&event.ticket_id).cloned(),
                    event: Arc::new(event),
                    renders: None,
                })
                .collect();
            Ok((deliveries, after))
        }
        .await;
        tx.rollback().await?;
        result
    }

    /// The highest event id of a municipality (all events: the listener's own view).
    async fn latest_event_id(&self, municipality: Uuid) -> Result<i64, DbErr> {
        let tx = db::begin(&self.pool, &Caller::Service, true).await?;
        let max = max_event_id(&tx, municipality).await;
        tx.rollback().await?;
        max
    }

    /// Fans out a municipality's events after its watermark, in id order, and advances the
    /// watermark past them. Only `ticket_events` is trusted: a notification merely says "look",
    /// so a forged one finds nothing and moves nothing. The cost is the same few statements per
    /// event whatever the number of subscribers.
    async fn catch_up(&self, municipality: Uuid) -> Result<(), DbErr> {
        loop {
            let (watermark, profiles) = {
                let state = self.lock();
                let Some(channel) = state.municipalities.get(&municipality) else { return Ok(()) };
                if channel.watermark < 0 {
                    // Listening began but its starting point is not read yet: nothing to catch up.
                    return Ok(());
                }
                let mut profiles: Vec<Uuid> = channel.subscribers.values().map(|s| s.viewer.profile_id).collect();
                profiles.sort_unstable();
                profiles.dedup();
                (channel.watermark, profiles)
            };
            let tx = db::begin(&self.pool, &Caller::Service, true).await?;
            let loaded = self.load_after(&tx, municipality, watermark, &profiles).await;
            tx.rollback().await?;
            let loaded = loaded?;
            let more = loaded.len() as u64 == CATCH_UP_BATCH;
            for (event, ticket, visible) in loaded {
                self.deliver(municipality, event, ticket, &visible);
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// The events after `watermark`, each with its ticket and which of `profiles` may see it
    /// (decided with their current role and municipality).
    async fn load_after(
        &self,
        tx: &impl ConnectionTrait,
        municipality: Uuid,
        watermark: i64,
        profiles: &[Uuid],
    ) -> Result<Vec<(ticket_event::Model, Option<ticket::Model>, HashSet<Uuid>)>, DbErr> {
        let events = TicketEvent::find()
            .filter(ticket_event::Column::MunicipalityId.eq(municipality))
            .filter(ticket_event::Column::Id.gt(watermark))
            .order_by_asc(ticket_event::Column::Id)
            .limit(CATCH_UP_BATCH)
            .all(tx)
            .await?;
        let profiles = profiles.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
        let mut loaded = Vec::with_capacity(events.len());
        for event in events {
            if profiles.is_empty() {
                loaded.push((event, None, HashSet::new()));
                continue;
            }
            let ticket = Ticket::find_by_id(event.ticket_id).one(tx).await?;
            let rows = tx
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "select p.id
                     from public.tickets t
                     join public.profiles p on p.id = any (string_to_array($2, ',')::uuid[])
                     where t.id = $1
                       and app.ticket_visible_to(t.municipality_id, t.reporter_id, t.assignee_id,
                                                 t.is_sensitive, p.id, p.role, p.municipality_id)",
                    [event.ticket_id.into(), profiles.clone().into()],
                ))
                .await?;
            let visible = rows.iter().filter_map(|row| row.try_get::<Uuid>("", "id").ok()).collect();
            loaded.push((event, ticket, visible));
        }
        Ok(loaded)
    }

    /// Sends one event to the channel's subscribers among `visible`, and advances the watermark.
    fn deliver(
        &self,
        municipality: Uuid,
        event: ticket_event::Model,
        ticket: Option<ticket::Model>,
        visible: &HashSet<Uuid>,
    ) {
        let mut state = self.lock();
        let Some(channel) = state.municipalities.get_mut(&municipality) else { return };
        if event.id <= channel.watermark {
            return;
        }
        channel.watermark = event.id;
        self.stats.events_fanned_out.fetch_add(1, Ordering::Relaxed);
        let delivery = Delivery { event: Arc::new(event), ticket: ticket.map(Arc::new), renders: Some(Arc::default()) };
        let mut gone = Vec::new();
        for (id, subscriber) in &channel.subscribers {
            if !visible.contains(&subscriber.viewer.profile_id) {
                continue;
            }
            if subscriber.ticket_id.is_some_and(|t| t != delivery.event.ticket_id) {
                continue;
            }
            match subscriber.tx.try_send(delivery.clone()) {
                Ok(()) => {
                    self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ = subscriber.ended.set(Ending::SlowConsumer);
                    self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(subscriber = id, "ending a subscription that fell behind");
                    gone.push(*id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        // Dropping a kicked subscriber's sender ends its stream after what it already holds.
        for id in gone {
            channel.subscribers.remove(&id);
        }
    }

    /// Ends the subscriptions whose subscriber's role or municipality is no longer what it was
    /// when they subscribed, or whose profile is gone (`only`: just this profile's). One
    /// statement whatever the number of subscribers; what a notification says is only which
    /// profile to look at.
    async fn recheck_rights(&self, only: Option<Uuid>) -> Result<(), DbErr> {
        let mut profiles: Vec<Uuid> = {
            let state = self.lock();
            state
                .municipalities
                .values()
                .flat_map(|c| c.subscribers.values().map(|s| s.viewer.profile_id))
                .filter(|p| only.is_none_or(|o| o == *p))
                .collect()
        };
        profiles.sort_unstable();
        profiles.dedup();
        if profiles.is_empty() {
            return Ok(());
        }
        let tx = db::begin(&self.pool, &Caller::Service, true).await?;
        let rows = tx
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select p.id, p.role, p.municipality_id from public.profiles p
                 where p.id = any (string_to_array($1, ',')::uuid[])",
                [profiles.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",").into()],
            ))
            .await;
        tx.rollback().await?;
        let mut current: HashMap<Uuid, (String, Uuid)> = HashMap::new();
        for row in rows? {
            current.insert(row.try_get("", "id")?, (row.try_get("", "role")?, row.try_get("", "municipality_id")?));
        }
        let mut state = self.lock();
        for channel in state.municipalities.values_mut() {
            channel.subscribers.retain(|_, s| {
                let viewer = s.viewer;
                if !profiles.contains(&viewer.profile_id) {
                    return true;
                }
                let same = current
                    .get(&viewer.profile_id)
                    .is_some_and(|(role, m)| *role == viewer.role.to_value() && *m == viewer.municipality_id);
                if !same {
                    let _ = s.ended.set(Ending::RightsChanged);
                    tracing::info!(profile_id = %viewer.profile_id, "ending a subscription whose rights changed");
                }
                same
            });
        }
        Ok(())
    }
}
