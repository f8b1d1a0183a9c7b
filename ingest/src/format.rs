//! The input formats Tollgate reads.

use crate::record::Record;
use serde_json::Value;

use crate::dimensions::Dimensions;
use crate::{IngestError, apim, appinsights, canonical, cost, dlp, kong, litellm, otel};

/// The first bytes of every Parquet file.
pub const PARQUET_MAGIC: &[u8] = b"PAR1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tollgate's own JSON lines, one object per request (`docs/canonical-format.md`).
    Canonical,
    /// Azure API Management diagnostic export (`GatewayLogs`, `GatewayLlmLogs`).
    Apim,
    /// Kong AI Gateway file-log / http-log entries.
    Kong,
    /// LiteLLM spend logs (`LiteLLM_SpendLogs`): JSON lines, a JSON array or CSV.
    LiteLlm,
    /// Application Insights `customMetrics` token metrics (pre-aggregated).
    AppInsights,
    /// DLP events modelled on Purview DLP alerts (`docs/dlp-events.md`).
    PurviewDlp,
    /// OpenTelemetry OTLP JSON lines, one export request per line (the
    /// Collector's file exporter; what the OTLP/HTTP receiver spools).
    Otlp,
    /// A provider's cost export: Azure Cost Management's FOCUS or classic
    /// cost-details export, CSV (plain or gzip) or Parquet (`docs/reconciliation.md`).
    AzureCost,
    /// Recognise the format from the content ([`Format::detect`]); resolved before
    /// a batch begins, so a batch always records a concrete format.
    Auto,
}

impl Format {
    pub const ALL: [Format; 8] = [
        Format::Canonical,
        Format::Apim,
        Format::Kong,
        Format::LiteLlm,
        Format::AppInsights,
        Format::PurviewDlp,
        Format::Otlp,
        Format::AzureCost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Canonical => "canonical",
            Format::Apim => "apim",
            Format::Kong => "kong",
            Format::LiteLlm => "litellm",
            Format::AppInsights => "appinsights",
            Format::PurviewDlp => "purview-dlp",
            Format::Otlp => "otlp",
            Format::AzureCost => "azure-cost",
            Format::Auto => "auto",
        }
    }

    /// Recognises a concrete format from the first bytes of the (decompressed)
    /// content, by the keys or CSV header each format always has.
    pub fn detect(head: &[u8]) -> Option<Format> {
        if head.starts_with(PARQUET_MAGIC) {
            // Of the formats, only cost exports come as Parquet.
            return Some(Format::AzureCost);
        }
        let head = String::from_utf8_lossy(head);
        let text = head.trim_start_matches('\u{feff}').trim_start();
        let has = |key: &str| text.contains(&format!("\"{key}\""));
        if text.starts_with('{') || text.starts_with('[') {
            if has("resourceSpans") || has("resourceMetrics") {
                Some(Format::Otlp)
            } else if has("customDimensions") && has("name") && text.contains(" Tokens\"") {
                Some(Format::AppInsights)
            } else if has("records")
                && (text.contains("GatewayLogs") || text.contains("GatewayLlmLog"))
                || (has("category") || has("Category")) && text.contains("GatewayL")
                || has("TimeGenerated") && has("CorrelationId")
            {
                Some(Format::Apim)
            } else if has("request_id") && has("startTime") {
                Some(Format::LiteLlm)
            } else if has("started_at") && has("request") && (has("latencies") || has("ai")) {
                Some(Format::Kong)
            } else if (has("PolicyName") || has("policy"))
                && (has("SensitiveInfoTypes") || has("Severity") || has("severity"))
                && (has("Action") || has("Actions") || has("action") || has("actions"))
            {
                Some(Format::PurviewDlp)
            } else if has("request_id") && has("time") && has("status_code") {
                Some(Format::Canonical)
            } else {
                None
            }
        } else {
            let header: Vec<&str> = text
                .lines()
                .next()?
                .split(',')
                .map(|c| c.trim_matches('"'))
                .collect();
            let column = |name: &str| {
                header
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(name) || c.strip_suffix(" [UTC]") == Some(name))
            };
            if column("BilledCost") && column("ChargePeriodStart")
                || column("CostInBillingCurrency") && column("MeterName")
            {
                Some(Format::AzureCost)
            } else if column("customDimensions") && column("name") {
                Some(Format::AppInsights)
            } else if column("request_id") && column("startTime") {
                Some(Format::LiteLlm)
            } else if column("CorrelationId") && column("TimeGenerated") {
                Some(Format::Apim)
            } else {
                None
            }
        }
    }

    /// [`Format::detect`] on content that may be gzip: its first 64 KiB,
    /// decompressed (a truncated stream still shows its head).
    pub fn detect_content(bytes: &[u8]) -> Option<Format> {
        use std::io::Read;
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            return Format::detect(&bytes[..bytes.len().min(64 << 10)]);
        }
        let mut head = Vec::new();
        let mut decoder = flate2::read::MultiGzDecoder::new(bytes).take(64 << 10);
        let mut chunk = [0u8; 8192];
        loop {
            match decoder.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        Format::detect(&head)
    }

    /// Whether the format also comes as a whole document (CSV, a JSON array), as
    /// database and query exports do.
    pub fn reads_documents(self) -> bool {
        matches!(
            self,
            Format::LiteLlm | Format::Apim | Format::AppInsights | Format::Kong | Format::AzureCost
        )
    }

    /// Whether a line may hold no record of ours: an OTLP export whose spans
    /// are none of them model, tool or agent spans.
    pub fn may_hold_no_records(self) -> bool {
        self == Format::Otlp
    }

    /// Parses one line into its records, each a [`Record`] or the reason to
    /// quarantine it. A line holds one record, or several in an envelope.
    pub fn parse_line(
        self,
        bytes: &[u8],
        dims: &Dimensions,
        out: &mut Vec<Result<Record, String>>,
    ) {
        match self {
            Format::Canonical => out.push(canonical::parse_line(bytes)),
            Format::Otlp => match otel::Export::from_json(bytes) {
                Ok(export) => export.records(out),
                Err(e) => out.push(Err(e)),
            },
            Format::Apim if apim::parse_line_typed(bytes, dims, out) => {}
            _ => match serde_json::from_slice::<Value>(bytes) {
                Ok(value) => self.parse_value(&value, dims, out),
                Err(e) => out.push(Err(format!("broken JSON: {e}"))),
            },
        }
    }

    /// Parses one JSON value (a line, an array element, a CSV row as an object)
    /// into its records, filling dimensions from the raw record.
    pub fn parse_value(
        self,
        value: &Value,
        dims: &Dimensions,
        out: &mut Vec<Result<Record, String>>,
    ) {
        let (elements, enveloped) = match value {
            // A batch (Kong's http-log sends arrays once batching is on).
            Value::Array(items) => (items.iter().collect(), true),
            _ if self == Format::Apim => match apim::records(value) {
                Ok(found) => found,
                Err(e) => return out.push(Err(e)),
            },
            _ => (vec![value], false),
        };
        for (i, element) in elements.into_iter().enumerate() {
            let item = self.parse_record(element).map(|mut record| {
                dims.apply(element, &mut record);
                record
            });
            out.push(match enveloped {
                true => item.map_err(|e| format!("record {}: {e}", i + 1)),
                false => item,
            });
        }
    }

    fn parse_record(self, value: &Value) -> Result<Record, String> {
        match self {
            Format::Apim => apim::parse_value(value),
            Format::Kong => kong::parse_value(value),
            Format::LiteLlm => litellm::parse_value(value),
            Format::AppInsights => appinsights::parse_value(value),
            Format::PurviewDlp => dlp::parse_value(value),
            Format::AzureCost => cost::parse_value(value),
            Format::Canonical => Err("canonical input is JSON lines only".to_owned()),
            Format::Otlp => Err("OTLP input is JSON lines only".to_owned()),
            Format::Auto => Err("the format was not resolved".to_owned()),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = IngestError;
    fn from_str(s: &str) -> Result<Self, IngestError> {
        if s == Format::Auto.name() {
            return Ok(Format::Auto);
        }
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| IngestError::UnknownFormat {
                given: s.to_owned(),
                known: format!("{}, or auto", Format::ALL.map(Format::name).join(", ")),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlp_events_are_recognised_by_their_policy_severity_and_action() {
        let purview = br#"{"CreationTime":"2026-10-05T14:03:27Z","PolicyName":"P","Severity":"High","Action":"Block"}"#;
        let lower = br#"{"time":"2026-10-05T14:03:27Z","policy":"P","severity":"high","actions":["audit"],"request_id":"r"}"#;
        assert_eq!(Format::detect(purview), Some(Format::PurviewDlp));
        assert_eq!(Format::detect(lower), Some(Format::PurviewDlp));
        // A canonical request that merely mentions a policy is still a request.
        let request = br#"{"request_id":"r","time":"2026-10-05T14:03:27Z","status_code":403,"error_source":"policy"}"#;
        assert_eq!(Format::detect(request), Some(Format::Canonical));
    }

    #[test]
    fn a_batch_array_is_one_record_per_entry() {
        let line = br#"[{"request":{"id":"k-1"},"response":{"status":200},"started_at":1790845200000},{"request":{"id":"k-2"},"response":{"status":429},"started_at":1790845201000},{"request":{}}]"#;
        let mut out = Vec::new();
        Format::Kong.parse_line(line, &Dimensions::default(), &mut out);
        assert_eq!(out.len(), 3);
        assert!(out[0].is_ok() && out[1].is_ok());
        assert!(
            out[2]
                .as_ref()
                .unwrap_err()
                .starts_with("record 3: missing field `request.id`")
        );
    }
}
