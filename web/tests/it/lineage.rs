//! The security analyst's questions over HTTP, on the generator's catalog.

use serde_json::Value;
use tollgate_fixtures::{Estate, catalog_yaml};
use tollgate_lineage::{
    Edge, Import, LineageMode, NodeKey, Origin, Taxonomy, parse_catalog, save_import,
};
use tollgate_store::testing::TestStore;
use tollgate_web::Role::{Finops, Security};

use crate::helpers::{TestApp, eventually};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path, Security).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn analysts_query_the_graph_and_see_imports_arrive(store: TestStore) {
    let taxonomy = Taxonomy::default();
    let import = parse_catalog(&catalog_yaml(&Estate::new(42)), "catalog.yaml", &taxonomy).unwrap();
    save_import(
        &store.db,
        &import,
        &taxonomy,
        "cli:test",
        LineageMode::Replace,
    )
    .await
    .unwrap();
    let app = TestApp::spawn(store).await;

    let (status, agents) = get(
        &app,
        "/api/v1/lineage/reach?label=Highly%20Confidential&kinds=agent",
    )
    .await;
    assert_eq!(status, 200);
    let agents = agents.as_array().unwrap().clone();
    assert!(!agents.is_empty());
    for agent in &agents {
        assert_eq!(agent["path"][0]["node"]["label"], "Highly Confidential");
        assert_eq!(
            agent["path"].as_array().unwrap().last().unwrap()["node"],
            agent["node"]
        );
    }

    let (status, down) = get(
        &app,
        "/api/v1/lineage/downstream?name=hr-employee-db&depth=2&kinds=agent",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(down["truncated"], true);
    assert!(
        down["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["kind"] == "agent" && n["distance"] == 2)
    );

    let (status, path) = get(
        &app,
        "/api/v1/lineage/path?from=hr-employee-db&to=apim-contoso",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(path["path"][0]["node"]["name"], "hr-employee-db");
    let (status, findings) = get(&app, "/api/v1/lineage/findings").await;
    assert_eq!(status, 200);
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "above_allowed_label")
    );
    let (status, exposure) = get(&app, "/api/v1/lineage/exposure").await;
    assert_eq!(status, 200);
    assert!(
        exposure
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["boundary"] == "global")
    );

    // Clear 4xx answers, each naming the problem.
    for (path, expected, names) in [
        ("/api/v1/lineage/why?name=nope", 404, "nope"),
        (
            "/api/v1/lineage/downstream?name=hr-employee-db&depth=0",
            400,
            "depth",
        ),
        (
            "/api/v1/lineage/downstream?name=hr-employee-db&limit=0",
            400,
            "limit",
        ),
        (
            "/api/v1/lineage/downstream?name=hr-employee-db&kinds=robot",
            400,
            "robot",
        ),
        ("/api/v1/lineage/reach?label=Secret", 400, "Secret"),
        (
            "/api/v1/lineage/path?from=apim-contoso&to=hr-employee-db",
            404,
            "no data-flow path",
        ),
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{path}: {body}"
        );
    }
    assert_eq!(
        app.get("/api/v1/lineage/findings", Finops).await.status(),
        403
    );

    // An import elsewhere (the CLI, another server) reaches this one's graph.
    let (from, to) = (
        NodeKey::new("contoso", "hr-employee-db"),
        NodeKey::new("contoso", "marketing-writer"),
    );
    let seen = Import {
        origin: Origin::Openlineage,
        nodes: vec![],
        edges: vec![(from, to, Edge::new("reads", Origin::Openlineage))],
    };
    save_import(
        &app.store.db,
        &seen,
        &taxonomy,
        "cli:test",
        LineageMode::Merge,
    )
    .await
    .unwrap();
    eventually("the new edge in the served graph", || async {
        let (_, why) = get(&app, "/api/v1/lineage/why?name=marketing-writer").await;
        why["path"].as_array().is_some_and(|p| p.len() == 2)
            && why["path"][1]["via"]["origin"] == "openlineage"
    })
    .await;

    // Pushed traffic becomes observed edges: deployment -> gateway -> subscription.
    app.push_ok(&crate::helpers::requests(
        "obs",
        "2026-10-02T00:00:00Z",
        "sub-a",
        3,
        10,
        10,
    ))
    .await;
    eventually("the pushed traffic in the served graph", || async {
        let (_, down) = get(
            &app,
            "/api/v1/lineage/downstream?name=payg-eastus/gpt-4o&kinds=subscription",
        )
        .await;
        down["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["name"] == "sub-a"))
    })
    .await;
    let (_, path) = get(
        &app,
        "/api/v1/lineage/path?from=payg-eastus/gpt-4o&to=sub-a",
    )
    .await;
    assert_eq!(path["path"][2]["via"]["origin"], "observed", "{path}");
    assert_eq!(path["path"][2]["via"]["calls"], 3, "{path}");
    app.stop().await;
}

fn run_event(job: &str, input: &str, label: &str) -> Value {
    serde_json::json!({
        "eventType": "COMPLETE",
        "eventTime": "2026-10-14T10:00:00Z",
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "0192f6a4-8d1e-7c3a-9b2f-3d4e5f6a7b8c"},
        "job": {"namespace": "contoso", "name": job,
                "facets": {"jobType": {"processingType": "SERVICE", "jobType": "AGENT"}}},
        "inputs": [{"namespace": "warehouse", "name": input,
                    "facets": {"tags": {"tags": [{"key": "sensitivity", "value": label}]}}}],
    })
}

pub async fn openlineage_events_are_pushed_plain_gzipped_and_in_batches(store: TestStore) {
    use std::io::Write;
    use tollgate_web::Role::Ingest;

    let app = TestApp::spawn(store).await;
    let post = |path: &'static str, body: Vec<u8>, gzip: bool| {
        let mut request = app
            .client
            .post(app.url(path))
            .bearer_auth(app.key(Ingest))
            .header("content-type", "application/json")
            .body(body);
        if gzip {
            request = request.header("content-encoding", "gzip");
        }
        request.send()
    };
    let plain = serde_json::to_vec(&run_event(
        "claims-triage",
        "policies",
        "Highly Confidential",
    ))
    .unwrap();
    let response = post("/api/v1/lineage", plain, false).await.unwrap();
    assert_eq!(response.status(), 201);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["edges"], 1);

    // The graph answers at once: the push is applied before it is acknowledged.
    let (_, why) = get(&app, "/api/v1/lineage/why?name=claims-triage").await;
    assert_eq!(why["node"]["effective_label"], "Highly Confidential");
    assert_eq!(why["node"]["kind"], "agent");
    assert_eq!(why["path"][0]["node"]["name"], "policies");

    let batch = serde_json::to_vec(&serde_json::json!([
        run_event("claims-triage", "policies", "Highly Confidential"),
        run_event("fraud-scan", "ledger", "Confidential"),
    ]))
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&batch).unwrap();
    let response = post("/api/v1/lineage/batch", gz.finish().unwrap(), true)
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (_, edge) = get(&app, "/api/v1/lineage/why?name=claims-triage").await;
    assert_eq!(edge["path"][1]["via"]["calls"], 2, "{edge}");
    let (_, fraud) = get(&app, "/api/v1/lineage/why?name=fraud-scan").await;
    assert_eq!(fraud["node"]["effective_label"], "Confidential");

    // A bad event is refused whole with every problem named; nothing changes.
    let mut bad = run_event("new-agent", "new-table", "Secret");
    bad["run"]["runId"] = Value::from("nope");
    let response = post("/api/v1/lineage", serde_json::to_vec(&bad).unwrap(), false)
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let problems = body["problems"].to_string();
    assert!(
        problems.contains("event.run.runId") && problems.contains("Secret"),
        "{body}"
    );
    assert_eq!(get(&app, "/api/v1/lineage/why?name=new-agent").await.0, 404);
    for (path, body, status) in [
        ("/api/v1/lineage", b"not json".to_vec(), 400),
        ("/api/v1/lineage/batch", b"{}".to_vec(), 400),
        ("/api/v1/lineage", vec![0x1f, 0x8b, 0, 1], 400),
    ] {
        assert_eq!(
            post(path, body, false).await.unwrap().status(),
            status,
            "{path}"
        );
    }
    let audit = app.store.db.audit_log(None, 10).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "lineage.import")
            .count(),
        2
    );
    app.stop().await;
}
