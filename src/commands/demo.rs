//! `tollgate demo`: the whole product in one command. It generates the
//! fictional organisation's previous month and its current month up to now
//! (a month to close, live budgets and alerts), loads the reference data and
//! the lineage catalog, ingests the traffic and the generated bills (cost
//! exports to reconcile), evaluates budgets and alerts,
//! creates one key per role (revoking an earlier run's), prints them with the
//! URL, and serves.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Datelike, Utc};
use tollgate_ingest::Format;
use tollgate_reports::chargeback::ChargebackCache;
use tollgate_reports::month::Month;
use tollgate_store::Store;

use super::{capacity, lineage, ownership, prices, server};
use crate::cli::{DemoArgs, LineageSource};
use crate::config::Config;

/// The roles people log in with (gateway and ingest keys are for programs).
const ROLES: [&str; 4] = ["admin", "finops", "operator", "security"];

pub async fn run(store: Store, config: &Config, args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    // `--now` (global) fixes the clock the whole demo runs by, server included.
    let now = store.clock.now();
    let current = Month::new(now.year(), now.month())?;
    let previous = current.previous()?;
    let input = config.store.data_dir.join("demo-input");

    step(
        1,
        &format!(
            "generating {previous} and {current} up to {}",
            now.format("%Y-%m-%d %H:%M UTC")
        ),
    );
    let (mut files, mut bills) = generate(&input, previous, None, &args).await?;
    let (current_files, current_bills) = generate(&input, current, Some(now), &args).await?;
    files.extend(current_files);
    bills.extend(current_bills);
    // Budgets are sized from a whole month, so some run out in the current one.
    let reference = input.join(previous.to_string()).join("reference");

    step(
        2,
        "loading prices, backends, PTU reservations, ownership and the lineage catalog",
    );
    checked(prices::import(&store, &reference.join("prices.csv")).await?)?;
    checked(capacity::import_backends(&store, &reference.join("backends.csv")).await?)?;
    checked(capacity::import_ptu(&store, &reference.join("ptu-reservations.csv")).await?)?;
    checked(ownership::import(&store, &reference.join("ownership.toml")).await?)?;
    checked(
        lineage::import(
            &store,
            config,
            LineageSource::Catalog,
            &reference.join("catalog.yaml"),
        )
        .await?,
    )?;

    step(
        3,
        &format!(
            "ingesting {} files of traffic and {} cost exports (the bills to reconcile)",
            files.len(),
            bills.len()
        ),
    );
    checked(super::ingest(&store, config, Format::Auto, None, &files).await?)?;
    checked(super::ingest(&store, config, Format::AzureCost, None, &bills).await?)?;

    step(
        4,
        "loading budgets, then evaluating budgets and alert rules",
    );
    let budgets = tollgate_reports::budgets::import(
        &store,
        &reference.join("budgets.toml"),
        &server::cli_actor(),
    )
    .await?;
    println!("{} budgets stored", budgets.len());
    // Budgets first: the budget rules judge them, and the rules' load shedding
    // cuts them.
    server::evaluate_budgets(&store, &ChargebackCache::default(), None).await;
    server::evaluate_alerts(&store, config, true).await?;

    step(5, "creating one key per role");
    // An earlier run's demo keys stop working: only the keys printed now do.
    for old in store.db.api_keys().await? {
        if old.revoked_at.is_none() && ROLES.iter().any(|r| old.name == format!("demo-{r}")) {
            store
                .db
                .revoke_api_key(old.id, &server::cli_actor())
                .await?;
        }
    }
    let mut keys = Vec::new();
    for role in ROLES {
        let request = tollgate_web::KeyRequest {
            role: role.to_owned(),
            gateways: Vec::new(),
            name: Some(format!("demo-{role}")),
            expires_at: None,
        };
        let created = tollgate_web::create_key(&store.db, &request, &server::cli_actor())
            .await
            .map_err(|e| anyhow::anyhow!("creating the {role} key: {e}"))?;
        keys.push((role, created.secret));
    }

    let listener = server::bind(config, args.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!(
        "\nready in {:.0} s. Open {url} and log in with one of these keys:\n",
        started.elapsed().as_secs_f64()
    );
    for (role, secret) in &keys {
        println!("  {role:<9} {secret}");
    }
    println!(
        "\nFinOps: {url}/finops?month={previous} (the month to close) · Operations: {url}/operations \
         · Security: {url}/security"
    );
    if let Some(path) = &args.keys_file {
        write_keys(path, &url, &keys)?;
    }
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Ctrl-C stops the server; the data stays in {}.",
        config.store.data_dir.display()
    );
    let mut settings = server::server_config(config, None);
    if config.alerts.external_url.is_none() {
        settings.external_url = url;
    }
    server::serve_on(store, settings, listener).await
}

fn step(n: usize, what: &str) {
    println!("[{n}/5] {what}");
}

/// A step's command failed: it said why on stderr.
fn checked(code: ExitCode) -> Result<()> {
    if code != ExitCode::SUCCESS {
        bail!("the demo stopped: the step above failed");
    }
    Ok(())
}

/// Writes one month's traffic under `input/<month>` and returns the traffic
/// files (not the reference data) and the month's cost export (the bill the
/// generator makes from the traffic, with its injected differences).
async fn generate(
    input: &Path,
    month: Month,
    until: Option<DateTime<Utc>>,
    args: &DemoArgs,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let out = input.join(month.to_string());
    let options = tollgate_fixtures::GenerateOptions {
        year: month.year(),
        month: month.number(),
        requests: args.requests,
        seed: args.seed,
        // One estate, each month its own requests.
        traffic_seed: Some(args.seed ^ ((u64::from(month.number()) << 32) | month.year() as u64)),
        until,
        out: out.clone(),
        scale: Default::default(),
    };
    let report = tokio::task::spawn_blocking(move || tollgate_fixtures::generate(&options))
        .await?
        .with_context(|| format!("writing the demo's traffic to {}", out.display()))?;
    println!(
        "{month}: {} requests, {} DLP events",
        report.requests, report.dlp_events
    );
    let traffic = report
        .files
        .into_iter()
        .filter(|f| !f.starts_with(out.join("reference")))
        .collect();
    Ok((traffic, report.cost_files))
}

/// The URL and the keys as JSON for scripts (the end-to-end tests), readable
/// by this user only: they are secrets.
fn write_keys(path: &Path, url: &str, keys: &[(&str, String)]) -> Result<()> {
    use std::io::Write;
    let body = serde_json::json!({
        "url": url,
        "keys": keys.iter().map(|(r, s)| ((*r).to_owned(), serde_json::Value::from(s.as_str()))).collect::<serde_json::Map<_, _>>(),
    });
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{body}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
