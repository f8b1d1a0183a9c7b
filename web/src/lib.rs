//! The HTTP face of Tollgate: people, programs and gateways talk to it.
//!
//! [`serve`] runs the axum router on a listener until shutdown. Requests carry an
//! API key ([`auth`]) whose role each endpoint checks. Gateways pull their budget
//! entries, which the budget evaluation (`tollgate_reports::budget_eval`) stores
//! as a versioned view per gateway after every committed batch; the server holds
//! them ready in memory ([`views`]) and answers `If-None-Match` with 304. Log
//! shippers push batches to `/api/v1/ingest`, answered once the batch is
//! committed; a push wakes the deriver ([`derive`]), which rolls up what was
//! committed, judges the alert rules and evaluates budgets off the request
//! path (answers derived from aggregates say how fresh they are), and whose
//! state changes go out as webhooks from an outbox ([`notify`]), so a slow
//! receiver never holds up ingest. Security analysts query the lineage graph, held in memory
//! ([`lineage`]) and reloaded when an import changes it. Every change made
//! through the API is in the audit log. People use the same server through
//! its web pages ([`ui`]), logged in with a key into a session.

// Handlers await the budget evaluation, whose future (a DataFusion query
// inside) is too deep for the default limit when proven `Send`.
#![recursion_limit = "256"]

pub mod alert_notify;
pub mod apim;
pub mod auth;
mod background;
pub mod derive;
pub mod error;
pub mod lease;
pub mod lineage;
mod listener;
mod metrics;
pub mod notify;
mod routes;
pub mod state;
pub mod ui;
pub mod views;
mod xml;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;
use tollgate_store::Store;

pub use auth::{GeneratedKey, Role, generate_key, hash_key};
pub use error::{AppError, Result};
pub use routes::keys::{CreatedKey, KeyRequest, create_key};
pub use state::{AppState, ServerConfig};

/// The whole router over a state (for tests that drive it without a socket).
pub fn router(state: AppState) -> Router {
    routes::router(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// within the shutdown grace and cuts the rest; a push in flight completes its
/// commit first (it runs on its own task).
pub async fn serve(
    store: Store,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let state = AppState::new(store, config);
    state.keys.refresh(&state.store.db, true).await?;
    state.views.refresh(&state.store.db, true).await?;
    state.lineage.refresh(&state.store.db, true).await?;
    tollgate_reports::alerts::install_rules(&state.store, &state.config.alert_rules).await?;
    // Before taking requests: its write would race theirs on SQLite.
    if let Err(e) = state.observe_lineage().await {
        tracing::error!(error = %e, "refreshing observed lineage at start failed");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = background::spawn(state.clone(), stop_rx);
    let app = router(state.clone());
    tracing::info!(addr = ?listener.local_addr().ok(), "serving");
    listener::serve_connections(listener, app, &state, shutdown).await;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    // Only now: released while a derivation or a delivery still ran, another
    // server could take over and do the same work beside it.
    state.lease.release(&state.store.db).await;
    Ok(())
}
