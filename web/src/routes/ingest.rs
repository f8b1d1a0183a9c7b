//! `POST /api/v1/ingest?format=...`: a log shipper pushes a body of JSON lines
//! (plain or gzip) in any adapter format; it is spooled to a file and ingested as
//! one batch, answered with the reconciliation counts once committed; its
//! rollups, alerts, budgets and observed lineage are derived after, off the
//! request path ([`crate::derive`]). An `Idempotency-Key` makes a retry return
//! the first answer; a full house answers 503 with `Retry-After`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use tollgate_ingest::{Derive, Format, IngestError, IngestOptions, NoProgress};
use tollgate_store::state::IdempotencyClaim;
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
        .layer(axum::middleware::from_fn_with_state(
            config.max_ingest_bytes,
            crate::error::refuse_declared_oversize,
        ))
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
    if format == Format::AzureCost {
        return Err(AppError::UnsupportedMediaType(
            "cost exports are imported with PUT /api/v1/costs (finops, admin), not pushed as logs"
                .into(),
        ));
    }
    let body = body
        .map_err(|e| crate::error::body_refused(&e, e.status(), state.config.max_ingest_bytes))?;
    if body.is_empty() {
        return Err(AppError::BadRequest("the body is empty".into()));
    }
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| AppError::BadRequest("Idempotency-Key: not visible ASCII".into()))?;
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &body));
    let claim = match key {
        Some(key) => match claim(&state, &who, key, &sha).await? {
            Claim::Ours(claim) => Some(claim),
            Claim::Replay(answer) => return Ok(json_answer(StatusCode::OK, answer, true)),
        },
        None => None,
    };
    let Ok(slot) = state.ingest_slots.clone().try_acquire_owned() else {
        if let Some(claim) = &claim {
            claim.release(&state).await;
        }
        return Err(AppError::Busy(5));
    };
    // On a task of its own: a client that leaves mid-push, or a shutdown's
    // grace running out, cannot stop a commit half way; its claim is answered
    // or released whatever becomes of the request.
    let task = tokio::spawn(async move {
        let _slot = slot;
        ingest_and_answer(&state, &body, format, claim.as_ref()).await
    });
    let answer = task.await.map_err(|e| AppError::fault("push task", e))??;
    Ok(json_answer(StatusCode::OK, answer, false))
}

/// An Idempotency-Key this push holds, as the claim `token`.
#[derive(Debug)]
struct HeldKey {
    principal: String,
    key: String,
    token: String,
}

impl HeldKey {
    /// Best effort: a claim left behind is taken over after [`STALE_CLAIM`].
    async fn release(&self, state: &AppState) {
        if let Err(e) = state
            .store
            .db
            .release_idempotency_key(&self.principal, &self.key, &self.token)
            .await
        {
            tracing::warn!(error = %e, "an Idempotency-Key claim was not released");
        }
    }

    /// Records the answer of a committed push. Never released once its batch
    /// committed: a failed write leaves the claim unanswered (a retry is
    /// refused until it is stale, then answered as already ingested), never
    /// free for another body.
    async fn answer(&self, state: &AppState, answer: &str) {
        for attempt in 1..=3 {
            match state
                .store
                .db
                .answer_idempotency_key(&self.principal, &self.key, &self.token, answer)
                .await
            {
                Ok(()) => return,
                Err(e) if attempt == 3 => {
                    tracing::error!(error = %e, "a committed push's answer was not recorded under its Idempotency-Key");
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await,
            }
        }
    }
}

enum Claim {
    Ours(HeldKey),
    Replay(String),
}

/// A claim of the same body older than this whose push never answered (its
/// server died) is taken over by a retry.
const STALE_CLAIM: chrono::Duration = chrono::Duration::minutes(10);

/// Claims the key for this key holder's push of the body with `sha`, or finds
/// the answer a push of the same body got; another body, or the same still
/// being ingested, is a conflict.
async fn claim(
    state: &AppState,
    who: &crate::auth::Principal,
    key: String,
    sha: &str,
) -> Result<Claim> {
    if key.is_empty() || key.len() > 200 {
        return Err(AppError::BadRequest(
            "Idempotency-Key: 1 to 200 characters".into(),
        ));
    }
    let principal = format!("key:{}", who.key_id);
    let token = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now();
    let found = state
        .store
        .db
        .claim_idempotency_key(&principal, &key, sha, &token, now, now - STALE_CLAIM)
        .await?;
    match found {
        IdempotencyClaim::Claimed => Ok(Claim::Ours(HeldKey {
            principal,
            key,
            token,
        })),
        IdempotencyClaim::Answered {
            body_sha256,
            response,
        } if body_sha256 == sha => Ok(Claim::Replay(response)),
        IdempotencyClaim::Answered { .. } => Err(AppError::Conflict(
            "Idempotency-Key was used before with a different body".into(),
        )),
        IdempotencyClaim::InFlight { body_sha256 } if body_sha256 == sha => Err(
            AppError::Conflict(
                "a push with this Idempotency-Key is still being ingested; retry it in a few seconds for its answer"
                    .into(),
            ),
        ),
        IdempotencyClaim::InFlight { .. } => Err(AppError::Conflict(
            "Idempotency-Key is being used by a push of a different body".into(),
        )),
    }
}

/// Ingests the body, records the answer under the key it holds, and wakes the
/// deriver: what the batch changes is derived after the answer.
async fn ingest_and_answer(
    state: &AppState,
    body: &Bytes,
    format: Format,
    claim: Option<&HeldKey>,
) -> Result<String> {
    let report = match ingest_body(state, body, format, "push").await {
        Ok(report) => report,
        // Nothing committed: the key is free for a retry.
        Err(e) => {
            if let Some(claim) = claim {
                claim.release(state).await;
            }
            return Err(e);
        }
    };
    let answer = serde_json::to_string(&report).map_err(|e| AppError::fault("a push answer", e))?;
    if let Some(claim) = claim {
        claim.answer(state, &answer).await;
    }
    committed(state, &report);
    Ok(answer)
}

/// Counts a committed batch and wakes the deriver.
fn committed(state: &AppState, report: &tollgate_ingest::IngestReport) {
    state.metrics.count_ingest(&report.counts);
    state.freshness.committed(report.watermark);
    state.derive_now.notify_one();
}

/// A body another route decoded (OTLP), ingested as one batch like a push
/// without an Idempotency-Key (its rows carry their own ids), on a task of its
/// own; a full house answers 503.
pub(crate) async fn ingest_decoded(
    state: &AppState,
    body: Bytes,
    format: Format,
) -> Result<tollgate_ingest::IngestReport> {
    ingest_spooled(state, body, format, "push").await
}

/// [`ingest_decoded`] with the batch named `<prefix>/<spool id>`.
pub(crate) async fn ingest_spooled(
    state: &AppState,
    body: Bytes,
    format: Format,
    prefix: &'static str,
) -> Result<tollgate_ingest::IngestReport> {
    let Ok(slot) = state.ingest_slots.clone().try_acquire_owned() else {
        return Err(AppError::Busy(5));
    };
    let state = state.clone();
    let task = tokio::spawn(async move {
        let _slot = slot;
        let report = ingest_body(&state, &body, format, prefix).await?;
        committed(&state, &report);
        Ok(report)
    });
    task.await.map_err(|e| AppError::fault("push task", e))?
}

/// Spools the body under the data directory and ingests it as one batch,
/// named by its spool entry (`push/<id>`): neither the batch nor the answer
/// names the server's directories.
async fn ingest_body(
    state: &AppState,
    body: &Bytes,
    format: Format,
    prefix: &str,
) -> Result<tollgate_ingest::IngestReport> {
    let dir = state.spool_dir()?;
    let path = dir.join("push.jsonl");
    tokio::fs::write(&path, body)
        .await
        .map_err(|e| AppError::fault(path.display().to_string(), e))?;
    let mut options = IngestOptions {
        format,
        derive: Derive::Deferred,
        // Only a caller that named the format (PUT /api/v1/costs) reads a
        // bill; a push detected as one is refused.
        allow_cost_exports: format == Format::AzureCost,
        ..state.config.ingest.clone()
    };
    // A small body may not expand to the whole bound: 64 times what was
    // sent (or 16 MiB), within the server's.
    let expands = (body.len() as u64).saturating_mul(64).max(16 << 20);
    options.limits.max_content_bytes = options.limits.max_content_bytes.min(expands);
    let name = format!(
        "{prefix}/{}",
        dir.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    let result =
        tollgate_ingest::ingest_named(&state.store, &path, &name, &options, Arc::new(NoProgress))
            .await;
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
        IngestError::CostExportNotHere { .. } => AppError::UnsupportedMediaType(message),
        IngestError::TooLarge { bound, .. } => AppError::PayloadTooLarge(format!(
            "the body: {} is larger than {} bytes; nothing was committed, split it",
            bound.what, bound.limit
        )),
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
