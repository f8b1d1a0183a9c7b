//! Application Insights `customMetrics` rows of the token metrics an AI gateway
//! emits (APIM `llm-emit-token-metric` / `azure-openai-emit-token-metric`):
//! `Total Tokens`, `Prompt Tokens`, `Completion Tokens` with their dimensions.
//! They are pre-aggregated: they land in `token_metrics` to reconcile against
//! per-request counts, never summed with them. Exports come as JSON lines, a JSON
//! array or CSV (where `customDimensions` is a JSON string).

use serde_json::{Map, Value};

use crate::record::{MetricRecord, Record};
use crate::scalar::{amount, count, lookup, required_text, text};

/// The default dimension names, then the columns they fill, in
/// `MetricRecord::dims` order.
const DIMENSIONS: [&[&str]; 9] = [
    &["API ID"],
    &["Operation ID"],
    &["Product ID"],
    &["User ID"],
    &["Subscription ID"],
    &["Region", "Location"],
    &["Gateway ID"],
    &["Backend ID"],
    &["Model", "model", "Deployment"],
];

pub fn parse_value(row: &Value) -> Result<Record, String> {
    if !row.is_object() {
        return Err("not an Application Insights metric row: expected an object".to_owned());
    }
    // Portal CSV exports suffix time columns with ` [UTC]`.
    let get = |c: &str| lookup(row, c).or_else(|| lookup(row, &format!("{c} [UTC]")));
    let time_us = crate::scalar::utc_time(get("timestamp"), "timestamp")?
        .ok_or("missing field `timestamp`")?;
    let name = required_text(get("name"), "name")?;
    let metric = match name.as_str() {
        "Total Tokens" => "total",
        "Prompt Tokens" => "prompt",
        "Completion Tokens" => "completion",
        other => {
            return Err(format!(
                "field `name`: {other:?} is not a token metric (Total, Prompt or Completion Tokens)"
            ));
        }
    };
    // `valueSum` is the interval's total; `value` alone is a single sample.
    let value = match amount(get("valueSum"), "valueSum")? {
        Some(sum) => sum,
        None => amount(get("value"), "value")?.ok_or("missing field `value`")?,
    };
    let value_count = count(get("valueCount"), "valueCount")?.unwrap_or(1);

    let dimensions = match lookup_dimensions(row)? {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut dims: [Option<String>; 9] = Default::default();
    for (slot, names) in dims.iter_mut().zip(DIMENSIONS) {
        for name in names {
            if let Some(found) = text(lookup(&Value::Object(dimensions.clone()), name), name)? {
                *slot = Some(found);
                break;
            }
        }
    }
    // serde_json's map is ordered by key: the same dimensions serialise the same.
    let dimensions_json = Value::Object(dimensions).to_string();
    // A row's identity is everything it says (two gateway instances may emit the
    // same dimensions in one minute), never an optional column such as itemId:
    // two exports of the same rows with different columns must agree.
    let instance = text(get("cloud_RoleInstance"), "cloud_RoleInstance")?.unwrap_or_default();
    let identity = format!("{time_us}|{metric}|{value}|{value_count}|{instance}|{dimensions_json}");
    let digest = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    let metric_id = hex::encode(&digest.as_ref()[..16]);
    Ok(Record {
        request: None,
        tokens: None,
        metric: Some(MetricRecord {
            time_us,
            metric_id,
            metric: metric.to_owned(),
            value,
            value_count,
            dims,
            dimensions_json,
        }),
        hit: None,
        span: None,
        cost: None,
    })
}

/// `customDimensions`: an object, or (CSV exports) a JSON string of one.
fn lookup_dimensions(row: &Value) -> Result<Value, String> {
    match row.get("customDimensions") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(Value::Object(map)) => Ok(Value::Object(map.clone())),
        Some(Value::String(s)) if s.is_empty() => Ok(Value::Object(Map::new())),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err("field `customDimensions`: not a JSON object".to_owned()),
        },
        Some(_) => Err("field `customDimensions`: not a JSON object".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(bytes: &[u8]) -> Result<Record, String> {
        parse_value(&serde_json::from_slice(bytes).map_err(|e| e.to_string())?)
    }

    #[test]
    fn a_total_tokens_row_maps_its_dimensions() {
        let line = r#"{"timestamp":"2026-10-01T09:15:00Z","name":"Total Tokens","value":1380,"valueCount":3,"valueSum":2990,"customDimensions":{"API ID":"azure-openai","Product ID":"gold","Subscription ID":"sub-finance-gold","Location":"East US","Gateway ID":"managed","Model":"gpt-4o","tenant":"contoso"}}"#;
        let m = parse_line(line.as_bytes()).unwrap().metric.unwrap();
        assert_eq!(
            (m.metric.as_str(), m.value, m.value_count),
            ("total", 2990.0, 3)
        );
        assert_eq!(m.dims[4].as_deref(), Some("sub-finance-gold"));
        assert_eq!(m.dims[5].as_deref(), Some("East US"));
        assert_eq!(m.dims[8].as_deref(), Some("gpt-4o"));
        assert!(m.dimensions_json.contains("\"tenant\":\"contoso\""));
        // The same row, its dimensions in another order (a CSV string), same id.
        let reordered = r#"{"timestamp":"2026-10-01T09:15:00Z","name":"Total Tokens","value":1380,"valueCount":3,"valueSum":2990,"customDimensions":"{\"tenant\":\"contoso\",\"Model\":\"gpt-4o\",\"Gateway ID\":\"managed\",\"Location\":\"East US\",\"Subscription ID\":\"sub-finance-gold\",\"Product ID\":\"gold\",\"API ID\":\"azure-openai\"}"}"#;
        assert_eq!(
            parse_line(reordered.as_bytes())
                .unwrap()
                .metric
                .unwrap()
                .metric_id,
            m.metric_id
        );
    }

    #[test]
    fn other_metrics_and_bad_rows_are_refused_with_reasons() {
        for (line, want) in [
            (
                r#"{"timestamp":"2026-10-01T09:15:00Z","name":"Requests","value":1}"#,
                "not a token metric",
            ),
            (
                r#"{"name":"Total Tokens","value":1}"#,
                "missing field `timestamp`",
            ),
            (
                r#"{"timestamp":"2026-10-01T09:15:00Z","name":"Total Tokens","value":-1}"#,
                "field `value`",
            ),
            (
                r#"{"timestamp":"2026-10-01T09:15:00Z","name":"Total Tokens","value":1,"customDimensions":"[1]"}"#,
                "customDimensions",
            ),
        ] {
            let err = parse_line(line.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
