//! `tollgate prices`: the price book.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use tollgate_reports::rate::format_pico;
use tollgate_store::Store;
use tollgate_store::output::OutputFormat;

use super::{print, strings, table, texts};

pub async fn import(store: &Store, path: &Path) -> Result<ExitCode> {
    let rows = tollgate_reports::price_book::import(&store.db, path).await?;
    super::audit_import(store, "prices.import", "prices", path, rows.len()).await?;
    println!(
        "{}: price book replaced: {} rows",
        path.display(),
        rows.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let rows = store.db.price_book().await?;
    let unit: Vec<&str> = rows
        .iter()
        .map(|r| if r.unit_tokens == 1_000 { "1K" } else { "1M" })
        .collect();
    let rate = |pick: fn(&tollgate_store::state::PriceRow) -> i64| -> Vec<String> {
        rows.iter().map(|r| format_pico(pick(r))).collect()
    };
    let (input, cached, output) = (
        rate(|r| r.input_rate_pico),
        rate(|r| r.cached_input_rate_pico),
        rate(|r| r.output_rate_pico),
    );
    let (schema, batch) = table(vec![
        (
            "model",
            strings(rows.iter().map(|r| Some(r.model.as_str()))),
        ),
        (
            "deployment_type",
            strings(rows.iter().map(|r| Some(r.deployment_type.as_str()))),
        ),
        (
            "region",
            strings(rows.iter().map(|r| Some(r.region.as_str()))),
        ),
        (
            "currency",
            strings(rows.iter().map(|r| Some(r.currency.as_str()))),
        ),
        ("unit", strings(unit.iter().map(|u| Some(*u)))),
        ("input_rate", texts(&input)),
        ("cached_input_rate", texts(&cached)),
        ("output_rate", texts(&output)),
        (
            "effective_from",
            strings(rows.iter().map(|r| Some(r.effective_from.as_str()))),
        ),
        (
            "effective_to",
            strings(rows.iter().map(|r| r.effective_to.as_deref())),
        ),
    ])?;
    print(format, &schema, &[batch])
}
