//! What a `variance_above` rule judges: for each day a cost export covers,
//! the bill against the estimate (`crate::invoice::reconciliation`), per the
//! rule's `group_by` of resource and model. The value is the variance as a
//! share of the estimate; groups with no estimate (credits, lines nothing
//! maps) are left to the reconciliation.

use std::collections::HashMap;

use chrono::{DateTime, Datelike};
use tollgate_store::Store;

use super::engine::Observation;
use super::rule::{Condition, Rule};
use super::series::Labels;
use crate::Result;
use crate::invoice::reconciliation;
use crate::month::Month;
use crate::reconcile::{ReconcileBy, ReconcileRow};

const DAY_US: i64 = 86_400_000_000;

/// Observations by day (days since the epoch), the same for each of its hours.
#[derive(Debug, Default)]
pub struct VarianceDays {
    by_day: HashMap<i64, Vec<Observation>>,
}

impl VarianceDays {
    /// The observations of the day `hour_us` is in.
    pub fn at(&self, hour_us: i64) -> Vec<Observation> {
        self.by_day
            .get(&hour_us.div_euclid(DAY_US))
            .cloned()
            .unwrap_or_default()
    }
}

fn month_of(us: i64) -> Result<Month> {
    let t = DateTime::from_timestamp_micros(us).unwrap_or_default();
    Month::new(t.year(), t.month())
}

/// The variance as a share of the estimate.
pub fn share(row: &ReconcileRow) -> f64 {
    match (row.estimated, row.variance()) {
        (_, 0) => 0.0,
        (0, v) => v.signum() as f64,
        (e, v) => v as f64 / e as f64,
    }
}

/// The days of `[from_us, to_us)` a `variance_above` rule judges; nothing
/// for a rule of another kind.
pub async fn days(store: &Store, rule: &Rule, from_us: i64, to_us: i64) -> Result<VarianceDays> {
    let Condition::VarianceAbove { threshold } = rule.condition else {
        return Ok(VarianceDays::default());
    };
    let group_by: Vec<ReconcileBy> = rule
        .spec
        .group_by
        .iter()
        .filter_map(|d| ReconcileBy::parse_list(d).ok())
        .flatten()
        .collect();
    let by: Vec<ReconcileBy> = std::iter::once(ReconcileBy::Day)
        .chain(group_by.clone())
        .collect();
    let mut days = VarianceDays::default();
    let (mut month, last) = (month_of(from_us)?, month_of(to_us - 1)?);
    while month <= last {
        // One month that cannot be reconciled stops this rule's judgement of
        // it, not every rule's evaluation.
        let report = match reconciliation(store, month, &by).await {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(%month, rule = %rule.spec.name, error = %e, "variance not judged");
                month = month.next()?;
                continue;
            }
        };
        // Only what has an estimate can be off it: credits and lines nothing
        // maps are the reconciliation's to show, not an alert's.
        let judged = report
            .rows
            .iter()
            .filter(|r| report.has_billed() && r.estimated != 0);
        for row in judged {
            let Some(day) = chrono::NaiveDate::parse_from_str(&row.group[0], "%Y-%m-%d").ok()
            else {
                continue;
            };
            let labels: Labels = group_by
                .iter()
                .zip(&row.group[1..])
                .map(|(b, v)| (b.as_str().to_owned(), v.clone()))
                .collect();
            let value = share(row);
            let epoch_day = crate::fine::micros(day).div_euclid(DAY_US);
            days.by_day.entry(epoch_day).or_default().push(Observation {
                labels,
                value,
                holds: value.abs() > threshold,
            });
        }
        month = month.next()?;
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_of_the_estimate() {
        let row = |billed: i128, estimated: i128| ReconcileRow {
            billed,
            estimated,
            ..ReconcileRow::default()
        };
        assert_eq!(share(&row(106, 100)), 0.06);
        assert_eq!(share(&row(90, 100)), -0.1);
        assert_eq!(share(&row(5, 0)), 1.0);
        assert_eq!(share(&row(0, 0)), 0.0);
    }
}
