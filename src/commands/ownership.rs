//! `tollgate ownership`: cost centres and who belongs to them.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use tollgate_store::Store;
use tollgate_store::output::OutputFormat;

use super::{print, strings, table};

pub async fn import(store: &Store, path: &Path) -> Result<ExitCode> {
    let (centres, rows) = tollgate_reports::ownership::import(&store.db, path).await?;
    super::audit_import(store, "ownership.import", "ownership", path, rows.len()).await?;
    println!(
        "{}: ownership replaced: {} cost centres, {} mappings",
        path.display(),
        centres.len(),
        rows.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let centres = store.db.cost_centres().await?;
    let rows = store.db.ownership().await?;
    let names: Vec<Option<&str>> = rows
        .iter()
        .map(|r| {
            centres
                .iter()
                .find(|c| c.id == r.cost_centre)
                .map(|c| c.name.as_str())
        })
        .collect();
    let (schema, batch) = table(vec![
        ("kind", strings(rows.iter().map(|r| Some(r.kind.as_str())))),
        ("key", strings(rows.iter().map(|r| Some(r.key.as_str())))),
        (
            "cost_centre",
            strings(rows.iter().map(|r| Some(r.cost_centre.as_str()))),
        ),
        ("cost_centre_name", strings(names.into_iter())),
    ])?;
    print(format, &schema, &[batch])
}
