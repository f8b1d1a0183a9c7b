//! FinOps over HTTP: the chargeback as the CLI prints it (JSON or CSV, one
//! table builder for both), month close and re-open (audited), the FOCUS
//! export, and the reference data the reports are priced with.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tollgate_reports::chargeback::chargeback_cached;
use tollgate_reports::close::{Closure, close_month_on, history, reopen_month};
use tollgate_reports::month::Month;
use tollgate_reports::rate::format_pico_wide;
use tollgate_reports::table::chargeback_table;
use tollgate_reports::trueup::Basis;
use tollgate_store::output::{OutputFormat, write_batches};
use tollgate_store::state::{
    BackendRow, CostCentre, MonthClose, NewAudit, OwnershipRow, PriceRow, PtuReservation,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role};
use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

pub const READ: &[Role] = &[Role::Admin, Role::Finops];
pub const CLOSE: &[Role] = &[Role::Admin, Role::Finops];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chargeback))
        .routes(routes!(unpriced))
        .routes(routes!(unseen))
        .routes(routes!(months))
        .routes(routes!(close))
        .routes(routes!(reopen))
        .routes(routes!(focus))
        .routes(routes!(reference))
        .routes(routes!(replace_reference))
}

pub(crate) fn month(text: &str) -> Result<Month> {
    text.parse::<Month>()
        .map_err(|e| AppError::BadRequest(format!("month: {e}")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ChargebackQuery {
    /// `YYYY-MM`
    month: String,
    /// Comma-separated groupings (cost_centre, subscription, product, model,
    /// deployment_type, region, api, agent); default cost_centre.
    by: Option<String>,
    /// `json` (default), `csv` or `parquet`
    format: Option<String>,
    /// `estimated` (default: logs priced by the book) or `billed` (the
    /// imported invoice allocated by usage, equal to it to the cent)
    basis: Option<String>,
}

/// The month's chargeback, one row per group and a TOTAL row, money in cents
/// that add up (as `tollgate report chargeback` prints it).
#[utoipa::path(get, path = "/api/v1/reports/chargeback", tag = "reports", params(ChargebackQuery),
    responses((status = 200, description = "an array of rows (JSON), CSV, or Parquet with exact decimals"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn chargeback(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(query): Query<ChargebackQuery>,
) -> Result<Response> {
    who.require(READ, "read chargeback reports")?;
    let month = month(&query.month)?;
    let by: Vec<String> = query
        .by
        .as_deref()
        .unwrap_or("cost_centre")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let (format, content_type) = match query.format.as_deref() {
        None | Some("json") => (Some(OutputFormat::Json), "application/json"),
        Some("csv") => (Some(OutputFormat::Csv), "text/csv"),
        // Exact decimals, as `tollgate export chargeback --format parquet`.
        Some("parquet") => (None, "application/vnd.apache.parquet"),
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "format: {other:?} is not json, csv or parquet"
            )));
        }
    };
    let basis = match query.basis.as_deref() {
        None => Basis::Estimated,
        Some(text) => text.parse::<Basis>()?,
    };
    // A billed-basis answer says what it allocated, beside the table.
    let mut said: Vec<(&'static str, String)> = vec![("x-tollgate-basis", basis.as_str().into())];
    let report = match basis {
        Basis::Estimated => chargeback_cached(&state.store, &state.chargeback, month, &by).await?,
        Basis::Billed => {
            let billed =
                tollgate_reports::trueup::chargeback_billed(&state.store, month, &by).await?;
            said.extend([
                ("x-tollgate-billed", format_pico_wide(billed.billed_pico)),
                (
                    "x-tollgate-unattributed",
                    format_pico_wide(billed.unattributed_pico),
                ),
                ("x-tollgate-cost-files", billed.cost_files.len().to_string()),
                (
                    "x-tollgate-allocation-method",
                    tollgate_reports::trueup::ALLOCATION_METHOD.into(),
                ),
            ]);
            billed.chargeback
        }
    };
    // A month closed on the invoice's basis serves its bill.
    if let Some(closed) = &report.closed {
        said[0].1 = closed.basis.as_str().into();
    }
    let bytes = match format {
        None => tollgate_reports::snapshot::parquet_bytes(
            &report.month.to_string(),
            &report.by,
            &report.rows,
        )?,
        Some(format) => {
            let (schema, batch) = chargeback_table(&report)?;
            let mut bytes = Vec::new();
            write_batches(format, &schema, &[batch], &mut bytes)?;
            bytes
        }
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
    for (name, value) in said {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// Why the month's `unpriced_tokens` is not zero: each cause (a backend not in
/// `backends.csv`, a missing price-book row, provisioned traffic with no
/// reservation, no backend logged) with its tokens, days and what to import.
#[utoipa::path(get, path = "/api/v1/reports/unpriced", tag = "reports", params(MonthQuery),
    responses((status = 200, body = Vec<tollgate_reports::unpriced::Unpriced>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn unpriced(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(query): Query<MonthQuery>,
) -> Result<Json<Vec<tollgate_reports::unpriced::Unpriced>>> {
    who.require(READ, "read chargeback reports")?;
    let month = month(&query.month)?;
    Ok(Json(
        tollgate_reports::unpriced::unpriced(&state.store, month).await?,
    ))
}

/// Traffic no gateway saw: model calls traces show going around the
/// gateways, priced as an estimate, never in the chargeback's total.
#[utoipa::path(get, path = "/api/v1/reports/unseen", tag = "reports", params(MonthQuery),
    responses((status = 200, body = tollgate_reports::unseen::UnseenTraffic),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn unseen(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(query): Query<MonthQuery>,
) -> Result<Json<tollgate_reports::unseen::UnseenTraffic>> {
    who.require(READ, "read chargeback reports")?;
    let month = month(&query.month)?;
    Ok(Json(state.unseen_traffic(month).await?))
}

/// Every close and re-open, oldest first.
#[utoipa::path(get, path = "/api/v1/months", tag = "reports",
    responses((status = 200, body = Vec<MonthClose>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn months(Auth(who): Auth, State(state): State<AppState>) -> Result<Json<Vec<MonthClose>>> {
    who.require(READ, "read month closes")?;
    Ok(Json(history(&state.store).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CloseQuery {
    /// `estimated` (default) or `billed`: the imported invoice allocated by
    /// usage, its cost files recorded.
    basis: Option<String>,
}

/// Closes a month: its chargeback frozen in a checksummed snapshot.
#[utoipa::path(post, path = "/api/v1/months/{month}/close", tag = "reports", params(("month" = String, Path), CloseQuery),
    responses((status = 200, body = Closure), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn close(
    Auth(who): Auth,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Query(query): Query<CloseQuery>,
) -> Result<Json<Closure>> {
    who.require(CLOSE, "close months")?;
    let Path(text) = path?;
    let month = month(&text)?;
    let basis = match query.basis.as_deref() {
        None => Basis::Estimated,
        Some(text) => text.parse::<Basis>()?,
    };
    Ok(Json(close_and_audit(&state, &who, month, basis).await?))
}

/// Closes a month for `who`, recorded in the audit log (the API and the
/// FinOps page alike).
pub(crate) async fn close_and_audit(
    state: &AppState,
    who: &crate::auth::Principal,
    month: Month,
    basis: Basis,
) -> Result<Closure> {
    who.require(CLOSE, "close months")?;
    let closure = close_month_on(&state.store, month, basis).await?;
    let entry =
        NewAudit::new(&who.actor(), "month.close", format!("month:{month}")).after(&closure);
    state.store.db.record_audit(&entry).await?;
    Ok(closure)
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Reopen {
    /// Must be true: re-opening changes a report finance may have used.
    force: bool,
    reason: String,
}

/// Re-opens a closed month (the latest closed first), with why.
#[utoipa::path(post, path = "/api/v1/months/{month}/reopen", tag = "reports", params(("month" = String, Path)),
    request_body = Reopen,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reopen(
    Auth(who): Auth,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Reopen>, JsonRejection>,
) -> Result<axum::http::StatusCode> {
    who.require(CLOSE, "re-open months")?;
    let Path(text) = path?;
    let month = month(&text)?;
    let Json(request) = body?;
    reopen_month(&state.store, month, request.force, &request.reason).await?;
    let entry =
        NewAudit::new(&who.actor(), "month.reopen", format!("month:{month}")).after(&request);
    state.store.db.record_audit(&entry).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct MonthQuery {
    /// `YYYY-MM`
    month: String,
}

/// The month as a FOCUS 1.0 CSV.
#[utoipa::path(get, path = "/api/v1/exports/focus", tag = "reports", params(MonthQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn focus(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(query): Query<MonthQuery>,
) -> Result<Response> {
    who.require(READ, "export reports")?;
    let export = tollgate_reports::focus::export(&state.store, month(&query.month)?).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv")], export.csv).into_response())
}

/// The reference data reports are priced with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Reference {
    prices: Vec<PriceRow>,
    cost_centres: Vec<CostCentre>,
    ownership: Vec<OwnershipRow>,
    backends: Vec<BackendRow>,
    ptu_reservations: Vec<PtuReservation>,
}

/// Prices, cost centres and the ownership mapping, backends and PTU reservations.
#[utoipa::path(get, path = "/api/v1/reference", tag = "reports",
    responses((status = 200, body = Reference), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn reference(Auth(who): Auth, State(state): State<AppState>) -> Result<Json<Reference>> {
    who.require(
        &[Role::Admin, Role::Finops, Role::Operator],
        "read reference data",
    )?;
    let db = &state.store.db;
    Ok(Json(Reference {
        prices: db.price_book().await?,
        cost_centres: db.cost_centres().await?,
        ownership: db.ownership().await?,
        backends: db.backends().await?,
        ptu_reservations: db.ptu_reservations().await?,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Replaced {
    kind: String,
    rows: usize,
}

/// Replaces one kind of reference data with the file in the body, checked
/// whole exactly as the CLI's import checks it (`prices` and `backends` and
/// `ptu` as CSV, `ownership` as TOML; docs/reference-data.md). A bad file is
/// refused with every problem named (422) and nothing changes.
#[utoipa::path(put, path = "/api/v1/reference/{kind}", tag = "reports",
    params(("kind" = String, Path, description = "prices, ownership, backends or ptu")),
    request_body(content = String, content_type = "text/csv", description = "the file, as the CLI imports it"),
    responses((status = 200, body = Replaced), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn replace_reference(
    Auth(who): Auth,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Result<Json<Replaced>> {
    who.require(CLOSE, "replace reference data")?;
    // axum's default body limit (2 MiB) applies to a reference file.
    let body = body.map_err(|e| crate::error::body_refused(&e, e.status(), 2 << 20))?;
    let Path(kind) = path?;
    let (extension, target) = match kind.as_str() {
        "prices" => ("csv", "prices"),
        "ownership" => ("toml", "ownership"),
        "backends" => ("csv", "backends"),
        "ptu" => ("csv", "ptu_reservations"),
        other => {
            return Err(AppError::NotFound(format!(
                "no reference data {other:?}; one of prices, ownership, backends, ptu"
            )));
        }
    };
    // The imports read a file (as the CLI's do): spool the body to one, named
    // for what it is, so the problems it reports read "prices.csv: line 3 ...".
    let dir = state.spool_dir()?;
    let file = dir.join(format!("{kind}.{extension}"));
    tokio::fs::write(&file, &body)
        .await
        .map_err(|e| AppError::fault(file.display().to_string(), e))?;
    let db = &state.store.db;
    let imported = match kind.as_str() {
        "prices" => tollgate_reports::price_book::import(db, &file)
            .await
            .map(|r| r.len()),
        "ownership" => tollgate_reports::ownership::import(db, &file)
            .await
            .map(|(_, rows)| rows.len()),
        "backends" => tollgate_reports::capacity::import_backends(db, &file)
            .await
            .map(|r| r.len()),
        _ => tollgate_reports::capacity::import_ptu(db, &file)
            .await
            .map(|r| r.len()),
    };
    let _ = tokio::fs::remove_dir_all(&dir).await;
    let rows = imported.map_err(|e| match e {
        tollgate_reports::ReportsError::Invalid { problems, .. } => AppError::Invalid(problems),
        other => AppError::Reports(other),
    })?;
    let after = Replaced { kind, rows };
    let entry = NewAudit::new(&who.actor(), &format!("{target}.import"), target).after(&after);
    db.record_audit(&entry).await?;
    Ok(Json(after))
}
