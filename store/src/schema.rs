//! The canonical Arrow schemas of the lake tables, defined once.
//!
//! Times are microseconds in UTC: Parquet `TIMESTAMP(MICROS)` is what DuckDB and Spark
//! read without flags (nanoseconds are not). `batch_id` ties every row to the ingest
//! batch that committed it, so month close and late-data adjustments can be derived.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const REQUESTS: &str = "requests";
pub const TOKEN_USAGE: &str = "token_usage";
pub const TOKEN_METRICS: &str = "token_metrics";
pub const DLP_HITS: &str = "dlp_hits";
pub const GENAI_SPANS: &str = "genai_spans";
pub const BILLED_COSTS: &str = "billed_costs";
/// The view joining each request to its token usage.
pub const USAGE_VIEW: &str = "usage";

/// The lake tables, in the order they are written.
pub const LAKE_TABLES: [&str; 6] = [
    REQUESTS,
    TOKEN_USAGE,
    TOKEN_METRICS,
    DLP_HITS,
    GENAI_SPANS,
    BILLED_COSTS,
];

/// The column whose value identifies a row within its table and date: what ingest
/// deduplicates on.
pub fn dedupe_column(table: &str) -> &'static str {
    match table {
        TOKEN_METRICS => "metric_id",
        DLP_HITS => "hit_id",
        GENAI_SPANS => "span_uid",
        BILLED_COSTS => "line_uid",
        _ => "request_id",
    }
}

pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// One row per gateway request.
pub static REQUESTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("time", time_type(), false),
        utf8("request_id", false),
        utf8("gateway_kind", true),
        utf8("gateway_id", true),
        utf8("region", true),
        utf8("subscription", true),
        utf8("product", true),
        utf8("user_id", true),
        utf8("agent", true),
        utf8("tool", true),
        utf8("api", true),
        utf8("operation", true),
        utf8("backend", true),
        Field::new("status_code", DataType::Int32, false),
        Field::new("backend_status_code", DataType::Int32, true),
        Field::new("total_latency_ms", DataType::Int64, true),
        Field::new("backend_latency_ms", DataType::Int64, true),
        utf8("cache_status", true),
        utf8("priority", true),
        utf8("error_source", true),
        utf8("error_reason", true),
        Field::new("batch_id", DataType::Int64, false),
    ]))
});

/// Token counts of a request's model call, logged apart from the request by gateways.
pub static TOKEN_USAGE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("time", time_type(), false),
        utf8("request_id", false),
        utf8("deployment", true),
        utf8("model", true),
        Field::new("prompt_tokens", DataType::Int64, false),
        Field::new("cached_tokens", DataType::Int64, false),
        Field::new("completion_tokens", DataType::Int64, false),
        Field::new("reasoning_tokens", DataType::Int64, false),
        Field::new("streamed", DataType::Boolean, true),
        // What the gateway itself estimated the call cost (LiteLLM's `spend`,
        // Kong's `cost`), kept beside Tollgate's own cost to reconcile the two.
        Field::new("gateway_reported_cost", DataType::Float64, true),
        Field::new("batch_id", DataType::Int64, false),
    ]))
});

/// Pre-aggregated token metrics a gateway emits (APIM's `llm-emit-token-metric`
/// into Application Insights): a source of totals to reconcile per-request counts
/// against, never summed with them. `metric_id` is App Insights' `itemId`, or a
/// digest of everything the row says, so an overlapping export adds nothing.
pub static TOKEN_METRICS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("time", time_type(), false),
        utf8("metric_id", false),
        // total, prompt or completion
        utf8("metric", false),
        // The sum over the metric's interval (`valueSum`, else `value`).
        Field::new("value", DataType::Float64, false),
        Field::new("value_count", DataType::Int64, false),
        utf8("api", true),
        utf8("operation", true),
        utf8("product", true),
        utf8("user_id", true),
        utf8("subscription", true),
        utf8("region", true),
        utf8("gateway_id", true),
        utf8("backend", true),
        utf8("model", true),
        // Every dimension as a JSON object, custom ones included.
        utf8("dimensions", false),
        Field::new("batch_id", DataType::Int64, false),
    ]))
});

/// DLP and content-safety hits reported by a data-protection service (Purview
/// DLP alerts, `docs/dlp-events.md`): which policy and rule matched what, in
/// whose interaction, and which data source the content came from. `hit_id` is
/// the event's own id, or a digest of everything it says, so a re-export adds
/// nothing. Gateway-side blocks stay in `requests`; the `security_hits` view
/// shows both in this shape.
pub static DLP_HITS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("time", time_type(), false),
        utf8("hit_id", false),
        // Who reported the hit: `purview` for ingested events.
        utf8("source", false),
        utf8("policy", false),
        utf8("rule", true),
        // low, medium or high
        utf8("severity", true),
        // audit, block_with_override or block
        utf8("action", false),
        // The matched sensitive information types, as a JSON array of names.
        utf8("sensitive_info_types", true),
        // The sensitivity label as the service wrote it (sublabels included).
        utf8("label", true),
        utf8("agent", true),
        utf8("app", true),
        utf8("user_id", true),
        utf8("request_id", true),
        // The lineage node key of the resource the content came from.
        utf8("resource_namespace", true),
        utf8("resource_name", true),
        Field::new("batch_id", DataType::Int64, false),
    ]))
});

/// Model, tool and agent spans from OpenTelemetry traces (`docs/otel.md`): what
/// agents did, including the tool calls and the model calls no gateway saw.
/// `span_uid` is the trace id and span id together (hex), what ingest
/// deduplicates on, so an exporter's retry adds nothing.
pub static GENAI_SPANS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let count = |name: &str| Field::new(name, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new("time", time_type(), false),
        utf8("span_uid", false),
        utf8("trace_id", false),
        utf8("span_id", false),
        utf8("parent_span_id", true),
        Field::new("duration_ms", DataType::Int64, true),
        // chat, embeddings, text_completion, execute_tool, invoke_agent, ...
        utf8("operation", false),
        utf8("provider", true),
        utf8("model", true),
        utf8("agent", true),
        utf8("tool", true),
        // Where the call went (`server.address`): a gateway's host, or not.
        utf8("server_address", true),
        // What a tool span read: `db.system`, `db.namespace`, `url.full`.
        utf8("data_system", true),
        utf8("data_namespace", true),
        utf8("data_url", true),
        count("input_tokens"),
        count("output_tokens"),
        count("cached_tokens"),
        count("reasoning_tokens"),
        // reported (the span said), estimated (derived from a total), or none
        utf8("token_counts", false),
        // ok, or the error type (`error.type`, else the status message)
        utf8("status", false),
        utf8("service_name", true),
        // Which attribute names the span used: genai, openllmetry or openinference
        utf8("convention", false),
        Field::new("batch_id", DataType::Int64, false),
    ]))
});

/// Money and quantities of cost lines: exact decimals, pico-units (12 places).
pub fn amount_type() -> DataType {
    DataType::Decimal128(38, 12)
}

/// The provider's cost lines (`docs/reconciliation.md`): the Azure FOCUS
/// cost-and-usage export and the classic cost-details export, one row per
/// line, as billed. `line_uid` hashes the whole line (what ingest deduplicates
/// on: a re-sent export adds nothing); `line_key` hashes what identifies the
/// charge without its amounts, so a restated line (providers revise a day for
/// up to three days) is read from the latest batch that has it.
pub static BILLED_COSTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let amount = |name: &str, nullable: bool| Field::new(name, amount_type(), nullable);
    Arc::new(Schema::new(vec![
        // ChargePeriodStart (cost details: Date)
        Field::new("time", time_type(), false),
        Field::new("period_end", time_type(), true),
        utf8("line_uid", false),
        utf8("line_key", false),
        // focus, or cost-details
        utf8("export", false),
        utf8("currency", false),
        // Usage, Purchase, Tax, Credit, Adjustment (cost details: ChargeType)
        utf8("charge_category", true),
        utf8("resource_id", true),
        utf8("resource_name", true),
        utf8("region", true),
        // SubAccountId (cost details: SubscriptionId)
        utf8("sub_account", true),
        utf8("service_name", true),
        // x_SkuMeterName (cost details: MeterName)
        utf8("meter", true),
        utf8("meter_category", true),
        utf8("meter_subcategory", true),
        utf8("sku_id", true),
        utf8("sku_price_id", true),
        utf8("commitment_discount_id", true),
        // ConsumedQuantity in ConsumedUnit (cost details: Quantity in UnitOfMeasure)
        amount("quantity", true),
        utf8("unit", true),
        amount("pricing_quantity", true),
        utf8("pricing_unit", true),
        amount("list_unit_price", true),
        amount("billed_cost", false),
        amount("effective_cost", true),
        amount("list_cost", true),
        // JSON object text
        utf8("tags", true),
        Field::new("batch_id", DataType::Int64, false),
    ]))
});

pub fn schema_of(table: &str) -> Option<SchemaRef> {
    match table {
        REQUESTS => Some(REQUESTS_SCHEMA.clone()),
        TOKEN_USAGE => Some(TOKEN_USAGE_SCHEMA.clone()),
        TOKEN_METRICS => Some(TOKEN_METRICS_SCHEMA.clone()),
        DLP_HITS => Some(DLP_HITS_SCHEMA.clone()),
        GENAI_SPANS => Some(GENAI_SPANS_SCHEMA.clone()),
        BILLED_COSTS => Some(BILLED_COSTS_SCHEMA.clone()),
        _ => None,
    }
}

/// The `usage` view: every request with its token usage (absent for requests that
/// never reached a model, such as a gateway-side 429).
pub const USAGE_VIEW_SQL: &str = "SELECT r.*, \
    t.deployment, t.model, t.prompt_tokens, t.cached_tokens, t.completion_tokens, \
    t.reasoning_tokens, t.streamed, t.gateway_reported_cost \
    FROM requests r LEFT JOIN token_usage t ON r.request_id = t.request_id";
