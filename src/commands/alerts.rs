//! `tollgate alerts` and `tollgate report sla`: the rules, their episodes,
//! replays of past periods, and the monthly SLA report.

use std::process::ExitCode;

use anyhow::Result;
use tollgate_reports::alerts::{self, AlertOptions, payload::rfc3339};
use tollgate_reports::month::Month;
use tollgate_store::Store;
use tollgate_store::output::OutputFormat;

use super::{ints, print, strings, table, texts};
use crate::cli::AlertsCommand;
use crate::config::Config;

pub async fn run(store: &Store, config: &Config, command: AlertsCommand) -> Result<ExitCode> {
    alerts::install_rules(store, &config.alerts.rule).await?;
    match command {
        AlertsCommand::Rules { format } => {
            let rules = store.db.alert_rules().await?;
            let (schema, batch) = table(vec![
                ("name", strings(rules.iter().map(|r| Some(r.name.as_str())))),
                (
                    "origin",
                    strings(rules.iter().map(|r| Some(r.origin.as_str()))),
                ),
                ("spec", strings(rules.iter().map(|r| Some(r.spec.as_str())))),
                (
                    "updated_at",
                    strings(rules.iter().map(|r| Some(r.updated_at.as_str()))),
                ),
            ])?;
            print(format, &schema, &[batch])
        }
        AlertsCommand::Evaluate => {
            if store.db.latest_rollup_hour().await?.is_none() {
                println!("nothing rolled up yet: no alert evaluated");
            }
            super::server::evaluate_alerts(store, config, true).await?;
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Replay { from, to } => {
            if to <= from {
                anyhow::bail!("--to must be after --from");
            }
            let run =
                alerts::evaluate(store, &AlertOptions::default(), from, to, false, None).await?;
            println!("{}", run.describe());
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::List {
            state,
            rule,
            limit,
            format,
        } => {
            let episodes = store
                .db
                .alert_episodes(state, rule.as_deref(), i64::MIN, i64::MAX, limit)
                .await?;
            let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_default();
            let active: Vec<String> = episodes.iter().map(|e| time(Some(e.active_at))).collect();
            let fired: Vec<String> = episodes.iter().map(|e| time(e.fired_at)).collect();
            let resolved: Vec<String> = episodes.iter().map(|e| time(e.resolved_at)).collect();
            let peak: Vec<String> = episodes.iter().map(|e| format!("{:.4}", e.peak)).collect();
            let (schema, batch) = table(vec![
                (
                    "rule",
                    strings(episodes.iter().map(|e| Some(e.rule.as_str()))),
                ),
                (
                    "state",
                    strings(episodes.iter().map(|e| Some(e.state.as_str()))),
                ),
                (
                    "labels",
                    strings(episodes.iter().map(|e| Some(e.labels.as_str()))),
                ),
                ("active_at", texts(&active)),
                ("fired_at", texts(&fired)),
                ("resolved_at", texts(&resolved)),
                ("peak", texts(&peak)),
            ])?;
            print(format, &schema, &[batch])
        }
    }
}

pub async fn sla(
    store: &Store,
    config: &Config,
    month: Month,
    by: &[String],
    format: OutputFormat,
) -> Result<ExitCode> {
    alerts::install_rules(store, &config.alerts.rule).await?;
    let rules = alerts::load_rules(store).await?;
    let slo = tollgate_reports::sla::slo_of(&rules);
    let report = tollgate_reports::sla::sla(store, month, by, &slo).await?;
    crate::commands::warn_lake_faults(store).await?;
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows = &report.rows;
    let pct = |v: Option<f64>| v.map(|v| format!("{:.3}%", v * 100.0)).unwrap_or_default();
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_default();
    let group: Vec<String> = rows.iter().map(|r| r.group.join(" / ")).collect();
    let availability: Vec<String> = rows.iter().map(|r| pct(r.availability)).collect();
    let p95: Vec<String> = rows.iter().map(|r| ms(r.p95_ms)).collect();
    let p99: Vec<String> = rows.iter().map(|r| ms(r.p99_ms)).collect();
    let used: Vec<String> = rows
        .iter()
        .map(|r| pct(Some(r.error_budget_used)))
        .collect();
    let left: Vec<String> = rows
        .iter()
        .map(|r| pct(Some(r.error_budget_left)))
        .collect();
    let met: Vec<String> = rows
        .iter()
        .map(|r| if r.slo_met { "yes" } else { "no" }.to_owned())
        .collect();
    let (schema, batch) = table(vec![
        (by.join("/").as_str(), texts(&group)),
        ("requests", ints(rows.iter().map(|r| r.requests))),
        ("bad", ints(rows.iter().map(|r| r.bad))),
        ("availability", texts(&availability)),
        ("p95_ms", texts(&p95)),
        ("p99_ms", texts(&p99)),
        ("client_429", ints(rows.iter().map(|r| r.client_429))),
        ("backend_429", ints(rows.iter().map(|r| r.backend_429))),
        ("quota_403", ints(rows.iter().map(|r| r.quota_403))),
        ("error_budget_used", texts(&used)),
        ("error_budget_left", texts(&left)),
        ("slo_met", texts(&met)),
    ])?;
    eprintln!(
        "{}: SLO {:.2}% good (latency bound {} ms, 429s counted: {})",
        report.month,
        report.objective * 100.0,
        report
            .latency_ms
            .map_or("none".into(), |m| format!("{m:.0}")),
        report.count_429
    );
    print(format, &schema, &[batch])?;
    if format == OutputFormat::Table && !report.incidents.is_empty() {
        println!("\nincidents (alert episodes) and their error-budget cost:");
        for i in &report.incidents {
            println!(
                "  {}{} {} {} .. {}: {} bad of {} requests, {:.1}% of the month's error budget",
                i.rule,
                i.window
                    .as_ref()
                    .map_or(String::new(), |w| format!("[{w}]")),
                i.group.join(" / "),
                i.from,
                i.to,
                i.bad,
                i.requests,
                i.error_budget_cost * 100.0
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
