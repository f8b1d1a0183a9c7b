//! Rollups are the same whichever order the two APIM categories arrive in, the
//! same as a rebuild from the lake, and agree with the raw rows they summarise.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tollgate_ingest::{Format, IngestOptions, NoProgress, ingest_file};
use tollgate_store::Store;
use tollgate_store::sketch::LatencySketch;
use tollgate_store::state::RollupRow;
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(
    tool_calls_add_up_file_by_file_to_the_whole_lake,
    rollups_do_not_depend_on_arrival_order,
    an_llm_row_pairs_with_its_request_within_an_hour,
    rollups_are_parquet_in_the_lake_one_file_per_hour
);

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

async fn ingest_all(store: &Store, files: &[PathBuf]) {
    for f in files {
        let options = IngestOptions {
            format: Format::Apim,
            ..IngestOptions::default()
        };
        let report = ingest_file(store, f, &options, Arc::new(NoProgress))
            .await
            .unwrap();
        assert_eq!(report.counts.quarantined, 0, "{report}");
        assert!(report.counts.written > 0, "{report}");
    }
}

async fn all_rollups(store: &Store) -> Vec<RollupRow> {
    let mut rows: Vec<RollupRow> = store
        .rollups(i64::MIN, i64::MAX)
        .await
        .unwrap()
        .iter()
        .cloned()
        .collect();
    rows.sort_by(|a, b| format!("{:?}", a.usage).cmp(&format!("{:?}", b.usage)));
    rows
}

/// The observed tool -> agent calls are added to as files are committed; after
/// any number of batches they are what one query over the whole lake says.
async fn tool_calls_add_up_file_by_file_to_the_whole_lake(store: TestStore) {
    let out = store.dir.path().join("month");
    tollgate_fixtures::generate(&tollgate_fixtures::GenerateOptions {
        year: 2026,
        month: 10,
        requests: 2_000,
        seed: 11,
        traffic_seed: None,
        until: None,
        out: out.clone(),
        scale: Default::default(),
    })
    .unwrap();
    let gateway = files(&out.join("gateway-logs"));
    let (first, rest) = gateway.split_at(gateway.len() / 2);
    ingest_all(&store, first).await;
    let early = store.tool_calls().await.unwrap();
    assert!(!early.is_empty(), "the generator's agents call tools");
    ingest_all(&store, rest).await;
    let calls = store.tool_calls().await.unwrap();
    let whole = store
        .sql_read_only(
            "SELECT tool, agent, COUNT(*), CAST(MIN(time) AS BIGINT), CAST(MAX(time) AS BIGINT) \
             FROM requests WHERE tool IS NOT NULL AND agent IS NOT NULL \
             GROUP BY tool, agent ORDER BY tool, agent",
        )
        .await
        .unwrap();
    let mut expected = Vec::new();
    for batch in &whole.batches {
        let text = |i: usize| {
            arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8).unwrap()
        };
        let int = |i: usize| {
            arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Int64).unwrap()
        };
        let (tool, agent, n, lo, hi) = (text(0), text(1), int(2), int(3), int(4));
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;
        for row in 0..batch.num_rows() {
            expected.push(tollgate_store::state::ToolCalls {
                tool: tool.as_string::<i32>().value(row).to_owned(),
                agent: agent.as_string::<i32>().value(row).to_owned(),
                calls: n.as_primitive::<Int64Type>().value(row),
                first_us: lo.as_primitive::<Int64Type>().value(row),
                last_us: hi.as_primitive::<Int64Type>().value(row),
            });
        }
    }
    assert_eq!(calls, expected);
    assert!(
        calls.iter().map(|c| c.calls).sum::<i64>() > early.iter().map(|c| c.calls).sum::<i64>()
    );
}

async fn rollups_do_not_depend_on_arrival_order(store: TestStore) {
    let out = store.dir.path().join("month");
    tollgate_fixtures::generate(&tollgate_fixtures::GenerateOptions {
        year: 2026,
        month: 10,
        requests: 3_000,
        seed: 7,
        traffic_seed: None,
        until: None,
        out: out.clone(),
        scale: Default::default(),
    })
    .unwrap();
    let (gateway, llm) = (
        files(&out.join("gateway-logs")),
        files(&out.join("llm-logs")),
    );

    // LLM rows first: each request's tokens are rolled up when the request comes.
    ingest_all(&store, &llm).await;
    assert!(all_rollups(&store).await.is_empty(), "no request yet");
    ingest_all(&store, &gateway).await;
    assert!(store.db.pending_rollup_batches().await.unwrap().is_empty());
    let llm_first = all_rollups(&store).await;

    let other = TestStore::sqlite().await;
    ingest_all(&other, &gateway).await;
    ingest_all(&other, &llm).await;
    assert_eq!(all_rollups(&other).await, llm_first, "requests first");

    let rebuilt = store.rebuild_rollups(&|_, _| {}).await.unwrap();
    assert!(rebuilt.hours > 24 * 30 && rebuilt.rows > 0, "{rebuilt:?}");
    assert_eq!(
        all_rollups(&store).await,
        llm_first,
        "rebuilt from the lake"
    );

    // The rollups add up to the raw rows.
    let raw = store
        .sql_read_only(
            "SELECT COUNT(*), SUM(COALESCE(prompt_tokens, 0)), SUM(COALESCE(completion_tokens, 0)), \
             SUM(CASE WHEN status_code = 429 AND backend_status_code IS NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN backend_status_code = 429 THEN 1 ELSE 0 END) FROM usage",
        )
        .await
        .unwrap();
    let value = |i: usize| {
        let column =
            arrow::compute::cast(raw.batches[0].column(i), &arrow::datatypes::DataType::Int64)
                .unwrap();
        arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(&column).value(0)
    };
    let sum = |pick: fn(&RollupRow) -> i64| llm_first.iter().map(pick).sum::<i64>();
    assert_eq!(sum(|r| r.usage.requests), value(0));
    assert_eq!(sum(|r| r.usage.requests), 3_000);
    assert_eq!(sum(|r| r.usage.prompt_tokens), value(1));
    assert_eq!(sum(|r| r.usage.completion_tokens), value(2));
    assert_eq!(sum(|r| r.client_429), value(3));
    assert!(
        sum(|r| r.client_429) > 0,
        "the generator's sandbox throttling"
    );
    assert_eq!(sum(|r| r.backend_429), value(4));
    let classes = sum(|r| r.status_2xx + r.status_3xx + r.status_4xx + r.status_5xx);
    assert_eq!(classes, 3_000);

    // Merged sketches give the month's p95 within 1% of the exact one.
    let mut sketch = LatencySketch::new();
    for r in &llm_first {
        sketch.merge(&LatencySketch::decode(&r.latency_sketch).unwrap());
    }
    let exact = store
        .sql_read_only("SELECT total_latency_ms FROM requests WHERE total_latency_ms IS NOT NULL ORDER BY total_latency_ms")
        .await
        .unwrap();
    let latencies: Vec<f64> = exact
        .batches
        .iter()
        .flat_map(|b| {
            let column =
                arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Float64).unwrap();
            arrow::array::AsArray::as_primitive::<arrow::datatypes::Float64Type>(&column)
                .values()
                .to_vec()
        })
        .collect();
    let p95 = latencies[(0.95 * (latencies.len() - 1) as f64).floor() as usize];
    let estimate = sketch.quantile(0.95).unwrap();
    assert!(
        (estimate - p95).abs() <= p95 * 0.01,
        "p95 {estimate} vs {p95}"
    );
}

async fn an_llm_row_pairs_with_its_request_within_an_hour(store: TestStore) {
    let gateway = |id: &str| {
        format!(
            r#"{{"time":"2026-10-02T08:00:00Z","category":"GatewayLogs","correlationId":"{id}","properties":{{"responseCode":200,"apimSubscriptionId":"sub-1","backendId":"b1"}}}}"#
        )
    };
    let llm = |id: &str, time: &str, prompt: u32| {
        format!(
            r#"{{"Time":"{time}","Category":"GatewayLlmLogs","Properties":{{"CorrelationId":"{id}","ModelName":"gpt-4o","PromptTokens":{prompt},"CompletionTokens":1,"SequenceNumber":0}}}}"#
        )
    };
    let dir = store.dir.path();
    std::fs::write(
        dir.join("g.json"),
        [gateway("near"), gateway("far")].join("\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("l.json"),
        [
            llm("near", "2026-10-02T08:40:00Z", 100),
            llm("far", "2026-10-02T10:30:00Z", 7000),
        ]
        .join("\n"),
    )
    .unwrap();
    ingest_all(&store, &[dir.join("l.json"), dir.join("g.json")]).await;
    let after_ingest = all_rollups(&store).await;
    let prompt: i64 = after_ingest.iter().map(|r| r.usage.prompt_tokens).sum();
    assert_eq!(
        prompt, 100,
        "only the LLM row within an hour of its request"
    );
    // The same whatever window computed it.
    store.rebuild_rollups(&|_, _| {}).await.unwrap();
    assert_eq!(all_rollups(&store).await, after_ingest);
}

/// The rollup files under `lake/derived/<tier>`, relative to the lake root.
fn derived_files(store: &Store, tier: &str) -> Vec<String> {
    let root = store.lake.local_root().unwrap().to_owned();
    let mut found = Vec::new();
    let dir = root.join("derived").join(tier);
    for day in std::fs::read_dir(&dir).into_iter().flatten() {
        for file in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            found.push(path.strip_prefix(&root).unwrap().display().to_string());
        }
    }
    found.sort();
    found
}

async fn rollups_are_parquet_in_the_lake_one_file_per_hour(store: TestStore) {
    let line = |id: &str, time: &str| {
        format!(
            r#"{{"time":"{time}","category":"GatewayLogs","correlationId":"{id}","properties":{{"responseCode":200,"apimSubscriptionId":"sub-1","backendId":"b1"}}}}"#
        )
    };
    let dir = store.dir.path();
    // Two hours, then a second file into the first of them.
    std::fs::write(
        dir.join("a.json"),
        [
            line("a", "2026-10-02T08:10:00Z"),
            line("b", "2026-10-02T09:10:00Z"),
        ]
        .join("\n"),
    )
    .unwrap();
    std::fs::write(dir.join("b.json"), line("c", "2026-10-02T08:20:00Z")).unwrap();
    ingest_all(&store, &[dir.join("a.json")]).await;
    let first = derived_files(&store, "rollup_hourly");
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first[0].starts_with("derived/rollup_hourly/date=2026-10-02/08-"),
        "{first:?}"
    );

    ingest_all(&store, &[dir.join("b.json")]).await;
    let second = derived_files(&store, "rollup_hourly");
    assert_eq!(second.len(), 2, "the replaced file is gone: {second:?}");
    assert_ne!(second[0], first[0], "hour 08 was written again");
    assert_eq!(second[1], first[1], "hour 09 was not touched");
    let requests: Vec<i64> = all_rollups(&store)
        .await
        .iter()
        .map(|r| r.usage.requests)
        .collect();
    assert_eq!(requests.iter().sum::<i64>(), 3);

    // The files are plain Parquet, which SQL reads as the table `rollup_hourly`.
    let total = store
        .sql_read_only("SELECT CAST(SUM(requests) AS BIGINT), COUNT(*) FROM rollup_hourly")
        .await
        .unwrap();
    let column = |i: usize| {
        arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(
            total.batches[0].column(i),
        )
        .value(0)
    };
    assert_eq!((column(0), column(1)), (3, 2));

    // A rollup file nothing names (a crash between writing it and naming it)
    // is garbage; the named ones are not.
    let orphan = store
        .lake
        .local_root()
        .unwrap()
        .join("derived/rollup_hourly/date=2026-10-02/07-orphan.parquet");
    std::fs::copy(store.lake.local_root().unwrap().join(&second[1]), &orphan).unwrap();
    let gc = store.gc(std::time::Duration::ZERO).await.unwrap();
    assert_eq!(gc.files_removed, 1, "{gc:?}");
    assert!(!orphan.exists());
    assert_eq!(derived_files(&store, "rollup_hourly"), second);
    assert_eq!(all_rollups(&store).await.len(), 2);

    // A rebuild writes every hour again, to the same rows.
    let before = all_rollups(&store).await;
    store.rebuild_rollups(&|_, _| {}).await.unwrap();
    assert_eq!(all_rollups(&store).await, before);
    assert_eq!(derived_files(&store, "rollup_hourly").len(), 2);
}
