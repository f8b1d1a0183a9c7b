//! Tollgate's own canonical JSON-lines format: one object per request carrying both
//! its request and token fields (documented in `docs/canonical-format.md`).

use chrono::DateTime;
use serde::Deserialize;

use crate::record::{Record, RequestRecord, TokenRecord};
use crate::scalar::{
    Scalar, amount, count, flag, millis, prompt_and_cached, required_text, status, text,
};

#[derive(Deserialize)]
struct CanonicalLine<'a> {
    #[serde(borrow)]
    request_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    time: Option<Scalar<'a>>,
    #[serde(borrow)]
    gateway_kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    gateway_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    region: Option<Scalar<'a>>,
    #[serde(borrow)]
    subscription: Option<Scalar<'a>>,
    #[serde(borrow)]
    product: Option<Scalar<'a>>,
    #[serde(borrow)]
    user_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    agent: Option<Scalar<'a>>,
    #[serde(borrow)]
    tool: Option<Scalar<'a>>,
    #[serde(borrow)]
    api: Option<Scalar<'a>>,
    #[serde(borrow)]
    operation: Option<Scalar<'a>>,
    #[serde(borrow)]
    backend: Option<Scalar<'a>>,
    #[serde(borrow)]
    status_code: Option<Scalar<'a>>,
    #[serde(borrow)]
    backend_status_code: Option<Scalar<'a>>,
    #[serde(borrow)]
    total_latency_ms: Option<Scalar<'a>>,
    #[serde(borrow)]
    backend_latency_ms: Option<Scalar<'a>>,
    #[serde(borrow)]
    cache_status: Option<Scalar<'a>>,
    #[serde(borrow)]
    priority: Option<Scalar<'a>>,
    #[serde(borrow)]
    error_source: Option<Scalar<'a>>,
    #[serde(borrow)]
    error_reason: Option<Scalar<'a>>,
    #[serde(borrow)]
    deployment: Option<Scalar<'a>>,
    #[serde(borrow)]
    model: Option<Scalar<'a>>,
    #[serde(borrow)]
    prompt_tokens: Option<Scalar<'a>>,
    #[serde(borrow)]
    cached_tokens: Option<Scalar<'a>>,
    #[serde(borrow)]
    completion_tokens: Option<Scalar<'a>>,
    #[serde(borrow)]
    reasoning_tokens: Option<Scalar<'a>>,
    #[serde(borrow)]
    streamed: Option<Scalar<'a>>,
    #[serde(borrow)]
    gateway_reported_cost: Option<Scalar<'a>>,
}

/// Parses one canonical line; `Err` is the quarantine reason.
pub fn parse_line(bytes: &[u8]) -> Result<Record, String> {
    let line: CanonicalLine<'_> = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            format!("not a canonical record: {e}")
        } else {
            format!("broken JSON: {e}")
        }
    })?;

    let request_id = required_text(line.request_id, "request_id")?;
    let time_us = timestamp(line.time, "time")?;
    let status_code = status(line.status_code, "status_code")?
        .ok_or_else(|| "missing field `status_code`".to_owned())?;
    let request = RequestRecord {
        time_us,
        request_id,
        gateway_kind: text(line.gateway_kind, "gateway_kind")?,
        gateway_id: text(line.gateway_id, "gateway_id")?,
        region: text(line.region, "region")?,
        subscription: text(line.subscription, "subscription")?,
        product: text(line.product, "product")?,
        user_id: text(line.user_id, "user_id")?,
        agent: text(line.agent, "agent")?,
        tool: text(line.tool, "tool")?,
        api: text(line.api, "api")?,
        operation: text(line.operation, "operation")?,
        backend: text(line.backend, "backend")?,
        status_code,
        backend_status_code: status(line.backend_status_code, "backend_status_code")?,
        total_latency_ms: millis(line.total_latency_ms, "total_latency_ms")?,
        backend_latency_ms: millis(line.backend_latency_ms, "backend_latency_ms")?,
        cache_status: text(line.cache_status, "cache_status")?,
        priority: text(line.priority, "priority")?,
        error_source: text(line.error_source, "error_source")?,
        error_reason: text(line.error_reason, "error_reason")?,
    };

    let deployment = text(line.deployment, "deployment")?;
    let model = text(line.model, "model")?;
    let has_prompt = !matches!(line.prompt_tokens, None | Some(Scalar::Null));
    let has_cached = !matches!(line.cached_tokens, None | Some(Scalar::Null));
    let (prompt_tokens, cached_tokens) = prompt_and_cached(
        line.prompt_tokens,
        "prompt_tokens",
        line.cached_tokens,
        "cached_tokens",
    )?;
    let completion = count(line.completion_tokens, "completion_tokens")?;
    let reasoning = count(line.reasoning_tokens, "reasoning_tokens")?;
    let streamed = flag(line.streamed, "streamed")?;
    let gateway_reported_cost = amount(line.gateway_reported_cost, "gateway_reported_cost")?;
    let has_tokens = deployment.is_some()
        || model.is_some()
        || has_prompt
        || completion.is_some()
        || has_cached
        || reasoning.is_some();
    let tokens = if has_tokens {
        Some(TokenRecord {
            time_us: request.time_us,
            request_id: request.request_id.clone(),
            deployment,
            model,
            prompt_tokens,
            cached_tokens,
            completion_tokens: completion.unwrap_or(0),
            reasoning_tokens: reasoning.unwrap_or(0),
            streamed,
            gateway_reported_cost,
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

/// An RFC 3339 time with an offset, to microseconds in UTC.
fn timestamp(v: Option<Scalar<'_>>, field: &str) -> Result<i64, String> {
    let raw = required_text(v, field)?;
    let parsed = DateTime::parse_from_rfc3339(&raw)
        .map_err(|e| format!("field `{field}`: {raw:?} is not an RFC 3339 time ({e})"))?;
    Ok(parsed.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"request_id":"r-1","time":"2026-10-01T12:00:00.1234567Z","gateway_kind":"apim","status_code":200,"subscription":"sub-a","deployment":"gpt-4o","model":"gpt-4o","prompt_tokens":100,"cached_tokens":20,"completion_tokens":50,"total_latency_ms":812.6,"extra":{"ignored":[1,2]}}"#;

    #[test]
    fn a_full_line_maps_to_both_tables() {
        let record = parse_line(GOOD.as_bytes()).unwrap();
        let request = record.request.unwrap();
        assert_eq!(request.request_id, "r-1");
        // 7 fractional digits from APIM: microseconds kept, the 100 ns digit dropped.
        assert_eq!(request.time_us % 1_000_000, 123_456);
        assert_eq!(request.total_latency_ms, Some(813));
        let tokens = record.tokens.unwrap();
        assert_eq!(
            (tokens.time_us, tokens.request_id.as_str()),
            (request.time_us, "r-1")
        );
        assert_eq!(
            (
                tokens.prompt_tokens,
                tokens.cached_tokens,
                tokens.completion_tokens
            ),
            (100, 20, 50)
        );
    }

    #[test]
    fn a_gateway_429_has_no_token_row() {
        let line = r#"{"request_id":"r-2","time":"2026-10-01T12:00:00Z","status_code":429,"error_source":"llm-token-limit"}"#;
        let record = parse_line(line.as_bytes()).unwrap();
        assert!(record.tokens.is_none());
        assert_eq!(
            record.request.unwrap().error_source.as_deref(),
            Some("llm-token-limit")
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let cases = [
            ("{\"request_id\":", "broken JSON"),
            (
                r#"{"time":"2026-10-01T12:00:00Z","status_code":200}"#,
                "missing field `request_id`",
            ),
            (
                r#"{"request_id":"x","time":"yesterday","status_code":200}"#,
                "field `time`",
            ),
            (
                r#"{"request_id":"x","time":"2026-10-01T12:00:00Z","status_code":200,"prompt_tokens":-1}"#,
                "field `prompt_tokens`: negative",
            ),
            (
                r#"{"request_id":"x","time":"2026-10-01T12:00:00Z","status_code":200,"completion_tokens":"many"}"#,
                "field `completion_tokens`",
            ),
            (
                r#"{"request_id":"x","time":"2026-10-01T12:00:00Z","status_code":200,"prompt_tokens":1,"cached_tokens":2}"#,
                "exceeds prompt_tokens",
            ),
            (r#"[1,2]"#, "not a canonical record"),
        ];
        for (line, expected) in cases {
            let err = parse_line(line.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn token_counts_round_trip(p in 0i64..1_000_000_000, c in 0i64..1_000_000_000) {
            let cached = p / 2;
            let line = format!(r#"{{"request_id":"r","time":"2026-10-01T00:00:00Z","status_code":200,"prompt_tokens":{p},"cached_tokens":{cached},"completion_tokens":{c}}}"#);
            let tokens = parse_line(line.as_bytes()).unwrap().tokens.unwrap();
            proptest::prop_assert_eq!((tokens.prompt_tokens, tokens.cached_tokens, tokens.completion_tokens), (p, cached, c));
        }
    }
}
