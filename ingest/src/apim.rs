//! Azure API Management diagnostic-settings export: categories `GatewayLogs` (one
//! row per request) and `GatewayLlmLogs` (its token usage, possibly split into
//! several rows by `sequenceNumber`), as JSON lines or `{"records": [...]}`
//! envelopes, with camelCase or PascalCase keys.
//!
//! The two categories of one request arrive apart, in any order; each maps to its
//! own table and is paired by `correlationId` in the `usage` view. The same data
//! queried from Log Analytics (`ApiManagementGatewayLogs`,
//! `ApiManagementGatewayLlmLog`: flat PascalCase rows as JSON or CSV) maps alike. Repeated LLM rows
//! of one request (the split of a long message) count once: the first piece with
//! counts is kept, a piece without counts only if no other comes in the same file
//! (the pipeline holds those back), and the rest count as duplicates.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::dimensions::Dimensions;
use crate::headers::HeaderMap;
use crate::record::{Record, RequestRecord, TokenRecord};
use crate::scalar::{
    Scalar, count, flag, lookup, millis, prompt_and_cached, required_text, status, text, utc_time,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApimRecord<'a> {
    #[serde(
        borrow,
        alias = "Time",
        alias = "TimeGenerated",
        alias = "timeGenerated"
    )]
    time: Option<Scalar<'a>>,
    #[serde(borrow, alias = "Category")]
    category: Option<Scalar<'a>>,
    #[serde(borrow, alias = "CorrelationId")]
    correlation_id: Option<Scalar<'a>>,
    #[serde(borrow, alias = "ResourceId")]
    resource_id: Option<Scalar<'a>>,
    #[serde(borrow, alias = "Location")]
    location: Option<Scalar<'a>>,
    #[serde(borrow, alias = "DurationMs")]
    duration_ms: Option<Scalar<'a>>,
    #[serde(default, borrow, alias = "Properties")]
    properties: Option<Properties<'a>>,
    /// An Event Hub envelope's records (the line itself is then no record).
    #[serde(default, borrow, alias = "Records")]
    records: Option<Vec<ApimRecord<'a>>>,
    // Where dimension sources look in other layouts: a record that has any of
    // these is left to the general path, which reads them.
    #[serde(default, rename = "RequestHeaders")]
    top_request_headers: Option<IgnoredAny>,
    #[serde(default)]
    request: Option<IgnoredAny>,
    #[serde(default)]
    metadata: Option<IgnoredAny>,
    #[serde(default, rename = "request_tags")]
    request_tags: Option<IgnoredAny>,
    #[serde(default)]
    consumer: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Properties<'a> {
    // GatewayLogs
    #[serde(borrow, alias = "ResponseCode")]
    response_code: Option<Scalar<'a>>,
    #[serde(borrow, alias = "BackendResponseCode")]
    backend_response_code: Option<Scalar<'a>>,
    #[serde(borrow, alias = "BackendTime")]
    backend_time: Option<Scalar<'a>>,
    #[serde(borrow, alias = "Cache")]
    cache: Option<Scalar<'a>>,
    #[serde(borrow, alias = "ApiId")]
    api_id: Option<Scalar<'a>>,
    #[serde(borrow, alias = "OperationId")]
    operation_id: Option<Scalar<'a>>,
    #[serde(borrow, alias = "ProductId")]
    product_id: Option<Scalar<'a>>,
    #[serde(borrow, alias = "UserId")]
    user_id: Option<Scalar<'a>>,
    #[serde(borrow, alias = "ApimSubscriptionId")]
    apim_subscription_id: Option<Scalar<'a>>,
    #[serde(borrow, alias = "BackendId")]
    backend_id: Option<Scalar<'a>>,
    #[serde(default, borrow, alias = "LastError")]
    last_error: Option<LastError<'a>>,
    #[serde(default, borrow, alias = "RequestHeaders")]
    request_headers: Option<HeaderMap<'a>>,
    // GatewayLlmLogs
    #[serde(borrow, alias = "CorrelationId")]
    correlation_id: Option<Scalar<'a>>,
    #[serde(borrow, alias = "DeploymentName")]
    deployment_name: Option<Scalar<'a>>,
    #[serde(borrow, alias = "ModelName")]
    model_name: Option<Scalar<'a>>,
    #[serde(borrow, alias = "PromptTokens")]
    prompt_tokens: Option<Scalar<'a>>,
    #[serde(borrow, alias = "PromptCachedTokens")]
    prompt_cached_tokens: Option<Scalar<'a>>,
    #[serde(borrow, alias = "CompletionTokens")]
    completion_tokens: Option<Scalar<'a>>,
    #[serde(borrow, alias = "IsStreamCompletion")]
    is_stream_completion: Option<Scalar<'a>>,
}

/// Scalars, so that a wrong type is an error naming `lastError.source`.
#[derive(Deserialize, Default)]
struct LastError<'a> {
    #[serde(default, borrow, alias = "Source")]
    source: Option<Scalar<'a>>,
    #[serde(default, borrow, alias = "Reason")]
    reason: Option<Scalar<'a>>,
}

/// The fast path for diagnostic-export lines: maps the line's records straight from
/// its bytes, borrowing strings instead of building a [`Value`]. Returns false,
/// having added nothing, for a line it cannot map exactly as the general path
/// would (broken or unusual JSON, flat Log Analytics rows, headers in other
/// shapes): the caller then takes the general path, which also words the errors.
pub(crate) fn parse_line_typed(
    bytes: &[u8],
    dims: &Dimensions,
    out: &mut Vec<Result<Record, String>>,
) -> bool {
    // serde's derived structs also accept arrays, field by position: a line that
    // is not an object is left to the general path.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return false;
    }
    let Ok(mut line) = serde_json::from_slice::<ApimRecord<'_>>(bytes) else {
        return false;
    };
    let (records, enveloped) = match line.records.take() {
        Some(records) => (records, true),
        None => (vec![line], false),
    };
    if !records.iter().all(ApimRecord::is_typed_export) {
        return false;
    }
    for (i, mut record) in records.into_iter().enumerate() {
        let headers = record
            .properties
            .as_mut()
            .and_then(|p| p.request_headers.take())
            .unwrap_or_default();
        let item = map_record(record).map(|mut record| {
            dims.apply_with(&mut record, |source| headers.find(source));
            record
        });
        out.push(match enveloped {
            true => item.map_err(|e| format!("record {}: {e}", i + 1)),
            false => item,
        });
    }
    true
}

impl ApimRecord<'_> {
    /// A diagnostic-export record whose dimension sources are all in its typed
    /// fields.
    fn is_typed_export(&self) -> bool {
        let Some(properties) = &self.properties else {
            return false;
        };
        self.records.is_none()
            && self.top_request_headers.is_none()
            && self.request.is_none()
            && self.metadata.is_none()
            && self.request_tags.is_none()
            && self.consumer.is_none()
            && properties
                .request_headers
                .as_ref()
                .is_none_or(HeaderMap::is_usable)
    }
}

/// The records a value holds: those of a `{"records": [...]}` envelope (flagged
/// `true`, so errors can say which record), or the value itself.
pub fn records(value: &Value) -> Result<(Vec<&Value>, bool), String> {
    match value.get("records").or_else(|| value.get("Records")) {
        Some(Value::Array(records)) => Ok((records.iter().collect(), true)),
        Some(Value::Null) | None => Ok((vec![value], false)),
        Some(_) => Err("field `records`: expected an array".to_owned()),
    }
}

/// Maps one record: a diagnostic-export record (with its nested `properties`), or
/// a flat Log Analytics row of `ApiManagementGatewayLogs` or
/// `ApiManagementGatewayLlmLog` (JSON or CSV query results).
pub fn parse_value(value: &Value) -> Result<Record, String> {
    if !value.is_object() {
        return Err("not an APIM log record: expected an object".to_owned());
    }
    let has = |key: &str| value.get(key).is_some();
    if has("properties") || has("Properties") {
        return parse_record(value);
    }
    // Log Analytics rows are flat, and ApiManagementGatewayLogs has a Category
    // column too: its columns decide before the category does.
    if has("ResponseCode") || has("TotalTime") {
        log_analytics_gateway(value)
    } else if has("PromptTokens") || has("DeploymentName") || has("ModelName") {
        log_analytics_llm(value)
    } else if has("category") || has("Category") {
        parse_record(value)
    } else {
        Err(
            "not an APIM log record: no properties, and neither ApiManagementGatewayLogs \
             (ResponseCode) nor ApiManagementGatewayLlmLog (PromptTokens) columns"
                .to_owned(),
        )
    }
}

/// A column of a Log Analytics row; portal CSV exports suffix times with ` [UTC]`.
fn la<'a>(row: &'a Value, column: &str) -> Option<Scalar<'a>> {
    lookup(row, column).or_else(|| lookup(row, &format!("{column} [UTC]")))
}

fn log_analytics_gateway(row: &Value) -> Result<Record, String> {
    let request = RequestRecord {
        time_us: timestamp(la(row, "TimeGenerated"), "TimeGenerated")?,
        request_id: required_text(la(row, "CorrelationId"), "CorrelationId")?,
        gateway_kind: Some("apim".to_owned()),
        gateway_id: text(la(row, "_ResourceId"), "_ResourceId")?.map(|id| service_name(&id)),
        region: text(la(row, "Region"), "Region")?,
        subscription: text(la(row, "ApimSubscriptionId"), "ApimSubscriptionId")?,
        product: text(la(row, "ProductId"), "ProductId")?,
        user_id: text(la(row, "UserId"), "UserId")?,
        agent: None,
        tool: None,
        api: text(la(row, "ApiId"), "ApiId")?,
        operation: text(la(row, "OperationId"), "OperationId")?,
        backend: text(la(row, "BackendId"), "BackendId")?,
        status_code: status(la(row, "ResponseCode"), "ResponseCode")?
            .ok_or_else(|| "missing field `ResponseCode`".to_owned())?,
        backend_status_code: status(la(row, "BackendResponseCode"), "BackendResponseCode")?,
        total_latency_ms: millis(la(row, "TotalTime"), "TotalTime")?,
        backend_latency_ms: millis(la(row, "BackendTime"), "BackendTime")?,
        cache_status: text(la(row, "Cache"), "Cache")?,
        priority: None,
        error_source: text(la(row, "LastErrorSource"), "LastErrorSource")?,
        error_reason: text(la(row, "LastErrorReason"), "LastErrorReason")?,
    };
    Ok(Record {
        request: Some(request),
        tokens: None,
        metric: None,
        hit: None,
        span: None,
        cost: None,
    })
}

fn log_analytics_llm(row: &Value) -> Result<Record, String> {
    let (prompt_tokens, cached_tokens) = prompt_and_cached(
        la(row, "PromptTokens"),
        "PromptTokens",
        la(row, "PromptCachedTokens"),
        "PromptCachedTokens",
    )?;
    let tokens = TokenRecord {
        time_us: timestamp(la(row, "TimeGenerated"), "TimeGenerated")?,
        request_id: required_text(la(row, "CorrelationId"), "CorrelationId")?,
        deployment: text(la(row, "DeploymentName"), "DeploymentName")?,
        model: text(la(row, "ModelName"), "ModelName")?,
        prompt_tokens,
        cached_tokens,
        completion_tokens: count(la(row, "CompletionTokens"), "CompletionTokens")?.unwrap_or(0),
        reasoning_tokens: 0,
        streamed: flag(la(row, "IsStreamCompletion"), "IsStreamCompletion")?,
        gateway_reported_cost: None,
    };
    Ok(Record {
        request: None,
        tokens: Some(tokens),
        metric: None,
        hit: None,
        span: None,
        cost: None,
    })
}

fn parse_record(value: &Value) -> Result<Record, String> {
    let record =
        ApimRecord::deserialize(value).map_err(|e| format!("not an APIM log record: {e}"))?;
    map_record(record)
}

fn map_record(record: ApimRecord<'_>) -> Result<Record, String> {
    let category = required_text(record.category.clone(), "category")?;
    match category.as_str() {
        "GatewayLogs" => gateway_log(record),
        "GatewayLlmLogs" | "GatewayLlmLog" => llm_log(record),
        other => Err(format!(
            "field `category`: {other:?} is not a gateway log category (GatewayLogs, GatewayLlmLogs)"
        )),
    }
}

fn gateway_log(record: ApimRecord<'_>) -> Result<Record, String> {
    let p = record.properties.unwrap_or_default();
    let last_error = p.last_error.unwrap_or_default();
    let request = RequestRecord {
        time_us: timestamp(record.time, "time")?,
        request_id: required_text(record.correlation_id, "correlationId")?,
        gateway_kind: Some("apim".to_owned()),
        gateway_id: text(record.resource_id, "resourceId")?.map(|id| service_name(&id)),
        region: text(record.location, "location")?,
        subscription: text(p.apim_subscription_id, "apimSubscriptionId")?,
        product: text(p.product_id, "productId")?,
        user_id: text(p.user_id, "userId")?,
        agent: None,
        tool: None,
        api: text(p.api_id, "apiId")?,
        operation: text(p.operation_id, "operationId")?,
        backend: text(p.backend_id, "backendId")?,
        status_code: status(p.response_code, "responseCode")?
            .ok_or_else(|| "missing field `properties.responseCode`".to_owned())?,
        backend_status_code: status(p.backend_response_code, "backendResponseCode")?,
        total_latency_ms: millis(record.duration_ms, "durationMs")?,
        backend_latency_ms: millis(p.backend_time, "backendTime")?,
        cache_status: text(p.cache, "cache")?,
        priority: None,
        error_source: text(last_error.source, "lastError.source")?,
        error_reason: text(last_error.reason, "lastError.reason")?,
    };
    Ok(Record {
        request: Some(request),
        tokens: None,
        metric: None,
        hit: None,
        span: None,
        cost: None,
    })
}

fn llm_log(record: ApimRecord<'_>) -> Result<Record, String> {
    let p = record.properties.unwrap_or_default();
    // The LLM row names the request in its properties; some exports put it on top.
    let request_id = match text(p.correlation_id, "correlationId")? {
        Some(id) => id,
        None => required_text(record.correlation_id, "correlationId")?,
    };
    let (prompt_tokens, cached_tokens) = prompt_and_cached(
        p.prompt_tokens,
        "promptTokens",
        p.prompt_cached_tokens,
        "promptCachedTokens",
    )?;
    let tokens = TokenRecord {
        time_us: timestamp(record.time, "time")?,
        request_id,
        deployment: text(p.deployment_name, "deploymentName")?,
        model: text(p.model_name, "modelName")?,
        prompt_tokens,
        cached_tokens,
        completion_tokens: count(p.completion_tokens, "completionTokens")?.unwrap_or(0),
        reasoning_tokens: 0,
        streamed: flag(p.is_stream_completion, "isStreamCompletion")?,
        gateway_reported_cost: None,
    };
    Ok(Record {
        request: None,
        tokens: Some(tokens),
        metric: None,
        hit: None,
        span: None,
        cost: None,
    })
}

fn timestamp(v: Option<Scalar<'_>>, field: &str) -> Result<i64, String> {
    utc_time(v, field)?.ok_or_else(|| format!("missing field `{field}`"))
}

/// `.../providers/Microsoft.ApiManagement/service/<name>` -> `<name>`, lower-cased
/// (APIM upper-cases resource ids in its logs).
fn service_name(resource_id: &str) -> String {
    let lower = resource_id.to_ascii_lowercase();
    match lower.rsplit_once("/service/") {
        Some((_, name)) => name.split('/').next().unwrap_or(name).to_owned(),
        None => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Vec<Result<Record, String>> {
        let mut out = Vec::new();
        let dims = crate::dimensions::Dimensions::default();
        crate::format::Format::Apim.parse_line(line.as_bytes(), &dims, &mut out);
        out
    }

    #[test]
    fn gateway_429_from_the_token_limit_policy() {
        let line = r#"{"time":"2026-10-01T10:00:00.1234567Z","resourceId":"/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.APIMANAGEMENT/SERVICE/APIM-CONTOSO","category":"GatewayLogs","durationMs":4,"correlationId":"c-1","location":"East US","properties":{"responseCode":429,"cache":"none","apiId":"azure-openai","productId":"silver","apimSubscriptionId":"sub-hr","lastError":{"source":"llm-token-limit","reason":"TokenLimitExceeded","message":"Token limit exceeded"}}}"#;
        let record = parse(line).remove(0).unwrap();
        let r = record.request.unwrap();
        assert!(record.tokens.is_none());
        assert_eq!((r.request_id.as_str(), r.status_code), ("c-1", 429));
        assert_eq!(r.gateway_id.as_deref(), Some("apim-contoso"));
        assert_eq!(r.error_source.as_deref(), Some("llm-token-limit"));
        assert_eq!(r.backend_status_code, None);
    }

    #[test]
    fn envelope_with_pascal_case_llm_rows_and_a_bad_record() {
        let line = r#"{"records":[
            {"Time":"2026-10-01T10:00:01Z","Category":"GatewayLlmLogs","Properties":{"CorrelationId":"c-2","DeploymentName":"gpt-4o","ModelName":"gpt-4o","PromptTokens":120,"PromptCachedTokens":20,"CompletionTokens":30,"IsStreamCompletion":true,"SequenceNumber":0}},
            {"Time":"2026-10-01T10:00:01Z","Category":"GatewayLlmLogs","Properties":{"DeploymentName":"gpt-4o"}},
            {"Time":"2026-10-01T10:00:01Z","Category":"AuditLogs"}
        ]}"#.replace('\n', "");
        let out = parse(&line);
        assert_eq!(out.len(), 3);
        let tokens = out[0].as_ref().unwrap().tokens.clone().unwrap();
        assert_eq!(
            (
                tokens.request_id.as_str(),
                tokens.prompt_tokens,
                tokens.cached_tokens,
                tokens.completion_tokens
            ),
            ("c-2", 120, 20, 30)
        );
        assert_eq!(tokens.streamed, Some(true));
        assert!(
            out[1]
                .as_ref()
                .unwrap_err()
                .starts_with("record 2: missing field `correlationId`"),
            "{:?}",
            out[1]
        );
        assert!(
            out[2].as_ref().unwrap_err().contains("AuditLogs"),
            "{:?}",
            out[2]
        );
    }

    /// The general path, as the fast one must reproduce it.
    fn parse_general(line: &str) -> Vec<Result<Record, String>> {
        let mut out = Vec::new();
        let dims = crate::dimensions::Dimensions::default();
        let value: Value = serde_json::from_str(line).unwrap();
        crate::format::Format::Apim.parse_value(&value, &dims, &mut out);
        out
    }

    #[test]
    fn the_typed_path_maps_every_line_as_the_general_path_does() {
        let samples = [
            include_str!("../../fixtures/samples/apim-gateway-logs.jsonl"),
            include_str!("../../fixtures/samples/apim-llm-logs.json"),
        ];
        let tricky = [
            // Headers in mixed case, a numeric header, an escaped string.
            r#"{"time":"2026-10-01T10:00:00Z","category":"GatewayLogs","correlationId":"c-\u0031","properties":{"responseCode":200,"requestHeaders":{"X-Agent-ID":"a\"1","x-user-id":7}}}"#,
            // An envelope with a record of the wrong category and one missing its id.
            r#"{"records":[{"time":"2026-10-01T10:00:00Z","category":"AuditLogs","properties":{}},{"time":"2026-10-01T10:00:00Z","category":"GatewayLlmLogs","properties":{"promptTokens":5}}]}"#,
            // Cached tokens over the prompt; a status that is no HTTP status.
            r#"{"time":"2026-10-01T10:00:00Z","category":"GatewayLlmLogs","properties":{"correlationId":"c-2","promptTokens":5,"promptCachedTokens":6}}"#,
            r#"{"time":"2026-10-01T10:00:00Z","category":"GatewayLogs","correlationId":"c-3","properties":{"responseCode":999}}"#,
            r#"{"records":[]}"#,
            // Repeated and differently spelled headers; mixed-case property keys.
            r#"{"time":"2026-10-01T10:00:00Z","category":"GatewayLogs","correlationId":"c-4","properties":{"responseCode":200,"requestHeaders":{"x-agent-id":"a","X-Agent-Id":"b","x-agent-id":"c"}}}"#,
            r#"{"time":"2026-10-01T10:00:00Z","category":"GatewayLogs","correlationId":"c-5","Properties":{"responseCode":200,"requestHeaders":{"x-agent-id":"a"}}}"#,
            r#"{"records":null,"time":"2026-10-01T10:00:00Z","category":"GatewayLogs","correlationId":"c-6","properties":{"responseCode":200}}"#,
            // A field of the wrong type is that record's error, on either path.
            r#"{"time":"2026-10-01T10:00:00Z","category":"GatewayLogs","correlationId":"c","properties":{"responseCode":429,"lastError":{"source":["llm-token-limit"]}}}"#,
            r#"{"time":{"at":1},"category":"GatewayLogs","correlationId":"c","properties":{"responseCode":200}}"#,
        ];
        let lines = samples
            .iter()
            .flat_map(|s| s.lines())
            .chain(tricky)
            .filter(|l| !l.trim().is_empty());
        let mut typed_lines = 0;
        for line in lines {
            let mut typed = Vec::new();
            let dims = crate::dimensions::Dimensions::default();
            if parse_line_typed(line.as_bytes(), &dims, &mut typed) {
                typed_lines += 1;
                assert_eq!(typed, parse_general(line), "{line}");
            }
        }
        assert!(
            typed_lines >= tricky.len(),
            "the fast path took {typed_lines} lines"
        );
    }

    #[test]
    fn lines_the_typed_path_cannot_map_exactly_go_the_general_way() {
        let dims = crate::dimensions::Dimensions::default();
        for line in [
            "{\"records\": [",
            // Derived structs would take an array field by field.
            r#"[{"time":"2026-10-01T10:00:00Z"},"GatewayLogs",null,null,null,null,{"responseCode":200}]"#,
            r#"{"records":{"a":1}}"#,
            r#"{"TimeGenerated":"2026-10-01T10:00:00Z","CorrelationId":"c","ResponseCode":200}"#,
            r#"{"time":"2026-10-01T10:00:00Z","category":"GatewayLogs","correlationId":"c","properties":{"responseCode":200,"requestHeaders":"{\"x-agent-id\":\"a\"}"}}"#,
            r#"{"time":"2026-10-01T10:00:00Z","category":"GatewayLogs","correlationId":"c","metadata":{"agent_id":"a"},"properties":{"responseCode":200}}"#,
        ] {
            let mut out = Vec::new();
            assert!(
                !parse_line_typed(line.as_bytes(), &dims, &mut out),
                "{line}"
            );
            assert!(out.is_empty());
        }
    }

    #[test]
    fn a_wrong_type_in_last_error_names_the_field() {
        let out = parse(
            r#"{"time":"2026-10-01T10:00:00Z","category":"GatewayLogs","correlationId":"c","properties":{"responseCode":429,"lastError":{"source":{"policy":"x"}}}}"#,
        );
        assert_eq!(
            out[0].as_ref().unwrap_err(),
            "field `lastError.source`: expected a string, got an object or array"
        );
    }

    #[test]
    fn broken_json_is_one_quarantined_record() {
        let out = parse("{\"records\": [");
        assert_eq!(out.len(), 1);
        assert!(out[0].as_ref().unwrap_err().starts_with("broken JSON"));
    }
}
