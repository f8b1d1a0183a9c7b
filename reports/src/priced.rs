//! A month priced hour by hour, each hour kept. An hour's rollup file is
//! priced once per reference data (price book, backends, ownership, PTU
//! reservations): its fine rows, what each costs at the price in force that
//! day, and each reservation's split of that hour. What depends on the whole
//! month is added when the month is assembled: reserved hours nobody used,
//! their spread over the month's consumers, and the semantic-cache savings
//! (the mean cost of a call of the subscription that month). After a push
//! only the hours it touched are priced again; the rest come from the cache.
//!
//! The numbers are those of pricing the month in one pass: fine rows keep
//! their order (hour by hour, rows in the order the rollups give them), and
//! every split is the same largest-remainder split.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use tollgate_store::derived::{RollupPart, Tier};
use tollgate_store::state::{PriceRow, PtuReservation};
use tollgate_store::{Store, Sym};

use crate::chargeback::{Reference, day_of, is_provisioned};
use crate::cost::{
    IdlePolicy, PriceBook, Tokens, allocate_ptu_hour, prompt_cache_savings_pico, token_cost_pico,
};
use crate::fine::{BackendKinds, FastMap, Fine, fine_rows, micros, none};
use crate::month::Month;
use crate::ownership::{Ownership, UNALLOCATED};
use crate::{ReportsError, Result};

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

/// What one fine row costs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Charge {
    pub(crate) payg: i128,
    pub(crate) ptu: i128,
    pub(crate) idle: i128,
    pub(crate) cache_savings: i128,
    pub(crate) unpriced_tokens: i64,
}

impl Charge {
    /// What the row is charged (cache savings are an estimate, not charged).
    pub(crate) fn total(&self) -> i128 {
        self.payg + self.ptu + self.idle
    }

    /// Adds the fine row's counts and this charge into `into`.
    pub(crate) fn add_to(&self, into: &mut crate::chargeback::ChargebackRow, f: &Fine) {
        into.requests = into.requests.saturating_add(f.requests);
        into.prompt_tokens = into.prompt_tokens.saturating_add(f.tokens.prompt);
        into.cached_tokens = into.cached_tokens.saturating_add(f.tokens.cached);
        into.completion_tokens = into.completion_tokens.saturating_add(f.tokens.completion);
        into.cache_hits = into.cache_hits.saturating_add(f.cache_hits);
        into.payg_pico += self.payg;
        into.ptu_pico += self.ptu;
        into.idle_pico += self.idle;
        into.cache_savings_pico += self.cache_savings;
        into.unpriced_tokens = into.unpriced_tokens.saturating_add(self.unpriced_tokens);
    }
}

/// One hour file priced as far as the hour alone decides.
#[derive(Debug)]
pub(crate) struct PricedHour {
    fine: Vec<Fine>,
    charges: Vec<Charge>,
    /// Rows no pay-as-you-go price covered.
    unpriced: Vec<usize>,
    /// Per reservation in force this hour (index into the reference's): the
    /// rows that are its consumers with their weights, the idle cost no
    /// consumer took, and whether the hour's split charged its consumers.
    ptu: Vec<HourPtu>,
    /// Cost and model calls per subscription, for the semantic-cache savings.
    calls: FastMap<Sym, (i128, i128)>,
}

#[derive(Debug)]
struct HourPtu {
    reservation: usize,
    consumers: Vec<(usize, i128)>,
    unassigned: i128,
    split: bool,
}

/// A reservation's hours within a month and what each costs.
struct Window<'a> {
    r: &'a PtuReservation,
    from_us: i64,
    to_us: i64,
    first_us: i64,
    hours_in_month: i128,
    per_period: i128,
    policy: IdlePolicy,
}

impl<'a> Window<'a> {
    fn of(r: &'a PtuReservation, first: NaiveDate, next: NaiveDate) -> Result<Option<Window<'a>>> {
        let start = first.max(parse_day(&r.effective_from)?);
        let end = match &r.effective_to {
            Some(to) => next.min(parse_day(to)?),
            None => next,
        };
        if start >= end {
            return Ok(None);
        }
        Ok(Some(Window {
            r,
            from_us: micros(start),
            to_us: micros(end),
            first_us: micros(first),
            hours_in_month: (next - first).num_hours() as i128,
            per_period: i128::from(r.ptus) * i128::from(r.cost_pico),
            policy: IdlePolicy::parse(&r.idle_charged_to),
        }))
    }

    fn contains(&self, hour_us: i64) -> bool {
        (self.from_us..self.to_us).contains(&hour_us)
    }

    /// A monthly price is cut into hours whose costs add up to it exactly:
    /// hour k of the month costs floor((k+1)·M/H) − floor(k·M/H).
    fn hour_cost(&self, hour_us: i64) -> i128 {
        match self.r.cost_period.as_str() {
            "month" => {
                let k = i128::from((hour_us - self.first_us) / HOUR_US);
                let (m, h) = (self.per_period, self.hours_in_month);
                m * (k + 1) / h - m * k / h
            }
            _ => self.per_period,
        }
    }
}

/// One reservation's hours of one day within a month, and what they cost:
/// what an invoice's provisioned-hour lines are checked against.
#[derive(Debug, Clone)]
pub(crate) struct ReservedDay<'a> {
    /// Days since the epoch (UTC).
    pub(crate) day: i64,
    pub(crate) reservation: &'a PtuReservation,
    /// PTUs times hours in force that day.
    pub(crate) ptu_hours: i64,
    pub(crate) cost_pico: i128,
}

/// Each reservation's days within `month`, hour costs summed as the
/// chargeback cuts them.
pub(crate) fn reserved_days(
    reservations: &[PtuReservation],
    month: Month,
) -> Result<Vec<ReservedDay<'_>>> {
    let (first, next) = (month.first_day(), month.next()?.first_day());
    let mut days: Vec<ReservedDay<'_>> = Vec::new();
    for r in reservations {
        let Some(window) = Window::of(r, first, next)? else {
            continue;
        };
        let mut hour = window.from_us;
        while hour < window.to_us {
            let day = hour.div_euclid(DAY_US);
            let cost = window.hour_cost(hour);
            match days.last_mut() {
                Some(d) if d.day == day && std::ptr::eq(d.reservation, r) => {
                    d.ptu_hours += r.ptus;
                    d.cost_pico += cost;
                }
                _ => days.push(ReservedDay {
                    day,
                    reservation: r,
                    ptu_hours: r.ptus,
                    cost_pico: cost,
                }),
            }
            hour += HOUR_US;
        }
    }
    Ok(days)
}

fn parse_day(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ReportsError::Integrity(format!("stored date {text:?} is not YYYY-MM-DD")))
}

/// The reference data ready for pricing.
pub(crate) struct Pricing<'a> {
    reference: &'a Reference,
    book: PriceBook,
    pub(crate) backends: BackendKinds,
    ownership: Ownership,
    first: NaiveDate,
    next: NaiveDate,
    /// What tells this reference data from another (the cache key's half).
    fingerprint: String,
}

impl<'a> Pricing<'a> {
    pub(crate) fn new(reference: &'a Reference, month: Month) -> Result<Pricing<'a>> {
        let book = PriceBook::new(reference.prices.clone());
        // Amounts of different currencies cannot be added up.
        let mut currencies: Vec<&str> = reference
            .reservations
            .iter()
            .map(|r| r.currency.as_str())
            .collect();
        currencies.extend(book.currencies());
        currencies.sort_unstable();
        currencies.dedup();
        if currencies.len() > 1 {
            return Err(ReportsError::Reference(format!(
                "the price book and PTU reservations mix currencies ({}); a chargeback needs one",
                currencies.join(", ")
            )));
        }
        let backends = reference
            .backends
            .iter()
            .map(|b| {
                (
                    Sym::new(&b.backend),
                    (Sym::new(&b.deployment_type), Sym::new(&b.region)),
                )
            })
            .collect();
        let fingerprint = format!(
            "{month}|{}",
            serde_json::to_string(reference).unwrap_or_default()
        );
        Ok(Pricing {
            reference,
            book,
            backends,
            ownership: Ownership::new(&reference.ownership),
            first: month.first_day(),
            next: month.next()?.first_day(),
            fingerprint: hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                fingerprint.as_bytes(),
            )),
        })
    }

    fn windows(&self) -> Result<Vec<Option<Window<'a>>>> {
        self.reference
            .reservations
            .iter()
            .map(|r| Window::of(r, self.first, self.next))
            .collect()
    }
}

/// The price in force for a fine row, looked up once per model, deployment
/// type, region and day.
struct Prices<'a> {
    book: &'a PriceBook,
    found: FastMap<(Sym, Sym, Sym, i64), Option<&'a PriceRow>>,
}

impl<'a> Prices<'a> {
    fn of(&mut self, f: &Fine) -> Option<&'a PriceRow> {
        let day = f.hour_us.div_euclid(DAY_US);
        let book = self.book;
        *self
            .found
            .entry((f.model(), f.deployment_type(), f.region(), day))
            .or_insert_with(|| {
                book.in_force(
                    f.model().as_str(),
                    f.deployment_type().as_str(),
                    f.region().as_str(),
                    &day_of(f.hour_us),
                )
            })
    }
}

impl PricedHour {
    fn price(fine: Vec<Fine>, pricing: &Pricing, windows: &[Option<Window>]) -> PricedHour {
        let mut charges = vec![Charge::default(); fine.len()];
        let mut unpriced = Vec::new();
        let mut prices = Prices {
            book: &pricing.book,
            found: FastMap::default(),
        };
        // Pay-as-you-go: each fine row at the price in force on its day.
        for (i, (f, charge)) in fine.iter().zip(charges.iter_mut()).enumerate() {
            if is_provisioned(&f.deployment_type()) || f.tokens == Tokens::default() {
                continue;
            }
            match prices.of(f) {
                Some(price) => {
                    charge.payg += token_cost_pico(&f.tokens, price);
                    charge.cache_savings += prompt_cache_savings_pico(&f.tokens, price);
                }
                None => {
                    charge.unpriced_tokens =
                        charge.unpriced_tokens.saturating_add(f.tokens.billable());
                    unpriced.push(i);
                }
            }
        }
        // PTU: the hour of every reservation in force, split by weighted tokens.
        let hour_us = fine.first().map_or(i64::MIN, |f| f.hour_us);
        let mut ptu = Vec::new();
        for (reservation, w) in windows.iter().enumerate() {
            let Some(w) = w.as_ref().filter(|w| w.contains(hour_us)) else {
                continue;
            };
            let consumers: Vec<(usize, i128)> = fine
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.backend.is_some_and(|b| b == w.r.backend.as_str())
                        && f.deployment.is_some_and(|d| d == w.r.deployment.as_str())
                })
                .map(|(i, f)| (i, f.tokens.weighted_milli(w.r.output_token_weight_milli)))
                .collect();
            let split = allocate_ptu_hour(w.hour_cost(hour_us), None, &consumers, &w.policy);
            let charged = !split.charges.is_empty();
            for c in split.charges {
                charges[c.consumer].ptu += c.used_pico;
                charges[c.consumer].idle += c.idle_pico;
            }
            ptu.push(HourPtu {
                reservation,
                consumers,
                unassigned: split.unassigned_idle_pico,
                split: charged,
            });
        }
        let mut calls: FastMap<Sym, (i128, i128)> = FastMap::default();
        for (f, charge) in fine.iter().zip(&charges) {
            if f.model() != none() {
                let entry = calls.entry(f.subscription()).or_default();
                entry.0 += charge.payg + charge.ptu;
                entry.1 += i128::from(f.requests - f.cache_hits);
            }
        }
        PricedHour {
            fine,
            charges,
            unpriced,
            ptu,
            calls,
        }
    }
}

/// Priced hours by reference data and rollup file. A file never changes, so
/// an hour stays priced until the bound is reached (then all are dropped and
/// priced again as asked).
#[derive(Debug, Default)]
pub struct PricedCache {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// By the reference data's fingerprint, then by file path.
    hours: HashMap<String, HashMap<Arc<str>, Arc<PricedHour>>>,
    rows: usize,
}

/// Fine rows kept at most: a few months of a 10M-request estate.
const PRICED_ROWS_KEPT: usize = 8_000_000;

impl PricedCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, fingerprint: &str, path: &str) -> Option<Arc<PricedHour>> {
        self.lock().hours.get(fingerprint)?.get(path).cloned()
    }

    fn put(&self, fingerprint: &str, path: &str, hour: Arc<PricedHour>) {
        let mut kept = self.lock();
        if kept.rows + hour.fine.len() > PRICED_ROWS_KEPT {
            *kept = Kept::default();
        }
        kept.rows += hour.fine.len();
        let previous =
            (kept.hours.entry(fingerprint.to_owned()).or_default()).insert(Arc::from(path), hour);
        // Priced twice at once: the hour is held once.
        kept.rows -= previous.map_or(0, |p| p.fine.len());
    }
}

/// Hours priced in this process, shared by every report and evaluation.
static PRICED: std::sync::LazyLock<PricedCache> = std::sync::LazyLock::new(PricedCache::default);

/// A month priced: its hours (fine rows in order), and what the month adds.
#[derive(Debug)]
pub(crate) struct PricedMonth {
    hours: Vec<Arc<PricedHour>>,
    /// Per hour, per row: idle spread from unused hours and semantic-cache
    /// savings, where the month adds any.
    extra: Vec<Option<Vec<(i128, i128)>>>,
    /// Provisioned rows no reservation charged, per hour.
    uncovered: Vec<Vec<usize>>,
    /// Idle capacity no consumer took, on its owner (or unallocated).
    pub(crate) unassigned_idle: Vec<([Sym; 8], i128)>,
}

impl PricedMonth {
    /// Every fine row with what it costs, hour by hour.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (&Fine, Charge)> + '_ {
        self.hours
            .iter()
            .zip(&self.extra)
            .zip(&self.uncovered)
            .flat_map(|((hour, extra), uncovered)| {
                hour.fine
                    .iter()
                    .zip(&hour.charges)
                    .enumerate()
                    .map(move |(i, (f, charge))| {
                        let mut charge = *charge;
                        if let Some(extra) = extra {
                            charge.idle += extra[i].0;
                            charge.cache_savings += extra[i].1;
                        }
                        if uncovered.binary_search(&i).is_ok() {
                            charge.unpriced_tokens =
                                charge.unpriced_tokens.saturating_add(f.tokens.billable());
                        }
                        (f, charge)
                    })
            })
    }

    /// The fine rows no price or reservation covered.
    pub(crate) fn unpriced(&self) -> impl Iterator<Item = &Fine> + '_ {
        self.hours
            .iter()
            .zip(&self.uncovered)
            .flat_map(|(hour, uncovered)| {
                let mut at: Vec<usize> = hour.unpriced.iter().chain(uncovered).copied().collect();
                at.sort_unstable();
                at.into_iter().map(move |i| &hour.fine[i])
            })
    }
}

/// The month's hours priced with `reference`, from the cache where priced
/// before.
pub(crate) async fn price_month(
    store: &Store,
    month: Month,
    reference: &Reference,
) -> Result<PricedMonth> {
    let pricing = Pricing::new(reference, month)?;
    let windows = pricing.windows()?;
    let fingerprint = pricing.fingerprint.as_str();
    // Only the hours not priced with this reference data yet are decoded;
    // those priced are taken from the cache as they are listed (it may be
    // cleared before they are used).
    let mut kept: HashMap<String, Arc<PricedHour>> = HashMap::new();
    let (listing, decoded) = store
        .rollups_where(
            Tier::Hourly,
            micros(pricing.first),
            micros(pricing.next),
            |f, whole| {
                let hit = whole.then(|| PRICED.get(fingerprint, &f.path)).flatten();
                hit.map(|h| kept.insert(f.path.clone(), h)).is_none()
            },
        )
        .await?;
    let parts: HashMap<&str, RollupPart<'_>> = decoded.parts().map(|p| (p.path, p)).collect();
    let mut hours = Vec::new();
    for file in &listing.files {
        let whole = listing.is_whole(file);
        if let Some(hour) = whole.then(|| kept.remove(&file.path)).flatten() {
            hours.push(hour);
            continue;
        }
        // Every file listed and not kept was read.
        let Some(part) = parts.get(file.path.as_str()) else {
            continue;
        };
        let fine = fine_rows(part.iter(), &pricing.ownership, &pricing.backends);
        if fine.is_empty() {
            continue;
        }
        let hour = Arc::new(PricedHour::price(fine, &pricing, &windows));
        if whole {
            PRICED.put(fingerprint, &file.path, Arc::clone(&hour));
        }
        hours.push(hour);
    }
    Ok(assemble(hours, &pricing, &windows))
}

/// The month from its priced hours: unused reserved hours, spread idle,
/// uncovered provisioned traffic, semantic-cache savings.
fn assemble(
    hours: Vec<Arc<PricedHour>>,
    pricing: &Pricing,
    windows: &[Option<Window>],
) -> PricedMonth {
    let mut extra: Vec<Option<Vec<(i128, i128)>>> = vec![None; hours.len()];
    let mut covered: Vec<Vec<bool>> = hours.iter().map(|h| vec![false; h.fine.len()]).collect();
    let mut unassigned_idle = Vec::new();
    let with_traffic: FastMap<i64, usize> = hours
        .iter()
        .enumerate()
        .filter_map(|(at, h)| Some((h.fine.first()?.hour_us, at)))
        .collect();
    for (reservation, w) in windows.iter().enumerate() {
        let Some(w) = w else { continue };
        let spread = w.policy == IdlePolicy::Spread;
        let mut unassigned = 0;
        // Under the spread policy: the month's consumers in fine-row order
        // (hour by hour, each row once), with their weights.
        let mut consumers: Vec<((usize, usize), i128)> = Vec::new();
        let mut hour = w.from_us;
        while hour < w.to_us {
            let part = with_traffic.get(&hour).and_then(|&at| {
                let p = hours[at]
                    .ptu
                    .iter()
                    .find(|p| p.reservation == reservation)?;
                Some((at, p))
            });
            match part {
                Some((at, p)) => {
                    unassigned += p.unassigned;
                    if p.split {
                        for (i, _) in &p.consumers {
                            covered[at][*i] = true;
                        }
                    }
                    if spread {
                        consumers.extend(p.consumers.iter().map(|(i, w)| ((at, *i), *w)));
                    }
                }
                None => unassigned += w.hour_cost(hour),
            }
            hour += HOUR_US;
        }
        if spread && unassigned > 0 {
            // Hours nobody used are spread by the month's shares of the reservation.
            let weights: Vec<i128> = consumers.iter().map(|(_, w)| *w).collect();
            if weights.iter().any(|w| *w > 0) {
                let parts = crate::cost::split(unassigned, &weights);
                for (((at, i), _), part) in consumers.iter().zip(parts) {
                    let rows =
                        extra[*at].get_or_insert_with(|| vec![(0, 0); hours[*at].fine.len()]);
                    rows[*i].0 += part;
                    covered[*at][*i] = true;
                }
                unassigned = 0;
            }
        }
        if unassigned > 0 {
            unassigned_idle.push((idle_owner(w.r, pricing), unassigned));
        }
    }
    // Provisioned traffic no reservation was in force for has no price either.
    let uncovered: Vec<Vec<usize>> = hours
        .iter()
        .zip(&covered)
        .map(|(h, covered)| {
            h.fine
                .iter()
                .enumerate()
                .filter(|(i, f)| {
                    is_provisioned(&f.deployment_type())
                        && !covered[*i]
                        && f.tokens != Tokens::default()
                })
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    semantic_cache_savings(&hours, &mut extra);
    PricedMonth {
        hours,
        extra,
        uncovered,
        unassigned_idle,
    }
}

/// Who bears a reservation's idle capacity nobody's share covers: its owner,
/// or unallocated.
fn idle_owner(r: &PtuReservation, pricing: &Pricing) -> [Sym; 8] {
    let owner = match IdlePolicy::parse(&r.idle_charged_to) {
        IdlePolicy::Owner(owner) => Sym::new(&owner),
        IdlePolicy::Spread => Sym::new(UNALLOCATED),
    };
    let (kind, region) = pricing
        .backends
        .get(&Sym::new(&r.backend))
        .copied()
        .unwrap_or((none(), none()));
    let none = none();
    [
        owner,
        none,
        none,
        Sym::new(&r.deployment),
        kind,
        region,
        none,
        none,
    ]
}

/// A semantic cache hit never reaches a model, so what it saved is estimated:
/// the mean cost of a model call of the same subscription in the month.
fn semantic_cache_savings(hours: &[Arc<PricedHour>], extra: &mut [Option<Vec<(i128, i128)>>]) {
    let mut month: FastMap<Sym, (i128, i128)> = FastMap::default();
    for hour in hours {
        for (subscription, (cost, calls)) in &hour.calls {
            let entry = month.entry(*subscription).or_default();
            entry.0 += cost;
            entry.1 += calls;
        }
    }
    for (at, hour) in hours.iter().enumerate() {
        for (i, f) in hour.fine.iter().enumerate() {
            if f.cache_hits > 0
                && let Some(&(cost, calls)) = month.get(&f.subscription())
                && calls > 0
            {
                let rows = extra[at].get_or_insert_with(|| vec![(0, 0); hour.fine.len()]);
                rows[i].1 += i128::from(f.cache_hits) * cost / calls;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::PICO;

    fn reservation(cost_pico: i64, period: &str, idle: &str, to: Option<&str>) -> PtuReservation {
        PtuReservation {
            backend: "b".into(),
            deployment: "d".into(),
            ptus: 1,
            cost_pico,
            cost_period: period.into(),
            currency: "USD".into(),
            output_token_weight_milli: 1000,
            idle_charged_to: idle.into(),
            effective_from: "2026-10-01".into(),
            effective_to: to.map(Into::into),
            source: String::new(),
        }
    }

    fn fine(hour: i64, prompt: i64) -> Fine {
        Fine {
            hour_us: micros(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()) + hour * HOUR_US,
            dims: [none(); 8],
            backend: Some(Sym::new("b")),
            deployment: Some(Sym::new("d")),
            requests: 1,
            cache_hits: 0,
            tokens: Tokens {
                prompt,
                cached: 0,
                completion: 0,
            },
        }
    }

    /// The month priced from these hours' rows with one reservation.
    fn month(r: PtuReservation, hours: Vec<Vec<Fine>>) -> PricedMonth {
        let reference = Reference {
            reservations: vec![r],
            ..Reference::default()
        };
        let pricing = Pricing::new(&reference, Month::new(2026, 10).unwrap()).unwrap();
        let windows = pricing.windows().unwrap();
        let hours = hours
            .into_iter()
            .map(|fine| Arc::new(PricedHour::price(fine, &pricing, &windows)))
            .collect();
        assemble(hours, &pricing, &windows)
    }

    #[test]
    fn reservations_in_two_currencies_are_the_reference_datas_fault() {
        let mut euro = reservation(PICO, "hour", "spread", None);
        euro.currency = "EUR".into();
        let reference = Reference {
            reservations: vec![reservation(PICO, "hour", "spread", None), euro],
            ..Reference::default()
        };
        match Pricing::new(&reference, Month::new(2026, 10).unwrap()) {
            Err(ReportsError::Reference(message)) => {
                assert!(message.contains("EUR, USD"), "{message}")
            }
            other => panic!("not a reference fault: {:?}", other.err()),
        }
    }

    #[test]
    fn spread_idle_hours_follow_the_months_shares() {
        // $1 an hour for one day; one hour used by two consumers 3:1; a row
        // after the reservation ended takes no share.
        let r = reservation(PICO, "hour", "spread", Some("2026-10-02"));
        let priced = month(
            r,
            vec![vec![fine(0, 300), fine(0, 100)], vec![fine(48, 1000)]],
        );
        assert!(
            priced.unassigned_idle.is_empty(),
            "nothing left unallocated"
        );
        let charged: Vec<i128> = priced.rows().map(|(_, c)| c.ptu + c.idle).collect();
        let pico = i128::from(PICO);
        assert_eq!(charged, [18 * pico, 6 * pico, 0]);
    }

    #[test]
    fn a_monthly_reservation_costs_its_month_to_the_pico() {
        // $100 over October's 744 hours does not divide evenly.
        let r = reservation(100 * PICO, "month", "cc-ops", None);
        let priced = month(r, Vec::new());
        assert_eq!(priced.rows().count(), 0);
        let idle: i128 = priced.unassigned_idle.iter().map(|(_, p)| p).sum();
        assert_eq!(idle, 100 * i128::from(PICO));
        assert_eq!(priced.unassigned_idle[0].0[0], "cc-ops");
    }

    #[test]
    fn hours_with_and_without_traffic_add_up_to_the_month() {
        // An owner's reservation: hours nobody used, and the unused part of
        // none here (no capacity given), are the owner's; used hours are the
        // consumers'.
        let r = reservation(100 * PICO, "month", "cc-ops", None);
        let priced = month(
            r,
            vec![vec![fine(5, 10)], vec![fine(700, 10), fine(700, 30)]],
        );
        let used: i128 = priced.rows().map(|(_, c)| c.ptu + c.idle).sum();
        let idle: i128 = priced.unassigned_idle.iter().map(|(_, p)| p).sum();
        assert_eq!(used + idle, 100 * i128::from(PICO));
        assert!(used > 0 && idle > used);
    }
}
