//! Background jobs that run beside the server: the SLA sweeper. Each takes a cancellation
//! token and stops when the server shuts down.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::db;
use crate::domain::tickets;
use crate::error::ApiError;

/// Once per `period`, records an `SLA_BREACHED` notice for every open ticket past its due time
/// (once per ticket: the database makes this safe with several servers sweeping).
pub async fn sla_sweeper(pool: DatabaseConnection, period: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match sweep_once(&pool).await {
            Ok(0) => {}
            Ok(recorded) => tracing::info!(recorded, "SLA breaches recorded"),
            Err(error) => tracing::warn!(code = error.code.as_str(), message = %error.message, "SLA sweep failed"),
        }
    }
}

async fn sweep_once(pool: &DatabaseConnection) -> Result<i32, ApiError> {
    let tx = db::begin(pool, &Caller::Service, false).await.map_err(|e| ApiError::from(&e))?;
    let recorded = tickets::sweep_sla_breaches(&tx).await?;
    tx.commit().await.map_err(|e| ApiError::from(&e))?;
    Ok(recorded)
}
