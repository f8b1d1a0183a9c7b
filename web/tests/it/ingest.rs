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
