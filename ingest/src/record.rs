//! One normalised request, as every adapter produces it, and the Arrow buffers that
//! collect them into lake batches (hits have their columns in `hit.rs`).

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Array, Int64Builder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use std::collections::BTreeMap;

use tollgate_store::schema::{
    BILLED_COSTS, DLP_HITS, GENAI_SPANS, REQUESTS, REQUESTS_SCHEMA, TOKEN_METRICS,
    TOKEN_METRICS_SCHEMA, TOKEN_USAGE, TOKEN_USAGE_SCHEMA,
};

use crate::cost::CostColumns;
pub use crate::cost::CostRecord;
use crate::hit::HitColumns;
pub use crate::hit::HitRecord;
use crate::span::SpanColumns;
pub use crate::span::SpanRecord;

pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A gateway request in the canonical shape (`requests` table).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestRecord {
    pub time_us: i64,
    pub request_id: String,
    pub gateway_kind: Option<String>,
    pub gateway_id: Option<String>,
    pub region: Option<String>,
    pub subscription: Option<String>,
    pub product: Option<String>,
    pub user_id: Option<String>,
    pub agent: Option<String>,
    pub tool: Option<String>,
    pub api: Option<String>,
    pub operation: Option<String>,
    pub backend: Option<String>,
    pub status_code: i32,
    pub backend_status_code: Option<i32>,
    pub total_latency_ms: Option<i64>,
    pub backend_latency_ms: Option<i64>,
    pub cache_status: Option<String>,
    pub priority: Option<String>,
    pub error_source: Option<String>,
    pub error_reason: Option<String>,
}

impl RequestRecord {
    /// Days since the epoch (UTC): the lake partition.
    pub fn day(&self) -> i64 {
        self.time_us.div_euclid(MICROS_PER_DAY)
    }
}

/// The token counts of a request's model call (`token_usage` table). Gateways may
/// log it apart from the request (APIM's `GatewayLlmLogs`), so it carries its own
/// time and request id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenRecord {
    pub time_us: i64,
    pub request_id: String,
    pub deployment: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: i64,
    pub cached_tokens: i64,
    pub completion_tokens: i64,
    pub reasoning_tokens: i64,
    pub streamed: Option<bool>,
    /// The gateway's own cost estimate, when it reports one.
    pub gateway_reported_cost: Option<f64>,
}

impl TokenRecord {
    pub fn day(&self) -> i64 {
        self.time_us.div_euclid(MICROS_PER_DAY)
    }
}

/// One pre-aggregated token metric (`token_metrics` table).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricRecord {
    pub time_us: i64,
    pub metric_id: String,
    pub metric: String,
    pub value: f64,
    pub value_count: i64,
    /// api, operation, product, user_id, subscription, region, gateway_id,
    /// backend, model: as in TOKEN_METRICS_SCHEMA.
    pub dims: [Option<String>; 9],
    pub dimensions_json: String,
}

impl MetricRecord {
    pub fn day(&self) -> i64 {
        self.time_us.div_euclid(MICROS_PER_DAY)
    }
}

/// What one input record contributes: a request, its token usage, both, a
/// pre-aggregated metric, a DLP hit, a trace's span, or a cost line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub request: Option<RequestRecord>,
    /// Absent when the request never reached a model (e.g. a gateway-side 429).
    pub tokens: Option<TokenRecord>,
    pub metric: Option<MetricRecord>,
    pub hit: Option<HitRecord>,
    pub span: Option<SpanRecord>,
    /// A line of a provider's cost export.
    pub cost: Option<CostRecord>,
}

/// Rows waiting to be written, per table and partition day.
#[derive(Debug, Default)]
pub struct LakeBuffers {
    requests: BTreeMap<i64, RequestColumns>,
    tokens: BTreeMap<i64, TokenColumns>,
    metrics: BTreeMap<i64, MetricColumns>,
    hits: BTreeMap<i64, HitColumns>,
    spans: BTreeMap<i64, SpanColumns>,
    costs: BTreeMap<i64, CostColumns>,
    len: usize,
}

impl LakeBuffers {
    pub fn push_request(&mut self, request: &RequestRecord) {
        self.requests
            .entry(request.day())
            .or_default()
            .push(request);
        self.len += 1;
    }

    pub fn push_tokens(&mut self, tokens: &TokenRecord) {
        self.tokens.entry(tokens.day()).or_default().push(tokens);
        self.len += 1;
    }

    pub fn push_metric(&mut self, metric: &MetricRecord) {
        self.metrics.entry(metric.day()).or_default().push(metric);
        self.len += 1;
    }

    pub fn push_hit(&mut self, hit: &HitRecord) {
        self.hits.entry(hit.day()).or_default().push(hit);
        self.len += 1;
    }

    pub fn push_span(&mut self, span: &SpanRecord) {
        self.spans.entry(span.day()).or_default().push(span);
        self.len += 1;
    }

    pub fn push_cost(&mut self, cost: &CostRecord) {
        self.costs.entry(cost.day()).or_default().push(cost);
        self.len += 1;
    }

    /// Buffered rows, all tables together.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffered rows as `(table, day, batch)`; the buffers are empty after.
    pub fn drain(
        &mut self,
        batch_id: i64,
    ) -> arrow::error::Result<Vec<(&'static str, i64, RecordBatch)>> {
        let mut out = Vec::new();
        for (day, mut columns) in std::mem::take(&mut self.requests) {
            out.push((REQUESTS, day, columns.finish(batch_id)?));
        }
        for (day, mut columns) in std::mem::take(&mut self.tokens) {
            out.push((TOKEN_USAGE, day, columns.finish(batch_id)?));
        }
        for (day, mut columns) in std::mem::take(&mut self.metrics) {
            out.push((TOKEN_METRICS, day, columns.finish(batch_id)?));
        }
        for (day, mut columns) in std::mem::take(&mut self.hits) {
            out.push((DLP_HITS, day, columns.finish(batch_id)?));
        }
        for (day, mut columns) in std::mem::take(&mut self.spans) {
            out.push((GENAI_SPANS, day, columns.finish(batch_id)?));
        }
        for (day, mut columns) in std::mem::take(&mut self.costs) {
            out.push((BILLED_COSTS, day, columns.finish(batch_id)?));
        }
        self.len = 0;
        Ok(out)
    }
}

fn utc_times() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn batch_ids(batch_id: i64, len: usize) -> ArrayRef {
    Arc::new(Int64Array::from_value(batch_id, len))
}

#[derive(Debug)]
struct RequestColumns {
    time: TimestampMicrosecondBuilder,
    text: [StringBuilder; 12],
    status_code: Int32Builder,
    backend_status_code: Int32Builder,
    total_latency_ms: Int64Builder,
    backend_latency_ms: Int64Builder,
    tail_text: [StringBuilder; 4],
}

impl Default for RequestColumns {
    fn default() -> Self {
        RequestColumns {
            time: utc_times(),
            text: Default::default(),
            status_code: Int32Builder::new(),
            backend_status_code: Int32Builder::new(),
            total_latency_ms: Int64Builder::new(),
            backend_latency_ms: Int64Builder::new(),
            tail_text: Default::default(),
        }
    }
}

impl RequestColumns {
    fn push(&mut self, r: &RequestRecord) {
        self.time.append_value(r.time_us);
        self.text[0].append_value(&r.request_id);
        // Same order as REQUESTS_SCHEMA.
        let text = [
            &r.gateway_kind,
            &r.gateway_id,
            &r.region,
            &r.subscription,
            &r.product,
            &r.user_id,
            &r.agent,
            &r.tool,
            &r.api,
            &r.operation,
            &r.backend,
        ];
        for (builder, value) in self.text[1..].iter_mut().zip(text) {
            builder.append_option(value.as_deref());
        }
        self.status_code.append_value(r.status_code);
        self.backend_status_code
            .append_option(r.backend_status_code);
        self.total_latency_ms.append_option(r.total_latency_ms);
        self.backend_latency_ms.append_option(r.backend_latency_ms);
        let tail = [
            &r.cache_status,
            &r.priority,
            &r.error_source,
            &r.error_reason,
        ];
        for (builder, value) in self.tail_text.iter_mut().zip(tail) {
            builder.append_option(value.as_deref());
        }
    }

    fn finish(&mut self, batch_id: i64) -> arrow::error::Result<RecordBatch> {
        let len = self.time.len();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.time.finish())];
        columns.extend(
            self.text
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.status_code.finish()));
        columns.push(Arc::new(self.backend_status_code.finish()));
        columns.push(Arc::new(self.total_latency_ms.finish()));
        columns.push(Arc::new(self.backend_latency_ms.finish()));
        columns.extend(
            self.tail_text
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(batch_ids(batch_id, len));
        RecordBatch::try_new(REQUESTS_SCHEMA.clone(), columns)
    }
}

#[derive(Debug)]
struct TokenColumns {
    time: TimestampMicrosecondBuilder,
    request_id: StringBuilder,
    deployment: StringBuilder,
    model: StringBuilder,
    counts: [Int64Builder; 4],
    streamed: BooleanBuilder,
    reported_cost: Float64Builder,
}

impl Default for TokenColumns {
    fn default() -> Self {
        TokenColumns {
            time: utc_times(),
            request_id: StringBuilder::new(),
            deployment: StringBuilder::new(),
            model: StringBuilder::new(),
            counts: Default::default(),
            streamed: BooleanBuilder::new(),
            reported_cost: Float64Builder::new(),
        }
    }
}

impl TokenColumns {
    fn push(&mut self, t: &TokenRecord) {
        self.time.append_value(t.time_us);
        self.request_id.append_value(&t.request_id);
        self.deployment.append_option(t.deployment.as_deref());
        self.model.append_option(t.model.as_deref());
        let counts = [
            t.prompt_tokens,
            t.cached_tokens,
            t.completion_tokens,
            t.reasoning_tokens,
        ];
        for (builder, value) in self.counts.iter_mut().zip(counts) {
            builder.append_value(value);
        }
        self.streamed.append_option(t.streamed);
        self.reported_cost.append_option(t.gateway_reported_cost);
    }

    fn finish(&mut self, batch_id: i64) -> arrow::error::Result<RecordBatch> {
        let len = self.time.len();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.request_id.finish()),
            Arc::new(self.deployment.finish()),
            Arc::new(self.model.finish()),
        ];
        columns.extend(
            self.counts
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.streamed.finish()));
        columns.push(Arc::new(self.reported_cost.finish()));
        columns.push(batch_ids(batch_id, len));
        RecordBatch::try_new(TOKEN_USAGE_SCHEMA.clone(), columns)
    }
}

#[derive(Debug)]
struct MetricColumns {
    time: TimestampMicrosecondBuilder,
    metric_id: StringBuilder,
    metric: StringBuilder,
    value: Float64Builder,
    value_count: Int64Builder,
    dims: [StringBuilder; 9],
    dimensions: StringBuilder,
}

impl Default for MetricColumns {
    fn default() -> Self {
        MetricColumns {
            time: utc_times(),
            metric_id: StringBuilder::new(),
            metric: StringBuilder::new(),
            value: Float64Builder::new(),
            value_count: Int64Builder::new(),
            dims: Default::default(),
            dimensions: StringBuilder::new(),
        }
    }
}

impl MetricColumns {
    fn push(&mut self, m: &MetricRecord) {
        self.time.append_value(m.time_us);
        self.metric_id.append_value(&m.metric_id);
        self.metric.append_value(&m.metric);
        self.value.append_value(m.value);
        self.value_count.append_value(m.value_count);
        for (builder, value) in self.dims.iter_mut().zip(&m.dims) {
            builder.append_option(value.as_deref());
        }
        self.dimensions.append_value(&m.dimensions_json);
    }

    fn finish(&mut self, batch_id: i64) -> arrow::error::Result<RecordBatch> {
        let len = self.time.len();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.metric_id.finish()),
            Arc::new(self.metric.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.value_count.finish()),
        ];
        columns.extend(
            self.dims
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.dimensions.finish()));
        columns.push(batch_ids(batch_id, len));
        RecordBatch::try_new(TOKEN_METRICS_SCHEMA.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_split_by_table_and_day() {
        let mut buf = LakeBuffers::default();
        let day0 = 20_000 * MICROS_PER_DAY;
        let request = RequestRecord {
            time_us: day0 + 5,
            request_id: "r1".into(),
            status_code: 200,
            region: Some("East US".into()),
            ..Default::default()
        };
        buf.push_request(&request);
        buf.push_request(&RequestRecord {
            request_id: "r2".into(),
            status_code: 429,
            ..request.clone()
        });
        // The LLM row of r1 was logged just after midnight: the next day's partition.
        buf.push_tokens(&TokenRecord {
            time_us: day0 + MICROS_PER_DAY,
            request_id: "r1".into(),
            prompt_tokens: 5,
            ..Default::default()
        });
        assert_eq!(buf.len(), 3);
        let drained = buf.drain(7).unwrap();
        let shape: Vec<_> = drained
            .iter()
            .map(|(t, d, b)| (*t, *d, b.num_rows()))
            .collect();
        assert_eq!(shape, vec![(REQUESTS, 20_000, 2), (TOKEN_USAGE, 20_001, 1)]);
        assert!(buf.is_empty());
        assert!(buf.drain(7).unwrap().is_empty());
    }
}
