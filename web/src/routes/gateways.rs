//! The budget pull API gateways poll: their entries, one entry, or a ready APIM
//! policy fragment, each with a strong ETag (`If-None-Match` gets a bodiless
//! 304) and `Cache-Control: max-age`. A gateway key sees only its own gateways;
//! any other gateway is answered 404, as one that does not exist.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Principal, Role};
use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;
use crate::views::{GatewayBudgetEntry, GatewayBudgets, ServedView, Tag};

pub const READ: &[Role] = &[Role::Gateway, Role::Admin, Role::Operator, Role::Finops];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(all))
        .routes(routes!(policy))
        .routes(routes!(one))
}

fn view(state: &AppState, who: &Principal, gateway: &str) -> Result<Arc<ServedView>> {
    who.require(READ, "read gateway budgets")?;
    let unknown = || AppError::NotFound(format!("no budgets for gateway {gateway:?}"));
    if !who.may_see_gateway(gateway) {
        return Err(unknown());
    }
    state.views.get(gateway).ok_or_else(unknown)
}

fn answer(
    state: &AppState,
    headers: &HeaderMap,
    etag: &Tag,
    content_type: &'static str,
    body: &Bytes,
) -> Response {
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == etag.text || t == "*");
    let mut builder = Response::builder()
        .header(header::ETAG, etag.header.clone())
        .header(header::CACHE_CONTROL, state.budget_cache_control.clone());
    let result = if matches {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        builder = builder.header(header::CONTENT_TYPE, content_type);
        builder
            .status(StatusCode::OK)
            .body(Body::from(body.clone()))
    };
    result.unwrap_or_else(|e| AppError::fault("a budget answer", e).into_response())
}

/// Every counter key the gateway enforces. Strong ETag; `If-None-Match` gets 304.
#[utoipa::path(get, path = "/api/v1/gateways/{gateway}/budgets", tag = "gateways",
    params(("gateway" = String, Path), ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, body = GatewayBudgets), (status = 304, description = "unchanged since that ETag"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn all(
    Auth(who): Auth,
    State(state): State<AppState>,
    headers: HeaderMap,
    gateway: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let Path(gateway) = gateway?;
    let served = view(&state, &who, &gateway)?;
    Ok(answer(
        &state,
        &headers,
        &served.etag,
        "application/json",
        &served.body,
    ))
}

/// One counter key's entry, for a policy that looks up per request.
#[utoipa::path(get, path = "/api/v1/gateways/{gateway}/budgets/{counter_key}", tag = "gateways",
    params(("gateway" = String, Path), ("counter_key" = String, Path), ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, body = GatewayBudgetEntry), (status = 304, description = "unchanged since that ETag"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn one(
    Auth(who): Auth,
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let Path((gateway, counter_key)) = path?;
    let served = view(&state, &who, &gateway)?;
    let (etag, body) = served.entries.get(&counter_key).ok_or_else(|| {
        AppError::NotFound(format!(
            "gateway {gateway:?} enforces no counter key {counter_key:?}"
        ))
    })?;
    Ok(answer(&state, &headers, etag, "application/json", body))
}

/// An APIM policy `<fragment>` applying the same limits.
#[utoipa::path(get, path = "/api/v1/gateways/{gateway}/budgets/apim-policy", tag = "gateways",
    params(("gateway" = String, Path), ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, content_type = "application/xml", body = String), (status = 304, description = "unchanged since that ETag"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn policy(
    Auth(who): Auth,
    State(state): State<AppState>,
    headers: HeaderMap,
    gateway: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let Path(gateway) = gateway?;
    let served = view(&state, &who, &gateway)?;
    let (etag, body) = &served.policy;
    Ok(answer(&state, &headers, etag, "application/xml", body))
}
