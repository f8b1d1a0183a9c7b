//! One target per input parser: its seeds (real inputs) and what one input is
//! run through. A target fails on a panic, on an invariant an answer breaks
//! (an ingest whose counts do not reconcile), or when the caller's bounds on
//! time and memory are passed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tollgate_ingest::limits::Check;
use tollgate_ingest::{Dimensions, Format, IngestOptions, Limits, NoProgress};
use tollgate_lineage::Taxonomy;
use tollgate_reports::budgets::KnownScopes;
use tollgate_store::{Store, StoreConfig, TimeWindow};

/// The parsers fuzzed, by name.
pub const TARGETS: [&str; 17] = [
    "canonical",
    "apim",
    "kong",
    "litellm",
    "appinsights",
    "purview-dlp",
    "otlp",
    "ingest-file",
    "azure-cost",
    "openlineage",
    "catalog",
    "price-book",
    "budgets",
    "ownership",
    "backends",
    "ptu",
    "meters",
];

/// A meter map with every kind, and meter names in Azure's spellings.
const METER_MAP_SEED: &str = "meter,model,token_kind,deployment_type,unit
gpt-4o 0806 Inp glbl 1M Tokens,gpt-4o,input,GlobalStandard,1M
gpt 4o mini 0718 cchd Inp DZone 1M Tokens,gpt-4o-mini,cached_input,DataZoneStandard,1M
o3-mini 0131 Outp glbl Batch 1K Tokens,o3-mini,output,GlobalBatch,1K
Provisioned Managed Unit,,provisioned_hour,ProvisionedManaged,1
";

/// What the targets run against: the seeds' directory and, for the ingest
/// target, a store.
pub struct Harness {
    samples: PathBuf,
    reference: PathBuf,
    _dir: tempfile::TempDir,
    store: Option<(tokio::runtime::Runtime, Store)>,
    check: Check,
    taxonomy: Taxonomy,
    known: KnownScopes,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

impl Harness {
    /// Generates a small month's reference files for seeds, and a store for
    /// the ingest target.
    pub fn new(target: &str) -> Result<Harness, String> {
        let dir = tempfile::tempdir().map_err(|e| failed("temporary directory", e))?;
        let out = dir.path().join("estate");
        tollgate_fixtures::generate(&tollgate_fixtures::GenerateOptions {
            year: 2026,
            month: 10,
            requests: 300,
            seed: 7,
            traffic_seed: None,
            until: None,
            out: out.clone(),
            scale: Default::default(),
        })
        .map_err(|e| failed("generating seeds", e))?;
        let store = if matches!(target, "ingest-file" | "azure-cost") {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| failed("runtime", e))?;
            let config = StoreConfig {
                clock: tollgate_store::Clock::fixed(fuzz_now()),
                ..StoreConfig::embedded(dir.path().join("data"))
            };
            let store = runtime
                .block_on(Store::open(&config))
                .map_err(|e| failed("store", e))?;
            Some((runtime, store))
        } else {
            None
        };
        let known = KnownScopes {
            subscriptions: BTreeSet::from(["sub-finance-gold".to_owned()]),
            ..KnownScopes::default()
        };
        Ok(Harness {
            samples: Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/samples"),
            reference: out.join("reference"),
            _dir: dir,
            store,
            check: Check {
                limits: Limits::default(),
                window: TimeWindow::default(),
                now: fuzz_now(),
            },
            taxonomy: Taxonomy::default(),
            known,
        })
    }

    fn sample(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.samples.join(name)).unwrap_or_default()
    }

    fn reference(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.reference.join(name)).unwrap_or_default()
    }

    /// Real inputs for `target` to start from.
    pub fn seeds(&self, target: &str) -> Vec<Vec<u8>> {
        let lines_of = |names: &[&str]| -> Vec<Vec<u8>> {
            names
                .iter()
                .flat_map(|n| json_records(&self.sample(n)))
                .collect()
        };
        let seeds = match target {
            "canonical" => lines_of(&["canonical-small.jsonl"]),
            "apim" => lines_of(&[
                "apim-gateway-logs.jsonl",
                "apim-llm-logs.json",
                "apim-la-llm-logs.json",
            ]),
            "kong" => lines_of(&["kong-ai-logs.jsonl"]),
            "litellm" => lines_of(&["litellm-spend-logs.json"]),
            "appinsights" => lines_of(&["appinsights-token-metrics.json"]),
            "purview-dlp" => lines_of(&["purview-dlp-events.jsonl"]),
            "otlp" => lines_of(&["otlp-traces.jsonl", "otlp-metrics.jsonl"]),
            "ingest-file" => std::fs::read_dir(&self.samples)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter_map(|e| std::fs::read(e.path()).ok())
                        .collect()
                })
                .unwrap_or_default(),
            "azure-cost" => vec![
                self.sample("reconcile/focus-costs.csv"),
                self.sample("reconcile/cost-details.csv"),
            ],
            "meters" => vec![METER_MAP_SEED.as_bytes().to_vec()],
            "openlineage" => OPENLINEAGE_SEEDS
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            "catalog" => vec![self.reference("catalog.yaml")],
            "price-book" => vec![self.reference("prices.csv")],
            "budgets" => vec![self.reference("budgets.toml")],
            "ownership" => vec![self.reference("ownership.toml")],
            "backends" => vec![self.reference("backends.csv")],
            "ptu" => vec![self.reference("ptu-reservations.csv")],
            _ => Vec::new(),
        };
        seeds.into_iter().filter(|s| !s.is_empty()).collect()
    }

    /// Runs one input through `target`; `Err` is a broken invariant.
    pub fn run(&self, target: &str, input: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(input);
        let path = Path::new("fuzz-input");
        match target {
            "canonical" => self.adapter(Format::Canonical, input),
            "apim" => self.adapter(Format::Apim, input),
            "kong" => self.adapter(Format::Kong, input),
            "litellm" => self.adapter(Format::LiteLlm, input),
            "appinsights" => self.adapter(Format::AppInsights, input),
            "purview-dlp" => self.adapter(Format::PurviewDlp, input),
            "otlp" => self.adapter(Format::Otlp, input),
            "ingest-file" => self.ingest(Format::Auto, input),
            "azure-cost" => self.ingest(Format::AzureCost, input),
            "meters" => {
                let _ = tollgate_reports::meter::parse_meter_map(path, &text);
                for line in text.lines() {
                    let _ = tollgate_reports::meter::parse_meter_name(line);
                    let _ = tollgate_reports::meter::unit_size(line);
                }
                Ok(())
            }
            "openlineage" => {
                if let Ok(value) = serde_json::from_slice::<Value>(input) {
                    let events = match value {
                        Value::Array(events) => events,
                        one => vec![one],
                    };
                    let _ = tollgate_lineage::parse_events(&events, "fuzz", &self.taxonomy);
                }
                Ok(())
            }
            "catalog" => {
                let _ = tollgate_lineage::parse_catalog(&text, "fuzz", &self.taxonomy);
                Ok(())
            }
            "price-book" => {
                let _ = tollgate_reports::price_book::parse(path, &text);
                Ok(())
            }
            "budgets" => {
                let _ = tollgate_reports::budgets::parse(path, &text, &self.known);
                Ok(())
            }
            "ownership" => {
                let _ = tollgate_reports::ownership::parse(path, &text);
                Ok(())
            }
            "backends" => {
                let _ = tollgate_reports::capacity::parse_backends(path, &text);
                Ok(())
            }
            "ptu" => {
                let _ = tollgate_reports::capacity::parse_ptu(path, &text);
                Ok(())
            }
            other => Err(format!("unknown target {other:?}")),
        }
    }

    /// One line through an adapter, then through the bounds every record is
    /// held to.
    fn adapter(&self, format: Format, line: &[u8]) -> Result<(), String> {
        let mut out = Vec::new();
        format.parse_line(line, &Dimensions::default(), &mut out);
        for record in out.into_iter().flatten() {
            if let Ok(record) = self.check.record(record)
                && let Some(r) = &record.request
                && r.request_id.len() > self.check.limits.max_id_bytes
            {
                return Err("a record past the id bound was accepted".into());
            }
        }
        Ok(())
    }

    /// A whole file (plain, or gzip when its first byte is odd) through the
    /// ingest pipeline: its counts must reconcile whatever it held.
    fn ingest(&self, format: Format, input: &[u8]) -> Result<(), String> {
        let Some((runtime, store)) = &self.store else {
            return Err("no store".into());
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, input);
        let dir = store.data_dir.join("fuzz-inputs");
        std::fs::create_dir_all(&dir).map_err(|e| failed("input directory", e))?;
        let path = dir.join(hex::encode(&digest.as_ref()[..8]));
        let bytes = if input.first().is_some_and(|b| b % 2 == 1) {
            gzip(input)
        } else {
            input.to_vec()
        };
        std::fs::write(&path, bytes).map_err(|e| failed("input file", e))?;
        let options = IngestOptions {
            format,
            limits: Limits {
                max_record_bytes: 1 << 20,
                max_document_bytes: 1 << 20,
                max_content_bytes: 8 << 20,
                max_quarantine_rows: 50,
                ..Limits::default()
            },
            ..IngestOptions::default()
        };
        let outcome = runtime.block_on(tollgate_ingest::ingest_file(
            store,
            &path,
            &options,
            Arc::new(NoProgress),
        ));
        let _ = std::fs::remove_file(&path);
        match outcome {
            Ok(report) if !report.counts.reconciles() => {
                Err(format!("counts do not reconcile: {:?}", report.counts))
            }
            _ => Ok(()),
        }
    }
}

/// The wall clock a run says, fixed: an input's outcome is the same whenever
/// its seed is run again.
fn fuzz_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_796_083_200, 0).unwrap_or_default() // 2026-12-01
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// A sample's records, one JSON value each (lines, or a document's array or
/// envelope elements).
fn json_records(content: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(content);
    if let Ok(doc) = serde_json::from_str::<Value>(&text) {
        return tollgate_ingest::document::document_records(doc)
            .into_iter()
            .map(|v| v.to_string().into_bytes())
            .collect();
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

const OPENLINEAGE_SEEDS: [&str; 3] = [
    r#"{"eventType":"COMPLETE","eventTime":"2026-10-14T10:00:00+02:00","producer":"https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent","run":{"runId":"0192f6a4-8d1e-7c3a-9b2f-3d4e5f6a7b8c"},"job":{"namespace":"contoso","name":"claims-triage","facets":{"jobType":{"processingType":"SERVICE","integration":"CUSTOM","jobType":"AGENT"}}},"inputs":[{"namespace":"postgres://claims:5432","name":"claims.public.policies","facets":{"tags":{"tags":[{"key":"sensitivity","value":"Highly Confidential"}]}}}],"outputs":[{"namespace":"s3://reports","name":"triage/summary"}]}"#,
    r#"{"eventTime":"2026-10-14T10:00:00Z","producer":"p","schemaURL":"s","job":{"namespace":"n","name":"lookup","facets":{"jobType":{"jobType":"mcp_tool"}}},"inputs":[{"namespace":"n","name":"db"}]}"#,
    r#"[{"eventTime":"2026-10-14T10:00:00Z","producer":"p","schemaURL":"s","dataset":{"namespace":"n","name":"lake","facets":{"tags":{"tags":[{"key":"owner","value":"x"},{"key":"Sensitivity","value":"Confidential\\Finance"}]}}}}]"#,
];
