//! LiteLLM spend logs as CSV and as a JSON array: the same calls, the same rows.

use std::path::Path;
use std::sync::Arc;

use tollgate_ingest::{Format, IngestError, IngestOptions, IngestReport, NoProgress, ingest_file};
use tollgate_store::Store;
use tollgate_store::testing::TestStore;

use crate::helpers::{csv_of, sample, write};

tollgate_store::backend_tests!(
    csv_export_ingests_to_its_exact_rows,
    json_array_export_of_the_same_calls_adds_nothing,
    a_broken_json_array_commits_nothing,
);

async fn litellm(store: &Store, path: &Path) -> Result<IngestReport, IngestError> {
    let options = IngestOptions {
        format: Format::LiteLlm,
        ..IngestOptions::default()
    };
    ingest_file(store, path, &options, Arc::new(NoProgress)).await
}

const EXPECTED: &str = "\
request_id,time,gateway_kind,subscription,product,user_id,agent,tool,backend,status_code,total_latency_ms,cache_status,error_source,deployment,model,prompt_tokens,cached_tokens,completion_tokens,gateway_reported_cost
chatcmpl-AbC123,2026-10-01T09:00:00.250Z,litellm,88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b,team-support,alice,support-bot,,a1b2c3,200,850,miss,,gpt-4o,gpt-4o,1200,256,130,0.0042
chatcmpl-DeF456,2026-10-01T09:05:10Z,litellm,88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b,team-research,bob,research-agent,github-search_repos,d4e5f6,200,400,miss,,gpt-4o-mini,gpt-4o-mini,380,0,40,0.00018
chatcmpl-GhI789,2026-10-01T09:06:00Z,litellm,88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b,team-support,alice,support-bot,,a1b2c3,429,20,miss,failure,gpt-4o,gpt-4o,0,0,0,0.0
";

async fn rows(store: &Store) -> String {
    csv_of(
        store,
        "SELECT request_id, time, gateway_kind, subscription, product, user_id, agent, tool, backend, \
         status_code, total_latency_ms, cache_status, error_source, deployment, model, prompt_tokens, \
         cached_tokens, completion_tokens, gateway_reported_cost FROM usage ORDER BY request_id",
    )
    .await
}

async fn csv_export_ingests_to_its_exact_rows(store: TestStore) {
    let report = litellm(&store, &sample("litellm-spend-logs.csv"))
        .await
        .unwrap();
    let c = report.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (5, 3, 0, 2)
    );
    assert_eq!(rows(&store).await, EXPECTED);
    let q = store.db.quarantined_lines(report.batch_id).await.unwrap();
    let got: Vec<(i64, bool)> = q
        .iter()
        .map(|q| {
            (
                q.line_number,
                q.reason.contains("malformed CSV row") || q.reason.contains("field `startTime`"),
            )
        })
        .collect();
    // Line numbers count the quoted newline inside the first row's metadata.
    assert_eq!(got, vec![(6, true), (7, true)], "{q:?}");
}

async fn json_array_export_of_the_same_calls_adds_nothing(store: TestStore) {
    let report = litellm(&store, &sample("litellm-spend-logs.json"))
        .await
        .unwrap();
    assert_eq!(report.counts.written, 3);
    assert_eq!(rows(&store).await, EXPECTED);
    let again = litellm(&store, &sample("litellm-spend-logs.csv"))
        .await
        .unwrap();
    let c = again.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (5, 0, 3, 2)
    );
    assert_eq!(rows(&store).await, EXPECTED);
}

async fn a_broken_json_array_commits_nothing(store: TestStore) {
    let path = write(
        store.dir.path(),
        "cut.json",
        br#"[{"request_id":"a","startTime":"2026-10-01T09:00:00Z"},{"request_"#,
    );
    let err = litellm(&store, &path).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("cut.json: not a readable JSON array"),
        "{message}"
    );
    assert!(
        message.contains("nothing from this file was committed"),
        "{message}"
    );
    assert_eq!(crate::helpers::request_rows(&store).await, 0);
}
