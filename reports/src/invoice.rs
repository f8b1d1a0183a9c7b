//! Both sides of a month's reconciliation, loaded: the cost lines committed
//! to `billed_costs` read through the meter map and the resource map
//! (`backends.csv`'s `resource_id`), and the month the chargeback prices,
//! per day, resource, model and token kind, with the hours each PTU
//! reservation holds. [`crate::reconcile`] compares them; [`crate::trueup`]
//! allocates the bill by the same keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use tollgate_store::billed::BilledLine;
use tollgate_store::state::BackendRow;
use tollgate_store::{Store, Sym};

use crate::Result;
use crate::chargeback::{Reference, day_of, is_provisioned};
use crate::cost::{PriceBook, Tokens, token_cost_pico};
use crate::fine::{FastMap, NONE, micros};
use crate::meter::{MeterMap, TokenKind, unit_size};
use crate::month::Month;
use crate::priced::{PricedMonth, price_month, reserved_days};
use crate::reconcile::{Apart, Billed, Key, Logged, ReconcileBy, ReconcileRow, reconcile};

const DAY_US: i64 = 86_400_000_000;
const MILLI: i128 = 1000;
const PICO: i128 = tollgate_store::rate::PICO as i128;

/// A cost file the billed side was read from: its ingest batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CostFile {
    pub batch_id: i64,
    pub source: String,
}

/// A month's reconciliation, grouped as asked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reconciliation {
    #[serde(serialize_with = "crate::month::serialize")]
    #[schema(value_type = String)]
    pub month: Month,
    pub by: Vec<ReconcileBy>,
    /// The currency compared: the price book's.
    pub currency: Option<String>,
    pub rows: Vec<ReconcileRow>,
    pub total: ReconcileRow,
    pub cost_files: Vec<CostFile>,
    /// The days compared (`YYYY-MM-DD`, both included): those the cost files
    /// hold lines for, so a month-to-date export is not set against a whole
    /// month of reservations; the whole month when none are imported.
    pub period: (String, String),
    /// What was left out, and why (lines in another currency).
    pub warnings: Vec<String>,
}

impl Reconciliation {
    /// Whether any cost line was imported for the month.
    pub fn has_billed(&self) -> bool {
        !self.cost_files.is_empty()
    }
}

/// Which backend resource a cost line names: backends by their resource id,
/// lower-cased (Azure ids are case-insensitive).
#[derive(Debug, Default)]
pub(crate) struct Resources {
    by_backend: HashMap<String, String>,
    ids: BTreeSet<String>,
}

/// The account a resource id is, lower-cased: Azure ids are case-insensitive,
/// and an Azure OpenAI / Foundry account bills for all its deployments, so a
/// deployment's id (`.../accounts/a/deployments/d`) is compared as its account's.
pub(crate) fn resource_key(id: &str) -> String {
    let id = id.trim().trim_end_matches('/').to_ascii_lowercase();
    match id.find("/deployments/") {
        Some(at) => id[..at].to_owned(),
        None => id,
    }
}

impl Resources {
    pub(crate) fn of(backends: &[BackendRow]) -> Resources {
        let mut resources = Resources::default();
        for b in backends {
            if let Some(id) = &b.resource_id {
                let id = resource_key(id);
                resources.ids.insert(id.clone());
                resources.by_backend.insert(b.backend.clone(), id);
            }
        }
        resources
    }

    pub(crate) fn of_backend(&self, backend: &str) -> Option<&str> {
        self.by_backend.get(backend).map(String::as_str)
    }

    /// The backend resource a line's id names, account to account.
    fn matching(&self, line_id: &str) -> Option<&str> {
        self.ids.get(&resource_key(line_id)).map(String::as_str)
    }
}

/// The billed side by key, with the cost files it came from.
#[derive(Debug, Default)]
pub(crate) struct BilledSide {
    pub(crate) keys: BTreeMap<Key, Billed>,
    pub(crate) batches: BTreeSet<i64>,
    pub(crate) warnings: Vec<String>,
    /// The first and last day the lines are for.
    pub(crate) days: Option<(String, String)>,
}

/// Tokens or hours a line bills, in thousandths: its quantity in its unit,
/// else its pricing quantity in the pricing unit, else the meter's unit.
fn quantity_milli(line: &BilledLine, meter_unit: Option<i64>) -> i128 {
    // Checked: a line's own unit may say anything; an absurd one reads as none.
    let sized = |q: Option<i128>, size: Option<i64>| {
        let product = q?.checked_mul(i128::from(size?))?.checked_mul(MILLI)?;
        Some(product / PICO)
    };
    let unit_of = |unit: Option<&str>| unit.and_then(unit_size);
    sized(line.quantity, unit_of(line.unit.as_deref()))
        .or_else(|| sized(line.pricing_quantity, unit_of(line.pricing_unit.as_deref())))
        .or_else(|| sized(line.quantity, Some(meter_unit.unwrap_or(1))))
        .unwrap_or(0)
}

/// The list cost a line states, else its pricing quantity at the list unit
/// price, else what it effectively cost.
fn list_cost(line: &BilledLine) -> i128 {
    let priced = || Some(line.pricing_quantity?.checked_mul(line.list_unit_price?)? / PICO);
    line.list_cost
        .or_else(priced)
        .or(line.effective_cost)
        .unwrap_or(line.billed_cost)
}

/// The key a cost line is compared under, why it is not compared (if it
/// is not), and the unit its meter's name gives.
fn key_of(
    line: &BilledLine,
    meters: &MeterMap,
    resources: &Resources,
) -> (Key, Option<Apart>, Option<i64>) {
    let credit = line
        .charge_category
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("credit"));
    let meter = line.meter.as_deref().and_then(|m| meters.resolve(m));
    let meter = meter.filter(|_| !credit);
    let resource = line
        .resource_id
        .as_deref()
        .and_then(|id| resources.matching(id));
    let apart = match (&meter, resource) {
        _ if credit => Some(Apart::Credit),
        (None, _) => Some(Apart::UnmappedMeter),
        (_, None) => Some(Apart::UnmappedResource),
        _ => None,
    };
    let resource = match (resource, line.resource_id.as_deref()) {
        (Some(matched), _) => matched.to_owned(),
        (None, Some(id)) => resource_key(id),
        (None, None) => NONE.to_owned(),
    };
    // Credits apart from the charges they discount: a key of their own.
    // PTU hours bill a deployment, not a model: compared with the
    // reservations' hours whatever model a meter map row names.
    let ptu = meter
        .as_ref()
        .is_some_and(|m| m.kind == TokenKind::ProvisionedHour);
    let model = match (credit, meter.as_ref().and_then(|m| m.model.clone())) {
        (true, _) => "(credit)".to_owned(),
        (false, _) if ptu => NONE.to_owned(),
        (false, model) => model.unwrap_or_else(|| NONE.to_owned()),
    };
    let key = Key {
        day: day_of(line.time_us),
        resource,
        model,
        kind: meter.as_ref().map(|m| m.kind),
    };
    (key, apart, meter.and_then(|m| m.unit))
}

pub(crate) fn billed_side(
    lines: &[BilledLine],
    meters: &MeterMap,
    resources: &Resources,
    currency: Option<&str>,
) -> BilledSide {
    let mut side = BilledSide::default();
    let mut other_currency: BTreeMap<&str, usize> = BTreeMap::new();
    let exports: BTreeSet<&str> = lines.iter().map(|l| l.export.as_str()).collect();
    if exports.len() > 1 {
        side.warnings.push(format!(
            "the month holds lines of {} exports: a FOCUS and a cost-details export of the \
             same bill count its charges twice (import one of them)",
            exports.into_iter().collect::<Vec<_>>().join(" and ")
        ));
    }
    for line in lines {
        if currency.is_some_and(|c| c != line.currency) {
            *other_currency.entry(&line.currency).or_default() += 1;
            continue;
        }
        side.batches.insert(line.batch_id);
        let (key, apart, meter_unit) = key_of(line, meters, resources);
        let (first, last) = side
            .days
            .get_or_insert_with(|| (key.day.clone(), key.day.clone()));
        if key.day < *first {
            first.clone_from(&key.day);
        }
        if key.day > *last {
            last.clone_from(&key.day);
        }
        let entry = side.keys.entry(key).or_default();
        entry.apart = entry.apart.or(apart);
        entry.quantity_milli += quantity_milli(line, meter_unit);
        entry.billed += line.billed_cost;
        entry.effective += line.effective_cost.unwrap_or(line.billed_cost);
        entry.list += list_cost(line);
    }
    side.warnings
        .extend(other_currency.into_iter().map(|(c, n)| {
            format!(
                "{n} cost line{} billed in {c} left out: the price book is in {}",
                if n == 1 { "" } else { "s" },
                currency.unwrap_or("another currency")
            )
        }));
    side
}

/// Who consumed one key, with their weights: estimated cost and tokens (for
/// token kinds), or their part of the reservation's cost (provisioned hours).
pub(crate) type Consumers = HashMap<Key, FastMap<[Sym; 8], (i128, i128)>>;

/// The logged side by key, and (when asked) each key's consumers with the
/// counts of every fine group (what a billed-basis chargeback still shows).
#[derive(Debug, Default)]
pub(crate) struct LoggedSide {
    pub(crate) keys: BTreeMap<Key, Logged>,
    pub(crate) consumers: Consumers,
    pub(crate) counts: FastMap<[Sym; 8], crate::chargeback::ChargebackRow>,
}

/// The resource a backend's usage is compared under: its resource id, or a
/// name that says it has none.
fn logged_resource(resources: &Resources, backend: Option<Sym>) -> (String, bool) {
    let backend = backend.map_or(NONE, |b| b.as_str());
    match resources.of_backend(backend) {
        Some(id) => (id.to_owned(), false),
        None => (format!("(no resource_id: {backend})"), true),
    }
}

/// A row's tokens apart by the kind the bill meters them as: uncached input,
/// cached input, output (each priced alone as it is billed alone).
fn by_kind(t: Tokens) -> [(TokenKind, Tokens); 3] {
    let only = |prompt, cached, completion| Tokens {
        prompt,
        cached,
        completion,
    };
    [
        (TokenKind::Input, only((t.prompt - t.cached).max(0), 0, 0)),
        (TokenKind::CachedInput, only(t.cached, t.cached, 0)),
        (TokenKind::Output, only(0, 0, t.completion)),
    ]
}

pub(crate) fn logged_side(
    priced: &PricedMonth,
    reference: &Reference,
    resources: &Resources,
    month: Month,
    period: &Period,
    with_consumers: bool,
) -> Result<LoggedSide> {
    let mut side = LoggedSide::default();
    let book = PriceBook::new(reference.prices.clone());
    let provisioned: HashMap<&str, bool> = reference
        .backends
        .iter()
        .map(|b| (b.backend.as_str(), is_provisioned(&b.deployment_type)))
        .collect();
    for (f, charge) in priced.rows() {
        let day = day_of(f.hour_us);
        if !period.holds(&day) {
            continue;
        }
        if with_consumers {
            // Counts only: the money comes from the bill.
            crate::priced::Charge::default().add_to(side.counts.entry(f.dims).or_default(), f);
        }
        let backend = f.backend.map_or(NONE, |b| b.as_str());
        let (resource, unmapped) = logged_resource(resources, f.backend);
        if provisioned.get(backend).copied().unwrap_or(false) {
            if with_consumers {
                let key = ptu_key(&day, &resource);
                let weight = charge.ptu + charge.idle;
                let slot = side
                    .consumers
                    .entry(key)
                    .or_default()
                    .entry(f.dims)
                    .or_default();
                slot.0 += weight;
                slot.1 += weight;
            }
            continue;
        }
        let price = book.in_force(
            f.model().as_str(),
            f.deployment_type().as_str(),
            f.region().as_str(),
            &day,
        );
        for (kind, tokens) in by_kind(f.tokens) {
            let count = i128::from(tokens.billable());
            if count == 0 {
                continue;
            }
            let cost = price.map_or(0, |p| token_cost_pico(&tokens, p));
            let key = Key {
                day: day.clone(),
                resource: resource.clone(),
                model: f.model().to_string(),
                kind: Some(kind),
            };
            if with_consumers {
                let slot = side
                    .consumers
                    .entry(key.clone())
                    .or_default()
                    .entry(f.dims)
                    .or_default();
                slot.0 += cost;
                slot.1 += count;
            }
            let logged = side.keys.entry(key).or_default();
            logged.quantity_milli += count * MILLI;
            logged.estimated += cost;
            logged.unmapped = unmapped;
            if let Some(p) = price {
                logged.sources.insert(p.source.clone());
            }
        }
    }
    reserved_side(&mut side, reference, resources, month, period)?;
    Ok(side)
}

fn ptu_key(day: &str, resource: &str) -> Key {
    Key {
        day: day.to_owned(),
        resource: resource.to_owned(),
        model: NONE.to_owned(),
        kind: Some(TokenKind::ProvisionedHour),
    }
}

/// The hours each reservation holds, day by day, at its price.
fn reserved_side(
    side: &mut LoggedSide,
    reference: &Reference,
    resources: &Resources,
    month: Month,
    period: &Period,
) -> Result<()> {
    for reserved in reserved_days(&reference.reservations, month)? {
        let day = day_of(reserved.day * DAY_US);
        if !period.holds(&day) {
            continue;
        }
        let backend = Sym::new(&reserved.reservation.backend);
        let (resource, unmapped) = logged_resource(resources, Some(backend));
        let key = ptu_key(&day, &resource);
        let logged = side.keys.entry(key).or_default();
        logged.quantity_milli += i128::from(reserved.ptu_hours) * MILLI;
        logged.estimated += reserved.cost_pico;
        logged.unmapped = unmapped;
        logged.sources.insert(reserved.reservation.source.clone());
    }
    Ok(())
}

/// The currency the comparison is in: the price book's (the first, if it
/// holds several: each row's is checked on import).
fn book_currency(reference: &Reference) -> Option<String> {
    reference.prices.first().map(|p| p.currency.clone())
}

/// The days compared, `YYYY-MM-DD`, both included.
#[derive(Debug, Clone)]
pub(crate) struct Period(pub(crate) (String, String));

impl Period {
    fn holds(&self, day: &str) -> bool {
        self.0.0.as_str() <= day && day <= self.0.1.as_str()
    }
}

/// Everything a month's reconciliation and true-up read.
pub(crate) struct Sides {
    pub(crate) billed: BilledSide,
    pub(crate) logged: LoggedSide,
    pub(crate) currency: Option<String>,
    pub(crate) period: (String, String),
}

pub(crate) async fn load_sides(store: &Store, month: Month, with_consumers: bool) -> Result<Sides> {
    let reference = match crate::close::frozen_reference(store, month).await? {
        Some(frozen) => frozen,
        None => Reference::load(&store.db).await?,
    };
    let priced = price_month(store, month, &reference).await?;
    let resources = Resources::of(&reference.backends);
    let meters = MeterMap::new(&store.db.meter_map().await?);
    let (from, to) = (micros(month.first_day()), micros(month.next()?.first_day()));
    let lines = store.billed_lines(from, to).await?;
    let currency = book_currency(&reference).or_else(|| lines.first().map(|l| l.currency.clone()));
    let billed = billed_side(&lines, &meters, &resources, currency.as_deref());
    // The days the bill covers (a month-to-date export is not set against a
    // whole month of reservations), else the month.
    let period = Period(match &billed.days {
        Some(days) => days.clone(),
        None => (day_of(from), day_of(to - DAY_US)),
    });
    let logged = logged_side(
        &priced,
        &reference,
        &resources,
        month,
        &period,
        with_consumers,
    )?;
    Ok(Sides {
        billed,
        logged,
        currency,
        period: period.0,
    })
}

/// The cost files a set of batches are.
pub(crate) async fn cost_files(store: &Store, batches: &BTreeSet<i64>) -> Result<Vec<CostFile>> {
    let mut files = Vec::new();
    for &batch_id in batches {
        let source = match store.db.batch(batch_id).await? {
            Some(batch) => batch.source_name,
            None => format!("batch {batch_id}"),
        };
        files.push(CostFile { batch_id, source });
    }
    Ok(files)
}

/// A month's reconciliation, grouped by `by`.
#[tracing::instrument(skip(store), err)]
pub async fn reconciliation(
    store: &Store,
    month: Month,
    by: &[ReconcileBy],
) -> Result<Reconciliation> {
    let sides = load_sides(store, month, false).await?;
    let (rows, total) = reconcile(&sides.billed.keys, &sides.logged.keys, by);
    Ok(Reconciliation {
        month,
        by: by.to_vec(),
        currency: sides.currency,
        rows,
        total,
        cost_files: cost_files(store, &sides.billed.batches).await?,
        period: sides.period,
        warnings: sides.billed.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str, id: Option<&str>) -> BackendRow {
        BackendRow {
            backend: name.into(),
            deployment_type: "GlobalStandard".into(),
            region: "eastus".into(),
            resource_id: id.map(str::to_owned),
            source: "backends.csv".into(),
        }
    }

    #[test]
    fn a_line_maps_to_its_backend_resource_whatever_the_case_or_depth() {
        let account =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a";
        let deployment = format!("{account}/deployments/gpt-4o-mini");
        let resources = Resources::of(&[
            backend("b", Some(account)),
            backend("d", Some(&deployment)),
            backend("c", None),
        ]);
        assert_eq!(
            resources.of_backend("d"),
            Some(resource_key(account).as_str())
        );
        let check = |line: &str, expect: Option<&str>| {
            assert_eq!(resources.matching(line), expect, "{line}");
        };
        let key = resource_key(account);
        check(account, Some(&key));
        check(&account.to_uppercase(), Some(&key));
        check(&format!("{account}/deployments/gpt-4o"), Some(&key));
        check(&format!("{account}-2"), None);
        check("/subscriptions/s", None);
        check("", None);
        assert_eq!(resources.of_backend("c"), None);
    }

    fn line(quantity: &str, unit: &str) -> BilledLine {
        BilledLine {
            quantity: tollgate_store::rate::parse_pico_rounded(quantity).ok(),
            unit: Some(unit.into()),
            ..BilledLine::default()
        }
    }

    #[test]
    fn quantities_are_read_in_their_units() {
        assert_eq!(
            quantity_milli(&line("1500000", "Tokens"), None),
            1_500_000_000
        );
        assert_eq!(quantity_milli(&line("1.5", "1M"), None), 1_500_000_000);
        assert_eq!(quantity_milli(&line("2.25", "Hours"), None), 2250);
        assert_eq!(
            quantity_milli(&line("3", "units of mystery"), Some(1000)),
            3_000_000
        );
    }
}
