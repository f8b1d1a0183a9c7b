//! Evaluating the rules at data time: each hour of a period judged from the
//! rollups as they are now, episodes replaced for the period, transitions queued
//! for the receivers, and the load shedding firing rules ask for handed to the
//! budget views. The live evaluation starts again from the earliest hour rolled
//! up since it last ran, so a late batch for an old hour is judged at that hour.

use std::collections::{BTreeMap, HashMap};

use chrono::Datelike;

use tollgate_store::derived::{RollupListing, Rollups, Tier};
use tollgate_store::state::{AlertCursor, AlertEpisode, AlertEvaluation, AlertShed, AlertsRead};
use tollgate_store::{BudgetScope, EpisodeState, Store};

use super::anomaly::{robust_z, spread_floor};
use super::burn::{self, WINDOWS};
use super::engine::{self, Episode, Observation};
use super::payload;
use super::rule::{Condition, Rule, RuleSpec};
use super::series::{
    Labels, MINUTE_DIMENSIONS, Measures, PROJECTIONS, Pinned, Projection, STEP_US, Series,
};
use crate::Result;

const WEEK_US: i64 = 7 * 24 * STEP_US;
const MINUTE_US: i64 = 60_000_000;
/// How far before a re-evaluated period the state machine starts, at least,
/// so an episode open then is found again and continued rather than restarted
/// (longer where a rule's `for` and `keep_firing_for` ask for more).
const WARM_UP_US: i64 = 24 * STEP_US;
/// Transitions older than this before the newest data are stored, not sent:
/// a first evaluation or a backfill would otherwise page for all of history.
pub const NOTIFY_HORIZON_US: i64 = 24 * STEP_US;
/// How far past a past period its episodes are followed to their end.
const EXTEND_US: i64 = 7 * 24 * STEP_US;
/// The longest period one evaluation reads at once.
const CHUNK_US: i64 = 7 * 24 * STEP_US;

/// Where transitions go and how they link back.
#[derive(Debug, Clone, Default)]
pub struct AlertOptions {
    /// Receiver names to queue notifications for (`webhook`, `alertmanager`).
    pub receivers: Vec<String>,
    /// The server's public URL, for `externalURL` and `generatorURL`.
    pub external_url: String,
}

/// What an evaluation did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AlertRun {
    pub from_us: i64,
    pub to_us: i64,
    pub rules: usize,
    pub episodes: Vec<AlertEpisode>,
    pub notifications: usize,
    pub sheds_started: usize,
    pub sheds_ended: usize,
}

impl AlertRun {
    /// One line for people: the period judged and what came of it.
    pub fn describe(&self) -> String {
        let fired = self
            .episodes
            .iter()
            .filter(|e| e.fired_at.is_some())
            .count();
        let firing = self
            .episodes
            .iter()
            .filter(|e| e.state == EpisodeState::Firing)
            .count();
        format!(
            "{} rules judged from {} to {}: {fired} episodes fired ({firing} firing now), {} \
             notifications queued, load shedding {} started / {} ended",
            self.rules,
            payload::rfc3339(self.from_us),
            payload::rfc3339(self.to_us),
            self.notifications,
            self.sheds_started,
            self.sheds_ended
        )
    }

    /// Whether the budget views must be rebuilt (a cut started or ended).
    pub fn sheds_changed(&self) -> bool {
        self.sheds_started + self.sheds_ended > 0
    }
}

/// The stored rules, checked; a stored rule that no longer checks is logged
/// and left out rather than stopping the others.
pub async fn load_rules(store: &Store) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    for row in store.db.alert_rules().await? {
        let checked = serde_json::from_str::<RuleSpec>(&row.spec)
            .map_err(|e| crate::ReportsError::Integrity(format!("stored spec does not parse: {e}")))
            .and_then(|spec| spec.check());
        match checked {
            Ok(rule) => rules.push(rule),
            Err(e) => tracing::error!(rule = %row.name, error = %e, "stored alert rule skipped"),
        }
    }
    Ok(rules)
}

/// Evaluates the hours rolled up since the last live evaluation (or all of
/// them, the first time) and applies the result, cuts included. `None` when
/// nothing changed since.
#[tracing::instrument(skip_all, err)]
pub async fn evaluate_live(
    store: &Store,
    options: &AlertOptions,
    force: bool,
) -> Result<Option<AlertRun>> {
    let Some(latest) = store.db.latest_rollup_hour().await? else {
        return Ok(None);
    };
    // Read before the rollups are: an hour stored meanwhile is judged next time.
    let watermark = store.db.rollup_seq().await?;
    let to = latest + STEP_US;
    let cursor = store.db.alert_cursor().await?;
    let first = store.db.first_rollup_hour().await?.unwrap_or(latest);
    let from = match cursor {
        None => first,
        Some(c) if !force && c.watermark >= watermark && c.evaluated_to >= to => return Ok(None),
        Some(c) => {
            // The newest hour judged last time may have been incomplete.
            let resume = c.evaluated_to - STEP_US;
            let late = store.db.first_rollup_hour_after(c.watermark).await?;
            late.map_or(resume, |l| l.min(resume)).max(first)
        }
    };
    let cursor = AlertCursor {
        evaluated_to: to,
        watermark,
    };
    // A week at a time, so memory stays bounded however much history a first
    // evaluation or a backfill brings; only the last week sheds and moves the
    // cursor (an earlier one's "now" is past).
    let mut run = AlertRun::default();
    let mut start = from;
    while start < to {
        let end = (start + CHUNK_US).min(to);
        let last = end == to;
        let part = evaluate(store, options, start, end, last, last.then_some(cursor)).await?;
        run.rules = part.rules;
        run.episodes.extend(part.episodes);
        run.notifications += part.notifications;
        run.sheds_started += part.sheds_started;
        run.sheds_ended += part.sheds_ended;
        start = end;
    }
    run.from_us = from;
    run.to_us = to;
    Ok(Some(run))
}

/// Evaluates `[from_us, to_us)` over the rollups as they are now and stores
/// the episodes found, replacing those the period had. A replay (`live` false)
/// leaves the cuts in force alone and queues notifications only when asked.
#[tracing::instrument(skip(store, options), err)]
pub async fn evaluate(
    store: &Store,
    options: &AlertOptions,
    from_us: i64,
    to_us: i64,
    live: bool,
    cursor: Option<AlertCursor>,
) -> Result<AlertRun> {
    let rules = load_rules(store).await?;
    evaluate_rules(store, options, rules, from_us, to_us, live, cursor).await
}

/// Judges the `variance_above` rules over the days a new bill may cover: the
/// previous month and this one up to `now_us`. A bill arrives days after the
/// traffic it bills and moves no rollup, so the live evaluation (which judges
/// the newest rolled-up hours) does not see it; an import calls this. A
/// replay of those rules alone: their episodes for the period are replaced,
/// firing ones notified. `None` without such rules.
pub async fn evaluate_bill(
    store: &Store,
    options: &AlertOptions,
    now_us: i64,
) -> Result<Option<AlertRun>> {
    let rules: Vec<Rule> = load_rules(store)
        .await?
        .into_iter()
        .filter(|r| matches!(r.condition, Condition::VarianceAbove { .. }))
        .collect();
    if rules.is_empty() {
        return Ok(None);
    }
    let now = chrono::DateTime::from_timestamp_micros(now_us).unwrap_or_default();
    let month = crate::month::Month::new(now.year(), now.month())?;
    let from_us = crate::fine::micros(month.previous()?.first_day());
    let to_us = (now_us.div_euclid(STEP_US) + 1) * STEP_US;
    let run = evaluate_rules(store, options, rules, from_us, to_us, false, None).await?;
    Ok(Some(run))
}

/// [`evaluate`] with the rules given.
#[allow(clippy::too_many_arguments)] // evaluate's own, plus the rules
async fn evaluate_rules(
    store: &Store,
    options: &AlertOptions,
    rules: Vec<Rule>,
    from_us: i64,
    to_us: i64,
    live: bool,
    cursor: Option<AlertCursor>,
) -> Result<AlertRun> {
    let from_us = from_us.div_euclid(STEP_US) * STEP_US;
    let lookback = rules.iter().map(lookback_us).max().unwrap_or(0);
    let warm_up = rules
        .iter()
        .map(|r| r.for_us + r.keep_firing_for_us + 2 * STEP_US)
        .fold(WARM_UP_US, i64::max);
    let engine_from = from_us - warm_up;
    let data_end = store
        .db
        .latest_rollup_hour()
        .await?
        .map_or(to_us, |h| h + STEP_US);
    // A period in the past is judged knowing what came after it, so an episode
    // that began inside it and ended later is stored ended, not cut off open.
    let judge_to = if live {
        to_us
    } else {
        data_end.min(to_us + EXTEND_US).max(to_us)
    };
    let budgets = store.db.budgets().await?;
    let ptu = super::series::ptu_backends(&store.db.backends().await?);
    // Only the files some rule has not projected yet are decoded: after a
    // push, the hours it touched.
    let hourly_keys: Vec<String> = rules
        .iter()
        .flat_map(|r| hourly_projections(r, &budgets, &ptu))
        .map(|p| p.key())
        .collect();
    let rows = Listed::read(
        store,
        Tier::Hourly,
        engine_from - lookback,
        judge_to,
        &hourly_keys,
    )
    .await?;
    // The minute tier, for burn-rate short windows over the newest hours.
    let minute_keys: Vec<String> = rules
        .iter()
        .filter_map(|r| minute_projection(r, &ptu))
        .map(|p| p.key())
        .collect();
    let minutes = if minute_keys.is_empty() {
        Listed::default()
    } else {
        Listed::read(store, Tier::Minute, engine_from, judge_to, &minute_keys).await?
    };
    let mut episodes = Vec::new();
    let mut sheds = Vec::new();
    let open: Vec<AlertEpisode> = if live {
        store
            .db
            .alert_episodes(Some(EpisodeState::Firing), None, i64::MIN, from_us, 10_000)
            .await?
    } else {
        Vec::new()
    };
    for rule in &rules {
        let variance = super::variance::days(store, rule, engine_from, judge_to).await?;
        let found = run_rule(
            rule,
            &rows,
            &minutes,
            &budgets,
            &variance,
            &ptu,
            engine_from,
            judge_to,
        );
        for episode in found {
            let ends = episode.resolved_at.unwrap_or(i64::MAX);
            if ends < from_us || episode.active_at >= to_us {
                continue; // another period's
            }
            let row = payload::episode_row(rule, &episode);
            if live && row.state == EpisodeState::Firing {
                // A cut is keyed by its episode as stored: one open before the
                // period keeps its first `active_at`.
                let mut keyed = row.clone();
                if let Some(open) = open.iter().find(|o| {
                    o.rule == row.rule
                        && o.fingerprint == row.fingerprint
                        && row.active_at < from_us
                }) {
                    keyed.active_at = open.active_at;
                }
                sheds.extend(shed_for(rule, &keyed, &budgets));
            }
            episodes.push(row);
        }
    }
    let evaluation = AlertEvaluation {
        from_us,
        to_us,
        rules: rules.iter().map(|r| r.spec.name.clone()).collect(),
        episodes,
        receivers: options.receivers.clone(),
        notify_since: data_end - NOTIFY_HORIZON_US,
        // Judged only so far past the period: an episode stored as ended
        // later keeps its end.
        keep_resolved: !live && judge_to < data_end,
        sheds: live.then_some(sheds),
        cursor,
    };
    let read = AlertsRead {
        from_us,
        to_us,
        keep_resolved: evaluation.keep_resolved,
    };
    let applied = store
        .db
        .apply_alert_changes(&read, |stored| {
            super::apply::plan(&evaluation, stored, |episode, status, receiver| {
                payload::notification(episode, status, receiver, &options.external_url)
            })
        })
        .await?;
    for shed in &applied.sheds_started {
        tracing::info!(rule = %shed.rule, budget = shed.budget_id, factor = shed.factor, "load shedding started");
    }
    for shed in &applied.sheds_ended {
        tracing::info!(rule = %shed.rule, budget = shed.budget_id, "load shedding ended");
    }
    Ok(AlertRun {
        from_us,
        to_us,
        rules: rules.len(),
        episodes: evaluation.episodes,
        notifications: applied.notifications,
        sheds_started: applied.sheds_started.len(),
        sheds_ended: applied.sheds_ended.len(),
    })
}

/// How much history before an evaluated hour a rule reads.
fn lookback_us(rule: &Rule) -> i64 {
    match &rule.condition {
        Condition::BurnRate(_) => burn::LOOKBACK_US,
        Condition::Anomaly { spec, .. } => i64::from(spec.weeks) * WEEK_US + rule.window_us,
        // Month to date: at most 31 days.
        Condition::BudgetUsedAbove { .. } => 31 * 24 * STEP_US,
        Condition::Above { .. } => rule.window_us,
        // Reads the reconciliation, not the rollups.
        Condition::VarianceAbove { .. } => 0,
    }
}

/// The files of a range, and the rows of those some projection has not
/// been made of yet.
#[derive(Debug, Default)]
struct Listed {
    listing: RollupListing,
    decoded: Rollups,
    pinned: Pinned,
}

impl Listed {
    async fn read(
        store: &Store,
        tier: Tier,
        from: i64,
        to: i64,
        keys: &[String],
    ) -> Result<Listed> {
        let mut pinned = Pinned::default();
        let (listing, decoded) = store
            .rollups_where(tier, from, to, |f, whole| {
                !whole || !pinned.take(&PROJECTIONS, &f.path, keys)
            })
            .await?;
        Ok(Listed {
            listing,
            decoded,
            pinned,
        })
    }

    fn project(&self, p: &Projection) -> Series {
        Series::project_listed(&self.listing, &self.decoded, &self.pinned, p, &PROJECTIONS)
    }

    fn is_empty(&self) -> bool {
        self.listing.files.is_empty()
    }
}

/// No scope: every row.
static UNSCOPED: std::sync::LazyLock<BTreeMap<String, Vec<String>>> =
    std::sync::LazyLock::new(BTreeMap::new);
/// The dimensions a token budget can be on, each a grouping.
static BUDGET_SCOPES: std::sync::LazyLock<[(BudgetScope, Vec<String>); 3]> =
    std::sync::LazyLock::new(|| {
        [
            BudgetScope::Subscription,
            BudgetScope::Product,
            BudgetScope::Agent,
        ]
        .map(|scope| (scope, vec![scope.as_str().to_owned()]))
    });

/// How a rule reads the hourly tier: its own projection, or for a token
/// budget rule the tokens of each scope some token budget is on.
fn hourly_projections<'a>(
    rule: &'a Rule,
    budgets: &[tollgate_store::state::BudgetRow],
    ptu_backends: &'a std::collections::HashSet<String>,
) -> Vec<Projection<'a>> {
    if let Condition::VarianceAbove { .. } = rule.condition {
        return Vec::new();
    }
    if let Condition::BudgetUsedAbove { .. } = rule.condition {
        return BUDGET_SCOPES
            .iter()
            .filter(|(scope, _)| {
                let quota_on = |b: &tollgate_store::state::BudgetRow| {
                    b.budget.token_quota.is_some() && b.budget.scope == *scope
                };
                budgets.iter().any(quota_on)
            })
            .map(|(_, group_by)| Projection {
                scope: &UNSCOPED,
                group_by,
                sketches: false,
                slow_above_ms: None,
                ptu_backends,
            })
            .collect();
    }
    let metric = match &rule.condition {
        Condition::Above { metric, .. } | Condition::Anomaly { metric, .. } => metric.as_str(),
        _ => "",
    };
    vec![Projection {
        scope: &rule.spec.scope,
        group_by: &rule.spec.group_by,
        sketches: metric.contains("latency_p"),
        slow_above_ms: slo_of(rule).and_then(|s| s.latency_ms),
        ptu_backends,
    }]
}

/// How a burn-rate rule reads the minute tier, when the tier has its
/// dimensions (short windows).
fn minute_projection<'a>(
    rule: &'a Rule,
    ptu_backends: &'a std::collections::HashSet<String>,
) -> Option<Projection<'a>> {
    let slo = slo_of(rule)?;
    rule.spec
        .group_by
        .iter()
        .chain(rule.spec.scope.keys())
        .all(|d| MINUTE_DIMENSIONS.contains(&d.as_str()))
        .then(|| Projection {
            scope: &rule.spec.scope,
            group_by: &rule.spec.group_by,
            sketches: false,
            slow_above_ms: slo.latency_ms,
            ptu_backends,
        })
}

fn slo_of(rule: &Rule) -> Option<&super::rule::SloSpec> {
    match &rule.condition {
        Condition::BurnRate(slo) => Some(slo),
        _ => None,
    }
}

/// Runs one rule over every hour of `[from_us, to_us)`.
#[allow(clippy::too_many_arguments)] // the inputs a rule of any kind may read
fn run_rule(
    rule: &Rule,
    rows: &Listed,
    minutes: &Listed,
    budgets: &[tollgate_store::state::BudgetRow],
    variance: &super::variance::VarianceDays,
    ptu_backends: &std::collections::HashSet<String>,
    from_us: i64,
    to_us: i64,
) -> Vec<Episode> {
    let hours = (from_us..to_us).step_by(STEP_US as usize);
    if let Condition::VarianceAbove { .. } = rule.condition {
        // Each hour judged by its day's bill: a day is the bill's resolution.
        let evaluations = hours.map(|h| (h, variance.at(h)));
        return engine::run(rule.for_us, rule.keep_firing_for_us, evaluations);
    }
    if let Condition::BudgetUsedAbove { threshold } = rule.condition {
        let tokens = budget_tokens(
            rows,
            budgets,
            hourly_projections(rule, budgets, ptu_backends),
        );
        let evaluations = hours.map(|h| (h, budget_observations(&tokens, budgets, h, threshold)));
        return engine::run(rule.for_us, rule.keep_firing_for_us, evaluations);
    }
    let series = hourly_projections(rule, budgets, ptu_backends)
        .first()
        .map(|p| rows.project(p))
        .unwrap_or_default();
    let windows = Windows::new(&series, rule.window_us);
    // Short burn windows read the minute tier where it has the rule's dimensions.
    let minute_series = minute_projection(rule, ptu_backends)
        .filter(|_| !minutes.is_empty())
        .map(|p| minutes.project(&p));
    let evaluations = hours.map(|hour| {
        let observations = match &rule.condition {
            Condition::Above { metric, threshold } => windows
                .at(hour)
                .iter()
                .filter_map(|(labels, m)| {
                    let value = m.value(metric)?;
                    Some(Observation {
                        labels: labels.clone(),
                        value,
                        holds: m.requests >= rule.min_requests && value > *threshold,
                    })
                })
                .collect(),
            Condition::Anomaly { metric, spec } => windows
                .at(hour)
                .iter()
                .filter_map(|(labels, m)| {
                    let value = m.value(metric)?;
                    let baseline: Vec<f64> = (1..=i64::from(spec.weeks))
                        .flat_map(|w| [-1, 0, 1].map(|d| hour - w * WEEK_US + d * STEP_US))
                        .filter_map(|h| windows.at(h).get(labels).and_then(|m| m.value(metric)))
                        .collect();
                    let z = robust_z(value, &baseline, spec.min_samples, spread_floor(metric))?;
                    let far = if spec.both_directions { z.abs() } else { z };
                    Some(Observation {
                        labels: labels.clone(),
                        value,
                        holds: m.requests >= rule.min_requests && far > spec.z,
                    })
                })
                .collect(),
            Condition::BurnRate(slo) => {
                burn_observations(&series, minute_series.as_ref(), hour, rule, slo)
            }
            Condition::BudgetUsedAbove { .. } | Condition::VarianceAbove { .. } => Vec::new(),
        };
        (hour, observations)
    });
    engine::run(rule.for_us, rule.keep_firing_for_us, evaluations)
}

/// Window sums per hour, computed once per hour asked for.
struct Windows<'a> {
    series: &'a Series,
    window_us: i64,
    cache: std::cell::RefCell<HashMap<i64, std::rc::Rc<HashMap<Labels, Measures>>>>,
}

impl<'a> Windows<'a> {
    fn new(series: &'a Series, window_us: i64) -> Self {
        Windows {
            series,
            window_us,
            cache: Default::default(),
        }
    }

    /// The window ending with hour `hour`.
    fn at(&self, hour: i64) -> std::rc::Rc<HashMap<Labels, Measures>> {
        self.cache
            .borrow_mut()
            .entry(hour)
            .or_insert_with(|| {
                let end = hour + STEP_US;
                std::rc::Rc::new(self.series.window(end - self.window_us, end))
            })
            .clone()
    }
}

/// The four burn-rate alerts of every label set, each its own instance. The
/// short window is measured on the minute tier where it reaches back that
/// far (ending at the newest minute of data within the hour), else as whole
/// hours.
fn burn_observations(
    series: &Series,
    minutes: Option<&Series>,
    hour: i64,
    rule: &Rule,
    slo: &super::rule::SloSpec,
) -> Vec<Observation> {
    let end = hour + STEP_US;
    let mut out = Vec::new();
    for window in &WINDOWS {
        let long = series.window(end - window.long_us, end);
        let short = match minutes
            .and_then(|m| Some((m, *m.hours.keys().next()?, *m.hours.keys().last()?)))
        {
            Some((m, first, last)) if last >= hour => {
                let short_end = end.min(last + MINUTE_US);
                if first <= short_end - window.short_us {
                    m.window(short_end - window.short_us, short_end)
                } else {
                    series.window(end - window.short_measured_us(), end)
                }
            }
            _ => series.window(end - window.short_measured_us(), end),
        };
        for (labels, m) in &long {
            let rate =
                |m: &Measures| burn::burn_rate(m.bad(&slo.count_429), m.requests, slo.objective);
            let short_m = short.get(labels);
            let (holds, value) = burn::holds(window, rate(m), short_m.and_then(rate));
            let enough = short_m.is_some_and(|s| s.requests >= rule.min_requests);
            let mut labels = labels.clone();
            labels.insert("severity".into(), window.severity.into());
            labels.insert("burn_window".into(), window.name.into());
            out.push(Observation {
                labels,
                value,
                holds: holds && enough,
            });
        }
    }
    out
}

/// Tokens per hour and budget, for budgets with a token quota on a
/// subscription, product or agent (the dimensions the rollups carry): each
/// scope's tokens per hour (`scopes`, from [`hourly_projections`]) projected
/// once per file (and kept), then looked up per budget.
fn budget_tokens(
    rows: &Listed,
    budgets: &[tollgate_store::state::BudgetRow],
    scopes: Vec<Projection<'_>>,
) -> BTreeMap<i64, HashMap<i64, i64>> {
    let mut tokens: BTreeMap<i64, HashMap<i64, i64>> = BTreeMap::new();
    for projection in &scopes {
        let scope = projection.group_by[0].as_str();
        let quota_budgets: Vec<(i64, Labels)> = budgets
            .iter()
            .filter(|b| b.budget.token_quota.is_some() && b.budget.scope.as_str() == scope)
            .map(|b| {
                let labels = Labels::from([(scope.to_owned(), b.budget.scope_id.clone())]);
                (b.id, labels)
            })
            .collect();
        let series = rows.project(projection);
        for (hour, groups) in &series.hours {
            for (id, labels) in &quota_budgets {
                if let Some(m) = groups.get(labels) {
                    let used = tokens.entry(*hour).or_default().entry(*id).or_default();
                    *used =
                        used.saturating_add(m.prompt_tokens.saturating_add(m.completion_tokens));
                }
            }
        }
    }
    tokens
}

/// Each token budget's month-to-date share of its quota at the end of `hour`.
fn budget_observations(
    tokens: &BTreeMap<i64, HashMap<i64, i64>>,
    budgets: &[tollgate_store::state::BudgetRow],
    hour: i64,
    threshold: f64,
) -> Vec<Observation> {
    let mut used: HashMap<i64, i64> = HashMap::new();
    for by_budget in tokens
        .range(month_start_us(hour)..hour + STEP_US)
        .map(|(_, t)| t)
    {
        for (id, n) in by_budget {
            let used = used.entry(*id).or_default();
            *used = used.saturating_add(*n);
        }
    }
    budgets
        .iter()
        .filter_map(|b| {
            let quota = b.budget.token_quota.filter(|q| *q > 0)?;
            let value = *used.get(&b.id).unwrap_or(&0) as f64 / quota as f64;
            let labels = Labels::from([
                ("budget".to_owned(), b.budget.name.clone()),
                ("scope".to_owned(), b.budget.scope.to_string()),
                ("scope_id".to_owned(), b.budget.scope_id.clone()),
            ]);
            Some(Observation {
                labels,
                value,
                holds: value > threshold,
            })
        })
        .collect()
}

fn month_start_us(hour_us: i64) -> i64 {
    use chrono::Datelike;
    let at = chrono::DateTime::from_timestamp_micros(hour_us).unwrap_or_default();
    crate::month::Month::new(at.year(), at.month())
        .map_or(hour_us, |m| crate::fine::micros(m.first_day()))
}

/// The budget cuts a firing episode of a rule with a shedding action asks for.
fn shed_for(
    rule: &Rule,
    episode: &AlertEpisode,
    budgets: &[tollgate_store::state::BudgetRow],
) -> Vec<AlertShed> {
    let Some(action) = &rule.spec.action else {
        return Vec::new();
    };
    budgets
        .iter()
        .filter(|b| {
            b.budget.scope.as_str() == action.scope
                && (action.ids.is_empty() || action.ids.contains(&b.budget.scope_id))
        })
        .map(|b| AlertShed {
            rule: rule.spec.name.clone(),
            fingerprint: episode.fingerprint.clone(),
            active_at: episode.active_at,
            budget_id: b.id,
            factor: action.factor,
            started_at: String::new(),
            ended_at: None,
        })
        .collect()
}

/// Stores the shipped default rules that are missing (an operator's edit of
/// one through the API stays) and the config file's rules (the file wins over
/// an earlier start's copy). Every rule is checked first; nothing is stored if
/// one is refused.
pub async fn install_rules(store: &Store, config: &[RuleSpec]) -> Result<usize> {
    for spec in config {
        spec.check()?;
    }
    let stored = store.db.alert_rules().await?;
    let mut changed = 0;
    let compare = |spec: &RuleSpec, origin: &'static str| {
        let json = serde_json::to_string(spec).unwrap_or_default();
        let same = stored
            .iter()
            .find(|r| r.name == spec.name)
            .map(|r| (r.spec == json && r.origin == origin, r.origin.clone()));
        (json, same)
    };
    let mut writes = Vec::new();
    // Installed once: a default an operator deleted stays deleted.
    let defaults = if store
        .db
        .state_version(tollgate_store::StateVersion::AlertRules)
        .await?
        == 0
    {
        super::rule::defaults()
    } else {
        Vec::new()
    };
    for spec in defaults {
        if let (json, None) = compare(&spec, "default") {
            writes.push((spec.name.clone(), json, "default"));
        }
    }
    for spec in config {
        if let (json, None | Some((false, _))) = compare(spec, "config") {
            writes.push((spec.name.clone(), json, "config"));
        }
    }
    for (name, json, origin) in writes {
        store
            .db
            .put_alert_rule(&name, &json, origin, "config")
            .await?;
        changed += 1;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measures(requests: i64, errors: i64) -> Measures {
        Measures {
            requests,
            status_5xx: errors,
            ..Measures::default()
        }
    }

    fn series(points: &[(i64, Measures)]) -> Series {
        let mut s = Series::default();
        for (at, m) in points {
            std::sync::Arc::make_mut(s.hours.entry(*at).or_default())
                .insert(Labels::new(), m.clone());
        }
        s
    }

    fn page(observations: &[Observation]) -> bool {
        observations
            .iter()
            .find(|o| o.labels["burn_window"] == "1h/5m")
            .unwrap()
            .holds
    }

    #[test]
    fn the_short_window_is_read_per_minute_where_the_tier_has_it() {
        let rule = RuleSpec {
            name: "slo".into(),
            kind: "burn_rate".into(),
            slo: Some(super::super::rule::SloSpec {
                objective: 0.995,
                latency_ms: None,
                count_429: "none".into(),
            }),
            ..serde_json::from_str(r#"{"name": "slo", "kind": "burn_rate"}"#).unwrap()
        }
        .check()
        .unwrap();
        let Condition::BurnRate(slo) = &rule.condition else {
            panic!("not a burn-rate rule");
        };
        let hour = 100 * STEP_US;
        // 10% errors over the hour: a burn of 20, above the page factor 14.4.
        let hourly = series(&[(hour, measures(6000, 600))]);
        // ... all of them in its first ten minutes.
        let by_minute: Vec<(i64, Measures)> = (0..60)
            .map(|m| {
                (
                    hour + m * MINUTE_US,
                    measures(100, if m < 10 { 60 } else { 0 }),
                )
            })
            .collect();
        let minutes = series(&by_minute);
        // On hourly data alone the 5 m window is the hour: it pages.
        assert!(page(&burn_observations(&hourly, None, hour, &rule, slo)));
        // Per minute, the last five minutes were clean: the burst is over.
        assert!(!page(&burn_observations(
            &hourly,
            Some(&minutes),
            hour,
            &rule,
            slo
        )));
        // Judged while the burst is still the newest data, it pages.
        let early = series(&by_minute[..8]);
        assert!(page(&burn_observations(
            &hourly,
            Some(&early),
            hour,
            &rule,
            slo
        )));
    }
}
