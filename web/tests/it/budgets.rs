//! Budgets through the API: checked input, states moving as batches arrive,
//! what gateways pull (ETag / 304, one entry, the APIM fragment), webhooks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tollgate_store::testing::TestStore;
use tollgate_web::Role::*;
use tollgate_web::ServerConfig;

use crate::helpers::{GATEWAY, TestApp, eventually, requests, test_config, token_budget};

pub async fn budgets_are_checked_with_every_problem_named(store: TestStore) {
    let app = TestApp::spawn(store).await;
    app.push_ok(&requests("a", "2026-10-01T00:00:00Z", "sub-a", 1, 10, 10))
        .await;
    let bad = json!({
        "name": "",
        "scope": "subscription",
        "scope_id": "sub-unknown",
        "token_quota": -5,
        "warn_at": [0.95, 0.8],
        "action": "throttle",
    });
    let response = app
        .send_json(Method::POST, "/api/v1/budgets", Finops, &bad)
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let problems: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for field in [
        "name:",
        "token_quota: -5",
        "warn_at:",
        "throttle_tokens_per_minute:",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(field)),
            "{field} in {problems:?}"
        );
    }
    // Not JSON, an unknown field, a bad scope: clear 4xx, never 500.
    let not_json = app
        .client
        .post(app.url("/api/v1/budgets"))
        .bearer_auth(app.key(Finops))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let mut unknown = token_budget("x", "sub-a", 10, "notify");
    unknown["colour"] = json!("red");
    let unknown = app
        .send_json(Method::POST, "/api/v1/budgets", Finops, &unknown)
        .await;
    assert_eq!(unknown.status(), 422);
    let mut scope = token_budget("x", "sub-a", 10, "notify");
    scope["scope"] = json!("galaxy");
    assert_eq!(
        app.send_json(Method::POST, "/api/v1/budgets", Finops, &scope)
            .await
            .status(),
        422
    );
    // A good one, then its name again: a conflict.
    let good = token_budget("x", "sub-a", 10, "notify");
    assert_eq!(
        app.send_json(Method::POST, "/api/v1/budgets", Finops, &good)
            .await
            .status(),
        201
    );
    assert_eq!(
        app.send_json(Method::POST, "/api/v1/budgets", Finops, &good)
            .await
            .status(),
        409
    );
    assert_eq!(app.get("/api/v1/budgets/999", Finops).await.status(), 404);
    assert_eq!(app.get("/api/v1/budgets/abc", Finops).await.status(), 400);
    app.stop().await;
}

pub async fn a_budget_set_up_before_its_traffic_says_so_until_it_arrives(store: TestStore) {
    let app = TestApp::spawn(store).await;
    // Step 1: a budget for a subscription no traffic has named is taken.
    let early = token_budget("early", "sub-new", 1_000, "notify");
    let created = app
        .send_json(Method::POST, "/api/v1/budgets", Finops, &early)
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].clone();
    // Step 2: the listing says its scope is not seen yet.
    let unseen = || async {
        let listing: Value = app
            .get("/api/v1/budgets", Finops)
            .await
            .json()
            .await
            .unwrap();
        listing["unseen_scopes"].as_array().unwrap().clone()
    };
    let notes = unseen().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["budget_id"], id);
    let note = notes[0]["note"].as_str().unwrap();
    assert!(
        note.contains("\"sub-new\" is not yet seen in traffic"),
        "{note}"
    );
    // Step 3: once its traffic arrives, the note goes.
    app.push_ok(&requests("n", "2026-10-01T00:00:00Z", "sub-new", 1, 10, 10))
        .await;
    eventually("sub-new seen", || async { unseen().await.is_empty() }).await;
    app.stop().await;
}

pub async fn unpriced_tokens_say_what_to_import(store: TestStore) {
    let app = TestApp::spawn(store).await;
    // No backends.csv: the backend that served them selects no price.
    app.push_ok(&requests("u", "2026-10-02T00:00:00Z", "sub-a", 3, 100, 10))
        .await;
    let causes: Value = app
        .get("/api/v1/reports/unpriced?month=2026-10", Finops)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(causes[0]["cause"], "unknown_backend", "{causes}");
    assert_eq!(causes[0]["backend"], "payg-eastus");
    assert_eq!(causes[0]["tokens"], 330);
    let fix = causes[0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("add backend payg-eastus to backends.csv"),
        "{fix}"
    );
    let bad = app
        .get("/api/v1/reports/unpriced?month=2026-13", Finops)
        .await;
    assert_eq!(bad.status(), 400);
    app.stop().await;
}

/// The entry for `sub-a` in the gateway's view.
fn entry(view: &Value) -> &Value {
    view["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["counter_key"] == "subscription:sub-a")
        .unwrap()
}

/// A story in named steps: a failure says which step it was.
pub async fn budgets_move_as_batches_arrive_and_gateways_see_it(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let (budget_id, version) = a_new_budget_under_its_quota_is_ok(&app).await;
    let etag = an_unchanged_view_answers_304(&app).await;
    thresholds_crossed_move_the_view_and_its_version(&app, &etag, version).await;
    an_exhausted_budget_throttles_and_answers_per_entry(&app).await;
    every_threshold_crossed_is_an_event_with_its_figures(&app, budget_id).await;
    the_forecast_runs_at_the_months_rate(&app, budget_id).await;
    a_new_month_is_ok_again_and_late_data_does_not_move_it_back(&app, budget_id).await;
    app.stop().await;
}

/// Where the test gateway pulls its budgets.
fn budgets_path() -> String {
    format!("/api/v1/gateways/{GATEWAY}/budgets")
}

/// 100 tokens, then a 1000-token budget: ok. The budget's id and the view's
/// version.
async fn a_new_budget_under_its_quota_is_ok(app: &TestApp) -> (i64, i64) {
    app.push_ok(&requests("h0", "2026-10-01T00:10:00Z", "sub-a", 1, 60, 40))
        .await;
    let created = app
        .send_json(
            Method::POST,
            "/api/v1/budgets",
            Finops,
            &token_budget("sub-a", "sub-a", 1000, "throttle"),
        )
        .await;
    assert_eq!(created.status(), 201);
    let budget_id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let view = app.pull().await;
    assert_eq!(entry(&view)["state"], "ok");
    assert_eq!(entry(&view)["tokens_used"], 100);
    assert_eq!(entry(&view)["tokens_remaining"], 900);
    assert_eq!(entry(&view)["token_quota_period"], "Monthly");
    assert_eq!(entry(&view)["action"], json!({"kind": "none"}));
    (budget_id, view["version"].as_i64().unwrap())
}

/// Unchanged: the same ETag answers 304 with no body. The ETag.
async fn an_unchanged_view_answers_304(app: &TestApp) -> String {
    let path = budgets_path();
    let first = app.get(&path, Gateway).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    assert!(
        first.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=30")
    );
    let again = app
        .client
        .get(app.url(&path))
        .bearer_auth(app.key(Gateway))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    etag
}

/// 810 tokens: past 80%. 960: past 95%. 1010: exhausted. Each moves the
/// view's version, and the first ETag no longer matches.
async fn thresholds_crossed_move_the_view_and_its_version(
    app: &TestApp,
    etag: &str,
    mut version: i64,
) {
    let steps = [
        ("h1", "2026-10-05T00:10:00Z", 710, "warning"),
        ("h2", "2026-10-10T00:10:00Z", 150, "warning"),
        ("h3", "2026-10-20T00:10:00Z", 50, "exhausted"),
    ];
    for (id, time, tokens, state) in steps {
        app.push_ok(&requests(id, time, "sub-a", 1, tokens, 0))
            .await;
        let view = app.pull().await;
        assert_eq!(entry(&view)["state"], state, "after {id}");
        assert!(
            view["version"].as_i64().unwrap() > version,
            "version moves after {id}"
        );
        version = view["version"].as_i64().unwrap();
        let changed = app
            .client
            .get(app.url(&budgets_path()))
            .bearer_auth(app.key(Gateway))
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), 200);
    }
}

/// Exhausted with action throttle: the per-minute limit, nothing remaining;
/// one entry for a policy that looks up per request.
async fn an_exhausted_budget_throttles_and_answers_per_entry(app: &TestApp) {
    let view = app.pull().await;
    assert_eq!(
        entry(&view)["action"],
        json!({"kind": "throttle", "tokens_per_minute": 1000})
    );
    assert_eq!(entry(&view)["tokens_per_minute"], 1000);
    assert_eq!(entry(&view)["tokens_remaining"], 0);
    let path = budgets_path();
    let one: Value = app
        .get(&format!("{path}/subscription:sub-a"), Gateway)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["state"], "exhausted");
    assert_eq!(one["gateway"], GATEWAY);
    assert_eq!(
        app.get(&format!("{path}/subscription:nope"), Gateway)
            .await
            .status(),
        404
    );
}

async fn every_threshold_crossed_is_an_event_with_its_figures(app: &TestApp, budget_id: i64) {
    let events: Value = app
        .get(&format!("/api/v1/budgets/{budget_id}/events"), Finops)
        .await
        .json()
        .await
        .unwrap();
    let transitions: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["from_state"].as_str().unwrap().to_owned(),
                e["to_state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("ok", "warning"),
        ("warning", "warning"),
        ("warning", "exhausted"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(transitions, expected);
    let last: Value = serde_json::from_str(events[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(last["event"], "budget_crossed");
    assert_eq!(last["event_group"], "subscription");
    assert_eq!(last["spend"], 1010.0);
    assert_eq!(last["max_budget"], 1000.0);
    assert!((last["budget_percentage_used"].as_f64().unwrap() - 101.0).abs() < 1e-9);
    assert!(last["projected_spend"].as_f64().unwrap() >= 1010.0);
}

/// At October's run rate so far: month end, and the day it ran out.
async fn the_forecast_runs_at_the_months_rate(app: &TestApp, budget_id: i64) {
    let status: Value = app
        .get(&format!("/api/v1/budgets/{budget_id}"), Operator)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "exhausted");
    assert!(status["forecast"]["projected_tokens"].as_i64().unwrap() > 1010);
}

/// November: a new period by the wall clock, back to ok with its first data;
/// a late batch for October does not move the period back.
async fn a_new_month_is_ok_again_and_late_data_does_not_move_it_back(
    app: &TestApp,
    budget_id: i64,
) {
    app.set_clock("2026-11-01T00:30:00Z");
    app.push_ok(&requests("nov", "2026-11-01T00:10:00Z", "sub-a", 1, 5, 5))
        .await;
    let view = app.pull().await;
    assert_eq!(entry(&view)["state"], "ok");
    assert_eq!(entry(&view)["tokens_used"], 10);
    assert_eq!(entry(&view)["period_start"], "2026-11-01T00:00:00+00:00");
    let events: Value = app
        .get(&format!("/api/v1/budgets/{budget_id}/events"), Finops)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            events[0]["from_state"].as_str(),
            events[0]["to_state"].as_str()
        ),
        (Some("exhausted"), Some("ok"))
    );
    app.push_ok(&requests("late", "2026-10-30T00:10:00Z", "sub-a", 1, 5, 5))
        .await;
    assert_eq!(entry(&app.pull().await)["state"], "ok");
}

pub async fn the_apim_fragment_blocks_an_exhausted_key(store: TestStore) {
    let app = TestApp::spawn(store).await;
    app.push_ok(&requests("a", "2026-10-01T00:00:00Z", "sub-a", 1, 60, 40))
        .await;
    app.push_ok(&requests("b", "2026-10-01T00:00:00Z", "sub-b", 1, 60, 40))
        .await;
    for (name, subscription, quota, action) in [
        ("blocked", "sub-a", 50, "block"),
        ("fine", "sub-b", 5000, "block"),
    ] {
        let created = app
            .send_json(
                Method::POST,
                "/api/v1/budgets",
                Admin,
                &token_budget(name, subscription, quota, action),
            )
            .await;
        assert_eq!(created.status(), 201);
    }
    let response = app
        .get(
            &format!("/api/v1/gateways/{GATEWAY}/budgets/apim-policy"),
            Gateway,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("xml")
    );
    let xml = response.text().await.unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "fragment");
    let whens: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("when"))
        .collect();
    assert_eq!(whens.len(), 2, "{xml}");
    let blocked = whens
        .iter()
        .find(|w| w.attribute("condition").unwrap().contains("\"sub-a\""))
        .unwrap();
    let status = blocked
        .descendants()
        .find(|n| n.has_tag_name("set-status"))
        .unwrap();
    assert_eq!(status.attribute("code"), Some("403"));
    assert!(
        !blocked
            .descendants()
            .any(|n| n.has_tag_name("llm-token-limit"))
    );
    let fine = whens
        .iter()
        .find(|w| w.attribute("condition").unwrap().contains("\"sub-b\""))
        .unwrap();
    let limit = fine
        .descendants()
        .find(|n| n.has_tag_name("llm-token-limit"))
        .unwrap();
    assert_eq!(limit.attribute("counter-key"), Some("subscription:sub-b"));
    assert_eq!(limit.attribute("tokens-per-minute"), Some("10000"));
    assert_eq!(limit.attribute("token-quota"), Some("5000"));
    assert_eq!(limit.attribute("token-quota-period"), Some("Monthly"));
    assert!(
        !fine
            .descendants()
            .any(|n| n.has_tag_name("return-response"))
    );
    app.stop().await;
}

/// A receiver that answers `failures` 503s, then 200s (or `final_status`).
pub(crate) async fn receiver(failures: usize, final_status: u16) -> (String, Seen) {
    use axum::routing::post;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::Json<Value>| {
            let (record, count) = (record.clone(), count.clone());
            async move {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let status = if n < failures { 503 } else { final_status };
                record.lock().await.push((status, body.0));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

pub(crate) type Seen = Arc<Mutex<Vec<(u16, Value)>>>;

/// A server whose webhook goes to a [`receiver`], and a budget on it exhausted
/// at once (100 tokens used of 50), so one event is on its way.
async fn exhausted_with_receiver(
    store: TestStore,
    failures: usize,
    status: u16,
) -> (TestApp, Seen, i64) {
    let (url, seen) = receiver(failures, status).await;
    let config = ServerConfig {
        webhook_url: Some(url),
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    app.push_ok(&requests("a", "2026-10-01T00:00:00Z", "sub-a", 1, 60, 40))
        .await;
    let created = app
        .send_json(
            Method::POST,
            "/api/v1/budgets",
            Finops,
            &token_budget("sub-a", "sub-a", 50, "notify"),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    (app, seen, id)
}

pub async fn webhooks_are_retried_on_5xx_until_delivered(store: TestStore) {
    let (app, seen, id) = exhausted_with_receiver(store, 2, 200).await;
    // The receiver sees its 200 before the deliverer records it: wait for the record.
    let db = app.store.db.clone();
    eventually("the event recorded as delivered after two 503s", || {
        let db = db.clone();
        async move {
            db.budget_events(Some(id), 10).await.unwrap()[0]
                .delivered_at
                .is_some()
        }
    })
    .await;
    let seen = seen.lock().await.clone();
    assert_eq!(
        seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![503, 503, 200]
    );
    assert_eq!(seen[2].1["event"], "budget_crossed");
    assert_eq!(seen[2].1["budget_percentage_used"], 200.0);
    let events = app.store.db.budget_events(Some(id), 10).await.unwrap();
    assert!(events[0].delivered_at.is_some());
    let deliveries = app.store.db.webhook_deliveries(events[0].id).await.unwrap();
    let outcomes: Vec<&str> = deliveries.iter().map(|d| d.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"]);
    app.stop().await;
}

/// The 4xx half, on its own server (a receiver that refuses).
pub async fn webhooks_refused_with_4xx_are_not_retried(store: TestStore) {
    let (app, seen, id) = exhausted_with_receiver(store, 0, 400).await;
    let db = app.store.db.clone();
    eventually("the event given up", || {
        let db = db.clone();
        async move {
            db.budget_events(Some(id), 10).await.unwrap()[0]
                .failed_at
                .is_some()
        }
    })
    .await;
    // Give a wrong retry time to show itself.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(seen.lock().await.len(), 1);
    let event = &db.budget_events(Some(id), 10).await.unwrap()[0];
    let deliveries = db.webhook_deliveries(event.id).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (deliveries[0].status, deliveries[0].outcome.as_str()),
        (Some(400), "failed")
    );
    app.stop().await;
}

pub async fn metrics_count_requests_by_route_and_show_budget_states(store: TestStore) {
    let app = TestApp::spawn(store).await;
    app.push_ok(&requests("a", "2026-10-01T00:00:00Z", "sub-a", 2, 60, 40))
        .await;
    let created = app
        .send_json(
            Method::POST,
            "/api/v1/budgets",
            Finops,
            &token_budget("sub-a tokens", "sub-a", 150, "notify"),
        )
        .await;
    assert_eq!(created.status(), 201);
    app.pull().await;
    assert_eq!(app.get("/api/v1/budgets/7", Finops).await.status(), 404);
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"tollgate_http_requests_total{method="POST",route="/api/v1/ingest",status="200"} 1"#,
        r#"tollgate_http_requests_total{method="GET",route="/api/v1/budgets/{id}",status="404"} 1"#,
        r#"tollgate_http_requests_total{method="GET",route="/api/v1/gateways/{gateway}/budgets",status="200"} 1"#,
        r#"tollgate_ingest_rows_total{outcome="written"} 2"#,
        r#"tollgate_budget_state{budget="sub-a tokens",state="exhausted"} 1"#,
        r#"tollgate_budget_state{budget="sub-a tokens",state="ok"} 0"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    assert!(text.contains(r#"tollgate_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/api/v1/ingest"} 1"#) || text.contains(r#"tollgate_http_request_duration_seconds_bucket{method="POST",route="/api/v1/ingest",le="+Inf"} 1"#), "{text}");
    let used = text
        .lines()
        .find(|l| l.starts_with(r#"tollgate_budget_used_ratio{budget="sub-a tokens"}"#))
        .unwrap();
    let used: f64 = used.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((used - 200.0 / 150.0).abs() < 1e-9, "{used}");
    // Every sample line is `name{labels} value`, in Prometheus' 0.0.4 text
    // format (no OpenMetrics `# EOF`; promtool checks it in the alerts story).
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
    }
    assert!(
        text.contains("# TYPE tollgate_http_requests_total counter"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    app.stop().await;
}
