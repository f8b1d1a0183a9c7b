//! OpenTelemetry onto Tollgate's tables (`docs/otel.md`): an OTLP trace export
//! becomes one `genai_spans` row per model, tool or agent span; a metrics export
//! becomes `token_metrics` rows from the GenAI client histograms.
//!
//! The same export arrives as protobuf or JSON over OTLP/HTTP (the server
//! decodes it and spools it as one OTLP JSON line) or as a line of the
//! Collector's file exporter (`tollgate ingest --format otlp`). Instrumentations
//! in the wild write three families of attribute names; each family's names are
//! written once, as a table ([`GENAI`], [`OPENLLMETRY`], [`OPENINFERENCE`]).
//! Spans that are none of these (HTTP servers, database clients) are not rows,
//! but they still link a span to its agent (through parents) and a tool to the
//! data it read (a database or HTTP client span under a tool span).

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Any};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, ResourceMetrics, metric,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, status::StatusCode};

use crate::record::{MetricRecord, Record};
use crate::span::{Convention, SpanRecord, SpanTokens, TokenCounts};

/// One OTLP export request.
#[derive(Debug, Clone, PartialEq)]
pub enum Export {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

impl Export {
    /// A line of OTLP JSON (`{"resourceSpans": [...]}` or
    /// `{"resourceMetrics": [...]}`), as the OTLP/HTTP JSON encoding and the
    /// Collector's file exporter write it.
    /// Which export it is comes from its top-level key, read in the one
    /// parse, never from a search of the text (a span attribute may hold the
    /// other key's name).
    pub fn from_json(bytes: &[u8]) -> Result<Export, String> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct AnyExport {
            resource_spans: Option<Vec<ResourceSpans>>,
            resource_metrics: Option<Vec<ResourceMetrics>>,
            resource_logs: Option<serde::de::IgnoredAny>,
        }
        let export: AnyExport =
            serde_json::from_slice(bytes).map_err(|e| format!("not OTLP JSON: {e}"))?;
        match (export.resource_spans, export.resource_metrics) {
            (Some(resource_spans), None) => {
                Ok(Export::Traces(ExportTraceServiceRequest { resource_spans }))
            }
            (None, Some(resource_metrics)) => Ok(Export::Metrics(ExportMetricsServiceRequest {
                resource_metrics,
            })),
            (Some(_), Some(_)) => {
                Err("not OTLP JSON: both resourceSpans and resourceMetrics".to_owned())
            }
            (None, None) if export.resource_logs.is_some() => {
                Err("OTLP logs are not read: only traces and metrics".to_owned())
            }
            (None, None) => Err("not OTLP JSON: no resourceSpans or resourceMetrics".to_owned()),
        }
    }

    /// Whether the export holds no span and no data point (nothing to ingest).
    pub fn is_empty(&self) -> bool {
        match self {
            Export::Traces(request) => request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .all(|s| s.spans.is_empty()),
            Export::Metrics(request) => request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .all(|s| s.metrics.is_empty()),
        }
    }

    /// The export as OTLP JSON, one line (what the receiver spools).
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        match self {
            Export::Traces(request) => serde_json::to_vec(request),
            Export::Metrics(request) => serde_json::to_vec(request),
        }
    }

    /// The export's records, each a row or the reason (naming the span or data
    /// point and the field) it is refused.
    pub fn records(&self, out: &mut Vec<Result<Record, String>>) {
        match self {
            Export::Traces(request) => span_records(request, out),
            Export::Metrics(request) => metric_records(request, out),
        }
    }
}

/// One family's attribute names, in the order they are tried.
#[derive(Debug)]
pub struct Names {
    pub convention: Convention,
    pub provider: &'static [&'static str],
    pub request_model: &'static [&'static str],
    pub response_model: &'static [&'static str],
    pub input_tokens: &'static [&'static str],
    pub output_tokens: &'static [&'static str],
    pub total_tokens: &'static [&'static str],
    pub cached_tokens: &'static [&'static str],
    pub reasoning_tokens: &'static [&'static str],
    pub agent: &'static [&'static str],
    pub tool: &'static [&'static str],
}

/// The OpenTelemetry GenAI semantic conventions (and their older `gen_ai.system`).
pub const GENAI: Names = Names {
    convention: Convention::GenAi,
    provider: &["gen_ai.provider.name", "gen_ai.system"],
    request_model: &["gen_ai.request.model"],
    response_model: &["gen_ai.response.model"],
    input_tokens: &["gen_ai.usage.input_tokens"],
    output_tokens: &["gen_ai.usage.output_tokens"],
    total_tokens: &[],
    cached_tokens: &["gen_ai.usage.cache_read.input_tokens"],
    reasoning_tokens: &["gen_ai.usage.reasoning.output_tokens"],
    agent: &["gen_ai.agent.name", "gen_ai.agent.id"],
    tool: &["gen_ai.tool.name"],
};

/// OpenLLMetry (Traceloop): the names before the conventions settled.
pub const OPENLLMETRY: Names = Names {
    convention: Convention::OpenLlmetry,
    provider: &["gen_ai.system", "gen_ai.provider.name"],
    request_model: &["gen_ai.request.model", "llm.request.model"],
    response_model: &["gen_ai.response.model", "llm.response.model"],
    input_tokens: &[
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.input_tokens",
        "llm.usage.prompt_tokens",
    ],
    output_tokens: &[
        "gen_ai.usage.completion_tokens",
        "gen_ai.usage.output_tokens",
        "llm.usage.completion_tokens",
    ],
    total_tokens: &["llm.usage.total_tokens"],
    cached_tokens: &[
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cache_read.input_tokens",
    ],
    reasoning_tokens: &["llm.usage.reasoning_tokens"],
    agent: &["gen_ai.agent.name"],
    tool: &["gen_ai.tool.name"],
};

/// OpenInference (Arize Phoenix and its instrumentations).
pub const OPENINFERENCE: Names = Names {
    convention: Convention::OpenInference,
    provider: &["llm.provider", "llm.system"],
    request_model: &["llm.model_name"],
    response_model: &[],
    input_tokens: &["llm.token_count.prompt"],
    output_tokens: &["llm.token_count.completion"],
    total_tokens: &["llm.token_count.total"],
    cached_tokens: &["llm.token_count.prompt_details.cache_read"],
    reasoning_tokens: &["llm.token_count.completion_details.reasoning"],
    agent: &["agent.name"],
    tool: &["tool.name"],
};

/// What a span that reads data names, in any family: newest names first.
const DATA_SYSTEM: &[&str] = &["db.system.name", "db.system"];
const DATA_NAMESPACE: &[&str] = &["db.namespace", "db.name"];
const DATA_URL: &[&str] = &["url.full", "http.url"];
const SERVER_ADDRESS: &[&str] = &["server.address", "net.peer.name"];

/// A span's (or a data point's) attributes, looked up by name.
#[derive(Debug, Clone, Copy)]
struct Attrs<'a>(&'a [KeyValue]);

impl<'a> Attrs<'a> {
    fn get(self, name: &str) -> Option<&'a Any> {
        self.0
            .iter()
            .find(|kv| kv.key == name)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn has(self, names: &[&str]) -> bool {
        names.iter().any(|n| self.get(n).is_some())
    }

    /// The first of `names` present, as text (numbers and booleans written out).
    fn text(self, names: &[&str]) -> Result<Option<String>, String> {
        for name in names {
            let text = match self.get(name) {
                None => continue,
                Some(Any::StringValue(s)) => s.trim().to_owned(),
                Some(Any::IntValue(i)) => i.to_string(),
                Some(Any::DoubleValue(d)) => d.to_string(),
                Some(Any::BoolValue(b)) => b.to_string(),
                Some(_) => return Err(format!("attribute `{name}`: not a single value")),
            };
            if !text.is_empty() {
                return Ok(Some(text));
            }
        }
        Ok(None)
    }

    /// The first of `names` present, as a whole count.
    fn count(self, names: &[&str]) -> Result<Option<i64>, String> {
        let Some((name, value)) = names.iter().find_map(|n| self.get(n).map(|v| (n, v))) else {
            return Ok(None);
        };
        let count = match value {
            Any::IntValue(i) => Some(*i),
            Any::DoubleValue(d) if d.fract() == 0.0 && d.abs() < 9e15 => Some(*d as i64),
            Any::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        };
        count
            .map(Some)
            .ok_or_else(|| format!("attribute `{name}`: {} is not a whole count", shown(value)))
    }
}

fn shown(value: &Any) -> String {
    match value {
        Any::StringValue(s) => format!("{:?}", s.chars().take(40).collect::<String>()),
        Any::DoubleValue(d) => d.to_string(),
        _ => "the value".to_owned(),
    }
}

/// The family a span's attributes come from: by the names only that family
/// writes (any `openinference.*` or `llm.token_count.*`; any `traceloop.*`,
/// `llm.usage.*`, `llm.request.type` or the older `gen_ai.usage.*_tokens`).
fn convention(attrs: Attrs) -> &'static Names {
    let keys = || attrs.0.iter().map(|kv| kv.key.as_str());
    let openinference = |k: &str| {
        k.starts_with("openinference.")
            || k.starts_with("llm.token_count.")
            || k == "llm.model_name"
    };
    let openllmetry = |k: &str| {
        k.starts_with("traceloop.")
            || k.starts_with("llm.usage.")
            || k == "llm.request.type"
            || k == "gen_ai.usage.prompt_tokens"
            || k == "gen_ai.usage.completion_tokens"
    };
    if keys().any(openinference) {
        &OPENINFERENCE
    } else if keys().any(openllmetry) {
        &OPENLLMETRY
    } else {
        &GENAI
    }
}

/// The GenAI operation a span performs, if it is a model, tool or agent span.
fn operation(attrs: Attrs, names: &Names) -> Result<Option<String>, String> {
    let word = |s: Option<String>| s.map(|s| s.to_ascii_lowercase());
    if let Some(op) = word(attrs.text(&["gen_ai.operation.name"])?) {
        return Ok(Some(op));
    }
    let op = match names.convention {
        Convention::GenAi => None,
        Convention::OpenLlmetry => match word(attrs.text(&["traceloop.span.kind"])?).as_deref() {
            Some("agent") => Some("invoke_agent"),
            Some("tool") => Some("execute_tool"),
            _ => match word(attrs.text(&["llm.request.type"])?).as_deref() {
                Some("chat") => Some("chat"),
                Some("completion") => Some("text_completion"),
                Some("embedding") => Some("embeddings"),
                Some("rerank") => Some("rerank"),
                _ => None,
            },
        },
        Convention::OpenInference => {
            match word(attrs.text(&["openinference.span.kind"])?).as_deref() {
                Some("llm") => Some("chat"),
                Some("embedding") => Some("embeddings"),
                Some("tool") => Some("execute_tool"),
                Some("agent") => Some("invoke_agent"),
                Some("reranker") => Some("rerank"),
                _ => None,
            }
        }
    };
    Ok(op.map(str::to_owned))
}

/// Input, output, cached and reasoning tokens, and whether they were reported.
fn tokens(attrs: Attrs, names: &Names) -> Result<(SpanTokens, TokenCounts), String> {
    let mut tokens = SpanTokens {
        input: attrs.count(names.input_tokens)?,
        output: attrs.count(names.output_tokens)?,
        cached: attrs.count(names.cached_tokens)?,
        reasoning: attrs.count(names.reasoning_tokens)?,
    };
    let total = attrs.count(names.total_tokens)?;
    let counts = match (tokens.input, tokens.output, total) {
        (Some(_), Some(_), _) => TokenCounts::Reported,
        (Some(input), None, Some(total)) => {
            tokens.output = Some(total.saturating_sub(input).max(0));
            TokenCounts::Estimated
        }
        (None, Some(output), Some(total)) => {
            tokens.input = Some(total.saturating_sub(output).max(0));
            TokenCounts::Estimated
        }
        // A total alone is priced as input: the cheaper side, said as estimated.
        (None, None, Some(total)) => {
            tokens.input = Some(total);
            tokens.output = Some(0);
            TokenCounts::Estimated
        }
        (Some(_), None, None) | (None, Some(_), None) => TokenCounts::Reported,
        (None, None, None) => TokenCounts::None,
    };
    Ok((tokens, counts))
}

fn hex_id(bytes: &[u8], len: usize, field: &str) -> Result<String, String> {
    if bytes.len() != len {
        return Err(format!(
            "field `{field}`: {} bytes, an id is {len}",
            bytes.len()
        ));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(format!("field `{field}`: all zero, not a valid id"));
    }
    Ok(hex::encode(bytes))
}

fn micros(nanos: u64) -> i64 {
    i64::try_from(nanos / 1000).unwrap_or(i64::MAX)
}

/// A span's status: `ok`, or the error's type.
fn status(span: &Span, attrs: Attrs) -> Result<String, String> {
    let error_type = attrs.text(&["error.type"])?;
    let failed = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    Ok(match (failed, error_type) {
        (_, Some(kind)) => kind,
        (true, None) => span
            .status
            .as_ref()
            .map(|s| s.message.trim())
            .filter(|m| !m.is_empty())
            .map_or_else(|| "error".to_owned(), |m| m.chars().take(200).collect()),
        (false, None) => "ok".to_owned(),
    })
}

/// One span mapped, or `None` when it is not a model, tool or agent span.
fn span_record(span: &Span, service: Option<&str>) -> Result<Option<SpanRecord>, String> {
    let attrs = Attrs(&span.attributes);
    let names = convention(attrs);
    let Some(operation) = operation(attrs, names)? else {
        return Ok(None);
    };
    let trace_id = hex_id(&span.trace_id, 16, "traceId")?;
    let span_id = hex_id(&span.span_id, 8, "spanId")?;
    let parent_span_id = match span.parent_span_id.is_empty() {
        true => None,
        false => Some(hex_id(&span.parent_span_id, 8, "parentSpanId")?),
    };
    let duration_ms = match span.end_time_unix_nano {
        0 => None,
        end if end < span.start_time_unix_nano => {
            return Err("field `endTimeUnixNano`: before startTimeUnixNano".to_owned());
        }
        end => {
            Some(i64::try_from((end - span.start_time_unix_nano) / 1_000_000).unwrap_or(i64::MAX))
        }
    };
    let (tokens, token_counts) = tokens(attrs, names)?;
    let tool = match names.convention {
        Convention::OpenLlmetry if operation == "execute_tool" => {
            attrs.text(&["gen_ai.tool.name", "traceloop.entity.name"])?
        }
        _ => attrs.text(names.tool)?,
    };
    let agent = match names.convention {
        Convention::OpenLlmetry if operation == "invoke_agent" => {
            attrs.text(&["gen_ai.agent.name", "traceloop.entity.name"])?
        }
        _ => attrs.text(names.agent)?,
    };
    Ok(Some(SpanRecord {
        time_us: micros(span.start_time_unix_nano),
        trace_id,
        span_id,
        parent_span_id,
        duration_ms,
        provider: attrs.text(names.provider)?,
        model: match attrs.text(names.response_model)? {
            Some(model) => Some(model),
            None => attrs.text(names.request_model)?,
        },
        agent,
        tool,
        server_address: attrs.text(SERVER_ADDRESS)?,
        data_system: attrs.text(DATA_SYSTEM)?,
        data_namespace: attrs.text(DATA_NAMESPACE)?,
        data_url: attrs.text(DATA_URL)?,
        tokens,
        token_counts,
        status: status(span, attrs)?,
        service_name: service.map(str::to_owned),
        convention: names.convention,
        operation,
    }))
}

/// How far up a span's parents an agent or tool is looked for: a deeper (or
/// cyclic, in hostile input) chain stops there.
const MAX_ANCESTORS: usize = 64;

/// What the spans of one export say about each other, by span id.
#[derive(Debug, Default)]
struct Family<'a> {
    parent: HashMap<&'a [u8], &'a [u8]>,
    agent: HashMap<&'a [u8], String>,
    tools: HashMap<&'a [u8], usize>,
}

impl<'a> Family<'a> {
    /// The nearest ancestor for which `found` answers.
    fn nearest<T>(&self, mut id: &'a [u8], found: impl Fn(&[u8]) -> Option<T>) -> Option<T> {
        for _ in 0..MAX_ANCESTORS {
            id = self.parent.get(id)?;
            if let Some(hit) = found(id) {
                return Some(hit);
            }
        }
        None
    }
}

fn span_records(request: &ExportTraceServiceRequest, out: &mut Vec<Result<Record, String>>) {
    let mut family = Family::default();
    let mut mapped: Vec<(&Span, Result<SpanRecord, String>)> = Vec::new();
    let mut data_spans: Vec<&Span> = Vec::new();
    for (r, resource) in request.resource_spans.iter().enumerate() {
        let service = resource.resource.as_ref().and_then(|res| {
            Attrs(&res.attributes)
                .text(&["service.name"])
                .ok()
                .flatten()
        });
        for (s, scope) in resource.scope_spans.iter().enumerate() {
            for (i, span) in scope.spans.iter().enumerate() {
                if !span.parent_span_id.is_empty() {
                    family.parent.insert(&span.span_id, &span.parent_span_id);
                }
                let at = |e: String| format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: {e}");
                match span_record(span, service.as_deref()) {
                    Ok(Some(record)) => {
                        if record.operation == "invoke_agent"
                            && let Some(agent) = &record.agent
                        {
                            family.agent.insert(&span.span_id, agent.clone());
                        }
                        if record.operation == "execute_tool" {
                            family.tools.insert(&span.span_id, mapped.len());
                        }
                        mapped.push((span, Ok(record)));
                    }
                    Ok(None) if Attrs(&span.attributes).has(DATA_SYSTEM) => data_spans.push(span),
                    Ok(None) => {}
                    Err(e) => mapped.push((span, Err(at(e)))),
                }
            }
        }
    }
    // A database or HTTP client span under a tool span says what the tool read.
    for span in data_spans {
        let attrs = Attrs(&span.attributes);
        let Some(at) = family.nearest(&span.span_id, |id| family.tools.get(id).copied()) else {
            continue;
        };
        if let (_, Ok(tool)) = &mut mapped[at]
            && tool.data_system.is_none()
        {
            tool.data_system = attrs.text(DATA_SYSTEM).ok().flatten();
            tool.data_namespace = attrs.text(DATA_NAMESPACE).ok().flatten();
            tool.data_url = attrs.text(DATA_URL).ok().flatten();
        }
    }
    for (span, record) in mapped {
        out.push(record.map(|mut record| {
            if record.agent.is_none() {
                record.agent = family.nearest(&span.span_id, |id| family.agent.get(id).cloned());
            }
            Record {
                span: Some(record),
                ..Default::default()
            }
        }));
    }
}

/// The GenAI client metrics read (histograms, both).
const GENAI_METRICS: [&str; 2] = [
    "gen_ai.client.token.usage",
    "gen_ai.client.operation.duration",
];

/// The `token_metrics.metric` a GenAI client metric's data point becomes.
fn metric_name(name: &str, attrs: Attrs) -> Result<&'static str, String> {
    if name != "gen_ai.client.token.usage" {
        return Ok("operation_duration_s");
    }
    match attrs.text(&["gen_ai.token.type"])?.as_deref() {
        Some("input") => Ok("prompt"),
        Some("output") => Ok("completion"),
        Some(other) => Err(format!(
            "attribute `gen_ai.token.type`: {other:?} is not input or output"
        )),
        None => Err("attribute `gen_ai.token.type`: absent".to_owned()),
    }
}

fn metric_records(request: &ExportMetricsServiceRequest, out: &mut Vec<Result<Record, String>>) {
    for (r, resource) in request.resource_metrics.iter().enumerate() {
        let resource_attrs = resource
            .resource
            .as_ref()
            .map_or(&[][..], |res| &res.attributes);
        for (s, scope) in resource.scope_metrics.iter().enumerate() {
            for (m, metric) in scope.metrics.iter().enumerate() {
                if !GENAI_METRICS.contains(&metric.name.as_str()) {
                    continue;
                }
                let at = format!("resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}]");
                let histogram = match &metric.data {
                    Some(metric::Data::Histogram(histogram)) => histogram,
                    // The JSON decoder leaves a malformed `histogram` out
                    // rather than failing: refused here, not lost silently.
                    _ => {
                        out.push(Err(format!(
                            "{at}: field `histogram`: absent or malformed; {} is a histogram",
                            metric.name
                        )));
                        continue;
                    }
                };
                let cumulative =
                    histogram.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                for (p, point) in histogram.data_points.iter().enumerate() {
                    let at = |e: String| format!("{at}.dataPoints[{p}]: {e}");
                    let record = metric_name(&metric.name, Attrs(&point.attributes))
                        .and_then(|name| histogram_point(name, cumulative, point, resource_attrs))
                        .map(|metric| Record {
                            metric: Some(metric),
                            ..Default::default()
                        })
                        .map_err(at);
                    out.push(record);
                }
            }
        }
    }
}

/// One histogram data point as a `token_metrics` row. A cumulative point
/// covers its series since `startTimeUnixNano` and is stored under
/// `<metric>_cumulative`, so a sum over `prompt` never adds a running total.
fn histogram_point(
    name: &str,
    cumulative: bool,
    point: &HistogramDataPoint,
    resource: &[KeyValue],
) -> Result<MetricRecord, String> {
    let attrs = Attrs(&point.attributes);
    let value = point.sum.ok_or_else(|| {
        "field `sum`: absent; a histogram point without a sum says no amount".to_owned()
    })?;
    let value_count = i64::try_from(point.count)
        .map_err(|_| format!("field `count`: {} is beyond any count", point.count))?;
    let metric = match cumulative {
        true => format!("{name}_cumulative"),
        false => name.to_owned(),
    };
    let mut dimensions = serde_json::Map::new();
    for kv in resource.iter().chain(&point.attributes) {
        if let Ok(Some(text)) = Attrs(std::slice::from_ref(kv)).text(&[kv.key.as_str()]) {
            dimensions.insert(kv.key.clone(), text.into());
        }
    }
    dimensions.insert(
        "otel.start_time_unix_nano".into(),
        point.start_time_unix_nano.to_string().into(),
    );
    let dimensions_json = serde_json::Value::Object(dimensions).to_string();
    let identity = format!(
        "{metric}\u{1f}{}\u{1f}{dimensions_json}",
        point.time_unix_nano
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    let text = |names: &[&str]| attrs.text(names);
    Ok(MetricRecord {
        time_us: micros(point.time_unix_nano),
        metric_id: hex::encode(&digest.as_ref()[..16]),
        metric,
        value,
        value_count,
        dims: [
            None,
            text(&["gen_ai.operation.name"])?,
            None,
            None,
            None,
            None,
            None,
            text(SERVER_ADDRESS)?,
            match text(&["gen_ai.response.model"])? {
                Some(model) => Some(model),
                None => text(&["gen_ai.request.model"])?,
            },
        ],
        dimensions_json,
    })
}

/// Used by tests and benchmarks: an attribute.
pub fn attribute(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, Any)]) -> Vec<KeyValue> {
        pairs.iter().map(|(k, v)| attribute(k, v.clone())).collect()
    }

    fn int(v: i64) -> Any {
        Any::IntValue(v)
    }

    fn text(v: &str) -> Any {
        Any::StringValue(v.to_owned())
    }

    #[test]
    fn token_counts_are_reported_estimated_or_none() {
        let check = |pairs: &[(&str, Any)], expect: (Option<i64>, Option<i64>, TokenCounts)| {
            let kvs = attrs(pairs);
            let a = Attrs(&kvs);
            let (t, counts) = tokens(a, convention(a)).unwrap();
            assert_eq!((t.input, t.output, counts), expect, "{pairs:?}");
        };
        check(
            &[
                ("gen_ai.usage.input_tokens", int(10)),
                ("gen_ai.usage.output_tokens", int(3)),
            ],
            (Some(10), Some(3), TokenCounts::Reported),
        );
        check(
            &[
                ("gen_ai.usage.prompt_tokens", int(90)),
                ("llm.usage.total_tokens", int(130)),
            ],
            (Some(90), Some(40), TokenCounts::Estimated),
        );
        check(
            &[
                ("llm.token_count.completion", int(5)),
                ("llm.token_count.total", int(25)),
            ],
            (Some(20), Some(5), TokenCounts::Estimated),
        );
        check(
            &[("llm.usage.total_tokens", int(7))],
            (Some(7), Some(0), TokenCounts::Estimated),
        );
        // A total below one side is not a negative count.
        check(
            &[
                ("gen_ai.usage.prompt_tokens", int(90)),
                ("llm.usage.total_tokens", int(10)),
            ],
            (Some(90), Some(0), TokenCounts::Estimated),
        );
        check(
            &[("gen_ai.operation.name", text("chat"))],
            (None, None, TokenCounts::None),
        );
    }

    #[test]
    fn counts_are_whole_numbers_or_the_span_is_refused_naming_them() {
        let check = |value: Any, expect: Result<Option<i64>, &str>| {
            let kvs = attrs(&[("n", value)]);
            assert_eq!(Attrs(&kvs).count(&["n"]), expect.map_err(str::to_owned));
        };
        check(int(12), Ok(Some(12)));
        check(Any::DoubleValue(12.0), Ok(Some(12)));
        check(text(" 12 "), Ok(Some(12)));
        check(
            Any::DoubleValue(1.5),
            Err("attribute `n`: 1.5 is not a whole count"),
        );
        check(
            Any::DoubleValue(f64::NAN),
            Err("attribute `n`: NaN is not a whole count"),
        );
        check(
            text("many"),
            Err(r#"attribute `n`: "many" is not a whole count"#),
        );
        check(
            Any::BoolValue(true),
            Err("attribute `n`: the value is not a whole count"),
        );
    }

    #[test]
    fn operations_are_read_in_each_convention() {
        let check = |pairs: &[(&str, Any)], expect: Option<&str>| {
            let kvs = attrs(pairs);
            let a = Attrs(&kvs);
            assert_eq!(
                operation(a, convention(a)).unwrap().as_deref(),
                expect,
                "{pairs:?}"
            );
        };
        check(&[("gen_ai.operation.name", text("Chat"))], Some("chat"));
        check(
            &[("openinference.span.kind", text("TOOL"))],
            Some("execute_tool"),
        );
        check(&[("openinference.span.kind", text("CHAIN"))], None);
        check(
            &[("traceloop.span.kind", text("agent"))],
            Some("invoke_agent"),
        );
        check(
            &[("llm.request.type", text("embedding"))],
            Some("embeddings"),
        );
        check(&[("http.request.method", text("GET"))], None);
    }

    #[test]
    fn exports_are_told_apart_and_logs_refused() {
        assert!(matches!(
            Export::from_json(br#"{"resourceSpans":[]}"#),
            Ok(Export::Traces(_))
        ));
        assert!(matches!(
            Export::from_json(br#"{"resourceMetrics":[]}"#),
            Ok(Export::Metrics(_))
        ));
        assert_eq!(
            Export::from_json(br#"{"resourceLogs":[]}"#),
            Err("OTLP logs are not read: only traces and metrics".to_owned())
        );
        assert!(
            Export::from_json(b"{")
                .unwrap_err()
                .starts_with("not OTLP JSON")
        );
        assert!(
            Export::from_json(br#"{"resourceSpans":[]}"#)
                .unwrap()
                .is_empty()
        );
        // An attribute named like the other key does not make a trace
        // export a metrics one (its spans would have been dropped).
        let tricky = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"resourceMetrics","value":{"stringValue":"x"}}]},"scopeSpans":[]}]}"#;
        assert!(matches!(Export::from_json(tricky), Ok(Export::Traces(_))));
        assert!(Export::from_json(b"{}").is_err());
        assert!(Export::from_json(br#"{"resourceSpans":[],"resourceMetrics":[]}"#).is_err());
    }
}
