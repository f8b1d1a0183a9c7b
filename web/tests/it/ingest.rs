//! Push ingest: committed before it is answered, safe to retry, and clear about
//! what it cannot take.

use std::io::Write;

use serde_json::Value;
use tollgate_store::testing::TestStore;
use tollgate_web::Role::*;
use tollgate_web::ServerConfig;

use crate::helpers::{TestApp, requests, test_config};

pub async fn pushes_are_idempotent_and_refuse_what_they_cannot_take(store: TestStore) {
    let config = ServerConfig {
        max_ingest_bytes: 64 << 10,
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    let mut lines = requests("p", "2026-10-01T00:00:00Z", "sub-a", 3, 10, 10);
    lines.push_str("{not json\n");

    // Committed (and queryable) when answered, with the reconciliation.
    let first = app.push(&lines, Some("push-1")).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["outcome"], "committed");
    let counts = &first["counts"];
    assert_eq!(
        (
            counts["read"].as_i64(),
            counts["written"].as_i64(),
            counts["quarantined"].as_i64()
        ),
        (Some(4), Some(3), Some(1))
    );
    let rows = app
        .store
        .sql_read_only("SELECT COUNT(*) AS n FROM requests")
        .await
        .unwrap();
    let n = rows.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 3);

    // A retry with the same key gets the same answer and no new batch.
    let retry = app.push(&lines, Some("push-1")).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    // The same key with another body is a conflict; the same body without a key
    // is recognised as already ingested.
    let other = requests("q", "2026-10-01T00:00:00Z", "sub-a", 1, 10, 10);
    assert_eq!(app.push(&other, Some("push-1")).await.status(), 409);
    let again: Value = app.push(&lines, None).await.json().await.unwrap();
    assert_eq!(again["outcome"], "already_ingested");
    assert_eq!(
        app.store
            .db
            .recent_batches(100)
            .await
            .unwrap()
            .iter()
            .filter(|b| b.status == "committed")
            .count(),
        1
    );

    // gzip is taken as such.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(other.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let zipped = app
        .client
        .post(app.url("/api/v1/ingest?format=canonical"))
        .bearer_auth(app.key(Ingest))
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.status(), 200);
    assert_eq!(
        zipped.json::<Value>().await.unwrap()["counts"]["written"],
        1
    );

    // An unknown format, too large a body, an empty body.
    let unknown = app
        .client
        .post(app.url("/api/v1/ingest?format=splunk"))
        .bearer_auth(app.key(Ingest))
        .body(other.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 415);
    assert!(unknown.text().await.unwrap().contains("canonical"));
    let huge = "x".repeat(65 << 10);
    let too_large = app
        .client
        .post(app.url("/api/v1/ingest?format=canonical"))
        .bearer_auth(app.key(Ingest))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    // Refused unread, so the connection cannot carry another request.
    assert_eq!(too_large.headers()["connection"], "close");
    let body: Value = too_large.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
    assert!(
        body["message"].as_str().unwrap().contains("64 KiB"),
        "{body}"
    );
    let empty = app
        .client
        .post(app.url("/api/v1/ingest"))
        .bearer_auth(app.key(Ingest))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 400);
    app.stop().await;
}

pub async fn a_saturated_ingest_answers_503_with_retry_after(store: TestStore) {
    let config = ServerConfig {
        ingest_slots: 1,
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    // Six pushes at once for the one slot: those that find it taken are told
    // when to come back; the others commit.
    let pushes = (0..6).map(|i| {
        let body = requests(
            &format!("c{i}"),
            "2026-10-01T00:00:00Z",
            "sub-a",
            2_000,
            10,
            10,
        );
        let request = app
            .client
            .post(app.url("/api/v1/ingest?format=canonical"))
            .bearer_auth(app.key(Ingest))
            .body(body);
        async move { request.send().await.unwrap() }
    });
    let answers = futures::future::join_all(pushes).await;
    let busy: Vec<_> = answers.iter().filter(|r| r.status() == 503).collect();
    let committed = answers.iter().filter(|r| r.status() == 200).count();
    assert!(!busy.is_empty(), "no push found the slot taken");
    assert!(committed >= 1);
    assert_eq!(busy.len() + committed, answers.len());
    for response in busy {
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 0);
    }
    app.stop().await;
}

pub async fn a_body_in_no_known_format_is_a_clear_4xx(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let send = |format: &'static str, body: &'static [u8]| {
        app.client
            .post(app.url(&format!("/api/v1/ingest?format={format}")))
            .bearer_auth(app.key(Ingest))
            .body(body)
            .send()
    };
    // Auto-detection finds no format: 415, naming the way out, not the spool file.
    let unknown = send("auto", b"-5.27e16").await.unwrap();
    assert_eq!(unknown.status(), 415);
    let message = unknown.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("the body: not a format"), "{message}");
    assert!(message.contains("?format="), "{message}");
    // A truncated gzip stream: the body is broken, 400, and nothing committed.
    let truncated = send("canonical", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab")
        .await
        .unwrap();
    assert_eq!(truncated.status(), 400);
    assert!(
        app.store
            .db
            .recent_batches(10)
            .await
            .unwrap()
            .iter()
            .all(|b| b.status != "committed")
    );
    app.stop().await;
}

pub async fn shutdown_lets_a_push_in_flight_commit(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let db = app.store.db.clone();
    let url = app.url("/api/v1/ingest?format=canonical");
    let body = requests("inflight", "2026-10-01T00:00:00Z", "sub-a", 20_000, 10, 10);
    let push = app
        .client
        .post(&url)
        .bearer_auth(app.key(Ingest))
        .body(body)
        .send();
    let push = tokio::spawn(push);
    // Shut down once the batch is being written, not before it arrived.
    let mut started = false;
    for _ in 0..400 {
        if !db.recent_batches(1).await.unwrap().is_empty() {
            started = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(started, "the push never began a batch");
    let client = app.client.clone();
    let _store = app.stop().await;
    let answer = push.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["counts"]["written"], 20_000);
    let batch = &db.recent_batches(1).await.unwrap()[0];
    assert_eq!(batch.status, "committed");
    // And the server is gone.
    assert!(client.get(url).send().await.is_err());
}

/// The budget entry for `sub-a` the gateway is served now, and the watermark
/// its answer says it covers.
async fn sub_a_entry(app: &TestApp) -> (Value, i64) {
    let response = app
        .get(
            &format!("/api/v1/gateways/{}/budgets", crate::helpers::GATEWAY),
            Gateway,
        )
        .await;
    assert_eq!(response.status(), 200);
    let watermark: i64 = response.headers()["x-tollgate-derived-watermark"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let view: Value = response.json().await.unwrap();
    let entry = view["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["counter_key"] == "subscription:sub-a")
        .cloned()
        .unwrap();
    (entry, watermark)
}

async fn a_budget_on_sub_a(app: &TestApp) {
    let created = app
        .send_json(
            reqwest::Method::POST,
            "/api/v1/budgets",
            Finops,
            &crate::helpers::token_budget("sub-a", "sub-a", 1000, "block"),
        )
        .await;
    assert_eq!(created.status(), 201);
}

/// A push is answered once committed; its rollups, budgets and gateway view
/// follow, and the freshness watermark says when.
pub async fn a_push_is_acknowledged_before_its_derived_work(store: TestStore) {
    let config = ServerConfig {
        // Long enough to look at the state between the answer and the derivation.
        derive_delay: std::time::Duration::from_millis(1500),
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    app.settled().await;
    a_budget_on_sub_a(&app).await;
    let (entry, _) = sub_a_entry(&app).await;
    assert_eq!(entry["tokens_used"], 0);

    // step 1: the answer comes with the batch committed and its watermark.
    let pushed = app
        .push(
            &requests("d", "2026-10-02T00:00:00Z", "sub-a", 4, 200, 100),
            None,
        )
        .await;
    assert_eq!(pushed.status(), 200);
    let answer: Value = pushed.json().await.unwrap();
    assert_eq!(answer["outcome"], "committed");
    let watermark = answer["watermark"].as_i64().unwrap();
    assert!(watermark > 0, "{answer}");

    // step 2: derived answers do not cover it yet, and say so.
    let fresh = app.freshness().await;
    assert!(
        fresh["committed_watermark"].as_i64().unwrap() >= watermark,
        "{fresh}"
    );
    assert!(
        fresh["derived_watermark"].as_i64().unwrap() < watermark,
        "{fresh}"
    );
    let (entry, covered) = sub_a_entry(&app).await;
    assert!(covered < watermark);
    assert_eq!(entry["tokens_used"], 0, "derived before the answer");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(&format!("tollgate_committed_watermark {watermark}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_derived_lag_seconds "),
        "{metrics}"
    );

    // step 3: the deriver catches up; the same answers now include the push.
    app.derived(watermark).await;
    let (entry, covered) = sub_a_entry(&app).await;
    assert!(covered >= watermark);
    assert_eq!(entry["tokens_used"], 1200);
    assert_eq!(entry["state"], "exhausted");
    let fresh = app.freshness().await;
    assert_eq!(fresh["lag_ms"], 0, "{fresh}");
    assert!(fresh["derived_at"].is_string(), "{fresh}");
    app.stop().await;
}

/// A server that dies between a push's commit and its derivation leaves the
/// batch owed; the next server derives it when it starts, counted once.
pub async fn a_crash_between_commit_and_derivation_is_caught_up_at_start(store: TestStore) {
    let config = ServerConfig {
        // It never gets to derive the push.
        derive_delay: std::time::Duration::from_secs(3600),
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    app.settled().await;
    a_budget_on_sub_a(&app).await;
    let lines = requests("c", "2026-10-03T00:00:00Z", "sub-a", 3, 100, 50);

    // step 1: committed and answered, then the server stops before deriving.
    let answer = app.push(&lines, None).await.json::<Value>().await.unwrap();
    assert_eq!(answer["outcome"], "committed");
    let watermark = answer["watermark"].as_i64().unwrap();
    let store = app.stop().await;
    assert_eq!(
        store.db.pending_rollup_batches().await.unwrap(),
        [answer["batch_id"].as_i64().unwrap()],
        "the commit recorded the batch as owed"
    );

    // step 2: the next server catches up at start.
    let app = TestApp::spawn(store).await;
    app.derived(watermark).await;
    assert!(
        app.store
            .db
            .pending_rollup_batches()
            .await
            .unwrap()
            .is_empty()
    );
    let (entry, _) = sub_a_entry(&app).await;
    assert_eq!(entry["tokens_used"], 450);

    // step 3: nothing is counted twice, whatever is derived again.
    let again: Value = app.push(&lines, None).await.json().await.unwrap();
    assert_eq!(again["outcome"], "already_ingested");
    app.store.rebuild_rollups(&|_, _| {}).await.unwrap();
    app.settled().await;
    let report: Value = app
        .get(
            "/api/v1/reports/chargeback?month=2026-10&by=subscription",
            Finops,
        )
        .await
        .json()
        .await
        .unwrap();
    let rows = report.as_array().unwrap();
    assert_eq!(rows.last().unwrap()["subscription"], "TOTAL", "{report}");
    assert_eq!(rows.last().unwrap()["requests"], 3, "{report}");
    let (entry, _) = sub_a_entry(&app).await;
    assert_eq!(entry["tokens_used"], 450);
    app.stop().await;
}
