//! The PTU saturation arriving through the push API: the backend-429 rule
//! fires, its load shedding halves the sandbox product's tokens per minute in
//! what gateways pull (a new version, recorded in the audit log), the webhook
//! receiver gets the v4 payload after retrying its 503s, and when the rest of
//! the day arrives the alert resolves and the limit is restored.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tollgate_ingest::{Format, IngestOptions, NoProgress, ingest_file};
use tollgate_store::testing::TestStore;
use tollgate_web::Role::*;

use crate::budgets::receiver;
use crate::helpers::{GATEWAY, TestApp, test_config};

const CUT: &str = "2026-10-14T11:00:00";

/// The lines of a day's export before (or from) 11:00: gateway lines by their
/// `time`, LLM envelopes record by record.
fn split_day(path: &Path, before: bool) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut value: Value = serde_json::from_str(line).unwrap();
        let keep = |t: &Value| (t.as_str().unwrap() < CUT) == before;
        if let Some(records) = value.get_mut("records").and_then(Value::as_array_mut) {
            records.retain(|r| keep(&r["Time"]));
            if records.is_empty() {
                continue;
            }
        } else if !keep(&value["time"]) {
            continue;
        }
        out.push_str(&value.to_string());
        out.push('\n');
    }
    out
}

fn sandbox(view: &Value) -> &Value {
    view["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["counter_key"] == "product:sandbox")
        .unwrap()
}

pub async fn load_shedding_follows_the_ptu_saturation_to_the_gateways(store: TestStore) {
    let out = store.dir.path().join("month");
    tollgate_fixtures::generate(&tollgate_fixtures::GenerateOptions {
        year: 2026,
        month: 10,
        requests: 100_000,
        seed: 42,
        traffic_seed: None,
        until: None,
        out: out.clone(),
        scale: Default::default(),
    })
    .unwrap();
    // The first 13 days straight into the store, as an earlier ingest would.
    for category in ["gateway-logs", "llm-logs"] {
        for day in 1..=13 {
            let path = out.join(category).join(format!("2026-10-{day:02}.json"));
            let options = IngestOptions {
                format: Format::Apim,
                ..IngestOptions::default()
            };
            ingest_file(&store, &path, &options, Arc::new(NoProgress))
                .await
                .unwrap();
        }
    }
    let reference = out.join("reference");
    tollgate_reports::ownership::import(&store.db, &reference.join("ownership.toml"))
        .await
        .unwrap();
    tollgate_reports::budgets::import(&store, &out.join("reference").join("budgets.toml"), "test")
        .await
        .unwrap();
    let (hook, seen) = receiver(2, 200).await;
    let db = store.db.clone();
    let config = tollgate_web::ServerConfig {
        alert_webhook_url: Some(hook),
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    // The evaluator's first pass at start judges the 13 days, then budgets
    // (pushing before it is done would race its writes on SQLite).
    for _ in 0..600 {
        let view = app
            .get(&format!("/api/v1/gateways/{GATEWAY}/budgets"), Gateway)
            .await;
        if db.alert_cursor().await.unwrap().is_some() && view.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let before = app.pull().await;
    assert_eq!(sandbox(&before)["tokens_per_minute"], 5000);
    let push = |body: String| {
        app.client
            .post(app.url("/api/v1/ingest?format=apim"))
            .bearer_auth(app.key(Ingest))
            .body(body)
            .send()
    };

    // Day 14 up to 11:00: the saturation's first hour.
    let day14 = |category: &str| out.join(category).join("2026-10-14.json");
    for category in ["gateway-logs", "llm-logs"] {
        let pushed = push(split_day(&day14(category), true)).await.unwrap();
        assert_eq!(pushed.status(), 200, "{category}");
    }
    app.settled().await;
    let firing: Vec<Value> = app
        .get(
            "/api/v1/alerts/episodes?state=firing&rule=backend-429-rate",
            Operator,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(
        firing[0]["labels"],
        r#"{"alertname":"backend-429-rate","backend":"aoai-eastus-ptu","severity":"critical","team":"platform"}"#
    );
    let shed = app.pull().await;
    assert_eq!(sandbox(&shed)["tokens_per_minute"], 2500);
    assert_eq!(sandbox(&shed)["shed_by"], json!(["backend-429-rate"]));
    let sheds: Vec<Value> = app
        .get("/api/v1/alerts/sheds", Finops)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sheds.len(), 1);
    assert_eq!(sheds[0]["factor"], 0.5);

    // The rest of the day: the saturation ends at 12:00, the alert an hour later.
    for category in ["gateway-logs", "llm-logs"] {
        let pushed = push(split_day(&day14(category), false)).await.unwrap();
        assert_eq!(pushed.status(), 200, "{category}");
    }
    app.settled().await;
    let restored = app.pull().await;
    assert_eq!(sandbox(&restored)["tokens_per_minute"], 5000);
    assert!(sandbox(&restored).get("shed_by").is_none());
    let episodes: Vec<Value> = app
        .get("/api/v1/alerts/episodes?rule=backend-429-rate", Admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0]["state"], "resolved");
    let audit: Vec<Value> = app
        .get("/api/v1/audit?limit=1000", Admin)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("budget.shed"))
        .collect();
    assert_eq!(actions, ["budget.shed.end", "budget.shed.start"]);

    // Operators' live chart: the newest hours per minute.
    let points: Vec<Value> = app
        .get(
            "/api/v1/ops/series?metric=requests&by=backend&resolution=minute",
            Operator,
        )
        .await
        .json()
        .await
        .unwrap();
    // Night-time traffic: a few requests a minute, spread over the backends.
    assert!(points.len() > 20, "{}", points.len());
    assert!(
        points
            .iter()
            .any(|p| !p["hour"].as_str().unwrap().ends_with(":00:00Z"))
    );
    assert!(
        points
            .iter()
            .all(|p| p["hour"].as_str().unwrap() >= "2026-10-14T22:00:00Z")
    );
    let refused = app
        .get(
            "/api/v1/ops/series?metric=requests&by=agent&resolution=minute",
            Operator,
        )
        .await;
    assert_eq!(refused.status(), 400);

    // The receiver: 503 twice, then every transition in the v4 payload.
    let mut delivered = Vec::new();
    for _ in 0..200 {
        delivered = seen
            .lock()
            .await
            .iter()
            .filter(|(status, body)| {
                *status == 200 && body["groupLabels"]["alertname"] == "backend-429-rate"
            })
            .map(|(_, body)| body.clone())
            .collect();
        if delivered.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(delivered.len(), 2, "{:?}", seen.lock().await.len());
    delivered.sort_by_key(|b| b["status"].as_str().unwrap().to_owned());
    let statuses: Vec<&str> = delivered
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    assert_eq!(delivered[0]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let alert = &delivered[1]["alerts"][0];
    assert_eq!(delivered[1]["version"], "4");
    assert_eq!(alert["startsAt"], "2026-10-14T10:00:00Z");
    assert_eq!(alert["endsAt"], "2026-10-14T13:00:00Z");
    assert_eq!(alert["labels"]["backend"], "aoai-eastus-ptu");
    assert!(
        alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert_eq!(
        seen.lock().await.iter().filter(|(s, _)| *s == 503).count(),
        2
    );
    app.stop().await;
}

pub async fn alert_rules_are_checked_and_changed_through_the_api(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let rules: Vec<Value> = app
        .get("/api/v1/alerts/rules", Operator)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["name"] == "backend-429-rate" && r["origin"] == "default")
    );
    let bad = json!({"name": "slow", "kind": "percentile_above", "metric": "requests",
        "window": "soon", "group_by": ["colour"]});
    let refused = app
        .send_json(
            reqwest::Method::PUT,
            "/api/v1/alerts/rules/slow",
            Operator,
            &bad,
        )
        .await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    let problems = body["problems"].to_string();
    for field in ["metric:", "window:", "colour", "threshold:"] {
        assert!(problems.contains(field), "{field}: {problems}");
    }
    let good = json!({"name": "slow", "kind": "percentile_above", "metric": "backend_latency_p99",
        "threshold": 8000, "group_by": ["deployment"], "for": "2h",
        "annotations": {"runbook_url": "https://runbooks.example.com/slow"}});
    let forbidden = app
        .send_json(
            reqwest::Method::PUT,
            "/api/v1/alerts/rules/slow",
            Security,
            &good,
        )
        .await;
    assert_eq!(forbidden.status(), 403);
    let stored = app
        .send_json(
            reqwest::Method::PUT,
            "/api/v1/alerts/rules/slow",
            Operator,
            &good,
        )
        .await;
    assert_eq!(stored.status(), 200);
    let deleted = app
        .send_json(
            reqwest::Method::DELETE,
            "/api/v1/alerts/rules/slow",
            Admin,
            &json!({}),
        )
        .await;
    assert_eq!(deleted.status(), 200);
    let audit: Vec<Value> = app.get("/api/v1/audit", Admin).await.json().await.unwrap();
    assert!(audit.iter().any(|e| e["action"] == "alert_rule.create"));
    assert!(audit.iter().any(|e| e["action"] == "alert_rule.delete"));
    let bad_series = app
        .get("/api/v1/ops/series?metric=latency_p95&by=colour", Operator)
        .await;
    assert_eq!(bad_series.status(), 400);
    app.stop().await;
}

/// A Debian package's binary, or `None` off CI (`.ci/run` installs them; on
/// CI a missing one fails the test).
fn tool(name: &str) -> Option<&'static str> {
    let path: &'static str = match name {
        "alertmanager" => "/usr/bin/prometheus-alertmanager",
        _ => "/usr/bin/promtool",
    };
    if Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{path} is missing: .ci/run installs it"
    );
    eprintln!("{path} is not installed: skipped (CI installs it)");
    None
}

/// An alert rule that holds on any traffic, so one push makes it fire.
async fn any_traffic_rule(app: &TestApp) {
    let rule = json!({"name": "any-traffic", "kind": "count_above", "metric": "requests",
        "threshold": 0, "group_by": ["subscription"], "labels": {"severity": "info"},
        "annotations": {"summary": "{{ labels.subscription }} sent {{ value }} requests"}});
    let stored = app
        .send_json(
            reqwest::Method::PUT,
            "/api/v1/alerts/rules/any-traffic",
            Admin,
            &rule,
        )
        .await;
    assert_eq!(stored.status(), 200);
}

/// A server judges the newest hour again at start (to have the rules'
/// look-back projected before the first push): it finds what the last server
/// found, so nothing is notified twice and no episode changes.
pub async fn a_restart_judges_the_newest_hour_again_without_notifying_twice(store: TestStore) {
    let (hook, _seen) = receiver(10, 200).await;
    let config = tollgate_web::ServerConfig {
        alert_webhook_url: Some(hook),
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config.clone()).await;
    any_traffic_rule(&app).await;
    app.set_clock("2026-11-20T12:00:00Z");
    let lines = crate::helpers::requests("rs", "2026-11-20T10:15:00Z", "sub-rs", 3, 10, 5);

    // step 1: the push makes the rule fire, once.
    app.push_ok(&lines).await;
    let db = app.store.db.clone();
    let notified = db.alert_notifications(Some("any-traffic")).await.unwrap();
    assert_eq!(notified.len(), 1, "{notified:?}");
    let episodes = |db: tollgate_store::StateDb| async move {
        (db.alert_episodes(None, Some("any-traffic"), 0, i64::MAX, 100)
            .await)
            .unwrap()
            .into_iter()
            .map(|e| (e.fingerprint, e.state, e.active_at, e.resolved_at))
            .collect::<Vec<_>>()
    };
    let before = episodes(db.clone()).await;
    assert!(!before.is_empty());
    let cursor = db.alert_cursor().await.unwrap();
    let store = app.stop().await;

    // step 2: the next server's first cycle judges that hour again.
    let app = TestApp::spawn_with(store, config).await;
    app.set_clock("2026-11-20T12:00:00Z");
    app.settled().await;
    let db = app.store.db.clone();
    assert_eq!(db.alert_cursor().await.unwrap(), cursor);
    assert_eq!(episodes(db.clone()).await, before);
    let again = db.alert_notifications(Some("any-traffic")).await.unwrap();
    assert_eq!(again.len(), 1, "notified twice: {again:?}");
    app.stop().await;
}

pub async fn alerts_reach_a_real_alertmanager(store: TestStore) {
    let Some(binary) = tool("alertmanager") else {
        return;
    };
    let dir = store.dir.path().join("alertmanager");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _alertmanager = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/-/ready")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "Alertmanager did not start");
    let config = tollgate_web::ServerConfig {
        alertmanager_url: Some(base.clone()),
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    any_traffic_rule(&app).await;
    app.set_clock("2026-11-20T12:00:00Z");
    app.push_ok(&crate::helpers::requests(
        "am",
        "2026-11-20T10:15:00Z",
        "sub-am",
        3,
        10,
        5,
    ))
    .await;
    let mut found = Value::Null;
    for _ in 0..100 {
        let alerts: Vec<Value> = client
            .get(format!("{base}/api/v2/alerts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(a) = alerts
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "any-traffic")
        {
            found = a;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found["labels"]["subscription"], "sub-am", "{found}");
    assert_eq!(found["annotations"]["summary"], "sub-am sent 3 requests");
    assert_eq!(found["startsAt"], "2026-11-20T10:00:00.000Z");
    app.stop().await;
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn metrics_pass_promtool_and_count_alerts(store: TestStore) {
    let app = TestApp::spawn(store).await;
    any_traffic_rule(&app).await;
    app.set_clock("2026-11-20T12:00:00Z");
    app.push_ok(&crate::helpers::requests(
        "pm",
        "2026-11-20T10:15:00Z",
        "sub-pm",
        2,
        10,
        5,
    ))
    .await;
    // A budget named to forge a series in the unauthenticated scrape.
    let forged = "inj\"} 1\nfake_metric{a=\"b\"} 42\n# x";
    let budget = crate::helpers::token_budget(forged, "sub-pm", 1000, "notify");
    let created = app
        .send_json(reqwest::Method::POST, "/api/v1/budgets", Admin, &budget)
        .await;
    assert_eq!(created.status(), 201);
    let text = app.metrics().await;
    assert!(
        text.contains(r#"tollgate_alerts{rule="any-traffic",state="firing"} 1"#),
        "{text}"
    );
    assert!(text.contains("tollgate_budget_sheds 0"), "{text}");
    assert!(
        text.lines().all(|l| !l.starts_with("fake_metric")),
        "{text}"
    );
    assert!(
        text.contains(r#"budget="inj\"} 1\nfake_metric{a=\"b\"} 42\n# x""#),
        "{text}"
    );
    if let Some(promtool) = tool("promtool") {
        use std::io::Write;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    app.stop().await;
}
