//! `POST /api/v1/sql`: read-only DataFusion SQL over the lake for security
//! analysts (and admins), within the server's memory, time and row bounds.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role};
use crate::error::{AppError, Result};
use crate::state::AppState;

pub const QUERY: &[Role] = &[Role::Admin, Role::Security];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(query))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One query, e.g. `SELECT agent, count(*) FROM security_hits GROUP BY agent`.
    pub sql: String,
    /// Rows returned at most (default and ceiling: the server's row cap).
    #[serde(default)]
    pub max_rows: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SqlColumn {
    pub name: String,
    pub data_type: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SqlAnswer {
    pub columns: Vec<SqlColumn>,
    /// One object per row, every column present (null when empty).
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
    /// More rows matched than were returned.
    pub truncated: bool,
}

/// Read-only SQL over the lake: tables `requests`, `token_usage`,
/// `token_metrics`, `dlp_hits`, `genai_spans`, views `usage` and `security_hits` (security).
#[utoipa::path(post, path = "/api/v1/sql", tag = "sql", request_body = SqlRequest,
    responses((status = 200, body = SqlAnswer), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn query(
    Auth(who): Auth,
    State(state): State<AppState>,
    body: std::result::Result<Json<SqlRequest>, JsonRejection>,
) -> Result<Json<SqlAnswer>> {
    who.require(QUERY, "run SQL")?;
    let Json(request) = body?;
    Ok(Json(run(&state, &request.sql, request.max_rows).await?))
}

/// Runs one read-only query within the server's limits (the API and the SQL
/// console page alike).
pub(crate) async fn run(state: &AppState, sql: &str, max_rows: Option<usize>) -> Result<SqlAnswer> {
    let mut limits = state.config.sql_limits;
    if let Some(max) = max_rows {
        if max == 0 || max > limits.max_rows {
            return Err(AppError::BadRequest(format!(
                "max_rows: between 1 and {}",
                limits.max_rows
            )));
        }
        limits.max_rows = max;
    }
    // Queries hold memory up to their bound each: only so many at once.
    let Ok(_slot) = state.sql_slots.try_acquire() else {
        return Err(AppError::Busy(1));
    };
    let answer = state.store.sql_bounded(sql, limits).await?;
    let columns = answer
        .result
        .schema
        .fields()
        .iter()
        .map(|f| SqlColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect();
    // A type JSON cannot carry (a map with non-string keys) is the query's doing.
    let rows = tollgate_store::output::json_rows(&answer.result.schema, &answer.result.batches)
        .map_err(|e| AppError::BadRequest(format!("the result cannot be written as JSON: {e}")))?;
    Ok(SqlAnswer {
        columns,
        rows,
        truncated: answer.truncated,
    })
}
