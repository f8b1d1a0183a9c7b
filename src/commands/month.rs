//! `tollgate month` and `tollgate rollups`: closing months and keeping the
//! rollups reports read.

use std::process::ExitCode;

use anyhow::Result;
use tollgate_reports::close::{close_month_on, history, reopen_month};
use tollgate_reports::month::Month;
use tollgate_reports::trueup::Basis;
use tollgate_store::Store;
use tollgate_store::output::OutputFormat;

use super::server::cli_actor;
use super::{print, strings, table};
use tollgate_store::state::NewAudit;

pub async fn close(store: &Store, month: Month, basis: Basis) -> Result<ExitCode> {
    let closure = close_month_on(store, month, basis).await?;
    store
        .db
        .record_audit(
            &NewAudit::new(&cli_actor(), "month.close", format!("month:{month}")).after(&closure),
        )
        .await?;
    println!(
        "closed {}: total {} from {} batches\n  {} (sha256 {})\n  {} (sha256 {})",
        closure.month,
        closure.total,
        closure.batches,
        closure.json_path,
        closure.json_sha256,
        closure.parquet_path,
        closure.parquet_sha256
    );
    println!("  basis: {}", closure.basis.as_str());
    for file in &closure.cost_files {
        let line = format!("  cost file: batch {} {}", file.batch_id, file.source);
        println!("{}", tollgate_store::output::terminal_text(&line));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn reopen(store: &Store, month: Month, force: bool, reason: &str) -> Result<ExitCode> {
    reopen_month(store, month, force, reason).await?;
    store
        .db
        .record_audit(
            &NewAudit::new(&cli_actor(), "month.reopen", format!("month:{month}"))
                .after(&[("reason", reason)]),
        )
        .await?;
    println!("re-opened {month}: its report is computed from the lake again");
    Ok(ExitCode::SUCCESS)
}

pub async fn list(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let rows = history(store).await?;
    let column = |pick: fn(&tollgate_store::state::MonthClose) -> Option<&str>| {
        strings(rows.iter().map(pick))
    };
    let (schema, batch) = table(vec![
        ("month", column(|r| Some(r.month.as_str()))),
        ("action", column(|r| Some(r.action.as_str()))),
        ("at", column(|r| Some(r.at.as_str()))),
        ("total", column(|r| r.total.as_deref())),
        ("reason", column(|r| r.reason.as_deref())),
        ("json_sha256", column(|r| r.json_sha256.as_deref())),
        ("json_path", column(|r| r.json_path.as_deref())),
    ])?;
    print(format, &schema, &[batch])
}

pub async fn rebuild_rollups(store: &Store) -> Result<ExitCode> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("rollups [{bar:30}] {pos}/{len} days eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = store
        .rebuild_rollups(&|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await;
    bar.finish_and_clear();
    let report = report?;
    crate::commands::warn_lake_faults(store).await?;
    println!(
        "rebuilt rollups: {} hours, {} rows",
        report.hours, report.rows
    );
    Ok(ExitCode::SUCCESS)
}
