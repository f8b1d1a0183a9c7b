//! The monthly SLA report: per group (backend, deployment, API, ...) the
//! month's requests, availability, latency percentiles, the 429s by source,
//! and the error budget its SLO allowed, used and left; plus each alert
//! episode of the month with the share of its group's error budget the hours it
//! was active cost.

use serde::Serialize;
use tollgate_store::Store;
use tollgate_store::derived::Rollups;
use tollgate_store::state::AlertEpisode;

use crate::alerts::rule::{Condition, SloSpec};
use crate::alerts::series::{Labels, PROJECTIONS, Projection, STEP_US, Series, dimension_problems};
use crate::month::Month;
use crate::{ReportsError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlaRow {
    /// The group's values, in the order of `by`.
    pub group: Vec<String>,
    pub requests: i64,
    pub bad: i64,
    /// The share of good requests.
    pub availability: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub backend_p95_ms: Option<f64>,
    pub client_429: i64,
    pub backend_429: i64,
    pub quota_403: i64,
    pub errors_5xx: i64,
    pub breaker_trips: i64,
    /// Bad requests the SLO allowed this month: `(1 - objective) * requests`.
    pub error_budget: f64,
    /// The share of it spent (above 1 when the SLO was missed).
    pub error_budget_used: f64,
    pub error_budget_left: f64,
    pub slo_met: bool,
}

/// An alert episode of the month and what its hours cost its group.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlaIncident {
    pub rule: String,
    /// A burn-rate alert's windows (`1h/5m`, ...).
    pub window: Option<String>,
    pub group: Vec<String>,
    pub from: String,
    pub to: String,
    pub requests: i64,
    pub bad: i64,
    /// The share of the group's monthly error budget spent in these hours.
    pub error_budget_cost: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlaReport {
    pub month: String,
    pub by: Vec<String>,
    pub objective: f64,
    pub latency_ms: Option<f64>,
    pub count_429: String,
    pub rows: Vec<SlaRow>,
    pub incidents: Vec<SlaIncident>,
}

/// The SLO the report measures against: the first burn-rate rule's, else a
/// 99.5% availability with 5 s latency and backend 429s counted as failures.
pub fn slo_of(rules: &[crate::alerts::Rule]) -> SloSpec {
    rules
        .iter()
        .find_map(|r| match &r.condition {
            Condition::BurnRate(slo) => Some(slo.clone()),
            _ => None,
        })
        .unwrap_or(SloSpec {
            objective: 0.995,
            latency_ms: Some(5000.0),
            count_429: "backend".into(),
        })
}

/// The month's SLA, grouped by `by` (dimensions of the rollups).
#[tracing::instrument(skip(store, slo), err)]
pub async fn sla(store: &Store, month: Month, by: &[String], slo: &SloSpec) -> Result<SlaReport> {
    let problems = dimension_problems("by", by);
    if !problems.is_empty() {
        return Err(ReportsError::Argument(problems.join("; ")));
    }
    let from = crate::fine::micros(month.first_day());
    let to = crate::fine::micros(month.next()?.first_day());
    let rows = store.rollups(from, to).await?;
    let episodes = store
        .db
        .alert_episodes(None, None, from, to, 10_000)
        .await?;
    report(month, by, slo, &project(&rows, by, slo), &episodes)
}

/// The month's rollups as an SLA report reads them: grouped by `by`, with
/// latency sketches and the requests slower than the SLO's bound (a page
/// that also draws latencies reuses it).
pub fn project(rows: &Rollups, by: &[String], slo: &SloSpec) -> Series {
    Series::project_cached(
        rows,
        &Projection {
            scope: &Default::default(),
            group_by: by,
            sketches: true,
            slow_above_ms: slo.latency_ms,
            ptu_backends: &Default::default(),
        },
        &PROJECTIONS,
    )
}

/// The SLA report of `month` from its series ([`project`], `by` checked) and
/// its alert episodes.
pub fn report(
    month: Month,
    by: &[String],
    slo: &SloSpec,
    series: &Series,
    episodes: &[AlertEpisode],
) -> Result<SlaReport> {
    let from = crate::fine::micros(month.first_day());
    let to = crate::fine::micros(month.next()?.first_day());
    let allowed = 1.0 - slo.objective;
    let group = |labels: &Labels| -> Vec<String> {
        by.iter()
            .map(|d| labels.get(d).cloned().unwrap_or_default())
            .collect()
    };
    let month_total = series.window(from, to);
    let mut out: Vec<SlaRow> = month_total
        .iter()
        .map(|(labels, m)| {
            let bad = m.bad(&slo.count_429);
            let error_budget = allowed * m.requests as f64;
            let used = if error_budget > 0.0 {
                bad as f64 / error_budget
            } else {
                0.0
            };
            SlaRow {
                group: group(labels),
                requests: m.requests,
                bad,
                availability: (m.requests > 0)
                    .then(|| (m.requests - bad) as f64 / m.requests as f64),
                p50_ms: m.value("latency_p50"),
                p95_ms: m.value("latency_p95"),
                p99_ms: m.value("latency_p99"),
                backend_p95_ms: m.value("backend_latency_p95"),
                client_429: m.client_429,
                backend_429: m.backend_429,
                quota_403: m.quota_403,
                errors_5xx: m.status_5xx,
                breaker_trips: m.breaker_trips,
                error_budget,
                error_budget_used: used,
                error_budget_left: 1.0 - used,
                slo_met: used <= 1.0,
            }
        })
        .collect();
    out.sort_by(|a, b| a.group.cmp(&b.group));

    let mut incidents = Vec::new();
    for e in episodes.iter().filter(|e| e.fired_at.is_some()) {
        let labels: Labels = serde_json::from_str(&e.labels).unwrap_or_default();
        if by.iter().any(|d| !labels.contains_key(d)) {
            continue;
        }
        let key: Labels = by
            .iter()
            .map(|d| (d.clone(), labels.get(d).cloned().unwrap_or_default()))
            .collect();
        let (start, end) = (e.active_at.max(from), e.resolved_at.unwrap_or(to).min(to));
        let mut requests = 0;
        let mut bad = 0;
        for hour in (start..end).step_by(STEP_US as usize) {
            if let Some(m) = series.at(hour, &key) {
                requests = m.requests.saturating_add(requests);
                bad = m.bad(&slo.count_429).saturating_add(bad);
            }
        }
        let budget = month_total
            .get(&key)
            .map_or(0.0, |m| allowed * m.requests as f64);
        incidents.push(SlaIncident {
            rule: e.rule.clone(),
            window: labels.get("burn_window").cloned(),
            group: group(&key),
            from: crate::alerts::payload::rfc3339(start),
            to: crate::alerts::payload::rfc3339(end),
            requests,
            bad,
            error_budget_cost: if budget > 0.0 {
                bad as f64 / budget
            } else {
                0.0
            },
        });
    }
    incidents.sort_by(|a, b| (&a.from, &a.rule, &a.group).cmp(&(&b.from, &b.rule, &b.group)));
    Ok(SlaReport {
        month: month.to_string(),
        by: by.to_vec(),
        objective: slo.objective,
        latency_ms: slo.latency_ms,
        count_429: slo.count_429.clone(),
        rows: out,
        incidents,
    })
}
