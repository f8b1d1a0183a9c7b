//! The provider's bill over HTTP (`docs/reconciliation.md`): a cost export
//! put as one batch (FinOps), and the month's reconciliation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tollgate_ingest::Format;
use tollgate_reports::invoice::{Reconciliation, reconciliation};
use tollgate_reports::reconcile::ReconcileBy;
use tollgate_reports::table::reconcile_table;
use tollgate_store::output::{OutputFormat, write_batches};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role};
use crate::error::{AppError, ErrorBody, Result};
use crate::state::{AppState, ServerConfig};

/// Who may put the bill: the people who reconcile it.
pub const IMPORT: &[Role] = &[Role::Finops, Role::Admin];

pub fn router(config: &ServerConfig) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import))
        .layer(DefaultBodyLimit::max(config.max_ingest_bytes))
        .layer(axum::middleware::from_fn_with_state(
            config.max_ingest_bytes,
            crate::error::refuse_declared_oversize,
        ))
}

/// Reconciliation is read like the chargeback: behind the derived-data headers.
pub fn report_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reconcile))
}

/// Imports one cost export (Azure FOCUS or cost-details; CSV, gzip CSV or
/// Parquet) into `billed_costs` as one batch, answered once committed: the
/// same file again changes nothing, bad lines are quarantined naming line
/// and field.
#[utoipa::path(put, path = "/api/v1/costs", tag = "reports",
    request_body(description = "an Azure Cost Management export: CSV (plain or gzip) or Parquet",
        content((String = "text/csv"), (String = "application/octet-stream"))),
    responses((status = 200, body = tollgate_ingest::IngestReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn import(
    Auth(who): Auth,
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response> {
    who.require(IMPORT, "import cost exports")?;
    let body = body
        .map_err(|e| crate::error::body_refused(&e, e.status(), state.config.max_ingest_bytes))?;
    if body.is_empty() {
        return Err(AppError::BadRequest("the body is empty".into()));
    }
    // Logs or anything else put here by mistake are refused whole, saying
    // what a cost export looks like, rather than quarantined line by line.
    if Format::detect_content(&body) != Some(Format::AzureCost) {
        return Err(AppError::UnsupportedMediaType(
            "not a cost export: expected Parquet, or a CSV (plain or gzip) whose header has \
             the FOCUS columns BilledCost and ChargePeriodStart or the cost-details columns \
             CostInBillingCurrency and MeterName"
                .into(),
        ));
    }
    let report = super::ingest::ingest_spooled(&state, body, Format::AzureCost, "costs").await?;
    // A bill moves no rollup: its variance rules are judged here, after the
    // commit; a failure is logged, the import stands.
    let now = state.store.clock.now().timestamp_micros();
    match tollgate_reports::alerts::evaluate_bill(&state.store, &state.alert_options(), now).await {
        Ok(Some(run)) if run.notifications > 0 => state.deliver_now.notify_one(),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "invoice alerts not evaluated"),
    }
    Ok(Json(report).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ReconcileQuery {
    /// `YYYY-MM`
    month: String,
    /// Comma-separated groupings (resource, model, token_kind, day); default
    /// resource,model,token_kind.
    by: Option<String>,
    /// `json` (default: the whole reconciliation) or `csv` (the table)
    format: Option<String>,
}

/// The month's invoice against its estimate: billed, estimated, the variance
/// and each cause, grouped as asked, with the residual and the cost files read.
#[utoipa::path(get, path = "/api/v1/reports/reconcile", tag = "reports", params(ReconcileQuery),
    responses((status = 200, body = Reconciliation, description = "JSON, or the table as CSV"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn reconcile(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(query): Query<ReconcileQuery>,
) -> Result<Response> {
    who.require(super::reports::READ, "read chargeback reports")?;
    let month = super::reports::month(&query.month)?;
    let by = ReconcileBy::parse_list(query.by.as_deref().unwrap_or("resource,model,token_kind"))?;
    let report = reconciliation(&state.store, month, &by).await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(report).into_response()),
        Some("csv") => {
            let (schema, batch) = reconcile_table(&report)?;
            let mut bytes = Vec::new();
            write_batches(OutputFormat::Csv, &schema, &[batch], &mut bytes)?;
            Ok(([(header::CONTENT_TYPE, "text/csv")], bytes).into_response())
        }
        Some(other) => Err(AppError::BadRequest(format!(
            "format: {other:?} is not json or csv"
        ))),
    }
}
