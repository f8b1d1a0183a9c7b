//! The invoice against the estimate (`docs/reconciliation.md`): per day,
//! resource, model and token kind, what the provider billed beside what the
//! gateways logged priced by the book, and the variance explained by cause.
//! Pure arithmetic over typed values; [`crate::invoice`] loads them.
//!
//! For one key, with `B` billed, `L` the list cost, `Ef` the effective cost,
//! `Tb` the billed and `Te` the logged quantity, `E` the estimate and
//! `pb = L / Tb` the billed list price:
//! - discount = Ef - L (negotiated discounts, credits);
//! - commitment = B - Ef (what a commitment moved between billed and effective);
//! - unlogged or unbilled tokens = (Tb - Te) x pb (or -E when nothing was billed);
//!   for provisioned hours the same is the PTU-hours cause, against the hours reserved;
//! - rate difference = Te x pb - E, naming the price-book row (or reservation) used;
//! - unmapped meter / resource = B of lines nothing maps (or -E of logged usage
//!   on a backend with no resource id);
//! - the residual, (B - E) less all of the above, is shown, never hidden.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::meter::TokenKind;
use crate::{ReportsError, Result};

/// What a reconciliation can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileBy {
    Resource,
    Model,
    TokenKind,
    Day,
}

impl ReconcileBy {
    pub const ALL: [ReconcileBy; 4] = [
        ReconcileBy::Resource,
        ReconcileBy::Model,
        ReconcileBy::TokenKind,
        ReconcileBy::Day,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileBy::Resource => "resource",
            ReconcileBy::Model => "model",
            ReconcileBy::TokenKind => "token_kind",
            ReconcileBy::Day => "day",
        }
    }

    /// Parses a comma-separated grouping (`resource,model,day`).
    pub fn parse_list(text: &str) -> Result<Vec<ReconcileBy>> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                ReconcileBy::ALL
                    .into_iter()
                    .find(|b| b.as_str() == s)
                    .ok_or_else(|| {
                        ReportsError::Argument(format!(
                            "cannot reconcile by {s:?}: choose from {}",
                            ReconcileBy::ALL.map(ReconcileBy::as_str).join(", ")
                        ))
                    })
            })
            .collect()
    }
}

/// The finest grain both sides are compared at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// The Azure resource id, lower-cased (or what stands for a resource
    /// nothing maps).
    pub resource: String,
    pub model: String,
    /// None for a line whose meter maps to nothing.
    pub kind: Option<TokenKind>,
}

impl Key {
    fn value(&self, by: ReconcileBy) -> String {
        match by {
            ReconcileBy::Resource => self.resource.clone(),
            ReconcileBy::Model => self.model.clone(),
            ReconcileBy::TokenKind => self.kind.map_or("(none)", TokenKind::as_str).to_owned(),
            ReconcileBy::Day => self.day.clone(),
        }
    }
}

/// Why a billed line is set apart instead of compared with what was logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apart {
    /// No meter map entry or naming reads its meter.
    UnmappedMeter,
    /// No backend's `resource_id` is its resource.
    UnmappedResource,
    /// A credit (`ChargeCategory` Credit): a discount, whatever it names.
    Credit,
}

/// What the provider billed for one key. Quantities in thousandths of a unit
/// (tokens or PTU hours), money in pico-units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Billed {
    pub quantity_milli: i128,
    pub billed: i128,
    pub list: i128,
    pub effective: i128,
    pub apart: Option<Apart>,
}

/// What the gateways logged for one key, priced by the book (or, for
/// provisioned hours, the hours reserved at the reservation's price).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logged {
    pub quantity_milli: i128,
    pub estimated: i128,
    /// The price-book rows (or reservations) the estimate used, `file:line`.
    pub sources: BTreeSet<String>,
    /// Logged on a backend `backends.csv` gives no resource id.
    pub unmapped: bool,
}

/// The variance of one key or group, by cause, in pico-units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Causes {
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub unlogged_tokens: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub unbilled_tokens: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub rate_difference: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub ptu_hours: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub discount: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub commitment: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub unmapped_meter: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub unmapped_resource: i128,
}

impl Causes {
    /// The causes with their names, in the order reports show them.
    pub fn named(&self) -> [(&'static str, i128); 8] {
        [
            ("unlogged_tokens", self.unlogged_tokens),
            ("unbilled_tokens", self.unbilled_tokens),
            ("rate_difference", self.rate_difference),
            ("ptu_hours", self.ptu_hours),
            ("discount", self.discount),
            ("commitment", self.commitment),
            ("unmapped_meter", self.unmapped_meter),
            ("unmapped_resource", self.unmapped_resource),
        ]
    }

    pub fn explained(&self) -> i128 {
        self.named().iter().map(|(_, v)| v).sum()
    }

    fn add(&mut self, other: &Causes) {
        self.unlogged_tokens += other.unlogged_tokens;
        self.unbilled_tokens += other.unbilled_tokens;
        self.rate_difference += other.rate_difference;
        self.ptu_hours += other.ptu_hours;
        self.discount += other.discount;
        self.commitment += other.commitment;
        self.unmapped_meter += other.unmapped_meter;
        self.unmapped_resource += other.unmapped_resource;
    }
}

/// One group of the reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReconcileRow {
    /// Values of the grouping, in the order asked.
    pub group: Vec<String>,
    /// Tokens (PTU hours for provisioned lines) billed and logged, in thousandths.
    pub billed_quantity_milli: i128,
    pub logged_quantity_milli: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub billed: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub estimated: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub list: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub effective: i128,
    pub causes: Causes,
    /// Billed less estimated, and what no cause explains (as [`Self::variance`]
    /// and [`Self::residual`] say; set for the answer).
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub variance: i128,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub residual: i128,
    /// Price-book rows (or reservations) whose price differs from the bill:
    /// the rows to fix.
    pub price_rows: Vec<String>,
}

impl ReconcileRow {
    /// Billed less estimated.
    pub fn variance(&self) -> i128 {
        self.billed - self.estimated
    }

    /// What no cause explains.
    pub fn residual(&self) -> i128 {
        self.variance() - self.causes.explained()
    }

    /// The row with its variance and residual set, as answers carry them.
    fn sealed(self) -> ReconcileRow {
        ReconcileRow {
            variance: self.variance(),
            residual: self.residual(),
            ..self
        }
    }

    /// The variance as a share of the estimate, in percent (None without one).
    pub fn variance_percent(&self) -> Option<f64> {
        (self.estimated != 0).then(|| self.variance() as f64 * 100.0 / self.estimated as f64)
    }

    fn add(&mut self, other: &ReconcileRow) {
        self.billed_quantity_milli += other.billed_quantity_milli;
        self.logged_quantity_milli += other.logged_quantity_milli;
        self.billed += other.billed;
        self.estimated += other.estimated;
        self.list += other.list;
        self.effective += other.effective;
        self.causes.add(&other.causes);
        for row in &other.price_rows {
            if !self.price_rows.contains(row) {
                self.price_rows.push(row.clone());
            }
        }
    }
}

/// `n / d` rounded half away from zero; zero when `d` is.
fn div_round(n: i128, d: i128) -> i128 {
    if d == 0 {
        return 0;
    }
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d.abs() {
        q + n.signum() * d.signum()
    } else {
        q
    }
}

/// One key's comparison, its variance explained.
pub fn explain(kind: Option<TokenKind>, billed: &Billed, logged: &Logged) -> ReconcileRow {
    let mut row = ReconcileRow {
        group: Vec::new(),
        billed_quantity_milli: billed.quantity_milli,
        logged_quantity_milli: logged.quantity_milli,
        billed: billed.billed,
        estimated: logged.estimated,
        list: billed.list,
        effective: billed.effective,
        causes: Causes::default(),
        variance: 0,
        residual: 0,
        price_rows: Vec::new(),
    };
    let c = &mut row.causes;
    match billed.apart {
        Some(Apart::UnmappedMeter) => c.unmapped_meter += billed.billed,
        Some(Apart::UnmappedResource) => c.unmapped_resource += billed.billed,
        Some(Apart::Credit) => c.discount += billed.billed,
        None => {
            c.discount = billed.effective - billed.list;
            c.commitment = billed.billed - billed.effective;
        }
    }
    if logged.unmapped {
        c.unmapped_resource -= logged.estimated;
        return row;
    }
    if billed.apart.is_some() {
        return row;
    }
    let (tb, te) = (billed.quantity_milli, logged.quantity_milli);
    let (volume, rate) = if tb > 0 {
        let at_billed_price = match te.checked_mul(billed.list) {
            Some(product) => div_round(product, tb),
            // Beyond i128 only for absurd lines: near enough, in floating point.
            None => (te as f64 * (billed.list as f64 / tb as f64)) as i128,
        };
        (
            billed.list - at_billed_price,
            at_billed_price - logged.estimated,
        )
    } else {
        (-logged.estimated, 0)
    };
    match kind {
        Some(TokenKind::ProvisionedHour) => c.ptu_hours = volume,
        _ if tb >= te => c.unlogged_tokens = volume,
        _ => c.unbilled_tokens = volume,
    }
    c.rate_difference = rate;
    // A difference smaller than a hundredth of a cent is rounding, not a price to fix.
    if rate.abs() >= 100_000_000 {
        row.price_rows = logged.sources.iter().cloned().collect();
    }
    row
}

/// Both sides by key, explained and grouped by `by`, with the total.
pub fn reconcile(
    billed: &BTreeMap<Key, Billed>,
    logged: &BTreeMap<Key, Logged>,
    by: &[ReconcileBy],
) -> (Vec<ReconcileRow>, ReconcileRow) {
    let keys: BTreeSet<&Key> = billed.keys().chain(logged.keys()).collect();
    let mut groups: BTreeMap<Vec<String>, ReconcileRow> = BTreeMap::new();
    let mut total = ReconcileRow::default();
    let (none_billed, none_logged) = (Billed::default(), Logged::default());
    for key in keys {
        let row = explain(
            key.kind,
            billed.get(key).unwrap_or(&none_billed),
            logged.get(key).unwrap_or(&none_logged),
        );
        let group: Vec<String> = by.iter().map(|b| key.value(*b)).collect();
        total.add(&row);
        groups.entry(group).or_default().add(&row);
    }
    let rows = groups
        .into_iter()
        .map(|(group, row)| ReconcileRow { group, ..row }.sealed())
        .collect();
    (rows, total.sealed())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PICO: i128 = 1_000_000_000_000;

    fn billed(tokens: i128, list: i128, effective: i128, billed: i128) -> Billed {
        Billed {
            quantity_milli: tokens * 1000,
            billed,
            list,
            effective,
            apart: None,
        }
    }

    fn logged(tokens: i128, estimated: i128) -> Logged {
        Logged {
            quantity_milli: tokens * 1000,
            estimated,
            sources: BTreeSet::from(["prices.csv:2".to_owned()]),
            unmapped: false,
        }
    }

    /// (kind, billed, logged) -> the causes, every cent explained.
    fn check(kind: TokenKind, b: Billed, l: Logged, expect: Causes) {
        let row = explain(Some(kind), &b, &l);
        assert_eq!(row.causes, expect);
        assert_eq!(row.residual(), 0, "{row:?}");
    }

    #[test]
    fn each_difference_is_its_own_cause() {
        // 1M input tokens billed, 0.8M logged, at the book's 2.50 per 1M.
        check(
            TokenKind::Input,
            billed(1_000_000, 5 * PICO / 2, 5 * PICO / 2, 5 * PICO / 2),
            logged(800_000, 2 * PICO),
            Causes {
                unlogged_tokens: PICO / 2,
                ..Causes::default()
            },
        );
        // The same tokens at 11.00 instead of the book's 10.00, and a 5% discount.
        check(
            TokenKind::Output,
            billed(
                100_000,
                11 * PICO / 10,
                1_045 * PICO / 1000,
                1_045 * PICO / 1000,
            ),
            logged(100_000, PICO),
            Causes {
                rate_difference: PICO / 10,
                discount: -55 * PICO / 1000,
                ..Causes::default()
            },
        );
        // Logged, never billed.
        check(
            TokenKind::CachedInput,
            Billed::default(),
            logged(400_000, PICO / 2),
            Causes {
                unbilled_tokens: -PICO / 2,
                ..Causes::default()
            },
        );
        // 250 PTU hours billed at 1.00, 240 reserved at 1.00.
        check(
            TokenKind::ProvisionedHour,
            billed(250, 250 * PICO, 250 * PICO, 250 * PICO),
            logged(240, 240 * PICO),
            Causes {
                ptu_hours: 10 * PICO,
                ..Causes::default()
            },
        );
    }

    #[test]
    fn the_rate_names_the_price_row_to_fix() {
        let row = explain(
            Some(TokenKind::Output),
            &billed(100_000, 11 * PICO / 10, 11 * PICO / 10, 11 * PICO / 10),
            &logged(100_000, PICO),
        );
        assert_eq!(row.price_rows, ["prices.csv:2"]);
        let same = explain(
            Some(TokenKind::Output),
            &billed(100_000, PICO, PICO, PICO),
            &logged(100_000, PICO),
        );
        assert!(same.price_rows.is_empty());
    }

    #[test]
    fn unmapped_lines_are_not_compared_and_residual_stays_visible() {
        let mut line = billed(0, 3 * PICO, 3 * PICO, 3 * PICO);
        line.apart = Some(Apart::UnmappedMeter);
        let row = explain(None, &line, &Logged::default());
        assert_eq!(row.causes.unmapped_meter, 3 * PICO);
        assert_eq!(row.residual(), 0);
        let mut elsewhere = logged(1_000, 7 * PICO);
        elsewhere.unmapped = true;
        let row = explain(Some(TokenKind::Input), &Billed::default(), &elsewhere);
        assert_eq!(row.causes.unmapped_resource, -7 * PICO);
        // Billed differs from effective and list in a way no cause names: a
        // list cost the export does not have is taken as billed, so the
        // variance stays in the residual only when quantities are unknown.
        let odd = Billed {
            quantity_milli: 0,
            billed: 2 * PICO,
            list: 2 * PICO,
            effective: 2 * PICO,
            apart: None,
        };
        let row = explain(Some(TokenKind::Input), &odd, &Logged::default());
        assert_eq!(row.variance(), 2 * PICO);
        assert_eq!(row.residual(), 2 * PICO, "billed without a quantity");
    }

    #[test]
    fn groups_add_up_to_the_total() {
        let key = |day: &str, model: &str, kind| Key {
            day: day.into(),
            resource: "/r".into(),
            model: model.into(),
            kind: Some(kind),
        };
        let billed_keys = BTreeMap::from([
            (
                key("2026-10-01", "a", TokenKind::Input),
                billed(10, 10 * PICO, 10 * PICO, 9 * PICO),
            ),
            (
                key("2026-10-02", "b", TokenKind::Output),
                billed(5, 5 * PICO, 5 * PICO, 5 * PICO),
            ),
        ]);
        let logged_keys = BTreeMap::from([
            (
                key("2026-10-01", "a", TokenKind::Input),
                logged(8, 8 * PICO),
            ),
            (key("2026-10-02", "c", TokenKind::Input), logged(1, PICO)),
        ]);
        let (rows, total) = reconcile(&billed_keys, &logged_keys, &[ReconcileBy::Model]);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows.iter().map(|r| r.variance()).sum::<i128>(),
            total.variance()
        );
        assert_eq!(total.billed, 14 * PICO);
        assert_eq!(total.estimated, 9 * PICO);
        assert_eq!(total.residual(), 0);
        assert_eq!(
            ReconcileBy::parse_list("resource, day").unwrap(),
            [ReconcileBy::Resource, ReconcileBy::Day]
        );
        assert!(ReconcileBy::parse_list("colour").is_err());
    }
}
