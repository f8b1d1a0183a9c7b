//! The OTLP/HTTP receiver: exports in protobuf and JSON, plain and gzip, land
//! as spans and metrics; refused spans come back as partial success; lineage
//! and bypass findings follow; malformed, mistyped, oversized and bomb bodies
//! are clear 4xx answers with nothing committed.

use std::io::Write;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::Value;
use tollgate_lineage::{Origin, Taxonomy, load_graph};
use tollgate_store::testing::TestStore;
use tollgate_web::{Role, ServerConfig};

use crate::helpers::{TestApp, test_config};

/// google.rpc.Status, as an OTLP error body is.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn sample_lines(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/samples")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn trace_export(line: &str) -> ExportTraceServiceRequest {
    serde_json::from_str(line).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

async fn post(
    app: &TestApp,
    path: &str,
    role: Option<Role>,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(role) = role {
        request = request.bearer_auth(app.key(role));
    }
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request.send().await.unwrap()
}

/// An ingest key's trace export as protobuf.
async fn send_traces(app: &TestApp, body: Vec<u8>) -> reqwest::Response {
    let proto = "application/x-protobuf";
    post(app, "/v1/traces", Some(Role::Ingest), proto, None, body).await
}

async fn span_count(app: &TestApp) -> i64 {
    let result = app
        .store
        .sql_read_only("SELECT COUNT(*) FROM genai_spans")
        .await
        .unwrap();
    let column = result.batches[0].column(0);
    arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(column).value(0)
}

pub async fn otlp_exports_land_as_spans_lineage_and_bypass_findings(store: TestStore) {
    let mut config = test_config();
    config.lineage_policy.gateway_hosts = vec!["apim-contoso.azure-api.net".into()];
    let app = TestApp::spawn_with(store, config).await;
    let lines = sample_lines("otlp-traces.jsonl");

    // step 1: an agent trace as protobuf: every span accepted.
    let body = trace_export(&lines[0]).encode_to_vec();
    let response = send_traces(&app, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let answer = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success, None);

    // step 2: two more conventions as gzipped JSON.
    for line in &lines[1..3] {
        let response = post(
            &app,
            "/v1/traces",
            Some(Role::Ingest),
            "application/json",
            Some("gzip"),
            gzip(line.as_bytes()),
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "{}");
    }
    assert_eq!(span_count(&app).await, 9);

    // step 3: bad spans are refused as a partial success, naming the field.
    let body = trace_export(&lines[3]).encode_to_vec();
    let response = send_traces(&app, body).await;
    assert_eq!(response.status(), 200);
    let answer = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 3);
    assert!(
        partial.error_message.contains("field `traceId`: 15 bytes"),
        "{}",
        partial.error_message
    );

    // step 4: a retried export adds nothing.
    let body = trace_export(&lines[0]).encode_to_vec();
    let response = send_traces(&app, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(span_count(&app).await, 9);

    // step 5: metrics as JSON; the point without a sum is refused.
    let metrics = sample_lines("otlp-metrics.jsonl");
    let _: ExportMetricsServiceRequest = serde_json::from_str(&metrics[0]).unwrap();
    let response = post(
        &app,
        "/v1/metrics",
        Some(Role::Ingest),
        "application/json",
        None,
        metrics[0].clone().into_bytes(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedDataPoints"], "1",
        "{answer}"
    );

    // step 6: the traced calls that went around the gateway are findings.
    app.settled().await;
    let response = app.get("/api/v1/lineage/bypass", Role::Security).await;
    assert_eq!(response.status(), 200);
    let found: Value = response.json().await.unwrap();
    let shape: Vec<(String, String, i64)> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["server_address"].as_str().unwrap().to_owned(),
                f["agent"].as_str().unwrap().to_owned(),
                f["calls"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("api.openai.com".to_owned(), "claims-triage".to_owned(), 1),
            (
                "contoso-aoai.openai.azure.com".to_owned(),
                "hr-helper".to_owned(),
                1
            ),
        ]
    );
    assert_eq!(found[0]["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    let page = app
        .client
        .get(app.url("/api/v1/lineage/bypass"))
        .bearer_auth(app.key(Role::Finops))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);

    // step 7: FinOps sees the same calls as traffic no gateway saw, on its
    // own line; without a price row their tokens are unpriced, said so.
    let response = app
        .get("/api/v1/reports/unseen?month=2026-10", Role::Finops)
        .await;
    assert_eq!(response.status(), 200);
    let unseen: Value = response.json().await.unwrap();
    let lines: Vec<(&str, &str, i64)> = unseen["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["server_address"].as_str().unwrap(),
                l["model"].as_str().unwrap(),
                l["unpriced_tokens"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("api.openai.com", "gpt-4o-mini", 450),
            ("contoso-aoai.openai.azure.com", "gpt-4o", 920),
        ]
    );
    assert_eq!(unseen["unpriced_tokens"], 1370, "{unseen}");

    // step 8: the graph has the trace edges under the `otel` origin.
    let graph = load_graph(&app.store.db, Taxonomy::default())
        .await
        .unwrap();
    let mut edges: Vec<(String, String, String, u64)> = graph
        .edges()
        .filter(|e| graph.edge(*e).origin == Origin::Otel)
        .map(|e| {
            let (a, b) = graph.endpoints(e);
            let edge = graph.edge(e);
            (
                graph.node(a).key.name.clone(),
                graph.node(b).key.name.clone(),
                edge.kind.clone(),
                edge.calls,
            )
        })
        .collect();
    edges.sort();
    let edge = |a: &str, b: &str, kind: &str| (a.to_owned(), b.to_owned(), kind.to_owned(), 1);
    assert_eq!(
        edges,
        [
            edge("claims", "lookup-policy", "reads"),
            edge("claims-triage", "gpt-4o-2024-08-06", "invokes"),
            edge("claims-triage", "gpt-4o-mini", "invokes"),
            edge("employee-search", "hr-helper", "calls"),
            edge("hr-employee-db", "employee-search", "reads"),
            edge("hr-helper", "gpt-4o", "invokes"),
            edge("lookup-policy", "claims-triage", "calls"),
            edge("support-agent", "gpt-4o-mini", "invokes"),
        ]
    );
    app.stop().await;
}

pub async fn hostile_otlp_bodies_are_clear_4xx_with_nothing_committed(store: TestStore) {
    let config = ServerConfig {
        max_ingest_bytes: 64 << 10,
        ..test_config()
    };
    let limit = config.max_ingest_bytes;
    let app = TestApp::spawn_with(store, config).await;
    let line = sample_lines("otlp-traces.jsonl").remove(0);
    let good = trace_export(&line).encode_to_vec();
    let proto = "application/x-protobuf";

    // Malformed protobuf: 400 with a google.rpc.Status in protobuf.
    let response = send_traces(&app, vec![0x0a, 0xff, 0xff, 0x01]).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], proto);
    let status = RpcStatus::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("not an OTLP trace export"),
        "{}",
        status.message
    );

    // Malformed JSON: 400 with the Status as JSON.
    let response = post(
        &app,
        "/v1/traces",
        Some(Role::Ingest),
        "application/json",
        None,
        b"{\"resourceSpans\":[{".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["code"], 3, "{status}");

    // A content type OTLP does not have, and an encoding it does not either.
    let response = post(
        &app,
        "/v1/traces",
        Some(Role::Ingest),
        "text/plain",
        None,
        good.clone(),
    )
    .await;
    assert_eq!(response.status(), 415);
    let response = post(
        &app,
        "/v1/metrics",
        Some(Role::Ingest),
        proto,
        Some("br"),
        good.clone(),
    )
    .await;
    assert_eq!(response.status(), 415);

    // No key, and a key whose role may not send.
    let response = post(&app, "/v1/traces", None, proto, None, good.clone()).await;
    assert_eq!(response.status(), 401);
    let status = RpcStatus::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 16);
    let response = post(
        &app,
        "/v1/traces",
        Some(Role::Finops),
        proto,
        None,
        good.clone(),
    )
    .await;
    assert_eq!(response.status(), 403);
    // The role is decided before anything about the body.
    let response = post(&app, "/v1/traces", None, "text/plain", None, good.clone()).await;
    assert_eq!(response.status(), 401);

    // A body past the bound, and a small gzip that inflates past it.
    let response = send_traces(&app, vec![0; limit + 1]).await;
    assert_eq!(response.status(), 413);
    let bomb = gzip(&vec![b' '; limit + 1]);
    assert!(bomb.len() < limit / 10, "{} bytes of gzip", bomb.len());
    let response = post(
        &app,
        "/v1/traces",
        Some(Role::Ingest),
        "application/json",
        Some("gzip"),
        bomb,
    )
    .await;
    assert_eq!(response.status(), 413);
    let response = post(
        &app,
        "/v1/traces",
        Some(Role::Ingest),
        proto,
        Some("gzip"),
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);

    assert_eq!(span_count(&app).await, 0);
    // And the good body is still taken.
    let response = post(&app, "/v1/traces", Some(Role::Ingest), proto, None, good).await;
    assert_eq!(response.status(), 200);
    assert_eq!(span_count(&app).await, 4);
    app.stop().await;
}
