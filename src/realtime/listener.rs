//! The LISTEN connection: listens to the channels of municipalities that have subscribers and
//! to `ward_profile_changes`; a notification on a municipality's channel makes it catch up from
//! `ticket_events` (its payload is ignored: anyone may `pg_notify`), one on the profile channel
//! re-checks the subscribers' rights. After a dropped connection it reconnects with backoff,
//! re-checks every subscriber and catches every municipality up before going live again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Inner;
use crate::config::Secret;

/// What subscriptions ask of the listener.
pub enum Command {
    /// Listen to a municipality's channel (if not yet), then acknowledge.
    Listen(Uuid, oneshot::Sender<()>),
    /// Stop listening, unless the channel has subscribers again (they register before they
    /// send `Listen`).
    Unlisten(Uuid),
}

/// Where the profile trigger announces changes of role, municipality or sign-in, and removals.
const PROFILE_CHANNEL: &str = "ward_profile_changes";
const TICKET_CHANNEL_PREFIX: &str = "ticket_updates:";

fn channel(municipality: Uuid) -> String {
    format!("{TICKET_CHANNEL_PREFIX}{municipality}")
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs until `stop`.
pub async fn run(
    inner: Arc<Inner>,
    url: Secret,
    mut commands: mpsc::UnboundedReceiver<Command>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let session = tokio::select! {
            () = stop.cancelled() => return,
            session = connect_and_catch_up(&inner, &url) => session,
        };
        let mut listener = match session {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, backoff_ms = backoff.as_millis() as u64, "ticket listener could not connect");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if !first {
            inner.stats.listener_reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!("ticket listener reconnected and caught up");
        }
        first = false;
        backoff = Duration::from_millis(100);
        inner.ready.store(true, Ordering::Relaxed);
        let error = serve(&inner, &mut listener, &mut commands, &stop).await;
        inner.ready.store(false, Ordering::Relaxed);
        match error {
            None => return,
            Some(error) => tracing::warn!(%error, "ticket listener lost its connection"),
        }
    }
}

/// Connects, listens to every channel that has subscribers, and fans out what was missed.
async fn connect_and_catch_up(inner: &Inner, url: &Secret) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url.expose()).await?;
    listener.listen(PROFILE_CHANNEL).await?;
    // Changes of rights while the connection was down went unannounced.
    inner.recheck_rights(None).await.map_err(to_sqlx)?;
    let municipalities: Vec<(Uuid, i64)> = inner
        .lock()
        .municipalities
        .iter_mut()
        .map(|(m, c)| {
            c.listening = true;
            (*m, c.watermark)
        })
        .collect();
    for (municipality, _) in &municipalities {
        listener.listen(&channel(*municipality)).await?;
    }
    for (municipality, watermark) in municipalities {
        if watermark < 0 {
            // Listening began but its starting point was never read: start from now.
            let latest = inner.latest_event_id(municipality).await.map_err(to_sqlx)?;
            if let Some(channel) = inner.lock().municipalities.get_mut(&municipality) {
                channel.watermark = channel.watermark.max(latest);
            }
            continue;
        }
        inner.catch_up(municipality).await.map_err(to_sqlx)?;
    }
    Ok(listener)
}

fn to_sqlx(error: sea_orm::DbErr) -> sea_orm::sqlx::Error {
    sea_orm::sqlx::Error::Protocol(error.to_string())
}

/// Serves notifications and commands until the connection fails (`Some(error)`) or `stop`.
async fn serve(
    inner: &Inner,
    listener: &mut PgListener,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    stop: &CancellationToken,
) -> Option<sea_orm::sqlx::Error> {
    loop {
        tokio::select! {
            () = stop.cancelled() => return None,
            command = commands.recv() => {
                let command = command?;
                if let Err(error) = handle(inner, listener, command).await {
                    return Some(error);
                }
            }
            notification = listener.try_recv() => {
                let notification = match notification {
                    Ok(Some(n)) => n,
                    // The connection dropped: notifications in the gap are gone; reconnect and
                    // catch up from ticket_events.
                    Ok(None) => return Some(sea_orm::sqlx::Error::Protocol("connection closed".into())),
                    Err(error) => return Some(error),
                };
                let done = if notification.channel() == PROFILE_CHANNEL {
                    // A payload that is no profile id re-checks everyone.
                    inner.recheck_rights(Uuid::parse_str(notification.payload()).ok()).await
                } else if let Some(municipality) = notification
                    .channel()
                    .strip_prefix(TICKET_CHANNEL_PREFIX)
                    .and_then(|m| Uuid::parse_str(m).ok())
                {
                    inner.catch_up(municipality).await
                } else {
                    Ok(())
                };
                if let Err(error) = done {
                    // Events stay in ticket_events: a reconnect's catch-up delivers them (and
                    // re-checks every subscriber's rights).
                    return Some(to_sqlx(error));
                }
            }
        }
    }
}

async fn handle(inner: &Inner, listener: &mut PgListener, command: Command) -> Result<(), sea_orm::sqlx::Error> {
    match command {
        Command::Listen(municipality, ack) => {
            let start = {
                let mut state = inner.lock();
                // Present unless its subscriber has already gone again (then the Unlisten that
                // follows stops this listening).
                let channel = state.municipalities.entry(municipality).or_default();
                !std::mem::replace(&mut channel.listening, true)
            };
            if start {
                listener.listen(&channel(municipality)).await?;
                let latest = inner.latest_event_id(municipality).await.map_err(to_sqlx)?;
                if let Some(channel) = inner.lock().municipalities.get_mut(&municipality) {
                    channel.watermark = channel.watermark.max(latest);
                }
            }
            let _ = ack.send(());
        }
        Command::Unlisten(municipality) => {
            let idle = {
                let mut state = inner.lock();
                let idle = state.municipalities.get(&municipality).is_some_and(|c| c.subscribers.is_empty());
                if idle {
                    state.municipalities.remove(&municipality);
                }
                idle
            };
            if idle {
                listener.unlisten(&channel(municipality)).await?;
            }
        }
    }
    Ok(())
}
