//! `tollgate report`: the reports FinOps and operators read.

use std::process::ExitCode;

use anyhow::Result;
use tollgate_reports::chargeback::{ChargebackRow, chargeback, to_cents};
use tollgate_store::Store;
use tollgate_store::output::OutputFormat;

use super::{ints, print, strings, table};

/// Cents as a decimal amount (`2401` -> `24.01`).
fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

pub async fn chargeback_report(
    store: &Store,
    (year, month): (i32, u32),
    by: &[String],
    format: OutputFormat,
) -> Result<ExitCode> {
    let report = chargeback(store, year, month, by).await?;
    let mut rows = report.rows.clone();
    // The total last, named in the first grouping column.
    let mut total = report.total.clone();
    total.group = by
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if i == 0 {
                "TOTAL".to_owned()
            } else {
                String::new()
            }
        })
        .collect();
    let money = |pick: fn(&ChargebackRow) -> i128| -> Vec<String> {
        let (cents, sum) = to_cents(&rows.iter().map(pick).collect::<Vec<_>>());
        cents.into_iter().chain([sum]).map(amount).collect()
    };
    let (payg, ptu, idle, totals) = (
        money(|r| r.payg_pico),
        money(|r| r.ptu_pico),
        money(|r| r.idle_pico),
        money(ChargebackRow::total_pico),
    );
    let (total_cents, all) = to_cents(
        &rows
            .iter()
            .map(ChargebackRow::total_pico)
            .collect::<Vec<_>>(),
    );
    let share: Vec<String> = total_cents
        .iter()
        .chain([&all])
        .map(|c| match all {
            0 => "0.00".to_owned(),
            _ => format!("{:.2}", *c as f64 * 100.0 / all as f64),
        })
        .collect();
    rows.push(total);
    let text = |values: &[String]| strings(values.iter().map(|v| Some(v.as_str())));
    let mut columns = Vec::new();
    let group_values: Vec<Vec<String>> = (0..by.len())
        .map(|i| rows.iter().map(|r| r.group[i].clone()).collect())
        .collect();
    for (name, values) in by.iter().zip(&group_values) {
        columns.push((name.as_str(), text(values)));
    }
    columns.extend([
        ("requests", ints(rows.iter().map(|r| r.requests))),
        ("prompt_tokens", ints(rows.iter().map(|r| r.prompt_tokens))),
        ("cached_tokens", ints(rows.iter().map(|r| r.cached_tokens))),
        (
            "completion_tokens",
            ints(rows.iter().map(|r| r.completion_tokens)),
        ),
        ("payg_cost", text(&payg)),
        ("ptu_cost", text(&ptu)),
        ("idle_capacity", text(&idle)),
        ("total", text(&totals)),
        ("share_pct", text(&share)),
        (
            "unpriced_tokens",
            ints(rows.iter().map(|r| r.unpriced_tokens)),
        ),
    ]);
    let (schema, batch) = table(columns)?;
    print(format, &schema, &[batch])
}
