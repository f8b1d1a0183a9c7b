//! `/api/v1/budgets`: budgets with their state and forecast; FinOps and admins
//! change them (checked as `tollgate budgets import` checks them, audited), and
//! every change is evaluated at once so gateways see it.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tollgate_reports::budget_eval::{BudgetStatus, statuses};
use tollgate_reports::budgets::{BudgetSpec, KnownScopes, unseen_scope};
use tollgate_store::state::{BudgetEvent, BudgetRow};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role};
use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

pub const READ: &[Role] = &[Role::Admin, Role::Finops, Role::Operator];
pub const WRITE: &[Role] = &[Role::Admin, Role::Finops];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(one, update, remove))
        .routes(routes!(events))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Listing {
    /// The month evaluated: the current calendar month.
    period: String,
    budgets: Vec<BudgetStatus>,
    /// Budgets whose scope neither traffic nor the ownership mapping has
    /// named yet: they show no use until its first request (or a typo).
    unseen_scopes: Vec<UnseenScope>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct UnseenScope {
    budget_id: i64,
    note: String,
}

/// Every budget with its state, month-to-date use and forecast.
#[utoipa::path(get, path = "/api/v1/budgets", tag = "budgets",
    responses((status = 200, body = Listing), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(Auth(who): Auth, State(state): State<AppState>) -> Result<Json<Listing>> {
    who.require(READ, "read budgets")?;
    let (budgets, period) = statuses(&state.store, &state.chargeback).await?;
    let known = KnownScopes::load(&state.store).await?;
    let unseen_scopes = budgets
        .iter()
        .filter_map(|b| {
            unseen_scope(&known, &b.budget.budget).map(|note| UnseenScope {
                budget_id: b.budget.id,
                note,
            })
        })
        .collect();
    Ok(Json(Listing {
        period: period.to_string(),
        budgets,
        unseen_scopes,
    }))
}

/// One budget with its state and forecast.
#[utoipa::path(get, path = "/api/v1/budgets/{id}", tag = "budgets", params(("id" = i64, Path)),
    responses((status = 200, body = BudgetStatus), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn one(
    Auth(who): Auth,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<BudgetStatus>> {
    who.require(READ, "read budgets")?;
    let Path(id) = id?;
    let (budgets, _) = statuses(&state.store, &state.chargeback).await?;
    budgets
        .into_iter()
        .find(|b| b.budget.id == id)
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no budget with id {id}")))
}

async fn checked(
    state: &AppState,
    body: Result<Json<BudgetSpec>, JsonRejection>,
) -> Result<tollgate_store::state::NewBudget> {
    let Json(spec) = body?;
    let known = KnownScopes::load(&state.store).await?;
    spec.check(&known).map_err(AppError::Invalid)
}

/// Creates a budget (admin, finops); evaluated at once.
#[utoipa::path(post, path = "/api/v1/budgets", tag = "budgets", request_body = BudgetSpec,
    responses((status = 201, body = BudgetRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    Auth(who): Auth,
    State(state): State<AppState>,
    body: Result<Json<BudgetSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<BudgetRow>)> {
    who.require(WRITE, "change budgets")?;
    let budget = checked(&state, body).await?;
    let row = state.store.db.create_budget(&budget, &who.actor()).await?;
    evaluate(&state).await;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Replaces a budget (admin, finops); evaluated at once.
#[utoipa::path(put, path = "/api/v1/budgets/{id}", tag = "budgets", params(("id" = i64, Path)), request_body = BudgetSpec,
    responses((status = 200, body = BudgetRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update(
    Auth(who): Auth,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<BudgetSpec>, JsonRejection>,
) -> Result<Json<BudgetRow>> {
    who.require(WRITE, "change budgets")?;
    let Path(id) = id?;
    let budget = checked(&state, body).await?;
    let row = state
        .store
        .db
        .update_budget(id, &budget, &who.actor())
        .await?;
    evaluate(&state).await;
    Ok(Json(row))
}

/// Deletes a budget (admin, finops).
#[utoipa::path(delete, path = "/api/v1/budgets/{id}", tag = "budgets", params(("id" = i64, Path)),
    responses((status = 200, body = BudgetRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove(
    Auth(who): Auth,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<BudgetRow>> {
    who.require(WRITE, "change budgets")?;
    let Path(id) = id?;
    let row = state.store.db.delete_budget(id, &who.actor()).await?;
    evaluate(&state).await;
    Ok(Json(row))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// At most this many (1 to 1000, default 100).
    limit: Option<i64>,
}

/// A budget's state changes, newest first, with their webhook bodies and delivery.
#[utoipa::path(get, path = "/api/v1/budgets/{id}/events", tag = "budgets", params(("id" = i64, Path), Limit),
    responses((status = 200, body = Vec<BudgetEvent>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn events(
    Auth(who): Auth,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<BudgetEvent>>> {
    who.require(READ, "read budgets")?;
    let Path(id) = id?;
    state.store.db.budget(id).await?;
    let limit = limit.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(state.store.db.budget_events(Some(id), limit).await?))
}

/// Evaluates after a change; a failure is logged (the change itself stands, and
/// the timer evaluates again).
pub(crate) async fn evaluate(state: &AppState) {
    if let Err(e) = state.evaluate_budgets().await {
        tracing::error!(error = %e, "budget evaluation after a change failed");
    }
}
