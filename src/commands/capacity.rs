//! `tollgate backends` and `tollgate ptu`: what the backends are and the
//! provisioned throughput paid whatever the traffic.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use tollgate_reports::rate::format_pico;
use tollgate_store::Store;
use tollgate_store::output::OutputFormat;

use super::{ints, print, strings, table, texts};

pub async fn import_backends(store: &Store, path: &Path) -> Result<ExitCode> {
    let rows = tollgate_reports::capacity::import_backends(&store.db, path).await?;
    super::audit_import(store, "backends.import", "backends", path, rows.len()).await?;
    println!("{}: backends replaced: {} rows", path.display(), rows.len());
    Ok(ExitCode::SUCCESS)
}

pub async fn list_backends(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let rows = store.db.backends().await?;
    let (schema, batch) = table(vec![
        (
            "backend",
            strings(rows.iter().map(|r| Some(r.backend.as_str()))),
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
            "resource_id",
            strings(rows.iter().map(|r| r.resource_id.as_deref())),
        ),
    ])?;
    print(format, &schema, &[batch])
}

pub async fn import_ptu(store: &Store, path: &Path) -> Result<ExitCode> {
    let rows = tollgate_reports::capacity::import_ptu(&store.db, path).await?;
    super::audit_import(store, "ptu.import", "ptu_reservations", path, rows.len()).await?;
    println!(
        "{}: PTU reservations replaced: {} rows",
        path.display(),
        rows.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list_ptu(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let rows = store.db.ptu_reservations().await?;
    let cost: Vec<String> = rows.iter().map(|r| format_pico(r.cost_pico)).collect();
    let weight: Vec<String> = rows
        .iter()
        .map(|r| format_pico(r.output_token_weight_milli * 1_000_000_000))
        .collect();
    let (schema, batch) = table(vec![
        (
            "backend",
            strings(rows.iter().map(|r| Some(r.backend.as_str()))),
        ),
        (
            "deployment",
            strings(rows.iter().map(|r| Some(r.deployment.as_str()))),
        ),
        ("ptus", ints(rows.iter().map(|r| r.ptus))),
        ("cost_per_ptu", texts(&cost)),
        (
            "per",
            strings(rows.iter().map(|r| Some(r.cost_period.as_str()))),
        ),
        (
            "currency",
            strings(rows.iter().map(|r| Some(r.currency.as_str()))),
        ),
        ("output_token_weight", texts(&weight)),
        (
            "idle_charged_to",
            strings(rows.iter().map(|r| Some(r.idle_charged_to.as_str()))),
        ),
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
