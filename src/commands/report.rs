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

use tollgate_reports::rate::format_pico_wide;
use tollgate_reports::table::{chargeback_table, ints, strings, table, texts};
use tollgate_reports::unseen::{UnseenLine, UnseenTraffic};

use super::print;
use crate::cli::ExportFormat;
use crate::config::Config;

pub async fn chargeback_report(
    store: &Store,
    config: &Config,
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
    let unseen = unseen_of(store, config, month).await?;
    if !unseen.lines.is_empty() {
        let calls: i64 = unseen.lines.iter().map(|l| l.calls).sum();
        eprintln!(
            "traffic no gateway saw (traces, not in the total): {calls} model calls, {} estimated; \
             tollgate report unseen --month {month}",
            format_pico_wide(unseen.estimated_pico)
        );
    }
    Ok(printed)
}

/// The month's traffic no gateway saw, judged by the configured gateway
/// hosts and the graph's gateways.
async fn unseen_of(store: &Store, config: &Config, month: Month) -> Result<UnseenTraffic> {
    let graph = tollgate_lineage::load_graph(&store.db, config.taxonomy.clone()).await?;
    let gateways =
        tollgate_lineage::GatewayHosts::new(&config.lineage_policy.gateway_hosts, &graph);
    let is_gateway = |address: &str| gateways.is_gateway(address);
    Ok(tollgate_reports::unseen::unseen_traffic(store, month, &is_gateway).await?)
}

/// `tollgate report unseen`: one row per address, agent, model and service.
pub async fn unseen_report(
    store: &Store,
    config: &Config,
    month: Month,
    format: OutputFormat,
) -> Result<ExitCode> {
    let unseen = unseen_of(store, config, month).await?;
    super::answer(format, &unseen, |unseen| {
        if unseen.lines.is_empty() {
            eprintln!("{month}: no traced model call went around the gateways");
        }
        unseen_table(unseen)
    })
}

fn unseen_table(unseen: &UnseenTraffic) -> Result<super::Table> {
    let lines = &unseen.lines;
    let estimated: Vec<String> = lines
        .iter()
        .map(|l| format_pico_wide(l.estimated_pico))
        .collect();
    let text = |pick: fn(&UnseenLine) -> Option<&str>| strings(lines.iter().map(pick));
    Ok(table(vec![
        ("server_address", text(|l| Some(l.server_address.as_str()))),
        ("agent", text(|l| l.agent.as_deref())),
        ("model", text(|l| l.model.as_deref())),
        ("service", text(|l| l.service_name.as_deref())),
        ("calls", ints(lines.iter().map(|l| l.calls))),
        ("input_tokens", ints(lines.iter().map(|l| l.input_tokens))),
        ("cached_tokens", ints(lines.iter().map(|l| l.cached_tokens))),
        ("output_tokens", ints(lines.iter().map(|l| l.output_tokens))),
        ("estimated", texts(&estimated)),
        (
            "unpriced_tokens",
            ints(lines.iter().map(|l| l.unpriced_tokens)),
        ),
    ])?)
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
