//! The monthly chargeback: who spent what on which models. Usage is read per
//! hour and per every dimension at once (the finest grain), each fine row is
//! priced exactly, PTU hours are split by weighted tokens, and only then are rows
//! grouped as asked: every grouping sums the same integer pico-amounts, so every
//! grouping adds up to the same month total.
//!
//! The fine rows come from the hourly rollups ([`crate::fine`]), never from raw
//! rows.

use std::sync::Arc;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use tollgate_store::StateDb;
use tollgate_store::state::{BackendRow, OwnershipRow, PriceRow, PtuReservation};
use tollgate_store::versioned::VersionedMap;
use tollgate_store::{Store, Sym};

use crate::fine::{FastMap, none};
use crate::month::Month;
use crate::priced::{PricedMonth, price_month};
use crate::{ReportsError, Result};

/// A chargeback dimension: what a chargeback can be grouped by. A fine row
/// holds all of them, in this order ([`Dimension::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    CostCentre,
    Subscription,
    Product,
    Model,
    DeploymentType,
    Region,
    Api,
    Agent,
}

impl Dimension {
    pub const ALL: [Dimension; 8] = [
        Dimension::CostCentre,
        Dimension::Subscription,
        Dimension::Product,
        Dimension::Model,
        Dimension::DeploymentType,
        Dimension::Region,
        Dimension::Api,
        Dimension::Agent,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Dimension::CostCentre => "cost_centre",
            Dimension::Subscription => "subscription",
            Dimension::Product => "product",
            Dimension::Model => "model",
            Dimension::DeploymentType => "deployment_type",
            Dimension::Region => "region",
            Dimension::Api => "api",
            Dimension::Agent => "agent",
        }
    }

    /// Where the dimension sits in a fine row's dimensions.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// The dimensions' names, in [`Dimension::ALL`] order.
pub const DIMENSIONS: [&str; 8] = [
    Dimension::CostCentre.as_str(),
    Dimension::Subscription.as_str(),
    Dimension::Product.as_str(),
    Dimension::Model.as_str(),
    Dimension::DeploymentType.as_str(),
    Dimension::Region.as_str(),
    Dimension::Api.as_str(),
    Dimension::Agent.as_str(),
];

pub use crate::fine::NONE;

/// One group of the report, amounts in pico-units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargebackRow {
    /// Values of the grouping dimensions, in the order asked (all of
    /// [`DIMENSIONS`] for the fine rows a month close stores).
    pub group: Vec<String>,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub cached_tokens: i64,
    pub completion_tokens: i64,
    /// Requests a semantic cache answered: they cost nothing.
    pub cache_hits: i64,
    #[serde(with = "crate::rate::serde_amount")]
    pub payg_pico: i128,
    #[serde(with = "crate::rate::serde_amount")]
    pub ptu_pico: i128,
    /// Idle PTU capacity charged to this group.
    #[serde(with = "crate::rate::serde_amount")]
    pub idle_pico: i128,
    /// Late data for a closed month, charged in the next open month.
    #[serde(with = "crate::rate::serde_amount")]
    pub adjustment_pico: i128,
    /// What caching saved, an estimate not part of the total: cached prompt
    /// tokens at the uncached rate minus what they cost, plus each semantic
    /// cache hit at the mean cost of its subscription's model calls that month.
    #[serde(with = "crate::rate::serde_amount")]
    pub cache_savings_pico: i128,
    /// Tokens no price row covered: reported, never silently free.
    pub unpriced_tokens: i64,
    /// The same group's total in the previous month.
    #[serde(with = "crate::rate::serde_amount")]
    pub previous_total_pico: i128,
    /// For an adjustment row in a stored snapshot: the closed month it corrects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjusts: Option<String>,
}

impl ChargebackRow {
    pub fn total_pico(&self) -> i128 {
        self.payg_pico + self.ptu_pico + self.idle_pico + self.adjustment_pico
    }
}

#[derive(Debug, Clone)]
pub struct Chargeback {
    pub month: Month,
    pub by: Vec<String>,
    pub rows: Vec<ChargebackRow>,
    pub total: ChargebackRow,
    /// Set when the month is closed: the report comes from this stored snapshot.
    pub closed: Option<crate::close::Closure>,
    /// Whether any traffic was ingested for the month (or it is closed). A
    /// month without is no data, not a month of idle reservations: its rows
    /// are empty.
    pub has_data: bool,
    /// Whether any traffic was ingested for the previous month. Without it
    /// there is nothing to compare with (its reservations alone would show a
    /// month of idle capacity): `previous_total_pico` stays zero.
    pub previous_has_data: bool,
}

/// The chargeback of a month, grouped by `by` (names from [`DIMENSIONS`]): from
/// its snapshot if the month is closed, else from the rollups with adjustments
/// for closed months before it.
pub async fn chargeback(store: &Store, month: Month, by: &[String]) -> Result<Chargeback> {
    chargeback_cached(store, &ChargebackCache::default(), month, by).await
}

/// Months as last computed, and answers as last grouped, with the inputs
/// version they were computed at: reused while
/// [`tollgate_store::StateDb::inputs_version`] stays the same (no batch rolled
/// up, no reference import, no close since), so a long-running process
/// answers a repeated report without computing it again, and a new grouping
/// of an unchanged month without pricing it again.
#[derive(Debug)]
pub struct ChargebackCache {
    months: VersionedMap<Month, MonthRows>,
    answers: VersionedMap<Grouping, Chargeback>,
}

impl Default for ChargebackCache {
    fn default() -> Self {
        Self {
            // A month at one version is the current and the previous month
            // of some grouping: a handful.
            months: VersionedMap::new(usize::MAX),
            answers: VersionedMap::new(ANSWERS_KEPT),
        }
    }
}

/// A month and the dimensions it is grouped by.
type Grouping = (Month, Vec<String>);

/// Groupings kept at most per version.
const ANSWERS_KEPT: usize = 64;

/// A month's rows: priced now from the rollups (with the adjustments of
/// closed months it corrects), or as its snapshot stored them.
#[derive(Debug)]
pub(crate) enum MonthData {
    Priced {
        priced: PricedMonth,
        adjustments: Vec<Keyed>,
    },
    Stored(Vec<Keyed>),
}

type MonthRows = (MonthData, Option<crate::close::Closure>);

impl MonthData {
    /// Adds every row into its group (`key` makes the group of its
    /// dimensions) and into `total`; `previous` adds only its total into
    /// `previous_total_pico`.
    fn group_into(
        &self,
        groups: &mut FastMap<[Sym; 8], ChargebackRow>,
        total: &mut ChargebackRow,
        key: impl Fn(&[Sym; 8]) -> [Sym; 8],
        previous: bool,
    ) {
        let mut keyed = |dims: &[Sym; 8], row: &ChargebackRow| {
            let group = groups.entry(key(dims)).or_default();
            if previous {
                let pico = row.total_pico();
                total.previous_total_pico += pico;
                group.previous_total_pico += pico;
            } else {
                add(total, row);
                add(group, row);
            }
        };
        match self {
            MonthData::Priced {
                priced,
                adjustments,
            } => {
                for (dims, idle) in &priced.unassigned_idle {
                    let row = ChargebackRow {
                        idle_pico: *idle,
                        ..ChargebackRow::default()
                    };
                    keyed(dims, &row);
                }
                adjustments.iter().for_each(|k| keyed(&k.dims, &k.row));
                // The fine rows straight into their groups (the bulk of a month).
                for (f, charge) in priced.rows() {
                    let group = groups.entry(key(&f.dims)).or_default();
                    if previous {
                        total.previous_total_pico += charge.total();
                        group.previous_total_pico += charge.total();
                    } else {
                        charge.add_to(total, f);
                        charge.add_to(group, f);
                    }
                }
            }
            MonthData::Stored(rows) => rows.iter().for_each(|k| keyed(&k.dims, &k.row)),
        }
    }

    /// Whether the month holds any request, or a correction of a closed month
    /// for late data: a month with neither has no data, whatever its
    /// reservations cost.
    fn has_traffic(&self) -> bool {
        let corrects = |rows: &[Keyed]| {
            rows.iter()
                .any(|k| k.row.requests > 0 || k.row.adjustment_pico != 0)
        };
        match self {
            MonthData::Priced {
                priced,
                adjustments,
            } => priced.rows().any(|(f, _)| f.requests > 0) || corrects(adjustments),
            MonthData::Stored(rows) => corrects(rows),
        }
    }
}

/// A fine row with its dimensions interned ([`DIMENSIONS`] order); its
/// `row.group` is left empty until it is grouped for an answer.
#[derive(Debug, Clone)]
pub(crate) struct Keyed {
    pub(crate) dims: [Sym; 8],
    pub(crate) row: ChargebackRow,
}

impl Keyed {
    /// A row as a snapshot or an adjustment holds it (all [`DIMENSIONS`]).
    pub(crate) fn from_row(mut row: ChargebackRow) -> Keyed {
        let mut dims = [none(); 8];
        for (slot, value) in dims.iter_mut().zip(&row.group) {
            *slot = Sym::new(value);
        }
        row.group = Vec::new();
        Keyed { dims, row }
    }

    pub(crate) fn into_row(self) -> ChargebackRow {
        ChargebackRow {
            group: self.dims.iter().map(|d| d.to_string()).collect(),
            ..self.row
        }
    }
}

impl ChargebackCache {
    async fn month_rows(
        &self,
        store: &Store,
        month: Month,
        version: i64,
    ) -> Result<Arc<MonthRows>> {
        if let Some(rows) = self.months.get(&month, version) {
            verify_closed(rows.1.as_ref())?;
            return Ok(rows);
        }
        let rows = Arc::new(crate::close::month_data(store, month).await?);
        self.months.insert(month, version, rows.clone());
        Ok(rows)
    }

    fn answer(&self, month: Month, by: &[String], version: i64) -> Option<Arc<Chargeback>> {
        self.answers.get(&(month, by.to_vec()), version)
    }

    fn keep(&self, by: &[String], version: i64, answer: Arc<Chargeback>) {
        self.answers
            .insert((answer.month, by.to_vec()), version, answer);
    }
}

/// A closed month is only ever served from its snapshot as closed: a cached
/// answer of one is checked against the snapshot's sha256 again.
fn verify_closed(closed: Option<&crate::close::Closure>) -> Result<()> {
    match closed {
        Some(closed) => {
            crate::snapshot::verified(std::path::Path::new(&closed.json_path), &closed.json_sha256)
                .map(drop)
        }
        None => Ok(()),
    }
}

/// [`chargeback`], reusing what `cache` holds for inputs that have not changed.
#[tracing::instrument(skip(store, cache), err)]
pub async fn chargeback_cached(
    store: &Store,
    cache: &ChargebackCache,
    month: Month,
    by: &[String],
) -> Result<Chargeback> {
    let positions = positions(by)?;
    let version = store.db.inputs_version().await?;
    if let Some(answer) = cache.answer(month, by, version) {
        verify_closed(answer.closed.as_ref())?;
        return Ok(answer.as_ref().clone());
    }
    let current = cache.month_rows(store, month, version).await?;
    let previous = cache.month_rows(store, month.previous()?, version).await?;
    let ((current, closed), (previous, _)) = (current.as_ref(), previous.as_ref());
    let mut groups: FastMap<[Sym; 8], ChargebackRow> = FastMap::default();
    let mut total = ChargebackRow::default();
    let key = |dims: &[Sym; 8]| regroup(dims, &positions);
    let has_data = closed.is_some() || current.has_traffic();
    if has_data {
        current.group_into(&mut groups, &mut total, key, false);
    }
    // Groups of last month only still show, at zero, so totals add up.
    let previous_has_data = previous.has_traffic();
    if previous_has_data {
        previous.group_into(&mut groups, &mut total, key, true);
    }
    let answer = Chargeback {
        month,
        by: by.to_vec(),
        rows: sorted_groups(groups, positions.len()),
        total,
        closed: closed.clone(),
        has_data,
        previous_has_data,
    };
    cache.keep(by, version, Arc::new(answer.clone()));
    Ok(answer)
}

/// Rows at the finest grain grouped by `by` into a month's chargeback, with
/// nothing to compare against: a billed-basis month (`crate::trueup`).
pub(crate) fn grouped(month: Month, by: &[String], rows: Vec<Keyed>) -> Result<Chargeback> {
    let positions = positions(by)?;
    let mut groups: FastMap<[Sym; 8], ChargebackRow> = FastMap::default();
    let mut total = ChargebackRow::default();
    let has_data = !rows.is_empty();
    MonthData::Stored(rows).group_into(
        &mut groups,
        &mut total,
        |dims| regroup(dims, &positions),
        false,
    );
    Ok(Chargeback {
        month,
        by: by.to_vec(),
        rows: sorted_groups(groups, positions.len()),
        total,
        closed: None,
        has_data,
        previous_has_data: false,
    })
}

/// The dimensions at `positions`, in that order (the rest left as `(none)`):
/// a grouping's key.
fn regroup(dims: &[Sym; 8], positions: &[usize]) -> [Sym; 8] {
    let mut key = [none(); 8];
    for (slot, &i) in key.iter_mut().zip(positions) {
        *slot = dims[i];
    }
    key
}

/// Groups as rows ordered by their values, each naming its first `len` values.
fn sorted_groups(groups: FastMap<[Sym; 8], ChargebackRow>, len: usize) -> Vec<ChargebackRow> {
    let mut rows: Vec<([Sym; 8], ChargebackRow)> = groups.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0[..len].cmp(&b.0[..len]));
    rows.into_iter()
        .map(|(key, row)| ChargebackRow {
            group: key[..len].iter().map(|d| d.to_string()).collect(),
            ..row
        })
        .collect()
}

/// Where each of `by` sits among [`DIMENSIONS`].
fn positions(by: &[String]) -> Result<Vec<usize>> {
    by.iter()
        .map(|d| {
            DIMENSIONS
                .iter()
                .position(|known| known == d)
                .ok_or_else(|| {
                    ReportsError::Argument(format!(
                        "cannot group by {d:?}: choose from {}",
                        DIMENSIONS.join(", ")
                    ))
                })
        })
        .collect()
}

/// What a month is priced with: the price book, backends, ownership and PTU
/// reservations. A month close stores the ones it used, so that correcting a
/// closed month for late data prices it as it was closed, not by today's tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reference {
    pub prices: Vec<PriceRow>,
    pub backends: Vec<BackendRow>,
    pub ownership: Vec<OwnershipRow>,
    pub reservations: Vec<PtuReservation>,
}

impl Reference {
    /// The reference data stored now.
    pub async fn load(db: &StateDb) -> Result<Reference> {
        Ok(Reference {
            prices: db.price_book().await?,
            backends: db.backends().await?,
            ownership: db.ownership().await?,
            reservations: db.ptu_reservations().await?,
        })
    }
}

/// The month's charges at the finest grain (every dimension), computed now from
/// the rollups and the reference data stored now.
pub async fn fine_charges(store: &Store, month: Month) -> Result<Vec<ChargebackRow>> {
    fine_charges_with(store, month, &Reference::load(&store.db).await?).await
}

/// [`fine_charges`] priced with the given reference data.
pub async fn fine_charges_with(
    store: &Store,
    month: Month,
    reference: &Reference,
) -> Result<Vec<ChargebackRow>> {
    let mut rows = keyed_charges(store, month, reference).await?;
    // A stable order: what a snapshot stores.
    rows.sort_unstable_by_key(|k| k.dims);
    Ok(rows.into_iter().map(Keyed::into_row).collect())
}

/// [`fine_charges_with`], its dimensions left interned, in no order.
#[tracing::instrument(skip(store, reference), err)]
pub(crate) async fn keyed_charges(
    store: &Store,
    month: Month,
    reference: &Reference,
) -> Result<Vec<Keyed>> {
    let priced = price_month(store, month, reference).await?;
    // One row per combination.
    let mut merged: FastMap<[Sym; 8], ChargebackRow> = FastMap::default();
    for (f, charge) in priced.rows() {
        charge.add_to(merged.entry(f.dims).or_default(), f);
    }
    for (dims, idle) in &priced.unassigned_idle {
        merged.entry(*dims).or_default().idle_pico += idle;
    }
    Ok(merged
        .into_iter()
        .map(|(dims, row)| Keyed { dims, row })
        .collect())
}

/// A month's spend day by day, grouped by `by` (names from [`DIMENSIONS`]),
/// computed from the rollups as they are now: a closed month's snapshot keeps
/// no days, so its days are priced with the reference data it was closed with
/// and include any data that arrived late. What belongs to no day is returned
/// apart, grouped the same way: idle PTU capacity no hour's consumers took, and
/// an open month's corrections of closed months for late data.
#[tracing::instrument(skip(store), err)]
pub async fn daily(store: &Store, month: Month, by: &[String]) -> Result<DailySpend> {
    let positions = positions(by)?;
    let (reference, adjustments) = match crate::close::frozen_reference(store, month).await? {
        Some(frozen) => (frozen, Vec::new()),
        None => (
            Reference::load(&store.db).await?,
            crate::close::adjustments(store, month).await?,
        ),
    };
    let priced = price_month(store, month, &reference).await?;
    let mut by_day: FastMap<(i64, [Sym; 8]), ChargebackRow> = FastMap::default();
    for (f, charge) in priced.rows() {
        let key = (f.hour_us.div_euclid(DAY_US), regroup(&f.dims, &positions));
        charge.add_to(by_day.entry(key).or_default(), f);
    }
    let mut days: Vec<((i64, [Sym; 8]), ChargebackRow)> = by_day.into_iter().collect();
    let len = positions.len();
    days.sort_unstable_by(|a, b| (a.0.0, &a.0.1[..len]).cmp(&(b.0.0, &b.0.1[..len])));
    let days = days
        .into_iter()
        .map(|((day, key), row)| {
            let row = ChargebackRow {
                group: key[..len].iter().map(|d| d.to_string()).collect(),
                ..row
            };
            (day_of(day * DAY_US), row)
        })
        .collect();
    let mut undated: FastMap<[Sym; 8], ChargebackRow> = FastMap::default();
    for (dims, idle) in &priced.unassigned_idle {
        undated
            .entry(regroup(dims, &positions))
            .or_default()
            .idle_pico += idle;
    }
    for k in adjustments.into_iter().map(Keyed::from_row) {
        add(
            undated.entry(regroup(&k.dims, &positions)).or_default(),
            &k.row,
        );
    }
    Ok(DailySpend {
        month,
        by: by.to_vec(),
        days,
        undated: sorted_groups(undated, len),
    })
}

/// Days of months as last computed, by month and grouping, with the inputs
/// version they were computed at (as [`ChargebackCache`]): a page showing a
/// month's days again prices nothing while no batch, import or close came.
#[derive(Debug)]
pub struct DailyCache {
    entries: VersionedMap<DailyKey, DailySpend>,
}

impl Default for DailyCache {
    fn default() -> Self {
        Self {
            entries: VersionedMap::new(DAILY_CACHED),
        }
    }
}

/// A month and the dimensions its days are grouped by.
type DailyKey = (Month, Vec<String>);

/// Months and groupings kept at most; the oldest go first.
const DAILY_CACHED: usize = 16;

/// [`daily`], reusing what `cache` holds for inputs that have not changed.
pub async fn daily_cached(
    store: &Store,
    cache: &DailyCache,
    month: Month,
    by: &[String],
) -> Result<Arc<DailySpend>> {
    let version = store.db.inputs_version().await?;
    let key = (month, by.to_vec());
    if let Some(spend) = cache.entries.get(&key, version) {
        return Ok(spend);
    }
    let spend = Arc::new(daily(store, month, by).await?);
    cache.entries.insert(key, version, spend.clone());
    Ok(spend)
}

/// [`daily`]'s answer: `(day, row)` in day then group order.
#[derive(Debug, Clone)]
pub struct DailySpend {
    pub month: Month,
    pub by: Vec<String>,
    pub days: Vec<(String, ChargebackRow)>,
    pub undated: Vec<ChargebackRow>,
}

/// Adds `row`'s amounts and counts into `into` (its group is left alone).
pub fn add(into: &mut ChargebackRow, row: &ChargebackRow) {
    into.requests = into.requests.saturating_add(row.requests);
    into.prompt_tokens = into.prompt_tokens.saturating_add(row.prompt_tokens);
    into.cached_tokens = into.cached_tokens.saturating_add(row.cached_tokens);
    into.completion_tokens = into.completion_tokens.saturating_add(row.completion_tokens);
    into.cache_hits = into.cache_hits.saturating_add(row.cache_hits);
    into.payg_pico += row.payg_pico;
    into.ptu_pico += row.ptu_pico;
    into.idle_pico += row.idle_pico;
    into.adjustment_pico += row.adjustment_pico;
    into.cache_savings_pico += row.cache_savings_pico;
    into.unpriced_tokens = into.unpriced_tokens.saturating_add(row.unpriced_tokens);
    into.previous_total_pico += row.previous_total_pico;
}

pub(crate) fn is_provisioned(deployment_type: &str) -> bool {
    deployment_type.ends_with("ProvisionedManaged")
}

pub(crate) fn day_of(hour_us: i64) -> String {
    DateTime::from_timestamp_micros(hour_us)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

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

    proptest::proptest! {
        #[test]
        fn cents_always_sum_to_the_total(values in proptest::collection::vec(0i128..1_000_000_000_000_000, 0..20)) {
            let (cents, total) = to_cents(&values);
            proptest::prop_assert_eq!(cents.iter().sum::<i64>(), total);
        }
    }
}
