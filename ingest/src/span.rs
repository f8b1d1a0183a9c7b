//! One model, tool or agent span from an OpenTelemetry trace (`genai_spans`
//! table) and the Arrow columns that collect them; `otel.rs` maps OTLP onto it.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Int64Array, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use tollgate_store::schema::GENAI_SPANS_SCHEMA;

use crate::record::MICROS_PER_DAY;

/// Where a span's token counts came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenCounts {
    /// The span carried input and output counts.
    Reported,
    /// One side was derived from a total (`llm.usage.total_tokens` less the other).
    Estimated,
    /// The span carried no counts (a tool or agent span, or an instrumentation
    /// that does not record usage).
    #[default]
    None,
}

impl TokenCounts {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Estimated => "estimated",
            Self::None => "none",
        }
    }
}

/// Which family of attribute names a span was written in (`docs/otel.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Convention {
    /// The OpenTelemetry GenAI semantic conventions (`gen_ai.*`).
    #[default]
    GenAi,
    /// OpenLLMetry's older names (`gen_ai.usage.prompt_tokens`, `llm.usage.*`).
    OpenLlmetry,
    /// OpenInference (`openinference.span.kind`, `llm.token_count.*`).
    OpenInference,
}

impl Convention {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenAi => "genai",
            Self::OpenLlmetry => "openllmetry",
            Self::OpenInference => "openinference",
        }
    }
}

/// Token counts of a model span; absent where the span did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanTokens {
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub cached: Option<i64>,
    pub reasoning: Option<i64>,
}

/// A span as `genai_spans` stores it. Ids are lower-case hex.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanRecord {
    pub time_us: i64,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub duration_ms: Option<i64>,
    pub operation: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub agent: Option<String>,
    pub tool: Option<String>,
    pub server_address: Option<String>,
    pub data_system: Option<String>,
    pub data_namespace: Option<String>,
    pub data_url: Option<String>,
    pub tokens: SpanTokens,
    pub token_counts: TokenCounts,
    pub status: String,
    pub service_name: Option<String>,
    pub convention: Convention,
}

impl SpanRecord {
    pub fn day(&self) -> i64 {
        self.time_us.div_euclid(MICROS_PER_DAY)
    }

    /// What identifies the span in its table: trace id and span id together.
    pub fn uid(&self) -> String {
        format!("{}{}", self.trace_id, self.span_id)
    }

    /// The text columns from `operation` to `data_url`, in schema order.
    fn middle_text(&self) -> [Option<&str>; 9] {
        [
            Some(&self.operation),
            self.provider.as_deref(),
            self.model.as_deref(),
            self.agent.as_deref(),
            self.tool.as_deref(),
            self.server_address.as_deref(),
            self.data_system.as_deref(),
            self.data_namespace.as_deref(),
            self.data_url.as_deref(),
        ]
    }
}

#[derive(Debug)]
pub(crate) struct SpanColumns {
    time: TimestampMicrosecondBuilder,
    ids: [StringBuilder; 4],
    duration_ms: Int64Builder,
    middle: [StringBuilder; 9],
    counts: [Int64Builder; 4],
    tail: [StringBuilder; 4],
}

impl Default for SpanColumns {
    fn default() -> Self {
        SpanColumns {
            time: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            ids: Default::default(),
            duration_ms: Int64Builder::new(),
            middle: Default::default(),
            counts: Default::default(),
            tail: Default::default(),
        }
    }
}

impl SpanColumns {
    pub(crate) fn push(&mut self, span: &SpanRecord) {
        self.time.append_value(span.time_us);
        let ids = [
            Some(span.uid()),
            Some(span.trace_id.clone()),
            Some(span.span_id.clone()),
            span.parent_span_id.clone(),
        ];
        for (builder, value) in self.ids.iter_mut().zip(ids) {
            builder.append_option(value);
        }
        self.duration_ms.append_option(span.duration_ms);
        for (builder, value) in self.middle.iter_mut().zip(span.middle_text()) {
            builder.append_option(value);
        }
        let t = span.tokens;
        for (builder, value) in
            self.counts
                .iter_mut()
                .zip([t.input, t.output, t.cached, t.reasoning])
        {
            builder.append_option(value);
        }
        let tail = [
            Some(span.token_counts.as_str()),
            Some(span.status.as_str()),
            span.service_name.as_deref(),
            Some(span.convention.as_str()),
        ];
        for (builder, value) in self.tail.iter_mut().zip(tail) {
            builder.append_option(value);
        }
    }

    pub(crate) fn finish(&mut self, batch_id: i64) -> arrow::error::Result<RecordBatch> {
        let len = self.time.len();
        let strings = |builders: &mut [StringBuilder]| -> Vec<ArrayRef> {
            builders
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef)
                .collect()
        };
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.time.finish())];
        columns.extend(strings(&mut self.ids));
        columns.push(Arc::new(self.duration_ms.finish()));
        columns.extend(strings(&mut self.middle));
        columns.extend(
            self.counts
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend(strings(&mut self.tail));
        columns.push(Arc::new(Int64Array::from_value(batch_id, len)));
        RecordBatch::try_new(GENAI_SPANS_SCHEMA.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn columns_land_under_their_schema_names() {
        let mut columns = SpanColumns::default();
        columns.push(&SpanRecord {
            time_us: 5,
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            operation: "chat".into(),
            model: Some("gpt-4o".into()),
            server_address: Some("api.openai.com".into()),
            tokens: SpanTokens {
                input: Some(12),
                output: Some(30),
                ..Default::default()
            },
            token_counts: TokenCounts::Reported,
            status: "ok".into(),
            ..Default::default()
        });
        let batch = columns.finish(9).unwrap();
        let text = |name: &str| {
            let strings = batch.column_by_name(name).unwrap().as_string::<i32>();
            (!strings.is_null(0)).then(|| strings.value(0).to_owned())
        };
        let count = |name: &str| {
            let counts = batch
                .column_by_name(name)
                .unwrap()
                .as_primitive::<Int64Type>();
            (!counts.is_null(0)).then(|| counts.value(0))
        };
        assert_eq!(
            text("span_uid").as_deref(),
            Some("0af7651916cd43dd8448eb211c80319cb7ad6b7169203331")
        );
        assert_eq!(text("operation").as_deref(), Some("chat"));
        assert_eq!(text("server_address").as_deref(), Some("api.openai.com"));
        assert_eq!(text("token_counts").as_deref(), Some("reported"));
        assert_eq!(text("convention").as_deref(), Some("genai"));
        assert_eq!(text("parent_span_id"), None);
        assert_eq!(count("input_tokens"), Some(12));
        assert_eq!(count("output_tokens"), Some(30));
        assert_eq!(count("cached_tokens"), None);
        assert_eq!(count("batch_id"), Some(9));
    }
}
