//! Background work done once per change, not once per server. Servers side by
//! side share one state database; the one holding the `background` lease
//! there derives (rollups, alerts, budgets, views, lineage, Delta commits) and
//! delivers webhooks and alert notifications. The others answer requests from
//! what it stored. The holder renews the lease every third of its time to
//! live; if it dies, the lease expires unrenewed and another server takes it
//! over, at most one time to live later. Expiry is judged by each server's
//! wall clock: their clocks must agree to within a fifth of the time to live
//! (3 s by default), as NTP keeps them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tollgate_store::StateDb;

use crate::state::AppState;

/// The lease's name in the state database.
pub const BACKGROUND: &str = "background";

/// This server's claim on the background lease.
#[derive(Debug)]
pub struct Lease {
    /// Who this server is, for the lease row (unique per process).
    holder: String,
    ttl: Duration,
    /// Until when this server holds the lease, by its own clock (a margin
    /// before the database's expiry, so two servers never both believe they
    /// hold it).
    held_until: Mutex<Option<Instant>>,
}

impl Lease {
    pub fn new(ttl: Duration) -> Self {
        Lease {
            holder: format!("{}/{}", std::process::id(), uuid::Uuid::now_v7().simple()),
            ttl,
            held_until: Mutex::new(None),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this server holds the lease now.
    pub fn held(&self) -> bool {
        self.lock().is_some_and(|until| until > Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.held_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes or renews the lease; whether this server holds it afterwards. A
    /// database that does not answer means not held: better no background
    /// work for a while than the same work twice.
    pub async fn hold(&self, db: &StateDb) -> bool {
        let asked = Instant::now();
        let now_us = chrono::Utc::now().timestamp_micros();
        let until_us = now_us + self.ttl.as_micros() as i64;
        let granted = match db
            .acquire_lease(BACKGROUND, &self.holder, now_us, until_us)
            .await
        {
            Ok(granted) => granted,
            Err(e) => {
                tracing::warn!(error = %e, "renewing the background lease failed");
                false
            }
        };
        let was = self.held();
        // Counted from before the request: the database's expiry is later.
        *self.lock() = granted.then(|| asked + self.ttl.mul_f64(0.8));
        if granted != was {
            tracing::info!(holder = %self.holder, held = granted, "background lease");
        }
        granted
    }

    /// Gives the lease up, so another server takes it over at once.
    pub async fn release(&self, db: &StateDb) {
        *self.lock() = None;
        if let Err(e) = db.release_lease(BACKGROUND, &self.holder).await {
            tracing::warn!(error = %e, "releasing the background lease failed");
        }
    }
}

/// Renews (or keeps trying to take) the lease until `stop`; the server
/// releases it once its background work has stopped ([`crate::serve`]).
/// Taking it over wakes the background work at once, and so does, for the
/// holder, a batch another server committed (its push woke only that
/// server's deriver): it is derived within a third of the lease's time.
pub async fn keeper(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        let was = state.lease.held();
        if state.lease.hold(&state.store.db).await {
            if !was {
                state.derive_now.notify_one();
                state.deliver_now.notify_one();
            } else if committed_elsewhere(&state).await {
                state.derive_now.notify_one();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(state.lease.ttl / 3) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Whether the manifest has moved past what this server derived.
async fn committed_elsewhere(state: &AppState) -> bool {
    match state.store.db.manifest_watermark().await {
        Ok(committed) => committed > state.freshness.view().derived_watermark,
        Err(_) => false,
    }
}
