//! Operational measures per hour and label set, read from the hourly rollups:
//! the three 429 sources, errors, circuit-breaker trips, tokens, and mergeable
//! latency sketches, from which every metric a rule names is computed over any
//! window.

use std::collections::{BTreeMap, HashMap};

use tollgate_store::sketch::LatencySketch;
use tollgate_store::state::RollupRow;

/// The evaluation step: the rollups' resolution.
pub const STEP_US: i64 = 3_600_000_000;

/// The dimensions a rule can select on and group by.
pub const DIMENSIONS: [&str; 9] = [
    "subscription",
    "product",
    "agent",
    "api",
    "gateway",
    "backend",
    "deployment",
    "model",
    "region",
];
/// The dimensions the minute tier keeps (`tollgate_store::rollup`).
pub const MINUTE_DIMENSIONS: [&str; 6] = [
    "subscription",
    "product",
    "gateway",
    "backend",
    "deployment",
    "region",
];
pub const COUNTS: [&str; 11] = [
    "requests",
    "throttled",
    "client_429",
    "backend_429",
    "quota_403",
    "errors",
    "breaker_trips",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "cache_hits",
];
pub const RATES: [&str; 7] = [
    "throttled_rate",
    "client_429_rate",
    "backend_429_rate",
    "quota_403_rate",
    "error_rate",
    "cache_hit_rate",
    "spillover_share",
];
pub const LATENCIES: [&str; 6] = [
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "backend_latency_p50",
    "backend_latency_p95",
    "backend_latency_p99",
];

/// What is wrong with naming these dimensions, one problem each.
pub fn dimension_problems<'a>(
    field: &str,
    dimensions: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    dimensions
        .into_iter()
        .filter(|d| !DIMENSIONS.contains(&d.as_str()))
        .map(|d| {
            format!(
                "{field}: no dimension {d:?} (one of {})",
                DIMENSIONS.join(", ")
            )
        })
        .collect()
}

/// What is wrong with `metric` where one of `class` (described as `what`) is
/// asked for, if anything.
pub fn metric_problem(metric: &str, class: &[&str], what: &str) -> Option<String> {
    (!class.contains(&metric)).then(|| {
        format!(
            "metric: {metric:?} is not {what} (one of {})",
            class.join(", ")
        )
    })
}

/// Every metric a series can be asked for.
pub fn all_metrics() -> Vec<&'static str> {
    COUNTS
        .iter()
        .chain(&RATES)
        .chain(&LATENCIES)
        .copied()
        .collect()
}

/// A label set: dimension name to value (`""` where the traffic had none).
pub type Labels = BTreeMap<String, String>;

/// What one label set did in one hour (or a window of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measures {
    pub requests: i64,
    pub status_5xx: i64,
    pub client_429: i64,
    pub backend_429: i64,
    pub quota_403: i64,
    pub breaker_trips: i64,
    pub cache_hits: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Requests slower than the SLO's latency bound, when one is asked for.
    pub slow: i64,
    /// Requests for deployments a provisioned (PTU) backend serves, and those
    /// of them another backend served: PTU spillover.
    pub ptu_deployment_requests: i64,
    pub spilled: i64,
    pub latency: LatencySketch,
    pub backend_latency: LatencySketch,
}

impl Measures {
    pub fn add(&mut self, other: &Measures) {
        self.requests = self.requests.saturating_add(other.requests);
        self.status_5xx = self.status_5xx.saturating_add(other.status_5xx);
        self.client_429 = self.client_429.saturating_add(other.client_429);
        self.backend_429 = self.backend_429.saturating_add(other.backend_429);
        self.quota_403 = self.quota_403.saturating_add(other.quota_403);
        self.breaker_trips = self.breaker_trips.saturating_add(other.breaker_trips);
        self.cache_hits = self.cache_hits.saturating_add(other.cache_hits);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.slow = self.slow.saturating_add(other.slow);
        self.ptu_deployment_requests = self
            .ptu_deployment_requests
            .saturating_add(other.ptu_deployment_requests);
        self.spilled = self.spilled.saturating_add(other.spilled);
        self.latency.merge(&other.latency);
        self.backend_latency.merge(&other.backend_latency);
    }

    /// The value of a metric ([`COUNTS`], [`RATES`], [`LATENCIES`]); `None`
    /// when there is nothing to measure (a rate of no requests, a percentile of
    /// no latencies).
    pub fn value(&self, metric: &str) -> Option<f64> {
        let count = |name: &str| -> Option<i64> {
            Some(match name {
                "requests" => self.requests,
                "throttled" => self.client_429 + self.backend_429 + self.quota_403,
                "client_429" => self.client_429,
                "backend_429" => self.backend_429,
                "quota_403" => self.quota_403,
                "errors" => self.status_5xx,
                "breaker_trips" => self.breaker_trips,
                "prompt_tokens" => self.prompt_tokens,
                "completion_tokens" => self.completion_tokens,
                "tokens" => self.prompt_tokens.saturating_add(self.completion_tokens),
                "cache_hits" => self.cache_hits,
                _ => return None,
            })
        };
        if let Some(n) = count(metric) {
            return Some(n as f64);
        }
        if metric == "spillover_share" {
            return (self.ptu_deployment_requests > 0)
                .then(|| self.spilled as f64 / self.ptu_deployment_requests as f64);
        }
        if let Some(numerator) = metric.strip_suffix("_rate") {
            let numerator = if numerator == "error" {
                "errors"
            } else {
                numerator
            };
            let n = count(numerator)?;
            return (self.requests > 0).then(|| n as f64 / self.requests as f64);
        }
        let (sketch, q) = match metric.rsplit_once("_p") {
            Some(("latency", q)) => (&self.latency, q),
            Some(("backend_latency", q)) => (&self.backend_latency, q),
            _ => return None,
        };
        let q: f64 = q.parse().ok()?;
        sketch.quantile(q / 100.0)
    }

    /// Failed requests by an SLO's definition: 5xx, 429s as `count_429` says,
    /// and the slow ones.
    pub fn bad(&self, count_429: &str) -> i64 {
        let throttled = match count_429 {
            "all" => self.client_429 + self.backend_429,
            "backend" => self.backend_429,
            _ => 0,
        };
        (self.status_5xx + throttled + self.slow).min(self.requests)
    }
}

/// Measures per hour and label set for one rule: its scope applied, its
/// dimensions grouped.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub hours: BTreeMap<i64, HashMap<Labels, Measures>>,
}

/// How a rule reads the rollups.
#[derive(Debug)]
pub struct Projection<'a> {
    pub scope: &'a BTreeMap<String, Vec<String>>,
    pub group_by: &'a [String],
    /// Decode the latency sketches (only latency metrics need them).
    pub sketches: bool,
    /// Count requests slower than this (an SLO's latency bound).
    pub slow_above_ms: Option<f64>,
    /// The provisioned (PTU) backends, for the spillover share.
    pub ptu_backends: &'a std::collections::HashSet<String>,
}

/// The backends whose deployment type is provisioned throughput.
pub fn ptu_backends(
    rows: &[tollgate_store::state::BackendRow],
) -> std::collections::HashSet<String> {
    rows.iter()
        .filter(|b| b.deployment_type.contains("Provisioned"))
        .map(|b| b.backend.clone())
        .collect()
}

fn dimension<'r>(row: &'r RollupRow, name: &str) -> Option<&'r str> {
    let u = &row.usage;
    match name {
        "subscription" => u.subscription.as_deref(),
        "product" => u.product.as_deref(),
        "agent" => u.agent.as_deref(),
        "api" => u.api.as_deref(),
        "gateway" => u.gateway_id.as_deref(),
        "backend" => u.backend.as_deref(),
        "deployment" => u.deployment.as_deref(),
        "model" => u.model.as_deref(),
        "region" => row.region.as_deref(),
        _ => None,
    }
}

impl Series {
    /// `rows` is read twice: a slice, a `&Vec` or `&Rollups`.
    pub fn project<'r>(
        rows: impl IntoIterator<Item = &'r RollupRow> + Copy,
        p: &Projection,
    ) -> Series {
        let mut series = Series::default();
        // Deployments a PTU backend served in these hours: their traffic
        // elsewhere is spillover.
        let on_ptu: std::collections::HashSet<&str> = rows
            .into_iter()
            .filter(|r| {
                r.usage
                    .backend
                    .as_ref()
                    .is_some_and(|b| p.ptu_backends.contains(b.as_str()))
            })
            .filter_map(|r| r.usage.deployment.as_deref())
            .collect();
        for row in rows {
            let selected = p.scope.iter().all(|(name, values)| {
                dimension(row, name).is_some_and(|v| values.iter().any(|w| w == v))
            });
            if !selected {
                continue;
            }
            let labels: Labels = p
                .group_by
                .iter()
                .map(|d| (d.clone(), dimension(row, d).unwrap_or("").to_owned()))
                .collect();
            let decode = |bytes: &[u8]| LatencySketch::decode(bytes).unwrap_or_default();
            let latency = if p.sketches || p.slow_above_ms.is_some() {
                decode(&row.latency_sketch)
            } else {
                LatencySketch::new()
            };
            let ptu_deployment = row
                .usage
                .deployment
                .as_deref()
                .is_some_and(|d| on_ptu.contains(d));
            let on_ptu_backend = row
                .usage
                .backend
                .as_ref()
                .is_some_and(|b| p.ptu_backends.contains(b.as_str()));
            let measures = Measures {
                ptu_deployment_requests: if ptu_deployment {
                    row.usage.requests
                } else {
                    0
                },
                spilled: if ptu_deployment && !on_ptu_backend {
                    row.usage.requests
                } else {
                    0
                },
                requests: row.usage.requests,
                status_5xx: row.status_5xx,
                client_429: row.client_429,
                backend_429: row.backend_429,
                quota_403: row.quota_403,
                breaker_trips: row.breaker_trips,
                cache_hits: row.usage.cache_hits,
                prompt_tokens: row.usage.prompt_tokens,
                completion_tokens: row.usage.completion_tokens,
                slow: p
                    .slow_above_ms
                    .map_or(0, |ms| latency.count_above(ms) as i64),
                backend_latency: if p.sketches {
                    decode(&row.backend_latency_sketch)
                } else {
                    LatencySketch::new()
                },
                latency: if p.sketches {
                    latency
                } else {
                    LatencySketch::new()
                },
            };
            series
                .hours
                .entry(row.usage.hour_us)
                .or_default()
                .entry(labels)
                .or_default()
                .add(&measures);
        }
        series
    }

    /// Every label set's measures summed over `[from_us, to_us)`.
    pub fn window(&self, from_us: i64, to_us: i64) -> HashMap<Labels, Measures> {
        let mut sum: HashMap<Labels, Measures> = HashMap::new();
        for groups in self.hours.range(from_us..to_us).map(|(_, g)| g) {
            for (labels, m) in groups {
                sum.entry(labels.clone()).or_default().add(m);
            }
        }
        sum
    }

    /// One label set's measures in one hour.
    pub fn at(&self, hour_us: i64, labels: &Labels) -> Option<&Measures> {
        self.hours.get(&hour_us).and_then(|g| g.get(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentiles_come_from_the_measures() {
        let mut m = Measures {
            requests: 200,
            client_429: 10,
            backend_429: 6,
            quota_403: 4,
            status_5xx: 2,
            ..Measures::default()
        };
        for ms in 1..=100 {
            m.latency.add(f64::from(ms) * 100.0);
        }
        assert_eq!(m.value("throttled_rate"), Some(0.1));
        assert_eq!(m.value("backend_429_rate"), Some(0.03));
        assert_eq!(m.value("error_rate"), Some(0.01));
        assert_eq!(m.value("throttled"), Some(20.0));
        let p95 = m.value("latency_p95").unwrap();
        assert!((p95 - 9500.0).abs() / 9500.0 < 0.02, "{p95}");
        assert_eq!(m.value("backend_latency_p95"), None);
        assert_eq!(Measures::default().value("error_rate"), None);
        assert_eq!(m.bad("backend"), 8);
        assert_eq!(m.bad("all"), 18);
        assert_eq!(m.bad("none"), 2);
    }
}
