//! FinOps pages: the month's chargeback by cost centre with its drill-down
//! (subscription, model, day), daily spend by model, PTU against
//! pay-as-you-go with idle capacity, cache savings, unallocated spend, budgets
//! with their burn-down, the invoice against the estimate, and the month's
//! close and exports.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use tollgate_reports::budget_eval;
use tollgate_reports::budgets::{KnownScopes, unseen_scope};
use tollgate_reports::chargeback::{
    ChargebackRow, DailySpend, chargeback_cached, daily_cached, to_cents,
};
use tollgate_reports::invoice::{Reconciliation, reconciliation};
use tollgate_reports::month::Month;
use tollgate_reports::ownership::UNALLOCATED;

use super::chart::{self, Chart, Series, Unit};
use super::session::WebUser;
use super::{
    Chrome, Page, PageForm, PageQuery, PageResult, Section, count, money, percent, urlencode,
};
use crate::error::AppError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/finops", get(overview))
        .route("/finops/drill", get(drill))
        .route("/finops/close", post(close))
}

#[derive(Debug, Deserialize)]
struct MonthQuery {
    month: Option<String>,
}

/// The month asked for, else the last month with spend before the newest
/// data's (the one there is to close), else the newest data's.
async fn chosen_month(state: &AppState, asked: Option<&str>) -> PageResult<Month> {
    if let Some(text) = asked.filter(|t| !t.is_empty()) {
        return Ok(text
            .parse()
            .map_err(|e| AppError::BadRequest(format!("month: {e}")))?);
    }
    let newest = match state.store.db.latest_rollup_hour().await? {
        Some(us) => chrono::DateTime::from_timestamp_micros(us).unwrap_or_default(),
        None => state.store.clock.now(),
    };
    let current = Month::new(newest.year(), newest.month())?;
    let previous = current.previous()?;
    let report = chargeback_cached(&state.store, &state.chargeback, previous, &[]).await?;
    Ok(if report.total.requests > 0 {
        previous
    } else {
        current
    })
}

/// One row of a chargeback table, formatted.
#[derive(Debug, Clone)]
struct Line {
    name: String,
    href: Option<String>,
    requests: String,
    tokens: String,
    payg: String,
    ptu: String,
    idle: String,
    adjustment: String,
    total: String,
    previous: String,
    change: String,
}

fn line(name: &str, href: Option<String>, r: &ChargebackRow) -> Line {
    let change = if r.previous_total_pico == 0 {
        "–".to_owned()
    } else {
        let delta = (r.total_pico() - r.previous_total_pico) as f64 / r.previous_total_pico as f64;
        format!("{}{}", if delta >= 0.0 { "+" } else { "" }, percent(delta))
    };
    Line {
        name: name.to_owned(),
        href,
        requests: count(r.requests),
        tokens: count(r.prompt_tokens.saturating_add(r.completion_tokens)),
        payg: money(r.payg_pico),
        ptu: money(r.ptu_pico),
        idle: money(r.idle_pico),
        adjustment: money(r.adjustment_pico),
        total: money(r.total_pico()),
        previous: money(r.previous_total_pico),
        change,
    }
}

/// A headline figure.
#[derive(Debug, Clone)]
struct Stat {
    label: &'static str,
    value: String,
    id: &'static str,
    alert: bool,
}

#[derive(Debug, Clone)]
struct BudgetLine {
    name: String,
    scope: String,
    /// Why the scope shows no use yet, when nothing has named it.
    unseen: Option<String>,
    state: String,
    used: String,
    remaining: String,
    projected: String,
    exhausted_on: String,
}

#[derive(askama::Template)]
#[template(path = "finops.html")]
struct Overview {
    chrome: Chrome,
    month: String,
    previous_month: String,
    next_month: String,
    closed: Option<String>,
    stats: Vec<Stat>,
    unallocated: Option<String>,
    unpriced: Option<String>,
    /// No traffic was ingested for the month, or for the one before.
    no_data: bool,
    no_previous: bool,
    /// Each cause of unpriced tokens: how many, and what to import.
    unpriced_causes: Vec<(String, String)>,
    cost_centres: Vec<Line>,
    total: Line,
    models: Vec<Line>,
    daily: Chart,
    /// What the days do not add up to, and why.
    undated: Option<String>,
    /// The month has ended: it can be closed.
    closable: bool,
    budgets_period: String,
    budgets: Vec<BudgetLine>,
    burn_down: Option<Chart>,
    /// Traffic no gateway saw (from traces): its own line, not in the total.
    unseen: Vec<UnseenRow>,
    unseen_total: String,
    /// The provider's bill against the estimate.
    invoice: Invoice,
}

/// The month's invoice reconciliation, as the page shows it.
#[derive(Debug)]
struct Invoice {
    /// Whether a cost export was imported for the month.
    imported: bool,
    billed: String,
    estimated: String,
    variance: String,
    /// The variance as a share of the estimate ("–" without one).
    variance_percent: String,
    /// Each cause: its name, what it means, its amount.
    causes: Vec<CauseLine>,
    /// What no cause explains.
    residual: String,
    /// Price-book rows (or reservations) whose price differs from the bill.
    price_rows: Vec<String>,
    /// The days compared, `from` to `to`.
    period: (String, String),
    currency: Option<String>,
    /// `batch N: source` of each cost file read.
    cost_files: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Debug)]
struct CauseLine {
    id: &'static str,
    name: &'static str,
    note: &'static str,
    amount: String,
}

/// Cents, formatted as the page formats money.
fn cents_money(cents: i64) -> String {
    money(i128::from(cents) * 10_000_000_000)
}

/// What each cause of the variance is, in the order the report names them.
fn cause_text(name: &str) -> (&'static str, &'static str) {
    match name {
        "unlogged_tokens" => (
            "Unlogged tokens",
            "billed, but more than the gateways logged: traffic around the gateways, or logs not ingested",
        ),
        "unbilled_tokens" => (
            "Unbilled tokens",
            "logged by the gateways, but fewer (or none) billed",
        ),
        "rate_difference" => (
            "Rate difference",
            "the bill's list price differs from the price book's",
        ),
        "ptu_hours" => (
            "PTU hours",
            "provisioned hours billed other than those reserved",
        ),
        "discount" => ("Discount", "negotiated discounts and credits"),
        "commitment" => (
            "Commitment",
            "what a commitment (reservation, savings plan) moved",
        ),
        "unmapped_meter" => (
            "Unmapped meter",
            "cost lines whose meter names no model or PTU hour (tollgate costs import-meters)",
        ),
        "unmapped_resource" => (
            "Unmapped resource",
            "cost lines of a resource no backend names, and logged use of a backend without a resource_id (backends.csv)",
        ),
        _ => ("Other", ""),
    }
}

fn invoice(report: &Reconciliation) -> Invoice {
    let t = &report.total;
    let named = t.causes.named();
    // The causes and the residual in cents that add up to the variance's.
    let amounts: Vec<i128> = named
        .iter()
        .map(|(_, v)| *v)
        .chain([t.residual()])
        .collect();
    let (cents, variance_cents) = to_cents(&amounts);
    let causes = named
        .iter()
        .zip(&cents)
        .map(|((id, _), c)| {
            let (name, note) = cause_text(id);
            CauseLine {
                id,
                name,
                note,
                amount: cents_money(*c),
            }
        })
        .collect();
    let variance_percent = match t.variance_percent() {
        Some(p) => format!("{}{}", if p >= 0.0 { "+" } else { "" }, percent(p / 100.0)),
        None => "–".to_owned(),
    };
    Invoice {
        imported: report.has_billed(),
        billed: money(t.billed),
        estimated: money(t.estimated),
        variance: cents_money(variance_cents),
        variance_percent,
        causes,
        residual: cents_money(cents.last().copied().unwrap_or_default()),
        price_rows: t.price_rows.clone(),
        period: report.period.clone(),
        currency: report.currency.clone(),
        cost_files: report
            .cost_files
            .iter()
            .map(|f| format!("batch {}: {}", f.batch_id, f.source))
            .collect(),
        warnings: report.warnings.clone(),
    }
}

/// One group of traffic no gateway saw, as the page shows it.
#[derive(Debug)]
struct UnseenRow {
    server_address: String,
    agent: String,
    model: String,
    calls: String,
    tokens: String,
    estimated: String,
}

fn unseen_rows(unseen: &tollgate_reports::unseen::UnseenTraffic) -> Vec<UnseenRow> {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    unseen
        .lines
        .iter()
        .map(|l| UnseenRow {
            server_address: l.server_address.clone(),
            agent: or_dash(&l.agent),
            model: or_dash(&l.model),
            calls: count(l.calls),
            tokens: format!("{} / {}", count(l.input_tokens), count(l.output_tokens)),
            estimated: match l.unpriced_tokens {
                0 => money(l.estimated_pico),
                n => format!("{} + {} tokens unpriced", money(l.estimated_pico), count(n)),
            },
        })
        .collect()
}

async fn overview(
    user: WebUser,
    State(state): State<AppState>,
    PageQuery(q): PageQuery<MonthQuery>,
) -> PageResult<Response> {
    user.require(Section::Finops)?;
    let month = chosen_month(&state, q.month.as_deref()).await?;
    let (store, cache) = (&state.store, &state.chargeback);
    let by_cc = chargeback_cached(store, cache, month, &["cost_centre".to_owned()]).await?;
    let by_model = chargeback_cached(store, cache, month, &["model".to_owned()]).await?;
    let spend = daily_cached(store, &state.daily, month, &["model".to_owned()]).await?;
    let t = &by_cc.total;
    let unallocated: i128 = by_cc
        .rows
        .iter()
        .filter(|r| r.group[0] == UNALLOCATED)
        .map(ChargebackRow::total_pico)
        .sum();
    let stats = vec![
        stat("Total spend", "total", money(t.total_pico()), false),
        stat("Pay-as-you-go", "payg", money(t.payg_pico), false),
        stat("PTU used", "ptu", money(t.ptu_pico), false),
        stat(
            "PTU idle capacity",
            "idle",
            money(t.idle_pico),
            t.idle_pico > 0,
        ),
        stat(
            "Cache savings",
            "savings",
            money(t.cache_savings_pico),
            false,
        ),
        stat(
            "Unallocated",
            "unallocated",
            money(unallocated),
            unallocated > 0,
        ),
        stat("Requests", "requests", count(t.requests), false),
    ];
    let mut cost_centres: Vec<Line> = by_cc
        .rows
        .iter()
        .map(|r| {
            let href = format!(
                "/finops/drill?month={month}&cost_centre={}",
                urlencode(&r.group[0])
            );
            line(&r.group[0], Some(href), r)
        })
        .collect();
    let mut models: Vec<Line> = by_model
        .rows
        .iter()
        .map(|r| line(&r.group[0], None, r))
        .collect();
    let dated: i128 = spend.days.iter().map(|(_, r)| r.total_pico()).sum();
    let undated = if let Some(closed) = &by_cc.closed {
        Some(format!(
            "{month} is closed: its figures are its snapshot of {}. The days are \
             recomputed from the data as it is now, priced as the month was closed, \
             and add up to {}.",
            closed.closed_at,
            money(dated)
        ))
    } else {
        let gap = t.total_pico() - dated;
        (gap != 0).then(|| {
            format!(
                "{} of the month's spend belongs to no day: idle PTU hours nobody used, \
                 and corrections of closed months for late data. It is in the totals, \
                 not in this chart.",
                money(gap)
            )
        })
    };
    let closable = state.store.clock.now().date_naive() >= month.next()?.first_day();
    let (budgets_period, budgets, burn_down) = budgets(&state).await?;
    let unpriced_causes = if t.unpriced_tokens > 0 {
        tollgate_reports::unpriced::unpriced(&state.store, month)
            .await?
            .into_iter()
            .map(|u| (count(u.tokens), u.fix))
            .collect()
    } else {
        Vec::new()
    };
    let unseen = state.unseen_traffic(month).await?;
    // The month's total only: the table by resource, model and kind is the CSV.
    let invoice = invoice(&reconciliation(&state.store, month, &[]).await?);
    let mut total = line("Total", None, t);
    if !by_cc.previous_has_data {
        for l in cost_centres
            .iter_mut()
            .chain(&mut models)
            .chain([&mut total])
        {
            l.previous = "no data".into();
        }
    }
    let page = Overview {
        chrome: Chrome::new(&user, Section::Finops, format!("FinOps · {month}")),
        month: month.to_string(),
        previous_month: month.previous()?.to_string(),
        next_month: month.next()?.to_string(),
        closed: by_cc.closed.as_ref().map(|c| c.closed_at.clone()),
        stats,
        unallocated: (unallocated > 0).then(|| money(unallocated)),
        unpriced: (t.unpriced_tokens > 0).then(|| count(t.unpriced_tokens)),
        unpriced_causes,
        no_data: !by_cc.has_data,
        no_previous: !by_cc.previous_has_data,
        cost_centres,
        total,
        models,
        daily: daily_chart(&spend, month),
        undated,
        closable,
        budgets_period,
        budgets,
        burn_down,
        unseen: unseen_rows(&unseen),
        unseen_total: money(unseen.estimated_pico),
        invoice,
    };
    Ok(Page(page).into_response())
}

fn stat(label: &'static str, id: &'static str, value: String, alert: bool) -> Stat {
    Stat {
        label,
        value,
        id,
        alert,
    }
}

/// Every day of the month, even those without spend.
fn days_of(month: Month) -> PageResult<Vec<String>> {
    let (first, next) = (month.first_day(), month.next()?.first_day());
    Ok(first
        .iter_days()
        .take_while(|d| *d < next)
        .map(|d: NaiveDate| d.format("%Y-%m-%d").to_string())
        .collect())
}

/// Daily spend stacked by the first grouping of `spend` (a model).
fn daily_chart(spend: &DailySpend, month: Month) -> Chart {
    let days = days_of(month).unwrap_or_default();
    let index: BTreeMap<&str, usize> = days
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    let mut by_model: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (day, row) in &spend.days {
        let Some(&i) = index.get(day.as_str()) else {
            continue;
        };
        let values = by_model
            .entry(row.group[0].as_str())
            .or_insert_with(|| vec![0.0; days.len()]);
        values[i] += row.total_pico() as f64 / 1e12;
    }
    let series: Vec<Series> = by_model
        .into_iter()
        .filter(|(_, v)| v.iter().any(|x| *x != 0.0))
        .map(|(name, values)| Series {
            name: name.to_owned(),
            values,
        })
        .collect();
    chart::stacked_bars(
        &format!("Daily spend by model, {month}"),
        &days,
        &series,
        Unit::Money,
    )
}

/// The budgets' current period, their states and each one's burn-down: the
/// used share of its quota day by day.
async fn budgets(state: &AppState) -> PageResult<(String, Vec<BudgetLine>, Option<Chart>)> {
    let (statuses, period) = budget_eval::statuses(&state.store, &state.chargeback).await?;
    let known = KnownScopes::load(&state.store).await?;
    let lines = statuses
        .iter()
        .map(|s| BudgetLine {
            name: s.budget.budget.name.clone(),
            scope: format!("{} {}", s.budget.budget.scope, s.budget.budget.scope_id),
            unseen: unseen_scope(&known, &s.budget.budget),
            state: s.state.as_str().to_owned(),
            used: percent(s.used_fraction),
            remaining: match (&s.cost_remaining, s.tokens_remaining) {
                (Some(cost), _) => tollgate_reports::rate::parse_pico_wide(cost)
                    .map_or_else(|_| cost.clone(), money),
                (None, Some(tokens)) => format!("{} tokens", count(tokens)),
                (None, None) => "–".into(),
            },
            projected: percent(s.forecast.projected_fraction),
            exhausted_on: s
                .forecast
                .exhausted_on
                .clone()
                .unwrap_or_else(|| "–".into()),
        })
        .collect();
    if statuses.is_empty() {
        return Ok((period.to_string(), lines, None));
    }
    let spend = daily_cached(
        &state.store,
        &state.daily,
        period,
        &budget_eval::usage_grouping(),
    )
    .await?;
    let days = days_of(period)?;
    let through = spend
        .days
        .iter()
        .map(|(d, _)| d.as_str())
        .max()
        .unwrap_or_default();
    // Tokens and cost per (scope, id) and day. What belongs to no day still
    // counts against a budget, as its evaluation counts it: on the newest day,
    // so each line ends at its budget's "used".
    let mut used: BTreeMap<(usize, &str), DailyUse> = BTreeMap::new();
    let dated = spend.days.iter().map(|(d, r)| (d.as_str(), r));
    for (day, row) in dated.chain(spend.undated.iter().map(|r| (through, r))) {
        for (s, id) in row.group.iter().enumerate() {
            let entry = used
                .entry((s, id.as_str()))
                .or_default()
                .entry(day)
                .or_default();
            entry.0 = entry
                .0
                .saturating_add(row.prompt_tokens.saturating_add(row.completion_tokens));
            entry.1 += row.total_pico();
        }
    }
    let mut series = Vec::new();
    // The budgets nearest their limit: a chart of every budget is unreadable.
    let mut ranked: Vec<_> = statuses.iter().collect();
    ranked.sort_by(|a, b| b.used_fraction.total_cmp(&a.used_fraction));
    for s in ranked.into_iter().take(6) {
        let b = &s.budget.budget;
        let Some(scope) = budget_eval::USAGE_SCOPES.iter().position(|x| *x == b.scope) else {
            continue;
        };
        let per_day = used.get(&(scope, b.scope_id.as_str()));
        let (mut tokens, mut cost) = (0i64, 0i128);
        let values = days
            .iter()
            .map(|day| {
                if day.as_str() > through {
                    return f64::NAN;
                }
                if let Some((t, c)) = per_day.and_then(|d| d.get(day.as_str())) {
                    tokens = tokens.saturating_add(*t);
                    cost = cost.saturating_add(*c);
                }
                budget_eval::used_share(b, tokens, cost)
            })
            .collect();
        series.push(Series {
            name: b.name.clone(),
            values,
        });
    }
    let chart = chart::lines(
        &format!("Budget burn-down, {period}: share of quota used"),
        &days,
        &series,
        Unit::Percent,
        &[],
    );
    Ok((period.to_string(), lines, Some(chart)))
}

/// Tokens and cost (pico) by day.
type DailyUse<'a> = BTreeMap<&'a str, (i64, i128)>;

#[derive(Debug, Deserialize)]
struct DrillQuery {
    month: Option<String>,
    cost_centre: String,
    subscription: Option<String>,
    model: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "finops_drill.html")]
struct Drill {
    chrome: Chrome,
    month: String,
    /// (text, link) from the month down to here.
    crumbs: Vec<(String, String)>,
    level: &'static str,
    rows: Vec<Line>,
    total: Line,
}

/// Cost centre -> subscription -> model -> day.
async fn drill(
    user: WebUser,
    State(state): State<AppState>,
    PageQuery(q): PageQuery<DrillQuery>,
) -> PageResult<Response> {
    user.require(Section::Finops)?;
    let month = chosen_month(&state, q.month.as_deref()).await?;
    let base = format!("/finops/drill?month={month}");
    let cc = q.cost_centre.as_str();
    let mut crumbs = vec![
        (
            format!("All cost centres, {month}"),
            format!("/finops?month={month}"),
        ),
        (
            cc.to_owned(),
            format!("{base}&cost_centre={}", urlencode(cc)),
        ),
    ];
    let mut filter = vec![cc.to_owned()];
    let (by, level): (Vec<&str>, &'static str) = match (&q.subscription, &q.model) {
        (None, _) => (vec!["cost_centre", "subscription"], "Subscription"),
        (Some(sub), None) => {
            filter.push(sub.clone());
            (vec!["cost_centre", "subscription", "model"], "Model")
        }
        (Some(sub), Some(model)) => {
            filter.push(sub.clone());
            filter.push(model.clone());
            (vec!["cost_centre", "subscription", "model"], "Day")
        }
    };
    if let Some(sub) = &q.subscription {
        crumbs.push((
            sub.clone(),
            format!(
                "{base}&cost_centre={}&subscription={}",
                urlencode(cc),
                urlencode(sub)
            ),
        ));
    }
    if let Some(model) = &q.model {
        crumbs.push((model.clone(), String::new()));
    }
    let by: Vec<String> = by.into_iter().map(str::to_owned).collect();
    let link = |row: &ChargebackRow| -> Option<String> {
        match level {
            "Subscription" => Some(format!(
                "{base}&cost_centre={}&subscription={}",
                urlencode(cc),
                urlencode(&row.group[1])
            )),
            "Model" => Some(format!(
                "{base}&cost_centre={}&subscription={}&model={}",
                urlencode(cc),
                urlencode(&row.group[1]),
                urlencode(&row.group[2])
            )),
            _ => None,
        }
    };
    let mut total = ChargebackRow::default();
    let mut rows = Vec::new();
    if level == "Day" {
        let spend = daily_cached(&state.store, &state.daily, month, &by).await?;
        for (day, row) in spend.days.iter().filter(|(_, r)| r.group == filter) {
            tollgate_reports::chargeback::add(&mut total, row);
            rows.push(line(day, None, row));
        }
    } else {
        let report = chargeback_cached(&state.store, &state.chargeback, month, &by).await?;
        for row in report
            .rows
            .iter()
            .filter(|r| r.group[..filter.len()] == filter[..])
        {
            tollgate_reports::chargeback::add(&mut total, row);
            rows.push(line(&row.group[filter.len()], link(row), row));
        }
    }
    if rows.is_empty() {
        return Err(
            AppError::NotFound(format!("no spend for {} in {month}", filter.join(" / "))).into(),
        );
    }
    let page = Drill {
        chrome: Chrome::new(
            &user,
            Section::Finops,
            format!("{} · {month}", filter.join(" / ")),
        ),
        month: month.to_string(),
        crumbs,
        level,
        rows,
        total: line("Total", None, &total),
    };
    Ok(Page(page).into_response())
}

#[derive(Debug, Deserialize)]
struct CloseForm {
    #[serde(default)]
    csrf: String,
    month: String,
}

async fn close(
    user: WebUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(f): PageForm<CloseForm>,
) -> PageResult<Response> {
    user.check_csrf(&state, &headers, &f.csrf)?;
    user.require(Section::Finops)?;
    let month: Month = f
        .month
        .parse()
        .map_err(|e| AppError::BadRequest(format!("month: {e}")))?;
    crate::routes::reports::close_and_audit(&state, &user.who, month, Default::default()).await?;
    Ok(Redirect::to(&format!("/finops?month={month}")).into_response())
}
