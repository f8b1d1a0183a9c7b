use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use tollgate_ingest::{IngestOptions, IngestReport, NoProgress, Result, ingest_file};
use tollgate_store::Store;

/// A canonical line for request `id` at `time`, with tokens.
pub fn line(id: &str, time: &str) -> String {
    format!(
        r#"{{"request_id":"{id}","time":"{time}","status_code":200,"subscription":"sub-a","deployment":"gpt-4o","model":"gpt-4o","prompt_tokens":10,"cached_tokens":2,"completion_tokens":5}}"#
    )
}

pub fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(contents))
        .expect("write test input");
    path
}

pub fn lines(items: &[String]) -> Vec<u8> {
    let mut out = items.join("\n").into_bytes();
    out.push(b'\n');
    out
}

/// Ingests a file in `format`; the report, or the test fails.
pub async fn ingest_as(
    store: &Store,
    path: &Path,
    format: tollgate_ingest::Format,
) -> IngestReport {
    let options = IngestOptions {
        format,
        ..IngestOptions::default()
    };
    ingest_file(store, path, &options, Arc::new(NoProgress))
        .await
        .unwrap()
}

pub async fn ingest(store: &Store, path: &Path) -> Result<IngestReport> {
    ingest_file(store, path, &IngestOptions::default(), Arc::new(NoProgress)).await
}

/// Runs a query returning one integer.
pub async fn scalar(store: &Store, sql: &str) -> i64 {
    let result = store.sql_read_only(sql).await.expect("query");
    let batch = result.batches.first().expect("one batch");
    let column = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("an integer column");
    assert!(!column.is_null(0), "{sql} returned NULL");
    column.value(0)
}

pub async fn request_rows(store: &Store) -> i64 {
    scalar(store, "SELECT COUNT(*) FROM requests").await
}

pub fn sample_path() -> PathBuf {
    sample("canonical-small.jsonl")
}

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/samples")
        .join(name)
}

/// A query's result as CSV text: exact rows, easy to compare and to read.
pub async fn csv_of(store: &Store, sql: &str) -> String {
    let result = store.sql_read_only(sql).await.expect("query");
    let mut csv = Vec::new();
    tollgate_store::output::write_batches(
        tollgate_store::output::OutputFormat::Csv,
        &result.schema,
        &result.batches,
        &mut csv,
    )
    .expect("CSV output");
    String::from_utf8(csv).expect("UTF-8 CSV")
}

/// Every sample, with the format it is in.
pub const SAMPLES: [(&str, tollgate_ingest::Format); 13] = [
    ("canonical-small.jsonl", tollgate_ingest::Format::Canonical),
    ("apim-gateway-logs.jsonl", tollgate_ingest::Format::Apim),
    ("apim-llm-logs.json", tollgate_ingest::Format::Apim),
    ("apim-la-gateway-logs.csv", tollgate_ingest::Format::Apim),
    ("apim-la-llm-logs.json", tollgate_ingest::Format::Apim),
    ("kong-ai-logs.jsonl", tollgate_ingest::Format::Kong),
    ("litellm-spend-logs.csv", tollgate_ingest::Format::LiteLlm),
    ("litellm-spend-logs.json", tollgate_ingest::Format::LiteLlm),
    (
        "appinsights-token-metrics.csv",
        tollgate_ingest::Format::AppInsights,
    ),
    (
        "appinsights-token-metrics.json",
        tollgate_ingest::Format::AppInsights,
    ),
    (
        "purview-dlp-events.jsonl",
        tollgate_ingest::Format::PurviewDlp,
    ),
    (
        "reconcile/focus-costs.csv",
        tollgate_ingest::Format::AzureCost,
    ),
    (
        "reconcile/cost-details.csv",
        tollgate_ingest::Format::AzureCost,
    ),
];
