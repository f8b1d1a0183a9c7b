//! `tollgate report` and `tollgate export`: the chargeback as people read it and
//! as files finance tools load.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use tollgate_reports::chargeback::chargeback;
use tollgate_reports::month::Month;
use tollgate_reports::snapshot::write_new_file;
use tollgate_store::Store;
use tollgate_store::output::{OutputFormat, write_batches};

use tollgate_reports::table::chargeback_table;

use super::print;
use crate::cli::ExportFormat;

pub async fn chargeback_report(
    store: &Store,
    month: Month,
    by: &[String],
    format: OutputFormat,
) -> Result<ExitCode> {
    let report = chargeback(store, month, by).await?;
    super::warn_lake_faults(store).await?;
    if let Some(closed) = &report.closed {
        eprintln!(
            "{} is closed ({}): served from its snapshot {} (sha256 {})",
            closed.month, closed.closed_at, closed.json_path, closed.json_sha256
        );
    }
    if !report.has_data {
        eprintln!("{month}: no traffic ingested, no data (reservations alone are not a month)");
    } else if !report.previous_has_data {
        eprintln!(
            "{}: no traffic ingested, nothing to compare with",
            month.previous()?
        );
    }
    let (schema, batch) = chargeback_table(&report)?;
    let printed = print(format, &schema, &[batch])?;
    if report.total.unpriced_tokens > 0 {
        explain_unpriced(store, month, report.total.unpriced_tokens).await?;
    }
    Ok(printed)
}

/// Says on stderr why tokens have no price and what to import for each cause.
async fn explain_unpriced(store: &Store, month: Month, tokens: i64) -> Result<()> {
    eprintln!("{tokens} tokens have no price and are not in these amounts:");
    for u in tollgate_reports::unpriced::unpriced(store, month).await? {
        let line = format!("  {} tokens: {}", u.tokens, u.fix);
        eprintln!("{}", tollgate_store::output::terminal_text(&line));
    }
    Ok(())
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
