//! `tollgate report` and `tollgate export`: the chargeback as people read it and
//! as files finance tools load.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use tollgate_reports::chargeback::{Chargeback, ChargebackRow, chargeback, to_cents};
use tollgate_reports::month::Month;
use tollgate_reports::snapshot::write_new_file;
use tollgate_store::Store;
use tollgate_store::output::{OutputFormat, write_batches};

use super::{ints, print, strings, table, texts};
use crate::cli::ExportFormat;

/// Cents as a decimal amount (`2401` -> `24.01`).
fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

pub async fn chargeback_report(
    store: &Store,
    month: Month,
    by: &[String],
    format: OutputFormat,
) -> Result<ExitCode> {
    let report = chargeback(store, month, by).await?;
    if let Some(closed) = &report.closed {
        eprintln!(
            "{} is closed ({}): served from its snapshot {} (sha256 {})",
            closed.month, closed.closed_at, closed.json_path, closed.json_sha256
        );
    }
    let (schema, batch) = chargeback_table(&report)?;
    print(format, &schema, &[batch])
}

/// The report as a table: one row per group and a TOTAL row, money rounded to
/// cents so that every column adds up to its total.
fn chargeback_table(report: &Chargeback) -> Result<(SchemaRef, RecordBatch)> {
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
        ("previous_month_total", texts(&previous)),
        ("change_pct", strings(change.iter().map(Option::as_deref))),
        (
            "unpriced_tokens",
            ints(rows.iter().map(|r| r.unpriced_tokens)),
        ),
    ]);
    table(columns)
}

pub async fn export_chargeback(
    store: &Store,
    month: Month,
    by: &[String],
    format: ExportFormat,
    output: &Path,
) -> Result<ExitCode> {
    let report = chargeback(store, month, by).await?;
    let bytes = match format {
        ExportFormat::Csv => {
            let (schema, batch) = chargeback_table(&report)?;
            let mut bytes = Vec::new();
            write_batches(OutputFormat::Csv, &schema, &[batch], &mut bytes)?;
            bytes
        }
        ExportFormat::Parquet => tollgate_reports::snapshot::parquet_bytes(
            &report.month.to_string(),
            &report.by,
            &report.rows,
        )?,
    };
    write_new_file(output, &bytes)?;
    println!(
        "wrote {} ({} rows) for {}",
        output.display(),
        report.rows.len(),
        report.month
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn export_focus(store: &Store, month: Month, output: &Path) -> Result<ExitCode> {
    let export = tollgate_reports::focus::export(store, month).await?;
    write_new_file(output, &export.csv)?;
    println!(
        "wrote {}: {} FOCUS 1.0 rows for {} (billed cost {} {})",
        output.display(),
        export.rows,
        export.month,
        export.billed_cost,
        export.currency
    );
    Ok(ExitCode::SUCCESS)
}
