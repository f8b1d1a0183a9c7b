//! The operations page: 429s over time by source (client token limits,
//! backend saturation, quota), p95 latency per backend, the month's SLO error
//! budgets, firing and recent alerts, and the budget cuts firing rules make.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Datelike};
use serde::Deserialize;
use tollgate_reports::alerts::rule::Condition;
use tollgate_reports::alerts::series::{self, Projection, Series};
use tollgate_reports::alerts::{self};
use tollgate_reports::month::Month;
use tollgate_reports::sla::{self, slo_of};
use tollgate_store::EpisodeState;
use tollgate_store::state::AlertEpisode;

use super::chart::{self, Chart, Unit};
use super::session::WebUser;
use super::{Chrome, Page, PageQuery, PageResult, Section, count, percent};
use crate::error::AppError;
use crate::state::AppState;

const HOUR_US: i64 = 3_600_000_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/operations", get(page))
}

#[derive(Debug, Deserialize)]
struct OpsQuery {
    month: Option<String>,
}

#[derive(Debug, Clone)]
struct SloLine {
    group: String,
    requests: String,
    availability: String,
    p95: String,
    budget_used: String,
    budget_left: String,
    met: bool,
}

#[derive(Debug, Clone)]
struct EpisodeLine {
    rule: String,
    instance: String,
    state: EpisodeState,
    active_at: String,
    fired_at: String,
    resolved_at: String,
    peak: String,
    summary: String,
}

#[derive(Debug, Clone)]
struct ShedLine {
    rule: String,
    budget: String,
    factor: String,
    since: String,
}

#[derive(askama::Template)]
#[template(path = "ops.html")]
struct OpsPage {
    chrome: Chrome,
    month: String,
    previous_month: String,
    next_month: String,
    firing: usize,
    throttling: Chart,
    latency: Chart,
    objective: String,
    slo: Vec<SloLine>,
    episodes: Vec<EpisodeLine>,
    sheds: Vec<ShedLine>,
}

fn hour_text(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

async fn page(
    user: WebUser,
    State(state): State<AppState>,
    PageQuery(q): PageQuery<OpsQuery>,
) -> PageResult<Response> {
    user.require(Section::Operations)?;
    let db = &state.store.db;
    let newest = db.latest_rollup_hour().await?;
    let month: Month = match q.month.as_deref().filter(|m| !m.is_empty()) {
        Some(text) => text
            .parse()
            .map_err(|e| AppError::BadRequest(format!("month: {e}")))?,
        None => {
            let t = newest
                .and_then(DateTime::from_timestamp_micros)
                .unwrap_or_else(chrono::Utc::now);
            Month::new(t.year(), t.month())?
        }
    };
    let from = micros(month)?;
    let next = micros(month.next()?)?;
    // Up to the newest data: a month in progress ends at its last hour.
    let to = newest
        .map_or(next, |n| next.min(n + HOUR_US))
        .max(from + HOUR_US);
    let hours: Vec<i64> = (from..to).step_by(HOUR_US as usize).collect();
    let labels: Vec<String> = hours.iter().map(|h| hour_text(*h)).collect();

    // One read of the month serves the charts and the SLA report.
    let rows = state.store.rollups(from, to).await?;
    let episodes = db.alert_episodes(None, None, from, next, 10_000).await?;
    let rules = alerts::load_rules(&state.store).await?;
    let slo_spec = slo_of(&rules);
    let ptu = series::ptu_backends(&db.backends().await?);
    let whole = Series::project_cached(
        &rows,
        &Projection {
            scope: &BTreeMap::new(),
            group_by: &[],
            sketches: false,
            slow_above_ms: None,
            ptu_backends: &ptu,
        },
        &series::PROJECTIONS,
    );
    let by_backend = ["backend".to_owned()];
    let backends = sla::project(&rows, &by_backend, &slo_spec);
    let throttling = throttling_chart(&whole, &hours, &labels, &rules, &episodes, month);
    let latency = latency_chart(&backends, &hours, &labels, month);
    let report = sla::report(month, &by_backend, &slo_spec, &backends, &episodes)?;
    let slo = report
        .rows
        .iter()
        .map(|r| SloLine {
            // Requests no backend served: client 429s, cache hits.
            group: if r.group.iter().all(String::is_empty) {
                "(no backend)".into()
            } else {
                r.group.join(" / ")
            },
            requests: count(r.requests),
            availability: r.availability.map_or("–".into(), percent),
            p95: r
                .p95_ms
                .map_or("–".into(), |v| chart::format_value(v, Unit::Millis)),
            budget_used: percent(r.error_budget_used),
            budget_left: percent(r.error_budget_left),
            met: r.slo_met,
        })
        .collect();

    let by_rule: HashMap<&str, &alerts::rule::Rule> =
        rules.iter().map(|r| (r.spec.name.as_str(), r)).collect();
    let mut lines: Vec<EpisodeLine> = episodes
        .iter()
        .map(|e| EpisodeLine {
            rule: e.rule.clone(),
            instance: instance(&e.labels),
            state: e.state,
            active_at: hour_text(e.active_at),
            fired_at: e.fired_at.map(hour_text).unwrap_or_else(|| "–".into()),
            resolved_at: e.resolved_at.map(hour_text).unwrap_or_else(|| "–".into()),
            peak: by_rule.get(e.rule.as_str()).map_or_else(
                || format!("{:.3}", e.peak),
                |r| alerts::payload::format_value(r, e.peak),
            ),
            summary: summary(&e.annotations),
        })
        .collect();
    // Firing first, then newest first.
    lines.sort_by_key(|l| {
        (
            l.state != EpisodeState::Firing,
            std::cmp::Reverse(l.active_at.clone()),
        )
    });
    // Firing now, whichever month is shown: what an operator opens the page for.
    let firing = db
        .alert_episodes(Some(EpisodeState::Firing), None, i64::MIN, i64::MAX, 10_000)
        .await?
        .len();

    let budgets: HashMap<i64, String> = db
        .budgets()
        .await?
        .into_iter()
        .map(|b| (b.id, b.budget.name))
        .collect();
    let sheds = db
        .alert_sheds(true)
        .await?
        .into_iter()
        .map(|s| ShedLine {
            budget: budgets
                .get(&s.budget_id)
                .cloned()
                .unwrap_or_else(|| format!("budget {}", s.budget_id)),
            rule: s.rule,
            factor: format!("× {}", s.factor),
            since: s.started_at,
        })
        .collect();

    let page = OpsPage {
        chrome: Chrome::new(&user, Section::Operations, format!("Operations · {month}")),
        month: month.to_string(),
        previous_month: month.previous()?.to_string(),
        next_month: month.next()?.to_string(),
        firing,
        throttling,
        latency,
        objective: percent(slo_spec.objective),
        slo,
        episodes: lines,
        sheds,
    };
    Ok(Page(page).into_response())
}

fn micros(month: Month) -> PageResult<i64> {
    Ok(month
        .first_day()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_micros())
}

/// The 429 rates by source, hour by hour, with the throttling alerts' episodes
/// shaded.
fn throttling_chart(
    whole: &Series,
    hours: &[i64],
    labels: &[String],
    rules: &[alerts::rule::Rule],
    episodes: &[AlertEpisode],
    month: Month,
) -> Chart {
    let metric = |name: &str| -> Vec<f64> {
        hours
            .iter()
            .map(|h| {
                whole
                    .hours
                    .get(h)
                    .and_then(|g| g.values().next())
                    .and_then(|m| m.value(name))
                    .unwrap_or(f64::NAN)
            })
            .collect()
    };
    let series = vec![
        chart::Series {
            name: "client 429 (token limits)".into(),
            values: metric("client_429_rate"),
        },
        chart::Series {
            name: "backend 429 (capacity)".into(),
            values: metric("backend_429_rate"),
        },
        chart::Series {
            name: "quota 403".into(),
            values: metric("quota_403_rate"),
        },
    ];
    let throttling: HashSet<&str> = rules
        .iter()
        .filter(|r| match &r.condition {
            Condition::Above { metric, .. } | Condition::Anomaly { metric, .. } => {
                metric.contains("429") || metric.contains("403")
            }
            _ => false,
        })
        .map(|r| r.spec.name.as_str())
        .collect();
    let start = hours.first().copied().unwrap_or_default();
    let end = hours.last().map_or(start, |h| h + HOUR_US);
    let mut marks: Vec<(usize, usize, String)> = episodes
        .iter()
        .filter(|e| throttling.contains(e.rule.as_str()) && e.fired_at.is_some())
        // The client-side rules fire most afternoons; the capacity ones are the
        // incidents worth shading.
        .filter(|e| !e.rule.starts_with("client"))
        .map(|e| {
            let from = e.active_at.clamp(start, end);
            let to = e.resolved_at.unwrap_or(end).clamp(start, end);
            (
                ((from - start) / HOUR_US) as usize,
                ((to - start) / HOUR_US).max((from - start) / HOUR_US + 1) as usize,
                e.rule.clone(),
            )
        })
        .collect();
    marks.sort();
    marks.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
    chart::lines(
        &format!("Share of requests throttled, by source, per hour, {month}"),
        labels,
        &series,
        Unit::Percent,
        &marks,
    )
}

/// p95 latency per backend, hour by hour.
fn latency_chart(backends: &Series, hours: &[i64], labels: &[String], month: Month) -> Chart {
    let mut names: Vec<String> = backends
        .hours
        .values()
        .flat_map(|g| g.keys())
        .filter_map(|l| l.get("backend").cloned())
        .filter(|b| !b.is_empty())
        .collect();
    names.sort();
    names.dedup();
    let series: Vec<chart::Series> = names
        .iter()
        .map(|backend| chart::Series {
            name: backend.clone(),
            values: hours
                .iter()
                .map(|h| {
                    backends
                        .hours
                        .get(h)
                        .and_then(|g| {
                            g.iter()
                                .find(|(l, _)| l.get("backend") == Some(backend))
                                .map(|(_, m)| m)
                        })
                        .and_then(|m| m.value("latency_p95"))
                        .unwrap_or(f64::NAN)
                })
                .collect(),
        })
        .collect();
    chart::lines(
        &format!("p95 latency per backend, per hour, {month}"),
        labels,
        &series,
        Unit::Millis,
        &[],
    )
}

/// An episode's label set, as `key=value` pairs.
fn instance(labels_json: &str) -> String {
    serde_json::from_str::<BTreeMap<String, String>>(labels_json)
        .map(|m| {
            m.iter()
                .filter(|(k, v)| k.as_str() != "alertname" && !v.is_empty())
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|_| labels_json.to_owned())
}

/// An episode's summary annotation.
fn summary(annotations_json: &str) -> String {
    serde_json::from_str::<BTreeMap<String, String>>(annotations_json)
        .ok()
        .and_then(|m| m.get("summary").cloned())
        .unwrap_or_default()
}
