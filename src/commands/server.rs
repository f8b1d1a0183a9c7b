//! `tollgate serve`, `tollgate keys` and `tollgate budgets`: the server and the
//! state it hands out. Keys and budgets go through the same code as the API.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tollgate_reports::budget_eval;
use tollgate_reports::chargeback::ChargebackCache;
use tollgate_store::Store;
use tollgate_store::output::OutputFormat;
use tollgate_web::ServerConfig;

use super::{ints, print, strings, table, texts};
use crate::config::Config;
use crate::progress_bar::Bar;

/// How the audit log names a change made from the command line.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

pub async fn serve(
    store: Store,
    config: &Config,
    listen: Option<std::net::SocketAddr>,
    webhook_url: Option<String>,
) -> Result<ExitCode> {
    let listener = bind(config, listen).await?;
    eprintln!(
        "serving on http://{} (Ctrl-C stops; requests in flight finish)",
        listener.local_addr()?
    );
    serve_on(store, server_config(config, webhook_url), listener).await
}

/// Listens where asked, else where the config says, else on 127.0.0.1:8080.
pub async fn bind(
    config: &Config,
    listen: Option<std::net::SocketAddr>,
) -> Result<tokio::net::TcpListener> {
    let listen = listen
        .or(config.server.listen)
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn serve_on(
    store: Store,
    server: ServerConfig,
    listener: tokio::net::TcpListener,
) -> Result<ExitCode> {
    tollgate_web::serve(store, server, listener, shutdown_signal()).await?;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The server's settings from the config file's `[server]` and `[alerts]`.
pub fn server_config(config: &Config, webhook_url: Option<String>) -> ServerConfig {
    let section = &config.server;
    let defaults = ServerConfig::default();
    let max_ingest_bytes = section
        .max_ingest_mib
        .map_or(defaults.max_ingest_bytes, |m| m << 20);
    ServerConfig {
        budget_max_age: section
            .budget_max_age_seconds
            .map_or(defaults.budget_max_age, std::time::Duration::from_secs),
        max_ingest_bytes,
        evaluate_every: section
            .evaluate_every_seconds
            .map_or(defaults.evaluate_every, std::time::Duration::from_secs),
        derive_delay: section
            .derive_delay_ms
            .map_or(defaults.derive_delay, std::time::Duration::from_millis),
        header_read_timeout: section
            .header_read_timeout_seconds
            .map_or(defaults.header_read_timeout, std::time::Duration::from_secs),
        body_timeout: section
            .body_timeout_seconds
            .map_or(defaults.body_timeout, std::time::Duration::from_secs),
        shutdown_grace: section
            .shutdown_grace_seconds
            .map_or(defaults.shutdown_grace, std::time::Duration::from_secs),
        // At least a second: it is renewed every third of it.
        lease_ttl: section.lease_ttl_seconds.map_or(defaults.lease_ttl, |s| {
            std::time::Duration::from_secs(s.max(1))
        }),
        webhook_url: webhook_url.or_else(|| section.webhook_url.clone()),
        ingest: tollgate_ingest::IngestOptions {
            dimensions: config.dimensions.clone(),
            limits: tollgate_web::state::push_limits(&config.limits, max_ingest_bytes),
            ..defaults.ingest.clone()
        },
        taxonomy: config.taxonomy.clone(),
        lineage_policy: config.lineage_policy.clone(),
        alert_rules: config.alerts.rule.clone(),
        alert_webhook_url: config.alerts.webhook_url.clone(),
        alertmanager_url: config.alerts.alertmanager_url.clone(),
        external_url: config
            .alerts
            .external_url
            .clone()
            .unwrap_or(defaults.external_url.clone()),
        ..defaults
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

pub async fn create_key(
    store: &Store,
    role: String,
    gateways: Vec<String>,
    name: Option<String>,
    expires_at: Option<String>,
) -> Result<ExitCode> {
    let request = tollgate_web::KeyRequest {
        role,
        gateways,
        name,
        expires_at,
    };
    let created = match tollgate_web::create_key(&store.db, &request, &cli_actor()).await {
        Ok(created) => created,
        Err(tollgate_web::AppError::Invalid(problems)) => {
            anyhow::bail!("key refused:\n  {}", problems.join("\n  "))
        }
        Err(e) => return Err(e.into()),
    };
    println!("{}", created.secret);
    eprintln!(
        "created key {} ({}, role {}); the secret above is shown only now",
        created.key.id, created.key.name, created.key.role
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list_keys(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let keys = store.db.api_keys().await?;
    let (schema, batch) = table(vec![
        ("id", ints(keys.iter().map(|k| k.id))),
        ("name", strings(keys.iter().map(|k| Some(k.name.as_str())))),
        ("role", strings(keys.iter().map(|k| Some(k.role.as_str())))),
        (
            "gateways",
            strings(keys.iter().map(|k| Some(k.gateways.as_str()))),
        ),
        (
            "prefix",
            strings(keys.iter().map(|k| Some(k.prefix.as_str()))),
        ),
        (
            "created_at",
            strings(keys.iter().map(|k| Some(k.created_at.as_str()))),
        ),
        (
            "expires_at",
            strings(keys.iter().map(|k| k.expires_at.as_deref())),
        ),
        (
            "revoked_at",
            strings(keys.iter().map(|k| k.revoked_at.as_deref())),
        ),
    ])?;
    print(format, &schema, &[batch])
}

pub async fn revoke_key(store: &Store, id: i64) -> Result<ExitCode> {
    let row = store.db.revoke_api_key(id, &cli_actor()).await?;
    let line = format!("revoked key {} ({})", row.id, row.name);
    println!("{}", tollgate_store::output::terminal_text(&line));
    Ok(ExitCode::SUCCESS)
}

pub async fn import_budgets(store: &Store, path: &Path) -> Result<ExitCode> {
    let rows = tollgate_reports::budgets::import(store, path, &cli_actor()).await?;
    println!("{}: {} budgets stored", path.display(), rows.len());
    note_unseen_scopes(store, rows.iter()).await?;
    evaluate_budgets(store, &ChargebackCache::default(), None).await;
    Ok(ExitCode::SUCCESS)
}

/// Says, on stderr, which budgets name a scope no traffic has named yet.
async fn note_unseen_scopes(
    store: &Store,
    rows: impl Iterator<Item = &tollgate_store::state::BudgetRow>,
) -> Result<()> {
    let known = tollgate_reports::budgets::KnownScopes::load(store).await?;
    for row in rows {
        if let Some(note) = tollgate_reports::budgets::unseen_scope(&known, &row.budget) {
            let line = format!("note: budget {:?}: {note}", row.budget.name);
            eprintln!("{}", tollgate_store::output::terminal_text(&line));
        }
    }
    Ok(())
}

pub async fn list_budgets(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let (statuses, period) = budget_eval::statuses(store, &ChargebackCache::default()).await?;
    let quota = |s: &budget_eval::BudgetStatus| {
        let b = &s.budget.budget;
        match (&b.token_quota, &b.cost_quota) {
            (Some(t), Some(c)) => {
                format!("{t} tokens, {c} {}", b.currency.as_deref().unwrap_or(""))
            }
            (Some(t), None) => format!("{t} tokens"),
            (None, Some(c)) => format!("{c} {}", b.currency.as_deref().unwrap_or("")),
            (None, None) => String::new(),
        }
    };
    let texts_of = |f: &dyn Fn(&budget_eval::BudgetStatus) -> String| -> Vec<String> {
        statuses.iter().map(f).collect()
    };
    let (scope, quotas, used, state, projected, exhausted_on) = (
        texts_of(&|s| format!("{} {}", s.budget.budget.scope, s.budget.budget.scope_id)),
        texts_of(&quota),
        texts_of(&|s| format!("{:.1}%", s.used_fraction * 100.0)),
        texts_of(&|s| s.state.to_string()),
        texts_of(&|s| format!("{:.1}%", s.forecast.projected_fraction * 100.0)),
        texts_of(&|s| s.forecast.exhausted_on.clone().unwrap_or_default()),
    );
    let (schema, batch) = table(vec![
        ("id", ints(statuses.iter().map(|s| s.budget.id))),
        (
            "name",
            strings(statuses.iter().map(|s| Some(s.budget.budget.name.as_str()))),
        ),
        ("scope", texts(&scope)),
        ("quota", texts(&quotas)),
        ("tokens_used", ints(statuses.iter().map(|s| s.tokens_used))),
        (
            "cost_used",
            strings(statuses.iter().map(|s| Some(s.cost_used.as_str()))),
        ),
        ("used", texts(&used)),
        ("state", texts(&state)),
        ("projected", texts(&projected)),
        ("exhausted_on", texts(&exhausted_on)),
        (
            "action",
            strings(
                statuses
                    .iter()
                    .map(|s| Some(s.budget.budget.action.as_str())),
            ),
        ),
    ])?;
    eprintln!("period {period} (the current calendar month)");
    note_unseen_scopes(store, statuses.iter().map(|s| &s.budget)).await?;
    print(format, &schema, &[batch])
}

pub async fn evaluate_now(store: &Store) -> Result<ExitCode> {
    let evaluation = budget_eval::evaluate(store, &ChargebackCache::default()).await?;
    match evaluation.applied {
        Some(applied) => {
            for event in &applied.events {
                let line = format!(
                    "{}: {} -> {}",
                    event.budget_name, event.from_state, event.to_state
                );
                println!("{}", tollgate_store::output::terminal_text(&line));
            }
            for (gateway, version) in &applied.bumped {
                println!("gateway {gateway}: view version {version}");
            }
            println!(
                "{} budgets evaluated for {}: {} state changes, {} gateway views changed",
                evaluation.statuses.len(),
                evaluation.period,
                applied.events.len(),
                applied.bumped.len()
            );
        }
        None => println!("a newer evaluation was applied meanwhile; nothing changed"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Evaluates the alert rules over what was rolled up since they last ran
/// (`force`: judge the newest hours again even if nothing changed), then, if a
/// load-shedding cut started or ended, budgets; prints what changed. A failure
/// is reported but does not undo what was committed.
pub async fn evaluate_alerts(store: &Store, config: &Config, force: bool) -> Result<()> {
    tollgate_reports::alerts::install_rules(store, &config.alerts.rule).await?;
    let options = tollgate_reports::alerts::AlertOptions::default();
    match tollgate_reports::alerts::evaluate_live(store, &options, force).await {
        Ok(Some(run)) => {
            eprintln!("alerts: {}", run.describe());
            if run.sheds_changed() {
                evaluate_budgets(store, &ChargebackCache::default(), None).await;
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: alerts not evaluated: {e}"),
    }
    Ok(())
}

/// Judges the invoice-variance rules over the days a new bill may cover (a
/// bill moves no rollup, so the live evaluation does not see it); a failure
/// is reported but does not undo the import.
pub async fn evaluate_bill_alerts(store: &Store, config: &Config) {
    let options = tollgate_reports::alerts::AlertOptions::default();
    let installed = tollgate_reports::alerts::install_rules(store, &config.alerts.rule).await;
    let now = store.clock.now().timestamp_micros();
    let judged = match installed {
        Ok(_) => tollgate_reports::alerts::evaluate_bill(store, &options, now).await,
        Err(e) => Err(e),
    };
    match judged {
        Ok(Some(run)) => eprintln!("invoice alerts: {}", run.describe()),
        Ok(None) => {}
        Err(e) => eprintln!("warning: invoice alerts not evaluated: {e}"),
    }
}

/// Evaluates budgets after a change, printing state changes; a failure is
/// reported but does not undo what was committed.
pub async fn evaluate_budgets(store: &Store, cache: &ChargebackCache, bar: Option<&Bar>) {
    let say = |line: &str| match bar {
        Some(bar) => bar.println(line),
        None => println!("{}", tollgate_store::output::terminal_text(line)),
    };
    match budget_eval::evaluate(store, cache).await {
        Ok(evaluation) => {
            for event in evaluation.applied.iter().flat_map(|a| &a.events) {
                say(&format!(
                    "budget {}: {} -> {}",
                    event.budget_name, event.from_state, event.to_state
                ));
            }
        }
        Err(e) => say(&format!("warning: budgets not evaluated: {e}")),
    }
}

/// Evaluates budgets beside an ingest: told after each committed batch, it
/// rolls up what is owed and evaluates once per signal it sees (several
/// batches committed meanwhile make one evaluation, which sees them all), and
/// a last time when finished.
#[derive(Debug)]
pub struct BudgetEvaluator {
    signal: tokio::sync::mpsc::UnboundedSender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl BudgetEvaluator {
    pub fn spawn(store: Store, bar: std::sync::Arc<Bar>) -> BudgetEvaluator {
        let (signal, mut signals) = tokio::sync::mpsc::unbounded_channel::<()>();
        let task = tokio::spawn(async move {
            let cache = ChargebackCache::default();
            while signals.recv().await.is_some() {
                while signals.try_recv().is_ok() {}
                if let Err(e) = store.catch_up_rollups().await {
                    bar.println(&format!("warning: rollups not caught up: {e}"));
                }
                evaluate_budgets(&store, &cache, Some(&bar)).await;
            }
        });
        BudgetEvaluator { signal, task }
    }

    pub fn batch_committed(&self) {
        let _ = self.signal.send(());
    }

    /// Waits for the evaluations still owed.
    pub async fn finish(self) {
        drop(self.signal);
        let _ = self.task.await;
    }
}
