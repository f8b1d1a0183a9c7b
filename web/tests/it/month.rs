//! The story on the generator's month: a gateway polls while the month
//! is pushed in, day by day, as a log shipper would.

use std::collections::BTreeMap;

use serde_json::Value;
use tollgate_store::testing::TestStore;
use tollgate_web::Role::*;

use crate::helpers::TestApp;

pub async fn a_gateway_watches_its_budgets_move_as_a_generated_month_arrives(store: TestStore) {
    let out = store.dir.path().join("generated");
    let report = tollgate_fixtures::generate(&tollgate_fixtures::GenerateOptions {
        year: 2026,
        month: 10,
        requests: 4_000,
        seed: 7,
        traffic_seed: None,
        until: None,
        out: out.clone(),
        scale: Default::default(),
    })
    .unwrap();
    assert!(report.requests > 3_000);
    let reference = out.join("reference");
    tollgate_reports::ownership::import(&store.db, &reference.join("ownership.toml"))
        .await
        .unwrap();
    tollgate_reports::price_book::import(&store.db, &reference.join("prices.csv"))
        .await
        .unwrap();
    tollgate_reports::capacity::import_backends(&store.db, &reference.join("backends.csv"))
        .await
        .unwrap();
    let gateway = "apim-contoso";
    let budget_store = (*store).clone();
    let app = TestApp::spawn(store).await;
    let gateway_key = app
        .send_json(
            reqwest::Method::POST,
            "/api/v1/keys",
            Admin,
            &serde_json::json!({"role": "gateway", "gateways": [gateway]}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let pull = |etag: Option<String>| {
        let mut request = app
            .client
            .get(app.url(&format!("/api/v1/gateways/{gateway}/budgets")))
            .bearer_auth(&gateway_key);
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        request.send()
    };

    let mut days: Vec<_> = std::fs::read_dir(out.join("gateway-logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    days.sort();
    // Each budget's states as the gateway saw them, in order, repeats dropped.
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut etag: Option<String> = None;
    for (i, day) in days.iter().enumerate() {
        for category in ["gateway-logs", "llm-logs"] {
            let body = std::fs::read(out.join(category).join(day)).unwrap();
            let pushed = app
                .client
                .post(app.url("/api/v1/ingest?format=apim"))
                .bearer_auth(app.key(Ingest))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(pushed.status(), 200, "{day:?} {category}");
        }
        // Budgets move once the deriver has the day (after the answers).
        app.settled().await;
        if i == 0 {
            // Budgets once the first day made the estate's products known.
            tollgate_reports::budgets::import(
                &budget_store,
                &reference.join("budgets.toml"),
                "test",
            )
            .await
            .unwrap();
        }
        let response = pull(etag.clone()).await.unwrap();
        if response.status() == 304 {
            continue;
        }
        assert_eq!(response.status(), 200);
        etag = Some(response.headers()["etag"].to_str().unwrap().to_owned());
        let view: Value = response.json().await.unwrap();
        for entry in view["entries"].as_array().unwrap() {
            let states = seen
                .entry(entry["budget"].as_str().unwrap().to_owned())
                .or_default();
            let state = entry["state"].as_str().unwrap().to_owned();
            if states.last() != Some(&state) {
                states.push(state);
            }
        }
    }
    // The busiest subscription's budget (70% of its month) and the second's
    // (90%) go ok -> warning -> exhausted; the sandbox never runs out.
    let walked: Vec<&Vec<String>> = seen
        .iter()
        .filter(|(name, _)| name.ends_with("monthly tokens"))
        .map(|(_, states)| states)
        .collect();
    assert_eq!(walked.len(), 2, "{seen:?}");
    for states in walked {
        assert_eq!(states, &["ok", "warning", "exhausted"], "{seen:?}");
    }
    assert_eq!(
        seen["sandbox product"].last().map(String::as_str),
        Some("ok"),
        "{seen:?}"
    );
    // Nothing changed since the last poll: 304, no body.
    let unchanged = pull(etag).await.unwrap();
    assert_eq!(unchanged.status(), 304);
    // The busiest one is throttled, as the gateway's fragment says too.
    let policy = app
        .client
        .get(app.url(&format!("/api/v1/gateways/{gateway}/budgets/apim-policy")))
        .bearer_auth(&gateway_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    roxmltree::Document::parse(&policy).unwrap();
    assert!(policy.contains("tokens-per-minute=\"2000\""), "{policy}");
    // FinOps may not read the audit log.
    assert_eq!(app.get("/api/v1/audit", Finops).await.status(), 403);
    app.stop().await;
}
