//! The bounds every record is held to, whatever format it came in: times inside
//! the accepted window, counts and sizes no gateway could produce, fields no
//! longer than an id or a message can be. Adapters parse; [`Limits::check`]
//! judges the parsed record once, so a new adapter cannot forget a bound. A
//! record outside them is quarantined with the field and the bound it broke
//! (`docs/security.md` lists them).

use chrono::{DateTime, Utc};
use tollgate_store::TimeWindow;
use tollgate_store::clock::OutsideWindow;

use crate::cost::CostRecord;
use crate::hit::HitRecord;
use crate::record::{MetricRecord, Record, RequestRecord, TokenRecord};
use crate::span::SpanRecord;

/// What one record, one file and one batch may hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Each token count of one request (prompt, cached, completion, reasoning).
    pub max_tokens: i64,
    /// A request's total or backend latency.
    pub max_latency_ms: i64,
    /// A gateway's own cost estimate for one request.
    pub max_cost: f64,
    /// The magnitude of one cost line's amounts and quantities (a provider's
    /// cost export), in its currency or units.
    pub max_billed_amount: i64,
    /// A pre-aggregated metric's value and its count of observations.
    pub max_metric_value: f64,
    pub max_metric_count: i64,
    /// Ids and dimension values (request id, subscription, agent, ...).
    pub max_id_bytes: usize,
    /// Free text (an error reason, a DLP hit's info types, metric dimensions).
    pub max_text_bytes: usize,
    /// One input record: a line, a JSON array element, a CSV row.
    pub max_record_bytes: usize,
    /// A whole JSON document read at once (a pretty-printed envelope, a Log
    /// Analytics REST table); larger exports stream as lines, arrays or CSV.
    pub max_document_bytes: u64,
    /// The content of one file or body after decompression.
    pub max_content_bytes: u64,
    /// Quarantined records kept with their reasons per batch; beyond it they
    /// are counted only.
    pub max_quarantine_rows: usize,
}

pub const MIB: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tokens: 1_000_000_000,
            max_latency_ms: 86_400_000,
            max_cost: 1_000_000.0,
            max_billed_amount: 1_000_000_000_000,
            max_metric_value: 1e15,
            max_metric_count: 1_000_000_000_000,
            max_id_bytes: 4 * 1024,
            max_text_bytes: 64 * 1024,
            max_record_bytes: 16 * MIB as usize,
            max_document_bytes: 32 * MIB,
            max_content_bytes: 64 * 1024 * MIB,
            max_quarantine_rows: 1000,
        }
    }
}

/// The bounds of one pass: the limits and the time window as of its start.
#[derive(Debug, Clone)]
pub struct Check {
    pub limits: Limits,
    pub window: TimeWindow,
    pub now: DateTime<Utc>,
}

impl Check {
    /// The record if every part of it is within bounds, else the first reason.
    pub fn record(&self, record: Record) -> Result<Record, String> {
        if let Some(r) = &record.request {
            self.request(r)?;
        }
        if let Some(t) = &record.tokens {
            self.tokens(t)?;
        }
        if let Some(m) = &record.metric {
            self.metric(m)?;
        }
        if let Some(h) = &record.hit {
            self.hit(h)?;
        }
        if let Some(s) = &record.span {
            self.span(s)?;
        }
        if let Some(c) = &record.cost {
            self.cost(c)?;
        }
        Ok(record)
    }

    fn time(&self, time_us: i64, field: &str) -> Result<(), String> {
        let outside = match self.window.check_us(time_us, self.now) {
            Ok(()) => return Ok(()),
            Err(OutsideWindow::TooEarly) => "before",
            Err(OutsideWindow::TooLate) => "after",
        };
        let shown = DateTime::<Utc>::from_timestamp_micros(time_us)
            .map_or_else(|| format!("{time_us} us"), |t| t.to_rfc3339());
        Err(format!(
            "field `{field}`: {shown} is {outside} the accepted window {} ([ingest.limits])",
            self.window.describe(self.now)
        ))
    }

    fn id(&self, value: &str, field: &str) -> Result<(), String> {
        bytes(value, self.limits.max_id_bytes, field)
    }

    fn ids<'a>(
        &self,
        fields: impl IntoIterator<Item = (&'a Option<String>, &'a str)>,
    ) -> Result<(), String> {
        for (value, field) in fields {
            if let Some(value) = value {
                self.id(value, field)?;
            }
        }
        Ok(())
    }

    fn text(&self, value: Option<&str>, field: &str) -> Result<(), String> {
        value.map_or(Ok(()), |v| bytes(v, self.limits.max_text_bytes, field))
    }

    fn request(&self, r: &RequestRecord) -> Result<(), String> {
        self.time(r.time_us, "time")?;
        self.id(&r.request_id, "request_id")?;
        self.ids([
            (&r.gateway_kind, "gateway_kind"),
            (&r.gateway_id, "gateway_id"),
            (&r.region, "region"),
            (&r.subscription, "subscription"),
            (&r.product, "product"),
            (&r.user_id, "user_id"),
            (&r.agent, "agent"),
            (&r.tool, "tool"),
            (&r.api, "api"),
            (&r.operation, "operation"),
            (&r.backend, "backend"),
            (&r.cache_status, "cache_status"),
            (&r.priority, "priority"),
            (&r.error_source, "error_source"),
        ])?;
        self.text(r.error_reason.as_deref(), "error_reason")?;
        for (value, field) in [
            (r.total_latency_ms, "total_latency_ms"),
            (r.backend_latency_ms, "backend_latency_ms"),
        ] {
            at_most(
                value.unwrap_or(0),
                self.limits.max_latency_ms,
                field,
                "a request may take (ms)",
            )?;
        }
        Ok(())
    }

    fn tokens(&self, t: &TokenRecord) -> Result<(), String> {
        self.time(t.time_us, "time")?;
        self.id(&t.request_id, "request_id")?;
        self.ids([(&t.deployment, "deployment"), (&t.model, "model")])?;
        for (value, field) in [
            (t.prompt_tokens, "prompt_tokens"),
            (t.cached_tokens, "cached_tokens"),
            (t.completion_tokens, "completion_tokens"),
            (t.reasoning_tokens, "reasoning_tokens"),
        ] {
            at_most(
                value,
                self.limits.max_tokens,
                field,
                "tokens a request may count",
            )?;
        }
        if let Some(cost) = t.gateway_reported_cost
            && !(0.0..=self.limits.max_cost).contains(&cost)
        {
            return Err(format!(
                "field `gateway_reported_cost`: {cost} is outside 0 to the {} a request may cost",
                self.limits.max_cost
            ));
        }
        Ok(())
    }

    fn metric(&self, m: &MetricRecord) -> Result<(), String> {
        self.time(m.time_us, "time")?;
        self.id(&m.metric_id, "metric_id")?;
        self.id(&m.metric, "metric")?;
        let names = [
            "api",
            "operation",
            "product",
            "user_id",
            "subscription",
            "region",
            "gateway_id",
            "backend",
            "model",
        ];
        self.ids(m.dims.iter().zip(names))?;
        self.text(Some(&m.dimensions_json), "dimensions")?;
        if !(m.value.is_finite() && m.value.abs() <= self.limits.max_metric_value) {
            return Err(format!(
                "field `value`: {} is beyond the {} a metric may sum to",
                m.value, self.limits.max_metric_value
            ));
        }
        at_most(
            m.value_count,
            self.limits.max_metric_count,
            "value_count",
            "observations a metric may count",
        )
    }

    fn hit(&self, h: &HitRecord) -> Result<(), String> {
        self.time(h.time_us, "time")?;
        for (value, field) in [
            (&h.hit_id, "hit_id"),
            (&h.source, "source"),
            (&h.policy, "policy"),
            (&h.action, "action"),
        ] {
            self.id(value, field)?;
        }
        self.ids([
            (&h.rule, "rule"),
            (&h.severity, "severity"),
            (&h.label, "label"),
            (&h.agent, "agent"),
            (&h.app, "app"),
            (&h.user_id, "user_id"),
            (&h.request_id, "request_id"),
            (&h.resource_namespace, "resource_namespace"),
            (&h.resource_name, "resource_name"),
        ])?;
        self.text(h.sensitive_info_types.as_deref(), "sensitive_info_types")
    }

    fn cost(&self, c: &CostRecord) -> Result<(), String> {
        self.time(c.time_us, c.export.time_column())?;
        self.ids(c.named_text())?;
        self.ids([(&c.unit, "unit"), (&c.pricing_unit, "pricing_unit")])?;
        self.text(c.tags.as_deref(), "Tags")?;
        let max =
            i128::from(self.limits.max_billed_amount) * i128::from(tollgate_store::rate::PICO);
        let amounts = [
            (Some(c.billed_cost), "billed_cost"),
            (c.effective_cost, "effective_cost"),
            (c.list_cost, "list_cost"),
            (c.list_unit_price, "list_unit_price"),
            (c.quantity, "quantity"),
            (c.pricing_quantity, "pricing_quantity"),
        ];
        for (amount, field) in amounts {
            if amount.is_some_and(|a| a.abs() > max) {
                return Err(format!(
                    "field `{field}`: more than {} in magnitude ([ingest.limits] max_billed_amount)",
                    self.limits.max_billed_amount
                ));
            }
        }
        Ok(())
    }

    fn span(&self, s: &SpanRecord) -> Result<(), String> {
        self.time(s.time_us, "startTimeUnixNano")?;
        for (value, field) in [
            (&s.operation, "gen_ai.operation.name"),
            (&s.status, "status"),
        ] {
            self.id(value, field)?;
        }
        self.ids([
            (&s.provider, "gen_ai.provider.name"),
            (&s.model, "gen_ai.request.model"),
            (&s.agent, "gen_ai.agent.name"),
            (&s.tool, "gen_ai.tool.name"),
            (&s.server_address, "server.address"),
            (&s.data_system, "db.system"),
            (&s.data_namespace, "db.namespace"),
            (&s.service_name, "service.name"),
        ])?;
        self.text(s.data_url.as_deref(), "url.full")?;
        at_most(
            s.duration_ms.unwrap_or(0),
            self.limits.max_latency_ms,
            "endTimeUnixNano",
            "a span may take (ms)",
        )?;
        let t = s.tokens;
        for (value, field) in [
            (t.input, "gen_ai.usage.input_tokens"),
            (t.output, "gen_ai.usage.output_tokens"),
            (t.cached, "gen_ai.usage.cache_read.input_tokens"),
            (t.reasoning, "gen_ai.usage.reasoning.output_tokens"),
        ] {
            at_most(
                value.unwrap_or(0),
                self.limits.max_tokens,
                field,
                "tokens a call may count",
            )?;
        }
        Ok(())
    }
}

fn bytes(value: &str, max: usize, field: &str) -> Result<(), String> {
    if value.len() <= max {
        Ok(())
    } else {
        Err(format!(
            "field `{field}`: {} bytes, more than the {max} it may hold",
            value.len()
        ))
    }
}

fn at_most(value: i64, max: i64, field: &str, what: &str) -> Result<(), String> {
    match value {
        v if v < 0 => Err(format!("field `{field}`: negative value {v}")),
        v if v > max => Err(format!(
            "field `{field}`: {v} is more than the {max} {what}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> Check {
        Check {
            limits: Limits::default(),
            window: TimeWindow::default(),
            now: DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
                .unwrap()
                .to_utc(),
        }
    }

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    fn request(time: &str) -> Record {
        Record {
            request: Some(RequestRecord {
                time_us: at(time),
                request_id: "r".into(),
                status_code: 200,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn tokens(prompt: i64) -> Record {
        Record {
            tokens: Some(TokenRecord {
                time_us: at("2026-10-01T00:00:00Z"),
                request_id: "r".into(),
                prompt_tokens: prompt,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn each_bound_is_named_by_its_field() {
        let long = "x".repeat(4097);
        let cases: Vec<(Record, Option<&str>)> = vec![
            (request("2026-10-01T00:00:00Z"), None),
            (
                request("0001-01-01T00:00:00Z"),
                Some(
                    "field `time`: 0001-01-01T00:00:00+00:00 is before the accepted window 2000-01-01T00:00:00Z to 2026-12-03T12:00:00Z",
                ),
            ),
            (
                request("9999-12-31T00:00:00Z"),
                Some("field `time`: 9999-12-31T00:00:00+00:00 is after"),
            ),
            (
                request("2030-01-01T00:00:00Z"),
                Some("is after the accepted window"),
            ),
            (tokens(1_000_000_000), None),
            (
                tokens(9_223_372_036_854_775_000),
                Some(
                    "field `prompt_tokens`: 9223372036854775000 is more than the 1000000000 tokens a request may count",
                ),
            ),
            (
                Record {
                    request: request("2026-10-01T00:00:00Z")
                        .request
                        .map(|r| RequestRecord {
                            agent: Some(long.clone()),
                            ..r
                        }),
                    ..Default::default()
                },
                Some("field `agent`: 4097 bytes, more than the 4096 it may hold"),
            ),
            (
                Record {
                    request: request("2026-10-01T00:00:00Z")
                        .request
                        .map(|r| RequestRecord {
                            total_latency_ms: Some(i64::MAX),
                            ..r
                        }),
                    ..Default::default()
                },
                Some("field `total_latency_ms`"),
            ),
            (
                Record {
                    tokens: tokens(1).tokens.map(|t| TokenRecord {
                        gateway_reported_cost: Some(f64::INFINITY),
                        ..t
                    }),
                    ..Default::default()
                },
                Some("field `gateway_reported_cost`"),
            ),
            (
                Record {
                    metric: Some(MetricRecord {
                        time_us: at("2026-10-01T00:00:00Z"),
                        value: 1e300,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Some("field `value`"),
            ),
            (
                Record {
                    hit: Some(HitRecord {
                        time_us: at("1970-01-01T00:00:00Z"),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Some("field `time`: 1970-01-01"),
            ),
        ];
        for (record, expect) in cases {
            match (check().record(record), expect) {
                (Ok(_), None) => {}
                (Err(reason), Some(want)) => {
                    assert!(reason.contains(want), "{reason}\nwant {want}")
                }
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_negative_cost_is_refused() {
        let mut record = tokens(1);
        if let Some(t) = record.tokens.as_mut() {
            t.gateway_reported_cost = Some(-1e300);
        }
        let reason = check().record(record).unwrap_err();
        assert!(
            reason.starts_with("field `gateway_reported_cost`"),
            "{reason}"
        );
    }
}
