//! Alerting for operators: the rules (read by operators, FinOps and admins,
//! changed by operators and admins, each change in the audit log), episodes
//! with their history, the load shedding in force, a replay of a past period,
//! the hourly operational series behind the rules, and the monthly SLA report.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use tollgate_reports::alerts::series::{self, Labels, Projection, STEP_US, Series};
use tollgate_reports::alerts::{self, RuleSpec};
use tollgate_reports::sla::{SlaReport, sla, slo_of};
use tollgate_store::EpisodeState;
use tollgate_store::state::{AlertEpisode, AlertRuleRow, AlertShed};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Role};
use crate::error::{AppError, Result};
use crate::routes::answers;
use crate::state::AppState;

pub const READ: &[Role] = &[Role::Admin, Role::Operator, Role::Finops];
pub const WRITE: &[Role] = &[Role::Admin, Role::Operator];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(rules))
        .routes(routes!(put_rule, delete_rule))
        .routes(routes!(episodes))
        .routes(routes!(sheds))
        .routes(routes!(replay))
        .routes(routes!(series))
        .routes(routes!(sla_report))
}

/// Every alert rule (admin, operator, finops).
#[utoipa::path(get, path = "/api/v1/alerts/rules", tag = "alerts",
    responses((status = 200, body = Vec<RuleAnswer>), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)))]
async fn rules(Auth(who): Auth, State(state): State<AppState>) -> Result<Json<Vec<RuleAnswer>>> {
    who.require(READ, "read alert rules")?;
    Ok(Json(answers(state.store.db.alert_rules().await?)))
}

/// Creates or replaces a rule, checked whole (admin, operator); the next
/// evaluation judges it.
#[utoipa::path(put, path = "/api/v1/alerts/rules/{name}", tag = "alerts", request_body = RuleSpec,
    params(("name" = String, Path)),
    responses((status = 200, body = RuleAnswer), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
async fn put_rule(
    Auth(who): Auth,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: std::result::Result<Json<RuleSpec>, JsonRejection>,
) -> Result<Json<RuleAnswer>> {
    // The role first: a body is only read for someone who may send it.
    who.require(WRITE, "change alert rules")?;
    let Json(spec) = body?;
    if spec.name != name {
        return Err(AppError::BadRequest(format!(
            "name: the body names {:?}, the path {name:?}",
            spec.name
        )));
    }
    spec.check()?;
    let json = serde_json::to_string(&spec).map_err(|e| AppError::fault("an alert rule", e))?;
    let row = state
        .store
        .db
        .put_alert_rule(&name, &json, "api", &who.actor())
        .await?;
    rejudge(&state).await;
    Ok(Json(row.into()))
}

/// Deletes a rule and its episodes (admin, operator).
#[utoipa::path(delete, path = "/api/v1/alerts/rules/{name}", tag = "alerts",
    params(("name" = String, Path)),
    responses((status = 200, body = RuleAnswer), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_rule(
    Auth(who): Auth,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RuleAnswer>> {
    who.require(WRITE, "change alert rules")?;
    let row = state
        .store
        .db
        .delete_alert_rule(&name, &who.actor())
        .await?;
    rejudge(&state).await;
    Ok(Json(row.into()))
}

/// After a rule changes: the newest hours judged again by the rules as they
/// are now, then budgets (whose gateway entries carry the cuts).
async fn rejudge(state: &AppState) {
    {
        let _one = state.evaluating.lock().await;
        if let Err(e) = alerts::evaluate_live(&state.store, &state.alert_options(), true).await {
            tracing::error!(error = %e, "alert evaluation after a rule change failed");
        }
    }
    super::budgets::evaluate(state).await;
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EpisodeQuery {
    /// `pending`, `firing` or `resolved`.
    state: Option<String>,
    rule: Option<String>,
    /// RFC 3339; episodes active at or after it.
    from: Option<String>,
    /// RFC 3339; episodes active before it.
    to: Option<String>,
    limit: Option<i64>,
}

fn micros(field: &str, text: &Option<String>, default: i64) -> Result<i64> {
    match text {
        None => Ok(default),
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp_micros())
            .map_err(|e| AppError::BadRequest(format!("{field}: {e} (RFC 3339 expected)"))),
    }
}

/// Alert episodes, newest first: firing and pending ones and their history
/// (admin, operator, finops). Times are data time, in microseconds.
#[utoipa::path(get, path = "/api/v1/alerts/episodes", tag = "alerts", params(EpisodeQuery),
    responses((status = 200, body = Vec<EpisodeAnswer>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn episodes(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<EpisodeQuery>,
) -> Result<Json<Vec<EpisodeAnswer>>> {
    who.require(READ, "read alerts")?;
    let wanted = q
        .state
        .as_deref()
        .map(str::parse::<EpisodeState>)
        .transpose()
        .map_err(|_| AppError::BadRequest("state: one of pending, firing, resolved".into()))?;
    let limit = q.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(AppError::BadRequest("limit: between 1 and 10000".into()));
    }
    let from = micros("from", &q.from, i64::MIN)?;
    let to = micros("to", &q.to, i64::MAX)?;
    let episodes = state
        .store
        .db
        .alert_episodes(wanted, q.rule.as_deref(), from, to, limit)
        .await?;
    Ok(Json(answers(episodes)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ShedQuery {
    /// Also the cuts that have ended.
    #[serde(default)]
    all: bool,
}

/// Budget cuts made by firing rules: those in force, or all (admin, operator,
/// finops).
#[utoipa::path(get, path = "/api/v1/alerts/sheds", tag = "alerts", params(ShedQuery),
    responses((status = 200, body = Vec<ShedAnswer>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn sheds(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<ShedQuery>,
) -> Result<Json<Vec<ShedAnswer>>> {
    who.require(READ, "read load shedding")?;
    Ok(Json(answers(state.store.db.alert_sheds(!q.all).await?)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct ReplayRequest {
    /// RFC 3339, the first hour judged.
    from: String,
    /// RFC 3339, the end of the period (exclusive).
    to: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ReplayAnswer {
    from_us: i64,
    to_us: i64,
    rules: usize,
    episodes: usize,
    firing_episodes: usize,
}

/// Judges the rules again over a past period from the rollups as they are now
/// (a backfilled month shows its incidents); sends nothing, changes no budget
/// (admin, operator).
#[utoipa::path(post, path = "/api/v1/alerts/replay", tag = "alerts", request_body = ReplayRequest,
    responses((status = 200, body = ReplayAnswer), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn replay(
    Auth(who): Auth,
    State(state): State<AppState>,
    body: std::result::Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Json<ReplayAnswer>> {
    who.require(WRITE, "replay alert rules")?;
    let Json(request) = body?;
    let from = micros("from", &Some(request.from), 0)?;
    let to = micros("to", &Some(request.to), 0)?;
    if to <= from || to - from > 92 * 24 * STEP_US {
        return Err(AppError::BadRequest(
            "to: after from, and at most 92 days later".into(),
        ));
    }
    let _one = state.evaluating.lock().await;
    let run = alerts::evaluate(&state.store, &Default::default(), from, to, false, None).await?;
    Ok(Json(ReplayAnswer {
        from_us: run.from_us,
        to_us: run.to_us,
        rules: run.rules,
        episodes: run.episodes.len(),
        firing_episodes: run.episodes.iter().filter(|e| e.fired_at.is_some()).count(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SeriesQuery {
    /// A metric: `throttled_rate`, `client_429_rate`, `backend_429_rate`,
    /// `quota_403_rate`, `error_rate`, `spillover_share`, `latency_p95`, `backend_latency_p99`,
    /// `requests`, `breaker_trips`, `tokens`, ...
    metric: String,
    /// Dimensions, comma separated (`backend`, `subscription`, `region`, ...).
    by: Option<String>,
    /// RFC 3339; default the last 48 hours of data (2 hours per minute).
    from: Option<String>,
    to: Option<String>,
    /// `hour` (default) or `minute`: the minute tier keeps the newest 48 hours
    /// of data, by subscription, product, gateway, backend, deployment and region.
    resolution: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SeriesPoint {
    /// The hour (or minute), RFC 3339.
    hour: String,
    #[schema(value_type = Object)]
    labels: Labels,
    value: f64,
    requests: i64,
}

/// One metric per hour (at most 31 days) or, for the newest 48 hours of data,
/// per minute, and group, from the rollups: what the rules judge (admin,
/// operator, finops).
#[utoipa::path(get, path = "/api/v1/ops/series", tag = "alerts", params(SeriesQuery),
    responses((status = 200, body = Vec<SeriesPoint>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn series(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<Vec<SeriesPoint>>> {
    who.require(READ, "read operational metrics")?;
    let by: Vec<String> =
        q.by.as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    // The same checks a rule's metric and grouping get.
    let mut problems = series::dimension_problems("by", &by);
    problems.extend(series::metric_problem(
        &q.metric,
        &series::all_metrics(),
        "a metric",
    ));
    if !problems.is_empty() {
        return Err(AppError::BadRequest(problems.join("; ")));
    }
    let minutely = match q.resolution.as_deref() {
        None | Some("hour") => false,
        Some("minute") => true,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "resolution: {other:?} is not hour or minute"
            )));
        }
    };
    let kept = series::MINUTE_DIMENSIONS;
    if minutely && let Some(d) = by.iter().find(|d| !kept.contains(&d.as_str())) {
        return Err(AppError::BadRequest(format!(
            "by: the minute tier does not keep {d:?} (only {})",
            kept.join(", ")
        )));
    }
    let (span, max_span) = if minutely {
        (2 * STEP_US, 48 * STEP_US)
    } else {
        (48 * STEP_US, 31 * 24 * STEP_US)
    };
    let latest = state.store.db.latest_rollup_hour().await?.unwrap_or(0);
    let to = micros("to", &q.to, latest + STEP_US)?;
    let from = micros("from", &q.from, to - span)?;
    if to <= from || to - from > max_span {
        return Err(AppError::BadRequest(format!(
            "to: after from, and at most {} hours later",
            max_span / STEP_US
        )));
    }
    let rows = if minutely {
        state.store.minute_rollups(from, to).await?
    } else {
        state.store.rollups(from, to).await?
    };
    let ptu = tollgate_reports::alerts::series::ptu_backends(&state.store.db.backends().await?);
    let series = Series::project_cached(
        &rows,
        &Projection {
            scope: &Default::default(),
            group_by: &by,
            sketches: q.metric.contains("latency_p"),
            slow_above_ms: None,
            ptu_backends: &ptu,
        },
        &tollgate_reports::alerts::series::PROJECTIONS,
    );
    let mut points = Vec::new();
    for (hour, groups) in &series.hours {
        for (labels, m) in groups.iter() {
            if let Some(value) = m.value(&q.metric) {
                points.push(SeriesPoint {
                    hour: alerts::payload::rfc3339(*hour),
                    labels: labels.clone(),
                    value,
                    requests: m.requests,
                });
            }
        }
    }
    points.sort_by(|a, b| (&a.hour, &a.labels).cmp(&(&b.hour, &b.labels)));
    Ok(Json(points))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SlaQuery {
    /// YYYY-MM.
    month: String,
    /// Dimensions, comma separated; default `backend`.
    by: Option<String>,
}

/// The month's SLA per group against the SLO of the first burn-rate rule:
/// availability, latency percentiles, 429s by source, error budget used and
/// left, and what each alert episode cost (admin, operator, finops).
#[utoipa::path(get, path = "/api/v1/reports/sla", tag = "alerts", params(SlaQuery),
    responses((status = 200, body = SlaReport), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn sla_report(
    Auth(who): Auth,
    State(state): State<AppState>,
    Query(q): Query<SlaQuery>,
) -> Result<Json<SlaReport>> {
    who.require(READ, "read the SLA report")?;
    let month = q
        .month
        .parse()
        .map_err(|e| AppError::BadRequest(format!("month: {e}")))?;
    let by: Vec<String> =
        q.by.as_deref()
            .unwrap_or("backend")
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    let rules = alerts::load_rules(&state.store).await?;
    Ok(Json(sla(&state.store, month, &by, &slo_of(&rules)).await?))
}

/// An alert rule as the API answers it: its checked spec as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleAnswer {
    id: i64,
    name: String,
    spec: String,
    /// `default` (shipped), `config` (the config file) or `api`.
    origin: String,
    updated_at: String,
}

impl From<AlertRuleRow> for RuleAnswer {
    fn from(row: AlertRuleRow) -> Self {
        RuleAnswer {
            id: row.id,
            name: row.name,
            spec: row.spec,
            origin: row.origin,
            updated_at: row.updated_at,
        }
    }
}

/// One episode of an alert instance, at data time (microseconds).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EpisodeAnswer {
    rule: String,
    /// Identifies the instance: a hash of its label set.
    fingerprint: String,
    /// The label set, as a JSON object.
    labels: String,
    annotations: String,
    state: EpisodeState,
    /// When the condition first held.
    active_at: i64,
    fired_at: Option<i64>,
    resolved_at: Option<i64>,
    /// The value at the last evaluation the condition held.
    value: f64,
    /// The highest value while active.
    peak: f64,
}

impl From<AlertEpisode> for EpisodeAnswer {
    fn from(e: AlertEpisode) -> Self {
        EpisodeAnswer {
            rule: e.rule,
            fingerprint: e.fingerprint,
            labels: e.labels,
            annotations: e.annotations,
            state: e.state,
            active_at: e.active_at,
            fired_at: e.fired_at,
            resolved_at: e.resolved_at,
            value: e.value,
            peak: e.peak,
        }
    }
}

/// A budget cut a firing episode asks for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShedAnswer {
    rule: String,
    fingerprint: String,
    active_at: i64,
    budget_id: i64,
    factor: f64,
    started_at: String,
    ended_at: Option<String>,
}

impl From<AlertShed> for ShedAnswer {
    fn from(s: AlertShed) -> Self {
        ShedAnswer {
            rule: s.rule,
            fingerprint: s.fingerprint,
            active_at: s.active_at,
            budget_id: s.budget_id,
            factor: s.factor,
            started_at: s.started_at,
            ended_at: s.ended_at,
        }
    }
}
