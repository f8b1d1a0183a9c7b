//! `/api/v1/lineage/...`: the security analyst's questions over the lineage graph
//! (role `security`, and `admin`), answered from the graph in memory. Every
//! traversal is bounded by depth and result count and says when it was cut.
//! `POST /api/v1/lineage` and `/batch` take OpenLineage events (role `ingest`),
//! as the `openlineage-python` client sends them (Bearer key, gzip allowed).

use std::io::Read;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_lineage::{
    Bounds, Direction, Explained, Exposure, Finding, LineageGraph, NodeIndex, NodeKind, ReachAnswer,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role};
use crate::error::{AppError, Result};
use crate::state::AppState;

pub const READ: &[Role] = &[Role::Admin, Role::Security];
pub const PUSH: &[Role] = &[Role::Admin, Role::Ingest];
/// Largest body once gunzipped: events are small; a bomb is refused.
const MAX_EVENTS_BYTES: u64 = 16 << 20;
const MAX_DEPTH: u32 = 20;
const MAX_LIMIT: usize = 10_000;

/// Largest body as sent (gzip or not); what it expands to is bounded apart.
const MAX_BODY_BYTES: usize = MAX_EVENTS_BYTES as usize;
/// Largest answer listing many nodes with their paths (reach, findings,
/// exposure): items past it are left out and the answer says so.
pub const MAX_ANSWER_BYTES: usize = 8 << 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(downstream))
        .routes(routes!(upstream))
        .routes(routes!(path))
        .routes(routes!(why))
        .routes(routes!(reach))
        .routes(routes!(findings))
        .routes(routes!(exposure))
        .routes(routes!(bypass))
        .routes(routes!(hit_counts))
        .routes(routes!(hit))
        .routes(routes!(push_event))
        .routes(routes!(push_batch))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            MAX_BODY_BYTES,
            crate::error::refuse_declared_oversize,
        ))
}

/// The pushed body, or why it cannot be read, as the JSON error.
fn body_bytes(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(|e| crate::error::body_refused(&e, e.status(), MAX_BODY_BYTES))
}

/// A JSON array of `items` written until it would pass [`MAX_ANSWER_BYTES`];
/// a cut answer carries `X-Tollgate-Truncated: answer-size`.
fn bounded_array<T: Serialize>(items: impl IntoIterator<Item = T>) -> Result<Response> {
    let mut body = Vec::from(&b"["[..]);
    let mut cut = false;
    for item in items {
        let json = serde_json::to_vec(&item).map_err(|e| AppError::fault("a lineage answer", e))?;
        if body.len() + json.len() + 2 > MAX_ANSWER_BYTES {
            cut = true;
            break;
        }
        if body.len() > 1 {
            body.push(b',');
        }
        body.extend_from_slice(&json);
    }
    body.push(b']');
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if cut {
        response.headers_mut().insert(
            "x-tollgate-truncated",
            axum::http::HeaderValue::from_static("answer-size"),
        );
    }
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HitsQuery {
    /// agent (default), policy, label, severity or action.
    by: Option<String>,
    /// RFC 3339, inclusive.
    from: Option<String>,
    /// RFC 3339, exclusive.
    to: Option<String>,
}

/// DLP and content-safety hits per day and agent, policy, label, severity or
/// action (security).
/// Model calls the traces show going around the gateways (`docs/otel.md`):
/// by address, agent, model and service, most calls first.
#[utoipa::path(get, path = "/api/v1/lineage/bypass", tag = "lineage",
    responses((status = 200, body = Vec<tollgate_lineage::BypassFinding>),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn bypass(
    Auth(who): Auth,
    State(state): State<AppState>,
) -> Result<Json<Vec<tollgate_lineage::BypassFinding>>> {
    who.require(READ, "query lineage")?;
    Ok(Json(state.bypass_findings().await?))
}

#[utoipa::path(get, path = "/api/v1/lineage/hits", tag = "lineage", params(HitsQuery),
    responses((status = 200, body = Vec<tollgate_lineage::HitCount>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn hit_counts(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<HitsQuery>,
) -> Result<Json<Vec<tollgate_lineage::HitCount>>> {
    who.require(READ, "query lineage")?;
    let by = q.by.as_deref().unwrap_or("agent").parse()?;
    Ok(Json(
        tollgate_lineage::hit_counts(&state.store, by, q.from.as_deref(), q.to.as_deref()).await?,
    ))
}

/// One hit with the labelled lineage upstream of its agent (security).
#[utoipa::path(get, path = "/api/v1/lineage/hits/{hit_id}", tag = "lineage",
    params(("hit_id" = String, Path, description = "The hit's id (a request id for gateway blocks)")),
    responses((status = 200, body = tollgate_lineage::HitContext), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn hit(
    Auth(who): Auth,
    State(state): State<AppState>,
    axum::extract::Path(hit_id): axum::extract::Path<String>,
) -> Result<Json<tollgate_lineage::HitContext>> {
    who.require(READ, "query lineage")?;
    let graph = state.lineage.current();
    Ok(Json(
        tollgate_lineage::hit_context(&state.store, &graph, &hit_id).await?,
    ))
}

/// What an accepted push added.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LineageAccepted {
    pub events: usize,
    pub nodes: usize,
    pub edges: usize,
    /// The graph's version after this push.
    pub version: i64,
}

/// The body as JSON, gunzipped when sent compressed.
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
        || body.starts_with(&[0x1f, 0x8b]);
    let text = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .take(MAX_EVENTS_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| AppError::BadRequest(format!("body: not valid gzip: {e}")))?;
        if out.len() as u64 > MAX_EVENTS_BYTES {
            return Err(AppError::PayloadTooLarge(format!(
                "body: more than {} MiB once decompressed",
                MAX_EVENTS_BYTES >> 20
            )));
        }
        Bytes::from(out)
    } else {
        body.clone()
    };
    serde_json::from_slice(&text).map_err(|e| AppError::BadRequest(format!("body: not JSON: {e}")))
}

async fn accept(
    state: &AppState,
    who: &crate::auth::Principal,
    events: &[Value],
) -> Result<LineageAccepted> {
    let import = tollgate_lineage::parse_events(events, "body", &state.config.taxonomy)?;
    let applied = tollgate_lineage::save_import(
        &state.store.db,
        &import,
        &state.config.taxonomy,
        &who.actor(),
        tollgate_lineage::LineageMode::Merge,
    )
    .await?;
    state
        .lineage
        .apply(&state.store.db, &import, applied.version)
        .await?;
    Ok(LineageAccepted {
        events: events.len(),
        nodes: applied.nodes,
        edges: applied.edges,
        version: applied.version,
    })
}

/// One OpenLineage event: RunEvent, JobEvent or DatasetEvent (ingest).
#[utoipa::path(post, path = "/api/v1/lineage", tag = "lineage",
    request_body(content = Object, content_type = "application/json",
        description = "An OpenLineage RunEvent, JobEvent or DatasetEvent; gzip allowed"),
    responses((status = 201, body = LineageAccepted), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn push_event(
    Auth(who): Auth,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<LineageAccepted>)> {
    who.require(PUSH, "push lineage")?;
    let event = json_body(&headers, &body_bytes(body)?)?;
    Ok((
        StatusCode::CREATED,
        Json(accept(&state, &who, &[event]).await?),
    ))
}

/// A JSON array of OpenLineage events, stored together or not at all (ingest).
#[utoipa::path(post, path = "/api/v1/lineage/batch", tag = "lineage",
    request_body(content = [Object], content_type = "application/json",
        description = "A JSON array of OpenLineage events; gzip allowed"),
    responses((status = 201, body = LineageAccepted), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn push_batch(
    Auth(who): Auth,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<LineageAccepted>)> {
    who.require(PUSH, "push lineage")?;
    let Value::Array(events) = json_body(&headers, &body_bytes(body)?)? else {
        return Err(AppError::BadRequest("body: a JSON array of events".into()));
    };
    // Nothing to store must not look like a change to every server.
    if events.is_empty() {
        return Err(AppError::BadRequest(
            "body: an empty array; send at least one event".into(),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(accept(&state, &who, &events).await?),
    ))
}

/// A node, with its namespace when the name alone is ambiguous.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct NodeQuery {
    name: String,
    namespace: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TraversalQuery {
    name: String,
    namespace: Option<String>,
    /// Edges away to look (1 to 20, default 5).
    depth: Option<u32>,
    /// Only report these kinds, comma separated (all are traversed).
    kinds: Option<String>,
    /// Most nodes reported (1 to 10000, default 1000).
    limit: Option<usize>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PathQuery {
    from: String,
    to: String,
    namespace: Option<String>,
    /// Longest path looked for, in edges (1 to 20, default 10).
    depth: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LabelQuery {
    /// The lowest label reported (default: the most sensitive).
    label: Option<String>,
    /// Only these kinds, comma separated.
    kinds: Option<String>,
    /// For exposure: edges upstream to look (1 to 20, default 10).
    depth: Option<u32>,
    /// Most nodes (reach) or external nodes (exposure) answered (1 to 10000,
    /// default 1000); each comes with its path.
    limit: Option<usize>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LimitQuery {
    /// Most findings answered (1 to 10000, default 1000).
    limit: Option<usize>,
}

fn limit(value: Option<usize>) -> Result<usize> {
    let limit = value.unwrap_or(1000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit: between 1 and {MAX_LIMIT}"
        )));
    }
    Ok(limit)
}

fn node(graph: &LineageGraph, name: &str, namespace: Option<&str>) -> Result<NodeIndex> {
    Ok(graph.resolve(namespace, name)?)
}

fn kinds(list: Option<&str>) -> Result<Vec<NodeKind>> {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| Ok(k.parse::<NodeKind>()?))
        .collect()
}

fn depth(value: Option<u32>, default: u32) -> Result<u32> {
    let depth = value.unwrap_or(default);
    if !(1..=MAX_DEPTH).contains(&depth) {
        return Err(AppError::BadRequest(format!(
            "depth: between 1 and {MAX_DEPTH}"
        )));
    }
    Ok(depth)
}

fn traverse(state: &AppState, q: &TraversalQuery, direction: Direction) -> Result<ReachAnswer> {
    let limit = limit(q.limit)?;
    let bounds = Bounds {
        depth: depth(q.depth, 5)?,
        kinds: kinds(q.kinds.as_deref())?,
        limit,
    };
    let graph = state.lineage.current();
    let start = node(&graph, &q.name, q.namespace.as_deref())?;
    Ok(graph.reach_answer(start, direction, &bounds))
}

/// Blast radius: where data from a node goes, nearest first (security).
#[utoipa::path(get, path = "/api/v1/lineage/downstream", tag = "lineage", params(TraversalQuery),
    responses((status = 200, body = ReachAnswer), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn downstream(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<TraversalQuery>,
) -> Result<Json<ReachAnswer>> {
    who.require(READ, "query lineage")?;
    Ok(Json(traverse(&state, &q, Direction::Downstream)?))
}

/// Provenance: where a node's data comes from, nearest first (security).
#[utoipa::path(get, path = "/api/v1/lineage/upstream", tag = "lineage", params(TraversalQuery),
    responses((status = 200, body = ReachAnswer), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn upstream(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<TraversalQuery>,
) -> Result<Json<ReachAnswer>> {
    who.require(READ, "query lineage")?;
    Ok(Json(traverse(&state, &q, Direction::Upstream)?))
}

/// A shortest data-flow path between two nodes (security).
#[utoipa::path(get, path = "/api/v1/lineage/path", tag = "lineage", params(PathQuery),
    responses((status = 200, body = Explained), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn path(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<PathQuery>,
) -> Result<Json<Explained>> {
    who.require(READ, "query lineage")?;
    let depth = depth(q.depth, 10)?;
    let graph = state.lineage.current();
    let from = node(&graph, &q.from, q.namespace.as_deref())?;
    let to = node(&graph, &q.to, q.namespace.as_deref())?;
    let path = graph.path_between(from, to, depth).ok_or_else(|| {
        AppError::NotFound(format!(
            "no data-flow path from {} to {} within {depth} edges",
            q.from, q.to
        ))
    })?;
    Ok(Json(graph.explain_path(
        to,
        &path,
        tollgate_lineage::WHY_PATH_STEPS,
    )))
}

/// Why a node carries its label: the path from where the label came (security).
#[utoipa::path(get, path = "/api/v1/lineage/why", tag = "lineage", params(NodeQuery),
    responses((status = 200, body = Explained), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn why(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<NodeQuery>,
) -> Result<Json<Explained>> {
    who.require(READ, "query lineage")?;
    let graph = state.lineage.current();
    let ix = node(&graph, &q.name, q.namespace.as_deref())?;
    Ok(Json(graph.explain_whole(ix)))
}

/// Every node at or above a label, each with the path that proves it (security).
#[utoipa::path(get, path = "/api/v1/lineage/reach", tag = "lineage", params(LabelQuery),
    responses((status = 200, body = Vec<Explained>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn reach(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<LabelQuery>,
) -> Result<Response> {
    who.require(READ, "query lineage")?;
    let graph = state.lineage.current();
    let min = match &q.label {
        Some(label) => graph.taxonomy().rank(label)?,
        None => graph.taxonomy().top(),
    };
    let kinds = kinds(q.kinds.as_deref())?;
    let limit = limit(q.limit)?;
    off_the_runtime(move || {
        bounded_array(
            graph
                .at_or_above(min, &kinds)
                .into_iter()
                .take(limit)
                .map(|ix| graph.explain(ix)),
        )
    })
    .await
}

/// Answers listing many nodes walk a path for each (up to 10,000 steps
/// apiece): on the blocking pool, so other requests keep the runtime.
async fn off_the_runtime(
    work: impl FnOnce() -> Result<Response> + Send + 'static,
) -> Result<Response> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::fault("lineage answer", e))?
}

/// Policy findings, each with the path that proves it (security).
#[utoipa::path(get, path = "/api/v1/lineage/findings", tag = "lineage", params(LimitQuery),
    responses((status = 200, body = Vec<Finding>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn findings(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<LimitQuery>,
) -> Result<Response> {
    who.require(READ, "query lineage")?;
    let limit = limit(q.limit)?;
    let graph = state.lineage.current();
    let policy = state.config.lineage_policy.clone();
    off_the_runtime(move || {
        let mut findings = graph.findings(&policy);
        findings.truncate(limit);
        bounded_array(findings)
    })
    .await
}

/// External-facing nodes and the labelled data upstream of them (security).
#[utoipa::path(get, path = "/api/v1/lineage/exposure", tag = "lineage", params(LabelQuery),
    responses((status = 200, body = Vec<Exposure>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn exposure(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<LabelQuery>,
) -> Result<Response> {
    who.require(READ, "query lineage")?;
    let graph = state.lineage.current();
    let min = match &q.label {
        Some(label) => graph.taxonomy().rank(label)?,
        None => graph.taxonomy().top(),
    };
    let bounds = Bounds {
        depth: depth(q.depth, 10)?,
        kinds: kinds(q.kinds.as_deref())?,
        limit: 1000,
    };
    let limit = limit(q.limit)?;
    let policy = state.config.lineage_policy.clone();
    off_the_runtime(move || {
        let mut exposure = graph.exposure(min, &policy, &bounds);
        exposure.truncate(limit);
        bounded_array(exposure)
    })
    .await
}
