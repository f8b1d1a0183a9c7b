//! `/api/v1/keys`: admins create (the secret is in the answer, once), list and
//! revoke keys. The CLI's `tollgate keys` does the same through [`create_key`].

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tollgate_store::StateDb;
use tollgate_store::state::{ApiKeyRow, NewApiKey};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role, generate_key};
use crate::error::{AppError, ErrorBody, Result};
use crate::routes::answers;
use crate::state::AppState;

pub const MANAGE: &[Role] = &[Role::Admin];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub role: String,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// RFC 3339; none: never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// Shown this once; only its hash is stored.
    pub secret: String,
    #[serde(flatten)]
    pub key: KeyAnswer,
}

/// A key as the API answers it (without its hash, never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyAnswer {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// For a gateway key, the gateway ids it may read, comma separated.
    pub gateways: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<ApiKeyRow> for KeyAnswer {
    fn from(row: ApiKeyRow) -> Self {
        KeyAnswer {
            id: row.id,
            name: row.name,
            role: row.role,
            gateways: row.gateways,
            prefix: row.prefix,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// Checks and stores a new key (shared by the API and the CLI).
pub async fn create_key(db: &StateDb, request: &KeyRequest, actor: &str) -> Result<CreatedKey> {
    let mut problems = Vec::new();
    let role = request
        .role
        .parse::<Role>()
        .map_err(|e| problems.push(format!("role: {e}")));
    match role {
        Ok(Role::Gateway) if request.gateways.is_empty() => {
            problems.push("gateways: a gateway key needs at least one gateway id".into())
        }
        Ok(r) if r != Role::Gateway && !request.gateways.is_empty() => {
            problems.push("gateways: only a gateway key is scoped to gateways".into())
        }
        _ => {}
    }
    if request
        .gateways
        .iter()
        .any(|g| g.trim().is_empty() || g.contains(','))
    {
        problems.push("gateways: ids must be non-empty and contain no comma".into());
    }
    let expires_at = match &request.expires_at {
        None => None,
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => Some(t.to_utc().to_rfc3339()),
            Err(e) => {
                problems.push(format!("expires_at: {t:?} is not an RFC 3339 time: {e}"));
                None
            }
        },
    };
    let (Ok(role), true) = (role, problems.is_empty()) else {
        return Err(AppError::Invalid(problems));
    };
    let generated = generate_key()?;
    let name = request
        .name
        .clone()
        .unwrap_or_else(|| format!("{} key", role.name()));
    let key = db
        .create_api_key(
            &NewApiKey {
                name,
                role: role.name().to_owned(),
                gateways: request.gateways.clone(),
                prefix: generated.prefix.clone(),
                key_sha256: generated.sha256.clone(),
                expires_at,
            },
            actor,
        )
        .await?;
    Ok(CreatedKey {
        secret: generated.secret,
        key: key.into(),
    })
}

/// Creates a key; the answer holds its secret, shown this once (admin).
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = KeyRequest,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    Auth(who): Auth,
    State(state): State<AppState>,
    request: Result<Json<KeyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>)> {
    who.require(MANAGE, "manage keys")?;
    let Json(request) = request?;
    let created = create_key(&state.store.db, &request, &who.actor()).await?;
    state.keys.refresh(&state.store.db, false).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Every key, revoked ones too, never the secret (admin).
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = Vec<KeyAnswer>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(Auth(who): Auth, State(state): State<AppState>) -> Result<Json<Vec<KeyAnswer>>> {
    who.require(MANAGE, "manage keys")?;
    let keys = state.store.db.api_keys().await?;
    Ok(Json(answers(keys)))
}

/// Revokes a key for good (admin).
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = i64, Path, description = "key id")),
    responses((status = 200, body = KeyAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke(
    Auth(who): Auth,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<KeyAnswer>> {
    let Path(id) = id?;
    Ok(Json(revoke_key(&state, &who, id).await?.into()))
}

/// Revokes key `id` for `who` (the API and the admin page alike).
pub(crate) async fn revoke_key(
    state: &AppState,
    who: &crate::auth::Principal,
    id: i64,
) -> Result<ApiKeyRow> {
    who.require(MANAGE, "manage keys")?;
    if id == who.key_id {
        // Locking oneself out takes another admin to undo; revoke with another key.
        return Err(AppError::Conflict("a key cannot revoke itself".into()));
    }
    let row = state.store.db.revoke_api_key(id, &who.actor()).await?;
    state.keys.refresh(&state.store.db, false).await?;
    Ok(row)
}
