//! Reports as tables: the one shape the CLI prints (table, JSON, CSV) and the API
//! answers, so both say the same thing.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::Result;
use crate::chargeback::{Chargeback, ChargebackRow, to_cents};
use crate::invoice::Reconciliation;
use crate::reconcile::ReconcileRow;

/// Cents as a decimal amount (`2401` -> `24.01`).
fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// The report as a table: one row per group and a TOTAL row, money rounded to
/// cents so that every column adds up to its total.
pub fn chargeback_table(report: &Chargeback) -> Result<(SchemaRef, RecordBatch)> {
    let by = &report.by;
    let mut rows = report.rows.clone();
    // The total last, named in the first grouping column.
    let mut total = report.total.clone();
    total.group = (0..by.len())
        .map(|i| if i == 0 { "TOTAL" } else { "" }.to_owned())
        .collect();
    let money = |pick: fn(&ChargebackRow) -> i128| -> Vec<String> {
        let (cents, sum) = to_cents(&rows.iter().map(pick).collect::<Vec<_>>());
        cents.into_iter().chain([sum]).map(amount).collect()
    };
    let totals_cents = |pick: fn(&ChargebackRow) -> i128| -> Vec<i64> {
        let (cents, sum) = to_cents(&rows.iter().map(pick).collect::<Vec<_>>());
        cents.into_iter().chain([sum]).collect()
    };
    let (payg, ptu, idle, adjustment, savings, totals, previous) = (
        money(|r| r.payg_pico),
        money(|r| r.ptu_pico),
        money(|r| r.idle_pico),
        money(|r| r.adjustment_pico),
        money(|r| r.cache_savings_pico),
        money(ChargebackRow::total_pico),
        money(|r| r.previous_total_pico),
    );
    let now = totals_cents(ChargebackRow::total_pico);
    let before = totals_cents(|r| r.previous_total_pico);
    // A previous month without traffic is no data: empty, not zero.
    let previous = match report.previous_has_data {
        true => texts(&previous),
        false => strings(previous.iter().map(|_| None)),
    };
    let all = *now.last().unwrap_or(&0);
    let share: Vec<String> = now
        .iter()
        .map(|c| match all {
            0 => "0.00".to_owned(),
            _ => format!("{:.2}", *c as f64 * 100.0 / all as f64),
        })
        .collect();
    let change: Vec<Option<String>> = now
        .iter()
        .zip(&before)
        .map(|(n, b)| (*b != 0).then(|| format!("{:+.2}", (n - b) as f64 * 100.0 / *b as f64)))
        .collect();
    rows.push(total);
    let mut columns = Vec::new();
    let group_values: Vec<Vec<String>> = (0..by.len())
        .map(|i| rows.iter().map(|r| r.group[i].clone()).collect())
        .collect();
    for (name, values) in by.iter().zip(&group_values) {
        columns.push((name.as_str(), texts(values)));
    }
    columns.extend([
        ("requests", ints(rows.iter().map(|r| r.requests))),
        ("prompt_tokens", ints(rows.iter().map(|r| r.prompt_tokens))),
        ("cached_tokens", ints(rows.iter().map(|r| r.cached_tokens))),
        (
            "completion_tokens",
            ints(rows.iter().map(|r| r.completion_tokens)),
        ),
        ("cache_hits", ints(rows.iter().map(|r| r.cache_hits))),
        ("payg_cost", texts(&payg)),
        ("ptu_cost", texts(&ptu)),
        ("idle_capacity", texts(&idle)),
        ("adjustment", texts(&adjustment)),
        ("total", texts(&totals)),
        ("share_pct", texts(&share)),
        ("cache_savings", texts(&savings)),
        ("previous_month_total", previous),
        ("change_pct", strings(change.iter().map(Option::as_deref))),
        (
            "unpriced_tokens",
            ints(rows.iter().map(|r| r.unpriced_tokens)),
        ),
    ]);
    table(columns)
}

/// A quantity in thousandths as the shortest decimal (`1500` -> `1.5`).
pub fn quantity(milli: i128) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    let (whole, part) = (milli.abs() / 1000, milli.abs() % 1000);
    match part {
        0 => format!("{sign}{whole}"),
        _ => format!(
            "{sign}{whole}.{}",
            format!("{part:03}").trim_end_matches('0')
        ),
    }
}

/// The reconciliation as a table: a row per group and a TOTAL row, money in
/// cents rounded so that every column adds up to its total.
pub fn reconcile_table(report: &Reconciliation) -> Result<(SchemaRef, RecordBatch)> {
    let rows: Vec<&ReconcileRow> = report.rows.iter().collect();
    let money = |pick: &dyn Fn(&ReconcileRow) -> i128| -> Vec<String> {
        let (cents, sum) = to_cents(&rows.iter().map(|r| pick(r)).collect::<Vec<_>>());
        cents.into_iter().chain([sum]).map(amount).collect()
    };
    let all: Vec<&ReconcileRow> = rows.iter().copied().chain([&report.total]).collect();
    let mut columns = Vec::new();
    for (i, by) in report.by.iter().enumerate() {
        let values: Vec<String> = all
            .iter()
            .map(|r| match r.group.get(i) {
                Some(v) => v.clone(),
                None => if i == 0 { "TOTAL" } else { "" }.to_owned(),
            })
            .collect();
        columns.push((by.as_str(), texts(&values)));
    }
    let quantities = |pick: fn(&ReconcileRow) -> i128| -> Vec<String> {
        all.iter().map(|r| quantity(pick(r))).collect()
    };
    let pct: Vec<Option<String>> = all
        .iter()
        .map(|r| r.variance_percent().map(|p| format!("{p:.2}")))
        .collect();
    columns.push((
        "billed_quantity",
        texts(&quantities(|r| r.billed_quantity_milli)),
    ));
    columns.push((
        "logged_quantity",
        texts(&quantities(|r| r.logged_quantity_milli)),
    ));
    columns.push(("billed", texts(&money(&|r| r.billed))));
    columns.push(("estimated", texts(&money(&|r| r.estimated))));
    columns.push(("variance", texts(&money(&|r| r.variance()))));
    columns.push(("variance_pct", strings(pct.iter().map(|p| p.as_deref()))));
    for (i, (name, _)) in report.total.causes.named().into_iter().enumerate() {
        columns.push((name, texts(&money(&|r| r.causes.named()[i].1))));
    }
    columns.push(("residual", texts(&money(&|r| r.residual()))));
    let fix: Vec<String> = all.iter().map(|r| r.price_rows.join(" ")).collect();
    columns.push(("price_rows_to_check", texts(&fix)));
    table(columns)
}

/// Builds a one-batch table from string and integer columns for printing.
pub fn table(columns: Vec<(&str, ArrayRef)>) -> Result<(SchemaRef, RecordBatch)> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| {
                Field::new(
                    *name,
                    array.data_type().clone(),
                    array.data_type() != &DataType::Int64,
                )
            })
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?;
    Ok((schema, batch))
}

pub fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

/// A column of owned strings, none of them null.
pub fn texts(values: &[String]) -> ArrayRef {
    strings(values.iter().map(|v| Some(v.as_str())))
}

pub fn ints(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}
