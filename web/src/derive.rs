//! Derived work after acknowledgement. A push is answered once its batch is
//! committed (the commit also lists it as owed its rollups, so a crash loses
//! nothing); the deriver then rolls up every batch owed, judges the alert
//! rules over the hours that changed, evaluates budgets into the gateway
//! views and refreshes the observed lineage, off the request path. Pushes
//! arriving while it works make one more cycle, not one each.
//!
//! [`Freshness`] says how far the derived answers are current: the manifest
//! watermark (the newest committed lake file id) the last completed cycle
//! covered, and when. Answers derived from aggregates carry it as headers
//! ([`freshness_headers`]), `GET /api/v1/freshness` answers it, and
//! `/metrics` shows the lag.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::watch;

use crate::state::{AlertsPass, AppState};

/// The header naming the manifest watermark an answer's aggregates cover.
pub const DERIVED_WATERMARK: &str = "x-tollgate-derived-watermark";
/// The header naming when that derivation finished (RFC 3339).
pub const DERIVED_AT: &str = "x-tollgate-derived-at";

/// How far derived data is current, in this process.
#[derive(Debug, Default)]
pub struct Freshness {
    /// The manifest watermark the last completed cycle covered (-1: none yet).
    derived: AtomicI64,
    /// When that cycle finished, in microseconds since the epoch.
    derived_at_us: AtomicI64,
    /// The newest manifest watermark this process saw committed.
    committed: AtomicI64,
    /// When the oldest commit not yet derived was acknowledged
    /// (microseconds since the epoch; 0: none).
    oldest_owed_us: AtomicI64,
    /// How long the last cycle took, in microseconds.
    last_cycle_us: AtomicI64,
}

/// [`Freshness`] read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FreshnessView {
    /// The newest committed manifest watermark this server knows of.
    pub committed_watermark: i64,
    /// The watermark every derived answer covers at least (-1 before the
    /// first derivation).
    pub derived_watermark: i64,
    /// When the derivation that reached it finished.
    pub derived_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How long the oldest commit not yet derived has waited, in
    /// milliseconds (0 when nothing is owed).
    pub lag_ms: i64,
    /// How long the last derivation cycle took, in milliseconds.
    pub last_cycle_ms: i64,
}

impl FreshnessView {
    /// Takes in the newest watermark committed by any process (read from the
    /// state database): commits this server did not acknowledge are owed too,
    /// since the last derivation finished.
    pub fn with_committed(mut self, watermark: i64) -> FreshnessView {
        if watermark > self.committed_watermark {
            self.committed_watermark = watermark;
        }
        if self.lag_ms == 0
            && self.committed_watermark > self.derived_watermark
            && let Some(at) = self.derived_at
        {
            self.lag_ms = (chrono::Utc::now() - at).num_milliseconds().max(0);
        }
        self
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Freshness {
    pub fn new() -> Freshness {
        let f = Freshness::default();
        f.derived.store(-1, Ordering::Relaxed);
        f
    }

    /// A commit at `watermark` was acknowledged and is owed its derivation.
    pub fn committed(&self, watermark: i64) {
        self.committed.fetch_max(watermark, Ordering::AcqRel);
        let _ =
            self.oldest_owed_us
                .compare_exchange(0, now_us(), Ordering::AcqRel, Ordering::Relaxed);
    }

    /// A cycle that began when the committed watermark was `target` finished.
    fn derived(&self, target: i64, started_us: i64, took_us: i64) {
        self.committed.fetch_max(target, Ordering::AcqRel);
        self.derived.fetch_max(target, Ordering::AcqRel);
        self.derived_at_us.store(now_us(), Ordering::Release);
        self.last_cycle_us.store(took_us, Ordering::Relaxed);
        // Commits acknowledged after the cycle began are still owed.
        let owed = self.oldest_owed_us.load(Ordering::Acquire);
        if owed != 0 && owed <= started_us {
            let still_owed = self.committed.load(Ordering::Acquire) > target;
            let next = if still_owed { started_us } else { 0 };
            let _ = self.oldest_owed_us.compare_exchange(
                owed,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    pub fn view(&self) -> FreshnessView {
        let at = self.derived_at_us.load(Ordering::Acquire);
        let owed = self.oldest_owed_us.load(Ordering::Acquire);
        FreshnessView {
            committed_watermark: self.committed.load(Ordering::Acquire),
            derived_watermark: self.derived.load(Ordering::Acquire),
            derived_at: (at > 0)
                .then(|| chrono::DateTime::from_timestamp_micros(at))
                .flatten(),
            lag_ms: if owed == 0 {
                0
            } else {
                (now_us() - owed).max(0) / 1000
            },
            last_cycle_ms: self.last_cycle_us.load(Ordering::Relaxed) / 1000,
        }
    }
}

/// Runs a derivation cycle at start (what a crash left owed; the newest hour
/// judged again, see [`AlertsPass::NewestAgain`]), after every
/// push (coalesced), and on the evaluation timer (batches other processes
/// committed), until `stop`.
pub async fn deriver(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut pass = AlertsPass::NewestAgain;
    loop {
        cycle(&state, pass).await;
        pass = AlertsPass::Since;
        tokio::select! {
            _ = state.derive_now.notified() => {
                // Pushes arriving meanwhile are derived with this one.
                tokio::select! {
                    _ = tokio::time::sleep(state.config.derive_delay) => {}
                    _ = stop.changed() => return,
                }
            }
            _ = tokio::time::sleep(state.config.evaluate_every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One cycle: rollups owed, alerts, budgets and views, observed lineage. A
/// failing step is logged and the next still runs (a broken rule must not
/// stop the gateways' updates); the cycle counts as derived only if the
/// rollups were caught up.
pub async fn cycle(state: &AppState, pass: AlertsPass) {
    let started = Instant::now();
    let started_us = now_us();
    let target = match state.store.db.manifest_watermark().await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "derivation: reading the manifest watermark failed");
            return;
        }
    };
    if !state.lease.hold(&state.store.db).await {
        follow(state, target, started_us, started).await;
        return;
    }
    let rolled = state.store.catch_up_rollups().await;
    if let Err(e) = &rolled {
        tracing::error!(error = %e, "derivation: rolling up committed batches failed");
    }
    if let Err(e) = state.store.publish_delta().await {
        tracing::error!(error = %e, "derivation: publishing the Delta logs failed");
    }
    let rolled_at = started.elapsed();
    if let Err(e) = state.evaluate(pass).await {
        tracing::error!(error = %e, "derivation: budget evaluation failed");
    }
    let evaluated_at = started.elapsed();
    if let Err(e) = state.observe_lineage().await {
        tracing::error!(error = %e, "derivation: refreshing observed lineage failed");
    }
    if rolled.is_ok() {
        let took = started.elapsed();
        state
            .freshness
            .derived(target, started_us, took.as_micros() as i64);
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            watermark = target,
            ms = ms(took),
            rollups_ms = ms(rolled_at),
            alerts_budgets_views_ms = ms(evaluated_at - rolled_at),
            lineage_ms = ms(took - evaluated_at),
            "derived"
        );
    }
}

/// A cycle of a server that does not hold the background lease: the holder
/// derives; this one only notes how far the stored derived data reaches (its
/// caches follow the state versions), so its freshness headers stay true.
async fn follow(state: &AppState, target: i64, started_us: i64, started: Instant) {
    match state.store.db.pending_rollup_batches().await {
        Ok(owed) if owed.is_empty() => {
            let took = started.elapsed().as_micros() as i64;
            state.freshness.derived(target, started_us, took);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "reading what is owed its rollups failed"),
    }
}

/// Marks an answer derived from aggregates with how fresh they are.
pub async fn freshness_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let view = state.freshness.view();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(DERIVED_WATERMARK, HeaderValue::from(view.derived_watermark));
    if let Some(at) = view.derived_at
        && let Ok(value) = HeaderValue::from_str(&at.to_rfc3339())
    {
        headers.insert(DERIVED_AT, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_runs_from_the_oldest_commit_owed_until_a_cycle_covers_it() {
        let f = Freshness::new();
        assert_eq!(f.view().derived_watermark, -1);
        assert_eq!(f.view().lag_ms, 0);
        f.committed(5);
        let owed_since = f.oldest_owed_us.load(Ordering::Relaxed);
        assert!(owed_since > 0);
        f.committed(7);
        assert_eq!(
            f.oldest_owed_us.load(Ordering::Relaxed),
            owed_since,
            "the oldest commit owed stays the oldest"
        );
        // A cycle that began before 7 was committed covers only 5.
        f.derived(5, owed_since + 1, 10);
        let v = f.view();
        assert_eq!((v.committed_watermark, v.derived_watermark), (7, 5));
        assert_ne!(
            f.oldest_owed_us.load(Ordering::Relaxed),
            0,
            "7 is still owed"
        );
        f.derived(7, now_us(), 10);
        let v = f.view();
        assert_eq!((v.committed_watermark, v.derived_watermark), (7, 7));
        assert_eq!(v.lag_ms, 0);
        assert!(v.derived_at.is_some());
    }

    #[test]
    fn a_watermark_never_moves_back() {
        let f = Freshness::new();
        f.derived(9, now_us(), 1);
        f.derived(4, now_us(), 1);
        assert_eq!(f.view().derived_watermark, 9);
    }
}
