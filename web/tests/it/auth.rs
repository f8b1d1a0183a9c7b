//! Keys and roles: every endpoint family against every role, the same 401 for
//! every bad key, gateway scoping, and the audit log.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_store::testing::TestStore;
use tollgate_web::{KeyRequest, Role, create_key};

use crate::helpers::{GATEWAY, TestApp, requests};

use Role::*;

/// Each endpoint family: a request, and the roles that may make it.
fn families() -> Vec<(Method, String, Option<Value>, Vec<Role>)> {
    vec![
        (Method::GET, "/api/v1/audit".into(), None, vec![Admin]),
        (
            Method::GET,
            "/api/v1/freshness".into(),
            None,
            Role::ALL.to_vec(),
        ),
        (
            Method::GET,
            "/api/v1/alerts/rules".into(),
            None,
            vec![Admin, Operator, Finops],
        ),
        (
            // Refused as invalid (422) by those who may, 403 by the others.
            Method::PUT,
            "/api/v1/alerts/rules/x".into(),
            Some(json!({"name": "x", "kind": "nope"})),
            vec![Admin, Operator],
        ),
        (
            Method::DELETE,
            "/api/v1/alerts/rules/x".into(),
            None,
            vec![Admin, Operator],
        ),
        (
            Method::GET,
            "/api/v1/alerts/episodes".into(),
            None,
            vec![Admin, Operator, Finops],
        ),
        (
            Method::GET,
            "/api/v1/alerts/sheds".into(),
            None,
            vec![Admin, Operator, Finops],
        ),
        (
            // An empty period: 400 for those who may.
            Method::POST,
            "/api/v1/alerts/replay".into(),
            Some(json!({"from": "2026-10-02T00:00:00Z", "to": "2026-10-01T00:00:00Z"})),
            vec![Admin, Operator],
        ),
        (
            Method::GET,
            "/api/v1/ops/series?metric=throttled_rate&by=backend".into(),
            None,
            vec![Admin, Operator, Finops],
        ),
        (
            Method::GET,
            "/api/v1/reports/sla?month=2026-10".into(),
            None,
            vec![Admin, Operator, Finops],
        ),
        (Method::GET, "/api/v1/keys".into(), None, vec![Admin]),
        (
            Method::POST,
            "/api/v1/keys".into(),
            Some(json!({"role": "finops"})),
            vec![Admin],
        ),
        (
            Method::GET,
            "/api/v1/budgets".into(),
            None,
            vec![Admin, Finops, Operator],
        ),
        (
            Method::POST,
            "/api/v1/budgets".into(),
            // Refused as invalid (422) by those who may, 403 by the others.
            Some(
                json!({"name": "x", "scope": "subscription", "scope_id": "nope", "token_quota": 1}),
            ),
            vec![Admin, Finops],
        ),
        (
            Method::GET,
            format!("/api/v1/gateways/{GATEWAY}/budgets"),
            None,
            vec![Gateway, Admin, Operator, Finops],
        ),
        (
            Method::GET,
            format!("/api/v1/gateways/{GATEWAY}/budgets/apim-policy"),
            None,
            vec![Gateway, Admin, Operator, Finops],
        ),
        (
            Method::POST,
            "/api/v1/ingest?format=canonical".into(),
            None,
            vec![Ingest, Admin],
        ),
        (
            Method::GET,
            "/api/v1/reports/chargeback?month=2026-10".into(),
            None,
            vec![Admin, Finops],
        ),
        (
            Method::GET,
            "/api/v1/reports/reconcile?month=2026-10".into(),
            None,
            vec![Admin, Finops],
        ),
        (
            // An empty body: 400 for those who may put the bill.
            Method::PUT,
            "/api/v1/costs".into(),
            None,
            vec![Admin, Finops],
        ),
        (
            Method::GET,
            "/api/v1/reports/unpriced?month=2026-10".into(),
            None,
            vec![Admin, Finops],
        ),
        (
            Method::GET,
            "/api/v1/reports/unseen?month=2026-10".into(),
            None,
            vec![Admin, Finops],
        ),
        (
            // An empty OTLP export (JSON): accepted, nothing to ingest.
            Method::POST,
            "/v1/traces".into(),
            Some(json!({})),
            vec![Ingest, Admin],
        ),
        (
            Method::POST,
            "/v1/metrics".into(),
            Some(json!({})),
            vec![Ingest, Admin],
        ),
        (
            // An event missing its fields: 422 for those who may push.
            Method::POST,
            "/api/v1/lineage".into(),
            Some(json!({"job": {"namespace": "n"}})),
            vec![Ingest, Admin],
        ),
        (
            Method::POST,
            "/api/v1/lineage/batch".into(),
            Some(json!([{"job": {"namespace": "n"}}])),
            vec![Ingest, Admin],
        ),
        (
            Method::GET,
            "/api/v1/lineage/findings".into(),
            None,
            vec![Admin, Security],
        ),
        (
            Method::GET,
            "/api/v1/lineage/bypass".into(),
            None,
            vec![Admin, Security],
        ),
        (
            Method::POST,
            "/api/v1/sql".into(),
            Some(json!({"sql": "SELECT 1"})),
            vec![Admin, Security],
        ),
        (
            Method::GET,
            "/api/v1/lineage/hits?by=severity".into(),
            None,
            vec![Admin, Security],
        ),
        (
            // No such hit: 404 for those who may.
            Method::GET,
            "/api/v1/lineage/hits/nope".into(),
            None,
            vec![Admin, Security],
        ),
        (
            Method::GET,
            "/api/v1/lineage/exposure".into(),
            None,
            vec![Admin, Security],
        ),
        (
            Method::GET,
            "/api/v1/lineage/reach?label=General".into(),
            None,
            vec![Admin, Security],
        ),
        (
            Method::GET,
            "/api/v1/lineage/upstream?name=nope".into(),
            None,
            vec![Admin, Security],
        ),
        (
            Method::GET,
            "/api/v1/lineage/why?name=nope".into(),
            None,
            vec![Admin, Security],
        ),
        (
            Method::GET,
            "/api/v1/lineage/path?from=a&to=b".into(),
            None,
            vec![Admin, Security],
        ),
        (
            // An unknown node: 404 for those who may, 403 for the others.
            Method::GET,
            "/api/v1/lineage/downstream?name=nope".into(),
            None,
            vec![Admin, Security],
        ),
        (
            Method::GET,
            "/api/v1/months".into(),
            None,
            vec![Admin, Finops],
        ),
        (
            // A month that cannot be: 400 for those who may, 403 for the others.
            Method::POST,
            "/api/v1/months/bad-month/close".into(),
            None,
            vec![Admin, Finops],
        ),
        (
            Method::POST,
            "/api/v1/months/bad-month/reopen".into(),
            Some(json!({"force": true, "reason": "test"})),
            vec![Admin, Finops],
        ),
        (
            Method::GET,
            "/api/v1/exports/focus?month=2026-10".into(),
            None,
            vec![Admin, Finops],
        ),
        (
            Method::GET,
            "/api/v1/reference".into(),
            None,
            vec![Admin, Finops, Operator],
        ),
        (
            // An empty file: refused (422) for those who may, 403 for the others.
            Method::PUT,
            "/api/v1/reference/prices".into(),
            None,
            vec![Admin, Finops],
        ),
    ]
}

pub async fn every_role_against_every_endpoint_family(store: TestStore) {
    let app = TestApp::spawn(store).await;
    // Traffic through the gateway, so that it has a (possibly empty) view.
    app.push_ok(&requests(
        "seed",
        "2026-10-01T00:00:00Z",
        "sub-a",
        1,
        10,
        10,
    ))
    .await;
    for (method, path, body, allowed) in families() {
        for role in Role::ALL {
            let mut request = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(app.key(role));
            request = match (&body, path.contains("ingest")) {
                (Some(body), _) => request.json(body),
                (None, true) => request.body(requests(
                    &format!("r-{}", role.name()),
                    "2026-10-01T00:00:00Z",
                    "sub-a",
                    1,
                    1,
                    1,
                )),
                (None, false) => request,
            };
            let status = request.send().await.unwrap().status().as_u16();
            if allowed.contains(&role) {
                assert!(
                    status != 401 && status != 403 && status < 500,
                    "{method} {path} as {}: {status}",
                    role.name()
                );
            } else {
                assert_eq!(status, 403, "{method} {path} as {}", role.name());
            }
        }
    }
    // No key at all: 401 everywhere.
    for (method, path, _, _) in families() {
        let status = app
            .client
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "{method} {path} without a key");
    }
    app.stop().await;
}

pub async fn bad_keys_are_all_the_same_401(store: TestStore) {
    let db = store.db.clone();
    let expired = create_key(
        &db,
        &KeyRequest {
            role: "admin".into(),
            gateways: vec![],
            name: None,
            expires_at: Some("2020-01-01T00:00:00Z".into()),
        },
        "test",
    )
    .await
    .unwrap();
    let app = TestApp::spawn(store).await;
    let revoked = app
        .send_json(
            Method::POST,
            "/api/v1/keys",
            Admin,
            &json!({"role": "admin"}),
        )
        .await;
    assert_eq!(revoked.status(), 201);
    let revoked: Value = revoked.json().await.unwrap();
    let secret = revoked["secret"].as_str().unwrap().to_owned();
    // Works until revoked (the API refreshes the key cache at once).
    let ok = app
        .client
        .get(app.url("/api/v1/audit"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let id = revoked["id"].as_i64().unwrap();
    let gone = app
        .client
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .bearer_auth(app.key(Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);

    let mut answers = Vec::new();
    for secret in [
        secret.as_str(),
        expired.secret.as_str(),
        "tg_0000000000000000000000000000000000000000000000000000000000000000",
        "",
    ] {
        let response = app
            .client
            .get(app.url("/api/v1/audit"))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        answers.push(response.text().await.unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // A key cannot revoke itself (an admin locking themselves out).
    let keys = app.store.db.api_keys().await.unwrap();
    let own_id = keys.iter().find(|k| k.name == "test admin").unwrap().id;
    let own = app
        .client
        .delete(app.url(&format!("/api/v1/keys/{own_id}")))
        .bearer_auth(app.key(Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 409);
    // Revoking twice is a clear 404.
    let again = app
        .client
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .bearer_auth(app.key(Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    app.stop().await;
}

pub async fn gateway_keys_see_only_their_gateways(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let mut other = requests("other", "2026-10-01T00:00:00Z", "sub-b", 2, 10, 10);
    other = other.replace(GATEWAY, "gw-b");
    app.push_ok(&other).await;
    app.push_ok(&requests(
        "mine",
        "2026-10-01T00:00:00Z",
        "sub-a",
        2,
        10,
        10,
    ))
    .await;
    // The admin sees both gateways; the gateway key only its own, and the
    // other one as if it did not exist.
    for gateway in [GATEWAY, "gw-b"] {
        let path = format!("/api/v1/gateways/{gateway}/budgets");
        assert_eq!(app.get(&path, Admin).await.status(), 200, "{gateway}");
    }
    assert_eq!(
        app.get(&format!("/api/v1/gateways/{GATEWAY}/budgets"), Gateway)
            .await
            .status(),
        200
    );
    for path in [
        "/api/v1/gateways/gw-b/budgets",
        "/api/v1/gateways/gw-b/budgets/apim-policy",
        "/api/v1/gateways/gw-b/budgets/subscription:sub-b",
        "/api/v1/gateways/never-seen/budgets",
    ] {
        let response = app.get(path, Gateway).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
    }
    app.stop().await;
}

pub async fn the_audit_log_records_api_and_cli_changes(store: TestStore) {
    let app = TestApp::spawn(store).await;
    app.push_ok(&requests("a", "2026-10-01T00:00:00Z", "sub-a", 1, 10, 10))
        .await;
    let created = app
        .send_json(
            Method::POST,
            "/api/v1/budgets",
            Finops,
            &crate::helpers::token_budget("sub-a tokens", "sub-a", 1000, "notify"),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut changed = crate::helpers::token_budget("sub-a tokens", "sub-a", 2000, "notify");
    changed["warn_at"] = json!([0.5]);
    let updated = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/budgets/{id}"),
            Finops,
            &changed,
        )
        .await;
    assert_eq!(updated.status(), 200);

    // FinOps changed it but may not read the log; the admin may.
    assert_eq!(app.get("/api/v1/audit", Finops).await.status(), 403);
    let log: Value = app.get("/api/v1/audit", Admin).await.json().await.unwrap();
    let log = log.as_array().unwrap();
    let update = log.iter().find(|e| e["action"] == "budget.update").unwrap();
    assert_eq!(update["actor"], format!("key:{}:test finops", 2));
    assert_eq!(update["target"], format!("budget:{id}"));
    let before: Value = serde_json::from_str(update["before"].as_str().unwrap()).unwrap();
    let after: Value = serde_json::from_str(update["after"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            before["token_quota"].as_i64(),
            after["token_quota"].as_i64()
        ),
        (Some(1000), Some(2000))
    );
    assert!(log.iter().any(|e| e["action"] == "budget.create"));
    assert!(
        log.iter()
            .any(|e| e["action"] == "key.create" && e["actor"] == "test")
    );
    // Newest first, and the log cannot be rewritten, even by the database's own user.
    assert!(
        log.windows(2)
            .all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64())
    );
    let rewrite = app.store.db.tamper_with_audit_log_for_tests().await;
    assert!(rewrite.is_err(), "the audit log accepted an update");
    app.stop().await;
}

pub async fn the_openapi_document_describes_every_endpoint(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<String> = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            documented.push(format!("{} {path}", method.to_uppercase()));
            let responses = operation["responses"].as_object().unwrap();
            if path != "/healthz" && path != "/metrics" {
                // Every keyed operation says what a missing key and a wrong
                // role get (every role may ask how fresh derived data is).
                assert!(
                    responses.contains_key("401")
                        && (responses.contains_key("403") || path == "/api/v1/freshness"),
                    "{method} {path}"
                );
            }
        }
    }
    documented.sort();
    let mut expected: Vec<String> = families()
        .into_iter()
        .map(|(method, path, _, _)| {
            let path = path
                .split('?')
                .next()
                .unwrap()
                .replace(GATEWAY, "{gateway}")
                .replace("bad-month", "{month}")
                .replace("reference/prices", "reference/{kind}")
                .replace("hits/nope", "hits/{hit_id}")
                .replace("rules/x", "rules/{name}");
            format!("{method} {path}")
        })
        .chain(
            [
                "GET /healthz",
                "GET /metrics",
                "DELETE /api/v1/keys/{id}",
                "GET /api/v1/budgets/{id}",
                "PUT /api/v1/budgets/{id}",
                "DELETE /api/v1/budgets/{id}",
                "GET /api/v1/budgets/{id}/events",
                "GET /api/v1/gateways/{gateway}/budgets/{counter_key}",
            ]
            .map(str::to_owned),
        )
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(documented, expected);
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    app.stop().await;
}

pub async fn months_close_through_the_api_and_reports_read_alike(store: TestStore) {
    let app = TestApp::spawn(store).await;
    app.push_ok(&requests(
        "a",
        "2026-10-01T00:00:00Z",
        "sub-a",
        3,
        1000,
        500,
    ))
    .await;
    let report = |format: &'static str| {
        app.client
            .get(app.url(&format!(
                "/api/v1/reports/chargeback?month=2026-10&by=subscription&format={format}"
            )))
            .bearer_auth(app.key(Finops))
            .send()
    };
    let rows: Value = report("json").await.unwrap().json().await.unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["subscription"], "sub-a");
    assert_eq!(rows[0]["requests"], 3);
    assert_eq!(rows[1]["subscription"], "TOTAL");
    let csv = report("csv").await.unwrap().text().await.unwrap();
    assert!(csv.starts_with("subscription,requests,"), "{csv}");
    assert_eq!(report("xml").await.unwrap().status(), 400);
    let parquet = report("parquet").await.unwrap().bytes().await.unwrap();
    assert_eq!(&parquet[..4], b"PAR1");

    // October has ended by the clock: it may be closed.
    app.set_clock("2026-11-05T00:00:00Z");
    let close = || {
        app.client
            .post(app.url("/api/v1/months/2026-10/close"))
            .bearer_auth(app.key(Finops))
            .send()
    };
    let closed = close().await.unwrap();
    assert_eq!(closed.status(), 200);
    let closed: Value = closed.json().await.unwrap();
    assert_eq!(closed["month"], "2026-10");
    assert_eq!(closed["json_sha256"].as_str().unwrap().len(), 64);
    // Closing again is a conflict; re-opening needs force and a reason.
    let again = close().await.unwrap();
    assert_eq!(again.status().as_u16() / 100, 4);
    assert!(again.text().await.unwrap().contains("closed already"));
    let unforced = app
        .send_json(
            Method::POST,
            "/api/v1/months/2026-10/reopen",
            Finops,
            &json!({"force": false, "reason": "late invoice"}),
        )
        .await;
    assert_eq!(unforced.status().as_u16() / 100, 4);
    let reopened = app
        .send_json(
            Method::POST,
            "/api/v1/months/2026-10/reopen",
            Finops,
            &json!({"force": true, "reason": "late invoice"}),
        )
        .await;
    assert_eq!(reopened.status(), 204);
    let log: Value = app.get("/api/v1/audit", Admin).await.json().await.unwrap();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "key:2:test finops")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["month.reopen", "month.close"]);
    let months: Value = app
        .get("/api/v1/months", Finops)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(months.as_array().unwrap().len(), 2);
    app.stop().await;
}

pub async fn reference_data_is_replaced_through_the_api_as_the_cli_does(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let put = |kind: &'static str, body: &'static str| {
        app.client
            .put(app.url(&format!("/api/v1/reference/{kind}")))
            .bearer_auth(app.key(Finops))
            .body(body)
            .send()
    };
    let header = "model,deployment_type,region,currency,unit,input_rate,cached_input_rate,output_rate,effective_from,effective_to\n";
    let bad = put(
        "prices",
        "model,deployment_type,region,currency,unit,input_rate,cached_input_rate,output_rate,effective_from,effective_to\n\
         gpt-4o,GlobalStandard,any,USD,1M,2.50,1.25,ten,2026-01-01,\n\
         gpt-4o,GlobalStandard,any,USD,1K,2.50,1.25,10.00,2026-1-1,\n",
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    let problems = body["problems"].as_array().unwrap();
    assert!(problems.len() >= 2, "{body}");
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().contains("line 2")),
        "{body}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().contains("line 3")),
        "{body}"
    );
    let reference: Value = app
        .get("/api/v1/reference", Operator)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        reference["prices"].as_array().unwrap().is_empty(),
        "nothing stored from a bad file"
    );

    let good = put(
        "prices",
        "model,deployment_type,region,currency,unit,input_rate,cached_input_rate,output_rate,effective_from,effective_to\n\
         gpt-4o,GlobalStandard,any,USD,1M,2.50,1.25,10.00,2026-01-01,\n",
    )
    .await
    .unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(good.json::<Value>().await.unwrap()["rows"], 1);
    let reference: Value = app
        .get("/api/v1/reference", Operator)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reference["prices"][0]["model"], "gpt-4o");
    assert_eq!(put("tariffs", header).await.unwrap().status(), 404);
    let log: Value = app.get("/api/v1/audit", Admin).await.json().await.unwrap();
    assert_eq!(log[0]["action"], "prices.import");
    assert_eq!(log[0]["actor"], "key:2:test finops");
    app.stop().await;
}
