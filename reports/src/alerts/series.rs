//! Operational measures per hour and label set, read from the hourly rollups:
//! the three 429 sources, errors, circuit-breaker trips, tokens, and mergeable
//! latency sketches, from which every metric a rule names is computed over any
//! window.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tollgate_store::derived::{RollupListing, RollupPart, Rollups};
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
    pub hours: BTreeMap<i64, Arc<HashMap<Labels, Measures>>>,
}

/// One rollup file's projection: each of its times' measures per label set.
type Projected = Arc<Vec<(i64, Arc<HashMap<Labels, Measures>>)>>;

/// Projections of rollup files, by file and projection. A file never changes
/// (a recomputed hour is a new file), so a projection is kept until the bound
/// is reached: an evaluation after a push projects only the hours it touched.
#[derive(Debug, Default)]
pub struct ProjectionCache {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    files: HashMap<Arc<str>, HashMap<String, Projected>>,
    count: usize,
}

/// Rollup files as rules, reports and pages project them, kept across calls:
/// a live evaluation after a push projects the hours the push touched, and
/// reads every other hour of its look-back (up to five weeks) from here.
pub static PROJECTIONS: std::sync::LazyLock<ProjectionCache> =
    std::sync::LazyLock::new(ProjectionCache::default);

/// Files' projections kept at most (then all are dropped and made again).
const PROJECTIONS_KEPT: usize = 200_000;

impl ProjectionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, path: &str, key: &str) -> Option<Projected> {
        self.lock().files.get(path)?.get(key).cloned()
    }

    fn put(&self, path: &str, key: &str, projected: Projected) {
        let mut kept = self.lock();
        if kept.count >= PROJECTIONS_KEPT {
            *kept = Kept::default();
        }
        let previous = kept
            .files
            .entry(Arc::from(path))
            .or_default()
            .insert(key.to_owned(), projected);
        if previous.is_none() {
            kept.count += 1;
        }
    }
}

/// Projections taken out of a [`ProjectionCache`] as a range was listed: a
/// file left undecoded because its projections were kept is projected from
/// here, even if the cache is cleared before it is used.
#[derive(Debug, Default)]
pub struct Pinned {
    files: HashMap<String, HashMap<String, Projected>>,
}

impl Pinned {
    /// Takes the file's projections for every one of `keys` from `cache`;
    /// false, taking nothing, if any is missing (the file is then decoded).
    pub fn take(&mut self, cache: &ProjectionCache, path: &str, keys: &[String]) -> bool {
        let found: Option<HashMap<String, Projected>> = {
            let kept = cache.lock();
            let Some(file) = kept.files.get(path) else {
                return false;
            };
            keys.iter()
                .map(|key| Some((key.clone(), Arc::clone(file.get(key.as_str())?))))
                .collect()
        };
        let Some(found) = found else {
            return false;
        };
        self.files.insert(path.to_owned(), found);
        true
    }

    fn get(&self, path: &str, key: &str) -> Option<&Projected> {
        self.files.get(path)?.get(key)
    }
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

impl Projection<'_> {
    /// What tells this projection from another, for [`ProjectionCache`].
    pub fn key(&self) -> String {
        let mut ptu: Vec<&String> = self.ptu_backends.iter().collect();
        ptu.sort();
        format!(
            "{:?}|{:?}|{}|{:?}|{:?}",
            self.scope, self.group_by, self.sketches, self.slow_above_ms, ptu
        )
    }
}

fn floor_hour(us: i64) -> i64 {
    us.div_euclid(STEP_US) * STEP_US
}

impl Series {
    /// Projects rows (read twice: a slice, a `&Vec` or `&Rollups`).
    pub fn project<'r>(
        rows: impl IntoIterator<Item = &'r RollupRow, IntoIter: Clone>,
        p: &Projection,
    ) -> Series {
        Series {
            hours: project_rows(rows.into_iter(), p)
                .into_iter()
                .map(|(at, groups)| (at, Arc::new(groups)))
                .collect(),
        }
    }

    /// [`Series::project`] file by file, each file's projection taken from
    /// `cache` when it was made before: the same series, at the cost of the
    /// files not seen yet.
    pub fn project_cached(rollups: &Rollups, p: &Projection, cache: &ProjectionCache) -> Series {
        let key = p.key();
        let mut series = Series::default();
        for part in rollups.parts() {
            let whole = part.is_whole();
            series.merge(&project_part(part, whole, p, &key, cache));
        }
        series
    }

    /// [`Series::project_cached`] over the files `listing` names: each from
    /// `pinned` or, where nothing was pinned, from `decoded` (through `cache`).
    /// The projection's key must be one the pinning asked for.
    pub fn project_listed(
        listing: &RollupListing,
        decoded: &Rollups,
        pinned: &Pinned,
        p: &Projection,
        cache: &ProjectionCache,
    ) -> Series {
        let key = p.key();
        let parts: HashMap<&str, RollupPart<'_>> = decoded.parts().map(|r| (r.path, r)).collect();
        let mut series = Series::default();
        for file in &listing.files {
            let whole = listing.is_whole(file);
            let kept = whole.then(|| pinned.get(&file.path, &key)).flatten();
            let projected = match (kept, parts.get(file.path.as_str())) {
                (Some(projected), _) => Arc::clone(projected),
                (None, Some(part)) => project_part(*part, whole, p, &key, cache),
                (None, None) => {
                    // Only a projection the pinning was not asked for.
                    tracing::error!(path = %file.path, key, "a rollup file was neither pinned nor read");
                    continue;
                }
            };
            series.merge(&projected);
        }
        series
    }

    fn merge(&mut self, projected: &Projected) {
        for (at, groups) in projected.iter() {
            match self.hours.entry(*at) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(Arc::clone(groups));
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    let merged = Arc::make_mut(slot.get_mut());
                    for (labels, m) in groups.iter() {
                        merged.entry(labels.clone()).or_default().add(m);
                    }
                }
            }
        }
    }

    /// Every label set's measures summed over `[from_us, to_us)`.
    pub fn window(&self, from_us: i64, to_us: i64) -> HashMap<Labels, Measures> {
        let mut sum: HashMap<Labels, Measures> = HashMap::new();
        for groups in self.hours.range(from_us..to_us).map(|(_, g)| g) {
            for (labels, m) in groups.iter() {
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

/// One file's projection, from `cache` or made (and kept when the file is
/// whole in the range read).
fn project_part(
    part: RollupPart<'_>,
    whole: bool,
    p: &Projection,
    key: &str,
    cache: &ProjectionCache,
) -> Projected {
    if whole && let Some(kept) = cache.get(part.path, key) {
        return kept;
    }
    let made: Projected = Arc::new(
        project_rows(part.iter(), p)
            .into_iter()
            .map(|(at, groups)| (at, Arc::new(groups)))
            .collect(),
    );
    if whole {
        cache.put(part.path, key, Arc::clone(&made));
    }
    made
}

/// Measures per time and label set of `rows` (read twice). A deployment
/// a provisioned (PTU) backend served in an hour is a PTU deployment in that
/// hour: its traffic elsewhere in the hour is spillover.
fn project_rows<'r>(
    rows: impl Iterator<Item = &'r RollupRow> + Clone,
    p: &Projection,
) -> BTreeMap<i64, HashMap<Labels, Measures>> {
    let mut hours: BTreeMap<i64, HashMap<Labels, Measures>> = BTreeMap::new();
    let on_ptu: HashSet<(i64, &str)> = rows
        .clone()
        .filter(|r| {
            r.usage
                .backend
                .as_ref()
                .is_some_and(|b| p.ptu_backends.contains(b.as_str()))
        })
        .filter_map(|r| Some((floor_hour(r.usage.hour_us), r.usage.deployment?.as_str())))
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
        let hour = floor_hour(row.usage.hour_us);
        let ptu_deployment = row
            .usage
            .deployment
            .is_some_and(|d| on_ptu.contains(&(hour, d.as_str())));
        let on_ptu_backend = row
            .usage
            .backend
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
        hours
            .entry(row.usage.hour_us)
            .or_default()
            .entry(labels)
            .or_default()
            .add(&measures);
    }
    hours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_projections_outlive_a_cleared_cache() {
        let cache = ProjectionCache::default();
        let projected: Projected = Arc::new(vec![(7, Arc::new(HashMap::new()))]);
        cache.put("f1", "k1", Arc::clone(&projected));
        cache.put("f1", "k2", Arc::clone(&projected));
        let keys = |k: &[&str]| k.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let mut pinned = Pinned::default();
        assert!(
            !pinned.take(&cache, "f1", &keys(&["k1", "k3"])),
            "k3 missing"
        );
        assert!(pinned.get("f1", "k1").is_none(), "nothing taken");
        assert!(!pinned.take(&cache, "f2", &keys(&["k1"])), "no such file");
        assert!(pinned.take(&cache, "f1", &keys(&["k1", "k2"])));
        // The cache is cleared (its bound reached) before the pins are used.
        *cache.lock() = Kept::default();
        assert!(cache.get("f1", "k1").is_none());
        assert_eq!(pinned.get("f1", "k1"), Some(&projected));
        assert_eq!(pinned.get("f1", "k2"), Some(&projected));
    }

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
