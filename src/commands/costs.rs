//! `tollgate costs`, `tollgate report reconcile` and the billed-basis
//! chargeback: the provider's bill beside the estimate (docs/reconciliation.md).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use tollgate_reports::invoice::{Reconciliation, reconciliation};
use tollgate_reports::month::Month;
use tollgate_reports::rate::format_pico_wide;
use tollgate_reports::reconcile::ReconcileBy;
use tollgate_reports::table::{chargeback_table, ints, reconcile_table, strings, table};
use tollgate_reports::trueup::chargeback_billed;
use tollgate_store::Store;
use tollgate_store::output::{OutputFormat, terminal_text};

use super::print;

pub async fn import_meters(store: &Store, path: &Path) -> Result<ExitCode> {
    let rows = tollgate_reports::meter::import(&store.db, path).await?;
    super::audit_import(store, "meters.import", "meter_map", path, rows.len()).await?;
    println!(
        "{}: meter map replaced: {} rows",
        path.display(),
        rows.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list_meters(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let rows = store.db.meter_map().await?;
    let text =
        |pick: fn(&tollgate_store::state::MeterRow) -> Option<&str>| strings(rows.iter().map(pick));
    let (schema, batch) = table(vec![
        ("meter", text(|r| Some(r.meter.as_str()))),
        ("model", text(|r| r.model.as_deref())),
        ("token_kind", text(|r| Some(r.token_kind.as_str()))),
        (
            "deployment_type",
            text(|r| Some(r.deployment_type.as_str())),
        ),
        ("unit", ints(rows.iter().map(|r| r.unit))),
        ("source", text(|r| Some(r.source.as_str()))),
    ])?;
    print(format, &schema, &[batch])
}

pub async fn reconcile(
    store: &Store,
    month: Month,
    by: &str,
    format: OutputFormat,
) -> Result<ExitCode> {
    let by = ReconcileBy::parse_list(by)?;
    let report = reconciliation(store, month, &by).await?;
    super::warn_lake_faults(store).await?;
    super::answer(format, &report, |report| {
        tell_compared(month, report);
        Ok(reconcile_table(report)?)
    })
}

/// Says on stderr what was compared: the period, the currency, the cost
/// files and any warning (a table reader sees them beside the rows).
fn tell_compared(month: Month, report: &Reconciliation) {
    if !report.has_billed() {
        eprintln!("{month}: no cost export imported (tollgate costs import FILE)");
    }
    eprintln!(
        "compared {} to {} ({}), in {}",
        report.period.0,
        report.period.1,
        if report.has_billed() {
            "the days the cost files cover"
        } else {
            "the month"
        },
        report.currency.as_deref().unwrap_or("no currency")
    );
    for file in &report.cost_files {
        let line = format!("billed: batch {} {}", file.batch_id, file.source);
        eprintln!("{}", terminal_text(&line));
    }
    for warning in &report.warnings {
        eprintln!("warning: {}", terminal_text(warning));
    }
}

pub async fn billed_chargeback(
    store: &Store,
    month: Month,
    by: &[String],
    format: OutputFormat,
) -> Result<ExitCode> {
    let billed = chargeback_billed(store, month, by).await?;
    if billed.cost_files.is_empty() {
        eprintln!("{month}: no cost export imported: nothing billed to allocate");
    }
    eprintln!(
        "{month} on the invoice's basis: {} billed, {} unattributed ({})",
        format_pico_wide(billed.billed_pico),
        format_pico_wide(billed.unattributed_pico),
        tollgate_reports::trueup::ALLOCATION_METHOD
    );
    for warning in &billed.warnings {
        eprintln!("warning: {}", terminal_text(warning));
    }
    let (schema, batch) = chargeback_table(&billed.chargeback)?;
    print(format, &schema, &[batch])
}
