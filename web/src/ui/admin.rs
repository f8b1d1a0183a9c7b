//! The admin page: API keys (create, revoke), the audit log, alert rules, the
//! price book and the ownership mapping.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tollgate_reports::rate::format_pico;
use tollgate_store::state::{ApiKeyRow, AuditEntry, CostCentre, OwnershipRow, PriceRow};

use super::session::WebUser;
use super::{Chrome, Page, PageForm, PageResult, Section};
use crate::auth::Role;
use crate::error::AppError;
use crate::routes::keys::{KeyRequest, create_key, revoke_key};
use crate::state::AppState;

const AUDIT_SHOWN: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(page))
        .route("/admin/keys", post(create))
        .route("/admin/keys/{id}/revoke", post(revoke))
}

#[derive(Debug, Clone)]
struct RuleLine {
    name: String,
    origin: String,
    kind: String,
    metric: String,
    threshold: String,
    updated_at: String,
}

#[derive(askama::Template)]
#[template(path = "admin.html")]
struct AdminPage {
    chrome: Chrome,
    /// A key just created: its name and its secret, shown this once.
    created: Option<(String, String)>,
    roles: Vec<&'static str>,
    keys: Vec<ApiKeyRow>,
    self_id: i64,
    audit: Vec<AuditEntry>,
    rules: Vec<RuleLine>,
    prices: Vec<PriceRow>,
    cost_centres: Vec<CostCentre>,
    ownership: Vec<OwnershipRow>,
}

impl AdminPage {
    fn rate(&self, pico: &i64) -> String {
        format_pico(*pico)
    }
}

async fn render(
    user: &WebUser,
    state: &AppState,
    created: Option<(String, String)>,
) -> PageResult<Response> {
    let db = &state.store.db;
    let rules = db
        .alert_rules()
        .await?
        .into_iter()
        .map(|r| {
            let spec: serde_json::Value = serde_json::from_str(&r.spec).unwrap_or_default();
            let text = |field: &str| match &spec[field] {
                serde_json::Value::Null => "–".to_owned(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            RuleLine {
                kind: text("kind"),
                metric: text("metric"),
                threshold: text("threshold"),
                name: r.name,
                origin: r.origin,
                updated_at: r.updated_at,
            }
        })
        .collect();
    let page = AdminPage {
        chrome: Chrome::new(user, Section::Admin, "Admin"),
        created,
        roles: Role::ALL.iter().map(|r| r.name()).collect(),
        keys: db.api_keys().await?,
        self_id: user.who.key_id,
        audit: db.audit_log(None, AUDIT_SHOWN).await?,
        rules,
        prices: db.price_book().await?,
        cost_centres: db.cost_centres().await?,
        ownership: db.ownership().await?,
    };
    Ok(Page(page).into_response())
}

async fn page(user: WebUser, State(state): State<AppState>) -> PageResult<Response> {
    user.require(Section::Admin)?;
    let created = state.sessions.take_flash(&user.session.token).await?;
    render(&user, &state, created).await
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    role: String,
    #[serde(default)]
    name: String,
    /// Comma separated, for gateway keys.
    #[serde(default)]
    gateways: String,
}

async fn create(
    user: WebUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(f): PageForm<CreateForm>,
) -> PageResult<Response> {
    user.check_csrf(&state, &headers, &f.csrf)?;
    user.require(Section::Admin)?;
    let request = KeyRequest {
        role: f.role,
        gateways: f
            .gateways
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        name: Some(f.name.trim().to_owned()).filter(|n| !n.is_empty()),
        expires_at: None,
    };
    let created = create_key(&state.store.db, &request, &user.who.actor()).await?;
    state.keys.refresh(&state.store.db, false).await?;
    // The secret goes to the next page through the session, not the URL: a
    // reload of that page shows the keys, it does not make another.
    state
        .sessions
        .set_flash(&user.session.token, (created.key.name, created.secret))
        .await?;
    Ok(Redirect::to("/admin#keys").into_response())
}

#[derive(Debug, Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn revoke(
    user: WebUser,
    State(state): State<AppState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    PageForm(f): PageForm<CsrfOnly>,
) -> PageResult<Response> {
    user.check_csrf(&state, &headers, &f.csrf)?;
    user.require(Section::Admin)?;
    let Path(id) = id.map_err(|e| AppError::BadRequest(e.body_text()))?;
    revoke_key(&state, &user.who, id).await?;
    Ok(Redirect::to("/admin#keys").into_response())
}
