//! The server's own work between requests: re-evaluating budgets (after a push,
//! and on a timer for batches other processes committed), reloading the key and
//! view caches and the lineage graph when another process changed them, and delivering webhooks.

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

pub fn spawn(state: AppState, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(evaluator(state.clone(), stop.clone())),
        tokio::spawn(refresher(state.clone(), stop.clone())),
        tokio::spawn(observer(state.clone(), stop.clone())),
        tokio::spawn(crate::notify::deliverer(state.clone(), stop.clone())),
        tokio::spawn(crate::alert_notify::deliverer(state, stop)),
    ]
}

async fn evaluator(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = state.evaluate_budgets().await {
            tracing::error!(error = %e, "budget evaluation failed");
        }
        tokio::select! {
            _ = state.evaluate_now.notified() => {}
            _ = tokio::time::sleep(state.config.evaluate_every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Keeps the observed lineage edges in step with batches other processes
/// commit, on the evaluation timer (a push refreshes them itself).
async fn observer(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        // `serve` refreshed them before taking requests: wait first.
        tokio::select! {
            _ = tokio::time::sleep(state.config.evaluate_every) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = state.observe_lineage().await {
            tracing::error!(error = %e, "refreshing observed lineage failed");
        }
    }
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
