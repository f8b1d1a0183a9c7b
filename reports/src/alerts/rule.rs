//! Alert rules as written (config TOML or API JSON) and as checked: every
//! problem named by field, durations parsed, the metric checked against the
//! kind, and the defaults the seeds ask for.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::series::{COUNTS, LATENCIES, RATES, all_metrics, dimension_problems, metric_problem};
use crate::{ReportsError, Result};

/// A rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// `ratio_above`, `percentile_above`, `count_above`, `burn_rate`, `anomaly`
    /// or `budget_used_above`.
    pub kind: String,
    /// What is measured: a rate (`throttled_rate`, `client_429_rate`,
    /// `backend_429_rate`, `quota_403_rate`, `error_rate`, `spillover_share`), a
    /// latency percentile
    /// (`latency_p95`, `backend_latency_p99`, ...) or a count (`requests`,
    /// `throttled`, `breaker_trips`, `prompt_tokens`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Fires above this value (a share for rates, milliseconds for latencies, a
    /// used share of the quota for budgets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The span each evaluation looks back over (default `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// How long the condition must hold before the alert fires (default `0s`).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// How long a firing alert stays firing after its condition stops holding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    /// Below this many requests in the window the condition does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<i64>,
    /// Only traffic whose dimensions take one of these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scope: BTreeMap<String, Vec<String>>,
    /// One alert instance per combination of these dimensions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `summary`, `description`, `runbook_url`, ...; `{{ value }}` and
    /// `{{ labels.NAME }}` are filled in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ShedSpec>,
}

/// An SLO over 30 days: a request is good unless it failed (5xx, and 429s as
/// `count_429` says) or, with `latency_ms`, took longer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// The share of good requests promised, e.g. `0.995`.
    pub objective: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Which 429s are failures: `none`, `backend` (default: capacity the
    /// platform owes) or `all`.
    #[serde(default = "default_count_429")]
    pub count_429: String,
}

fn default_count_429() -> String {
    "backend".into()
}

/// The seasonal baseline: the same hour of the week over the last `weeks`
/// weeks (and the hours either side), judged by a robust z-score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalySpec {
    #[serde(default = "default_z")]
    pub z: f64,
    #[serde(default = "default_weeks")]
    pub weeks: u32,
    /// Fewer baseline values than this: no judgement.
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// Evaluations in a row the value must be anomalous before firing.
    #[serde(default = "default_consecutive")]
    pub consecutive: u32,
    /// Only values above the baseline count (default), or below too.
    #[serde(default)]
    pub both_directions: bool,
}

/// A variance rule groups by the reconciliation's dimensions and takes no scope.
fn variance_dimension_problems(spec: &RuleSpec) -> Vec<String> {
    let mut problems: Vec<String> = spec
        .group_by
        .iter()
        .filter(|d| !VARIANCE_DIMENSIONS.contains(&d.as_str()))
        .map(|d| {
            format!(
                "group_by: {d:?} is not one of {} (kind variance_above)",
                VARIANCE_DIMENSIONS.join(", ")
            )
        })
        .collect();
    if !spec.scope.is_empty() {
        problems.push("scope: kind variance_above takes none".into());
    }
    problems
}

fn default_z() -> f64 {
    6.0
}
fn default_weeks() -> u32 {
    4
}
fn default_min_samples() -> usize {
    4
}
fn default_consecutive() -> u32 {
    2
}

/// Load shedding: while the rule fires, the tokens-per-minute limits of the
/// budgets it names are multiplied by `factor`; restored when it resolves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShedSpec {
    /// `shed` (the one action there is).
    pub kind: String,
    /// The budgets' scope: `subscription`, `product`, `cost_centre` or `agent`.
    pub scope: String,
    /// Their scope ids; empty for every budget of the scope.
    #[serde(default)]
    pub ids: Vec<String>,
    /// In `(0, 1)`: the share of the limit left.
    pub factor: f64,
}

/// What a checked rule measures and when it holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `metric` above `threshold`: a rate, a latency percentile or a count.
    Above {
        metric: String,
        threshold: f64,
    },
    BurnRate(SloSpec),
    Anomaly {
        metric: String,
        spec: AnomalySpec,
    },
    BudgetUsedAbove {
        threshold: f64,
    },
    /// A day's invoice differs from the estimate by more than `threshold` (a
    /// share of the estimate), per `group_by` of resource and model
    /// (`docs/reconciliation.md`): judged on the days a cost export covers.
    VarianceAbove {
        threshold: f64,
    },
}

/// A rule checked, its durations in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub spec: RuleSpec,
    pub condition: Condition,
    pub window_us: i64,
    pub for_us: i64,
    pub keep_firing_for_us: i64,
    pub min_requests: i64,
}

/// The longest window, `for` or `keep_firing_for` a rule may ask for.
const MAX_DURATION: Duration = Duration::from_secs(31 * 24 * 3600);

const KINDS: [&str; 7] = [
    "ratio_above",
    "percentile_above",
    "count_above",
    "burn_rate",
    "anomaly",
    "budget_used_above",
    "variance_above",
];

/// What a `variance_above` rule may group by: the reconciliation's dimensions.
pub const VARIANCE_DIMENSIONS: [&str; 2] = ["resource", "model"];

impl RuleSpec {
    /// Checks the rule whole: every problem, each naming its field.
    pub fn check(&self) -> Result<Rule> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() || self.name.len() > 100 {
            problems.push("name: 1 to 100 characters".to_owned());
        }
        let [window_us, for_us, keep_firing_for_us] = self.durations(&mut problems);
        if self.kind == "variance_above" {
            problems.extend(variance_dimension_problems(self));
        } else {
            problems.extend(dimension_problems(
                "scope/group_by",
                self.scope.keys().chain(&self.group_by),
            ));
        }
        let condition = self.condition(&mut problems);
        problems.extend(self.action_problems());
        if let Some(min) = self.min_requests
            && min < 0
        {
            problems.push("min_requests: not negative".into());
        }
        if !problems.is_empty() {
            return Err(ReportsError::InvalidRule {
                name: self.name.clone(),
                problems,
            });
        }
        let mut for_us = for_us;
        if let Condition::Anomaly { spec, .. } = &condition {
            // N evaluations in a row: the condition held N steps.
            for_us = for_us.max(i64::from(spec.consecutive) * super::series::STEP_US);
        }
        Ok(Rule {
            spec: self.clone(),
            condition,
            window_us,
            for_us,
            keep_firing_for_us,
            min_requests: self.min_requests.unwrap_or(0),
        })
    }

    /// `window`, `for` and `keep_firing_for` in microseconds.
    fn durations(&self, problems: &mut Vec<String>) -> [i64; 3] {
        let mut duration = |field: &str, text: &Option<String>, default: Duration| match text
            .as_deref()
            .map(humantime::parse_duration)
        {
            None => default.as_micros() as i64,
            Some(Ok(d)) if d <= MAX_DURATION => d.as_micros() as i64,
            Some(Ok(_)) => {
                problems.push(format!("{field}: at most 31 days"));
                0
            }
            Some(Err(e)) => {
                problems.push(format!("{field}: {e} (write e.g. 30s, 5m, 1h, 3d)"));
                0
            }
        };
        let window_us = duration("window", &self.window, Duration::from_secs(3600));
        let for_us = duration("for", &self.for_, Duration::ZERO);
        let keep_firing_for_us = duration("keep_firing_for", &self.keep_firing_for, Duration::ZERO);
        if self.window.is_some()
            && (window_us < super::series::STEP_US || window_us % super::series::STEP_US != 0)
        {
            problems.push("window: whole hours, at least 1h (the rollups' resolution)".to_owned());
        }
        [window_us, for_us, keep_firing_for_us]
    }

    /// The condition `kind` names, with what that kind needs.
    fn condition(&self, problems: &mut Vec<String>) -> Condition {
        let metric = self.metric.clone().unwrap_or_default();
        let threshold = self.threshold.filter(|t| t.is_finite());
        let kind = self.kind.as_str();
        let need_threshold = |problems: &mut Vec<String>| {
            threshold.unwrap_or_else(|| {
                problems.push(format!("threshold: a number is required by kind {kind}"));
                0.0
            })
        };
        let metric_of = |class: &[&str], what: &str, problems: &mut Vec<String>| {
            problems.extend(metric_problem(&metric, class, what));
            metric.clone()
        };
        match kind {
            "ratio_above" => {
                let threshold = need_threshold(problems);
                let metric = metric_of(&RATES, "a rate", problems);
                if !(0.0..=1.0).contains(&threshold) {
                    problems.push("threshold: a share between 0 and 1".to_owned());
                }
                Condition::Above { metric, threshold }
            }
            "percentile_above" => {
                let threshold = need_threshold(problems);
                let metric = metric_of(&LATENCIES, "a latency percentile", problems);
                Condition::Above { metric, threshold }
            }
            "count_above" => {
                let threshold = need_threshold(problems);
                let metric = metric_of(&COUNTS, "a count", problems);
                Condition::Above { metric, threshold }
            }
            "burn_rate" => self.burn_rate(problems),
            "anomaly" => {
                let metric = metric_of(&all_metrics(), "a metric", problems);
                Condition::Anomaly {
                    metric,
                    spec: self.anomaly_spec(problems),
                }
            }
            "budget_used_above" => Condition::BudgetUsedAbove {
                threshold: need_threshold(problems),
            },
            "variance_above" => {
                let threshold = need_threshold(problems);
                if !(threshold > 0.0 && threshold <= 10.0) {
                    problems.push("threshold: a share of the estimate above 0 (0.05 is 5%)".into());
                }
                Condition::VarianceAbove { threshold }
            }
            other => {
                problems.push(format!(
                    "kind: {other:?} is not one of {}",
                    KINDS.join(", ")
                ));
                Condition::BudgetUsedAbove { threshold: 0.0 }
            }
        }
    }

    fn burn_rate(&self, problems: &mut Vec<String>) -> Condition {
        let Some(slo) = &self.slo else {
            problems.push("slo: required by kind burn_rate".into());
            return Condition::BudgetUsedAbove { threshold: 0.0 };
        };
        if !(slo.objective > 0.0 && slo.objective < 1.0)
            || slo
                .latency_ms
                .is_some_and(|ms| !(ms > 0.0 && ms.is_finite()))
        {
            problems.push("slo: objective strictly between 0 and 1, latency_ms positive".into());
        }
        if !["none", "backend", "all"].contains(&slo.count_429.as_str()) {
            problems.push("slo.count_429: one of none, backend, all".into());
        }
        Condition::BurnRate(slo.clone())
    }

    fn anomaly_spec(&self, problems: &mut Vec<String>) -> AnomalySpec {
        let spec = self.anomaly.clone().unwrap_or(AnomalySpec {
            z: default_z(),
            weeks: default_weeks(),
            min_samples: default_min_samples(),
            consecutive: default_consecutive(),
            both_directions: false,
        });
        if !(spec.z > 0.0 && spec.z.is_finite()) {
            problems.push("anomaly.z: a positive number".into());
        }
        if !(1..=12).contains(&spec.weeks) {
            problems.push("anomaly.weeks: 1 to 12".into());
        }
        if !(1..=168).contains(&spec.consecutive) {
            problems.push("anomaly.consecutive: 1 to 168".into());
        }
        spec
    }

    fn action_problems(&self) -> Vec<String> {
        let Some(action) = &self.action else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        if action.kind != "shed" {
            problems.push(format!("action.kind: {:?} is not shed", action.kind));
        }
        if action.scope.parse::<tollgate_store::BudgetScope>().is_err() {
            problems.push(format!(
                "action.scope: one of {}",
                tollgate_store::BudgetScope::listed()
            ));
        }
        if !(action.factor > 0.0 && action.factor < 1.0) {
            problems.push("action.factor: strictly between 0 and 1".into());
        }
        problems
    }
}

/// Rules as the config file writes them: `[[alerts.rule]]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    #[serde(default)]
    pub rule: Vec<RuleSpec>,
}

/// The rules shipped by default, from the seeds' monitoring table: 429 rate
/// above 5%, p95 latency above 5 s, any circuit-breaker trip, token use above
/// 80% of quota, prompt and completion token anomalies; and an availability SLO
/// whose burn-rate alerts page.
pub fn defaults() -> Vec<RuleSpec> {
    const DEFAULTS: &str = include_str!("default_rules.toml");
    match toml::from_str::<RulesFile>(DEFAULTS) {
        Ok(file) => file.rule,
        Err(e) => {
            tracing::error!(error = %e, "the shipped default rules do not parse");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_check() {
        let rules = defaults();
        assert!(rules.len() >= 6, "{rules:?}");
        for rule in rules {
            rule.check().unwrap();
        }
    }

    /// Checks the rule `spec` (JSON) and compares its problems with `expect`
    /// (empty: the rule checks).
    fn check(spec: serde_json::Value, expect: &[&str]) {
        let spec: RuleSpec = serde_json::from_value(spec).unwrap();
        let problems = match spec.check() {
            Ok(_) => Vec::new(),
            Err(ReportsError::InvalidRule { problems, .. }) => problems,
            Err(e) => panic!("not a rule error: {e}"),
        };
        assert_eq!(problems, expect, "{spec:?}");
    }

    #[test]
    fn each_kind_asks_for_what_it_needs() {
        use serde_json::json;
        let rule = |fields: serde_json::Value| {
            let mut spec = json!({"name": "r", "kind": "count_above"});
            spec.as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            spec
        };
        check(
            rule(json!({"metric": "backend_429", "threshold": 5.0})),
            &[],
        );
        check(
            rule(json!({"metric": "backend_429"})),
            &["threshold: a number is required by kind count_above"],
        );
        check(
            rule(json!({"kind": "ratio_above", "metric": "error_rate", "threshold": 2.0})),
            &["threshold: a share between 0 and 1"],
        );
        check(
            rule(json!({"kind": "burn_rate"})),
            &["slo: required by kind burn_rate"],
        );
        check(
            rule(json!({"kind": "burn_rate", "slo": {"objective": 1.5, "count_429": "some"}})),
            &[
                "slo: objective strictly between 0 and 1, latency_ms positive",
                "slo.count_429: one of none, backend, all",
            ],
        );
        check(
            rule(json!({"kind": "anomaly", "metric": "requests",
                "anomaly": {"z": 0.0, "weeks": 13, "consecutive": 0}})),
            &[
                "anomaly.z: a positive number",
                "anomaly.weeks: 1 to 12",
                "anomaly.consecutive: 1 to 168",
            ],
        );
        check(
            rule(json!({"kind": "variance_above", "threshold": 0.0})),
            &["threshold: a share of the estimate above 0 (0.05 is 5%)"],
        );
        check(
            rule(json!({"kind": "budget_used_above", "threshold": 0.9,
                "action": {"kind": "cut", "scope": "team", "factor": 0.5}})),
            &[
                "action.kind: \"cut\" is not shed",
                "action.scope: one of subscription, product, cost_centre, agent",
            ],
        );
        check(
            rule(json!({"for": "40d", "window": "90m", "threshold": 1.0, "metric": "requests"})),
            &[
                "for: at most 31 days",
                "window: whole hours, at least 1h (the rollups' resolution)",
            ],
        );
    }

    #[test]
    fn every_problem_is_named_by_field() {
        let spec = RuleSpec {
            name: "bad".into(),
            kind: "ratio_above".into(),
            metric: Some("latency_p95".into()),
            threshold: Some(5.0),
            window: Some("ten minutes".into()),
            for_: None,
            keep_firing_for: None,
            min_requests: Some(-1),
            scope: BTreeMap::from([("colour".into(), vec!["red".into()])]),
            group_by: vec![],
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            slo: None,
            anomaly: None,
            action: Some(ShedSpec {
                kind: "shed".into(),
                scope: "product".into(),
                ids: vec![],
                factor: 2.0,
            }),
        };
        let ReportsError::InvalidRule { problems, .. } = spec.check().unwrap_err() else {
            panic!("not a rule error");
        };
        let text = problems.join("\n");
        for field in [
            "window:",
            "colour",
            "metric:",
            "threshold:",
            "action.factor",
            "min_requests",
        ] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
    }
}
