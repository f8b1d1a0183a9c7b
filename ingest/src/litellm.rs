//! LiteLLM spend logs (`LiteLLM_SpendLogs` exported as JSON lines, a JSON array or
//! CSV): one row per call, carrying both the request and its token usage, with
//! LiteLLM's own cost estimate kept as `gateway_reported_cost` beside ours.
//!
//! Mapping: the virtual key (`api_key`, hashed) is the subscription and the team
//! the product, as keys and teams are what LiteLLM budgets; `model_group` is the
//! deployment the router chose from, `model_id` the backend it picked.

use serde_json::Value;

use crate::record::{Record, RequestRecord, TokenRecord};
use crate::scalar::{Fields, first_text, lookup_value};

/// Maps one spend-log row (from JSON or a typed CSV row).
pub fn parse_value(row: &Value) -> Result<Record, String> {
    if !row.is_object() {
        return Err("not a LiteLLM spend log row: expected an object".to_owned());
    }
    let fields = Fields::of(row);
    let request_id = fields.required_text("request_id")?;
    let start = fields
        .utc_time("startTime")?
        .ok_or("missing field `startTime`")?;
    let end = fields.utc_time("endTime")?;
    let duration = match fields.millis("request_duration_ms")? {
        Some(ms) => Some(ms),
        None => end
            .and_then(|end| end.checked_sub(start))
            .map(|us| (us.max(0) + 500) / 1000),
    };
    // LiteLLM records success or failure, not the HTTP status; a failure may carry
    // the provider's code in its metadata, and the exception's class, which is
    // what tells a guardrail or content-filter block (`ContentPolicyViolationError`,
    // `BlockedPiiEntityError`) from a rate limit.
    let status = fields.text("status")?;
    let failed = !matches!(status.as_deref(), None | Some("success"));
    let error_information = failed
        .then(|| lookup_value(row, "metadata").and_then(metadata_object))
        .flatten()
        .and_then(|m| m.get("error_information").cloned());
    let error_info = |key: &str| error_information.as_ref().and_then(|e| e.get(key));
    let status_code = match failed {
        false => 200,
        true => error_info("error_code")
            .and_then(|code| match code {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .filter(|c| (100..=599).contains(c))
            .unwrap_or(500) as i32,
    };
    let error_class = error_info("error_class")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let cache_hit = fields.flag("cache_hit")?;
    let request = RequestRecord {
        time_us: start,
        request_id: request_id.clone(),
        gateway_kind: Some("litellm".to_owned()),
        gateway_id: None,
        region: None,
        subscription: fields.text("api_key")?,
        product: fields.text("team_id")?,
        user_id: first_text(row, &["user", "end_user"])?,
        agent: fields.text("agent_id")?,
        tool: fields.text("mcp_namespaced_tool_name")?,
        api: fields.text("call_type")?,
        operation: None,
        backend: first_text(row, &["model_id", "api_base"])?,
        status_code,
        backend_status_code: None,
        total_latency_ms: duration,
        backend_latency_ms: None,
        cache_status: cache_hit.map(|hit| if hit { "hit" } else { "miss" }.to_owned()),
        priority: None,
        error_source: status.filter(|s| s != "success"),
        error_reason: error_class,
    };

    let model = fields.text("model")?;
    let prompt_tokens = fields.count("prompt_tokens")?;
    let completion_tokens = fields.count("completion_tokens")?;
    let tokens = if model.is_some() || prompt_tokens.is_some() || completion_tokens.is_some() {
        let prompt_tokens = prompt_tokens.unwrap_or(0);
        let cached_tokens = lookup_value(row, "metadata")
            .and_then(metadata_object)
            .and_then(|m| {
                m.pointer("/usage_object/prompt_tokens_details/cached_tokens")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(0)
            .clamp(0, prompt_tokens);
        let spend = fields.amount("spend")?;
        Some(TokenRecord {
            time_us: start,
            request_id,
            deployment: fields.text("model_group")?,
            model,
            prompt_tokens,
            cached_tokens,
            completion_tokens: completion_tokens.unwrap_or(0),
            reasoning_tokens: 0,
            streamed: None,
            gateway_reported_cost: spend,
        })
    } else {
        None
    };
    Ok(Record {
        request: Some(request),
        tokens,
        metric: None,
        hit: None,
        span: None,
        cost: None,
    })
}

/// `metadata` is an object in JSON exports and a JSON string in CSV ones.
fn metadata_object(v: &Value) -> Option<Value> {
    match v {
        Value::Object(_) => Some(v.clone()),
        Value::String(s) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(bytes: &[u8]) -> Result<Record, String> {
        parse_value(&serde_json::from_slice(bytes).map_err(|e| e.to_string())?)
    }

    #[test]
    fn a_json_row_maps_with_litellms_own_cost() {
        let line = r#"{"request_id":"chatcmpl-1","call_type":"acompletion","api_key":"88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b","spend":0.00042,"total_tokens":330,"prompt_tokens":300,"completion_tokens":30,"startTime":"2026-10-01 09:00:00.250","endTime":"2026-10-01 09:00:01.100","model":"gpt-4o-mini","model_id":"d9e1","model_group":"gpt-4o-mini","user":"alice","metadata":{"usage_object":{"prompt_tokens_details":{"cached_tokens":64}}},"cache_hit":"False","team_id":"team-support","status":"success","agent_id":"support-bot"}"#;
        let record = parse_line(line.as_bytes()).unwrap();
        let r = record.request.unwrap();
        assert_eq!(
            (r.request_id.as_str(), r.status_code, r.total_latency_ms),
            ("chatcmpl-1", 200, Some(850))
        );
        assert_eq!(
            (
                r.product.as_deref(),
                r.agent.as_deref(),
                r.cache_status.as_deref()
            ),
            (Some("team-support"), Some("support-bot"), Some("miss"))
        );
        let t = record.tokens.unwrap();
        assert_eq!(
            (t.prompt_tokens, t.cached_tokens, t.completion_tokens),
            (300, 64, 30)
        );
        assert_eq!(t.gateway_reported_cost, Some(0.00042));
    }

    #[test]
    fn a_failure_takes_its_code_from_metadata() {
        let line = r#"{"request_id":"f-1","startTime":"2026-10-01T09:00:00Z","status":"failure","metadata":"{\"error_information\":{\"error_code\":\"429\"}}"}"#;
        let r = parse_line(line.as_bytes()).unwrap().request.unwrap();
        assert_eq!(
            (r.status_code, r.error_source.as_deref()),
            (429, Some("failure"))
        );
        assert_eq!(r.error_reason, None);
        // A guardrail's block: its exception class is the reason.
        let line = r#"{"request_id":"f-2","startTime":"2026-10-01T09:00:00Z","status":"failure","metadata":{"error_information":{"error_code":"400","error_class":"BlockedPiiEntityError"}}}"#;
        let r = parse_line(line.as_bytes()).unwrap().request.unwrap();
        assert_eq!(
            (r.status_code, r.error_reason.as_deref()),
            (400, Some("BlockedPiiEntityError"))
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let line = r#"{"request_id":"x","startTime":"-262000-01-01 00:00:00","endTime":"+262000-01-01 00:00:00"}"#;
        // Whether or not such a time is accepted, nothing panics.
        let _ = parse_line(line.as_bytes());
    }

    #[test]
    fn bad_rows_say_why() {
        for (line, want) in [
            (
                r#"{"startTime":"2026-10-01T09:00:00Z"}"#,
                "missing field `request_id`",
            ),
            (r#"{"request_id":"x"}"#, "missing field `startTime`"),
            (
                r#"{"request_id":"x","startTime":"soon"}"#,
                "field `startTime`",
            ),
            (
                r#"{"request_id":"x","startTime":"2026-10-01T09:00:00Z","prompt_tokens":-2}"#,
                "negative value -2",
            ),
            (
                r#"{"request_id":"x","startTime":"2026-10-01T09:00:00Z","model":"m","spend":"lots"}"#,
                "field `spend`",
            ),
            (
                r#"{"request_id":"x","startTime":"2026-10-01T09:00:00Z","cache_hit":[true]}"#,
                "field `cache_hit`",
            ),
            (
                r#"{"request_id":"x","startTime":"2026-10-01T09:00:00Z","team_id":{"id":1}}"#,
                "field `team_id`: expected a string",
            ),
            (
                r#"{"request_id":"x","startTime":"2026-10-01T09:00:00Z","request_duration_ms":-1}"#,
                "field `request_duration_ms`: negative value -1",
            ),
        ] {
            let err = parse_line(line.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
