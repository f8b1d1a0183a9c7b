//! Kong AI Gateway log entries, to the exact rows they must produce.

use std::sync::Arc;

use tollgate_ingest::{Format, IngestOptions, NoProgress, ingest_file};
use tollgate_store::testing::TestStore;

use crate::helpers::{csv_of, sample};

tollgate_store::backend_tests!(kong_sample_ingests_to_its_exact_rows);

async fn kong_sample_ingests_to_its_exact_rows(store: TestStore) {
    let path = sample("kong-ai-logs.jsonl");
    let options = IngestOptions {
        format: Format::Kong,
        ..IngestOptions::default()
    };
    let report = ingest_file(&store, &path, &options, Arc::new(NoProgress))
        .await
        .unwrap();
    let c = report.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (4, 4, 0, 0)
    );

    let got = csv_of(
        &store,
        "SELECT request_id, time, gateway_kind, gateway_id, subscription, api, operation, backend, \
         status_code, total_latency_ms, backend_latency_ms, cache_status, deployment, model, \
         prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, streamed \
         FROM usage ORDER BY request_id",
    )
    .await;
    let expected = "\
request_id,time,gateway_kind,gateway_id,subscription,api,operation,backend,status_code,total_latency_ms,backend_latency_ms,cache_status,deployment,model,prompt_tokens,cached_tokens,completion_tokens,reasoning_tokens,streamed
a1f0c2d4e6b8a0c2e4f6a8b0c2d4e6f8,2026-10-01T09:00:00.123Z,kong,ai-platform,team-research,openai-chat,chat,api.openai.com,200,930,905,miss,gpt-4o,gpt-4o-2024-08-06,900,100,120,40,true
b2e1d3c5f7a9b1d3f5a7c9e1b3d5f7a9,2026-10-01T09:01:00.500Z,kong,ai-platform,team-support,openai-chat,chat,api.openai.com,200,412,398,miss,gpt-4o-mini,gpt-4o-mini-2024-07-18,300,0,80,0,false
c3d2e4f6a8b0c2e4f6a8b0c2e4f6a8b0,2026-10-01T09:01:01Z,kong,ai-platform,team-support,openai-chat,chat,api.openai.com,429,2,0,,,,,,,,
d4c3b5a7e9f1d3b5a7e9f1d3b5a7e9f1,2026-10-01T09:01:02Z,kong,ai-platform,team-research,openai-chat,chat,api.openai.com,200,15,0,hit,,,,,,,
";
    assert_eq!(got, expected);
}
