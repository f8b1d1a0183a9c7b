//! The cost model's arithmetic (DESIGN.md, Domain semantics: Cost), exact in
//! pico-units so that every grouping of a month adds up to the same total:
//! - pay-as-you-go: uncached input x input rate + cached input x cached rate +
//!   output x output rate, at the price in force on the request's day;
//! - provisioned (PTU): each hour's fixed cost split by the consumers' shares of
//!   weighted tokens (uncached input + output x the output weight; cached tokens
//!   weigh nothing), the unused part shown as idle capacity.

use tollgate_store::state::PriceRow;

/// Token counts of some requests; `prompt` includes `cached`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: i64,
    pub cached: i64,
    pub completion: i64,
}

impl Tokens {
    /// Prompt plus completion tokens: what a quota or an unpriced total counts.
    pub fn billable(&self) -> i64 {
        self.prompt.saturating_add(self.completion)
    }

    /// Weighted tokens in thousandths: what a request uses of a PTU.
    pub fn weighted_milli(&self, output_weight_milli: i64) -> i128 {
        let uncached = (i128::from(self.prompt) - i128::from(self.cached)).max(0);
        uncached * 1000 + i128::from(self.completion) * i128::from(output_weight_milli)
    }
}

/// The price book, ready for lookups.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    rows: Vec<PriceRow>,
}

impl PriceBook {
    pub fn new(rows: Vec<PriceRow>) -> Self {
        PriceBook { rows }
    }

    /// The currencies its rows are in.
    pub fn currencies(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|r| r.currency.as_str())
    }

    /// The row in force on `day` (`YYYY-MM-DD`) for a model and deployment type in
    /// a region: a row for that region wins over an `any` row.
    pub fn in_force(
        &self,
        model: &str,
        deployment_type: &str,
        region: &str,
        day: &str,
    ) -> Option<&PriceRow> {
        let in_force = |r: &&PriceRow| {
            r.model == model
                && r.deployment_type == deployment_type
                && r.effective_from.as_str() <= day
                && r.effective_to.as_deref().is_none_or(|to| day < to)
        };
        let regional = self
            .rows
            .iter()
            .filter(in_force)
            .find(|r| r.region == region);
        regional.or_else(|| {
            self.rows
                .iter()
                .filter(in_force)
                .find(|r| r.region == "any")
        })
    }
}

/// Pay-as-you-go cost of `tokens` at `price`, in pico-units, exact (the division
/// by the unit is carried as a fraction and rounded half up once, here).
pub fn token_cost_pico(tokens: &Tokens, price: &PriceRow) -> i128 {
    let uncached = (i128::from(tokens.prompt) - i128::from(tokens.cached)).max(0);
    let numerator = uncached * i128::from(price.input_rate_pico)
        + i128::from(tokens.cached) * i128::from(price.cached_input_rate_pico)
        + i128::from(tokens.completion) * i128::from(price.output_rate_pico);
    let unit = i128::from(price.unit_tokens);
    (numerator + unit / 2) / unit
}

/// What prompt caching saved: the cached tokens at the uncached input rate minus
/// what they cost at the cached rate.
pub fn prompt_cache_savings_pico(tokens: &Tokens, price: &PriceRow) -> i128 {
    let discount = i128::from(price.input_rate_pico - price.cached_input_rate_pico).max(0);
    let unit = i128::from(price.unit_tokens);
    (i128::from(tokens.cached) * discount + unit / 2) / unit
}

/// Who pays for idle PTU capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Shared by the hour's consumers in proportion to their use.
    Spread,
    /// Charged to one cost centre.
    Owner(String),
}

impl IdlePolicy {
    /// `spread`, or a cost centre id.
    pub fn parse(text: &str) -> IdlePolicy {
        match text {
            "spread" => IdlePolicy::Spread,
            owner => IdlePolicy::Owner(owner.to_owned()),
        }
    }
}

/// One consumer's part of a PTU hour, in pico-units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtuCharge<K> {
    pub consumer: K,
    /// For the capacity it used.
    pub used_pico: i128,
    /// Its part of the idle capacity (spread policy only).
    pub idle_pico: i128,
}

/// An hour's PTU cost split among its consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtuHour<K> {
    pub charges: Vec<PtuCharge<K>>,
    /// Idle capacity nobody's share covers: the owner's under [`IdlePolicy::Owner`],
    /// or the whole cost of an hour without traffic under [`IdlePolicy::Spread`].
    pub unassigned_idle_pico: i128,
}

/// Splits one hour's PTU cost (`cost_pico`) by the consumers' weighted tokens.
/// With a `capacity_milli` (weighted tokens the PTUs can serve in the hour), the
/// unused fraction is idle capacity; without, an hour with traffic is fully used.
/// The parts always add up to `cost_pico` exactly (largest remainder).
pub fn allocate_ptu_hour<K: Clone>(
    cost_pico: i128,
    capacity_milli: Option<i128>,
    consumers: &[(K, i128)],
    idle: &IdlePolicy,
) -> PtuHour<K> {
    let used: i128 = consumers.iter().map(|(_, w)| (*w).max(0)).sum();
    if used == 0 {
        return PtuHour {
            charges: Vec::new(),
            unassigned_idle_pico: cost_pico,
        };
    }
    let capacity = capacity_milli.map_or(used, |c| c.max(used));
    let used_cost = cost_pico * used / capacity;
    let idle_cost = cost_pico - used_cost;
    let weights: Vec<i128> = consumers.iter().map(|(_, w)| (*w).max(0)).collect();
    let used_parts = split(used_cost, &weights);
    let (idle_parts, unassigned) = match idle {
        IdlePolicy::Spread => (split(idle_cost, &weights), 0),
        IdlePolicy::Owner(_) => (vec![0; weights.len()], idle_cost),
    };
    PtuHour {
        charges: consumers
            .iter()
            .zip(used_parts.into_iter().zip(idle_parts))
            .map(|((consumer, _), (used_pico, idle_pico))| PtuCharge {
                consumer: consumer.clone(),
                used_pico,
                idle_pico,
            })
            .collect(),
        unassigned_idle_pico: unassigned,
    }
}

/// `total` split in proportion to `weights`, the rounding remainders going to
/// the largest fractions (ties to the first), so the parts sum to `total`.
pub(crate) fn split(total: i128, weights: &[i128]) -> Vec<i128> {
    let sum: i128 = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<i128> = weights.iter().map(|w| total * w / sum).collect();
    let mut remainders: Vec<(usize, i128)> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (i, total * w % sum))
        .collect();
    remainders.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let short = total - parts.iter().sum::<i128>();
    for (i, _) in remainders.into_iter().take(short as usize) {
        parts[i] += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::PICO;

    fn price(
        model: &str,
        region: &str,
        rates: (i64, i64, i64),
        from: &str,
        to: Option<&str>,
    ) -> PriceRow {
        PriceRow {
            model: model.into(),
            deployment_type: "GlobalStandard".into(),
            region: region.into(),
            currency: "USD".into(),
            unit_tokens: 1_000_000,
            input_rate_pico: rates.0,
            cached_input_rate_pico: rates.1,
            output_rate_pico: rates.2,
            effective_from: from.into(),
            effective_to: to.map(Into::into),
            source: "test".into(),
        }
    }

    #[test]
    fn the_price_in_force_follows_the_day_and_prefers_the_region() {
        let book = PriceBook::new(vec![
            price(
                "m",
                "any",
                (3 * PICO, 0, 0),
                "2026-01-01",
                Some("2026-10-16"),
            ),
            price("m", "any", (2 * PICO, 0, 0), "2026-10-16", None),
            price("m", "eastus", (5 * PICO, 0, 0), "2026-01-01", None),
        ]);
        let rate = |region: &str, day: &str| {
            book.in_force("m", "GlobalStandard", region, day)
                .map(|r| r.input_rate_pico)
        };
        assert_eq!(rate("swedencentral", "2026-10-15"), Some(3 * PICO));
        assert_eq!(
            rate("swedencentral", "2026-10-16"),
            Some(2 * PICO),
            "the new price from its first day"
        );
        assert_eq!(rate("eastus", "2026-10-15"), Some(5 * PICO));
        assert_eq!(rate("eastus", "2025-12-31"), None);
        assert_eq!(
            book.in_force("other", "GlobalStandard", "eastus", "2026-10-15"),
            None
        );
    }

    #[test]
    fn cached_tokens_are_billed_at_the_cached_rate() {
        // gpt-4o: $2.50 / $1.25 / $10.00 per 1M tokens.
        let p = price(
            "gpt-4o",
            "any",
            (2_500_000_000_000, 1_250_000_000_000, 10 * PICO),
            "2026-01-01",
            None,
        );
        let t = Tokens {
            prompt: 1_200,
            cached: 512,
            completion: 250,
        };
        // 688 x 2.50 + 512 x 1.25 + 250 x 10 = 1720 + 640 + 2500 = 4860 per 1M = $0.00486
        assert_eq!(token_cost_pico(&t, &p), 4_860_000_000);
        // Rounding half up, once: 1 token at $0.0000015 per 1M.
        let tiny = price("m", "any", (1_500_000, 0, 0), "2026-01-01", None);
        assert_eq!(
            token_cost_pico(
                &Tokens {
                    prompt: 1,
                    cached: 0,
                    completion: 0
                },
                &tiny
            ),
            2
        );
    }

    #[test]
    fn a_ptu_hour_with_two_consumers_and_idle_capacity() {
        // 50 PTUs at $1 an hour; half the capacity used, 3:1 between a and b.
        let cost = 50 * i128::from(PICO);
        let consumers = [("a", 300_000), ("b", 100_000)];
        let spread = allocate_ptu_hour(cost, Some(800_000), &consumers, &IdlePolicy::Spread);
        let dollars = |p: i128| p as f64 / PICO as f64;
        let a = &spread.charges[0];
        assert_eq!((dollars(a.used_pico), dollars(a.idle_pico)), (18.75, 18.75));
        let b = &spread.charges[1];
        assert_eq!((dollars(b.used_pico), dollars(b.idle_pico)), (6.25, 6.25));
        assert_eq!(spread.unassigned_idle_pico, 0);

        let owned = allocate_ptu_hour(
            cost,
            Some(800_000),
            &consumers,
            &IdlePolicy::Owner("cc-rnd".into()),
        );
        assert_eq!(dollars(owned.charges[0].used_pico), 18.75);
        assert_eq!(owned.charges[0].idle_pico, 0);
        assert_eq!(dollars(owned.unassigned_idle_pico), 25.0);
    }

    #[test]
    fn a_ptu_hour_without_traffic_is_all_idle() {
        let hour = allocate_ptu_hour::<&str>(
            50 * i128::from(PICO),
            Some(800_000),
            &[],
            &IdlePolicy::Spread,
        );
        assert!(hour.charges.is_empty());
        assert_eq!(hour.unassigned_idle_pico, 50 * i128::from(PICO));
    }

    #[test]
    fn cached_tokens_weigh_nothing_on_a_ptu() {
        let t = Tokens {
            prompt: 1_000,
            cached: 400,
            completion: 100,
        };
        assert_eq!(t.weighted_milli(4_000), 600 * 1000 + 100 * 4000);
    }

    proptest::proptest! {
        #[test]
        fn ptu_parts_always_add_up_to_the_hour(
            cost in 0i128..1_000_000_000_000_000,
            weights in proptest::collection::vec(0i128..10_000_000, 0..12),
            capacity in proptest::option::of(1i128..100_000_000),
            spread in proptest::bool::ANY,
        ) {
            let consumers: Vec<(usize, i128)> = weights.into_iter().enumerate().collect();
            let idle = if spread { IdlePolicy::Spread } else { IdlePolicy::Owner("o".into()) };
            let hour = allocate_ptu_hour(cost, capacity, &consumers, &idle);
            let total: i128 = hour.charges.iter().map(|c| c.used_pico + c.idle_pico).sum::<i128>() + hour.unassigned_idle_pico;
            proptest::prop_assert_eq!(total, cost);
            proptest::prop_assert!(hour.charges.iter().all(|c| c.used_pico >= 0 && c.idle_pico >= 0));
        }
    }
}
