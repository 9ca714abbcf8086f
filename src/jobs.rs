//! Background jobs that run beside the server: the SLA sweeper and the upload sweeper. Each
//! takes a cancellation token and stops when the server shuts down, and each is safe with
//! several servers running it against one database.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::db;
use crate::domain::{tickets, uploads};
use crate::error::ApiError;
use crate::storage::{ObjectPath, ObjectStore, StorageError};

/// Once per `period`, records an `SLA_BREACHED` notice for every open ticket past its due time
/// (once per ticket: the database makes this safe with several servers sweeping).
pub async fn sla_sweeper(pool: DatabaseConnection, period: Duration, stop: CancellationToken) {
    every(period, stop, "SLA sweep", || {
        let pool = pool.clone();
        async move {
            let recorded = sweep_once(&pool).await?;
            if recorded > 0 {
                tracing::info!(recorded, "SLA breaches recorded");
            }
            Ok(())
        }
    })
    .await
}

/// Runs `job` once per `period` until `stop`; a failed run is logged and the next one comes.
async fn every<F, Fut>(period: Duration, stop: CancellationToken, name: &'static str, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ApiError>>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = job().await {
            tracing::warn!(job = name, code = error.code.as_str(), message = %error.message, "background job failed");
        }
    }
}

async fn sweep_once(pool: &DatabaseConnection) -> Result<i32, ApiError> {
    let tx = db::begin(pool, &Caller::Service, false).await.map_err(|e| ApiError::from(&e))?;
    let recorded = tickets::sweep_sla_breaches(&tx).await?;
    db::end(tx, true).await.map_err(|e| ApiError::from(&e))?;
    Ok(recorded)
}

/// Once per `period`, expires the upload intents nobody confirmed in time and removes what was
/// uploaded for them (see [`uploads::expire_due`]). The intents are marked first, in a short
/// transaction, and the objects removed after it commits: no storage call holds a
/// connection, and a confirmation can never find its object gone while its intent is pending.
/// A crash between the two leaves the objects of `EXPIRED` intents, unreachable (nothing
/// signs links to them) until removed by hand.
pub async fn upload_sweeper(
    pool: DatabaseConnection,
    storage: Arc<dyn ObjectStore>,
    period: Duration,
    stop: CancellationToken,
) {
    every(period, stop, "upload sweep", || {
        let (pool, storage) = (pool.clone(), storage.clone());
        async move {
            let (expired, removed) = expire_uploads_once(&pool, storage.as_ref()).await?;
            if expired > 0 || removed > 0 {
                tracing::info!(expired, removed, "expired upload intents swept");
            }
            Ok(())
        }
    })
    .await
}

/// One sweep: how many intents expired, and how many objects were removed.
pub async fn expire_uploads_once(
    pool: &DatabaseConnection,
    storage: &dyn ObjectStore,
) -> Result<(usize, usize), ApiError> {
    let tx = db::begin(pool, &Caller::Service, false).await.map_err(|e| ApiError::from(&e))?;
    let (expired, objects) = uploads::expire_due(&tx).await?;
    db::end(tx, true).await.map_err(|e| ApiError::from(&e))?;
    let mut removed = 0;
    for (bucket, path) in &objects {
        let Ok(path) = ObjectPath::parse(path) else { continue };
        match storage.delete(bucket, &path).await {
            Ok(()) => removed += 1,
            Err(StorageError::NotFound) => {}
            Err(error) => tracing::warn!(%error, bucket, "removing an expired upload failed"),
        }
    }
    // Resumable uploads that never finished expire with their intent's token.
    match storage.sweep_abandoned().await {
        Ok(abandoned) => removed += abandoned,
        Err(error) => tracing::warn!(%error, "removing abandoned resumable uploads failed"),
    }
    Ok((expired, removed))
}
