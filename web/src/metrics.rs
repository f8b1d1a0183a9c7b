//! `/metrics` in the Prometheus text format: requests by route, method and
//! status with a latency histogram, rows pushed by outcome, and each budget's
//! state and used share (read from the state database at scrape time, so they
//! are right whichever process evaluated last).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tollgate_store::{BudgetState, EpisodeState};

use crate::error::{AppError, Result};
use crate::state::AppState;

/// A label value as the text format requires it: backslash, double quote and
/// line feed escaped (prometheus-client writes values as they are, so a budget
/// named `x"} 1\nfake 42` would forge a series). Every label a user or a
/// gateway can name goes through it.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LabelValue(String);

impl LabelValue {
    fn of(text: &str) -> LabelValue {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        LabelValue(out)
    }
}

impl prometheus_client::encoding::EncodeLabelValue for LabelValue {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> std::result::Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: LabelValue,
    route: LabelValue,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: LabelValue,
    route: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    budget: LabelValue,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetName {
    budget: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: LabelValue,
    state: String,
}

/// The server's metrics and the registry that writes them out.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    ingest_rows: Family<OutcomeLabels, Counter>,
    budget_state: Family<BudgetLabels, Gauge>,
    budget_used: Family<BudgetName, Gauge<f64, AtomicU64>>,
    alerts: Family<RuleLabels, Gauge>,
    sheds: Gauge,
    sql_running: Gauge,
    committed_watermark: Gauge,
    derived_watermark: Gauge,
    derived_lag: Gauge<f64, AtomicU64>,
    derive_cycle: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            requests.clone(),
        );
        // 0.25 ms to about 4 s.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and matched route",
            latency.clone(),
        );
        let ingest_rows = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "ingest_rows",
            "Pushed rows by outcome (written, duplicate, quarantined)",
            ingest_rows.clone(),
        );
        let budget_state = Family::<BudgetLabels, Gauge>::default();
        registry.register(
            "budget_state",
            "1 for each budget's current state (ok, warning, exhausted)",
            budget_state.clone(),
        );
        let budget_used = Family::<BudgetName, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "budget_used_ratio",
            "Share of each budget's quota used this period",
            budget_used.clone(),
        );
        let alerts = Family::<RuleLabels, Gauge>::default();
        registry.register(
            "alerts",
            "Alert instances per rule in each open state (pending, firing)",
            alerts.clone(),
        );
        let sheds = Gauge::default();
        registry.register(
            "budget_sheds",
            "Budget cuts firing alert rules make now (load shedding)",
            sheds.clone(),
        );
        let sql_running = Gauge::default();
        registry.register(
            "sql_queries_running",
            "User SQL queries running now (each within its memory and time bounds)",
            sql_running.clone(),
        );
        let committed_watermark = Gauge::default();
        registry.register(
            "committed_watermark",
            "The newest committed manifest watermark (lake file id)",
            committed_watermark.clone(),
        );
        let derived_watermark = Gauge::default();
        registry.register(
            "derived_watermark",
            "The manifest watermark derived answers (rollups, alerts, budgets, views) cover",
            derived_watermark.clone(),
        );
        let derived_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "derived_lag_seconds",
            "How long the oldest commit not yet derived has waited (0: none owed)",
            derived_lag.clone(),
        );
        let derive_cycle = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "derive_cycle_seconds",
            "How long the last derivation cycle took",
            derive_cycle.clone(),
        );
        Metrics {
            committed_watermark,
            derived_watermark,
            derived_lag,
            derive_cycle,
            sql_running,
            registry,
            requests,
            latency,
            ingest_rows,
            budget_state,
            budget_used,
            alerts,
            sheds,
        }
    }
}

impl Metrics {
    pub fn count_ingest(&self, counts: &tollgate_store::state::BatchCounts) {
        for (outcome, n) in [
            ("written", counts.written),
            ("duplicate", counts.duplicate),
            ("quarantined", counts.quarantined),
        ] {
            self.ingest_rows
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.into(),
                })
                .inc_by(u64::try_from(n).unwrap_or(0));
        }
    }
}

/// Counts and times every request under its matched route (never the raw path,
/// which would make a series per id).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Extension methods are any token a client likes: one label for them all,
    // or each would make its own series.
    let method = LabelValue::of(match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m,
        _ => "other",
    });
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || LabelValue::of("unmatched"),
        |p| LabelValue::of(p.as_str()),
    );
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

/// `GET /metrics`, unauthenticated as Prometheus scrapes are; it says nothing a
/// key would protect beyond budget names and states.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, content_type = "text/plain", body = String, description = "Prometheus text format"),
        (status = 500, body = crate::error::ErrorBody)))]
pub async fn scrape(State(state): State<AppState>) -> Result<Response> {
    let db = &state.store.db;
    let budgets = db.budgets().await?;
    let states = db.budget_states().await?;
    let metrics = &state.metrics;
    metrics.budget_state.clear();
    metrics.budget_used.clear();
    for budget in &budgets {
        let Some(current) = states.iter().find(|s| s.budget_id == budget.id) else {
            continue;
        };
        for state in BudgetState::ALL {
            metrics
                .budget_state
                .get_or_create(&BudgetLabels {
                    budget: LabelValue::of(&budget.budget.name),
                    state: state.as_str().into(),
                })
                .set(i64::from(current.state == *state));
        }
        let used = tollgate_reports::budget_eval::used_fraction(&budget.budget, current);
        metrics
            .budget_used
            .get_or_create(&BudgetName {
                budget: LabelValue::of(&budget.budget.name),
            })
            .set(used);
    }
    metrics.alerts.clear();
    let open = db.open_alert_counts().await?;
    for rule in db.alert_rules().await? {
        for state in [EpisodeState::Pending, EpisodeState::Firing] {
            let n = open
                .iter()
                .find(|(r, s, _)| *r == rule.name && *s == state)
                .map_or(0, |(_, _, n)| *n);
            metrics
                .alerts
                .get_or_create(&RuleLabels {
                    rule: LabelValue::of(&rule.name),
                    state: state.as_str().into(),
                })
                .set(n);
        }
    }
    metrics.sheds.set(db.alert_sheds(true).await?.len() as i64);
    metrics
        .sql_running
        .set(tollgate_store::bounded_sql::running() as i64);
    let fresh = state
        .freshness
        .view()
        .with_committed(db.manifest_watermark().await?);
    metrics.committed_watermark.set(fresh.committed_watermark);
    metrics.derived_watermark.set(fresh.derived_watermark);
    metrics.derived_lag.set(fresh.lag_ms as f64 / 1e3);
    metrics.derive_cycle.set(fresh.last_cycle_ms as f64 / 1e3);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry)
        .map_err(|e| AppError::fault("encoding metrics", e))?;
    let text = prometheus_text(&text);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The OpenMetrics text the registry writes, as Prometheus' text format 0.0.4
/// (what the `Content-Type` says and `promtool check metrics` reads): a
/// counter's HELP and TYPE name its `_total` series, and there is no `# EOF`
/// or `# UNIT`.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_cannot_forge_a_series() {
        let metrics = Metrics::default();
        let name = "inj\"} 1\nfake_metric{a=\"b\"} 42\n# x\\";
        metrics
            .budget_used
            .get_or_create(&BudgetName {
                budget: LabelValue::of(name),
            })
            .set(0.5);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        let text = prometheus_text(&text);
        assert!(
            text.lines()
                .all(|l| !l.starts_with("fake_metric") && !l.starts_with("# x")),
            "{text}"
        );
        assert!(
            text.contains(r#"tollgate_budget_used_ratio{budget="inj\"} 1\nfake_metric{a=\"b\"} 42\n# x\\"} 0.5"#),
            "{text}"
        );
    }

    #[test]
    fn counters_are_named_by_their_total_series() {
        let text = "# HELP a_requests Requests.\n# TYPE a_requests counter\n\
                    a_requests_total{x=\"1\"} 2\n# HELP b Gauge.\n# TYPE b gauge\nb 1\n# EOF\n";
        assert_eq!(
            super::prometheus_text(text),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\n\
             a_requests_total{x=\"1\"} 2\n# HELP b Gauge.\n# TYPE b gauge\nb 1\n"
        );
    }
}
