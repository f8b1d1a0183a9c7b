//! The true-up: the month's bill allocated to those who used it, so that the
//! chargeback equals the invoice to the cent (`docs/reconciliation.md`).
//! Each billed key (day, resource, model, token kind) is split among the
//! consumers the gateways logged for it by their share of its estimated cost
//! (by tokens where the book prices none of them); a provisioned-hours line
//! by the same weighted-token shares that split each PTU hour today. What
//! finds no consumer (an unmapped meter or resource, a day nobody logged)
//! is its own `unattributed` line, never spread or dropped.

use std::sync::LazyLock;

use serde::Serialize;
use tollgate_store::{Store, Sym};

use crate::Result;
use crate::chargeback::{Chargeback, ChargebackRow, Keyed, grouped};
use crate::fine::FastMap;
use crate::invoice::{BilledSide, Consumers, CostFile, cost_files, load_sides};
use crate::meter::TokenKind;
use crate::month::Month;

/// The cost centre of billed cost no consumer was found for.
pub const UNATTRIBUTED: &str = "unattributed";

/// How a billed-basis month was allocated (said in its exports).
pub const ALLOCATION_METHOD: &str = "billed cost split by share of estimated cost per day, resource, model and token kind; \
     PTU hours by weighted tokens";

/// What a chargeback's money is: the logs priced by the book, or the bill.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    #[default]
    Estimated,
    Billed,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Estimated => "estimated",
            Basis::Billed => "billed",
        }
    }
}

impl std::str::FromStr for Basis {
    type Err = crate::ReportsError;

    fn from_str(s: &str) -> Result<Basis> {
        match s {
            "estimated" => Ok(Basis::Estimated),
            "billed" => Ok(Basis::Billed),
            other => Err(crate::ReportsError::Argument(format!(
                "basis: {other:?} is not estimated or billed"
            ))),
        }
    }
}

/// A month's chargeback on the invoice's basis, with what it was read from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BilledChargeback {
    #[serde(skip)]
    pub chargeback: Chargeback,
    pub cost_files: Vec<CostFile>,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub billed_pico: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub unattributed_pico: i128,
    pub currency: Option<String>,
    pub warnings: Vec<String>,
}

/// Unattributed cost is its own line whatever the grouping.
fn unattributed() -> [Sym; 8] {
    static SYM: LazyLock<Sym> = LazyLock::new(|| Sym::new(UNATTRIBUTED));
    [*SYM; 8]
}

/// `amount` split by `weights` (non-negative, not all zero) into integer
/// parts that add up to it exactly: largest remainder, ties to the first.
pub(crate) fn split(amount: i128, weights: &[i128]) -> Vec<i128> {
    let magnitude = amount.abs();
    // Weights halved until every product fits: shares barely move, and the
    // parts still add up exactly.
    let mut weights = weights.to_vec();
    let fits = |w: &[i128]| {
        let total = w.iter().try_fold(0i128, |sum, x| sum.checked_add(*x));
        let most = w.iter().copied().max().unwrap_or(0);
        total.is_some() && magnitude.checked_mul(most).is_some()
    };
    while !fits(&weights) {
        weights.iter_mut().for_each(|w| *w >>= 1);
    }
    let total: i128 = weights.iter().sum();
    if total <= 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<i128> = weights.iter().map(|w| magnitude * w / total).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(magnitude * weights[i] % total), i));
    let short = magnitude - parts.iter().sum::<i128>();
    for &i in order.iter().take(short.max(0) as usize) {
        parts[i] += 1;
    }
    if amount < 0 {
        parts.iter_mut().for_each(|p| *p = -*p);
    }
    parts
}

/// Each billed key's amount into the fine groups that consumed it; what
/// none consumed into `unattributed`. Returns the rows and the unattributed sum.
pub(crate) fn allocate(
    billed: &BilledSide,
    consumers: &Consumers,
    rows: &mut FastMap<[Sym; 8], ChargebackRow>,
) -> i128 {
    let mut unattributed_pico = 0;
    for (key, b) in &billed.keys {
        let found = consumers.get(key).filter(|_| b.apart.is_none());
        let mut weighed: Vec<([Sym; 8], (i128, i128))> = found
            .map(|c| c.iter().map(|(d, w)| (*d, *w)).collect())
            .unwrap_or_default();
        // By cost where the book priced them, else by tokens.
        let by_cost = weighed.iter().any(|(_, (cost, _))| *cost > 0);
        weighed.retain(|(_, (cost, tokens))| if by_cost { *cost > 0 } else { *tokens > 0 });
        if weighed.is_empty() {
            unattributed_pico += b.billed;
            rows.entry(unattributed()).or_default().payg_pico += b.billed;
            continue;
        }
        // A stable order: the same bill gives the same cents.
        weighed.sort_unstable_by_key(|a| a.0);
        let weights: Vec<i128> = weighed
            .iter()
            .map(|(_, (cost, tokens))| if by_cost { *cost } else { *tokens })
            .collect();
        for ((dims, _), part) in weighed.iter().zip(split(b.billed, &weights)) {
            let row = rows.entry(*dims).or_default();
            match key.kind {
                Some(TokenKind::ProvisionedHour) => row.ptu_pico += part,
                _ => row.payg_pico += part,
            }
        }
    }
    unattributed_pico
}

/// The bill allocated at the finest grain (every dimension), with what it
/// was read from: what a billed-basis chargeback groups and a billed-basis
/// month close stores.
pub(crate) struct BilledRows {
    pub(crate) rows: Vec<Keyed>,
    pub(crate) cost_files: Vec<CostFile>,
    pub(crate) billed_pico: i128,
    pub(crate) unattributed_pico: i128,
    pub(crate) currency: Option<String>,
    pub(crate) warnings: Vec<String>,
}

pub(crate) async fn billed_rows(store: &Store, month: Month) -> Result<BilledRows> {
    let sides = load_sides(store, month, true).await?;
    let mut rows = sides.logged.counts;
    let unattributed_pico = allocate(&sides.billed, &sides.logged.consumers, &mut rows);
    let mut keyed: Vec<Keyed> = rows
        .into_iter()
        .filter(|(_, row)| row.requests > 0 || row.total_pico() != 0)
        .map(|(dims, row)| Keyed { dims, row })
        .collect();
    keyed.sort_unstable_by_key(|k| k.dims);
    Ok(BilledRows {
        rows: keyed,
        cost_files: cost_files(store, &sides.billed.batches).await?,
        billed_pico: sides.billed.keys.values().map(|b| b.billed).sum(),
        unattributed_pico,
        currency: sides.currency,
        warnings: sides.billed.warnings,
    })
}

/// The month's chargeback with the bill allocated, grouped by `by`.
#[tracing::instrument(skip(store), err)]
pub async fn chargeback_billed(
    store: &Store,
    month: Month,
    by: &[String],
) -> Result<BilledChargeback> {
    let billed = billed_rows(store, month).await?;
    Ok(BilledChargeback {
        chargeback: grouped(month, by, billed.rows)?,
        cost_files: billed.cost_files,
        billed_pico: billed.billed_pico,
        unattributed_pico: billed.unattributed_pico,
        currency: billed.currency,
        warnings: billed.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_adds_up_exactly_whatever_the_sign() {
        let check = |amount: i128, weights: &[i128], expect: &[i128]| {
            let parts = split(amount, weights);
            assert_eq!(parts, expect, "{amount} by {weights:?}");
            if weights.iter().sum::<i128>() > 0 {
                assert_eq!(parts.iter().sum::<i128>(), amount);
            }
        };
        check(100, &[1, 1, 1], &[34, 33, 33]);
        check(-100, &[1, 1, 1], &[-34, -33, -33]);
        check(10, &[3, 0, 1], &[8, 0, 2]);
        check(7, &[0, 0], &[0, 0]);
        check(1, &[5, 5], &[1, 0]);
        // Products past i128: the weights are scaled, the parts still exact.
        let huge = 10i128.pow(30);
        check(
            10i128.pow(20),
            &[huge, huge],
            &[10i128.pow(20) / 2, 10i128.pow(20) / 2],
        );
    }

    proptest::proptest! {
        #[test]
        fn splits_never_lose_a_pico(
            amount in -1_000_000_000_000_000i128..1_000_000_000_000_000,
            weights in proptest::collection::vec(0i128..1_000_000_000_000_000_000, 1..12),
        ) {
            let parts = split(amount, &weights);
            if weights.iter().sum::<i128>() > 0 {
                proptest::prop_assert_eq!(parts.iter().sum::<i128>(), amount);
            }
        }
    }
}
