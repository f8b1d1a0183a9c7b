//! Alert notifications out to their receivers, from the outbox the evaluation
//! writes (`alert_notifications`): the webhook gets Alertmanager's v4 payload,
//! an Alertmanager gets the v2 API's alert list at `/api/v2/alerts`, and firing
//! alerts are re-sent to it while they fire (it resolves what is not re-sent).
//! Each attempt is recorded; 5xx, 408, 429 and timeouts are retried with
//! doubling backoff. A transition is queued once per receiver, and receivers
//! group by label set, so a repeat is harmless.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use tollgate_store::EpisodeState;

use crate::error::Result;
use crate::state::AppState;

pub(crate) async fn deliverer(state: AppState, mut stop: watch::Receiver<bool>) {
    if state.config.alert_webhook_url.is_none() && state.config.alertmanager_url.is_none() {
        let _ = stop.changed().await;
        return;
    }
    let Some(client) = crate::notify::http_client(&state, "alert notifications") else {
        return;
    };
    let mut last_resend = Instant::now();
    loop {
        // Servers side by side: only the lease holder notifies, so a
        // notification goes out once, not once per server.
        if state.lease.held()
            && let Err(e) = deliver_due(&state, &client).await
        {
            tracing::warn!(error = %e, "delivering alert notifications failed");
        }
        if state.lease.held() && last_resend.elapsed() >= state.config.alert_resend_every {
            last_resend = Instant::now();
            if let Err(e) = resend_firing(&state, &client).await {
                tracing::warn!(error = %e, "re-sending firing alerts failed");
            }
        }
        tokio::select! {
            _ = state.deliver_now.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}

fn receiver_url(state: &AppState, receiver: &str) -> Option<String> {
    match receiver {
        "webhook" => state.config.alert_webhook_url.clone(),
        "alertmanager" => state
            .config
            .alertmanager_url
            .as_ref()
            .map(|u| format!("{}/api/v2/alerts", u.trim_end_matches('/'))),
        _ => None,
    }
}

/// Sends every notification whose attempt is due; returns how many were delivered.
#[tracing::instrument(skip_all, err)]
pub async fn deliver_due(state: &AppState, client: &reqwest::Client) -> Result<usize> {
    let db = &state.store.db;
    let mut delivered = 0;
    for n in db.due_alert_notifications(100).await? {
        let attempt = n.attempts + 1;
        let (status, error, retryable) = match receiver_url(state, &n.receiver) {
            Some(url) => crate::notify::post_json(client, &url, &n.payload, None).await,
            None => (
                None,
                Some(format!("no receiver {:?} configured", n.receiver)),
                false,
            ),
        };
        let (outcome, retry_at) = crate::notify::outcome(state, status, retryable, attempt);
        if outcome == "delivered" {
            delivered += 1;
        } else {
            tracing::warn!(notification = n.id, receiver = %n.receiver, attempt, ?status, ?error, outcome, "alert notification not delivered");
        }
        db.record_alert_attempt(n.id, status, error.as_deref(), outcome, retry_at)
            .await?;
    }
    Ok(delivered)
}

/// Posts every firing alert to the Alertmanager again, ending a few re-send
/// intervals from now, so it keeps them active exactly while they fire.
async fn resend_firing(state: &AppState, client: &reqwest::Client) -> Result<()> {
    let Some(url) = receiver_url(state, "alertmanager") else {
        return Ok(());
    };
    let firing = state
        .store
        .db
        .alert_episodes(Some(EpisodeState::Firing), None, i64::MIN, i64::MAX, 1000)
        .await?;
    if firing.is_empty() {
        return Ok(());
    }
    let ends = Utc::now()
        + chrono::Duration::from_std(state.config.alert_resend_every * 4).unwrap_or_default();
    let alerts: Vec<serde_json::Value> = firing
        .iter()
        .map(|e| {
            let mut alert = tollgate_reports::alerts::payload::alert(
                e,
                EpisodeState::Firing,
                &state.config.external_url,
                false,
            );
            alert["endsAt"] =
                serde_json::json!(ends.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            alert
        })
        .collect();
    let body = serde_json::Value::Array(alerts).to_string();
    let (status, error, _) = crate::notify::post_json(client, &url, &body, None).await;
    if !status.is_some_and(|s| (200..300).contains(&s)) {
        tracing::warn!(?status, ?error, "Alertmanager refused the re-sent alerts");
    }
    Ok(())
}
