//! The shipped rules on the generator's month: the PTU saturation (day 14,
//! 10:00-12:00), the latency incident (day 21, 14:00-15:30) and the sandbox
//! token-limit 429s (peak hours) each raise the right alert at the right hours;
//! the anomaly detectors stay quiet elsewhere; notifications are queued once;
//! a replay finds the same episodes; the SLA report prices the incidents.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tollgate_ingest::{Format, IngestOptions, NoProgress, ingest_file};
use tollgate_reports::alerts::series::{self, Projection, Series};
use tollgate_reports::alerts::{self, AlertOptions};
use tollgate_reports::month::Month;
use tollgate_store::Store;
use tollgate_store::state::AlertEpisode;
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(
    the_generators_incidents_raise_the_right_alerts,
    the_anomaly_detector_flags_the_incident_hours_and_little_else,
    defaults_install_once_and_config_rules_are_checked_whole,
    a_long_for_fires_on_time_when_data_arrives_day_by_day
);

const H: i64 = 3_600_000_000;

fn at(day: u32, hour: u32) -> i64 {
    Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0)
        .unwrap()
        .timestamp_micros()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Generates October 2026 (seed 42 is `tollgate fixtures generate`'s) and ingests it with its reference data.
pub async fn generated_month(store: &TestStore, requests: u64, seed: u64) -> PathBuf {
    generated_month_through(store, requests, seed, 31).await
}

/// The same, ingesting only the days up to `last_day`.
async fn generated_month_through(
    store: &TestStore,
    requests: u64,
    seed: u64,
    last_day: u32,
) -> PathBuf {
    let out = store.dir.path().join("month");
    tollgate_fixtures::generate(&tollgate_fixtures::GenerateOptions {
        year: 2026,
        month: 10,
        requests,
        seed,
        traffic_seed: None,
        until: None,
        out: out.clone(),
        scale: Default::default(),
    })
    .unwrap();
    let reference = out.join("reference");
    tollgate_reports::ownership::import(&store.db, &reference.join("ownership.toml"))
        .await
        .unwrap();
    tollgate_reports::capacity::import_backends(&store.db, &reference.join("backends.csv"))
        .await
        .unwrap();
    ingest_days(store, &out, 1..=last_day).await;
    // Budgets name products and subscriptions the traffic shows.
    tollgate_reports::budgets::import(store, &reference.join("budgets.toml"), "test")
        .await
        .unwrap();
    out
}

async fn ingest_days(store: &Store, out: &Path, days: std::ops::RangeInclusive<u32>) {
    for category in ["gateway-logs", "llm-logs"] {
        for f in files(&out.join(category)) {
            let name = f.file_name().unwrap().to_str().unwrap();
            let day: u32 = name[8..10].parse().unwrap();
            if days.contains(&day) {
                ingest(store, &f).await;
            }
        }
    }
}

async fn ingest(store: &Store, path: &Path) {
    let options = IngestOptions {
        format: Format::Apim,
        ..IngestOptions::default()
    };
    ingest_file(store, path, &options, Arc::new(NoProgress))
        .await
        .unwrap();
}

pub async fn install_default_rules(store: &Store) {
    for spec in alerts::defaults() {
        let json = serde_json::to_string(&spec).unwrap();
        store
            .db
            .put_alert_rule(&spec.name, &json, "default", "test")
            .await
            .unwrap();
    }
}

async fn all_episodes(store: &Store) -> Vec<AlertEpisode> {
    store
        .db
        .alert_episodes(None, None, i64::MIN, i64::MAX, 10_000)
        .await
        .unwrap()
}

fn of<'a>(episodes: &'a [AlertEpisode], rule: &str) -> Vec<&'a AlertEpisode> {
    let mut found: Vec<_> = episodes
        .iter()
        .filter(|e| e.rule == rule && e.fired_at.is_some())
        .collect();
    found.sort_by_key(|e| e.active_at);
    found
}

fn label(e: &AlertEpisode, name: &str) -> String {
    let labels: serde_json::Value = serde_json::from_str(&e.labels).unwrap();
    labels[name].as_str().unwrap_or_default().to_owned()
}

async fn the_generators_incidents_raise_the_right_alerts(store: TestStore) {
    generated_month(&store, 100_000, 42).await;
    install_default_rules(&store).await;
    let options = AlertOptions {
        receivers: vec!["webhook".into()],
        external_url: "http://tollgate.test".into(),
    };
    let run = alerts::evaluate_live(&store, &options, false)
        .await
        .unwrap()
        .unwrap();
    let all = all_episodes(&store).await;
    let summary: Vec<String> = all
        .iter()
        .filter(|e| e.fired_at.is_some())
        .map(|e| {
            format!(
                "{} {} {} .. {:?} peak {:.3}",
                e.rule,
                e.labels,
                alerts::payload::rfc3339(e.active_at),
                e.resolved_at.map(alerts::payload::rfc3339),
                e.peak
            )
        })
        .collect();
    let summary = summary.join("\n");

    // PTU saturation: the PTU backend's 429s from 10:00 to 12:00 on day 14,
    // kept firing an hour after.
    let backend = of(&all, "backend-429-rate");
    assert_eq!(backend.len(), 1, "{summary}");
    assert_eq!(label(backend[0], "backend"), "aoai-eastus-ptu", "{summary}");
    assert_eq!(backend[0].active_at, at(14, 10), "{summary}");
    assert_eq!(backend[0].resolved_at, Some(at(14, 13)), "{summary}");

    // The latency incident: p95 above 5 s from 14:00, through the half hour
    // after 15:00.
    let latency = of(&all, "latency-p95");
    assert!(!latency.is_empty(), "{summary}");
    for e in &latency {
        assert!(
            e.active_at >= at(21, 14) && e.active_at < at(21, 16),
            "{summary}"
        );
        assert!(e.resolved_at.unwrap() <= at(21, 16), "{summary}");
    }

    // Token-limit 429s: the sandbox product, at peak hours (13:00-17:00),
    // on most days of the month.
    let client = of(&all, "client-429-rate");
    assert!(client.len() >= 20, "{summary}");
    for e in &client {
        let (from, to) = (e.active_at / H, e.resolved_at.unwrap() / H);
        assert!((13..17).contains(&from.rem_euclid(24)), "{summary}");
        assert!(to - from <= 4, "{summary}");
        assert_eq!(label(e, "product"), "sandbox", "{summary}");
    }

    // The SLO pages for both incidents, and for nothing else.
    let slo = of(&all, "availability-slo");
    let pages: Vec<_> = slo
        .iter()
        .filter(|e| label(e, "severity") == "page")
        .collect();
    assert!(
        pages
            .iter()
            .any(|e| e.active_at >= at(14, 10) && e.active_at < at(14, 12)),
        "{summary}"
    );
    assert!(
        pages
            .iter()
            .any(|e| e.active_at >= at(21, 14) && e.active_at < at(21, 16)),
        "{summary}"
    );
    for e in &pages {
        let day14 = e.active_at >= at(14, 10) && e.active_at < at(14, 13);
        let day21 = e.active_at >= at(21, 14) && e.active_at < at(21, 17);
        assert!(day14 || day21, "{summary}");
    }

    // Token anomalies: no injected token incident, and little else flagged.
    for rule in ["prompt-token-anomaly", "completion-token-anomaly"] {
        assert!(of(&all, rule).len() <= 2, "{summary}");
    }
    assert!(of(&all, "circuit-breaker-trip").is_empty(), "{summary}");

    // Transitions of the last day of data queued a webhook each; older ones
    // are history, not pages.
    let since = at(31, 0);
    let fired = all
        .iter()
        .filter(|e| {
            e.fired_at.is_some_and(|t| t >= since)
                || e.state == tollgate_store::EpisodeState::Firing
        })
        .count();
    let resolved = all
        .iter()
        .filter(|e| e.fired_at.is_some() && e.resolved_at.is_some_and(|t| t >= since))
        .count();
    assert!(fired > 0 && fired + resolved < all.len(), "{summary}");
    assert_eq!(run.notifications, fired + resolved);
    let queued = store.db.alert_notifications(None).await.unwrap();
    assert_eq!(queued.len(), fired + resolved);
    let body: serde_json::Value = serde_json::from_str(&queued[0].payload).unwrap();
    assert_eq!(body["version"], "4");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], queued[0].rule);

    // Evaluating again finds the same, and sends nothing twice.
    let again = alerts::evaluate_live(&store, &options, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.notifications, 0);
    let after = all_episodes(&store).await;
    assert_eq!(after.len(), all.len());

    // A replay of day 14 finds the saturation at the same hours.
    alerts::evaluate(
        &store,
        &AlertOptions::default(),
        at(14, 0),
        at(15, 0),
        false,
        None,
    )
    .await
    .unwrap();
    let replayed = store
        .db
        .alert_episodes(None, Some("backend-429-rate"), i64::MIN, i64::MAX, 100)
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].active_at, at(14, 10));
    assert_eq!(replayed[0].resolved_at, Some(at(14, 13)));
    // A replay that ends inside the episode still knows how it ended.
    alerts::evaluate(
        &store,
        &AlertOptions::default(),
        at(14, 5),
        at(14, 11),
        false,
        None,
    )
    .await
    .unwrap();
    let replayed = store
        .db
        .alert_episodes(None, Some("backend-429-rate"), i64::MIN, i64::MAX, 100)
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].state, tollgate_store::EpisodeState::Resolved);
    assert_eq!(replayed[0].resolved_at, Some(at(14, 13)));
    let everything = all_episodes(&store).await;
    assert_eq!(
        everything, after,
        "a replay changed episodes it should find again"
    );

    // The minute tier holds the newest 48 hours of data, and adds up to them.
    let end = at(31, 23) + H;
    let minutes = store.minute_rollups(at(1, 0), end).await.unwrap();
    assert!(minutes.iter().all(|m| m.usage.hour_us >= at(30, 0)));
    let hourly = store.rollups(at(30, 0), end).await.unwrap();
    let totals = |rows: &tollgate_store::derived::Rollups| {
        rows.iter().fold([0i64; 5], |t, r| {
            [
                t[0] + r.usage.requests,
                t[1] + r.client_429,
                t[2] + r.backend_429,
                t[3] + r.usage.prompt_tokens,
                t[4] + r.status_5xx,
            ]
        })
    };
    assert!(totals(&minutes)[0] > 1000);
    assert_eq!(totals(&minutes), totals(&hourly));
    assert!(minutes.iter().all(|m| m.usage.hour_us % 60_000_000 == 0));

    // PTU spillover: gpt-4o's traffic leaves its PTU backend during the
    // saturation, and only then.
    let rows = store.rollups(at(14, 0), at(15, 0)).await.unwrap();
    let ptu = series::ptu_backends(&store.db.backends().await.unwrap());
    let projected = Series::project(
        &rows,
        &Projection {
            scope: &Default::default(),
            group_by: &[],
            sketches: false,
            slow_above_ms: None,
            ptu_backends: &ptu,
        },
    );
    let spillover = |hour: u32| {
        let window = projected.window(at(14, hour), at(14, hour) + H);
        window
            .values()
            .next()
            .unwrap()
            .value("spillover_share")
            .unwrap()
    };
    for hour in [10, 11] {
        assert!(spillover(hour) > 0.2, "{hour}: {}", spillover(hour));
    }
    for hour in [8, 9, 12, 13] {
        assert_eq!(spillover(hour), 0.0, "{hour}");
    }

    // The SLA report by backend shows what the incidents cost.
    let rules = alerts::load_rules(&store).await.unwrap();
    let slo = tollgate_reports::sla::slo_of(&rules);
    let month: Month = "2026-10".parse().unwrap();
    let report = tollgate_reports::sla::sla(&store, month, &["backend".to_owned()], &slo)
        .await
        .unwrap();
    let ptu = report
        .rows
        .iter()
        .find(|r| r.group == ["aoai-eastus-ptu"])
        .unwrap();
    assert!(
        ptu.backend_429 > 0 && ptu.error_budget_used > 0.0,
        "{ptu:?}"
    );
    let incident = report
        .incidents
        .iter()
        .find(|i| i.rule == "latency-p95")
        .unwrap();
    assert!(incident.error_budget_cost > 0.05, "{incident:?}");
}

/// Anomaly rules on what the incidents disturb, against the same hour of the
/// week before: the backend 429 rate (day 14 has one earlier week to compare
/// with, so three baseline hours) and p95 latency per backend.
async fn the_anomaly_detector_flags_the_incident_hours_and_little_else(store: TestStore) {
    generated_month(&store, 100_000, 42).await;
    // And a rule whose `for` spans the evaluation's weekly chunks: a token
    // budget above 80% for four days.
    let slow_quota = serde_json::json!({"name": "quota-4d", "kind": "budget_used_above",
        "threshold": 0.8, "for": "96h"});
    store
        .db
        .put_alert_rule("quota-4d", &slow_quota.to_string(), "api", "test")
        .await
        .unwrap();
    for (name, metric) in [
        ("backend-429-anomaly", "backend_429_rate"),
        ("latency-anomaly", "latency_p95"),
    ] {
        let spec = serde_json::json!({"name": name, "kind": "anomaly", "metric": metric,
            "min_requests": 20, "group_by": ["backend"],
            "anomaly": {"z": 6.0, "weeks": 4, "min_samples": 3, "consecutive": 2}});
        store
            .db
            .put_alert_rule(name, &spec.to_string(), "api", "test")
            .await
            .unwrap();
    }
    alerts::evaluate_live(&store, &AlertOptions::default(), false)
        .await
        .unwrap()
        .unwrap();
    let all = all_episodes(&store).await;
    let summary = all
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {:?}",
                e.rule,
                e.labels,
                alerts::payload::rfc3339(e.active_at),
                e.fired_at.map(alerts::payload::rfc3339)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");

    // The saturation: the PTU backend from 10:00, fired after two hours of it.
    let saturation = of(&all, "backend-429-anomaly");
    assert_eq!(saturation.len(), 1, "{summary}");
    assert_eq!(label(saturation[0], "backend"), "aoai-eastus-ptu");
    assert_eq!(saturation[0].active_at, at(14, 10), "{summary}");

    // Four days after each budget crossed 80%, wherever the chunks fell.
    let quota = of(&all, "quota-4d");
    assert!(!quota.is_empty(), "{summary}");
    for e in &quota {
        assert_eq!(e.fired_at, Some(e.active_at + 96 * H), "{summary}");
    }

    // The latency incident, on the backends whose traffic it slowed, and
    // nothing else in the month.
    let slow = of(&all, "latency-anomaly");
    assert!(!slow.is_empty(), "{summary}");
    for e in &slow {
        assert!(
            e.active_at >= at(21, 13) && e.active_at <= at(21, 15),
            "{summary}"
        );
    }
}

async fn defaults_install_once_and_config_rules_are_checked_whole(store: TestStore) {
    let shipped = alerts::defaults().len();
    assert_eq!(alerts::install_rules(&store, &[]).await.unwrap(), shipped);
    store
        .db
        .delete_alert_rule("latency-p95", "test")
        .await
        .unwrap();
    // A deleted default stays deleted.
    assert_eq!(alerts::install_rules(&store, &[]).await.unwrap(), 0);
    assert_eq!(store.db.alert_rules().await.unwrap().len(), shipped - 1);
    // A config rule of a default's name replaces it; a bad one stores nothing.
    let mut stricter = alerts::defaults()
        .into_iter()
        .find(|r| r.name == "client-429-rate")
        .unwrap();
    stricter.threshold = Some(0.02);
    let mut bad = stricter.clone();
    bad.name = "bad".into();
    bad.metric = Some("colour".into());
    let refused = alerts::install_rules(&store, &[stricter.clone(), bad]).await;
    assert!(refused.unwrap_err().to_string().contains("metric:"));
    let stored = store.db.alert_rules().await.unwrap();
    let client = stored.iter().find(|r| r.name == "client-429-rate").unwrap();
    assert_eq!(client.origin, "default");
    assert_eq!(alerts::install_rules(&store, &[stricter]).await.unwrap(), 1);
    let stored = store.db.alert_rules().await.unwrap();
    let client = stored.iter().find(|r| r.name == "client-429-rate").unwrap();
    assert_eq!(client.origin, "config");
    assert!(client.spec.contains("0.02"), "{}", client.spec);
    // Stored again only when it differs.
    assert_eq!(alerts::install_rules(&store, &[]).await.unwrap(), 0);
}

/// A rule whose `for` is longer than a day, judged as data arrives (each
/// evaluation starts from the last hour judged): it fires `for` after it
/// became active, not `for` after the start of the latest evaluation.
async fn a_long_for_fires_on_time_when_data_arrives_day_by_day(store: TestStore) {
    let out = generated_month_through(&store, 100_000, 42, 19).await;
    let rule = serde_json::json!({"name": "quota-4d", "kind": "budget_used_above",
        "threshold": 0.8, "for": "96h"});
    store
        .db
        .put_alert_rule("quota-4d", &rule.to_string(), "api", "test")
        .await
        .unwrap();
    let options = AlertOptions::default();
    alerts::evaluate_live(&store, &options, false)
        .await
        .unwrap();
    for day in 20..=25 {
        ingest_days(&store, &out, day..=day).await;
        alerts::evaluate_live(&store, &options, false)
            .await
            .unwrap();
    }
    let quota = of(&all_episodes(&store).await, "quota-4d")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    let first = quota
        .iter()
        .find(|e| e.active_at < at(20, 0))
        .expect("a budget past 80% on day 19");
    assert_eq!(first.fired_at, Some(first.active_at + 96 * H), "{quota:?}");
}
