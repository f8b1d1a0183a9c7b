//! OTLP JSON lines (`fixtures/samples/otlp-*.jsonl`, hand-checked): one
//! `genai_spans` row per model, tool or agent span in each of the three
//! conventions, agents and data found through parents, bad spans quarantined by
//! line and field, a re-sent span added once; the GenAI client histograms as
//! `token_metrics` rows.

use tollgate_ingest::Format;
use tollgate_store::testing::TestStore;

use crate::helpers::{csv_of, ingest_as, sample, write};

tollgate_store::backend_tests!(
    spans_of_three_conventions_land_with_their_agents_and_data,
    a_resent_export_adds_nothing,
    genai_client_histograms_become_token_metrics,
    span_times_outside_the_window_are_quarantined,
);

async fn spans_of_three_conventions_land_with_their_agents_and_data(store: TestStore) {
    // Recognised by `auto`.
    let report = ingest_as(&store, &sample("otlp-traces.jsonl"), Format::Auto).await;
    let c = report.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (12, 9, 0, 3)
    );

    let rows = csv_of(
        &store,
        "SELECT span_id, parent_span_id, operation, provider, model, agent, tool, server_address, \
         data_system, data_namespace, input_tokens, output_tokens, cached_tokens, reasoning_tokens, \
         token_counts, status, service_name, convention, duration_ms \
         FROM genai_spans ORDER BY trace_id, span_id",
    )
    .await;
    assert_eq!(
        rows,
        [
            "span_id,parent_span_id,operation,provider,model,agent,tool,server_address,data_system,data_namespace,input_tokens,output_tokens,cached_tokens,reasoning_tokens,token_counts,status,service_name,convention,duration_ms",
            "b7ad6b7169203331,,invoke_agent,,,claims-triage,,,,,,,,,none,ok,claims-bot,genai,4000",
            "b7ad6b7169203332,b7ad6b7169203331,execute_tool,,,claims-triage,lookup-policy,,postgresql,claims,,,,,none,ok,claims-bot,genai,500",
            "b7ad6b7169203334,b7ad6b7169203331,chat,azure.ai.openai,gpt-4o-2024-08-06,claims-triage,,apim-contoso.azure-api.net,,,1200,300,1024,0,reported,ok,claims-bot,genai,2500",
            "b7ad6b7169203335,b7ad6b7169203331,chat,openai,gpt-4o-mini,claims-triage,,api.openai.com,,,400,50,,,reported,429,claims-bot,genai,600",
            "c7ad6b7169203331,,invoke_agent,,,hr-helper,,,,,,,,,none,ok,hr-helper,openinference,3000",
            "c7ad6b7169203332,c7ad6b7169203331,execute_tool,,,hr-helper,employee-search,,mssql,hr-employee-db,,,,,none,ok,hr-helper,openinference,100",
            "c7ad6b7169203333,c7ad6b7169203331,chat,azure,gpt-4o,hr-helper,,contoso-aoai.openai.azure.com,,,800,120,512,64,reported,ok,hr-helper,openinference,900",
            "d7ad6b7169203331,,invoke_agent,,,support-agent,,,,,,,,,none,ok,support-bot,openllmetry,2000",
            "d7ad6b7169203332,d7ad6b7169203331,chat,openai,gpt-4o-mini,support-agent,,apim-contoso.azure-api.net,,,90,40,,,estimated,ok,support-bot,openllmetry,800",
        ]
        .map(|row| format!("{row}\n"))
        .concat()
    );

    let quarantined: Vec<(i64, String)> = store
        .db
        .quarantined_lines(report.batch_id)
        .await
        .unwrap()
        .into_iter()
        .map(|q| (q.line_number, q.reason))
        .collect();
    assert_eq!(
        quarantined,
        [
            (
                4,
                "resourceSpans[0].scopeSpans[0].spans[0]: field `traceId`: 15 bytes, an id is 16"
                    .to_owned()
            ),
            (
                4,
                r#"resourceSpans[0].scopeSpans[0].spans[1]: attribute `gen_ai.usage.input_tokens`: "many" is not a whole count"#
                    .to_owned()
            ),
            (
                4,
                "field `gen_ai.usage.output_tokens`: negative value -5".to_owned()
            ),
        ]
    );
}

async fn a_resent_export_adds_nothing(store: TestStore) {
    let first_line = std::fs::read_to_string(sample("otlp-traces.jsonl")).unwrap();
    let first_line = first_line.lines().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let once = write(
        dir.path(),
        "once.jsonl",
        format!("{first_line}\n").as_bytes(),
    );
    let c = ingest_as(&store, &once, Format::Otlp).await.counts;
    assert_eq!((c.read, c.written, c.duplicate), (4, 4, 0));
    // An exporter's retry is new content with the same spans (here twice over).
    let again = write(
        dir.path(),
        "again.jsonl",
        format!("{first_line}\n{first_line}\n").as_bytes(),
    );
    let c = ingest_as(&store, &again, Format::Otlp).await.counts;
    assert_eq!((c.read, c.written, c.duplicate), (8, 0, 8));
    let rows = csv_of(&store, "SELECT COUNT(*) AS n FROM genai_spans").await;
    assert_eq!(rows, "n\n4\n");
}

async fn genai_client_histograms_become_token_metrics(store: TestStore) {
    let report = ingest_as(&store, &sample("otlp-metrics.jsonl"), Format::Auto).await;
    let c = report.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (4, 3, 0, 1)
    );
    let rows = csv_of(
        &store,
        "SELECT time, metric, value, value_count, operation, backend, model \
         FROM token_metrics ORDER BY metric",
    )
    .await;
    assert_eq!(
        rows,
        [
            "time,metric,value,value_count,operation,backend,model",
            "2026-10-05T14:01:00Z,completion,350.0,2,chat,apim-contoso.azure-api.net,gpt-4o",
            "2026-10-05T14:01:00Z,operation_duration_s_cumulative,3.1,2,chat,apim-contoso.azure-api.net,gpt-4o",
            "2026-10-05T14:01:00Z,prompt,1600.0,2,chat,apim-contoso.azure-api.net,gpt-4o",
        ]
        .map(|row| format!("{row}\n"))
        .concat()
    );
    let quarantined = store.db.quarantined_lines(report.batch_id).await.unwrap();
    assert_eq!(
        quarantined[0].reason,
        "resourceMetrics[0].scopeMetrics[0].metrics[3].dataPoints[0]: field `sum`: absent; a histogram point without a sum says no amount"
    );
}

async fn span_times_outside_the_window_are_quarantined(store: TestStore) {
    let text = std::fs::read_to_string(sample("otlp-traces.jsonl")).unwrap();
    let first_line = text.lines().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 1970, 2030 (past now + 24 h) and u64::MAX nanoseconds (the year 2554).
    for start in ["0", "1893456000000000000", "18446744073709551615"] {
        let moved = first_line.replace(
            "\"startTimeUnixNano\":\"17912",
            &format!("\"startTimeUnixNano\":\"{start}\",\"x\":\"17912"),
        );
        let path = write(
            dir.path(),
            &format!("{start}.jsonl"),
            format!("{moved}\n").as_bytes(),
        );
        let report = ingest_as(&store, &path, Format::Otlp).await;
        let c = report.counts;
        assert_eq!(
            (c.read, c.written, c.quarantined),
            (4, 0, 4),
            "{start}: {c:?}"
        );
        let reasons = store.db.quarantined_lines(report.batch_id).await.unwrap();
        assert!(
            reasons
                .iter()
                .all(|q| q.reason.contains("the accepted window")
                    || q.reason.contains("endTimeUnixNano")),
            "{start}: {:?}",
            reasons.iter().map(|q| &q.reason).collect::<Vec<_>>()
        );
    }
}
