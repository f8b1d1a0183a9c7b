//! `GET /api/v1/audit`: the audit log, newest first, for admins only.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use tollgate_store::state::AuditEntry;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role};
use crate::error::{AppError, Result};
use crate::routes::answers;
use crate::state::AppState;

pub const READ: &[Role] = &[Role::Admin];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Entries with an id below this one (the next page).
    before: Option<i64>,
    limit: Option<i64>,
}

/// The audit log, newest first (admin).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(Page),
    responses((status = 200, body = Vec<AuditAnswer>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn list(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<AuditAnswer>>> {
    who.require(READ, "read the audit log")?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::BadRequest("limit: between 1 and 1000".into()));
    }
    let entries = state.store.db.audit_log(page.before, limit).await?;
    Ok(Json(answers(entries)))
}

/// One change as the audit log answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditAnswer {
    id: i64,
    at: String,
    /// `key:<id>:<name>` for the API, `cli:<user>` for the command line.
    actor: String,
    /// What was done, `<thing>.<verb>` (`budget.update`, `key.revoke`).
    action: String,
    /// What it was done to (`budget:7`, `prices`).
    target: String,
    before: Option<String>,
    after: Option<String>,
}

impl From<AuditEntry> for AuditAnswer {
    fn from(e: AuditEntry) -> Self {
        AuditAnswer {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            before: e.before,
            after: e.after,
        }
    }
}
