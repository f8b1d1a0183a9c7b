//! Episodes as stored rows and as notifications: Alertmanager's webhook
//! payload (version 4, what existing receivers accept) and the alert list its
//! own API takes at `POST /api/v2/alerts`.

use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value, json};
use tollgate_store::EpisodeState;
use tollgate_store::state::AlertEpisode;

use super::engine::Episode;
use super::rule::{Condition, Rule};
use super::series::Labels;

/// Alertmanager's "not ended" time.
const NEVER: &str = "0001-01-01T00:00:00Z";

/// The full label set: `alertname`, the rule's labels, then the instance's own
/// (empty values left out, as Alertmanager drops them).
pub fn labels(rule: &Rule, instance: &Labels) -> Labels {
    let mut all = Labels::new();
    all.insert("alertname".into(), rule.spec.name.clone());
    for (k, v) in rule.spec.labels.iter().chain(instance) {
        if !v.is_empty() {
            all.insert(k.clone(), v.clone());
        }
    }
    all
}

/// A stable identity for a label set: the first 16 hex digits of the SHA-256
/// of its canonical JSON.
pub fn fingerprint(labels: &Labels) -> String {
    let text = serde_json::to_string(labels).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A value as people read it: rates as percentages, latencies in ms.
pub fn format_value(rule: &Rule, value: f64) -> String {
    let metric = match &rule.condition {
        Condition::Above { metric, .. } | Condition::Anomaly { metric, .. } => metric.as_str(),
        Condition::BudgetUsedAbove { .. } | Condition::VarianceAbove { .. } => "_rate",
        Condition::BurnRate(_) => "",
    };
    if metric.ends_with("_rate") || metric.ends_with("_share") {
        format!("{:.1}%", value * 100.0)
    } else if metric.contains("latency_p") || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn render(template: &str, labels: &Labels, value: &str) -> String {
    let mut out = template.replace("{{ value }}", value);
    for (k, v) in labels {
        out = out.replace(&format!("{{{{ labels.{k} }}}}"), v);
    }
    out
}

/// An episode as the store keeps it.
pub fn episode_row(rule: &Rule, episode: &Episode) -> AlertEpisode {
    let labels = labels(rule, &episode.labels);
    let value = format_value(rule, episode.value);
    let annotations: Labels = rule
        .spec
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), render(v, &labels, &value)))
        .collect();
    AlertEpisode {
        rule: rule.spec.name.clone(),
        fingerprint: fingerprint(&labels),
        labels: serde_json::to_string(&labels).unwrap_or_default(),
        annotations: serde_json::to_string(&annotations).unwrap_or_default(),
        state: episode.state(),
        active_at: episode.active_at,
        fired_at: episode.fired_at,
        resolved_at: episode.resolved_at,
        value: episode.value,
        peak: episode.peak,
    }
}

pub fn rfc3339(us: i64) -> String {
    Utc.timestamp_micros(us)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn object(text: &str) -> Value {
    serde_json::from_str::<Map<String, Value>>(text).map_or_else(|_| json!({}), Value::Object)
}

/// One alert as both payloads carry it. A firing alert is sent without an end
/// (Alertmanager's API) or with the zero time (the webhook).
pub fn alert(
    episode: &AlertEpisode,
    status: EpisodeState,
    external_url: &str,
    webhook: bool,
) -> Value {
    let starts = rfc3339(episode.fired_at.unwrap_or(episode.active_at));
    let mut alert = json!({
        "labels": object(&episode.labels),
        "annotations": object(&episode.annotations),
        "startsAt": starts,
        "generatorURL": format!("{}/api/v1/alerts/episodes?rule={}", external_url.trim_end_matches('/'), episode.rule),
    });
    let ends = match (status, episode.resolved_at) {
        (EpisodeState::Resolved, Some(at)) => Some(rfc3339(at)),
        _ => None,
    };
    if webhook {
        alert["status"] = json!(status);
        alert["endsAt"] = json!(ends.unwrap_or_else(|| NEVER.to_owned()));
        alert["fingerprint"] = json!(episode.fingerprint);
    } else if let Some(ends) = ends {
        alert["endsAt"] = json!(ends);
    }
    alert
}

/// The body queued for a receiver: the v4 webhook payload, or for
/// `alertmanager` the v2 API's list of one alert.
pub fn notification(
    episode: &AlertEpisode,
    status: EpisodeState,
    receiver: &str,
    external_url: &str,
) -> String {
    if receiver == "alertmanager" {
        return json!([alert(episode, status, external_url, false)]).to_string();
    }
    let labels = object(&episode.labels);
    let group_labels = json!({ "alertname": episode.rule });
    let group_key = format!("{{}}:{{alertname=\"{}\"}}", episode.rule);
    json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": object(&episode.annotations),
        "externalURL": external_url,
        "alerts": [alert(episode, status, external_url, true)],
    })
    .to_string()
}
