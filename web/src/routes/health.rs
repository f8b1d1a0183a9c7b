//! `/healthz`: the process answers and its state database does.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
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
