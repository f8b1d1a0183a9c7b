//! `/healthz`: the process answers and its state database does;
//! `/api/v1/freshness`: how far derived answers are current.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role};
use crate::derive::FreshnessView;
use crate::error::Result;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(freshness))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    /// Grows with every change of what reports are computed from.
    inputs_version: i64,
}

/// The server answers and its state database does.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 500, body = crate::error::ErrorBody)))]
async fn healthz(State(state): State<AppState>) -> Result<Json<Health>> {
    let inputs_version = state.store.db.inputs_version().await?;
    Ok(Json(Health {
        status: "ok",
        inputs_version,
    }))
}

/// How far answers derived from aggregates (reports, budgets, gateway views,
/// alerts) are current: the newest committed manifest watermark, the one the
/// last derivation covered, and how long the oldest commit not yet derived has
/// waited. A push's answer carries its `watermark`; once `derived_watermark`
/// reaches it, every derived answer includes that push. Any role may ask.
#[utoipa::path(get, path = "/api/v1/freshness", tag = "health",
    responses((status = 200, body = FreshnessView), (status = 401, body = crate::error::ErrorBody)))]
async fn freshness(Auth(who): Auth, State(state): State<AppState>) -> Result<Json<FreshnessView>> {
    who.require(&Role::ALL, "read freshness")?;
    let committed = state.store.db.manifest_watermark().await?;
    Ok(Json(state.freshness.view().with_committed(committed)))
}
