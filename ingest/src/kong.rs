//! Kong AI Gateway log entries (file-log / http-log plugins): Kong's usual request
//! log plus the `ai` section the AI plugins add (usage, meta, cache status).

use serde_json::Value;

use crate::record::{Record, RequestRecord, TokenRecord};
use crate::scalar::{Fields, first_text, lookup_value, prompt_and_cached};

/// Maps one log entry.
pub fn parse_value(entry: &Value) -> Result<Record, String> {
    if !entry.is_object() {
        return Err("not a Kong log entry: expected a JSON object".to_owned());
    }
    let fields = Fields::of(entry);

    let request_id = first_text(
        entry,
        &[
            "request.id",
            "request.headers.x-kong-request-id",
            "correlation_id",
        ],
    )?
    .ok_or_else(|| "missing field `request.id`".to_owned())?;
    let started_ms = fields
        .count("started_at")?
        .ok_or_else(|| "missing field `started_at`".to_owned())?;
    let time_us = started_ms
        .checked_mul(1000)
        .ok_or_else(|| format!("field `started_at`: {started_ms} is out of range"))?;
    // The AI plugins log under `ai.proxy` (ai-proxy) or their full name.
    let ai = ["ai.proxy", "ai.ai-proxy", "ai.ai-proxy-advanced"]
        .iter()
        .find_map(|p| lookup_value(entry, p));
    // Errors name the fields as ai-proxy logs them.
    let ai_fields = Fields::under(ai, "ai.proxy");

    let consumer = first_text(
        entry,
        &["consumer.username", "consumer.custom_id", "consumer.id"],
    )?;
    let cache = ai_fields
        .text("cache.cache_status")?
        .map(|s| s.to_ascii_lowercase());
    let request = RequestRecord {
        time_us,
        request_id: request_id.clone(),
        gateway_kind: Some("kong".to_owned()),
        gateway_id: first_text(entry, &["workspace_name", "workspace"])?,
        region: None,
        subscription: consumer,
        product: None,
        user_id: None,
        agent: None,
        tool: None,
        api: fields.text("service.name")?,
        operation: fields.text("route.name")?,
        backend: fields.text("service.host")?,
        status_code: fields
            .status("response.status")?
            .ok_or_else(|| "missing field `response.status`".to_owned())?,
        backend_status_code: None,
        total_latency_ms: fields.millis("latencies.request")?,
        backend_latency_ms: fields.millis("latencies.proxy")?,
        cache_status: cache,
        priority: None,
        error_source: None,
        error_reason: None,
    };

    let tokens = match ai {
        Some(_) if ai_fields.get("usage").is_some() => {
            let (prompt, cached) = (
                "usage.prompt_tokens",
                "usage.prompt_tokens_details.cached_tokens",
            );
            let (prompt_tokens, cached_tokens) = prompt_and_cached(
                ai_fields.get(prompt),
                &ai_fields.name(prompt),
                ai_fields.get(cached),
                &ai_fields.name(cached),
            )?;
            let request_model = ai_fields.text("meta.request_model")?;
            let response_model = ai_fields.text("meta.response_model")?;
            let mode = ai_fields.text("meta.request_mode")?;
            Some(TokenRecord {
                time_us,
                request_id,
                model: response_model.or_else(|| request_model.clone()),
                deployment: request_model,
                prompt_tokens,
                cached_tokens,
                completion_tokens: ai_fields.count("usage.completion_tokens")?.unwrap_or(0),
                reasoning_tokens: ai_fields
                    .count("usage.completion_tokens_details.reasoning_tokens")?
                    .unwrap_or(0),
                streamed: mode.map(|m| m == "stream"),
                gateway_reported_cost: ai_fields.amount("usage.cost")?,
            })
        }
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(bytes: &[u8]) -> Result<Record, String> {
        parse_value(&serde_json::from_slice(bytes).map_err(|e| e.to_string())?)
    }

    const ENTRY: &str = r#"{"request":{"id":"k-1","method":"POST","uri":"/openai/chat","headers":{"x-kong-request-id":"other"}},"response":{"status":200},"latencies":{"request":930,"proxy":905,"kong":25},"started_at":1790845200123,"consumer":{"id":"c-9","username":"team-research"},"service":{"name":"openai-chat","host":"api.openai.com"},"route":{"name":"chat"},"workspace_name":"default","ai":{"proxy":{"usage":{"prompt_tokens":900,"prompt_tokens_details":{"cached_tokens":100},"completion_tokens":120,"completion_tokens_details":{"reasoning_tokens":40},"total_tokens":1020,"cost":0.0123},"meta":{"request_model":"gpt-4o","response_model":"gpt-4o-2024-08-06","provider_name":"openai","request_mode":"stream","llm_latency":880},"cache":{"cache_status":"Miss"}}}}"#;

    #[test]
    fn an_ai_proxy_entry_maps_to_both_tables() {
        let record = parse_line(ENTRY.as_bytes()).unwrap();
        let r = record.request.unwrap();
        assert_eq!(
            (r.request_id.as_str(), r.time_us, r.status_code),
            ("k-1", 1_790_845_200_123_000, 200)
        );
        assert_eq!(r.subscription.as_deref(), Some("team-research"));
        assert_eq!(
            (r.total_latency_ms, r.backend_latency_ms),
            (Some(930), Some(905))
        );
        assert_eq!(r.cache_status.as_deref(), Some("miss"));
        let t = record.tokens.unwrap();
        assert_eq!(
            (
                t.prompt_tokens,
                t.cached_tokens,
                t.completion_tokens,
                t.reasoning_tokens
            ),
            (900, 100, 120, 40)
        );
        assert_eq!(
            (t.model.as_deref(), t.deployment.as_deref(), t.streamed),
            (Some("gpt-4o-2024-08-06"), Some("gpt-4o"), Some(true))
        );
    }

    #[test]
    fn a_plain_kong_entry_has_no_token_row_and_bad_ones_say_why() {
        let plain =
            r#"{"request":{"id":"k-2"},"response":{"status":429},"started_at":1790845200000}"#;
        let record = parse_line(plain.as_bytes()).unwrap();
        assert!(record.tokens.is_none());
        let cases = [
            (
                r#"{"response":{"status":200},"started_at":1}"#,
                "missing field `request.id`",
            ),
            (
                r#"{"request":{"id":"x"},"response":{"status":200}}"#,
                "missing field `started_at`",
            ),
            (
                r#"{"request":{"id":"x"},"response":{"status":200},"started_at":1,"ai":{"proxy":{"usage":{"prompt_tokens":-1}}}}"#,
                "negative value -1",
            ),
            (r#"[1]"#, "not a Kong log entry"),
            // Each field named as the entry spells it, the AI plugin's under
            // `ai.proxy` whichever plugin logged it.
            (
                r#"{"request":{"id":"x"},"response":{"status":200},"started_at":1,"latencies":{"request":-5}}"#,
                "field `latencies.request`: negative value -5",
            ),
            (
                r#"{"request":{"id":"x"},"response":{"status":200},"started_at":1,"ai":{"proxy":{"usage":{"cost":true}}}}"#,
                "field `ai.proxy.usage.cost`: expected a non-negative amount",
            ),
            (
                r#"{"request":{"id":"x"},"response":{"status":200},"started_at":1,"ai":{"ai-proxy":{"usage":{},"meta":{"request_model":[1]}}}}"#,
                "field `ai.proxy.meta.request_model`: expected a string",
            ),
            (
                r#"{"request":{"id":"x"},"response":{"status":200},"started_at":1,"ai":{"proxy":{"cache":{"cache_status":{}}}}}"#,
                "field `ai.proxy.cache.cache_status`: expected a string",
            ),
        ];
        for (line, want) in cases {
            let err = parse_line(line.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
