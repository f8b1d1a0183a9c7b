//! One module per resource, each with its `router()` of handlers annotated for
//! the OpenAPI document, merged here with the request span (keyed by the matched
//! route) and served with the document at `/api/v1/openapi.json`.

pub(crate) mod alerts;
mod audit;
mod budgets;
mod costs;
mod gateways;
mod health;
mod ingest;
pub(crate) mod keys;
pub(crate) mod lineage;
mod otlp;
pub(crate) mod reports;
pub(crate) mod sql;

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate",
        description = "Governance, lineage and chargeback for an AI gateway estate. \
                       Every /api/v1 request carries an API key as a Bearer token; \
                       each operation names the roles that may call it."
    ),
    modifiers(&BearerKey),
    security(("api_key" = [])),
)]
struct ApiDoc;

struct BearerKey;

impl utoipa::Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every route with its documentation, before state and layers.
fn documented(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .routes(utoipa_axum::routes!(crate::metrics::scrape))
        .merge(derived(state, budgets::router()))
        .merge(derived(state, alerts::router()))
        .merge(derived(state, gateways::router()))
        .merge(audit::router())
        .merge(keys::router())
        .merge(derived(state, reports::router()))
        .merge(derived(state, costs::report_router()))
        .merge(costs::router(&state.config))
        .merge(lineage::router())
        .merge(sql::router())
        .merge(ingest::router(&state.config))
        .merge(otlp::router(&state.config))
}

/// Each stored row as the API answers it (a route's own answer type).
pub(crate) fn answers<R, A: From<R>>(rows: Vec<R>) -> Vec<A> {
    rows.into_iter().map(A::from).collect()
}

/// Routes whose answers are derived from aggregates say how fresh they are.
fn derived(state: &AppState, routes: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    routes.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::derive::freshness_headers,
    ))
}

pub fn router(state: AppState) -> Router {
    let (router, api) = documented(&state).split_for_parts();
    let api = Arc::new(api);
    router
        .merge(crate::ui::router())
        .fallback(crate::ui::not_found)
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let api = api.clone();
                async move { Json(api.as_ref().clone()) }
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::listener::body_deadline,
        ))
        .layer(axum::middleware::from_fn(api_headers))
        // A handler that panics answers 500 like any other server error (and is
        // logged), instead of dropping the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                crate::error::AppError::Internal("a request handler panicked".into())
                    .into_response()
            },
        ))
        .layer(axum::middleware::from_fn(crate::error::log_server_errors))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::info_span!("request", method = %request.method(), route)
            }),
        )
        .with_state(state)
}

/// Every answer is what its `Content-Type` says (`nosniff`), and an API answer
/// that did not choose its own caching (the budget pull does, with its ETag)
/// is not stored: a session cookie may read the API, and what it reads is
/// that person's.
async fn api_headers(request: Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    if api && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
