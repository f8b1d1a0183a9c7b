//! Budget events out to a webhook receiver, from the outbox the evaluation
//! writes (`budget_events`): each attempt is recorded; 5xx, 408, 429 and
//! timeouts are retried with doubling backoff, any other 4xx is given up at
//! once. Events carry their id (`X-Tollgate-Event-Id`) so a receiver can drop a
//! duplicate. Sending runs beside the server, never inside an ingest.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tollgate_store::state::{BudgetEvent, WebhookDelivery, timestamp};

use crate::error::{AppError, Result};
use crate::state::AppState;

pub(crate) async fn deliverer(state: AppState, mut stop: watch::Receiver<bool>) {
    let Some(url) = state.config.webhook_url.clone() else {
        let _ = stop.changed().await;
        return;
    };
    let Some(client) = http_client(&state, "webhooks") else {
        return;
    };
    loop {
        // Servers side by side: only the lease holder delivers, so an event
        // goes out once, not once per server.
        if state.lease.held()
            && let Err(e) = deliver_due(&state, &client, &url).await
        {
            tracing::warn!(error = %e, "delivering budget events failed");
        }
        tokio::select! {
            _ = state.deliver_now.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends every event whose attempt is due; returns how many were delivered.
#[tracing::instrument(skip_all, err)]
pub async fn deliver_due(state: &AppState, client: &reqwest::Client, url: &str) -> Result<usize> {
    let db = &state.store.db;
    let mut delivered = 0;
    for event in db.due_budget_events(Utc::now(), 100).await? {
        let attempt = db.webhook_deliveries(event.id).await?.len() as i64 + 1;
        let (status, error, retryable) = send(client, url, &event).await;
        let (outcome, retry_at) = outcome(state, status, retryable, attempt);
        if outcome == "delivered" {
            delivered += 1;
        } else {
            tracing::warn!(
                event = event.id,
                attempt,
                ?status,
                ?error,
                outcome,
                "webhook not delivered"
            );
        }
        db.record_delivery(
            &WebhookDelivery {
                id: 0,
                event_id: event.id,
                at: timestamp(Utc::now()),
                attempt,
                status,
                error,
                outcome: outcome.to_owned(),
            },
            retry_at,
        )
        .await?;
    }
    Ok(delivered)
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    event: &BudgetEvent,
) -> (Option<i64>, Option<String>, bool) {
    post_json(client, url, &event.payload, Some(event.id)).await
}

/// The client receivers are called with (the configured timeout); `None`,
/// logged, if none can be built.
pub(crate) fn http_client(state: &AppState, what: &str) -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(state.config.webhook_timeout)
        .build()
        .map_err(|e| tracing::error!(error = %e, "no HTTP client for {what}"))
        .ok()
}

/// What an attempt came to: `delivered`, `retry` (and when, the backoff
/// doubling each attempt) or `failed` (not retryable, or out of attempts).
pub(crate) fn outcome(
    state: &AppState,
    status: Option<i64>,
    retryable: bool,
    attempt: i64,
) -> (&'static str, Option<chrono::DateTime<Utc>>) {
    let outcome = match (status, retryable) {
        (Some(s), _) if (200..300).contains(&s) => "delivered",
        (_, true) if attempt < i64::from(state.config.webhook_attempts) => "retry",
        _ => "failed",
    };
    let retry_at = (outcome == "retry").then(|| {
        let factor = 1u32 << (attempt - 1).clamp(0, 16);
        Utc::now()
            + chrono::Duration::from_std(state.config.webhook_backoff * factor).unwrap_or_default()
    });
    (outcome, retry_at)
}

/// One JSON POST (with its event id when it has one): the status if there was
/// one, the error if not, and whether trying again could help.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    event_id: Option<i64>,
) -> (Option<i64>, Option<String>, bool) {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(id) = event_id {
        request = request.header("x-tollgate-event-id", id.to_string());
    }
    let result = request.send().await;
    match result {
        Ok(response) => {
            let code = response.status().as_u16();
            let retryable = code >= 500 || code == 408 || code == 429;
            let error = (!response.status().is_success()).then(|| format!("HTTP {code}"));
            (Some(i64::from(code)), error, retryable)
        }
        Err(e) => (None, Some(error_chain(&e)), true),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl From<reqwest::Error> for AppError {
    fn from(e: reqwest::Error) -> Self {
        AppError::fault(error_chain(&e), e)
    }
}
