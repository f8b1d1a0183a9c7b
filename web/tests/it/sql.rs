//! `POST /api/v1/sql`: read-only, bounded in rows, memory and time.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_store::bounded_sql::SqlLimits;
use tollgate_store::testing::TestStore;
use tollgate_web::Role::{Finops, Security};
use tollgate_web::ServerConfig;

use crate::helpers::{TestApp, requests, test_config};

async fn sql(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .send_json(Method::POST, "/api/v1/sql", Security, &body)
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn analysts_run_bounded_read_only_sql(store: TestStore) {
    let config = ServerConfig {
        sql_limits: SqlLimits {
            max_rows: 3,
            ..SqlLimits::default()
        },
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    app.push_ok(&requests("q", "2026-10-01T00:00:00Z", "sub-a", 5, 10, 10))
        .await;

    let (status, answer) = sql(&app, json!({"sql": "SELECT count(*) AS n FROM requests"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rows"], json!([{"n": 5}]));
    assert_eq!(answer["columns"][0]["name"], "n");
    assert_eq!(answer["truncated"], false);

    // Five rows, three allowed: cut and said so; fewer asked, fewer given.
    let (_, answer) = sql(&app, json!({"sql": "SELECT request_id FROM requests"})).await;
    assert_eq!(answer["rows"].as_array().unwrap().len(), 3);
    assert_eq!(answer["truncated"], true);
    let (_, answer) = sql(
        &app,
        json!({"sql": "SELECT request_id FROM requests", "max_rows": 1}),
    )
    .await;
    assert_eq!(answer["rows"].as_array().unwrap().len(), 1);
    let (status, _) = sql(&app, json!({"sql": "SELECT 1", "max_rows": 4})).await;
    assert_eq!(status, 400);
    let (_, exact) = sql(
        &app,
        json!({"sql": "SELECT request_id FROM requests LIMIT 3"}),
    )
    .await;
    assert_eq!(exact["truncated"], false, "{exact}");

    for refused in [
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO requests SELECT * FROM requests",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
        "DROP VIEW usage",
    ] {
        let (status, body) = sql(&app, json!({ "sql": refused })).await;
        assert_eq!(status, 400, "{refused}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("only queries"),
            "{refused}: {body}"
        );
    }
    let (status, body) = sql(&app, json!({"sql": "SELECT nope FROM requests"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = sql(&app, json!({"sql": "SELECT map([1], ['a']) AS m"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = sql(&app, json!({"query": "SELECT 1"})).await;
    assert_eq!(status, 422);
    let forbidden = app
        .send_json(
            Method::POST,
            "/api/v1/sql",
            Finops,
            &json!({"sql": "SELECT 1"}),
        )
        .await;
    assert_eq!(forbidden.status(), 403);
    // A plan names lake files relative to the lake, not where the server keeps it.
    let (status, plan) = sql(
        &app,
        json!({"sql": "EXPLAIN SELECT count(*) FROM requests WHERE status_code = 200"}),
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    let text = plan.to_string();
    let data_dir = app.store.config.data_dir.display().to_string();
    assert!(text.contains("lake/requests/date=2026-10-01/"), "{text}");
    assert!(!text.contains(data_dir.trim_start_matches('/')), "{text}");
    let mut store = app.stop().await;

    // A server with almost no query memory and no time refuses what needs them.
    for (limits, query) in [
        (
            SqlLimits {
                memory_bytes: 1024,
                ..SqlLimits::default()
            },
            // A hash join's build side cannot spill to disk.
            "SELECT count(*) FROM range(100000) a JOIN range(100000) b ON a.value = b.value",
        ),
        (
            SqlLimits {
                memory_bytes: 1 << 20,
                ..SqlLimits::default()
            },
            // No operator holds memory here: the ten megabytes of rows do.
            "SELECT repeat('x', 100000) AS big FROM range(100)",
        ),
        (
            SqlLimits {
                timeout: Duration::from_millis(50),
                ..SqlLimits::default()
            },
            // Nine million rows: seconds in any build.
            "SELECT count(DISTINCT a.value * 3000 + b.value) FROM range(3000) a CROSS JOIN range(3000) b",
        ),
    ] {
        let config = ServerConfig {
            sql_limits: limits,
            ..test_config()
        };
        let app = TestApp::spawn_with(store, config).await;
        let (status, body) = sql(&app, json!({ "sql": query })).await;
        assert_eq!(status, 400, "{limits:?}: {body}");
        assert_eq!(body["error"], "query_limit", "{body}");
        store = app.stop().await;
    }
}

/// Times one `/healthz`.
async fn health_ms(app: &TestApp) -> f64 {
    let started = std::time::Instant::now();
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    started.elapsed().as_secs_f64() * 1e3
}

/// Once, not per backend: user SQL touches no state, and the count of running
/// queries it watches is the process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sql_cannot_starve_or_outlive_its_bounds() {
    let store = TestStore::sqlite().await;
    let config = ServerConfig {
        sql_limits: SqlLimits {
            timeout: Duration::from_secs(3),
            ..SqlLimits::default()
        },
        ..test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    // Values built in one call: refused before they are built.
    for query in [
        "SELECT length(repeat('a', 1000000000))",
        "SELECT count(*) FROM (SELECT unnest(range(1, 100000000)) AS x)",
    ] {
        let started = std::time::Instant::now();
        let (status, body) = sql(&app, json!({ "sql": query })).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("query_limit")),
            "{body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("would build"),
            "{body}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{query}");
    }
    // Two queries that stream for ever, side by side: /healthz still answers
    // at once, and both are stopped at the deadline.
    let endless = json!({"sql": "SELECT count(*) FROM range(1, 1000000000000)"});
    let started = std::time::Instant::now();
    let both = futures::future::join(sql(&app, endless.clone()), sql(&app, endless.clone()));
    let probe = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut times = Vec::new();
        for _ in 0..10 {
            times.push(health_ms(&app).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        times
    };
    let (((a, body_a), (b, _)), mut times) = futures::future::join(both, probe).await;
    let took = started.elapsed();
    assert_eq!((a, b), (400, 400), "{body_a}");
    assert!(
        body_a["message"]
            .as_str()
            .unwrap()
            .contains("longer than 3 s"),
        "{body_a}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    times.sort_by(f64::total_cmp);
    // Nine in ten under 100 ms even with the whole suite sharing two cores
    // (alone: all under 10 ms while both queries run).
    assert!(
        times[8] < 100.0 && times[9] < 1000.0,
        "healthz ms: {times:?}"
    );
    // A client that leaves: its query is stopped too.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let gone = impatient
        .post(app.url("/api/v1/sql"))
        .bearer_auth(app.key(Security))
        .json(&endless)
        .send()
        .await;
    assert!(gone.is_err());
    crate::helpers::eventually("the abandoned query to stop", || async {
        tollgate_store::bounded_sql::running() == 0
    })
    .await;
    app.stop().await;
}
