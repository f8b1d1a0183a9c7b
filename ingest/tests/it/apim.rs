//! The APIM diagnostic export: the two categories, in separate files, in either order.

use std::sync::Arc;

use tollgate_ingest::{Format, IngestOptions, IngestReport, NoProgress, Outcome, ingest_file};
use tollgate_store::Store;
use tollgate_store::testing::TestStore;

use crate::helpers::*;

tollgate_store::backend_tests!(
    gateway_logs_then_llm_logs,
    llm_logs_then_gateway_logs,
    an_empty_envelope_is_accounted_for,
    log_analytics_exports_give_the_same_rows_and_never_double,
    multi_line_documents_are_read_whole,
    a_split_llm_log_keeps_the_piece_with_counts_whatever_the_order,
);

async fn apim(store: &Store, name: &str) -> IngestReport {
    let options = IngestOptions {
        format: Format::Apim,
        ..IngestOptions::default()
    };
    ingest_file(store, &sample(name), &options, Arc::new(NoProgress))
        .await
        .unwrap()
}

/// (read, written, duplicate, quarantined)
fn counts(r: &IngestReport) -> (i64, i64, i64, i64) {
    let c = r.counts;
    (c.read, c.written, c.duplicate, c.quarantined)
}

async fn gateway_logs_then_llm_logs(store: TestStore) {
    assert_eq!(
        counts(&apim(&store, "apim-gateway-logs.jsonl").await),
        (5, 5, 0, 0)
    );
    // The long message of request 2 was split in two LLM rows: its tokens count once.
    assert_eq!(
        counts(&apim(&store, "apim-llm-logs.json").await),
        (4, 3, 1, 0)
    );
    assert_paired(&store).await;
}

async fn llm_logs_then_gateway_logs(store: TestStore) {
    assert_eq!(
        counts(&apim(&store, "apim-llm-logs.json").await),
        (4, 3, 1, 0)
    );
    assert_eq!(
        counts(&apim(&store, "apim-gateway-logs.jsonl").await),
        (5, 5, 0, 0)
    );
    assert_eq!(
        apim(&store, "apim-llm-logs.json").await.outcome,
        Outcome::AlreadyIngested
    );
    assert_paired(&store).await;
}

async fn assert_paired(store: &Store) {
    // Request 1 named its agent and priority in headers (dimension mapping).
    assert_eq!(
        csv_of(store, "SELECT request_id, agent, priority FROM requests WHERE agent IS NOT NULL OR priority IS NOT NULL").await,
        "request_id,agent,priority\n5c1d0a3e-0001-4a2b-9c3d-000000000001,finance-copilot,high\n"
    );
    assert_eq!(request_rows(store).await, 5);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM usage").await, 5);
    assert_eq!(
        scalar(store, "SELECT COUNT(*) FROM usage WHERE model IS NOT NULL").await,
        3
    );
    assert_eq!(
        scalar(
            store,
            "SELECT CAST(SUM(prompt_tokens) AS BIGINT) FROM usage"
        )
        .await,
        1200 + 30000 + 640
    );
    assert_eq!(
        scalar(
            store,
            "SELECT CAST(SUM(cached_tokens) AS BIGINT) FROM usage"
        )
        .await,
        256
    );
    // The exact rows, as a FinOps or SRE query would see them.
    let got = csv_of(
        store,
        "SELECT request_id, gateway_id, region, subscription, product, backend, status_code, \
         backend_status_code, total_latency_ms, backend_latency_ms, cache_status, error_source, \
         model, prompt_tokens, cached_tokens, completion_tokens, streamed \
         FROM usage ORDER BY request_id",
    )
    .await;
    let expected = "\
request_id,gateway_id,region,subscription,product,backend,status_code,backend_status_code,total_latency_ms,backend_latency_ms,cache_status,error_source,model,prompt_tokens,cached_tokens,completion_tokens,streamed
5c1d0a3e-0001-4a2b-9c3d-000000000001,apim-contoso-eastus,East US,sub-finance-gold,gold,aoai-eastus-ptu,200,200,812,790,miss,,gpt-4o,1200,256,180,false
5c1d0a3e-0001-4a2b-9c3d-000000000002,apim-contoso-eastus,East US,sub-finance-gold,gold,aoai-eastus-ptu,200,200,2311,2290,miss,,gpt-4o,30000,0,900,true
5c1d0a3e-0001-4a2b-9c3d-000000000003,apim-contoso-eastus,East US,sub-hr-silver,silver,aoai-swedencentral-paygo,200,200,655,640,miss,,gpt-4o-mini,640,0,75,false
5c1d0a3e-0001-4a2b-9c3d-000000000004,apim-contoso-eastus,East US,sub-hr-silver,silver,,429,,3,,none,llm-token-limit,,,,,
5c1d0a3e-0001-4a2b-9c3d-000000000005,apim-contoso-eastus,East US,sub-finance-gold,gold,,200,,11,,hit,,,,,,
";
    assert_eq!(got, expected);
}

async fn an_empty_envelope_is_accounted_for(store: TestStore) {
    let path = write(
        store.dir.path(),
        "empty-envelope.json",
        b"{\"records\": []}\n",
    );
    let options = IngestOptions {
        format: Format::Apim,
        ..IngestOptions::default()
    };
    let report = ingest_file(&store, &path, &options, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(counts(&report), (1, 0, 0, 1));
    let q = store.db.quarantined_lines(report.batch_id).await.unwrap();
    assert_eq!(
        (q[0].line_number, q[0].reason.as_str()),
        (1, "no records in this line")
    );
}

async fn log_analytics_exports_give_the_same_rows_and_never_double(store: TestStore) {
    // The same requests queried from Log Analytics: CSV (portal `[UTC]` header)
    // for the gateway table, a JSON array for the LLM table.
    assert_eq!(
        counts(&apim(&store, "apim-la-llm-logs.json").await),
        (4, 3, 1, 0)
    );
    assert_eq!(
        counts(&apim(&store, "apim-la-gateway-logs.csv").await),
        (5, 5, 0, 0)
    );
    assert_paired(&store).await;
    // And the diagnostic export of those requests adds nothing.
    assert_eq!(
        counts(&apim(&store, "apim-gateway-logs.jsonl").await),
        (5, 0, 5, 0)
    );
    assert_eq!(
        counts(&apim(&store, "apim-llm-logs.json").await),
        (4, 0, 4, 0)
    );
    assert_paired(&store).await;
}

async fn multi_line_documents_are_read_whole(store: TestStore) {
    // The LLM envelope pretty-printed (older blobs), and the gateway rows in the
    // Log Analytics REST shape ({"tables":[{"columns":[...],"rows":[[...]]}]}).
    let envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sample("apim-llm-logs.json")).unwrap()).unwrap();
    let pretty = write(
        store.dir.path(),
        "llm-pretty.json",
        serde_json::to_string_pretty(&envelope).unwrap().as_bytes(),
    );
    let gateway: Vec<serde_json::Value> =
        std::fs::read_to_string(sample("apim-gateway-logs.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let columns = [
        "TimeGenerated",
        "CorrelationId",
        "Region",
        "ResponseCode",
        "TotalTime",
    ];
    let rows: Vec<serde_json::Value> = gateway
        .iter()
        .map(|g| {
            serde_json::json!([
                g["time"],
                g["correlationId"],
                g["location"],
                g["properties"]["responseCode"],
                g["durationMs"]
            ])
        })
        .collect();
    let tables = serde_json::json!({"tables": [{"name": "PrimaryResult",
        "columns": columns.iter().map(|c| serde_json::json!({"name": c, "type": "string"})).collect::<Vec<_>>(),
        "rows": rows}]});
    let rest = write(
        store.dir.path(),
        "la-rest.json",
        serde_json::to_string_pretty(&tables).unwrap().as_bytes(),
    );

    let options = IngestOptions {
        format: Format::Auto,
        ..IngestOptions::default()
    };
    let c = ingest_file(&store, &pretty, &options, Arc::new(NoProgress))
        .await
        .unwrap()
        .counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (4, 3, 1, 0)
    );
    let c = ingest_file(&store, &rest, &options, Arc::new(NoProgress))
        .await
        .unwrap()
        .counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (5, 5, 0, 0)
    );
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM usage WHERE model IS NOT NULL").await,
        3
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT CAST(SUM(prompt_tokens) AS BIGINT) FROM usage"
        )
        .await,
        1200 + 30000 + 640
    );
}

async fn a_split_llm_log_keeps_the_piece_with_counts_whatever_the_order(store: TestStore) {
    let row = |id: &str, seq: u32, prompt: u32, completion: u32| {
        format!(
            r#"{{"Time":"2026-10-02T08:00:00Z","Category":"GatewayLlmLogs","Properties":{{"CorrelationId":"{id}","ModelName":"gpt-4o","PromptTokens":{prompt},"CompletionTokens":{completion},"SequenceNumber":{seq}}}}}"#
        )
    };
    let body = [
        // The continuation without counts comes first.
        row("split-a", 1, 0, 0),
        row("split-a", 0, 900, 40),
        // Only a piece without counts ever arrives: kept, with zeros.
        row("alone-b", 1, 0, 0),
        // The counts first, the continuation after.
        row("split-c", 0, 300, 20),
        row("split-c", 1, 0, 0),
    ]
    .join("\n");
    let path = write(store.dir.path(), "split.json", body.as_bytes());
    let options = IngestOptions {
        format: Format::Apim,
        ..IngestOptions::default()
    };
    let report = ingest_file(&store, &path, &options, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(counts(&report), (5, 3, 2, 0));
    let got = csv_of(
        &store,
        "SELECT request_id, prompt_tokens, completion_tokens FROM token_usage ORDER BY request_id",
    )
    .await;
    assert_eq!(
        got,
        "request_id,prompt_tokens,completion_tokens\nalone-b,0,0\nsplit-a,900,40\nsplit-c,300,20\n"
    );
}
