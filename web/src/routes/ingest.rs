//! `POST /api/v1/ingest?format=...`: a log shipper pushes a body of JSON lines
//! (plain or gzip) in any adapter format; it is spooled to a file and ingested as
//! one batch, answered with the reconciliation counts only once committed, then
//! budgets are evaluated. An `Idempotency-Key` makes a retry return the first
//! answer; a full house answers 503 with `Retry-After`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use tollgate_ingest::{Format, IngestError, IngestOptions, NoProgress};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role};
use crate::error::{AppError, ErrorBody, Result};
use crate::state::{AppState, ServerConfig};

pub const PUSH: &[Role] = &[Role::Ingest, Role::Admin];

pub fn router(config: &ServerConfig) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push))
        .layer(DefaultBodyLimit::max(config.max_ingest_bytes))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Params {
    /// auto (default), canonical, apim, kong, litellm, appinsights or purview-dlp
    format: Option<String>,
}

/// Ingests the body (JSON lines, plain or gzip) as one batch; answered once committed.
#[utoipa::path(post, path = "/api/v1/ingest", tag = "ingest",
    params(Params, ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key gets the first answer")),
    request_body(description = "JSON lines in the format asked for, plain or gzip", content((String = "application/x-ndjson"), (String = "text/plain"))),
    responses((status = 200, body = tollgate_ingest::IngestReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn push(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response> {
    who.require(PUSH, "push logs")?;
    let format = match params.format.as_deref() {
        None | Some("") => state.config.ingest.format,
        Some(name) => name.parse::<Format>().map_err(|_| {
            AppError::UnsupportedMediaType(format!(
                "unknown format {name:?}; one of auto, {}",
                Format::ALL.map(Format::name).join(", ")
            ))
        })?,
    };
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(format!(
            "the body is larger than {} bytes; split it",
            state.config.max_ingest_bytes
        )),
        _ => AppError::BadRequest(e.body_text()),
    })?;
    if body.is_empty() {
        return Err(AppError::BadRequest("the body is empty".into()));
    }
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| AppError::BadRequest("Idempotency-Key: not visible ASCII".into()))?;
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &body));
    if let Some(key) = &key {
        if key.is_empty() || key.len() > 200 {
            return Err(AppError::BadRequest(
                "Idempotency-Key: 1 to 200 characters".into(),
            ));
        }
        if let Some((first_sha, answer)) = state.store.db.idempotent_answer(key).await? {
            if first_sha != sha {
                return Err(AppError::Conflict(
                    "Idempotency-Key was used before with a different body".into(),
                ));
            }
            return Ok(json_answer(StatusCode::OK, answer, true));
        }
    }
    let Ok(_slot) = state.ingest_slots.try_acquire() else {
        return Err(AppError::Busy(5));
    };
    let report = ingest_body(&state, &body, format).await?;
    state.metrics.count_ingest(&report.counts);
    let answer = serde_json::to_string(&report).map_err(|e| AppError::Internal(e.to_string()))?;
    if let Some(key) = &key {
        state
            .store
            .db
            .record_idempotent_answer(key, &sha, &answer)
            .await?;
    }
    super::budgets::evaluate(&state).await;
    // Inline, as the budget evaluation: a background write racing the pusher's
    // next request made SQLite refuse that request's transaction.
    if let Err(e) = state.observe_lineage().await {
        tracing::error!(error = %e, "refreshing observed lineage after a push failed");
    }
    Ok(json_answer(StatusCode::OK, answer, false))
}

/// Spools the body under the data directory and ingests it as one batch.
async fn ingest_body(
    state: &AppState,
    body: &Bytes,
    format: Format,
) -> Result<tollgate_ingest::IngestReport> {
    let dir = state.spool_dir()?;
    let path = dir.join("push.jsonl");
    tokio::fs::write(&path, body)
        .await
        .map_err(|e| AppError::Internal(format!("{}: {e}", path.display())))?;
    let options = IngestOptions {
        format,
        ..state.config.ingest.clone()
    };
    let result =
        tollgate_ingest::ingest_file(&state.store, &path, &options, Arc::new(NoProgress)).await;
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(path = %dir.display(), error = %e, "spooled push not removed");
    }
    result.map_err(|e| body_error(e, &path))
}

/// What went wrong with a pushed body, said of the body (not of the spool file
/// the server keeps it in), with the status that tells the sender what to do.
fn body_error(e: IngestError, path: &std::path::Path) -> AppError {
    let message = e
        .to_string()
        .replace(&path.display().to_string(), "the body");
    match e {
        IngestError::Unrecognised { .. } | IngestError::UnknownFormat { .. } => {
            AppError::UnsupportedMediaType(message.replace("--format", "?format="))
        }
        IngestError::Unparseable { .. } => AppError::Invalid(vec![message]),
        IngestError::TooLarge { .. } => AppError::PayloadTooLarge(message),
        IngestError::Read { .. } => AppError::BadRequest(message),
        IngestError::TooManyConflicts { .. } => AppError::Busy(5),
        other => AppError::Ingest(other),
    }
}

fn json_answer(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut response = (status, [("content-type", "application/json")], body).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
