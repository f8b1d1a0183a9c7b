//! The server's own work between requests: deriving what committed batches
//! change (after a push, and on a timer for batches other processes
//! committed: [`crate::derive`]), reloading the key and view caches and the
//! lineage graph when another process changed them, and delivering webhooks.
//! With servers side by side, only the holder of the background lease
//! ([`crate::lease`]) derives and delivers; every server refreshes its caches.

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

pub fn spawn(state: AppState, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(crate::lease::keeper(state.clone(), stop.clone())),
        tokio::spawn(crate::derive::deriver(state.clone(), stop.clone())),
        tokio::spawn(refresher(state.clone(), stop.clone())),
        tokio::spawn(crate::notify::deliverer(state.clone(), stop.clone())),
        tokio::spawn(crate::alert_notify::deliverer(state, stop)),
    ]
}

async fn refresher(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(state.config.refresh_every) => {}
            _ = stop.changed() => return,
        }
        let db = &state.store.db;
        if let Err(e) = state.keys.refresh(db, false).await {
            tracing::warn!(error = %e, "reloading keys failed");
        }
        if let Err(e) = state.views.refresh(db, false).await {
            tracing::warn!(error = %e, "reloading gateway views failed");
        }
        if let Err(e) = state.lineage.refresh(db, false).await {
            tracing::warn!(error = %e, "reloading the lineage graph failed");
        }
    }
}
