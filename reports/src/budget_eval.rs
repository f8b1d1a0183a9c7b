//! Budget evaluation: month-to-date tokens and cost per budget, read from the
//! chargeback (so from the rollups, priced exactly as FinOps sees it), the state
//! each budget is in, the transitions since the last evaluation (each an event
//! with its webhook body), the forecast to month end, and the entries each
//! gateway is served, whose version grows only when they change.
//!
//! Budgets are enforced for the current calendar month (UTC) by the wall clock
//! (`Store::clock`): data dated in the future is quarantined at ingest and could
//! not move the period anyway, so one line dated 2030 cannot return an exhausted
//! budget to `ok`. The month's first instant returns every budget to `ok`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tollgate_store::state::{
    BudgetChanges, BudgetEvaluation, BudgetRow, EvaluationApplied, NewBudgetEvent, NewGatewayView,
    StoredBudgetState,
};
use tollgate_store::{BudgetAction, BudgetScope, BudgetState, Store};

use crate::budgets::{cost_quota_pico, gateways, warn_at};
use crate::chargeback::{ChargebackCache, chargeback_cached};
use crate::month::Month;
use crate::rate::format_pico_wide;
use crate::{ReportsError, Result};

/// A budget as evaluated now.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BudgetStatus {
    pub budget: BudgetRow,
    pub state: BudgetState,
    /// Warning thresholds crossed (one more than all of them when exhausted).
    pub level: i64,
    pub tokens_used: i64,
    pub tokens_remaining: Option<i64>,
    pub cost_used: String,
    /// `cost_used` exactly, for the arithmetic (the string is for people).
    #[serde(skip)]
    #[schema(ignore)]
    pub cost_used_pico: i128,
    pub cost_remaining: Option<String>,
    /// The larger of the used shares of the token and the cost quota.
    pub used_fraction: f64,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub forecast: Forecast,
}

/// Month end at the month's run rate so far.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Forecast {
    pub projected_tokens: i64,
    pub projected_cost: Option<String>,
    pub projected_fraction: f64,
    /// The day the quota would run out at this rate, if within the period and
    /// not already exhausted.
    pub exhausted_on: Option<String>,
}

/// What a gateway enforces for one counter key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GatewayBudget {
    /// `<scope>:<scope id>`, the `counter-key` a gateway policy counts under.
    pub counter_key: String,
    pub budget_id: i64,
    pub budget: String,
    pub scope: BudgetScope,
    pub scope_id: String,
    /// For a cost-centre budget: the subscriptions it pays for (to match requests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<String>,
    pub tokens_per_minute: Option<i64>,
    /// The alert rules whose load shedding cuts `tokens_per_minute` now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shed_by: Vec<String>,
    pub token_quota: Option<i64>,
    /// APIM's `token-quota-period`: `Monthly` (calendar month, UTC).
    pub token_quota_period: String,
    pub tokens_used: i64,
    pub tokens_remaining: Option<i64>,
    pub cost_quota: Option<String>,
    pub cost_used: String,
    pub cost_remaining: Option<String>,
    pub currency: Option<String>,
    pub state: BudgetState,
    pub action: GatewayAction,
    pub period_start: String,
    pub period_end: String,
}

/// What the gateway does now: nothing until the budget is exhausted, then the
/// budget's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GatewayAction {
    None,
    Throttle { tokens_per_minute: i64 },
    Downgrade { model: String },
    Block,
}

/// One evaluation: the period, every budget's status, and what applying it changed
/// (`None` when a newer evaluation had been applied already).
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub period: Month,
    pub statuses: Vec<BudgetStatus>,
    pub applied: Option<EvaluationApplied>,
}

/// Evaluates every budget now and applies the result: states, events and the
/// gateway views.
#[tracing::instrument(skip_all, err)]
pub async fn evaluate(store: &Store, cache: &ChargebackCache) -> Result<Evaluation> {
    let inputs_version = store.db.inputs_version().await?;
    let (statuses, period) = statuses(store, cache).await?;
    let views = gateway_views(store, &statuses, period).await?;
    let applied = store
        .db
        .apply_budget_changes(|stored| plan(stored, inputs_version, &statuses, views))
        .await?;
    if let Some(applied) = &applied {
        for event in &applied.events {
            tracing::info!(budget = %event.budget_name, from = %event.from_state, to = %event.to_state, "budget state changed");
        }
    }
    Ok(Evaluation {
        period,
        statuses,
        applied,
    })
}

/// What an evaluation at `inputs_version` changes in what is `stored`:
/// nothing when an evaluation of newer inputs was applied already (it saw
/// more); else every budget's new state, an event for each transition, and
/// the gateway views as computed.
pub fn plan(
    stored: &[StoredBudgetState],
    inputs_version: i64,
    statuses: &[BudgetStatus],
    views: Vec<NewGatewayView>,
) -> Option<BudgetChanges> {
    if stored.iter().any(|s| s.inputs_version > inputs_version) {
        return None;
    }
    let states: Vec<BudgetEvaluation> = statuses.iter().map(evaluation_of).collect();
    let events = statuses
        .iter()
        .zip(&states)
        .filter_map(|(status, evaluation)| {
            let previous = stored.iter().find(|s| s.budget_id == evaluation.budget_id);
            transition(status, evaluation, previous)
        })
        .collect();
    Some(BudgetChanges {
        inputs_version,
        states,
        events,
        views,
    })
}

fn evaluation_of(status: &BudgetStatus) -> BudgetEvaluation {
    BudgetEvaluation {
        budget_id: status.budget.id,
        period_start: status.period_start.to_rfc3339(),
        state: status.state,
        level: status.level,
        tokens_used: status.tokens_used,
        cost_used: status.cost_used.clone(),
    }
}

/// Every budget's status at data time, without recording anything.
pub async fn statuses(
    store: &Store,
    cache: &ChargebackCache,
) -> Result<(Vec<BudgetStatus>, Month)> {
    let budgets = store.db.budgets().await?;
    let as_of = store.clock.now();
    let period = Month::new(as_of.year(), as_of.month())?;
    let period_start =
        Utc.from_utc_datetime(&period.first_day().and_hms_opt(0, 0, 0).unwrap_or_default());
    let period_end = Utc.from_utc_datetime(
        &period
            .next()?
            .first_day()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default(),
    );
    let usage = if budgets.is_empty() {
        Usage::default()
    } else {
        Usage::read(store, cache, period).await?
    };
    let elapsed = (as_of.min(period_end) - period_start).num_seconds().max(1) as f64;
    let length = (period_end - period_start).num_seconds() as f64;
    let statuses = budgets
        .into_iter()
        .map(|budget| {
            let (tokens, cost) = usage.of(budget.budget.scope, &budget.budget.scope_id);
            status(
                budget,
                tokens,
                cost,
                period_start,
                period_end,
                elapsed,
                length,
            )
        })
        .collect();
    Ok((statuses, period))
}

/// The scopes budgets are used by, in the order a chargeback is grouped by
/// them to read their use (each scope is the chargeback dimension of its name).
pub const USAGE_SCOPES: [BudgetScope; 4] = [
    BudgetScope::CostCentre,
    BudgetScope::Subscription,
    BudgetScope::Product,
    BudgetScope::Agent,
];

/// The chargeback grouping that reads every budget's use at once.
pub fn usage_grouping() -> Vec<String> {
    USAGE_SCOPES.iter().map(|s| s.as_str().to_owned()).collect()
}

/// Month-to-date tokens and cost per scope id, from one chargeback grouped by
/// every scope a budget can have.
#[derive(Debug, Default)]
struct Usage {
    by_scope: HashMap<(BudgetScope, String), (i64, i128)>,
}

impl Usage {
    async fn read(store: &Store, cache: &ChargebackCache, month: Month) -> Result<Usage> {
        let by = usage_grouping();
        let report = chargeback_cached(store, cache, month, &by).await?;
        let mut usage = Usage::default();
        for row in &report.rows {
            let tokens = row.prompt_tokens.saturating_add(row.completion_tokens);
            for (scope, id) in USAGE_SCOPES.iter().zip(&row.group) {
                let entry = usage.by_scope.entry((*scope, id.clone())).or_default();
                entry.0 = entry.0.saturating_add(tokens);
                entry.1 += row.total_pico();
            }
        }
        Ok(usage)
    }

    fn of(&self, scope: BudgetScope, id: &str) -> (i64, i128) {
        self.by_scope
            .get(&(scope, id.to_owned()))
            .copied()
            .unwrap_or_default()
    }
}

fn status(
    budget: BudgetRow,
    tokens: i64,
    cost: i128,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
    elapsed: f64,
    length: f64,
) -> BudgetStatus {
    let token_quota = budget.budget.token_quota;
    let cost_quota = cost_quota_pico(&budget.budget);
    let used_fraction = shares(&budget.budget, tokens, cost).larger();
    // Exact comparisons for exhaustion; fractions only for the warnings.
    let exhausted =
        token_quota.is_some_and(|q| tokens >= q) || cost_quota.is_some_and(|q| cost >= q);
    let thresholds = warn_at(&budget.budget);
    let level = if exhausted {
        thresholds.len() as i64 + 1
    } else {
        thresholds.iter().filter(|w| used_fraction >= **w).count() as i64
    };
    let state = match (exhausted, level) {
        (true, _) => BudgetState::Exhausted,
        (false, 0) => BudgetState::Ok,
        _ => BudgetState::Warning,
    };
    let scale = length / elapsed;
    let projected_tokens = (tokens as f64 * scale).round() as i64;
    let projected_cost = (cost as f64 * scale) as i128;
    // At the run rate so far, the quota runs out `elapsed / used_fraction`
    // seconds into the period: a day to show only if that is within it (a tiny
    // share used would put it far beyond any date).
    let runs_out_after = elapsed / used_fraction;
    let exhausted_on = (!exhausted && used_fraction > 0.0 && runs_out_after < length)
        .then(|| period_start + Duration::seconds(runs_out_after as i64))
        .map(|at| at.date_naive().to_string());
    BudgetStatus {
        tokens_remaining: token_quota.map(|q| (q - tokens).max(0)),
        cost_remaining: cost_quota.map(|q| format_pico_wide((q - cost).max(0))),
        cost_used: format_pico_wide(cost),
        cost_used_pico: cost,
        forecast: Forecast {
            projected_tokens,
            projected_cost: Some(format_pico_wide(projected_cost)),
            projected_fraction: used_fraction * scale,
            exhausted_on,
        },
        budget,
        state,
        level,
        tokens_used: tokens,
        used_fraction,
        period_start,
        period_end,
    }
}

/// The used shares of a budget's token and cost quotas (each when it has one).
#[derive(Debug, Clone, Copy)]
struct Shares {
    tokens: Option<f64>,
    cost: Option<f64>,
}

impl Shares {
    fn larger(self) -> f64 {
        self.tokens.unwrap_or(0.0).max(self.cost.unwrap_or(0.0))
    }
}

fn shares(budget: &tollgate_store::state::NewBudget, tokens: i64, cost_pico: i128) -> Shares {
    Shares {
        tokens: budget.token_quota.map(|q| tokens as f64 / q as f64),
        cost: cost_quota_pico(budget).map(|q| cost_pico as f64 / q as f64),
    }
}

/// The used share of a budget's quota for this much use (the larger of the
/// token and the cost share): a burn-down's points.
pub fn used_share(budget: &tollgate_store::state::NewBudget, tokens: i64, cost_pico: i128) -> f64 {
    shares(budget, tokens, cost_pico).larger()
}

/// The used share of a budget's quota from its stored state (the larger of the
/// token and the cost share).
pub fn used_fraction(budget: &tollgate_store::state::NewBudget, state: &StoredBudgetState) -> f64 {
    let cost = crate::rate::parse_pico_wide(&state.cost_used).unwrap_or(0);
    shares(budget, state.tokens_used, cost).larger()
}

/// The event a change of state raises, if it is one: a threshold crossed, the
/// budget exhausted, or a new period returning it to `ok`.
fn transition(
    status: &BudgetStatus,
    evaluation: &BudgetEvaluation,
    previous: Option<&StoredBudgetState>,
) -> Option<NewBudgetEvent> {
    let from = match previous {
        None => BudgetState::Ok,
        Some(p) if p.period_start != evaluation.period_start => {
            if p.state == BudgetState::Ok && evaluation.level == 0 {
                return None;
            }
            p.state
        }
        Some(p) if p.level == evaluation.level => return None,
        Some(p) => p.state,
    };
    if previous.is_none() && evaluation.level == 0 {
        return None;
    }
    Some(NewBudgetEvent {
        budget_id: evaluation.budget_id,
        budget_name: status.budget.budget.name.clone(),
        period_start: evaluation.period_start.clone(),
        from_state: from,
        to_state: evaluation.state,
        payload: payload(status, from).to_string(),
    })
}

/// The webhook body, in LiteLLM's budget-alert shape (`event`, `event_group`,
/// `spend`, `max_budget`, `projected_spend`) plus `budget_percentage_used` and
/// Tollgate's own fields. Spend is in the unit of the quota nearest exhaustion.
pub fn payload(status: &BudgetStatus, from: BudgetState) -> serde_json::Value {
    let b = &status.budget.budget;
    let used = shares(b, status.tokens_used, status.cost_used_pico);
    let cost_used = status.cost_used_pico;
    let pico = crate::rate::PICO as f64;
    let scale = status.forecast.projected_fraction / status.used_fraction.max(f64::MIN_POSITIVE);
    let (unit, spend, max_budget) = match (used.tokens, used.cost, cost_quota_pico(b)) {
        (t, Some(c), Some(q)) if t.is_none_or(|t| c > t) => (
            b.currency.clone().unwrap_or_default(),
            cost_used as f64 / pico,
            q as f64 / pico,
        ),
        _ => (
            "tokens".to_owned(),
            status.tokens_used as f64,
            b.token_quota.unwrap_or(0) as f64,
        ),
    };
    let event = match status.state {
        BudgetState::Exhausted => "budget_crossed",
        BudgetState::Warning => "threshold_crossed",
        BudgetState::Ok => "budget_reset",
    };
    serde_json::json!({
        "event": event,
        "event_group": b.scope,
        "event_message": format!(
            "{}: {} -> {}, {:.1}% of the {} budget used",
            b.name, from, status.state, status.used_fraction * 100.0, unit
        ),
        "spend": spend,
        "max_budget": max_budget,
        "projected_spend": spend * scale,
        "projected_exceeded_date": status.forecast.exhausted_on,
        "budget_percentage_used": status.used_fraction * 100.0,
        "budget_unit": unit,
        "budget_id": status.budget.id,
        "budget_name": b.name,
        "scope": b.scope,
        "scope_id": b.scope_id,
        "previous_state": from,
        "state": status.state,
        "period_start": status.period_start.to_rfc3339(),
        "period_end": status.period_end.to_rfc3339(),
        "tokens_used": status.tokens_used,
        "token_quota": b.token_quota,
        "cost_used": status.cost_used,
        "cost_quota": b.cost_quota,
        "currency": b.currency,
    })
}

/// The entries a gateway enforces for one budget.
pub fn gateway_budget(status: &BudgetStatus, subscriptions: Vec<String>) -> GatewayBudget {
    let b = &status.budget.budget;
    let action = match (status.state, b.action) {
        (BudgetState::Exhausted, BudgetAction::Throttle) => GatewayAction::Throttle {
            tokens_per_minute: b.throttle_tokens_per_minute.unwrap_or(1),
        },
        (BudgetState::Exhausted, BudgetAction::Downgrade) => GatewayAction::Downgrade {
            model: b.downgrade_to.clone().unwrap_or_default(),
        },
        (BudgetState::Exhausted, BudgetAction::Block) => GatewayAction::Block,
        _ => GatewayAction::None,
    };
    GatewayBudget {
        counter_key: format!("{}:{}", b.scope, b.scope_id),
        budget_id: status.budget.id,
        budget: b.name.clone(),
        scope: b.scope,
        scope_id: b.scope_id.clone(),
        subscriptions,
        tokens_per_minute: match &action {
            GatewayAction::Throttle { tokens_per_minute } => Some(*tokens_per_minute),
            _ => b.tokens_per_minute,
        },
        shed_by: Vec::new(),
        token_quota: b.token_quota,
        token_quota_period: "Monthly".to_owned(),
        tokens_used: status.tokens_used,
        tokens_remaining: status.tokens_remaining,
        cost_quota: b.cost_quota.clone(),
        cost_used: status.cost_used.clone(),
        cost_remaining: status.cost_remaining.clone(),
        currency: b.currency.clone(),
        state: status.state,
        action,
        period_start: status.period_start.to_rfc3339(),
        period_end: status.period_end.to_rfc3339(),
    }
}

/// Applies the load shedding firing alert rules ask for: the per-minute limit
/// times each cut's factor (never below one token), unless the budget is
/// exhausted and its own action already throttles harder.
fn shed(entry: &mut GatewayBudget, sheds: &[tollgate_store::state::AlertShed]) {
    let mine: Vec<_> = sheds
        .iter()
        .filter(|s| s.budget_id == entry.budget_id)
        .collect();
    if mine.is_empty() || matches!(entry.action, GatewayAction::Throttle { .. }) {
        return;
    }
    if let Some(limit) = entry.tokens_per_minute {
        // One cut per rule (its deepest), however many of its instances fire;
        // different rules' cuts compound.
        let mut by_rule: BTreeMap<&str, f64> = BTreeMap::new();
        for s in &mine {
            let f = by_rule.entry(s.rule.as_str()).or_insert(1.0);
            *f = f.min(s.factor);
        }
        let factor: f64 = by_rule.values().product();
        entry.tokens_per_minute = Some(((limit as f64 * factor).floor() as i64).max(1));
        let mut rules: Vec<String> = mine.iter().map(|s| s.rule.clone()).collect();
        rules.sort();
        rules.dedup();
        entry.shed_by = rules;
    }
}

/// Every gateway's entries: gateways named by budgets, by gateway keys, seen in
/// the period's traffic, or served before (so one losing its budgets is told).
async fn gateway_views(
    store: &Store,
    statuses: &[BudgetStatus],
    period: Month,
) -> Result<Vec<NewGatewayView>> {
    let first = crate::fine::micros(period.first_day());
    let next = crate::fine::micros(period.next()?.first_day());
    let mut ids: BTreeSet<String> = store
        .rollup_gateways(first, next)
        .await?
        .into_iter()
        .collect();
    for key in store.db.api_keys().await? {
        if key.role == "gateway" && key.revoked_at.is_none() {
            ids.extend(key.gateway_ids());
        }
    }
    for view in store.db.gateway_views().await? {
        ids.insert(view.gateway_id);
    }
    for status in statuses {
        ids.extend(
            gateways(&status.budget.budget)
                .into_iter()
                .map(str::to_owned),
        );
    }
    let mut by_centre: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in store.db.ownership().await? {
        if row.kind == "subscription" {
            by_centre.entry(row.cost_centre).or_default().push(row.key);
        }
    }
    let sheds = store.db.alert_sheds(true).await?;
    let entries: Vec<(Vec<&str>, GatewayBudget)> = statuses
        .iter()
        .map(|s| {
            let b = &s.budget.budget;
            let subscriptions = if b.scope == BudgetScope::CostCentre {
                by_centre.get(&b.scope_id).cloned().unwrap_or_default()
            } else {
                Vec::new()
            };
            let mut entry = gateway_budget(s, subscriptions);
            shed(&mut entry, &sheds);
            (gateways(b), entry)
        })
        .collect();
    ids.into_iter()
        .map(|gateway| {
            let mut mine: Vec<&GatewayBudget> = entries
                .iter()
                .filter(|(named, _)| named.is_empty() || named.contains(&gateway.as_str()))
                .map(|(_, e)| e)
                .collect();
            mine.sort_by(|a, b| {
                a.counter_key
                    .cmp(&b.counter_key)
                    .then(a.budget_id.cmp(&b.budget_id))
            });
            let body = serde_json::to_string(&mine)
                .map_err(|e| ReportsError::fault("a gateway view", e))?;
            let sha = crate::snapshot::sha256_hex(body.as_bytes());
            Ok(NewGatewayView {
                gateway_id: gateway,
                body,
                body_sha256: sha,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_store::state::NewBudget;

    fn budget(quota: i64) -> BudgetRow {
        BudgetRow {
            id: 1,
            budget: NewBudget {
                name: "b".into(),
                scope: BudgetScope::Subscription,
                scope_id: "s".into(),
                period: "month".into(),
                token_quota: Some(quota),
                cost_quota: None,
                currency: None,
                tokens_per_minute: None,
                warn_at: "0.8,0.95".into(),
                action: BudgetAction::Notify,
                throttle_tokens_per_minute: None,
                downgrade_to: None,
                gateways: String::new(),
            },
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn october() -> (DateTime<Utc>, DateTime<Utc>, f64) {
        let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        (start, end, (end - start).num_seconds() as f64)
    }

    #[test]
    fn a_rules_instances_cut_once_and_rules_compound() {
        let (start, end, length) = october();
        let mut b = budget(1000);
        b.budget.tokens_per_minute = Some(1000);
        let mut entry = gateway_budget(&status(b, 10, 0, start, end, length, length), vec![]);
        let cut = |rule: &str, fingerprint: &str, factor: f64| tollgate_store::state::AlertShed {
            rule: rule.into(),
            fingerprint: fingerprint.into(),
            active_at: 0,
            budget_id: 1,
            factor,
            started_at: String::new(),
            ended_at: None,
        };
        // Three backends of one rule fire: half, not an eighth; another rule
        // cuts on top.
        let sheds = [
            cut("a", "x", 0.5),
            cut("a", "y", 0.5),
            cut("a", "z", 0.5),
            cut("b", "x", 0.8),
        ];
        shed(&mut entry, &sheds);
        assert_eq!(entry.tokens_per_minute, Some(400));
        assert_eq!(entry.shed_by, ["a", "b"]);
    }

    fn stored(state: BudgetState, level: i64, inputs_version: i64) -> StoredBudgetState {
        StoredBudgetState {
            budget_id: 1,
            period_start: october().0.to_rfc3339(),
            state,
            level,
            tokens_used: 0,
            cost_used: "0".into(),
            evaluated_at: String::new(),
            inputs_version,
        }
    }

    #[test]
    fn a_plan_records_a_transition_once_and_never_over_newer_inputs() {
        let (start, end, length) = october();
        let at = |used| vec![status(budget(1000), used, 0, start, end, length, length)];
        let events = |stored: &[StoredBudgetState], used| {
            let changes = plan(stored, 5, &at(used), Vec::new()).unwrap();
            assert_eq!(changes.states.len(), 1, "every budget's state is stored");
            changes
                .events
                .iter()
                .map(|e| (e.from_state, e.to_state))
                .collect::<Vec<_>>()
        };
        // A new budget under its thresholds raises nothing; past one, an event.
        assert!(events(&[], 10).is_empty());
        assert_eq!(events(&[], 850), [(BudgetState::Ok, BudgetState::Warning)]);
        // The same level again is no transition; exhaustion is.
        let warned = [stored(BudgetState::Warning, 1, 4)];
        assert!(events(&warned, 850).is_empty());
        assert_eq!(
            events(&warned, 1000),
            [(BudgetState::Warning, BudgetState::Exhausted)]
        );
        // An evaluation of older inputs than those applied changes nothing.
        let newer = [stored(BudgetState::Ok, 0, 6)];
        assert_eq!(plan(&newer, 5, &at(1000), Vec::new()), None);
    }

    #[test]
    fn thresholds_and_exhaustion_set_the_state() {
        let (start, end, length) = october();
        let at = |used| status(budget(1000), used, 0, start, end, length, length);
        assert_eq!((at(799).state.as_str(), at(799).level), ("ok", 0));
        assert_eq!((at(800).state.as_str(), at(800).level), ("warning", 1));
        assert_eq!((at(950).state.as_str(), at(950).level), ("warning", 2));
        assert_eq!((at(1000).state.as_str(), at(1000).level), ("exhausted", 3));
        assert_eq!(at(1200).tokens_remaining, Some(0));
    }

    #[test]
    fn the_forecast_runs_out_within_the_month_or_not_at_all() {
        let (start, end, length) = october();
        // Half the quota used in the first tenth of the month: out on day 7.
        let fast = status(budget(1000), 500, 0, start, end, length / 10.0, length);
        assert_eq!(fast.forecast.exhausted_on.as_deref(), Some("2026-10-07"));
        assert_eq!(fast.forecast.projected_tokens, 5000);
        // A token of a trillion after a second: far beyond any date, so none
        // (this overflowed the date arithmetic once).
        let slow = status(budget(1_000_000_000_000), 1, 0, start, end, 1.0, length);
        assert_eq!(slow.forecast.exhausted_on, None);
        let none = status(budget(1000), 0, 0, start, end, 1.0, length);
        assert_eq!(none.forecast.exhausted_on, None);
    }
}
