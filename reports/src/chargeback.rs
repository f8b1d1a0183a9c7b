//! The monthly chargeback: who spent what on which models. Usage is read per
//! hour and per every dimension at once (the finest grain), each fine row is
//! priced exactly, PTU hours are split by weighted tokens, and only then are rows
//! grouped as asked: every grouping sums the same integer pico-amounts, so every
//! grouping adds up to the same month total.
//!
//! Today the fine rows come straight from the lake's `usage` view; the hourly
//! rollups will take that place without changing anything below.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use chrono::{DateTime, NaiveDate};
use tollgate_store::Store;
use tollgate_store::state::PtuReservation;

use crate::cost::{IdlePolicy, PriceBook, Tokens, allocate_ptu_hour, token_cost_pico};
use crate::ownership::{Ownership, UNALLOCATED};
use crate::{ReportsError, Result};

/// What a chargeback can be grouped by.
pub const DIMENSIONS: [&str; 8] = [
    "cost_centre",
    "subscription",
    "product",
    "model",
    "deployment_type",
    "region",
    "api",
    "agent",
];

/// A value for rows that have none (a request without a model, an unknown backend).
pub const NONE: &str = "(none)";

/// One group of the report, amounts in pico-units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargebackRow {
    /// Values of the grouping dimensions, in the order asked.
    pub group: Vec<String>,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub cached_tokens: i64,
    pub completion_tokens: i64,
    pub payg_pico: i128,
    pub ptu_pico: i128,
    /// Idle PTU capacity charged to this group.
    pub idle_pico: i128,
    /// Tokens no price row covered: reported, never silently free.
    pub unpriced_tokens: i64,
}

impl ChargebackRow {
    pub fn total_pico(&self) -> i128 {
        self.payg_pico + self.ptu_pico + self.idle_pico
    }
}

#[derive(Debug, Clone)]
pub struct Chargeback {
    pub by: Vec<String>,
    pub rows: Vec<ChargebackRow>,
    pub total: ChargebackRow,
}

/// The first instant of a month and of the next, as RFC 3339.
fn month_bounds(year: i32, month: u32) -> Result<(NaiveDate, NaiveDate), String> {
    let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or("no such month")?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or("month out of range")?;
    Ok((first, next))
}

/// One fine row: an hour and every dimension, with its tokens.
#[derive(Debug, Clone)]
struct Fine {
    hour_us: i64,
    dims: [String; 8],
    backend: Option<String>,
    deployment: Option<String>,
    requests: i64,
    tokens: Tokens,
}

/// The chargeback of a month, grouped by `by` (names from [`DIMENSIONS`]).
#[tracing::instrument(skip(store), err)]
pub async fn chargeback(store: &Store, year: i32, month: u32, by: &[String]) -> Result<Chargeback> {
    let invalid = |problem: String| ReportsError::Argument(problem);
    let positions: Vec<usize> = by
        .iter()
        .map(|d| {
            DIMENSIONS
                .iter()
                .position(|known| known == d)
                .ok_or_else(|| {
                    invalid(format!(
                        "cannot group by {d:?}: choose from {}",
                        DIMENSIONS.join(", ")
                    ))
                })
        })
        .collect::<Result<_>>()?;
    let (first, next) = month_bounds(year, month).map_err(|e| invalid(e.to_owned()))?;

    let prices = PriceBook::new(store.db.price_book().await?);
    let backends: HashMap<String, (String, String)> = store
        .db
        .backends()
        .await?
        .into_iter()
        .map(|b| (b.backend, (b.deployment_type, b.region)))
        .collect();
    let ownership = Ownership::load(&store.db).await?;
    let reservations = store.db.ptu_reservations().await?;
    // Amounts of different currencies cannot be added up.
    let mut currencies: Vec<&str> = reservations.iter().map(|r| r.currency.as_str()).collect();
    currencies.extend(prices.currencies());
    currencies.sort_unstable();
    currencies.dedup();
    if currencies.len() > 1 {
        return Err(invalid(format!(
            "the price book and PTU reservations mix currencies ({}); a chargeback needs one",
            currencies.join(", ")
        )));
    }

    let fine = read_fine(store, first, next, &ownership, &backends).await?;
    let mut charged: Vec<ChargebackRow> = fine
        .iter()
        .map(|f| ChargebackRow {
            group: positions.iter().map(|&i| f.dims[i].clone()).collect(),
            requests: f.requests,
            prompt_tokens: f.tokens.prompt,
            cached_tokens: f.tokens.cached,
            completion_tokens: f.tokens.completion,
            ..ChargebackRow::default()
        })
        .collect();

    // Pay-as-you-go: each fine row at the price in force on its day.
    for (f, row) in fine.iter().zip(charged.iter_mut()) {
        let (kind, region, model) = (&f.dims[4], &f.dims[5], &f.dims[3]);
        if is_provisioned(kind) || f.tokens == Tokens::default() {
            continue;
        }
        let day = day_of(f.hour_us);
        match prices.in_force(model, kind, region, &day) {
            Some(price) => row.payg_pico += token_cost_pico(&f.tokens, price),
            None => row.unpriced_tokens += f.tokens.prompt + f.tokens.completion,
        }
    }

    // PTU: every hour of every reservation in force, split by weighted tokens.
    let mut extra = Vec::new();
    let mut covered = vec![false; fine.len()];
    for r in &reservations {
        let (used, idle) = allocate_reservation(r, &fine, first, next)?;
        for (i, pico) in used {
            charged[i].ptu_pico += pico.0;
            charged[i].idle_pico += pico.1;
            covered[i] = true;
        }
        if idle > 0 {
            // Idle capacity nobody's share covers: its owner's, or unallocated.
            let owner = match IdlePolicy::parse(&r.idle_charged_to) {
                IdlePolicy::Owner(owner) => owner,
                IdlePolicy::Spread => UNALLOCATED.to_owned(),
            };
            let (kind, region) = backends.get(&r.backend).cloned().unwrap_or_default();
            let dims = [
                owner,
                NONE.into(),
                NONE.into(),
                r.deployment.clone(),
                kind,
                region,
                NONE.into(),
                NONE.into(),
            ];
            extra.push(ChargebackRow {
                group: positions.iter().map(|&i| dims[i].clone()).collect(),
                idle_pico: idle,
                ..ChargebackRow::default()
            });
        }
    }
    // Provisioned traffic no reservation was in force for has no price either.
    for ((f, row), covered) in fine.iter().zip(charged.iter_mut()).zip(covered) {
        if is_provisioned(&f.dims[4]) && !covered {
            row.unpriced_tokens += f.tokens.prompt + f.tokens.completion;
        }
    }
    charged.extend(extra);

    let mut groups: BTreeMap<Vec<String>, ChargebackRow> = BTreeMap::new();
    let mut total = ChargebackRow::default();
    for row in charged {
        add(&mut total, &row);
        let g = groups
            .entry(row.group.clone())
            .or_insert_with(|| ChargebackRow {
                group: row.group.clone(),
                ..ChargebackRow::default()
            });
        add(g, &row);
    }
    Ok(Chargeback {
        by: by.to_vec(),
        rows: groups.into_values().collect(),
        total,
    })
}

fn add(into: &mut ChargebackRow, row: &ChargebackRow) {
    into.requests += row.requests;
    into.prompt_tokens += row.prompt_tokens;
    into.cached_tokens += row.cached_tokens;
    into.completion_tokens += row.completion_tokens;
    into.payg_pico += row.payg_pico;
    into.ptu_pico += row.ptu_pico;
    into.idle_pico += row.idle_pico;
    into.unpriced_tokens += row.unpriced_tokens;
}

fn is_provisioned(deployment_type: &str) -> bool {
    deployment_type.ends_with("ProvisionedManaged")
}

fn day_of(hour_us: i64) -> String {
    DateTime::from_timestamp_micros(hour_us)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

const HOUR_US: i64 = 3_600_000_000;

/// Splits a reservation's hours of the month: per fine row, its (used, idle)
/// pico-amounts; and the idle cost of hours nobody's share covers.
#[allow(clippy::type_complexity)]
fn allocate_reservation(
    r: &PtuReservation,
    fine: &[Fine],
    first: NaiveDate,
    next: NaiveDate,
) -> Result<(Vec<(usize, (i128, i128))>, i128)> {
    let micros = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_micros())
    };
    let start = first.max(parse_day(&r.effective_from)?);
    let end = match &r.effective_to {
        Some(to) => next.min(parse_day(to)?),
        None => next,
    };
    if start >= end {
        return Ok((Vec::new(), 0));
    }
    let hours_in_month = (next - first).num_hours() as i128;
    let per_period = i128::from(r.ptus) * i128::from(r.cost_pico);
    // A monthly price is cut into hours whose costs add up to it exactly: hour k
    // of the month costs floor((k+1)·M/H) − floor(k·M/H).
    let hour_cost = |hour_us: i64| match r.cost_period.as_str() {
        "month" => {
            let k = i128::from((hour_us - micros(first)) / HOUR_US);
            per_period * (k + 1) / hours_in_month - per_period * k / hours_in_month
        }
        _ => per_period,
    };
    let mut consumers: BTreeMap<i64, Vec<(usize, i128)>> = BTreeMap::new();
    for (i, f) in fine.iter().enumerate() {
        if f.backend.as_deref() == Some(r.backend.as_str())
            && f.deployment.as_deref() == Some(r.deployment.as_str())
        {
            let weight = f.tokens.weighted_milli(r.output_token_weight_milli);
            consumers.entry(f.hour_us).or_default().push((i, weight));
        }
    }
    let policy = IdlePolicy::parse(&r.idle_charged_to);
    let mut used = Vec::new();
    let mut unassigned = 0;
    let mut hour = micros(start);
    while hour < micros(end) {
        let on_hour = consumers.get(&hour).map_or(&[][..], Vec::as_slice);
        let split = allocate_ptu_hour(hour_cost(hour), None, on_hour, &policy);
        for c in split.charges {
            used.push((c.consumer, (c.used_pico, c.idle_pico)));
        }
        unassigned += split.unassigned_idle_pico;
        hour += HOUR_US;
    }
    Ok((used, unassigned))
}

fn parse_day(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ReportsError::Argument(format!("stored date {text:?} is not YYYY-MM-DD")))
}

/// The month's usage per hour and every dimension, with owners and deployment
/// types resolved.
async fn read_fine(
    store: &Store,
    first: NaiveDate,
    next: NaiveDate,
    ownership: &Ownership,
    backends: &HashMap<String, (String, String)>,
) -> Result<Vec<Fine>> {
    let sql = format!(
        "SELECT CAST(date_trunc('hour', time) AS BIGINT) AS hour_us, subscription, product, \
         agent, api, backend, deployment, model, COUNT(*) AS requests, \
         CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt, \
         CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached, \
         CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion \
         FROM usage WHERE time >= '{first}T00:00:00Z' AND time < '{next}T00:00:00Z' \
         GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
    );
    let result = store.sql_read_only(&sql).await?;
    let mut fine = Vec::new();
    for batch in &result.batches {
        let text = |i: usize| -> Result<ArrayRef> {
            Ok(arrow::compute::cast(batch.column(i), &DataType::Utf8)
                .map_err(tollgate_store::StoreError::from)?)
        };
        let int = |i: usize| -> Result<ArrayRef> {
            Ok(arrow::compute::cast(batch.column(i), &DataType::Int64)
                .map_err(tollgate_store::StoreError::from)?)
        };
        let hour = int(0)?;
        let strings: Vec<ArrayRef> = (1..8).map(text).collect::<Result<_>>()?;
        let counts: Vec<ArrayRef> = (8..12).map(int).collect::<Result<_>>()?;
        let s = |col: usize, row: usize| {
            let a = strings[col].as_string::<i32>();
            (!a.is_null(row)).then(|| a.value(row).to_owned())
        };
        let n = |col: usize, row: usize| counts[col].as_primitive::<Int64Type>().value(row);
        for row in 0..batch.num_rows() {
            let (subscription, product, agent, api) = (s(0, row), s(1, row), s(2, row), s(3, row));
            let (backend, deployment, model) = (s(4, row), s(5, row), s(6, row));
            let (kind, region) = backend
                .as_ref()
                .and_then(|b| backends.get(b).cloned())
                .unwrap_or_else(|| (NONE.to_owned(), NONE.to_owned()));
            let owner = ownership
                .cost_centre(
                    subscription.as_deref(),
                    agent.as_deref(),
                    product.as_deref(),
                )
                .to_owned();
            let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| NONE.to_owned());
            fine.push(Fine {
                hour_us: hour.as_primitive::<Int64Type>().value(row),
                dims: [
                    owner,
                    or_none(&subscription),
                    or_none(&product),
                    or_none(&model),
                    kind,
                    region,
                    or_none(&api),
                    or_none(&agent),
                ],
                backend,
                deployment,
                requests: n(0, row),
                tokens: Tokens {
                    prompt: n(1, row),
                    cached: n(2, row),
                    completion: n(3, row),
                },
            });
        }
    }
    Ok(fine)
}

/// Pico-amounts rounded to cents so that the rounded parts add up to the rounded
/// total (largest remainder): a column of a report always sums to its total.
pub fn to_cents(values: &[i128]) -> (Vec<i64>, i64) {
    const PICO_PER_CENT: i128 = 10_000_000_000;
    let total: i128 = values.iter().sum();
    let total_cents = (total + PICO_PER_CENT / 2).div_euclid(PICO_PER_CENT);
    let mut cents: Vec<i128> = values.iter().map(|v| v.div_euclid(PICO_PER_CENT)).collect();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(values[i].rem_euclid(PICO_PER_CENT)), i));
    let short = total_cents - cents.iter().sum::<i128>();
    for &i in order.iter().take(short.max(0) as usize) {
        cents[i] += 1;
    }
    (
        cents.into_iter().map(|c| c as i64).collect(),
        total_cents as i64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounded_cents_add_up_to_the_rounded_total() {
        let third = 10_000_000_000 / 3; // a third of a cent
        let (cents, total) = to_cents(&[third * 100 + 1, third * 100 + 1, third * 100 + 1]);
        assert_eq!(total, 100);
        assert_eq!(cents.iter().sum::<i64>(), total);
        assert_eq!(cents, vec![34, 33, 33]);
    }

    #[test]
    fn a_monthly_reservation_costs_its_month_to_the_pico() {
        // $100 over October's 744 hours does not divide evenly.
        let r = PtuReservation {
            backend: "b".into(),
            deployment: "d".into(),
            ptus: 1,
            cost_pico: 100 * crate::rate::PICO,
            cost_period: "month".into(),
            currency: "USD".into(),
            output_token_weight_milli: 1000,
            idle_charged_to: "cc-ops".into(),
            effective_from: "2026-01-01".into(),
            effective_to: None,
            source: String::new(),
        };
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let (used, idle) =
            allocate_reservation(&r, &[], day("2026-10-01"), day("2026-11-01")).unwrap();
        assert!(used.is_empty());
        assert_eq!(idle, 100 * i128::from(crate::rate::PICO));
    }

    proptest::proptest! {
        #[test]
        fn cents_always_sum_to_the_total(values in proptest::collection::vec(0i128..1_000_000_000_000_000, 0..20)) {
            let (cents, total) = to_cents(&values);
            proptest::prop_assert_eq!(cents.iter().sum::<i64>(), total);
        }
    }
}
