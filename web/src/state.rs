//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify, Semaphore};
use tollgate_ingest::IngestOptions;
use tollgate_reports::chargeback::ChargebackCache;
use tollgate_store::Store;

use crate::auth::KeyCache;
use crate::views::ViewCache;

/// How the server behaves; `Default` is what `tollgate serve` uses unless told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `Cache-Control: max-age` on budget pulls.
    pub budget_max_age: Duration,
    /// Largest push-ingest body, compressed as sent.
    pub max_ingest_bytes: usize,
    /// Push ingests committing at once; more are answered 503.
    pub ingest_slots: usize,
    /// How often derived data is brought up to date (batches other processes
    /// committed) without a push.
    pub evaluate_every: Duration,
    /// How long the deriver waits after a push before it starts, so that a
    /// burst of pushes is derived once (0: at once; pushes arriving during a
    /// cycle are coalesced into the next one anyway).
    pub derive_delay: Duration,
    pub refresh_every: Duration,
    /// Where budget events are POSTed (none: recorded only).
    pub webhook_url: Option<String>,
    pub webhook_timeout: Duration,
    /// Attempts before an event is given up on.
    pub webhook_attempts: u32,
    /// The first retry's delay; doubled on each further attempt.
    pub webhook_backoff: Duration,
    pub ingest: IngestOptions,
    /// Sensitivity labels, least sensitive first.
    pub taxonomy: tollgate_lineage::Taxonomy,
    /// What counts as external-facing for lineage findings.
    pub lineage_policy: tollgate_lineage::Policy,
    /// Memory, time and rows of one `POST /api/v1/sql` query.
    pub sql_limits: tollgate_store::bounded_sql::SqlLimits,
    /// Alert rules from the config file (the shipped defaults are added when
    /// missing).
    pub alert_rules: Vec<tollgate_reports::alerts::RuleSpec>,
    /// Where alert notifications go as Alertmanager v4 webhook payloads.
    pub alert_webhook_url: Option<String>,
    /// An Alertmanager to push alerts to (`/api/v2/alerts`), re-sent while firing.
    pub alertmanager_url: Option<String>,
    pub alert_resend_every: Duration,
    /// This server's URL as people reach it, for links in notifications.
    pub external_url: String,
    /// A client must send a request's headers within this (slow clients).
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this, plus a second per 64 KiB
    /// it brings (`listener::MIN_BODY_RATE`).
    pub body_timeout: Duration,
    /// At shutdown, requests in flight get this long before their
    /// connections are cut (pushes then get as long again to commit).
    pub shutdown_grace: Duration,
    /// How long the background lease lasts unrenewed: after its holder dies,
    /// another server takes the background work over within this.
    pub lease_ttl: Duration,
}

/// How far a pushed body may expand: sixteen times its largest compressed size
/// (gateway logs compress five to twenty times), within the file bound.
pub fn push_limits(
    limits: &tollgate_ingest::Limits,
    max_body_bytes: usize,
) -> tollgate_ingest::Limits {
    tollgate_ingest::Limits {
        max_content_bytes: limits
            .max_content_bytes
            .min((max_body_bytes as u64).saturating_mul(16)),
        ..limits.clone()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        let max_ingest_bytes = 64 << 20;
        ServerConfig {
            budget_max_age: Duration::from_secs(30),
            max_ingest_bytes,
            ingest_slots: 2,
            evaluate_every: Duration::from_secs(60),
            derive_delay: Duration::ZERO,
            refresh_every: Duration::from_secs(1),
            webhook_url: None,
            webhook_timeout: Duration::from_secs(5),
            webhook_attempts: 8,
            webhook_backoff: Duration::from_secs(2),
            ingest: IngestOptions {
                format: tollgate_ingest::Format::Auto,
                limits: push_limits(&tollgate_ingest::Limits::default(), max_ingest_bytes),
                ..IngestOptions::default()
            },
            taxonomy: tollgate_lineage::Taxonomy::default(),
            lineage_policy: tollgate_lineage::Policy::default(),
            sql_limits: tollgate_store::bounded_sql::SqlLimits::default(),
            alert_rules: Vec::new(),
            alert_webhook_url: None,
            alertmanager_url: None,
            alert_resend_every: Duration::from_secs(60),
            external_url: "http://localhost:8080".into(),
            header_read_timeout: crate::listener::HEADER_READ_TIMEOUT,
            body_timeout: crate::listener::BODY_TIMEOUT,
            shutdown_grace: crate::listener::SHUTDOWN_GRACE,
            lease_ttl: Duration::from_secs(15),
        }
    }
}

#[derive(Debug)]
pub struct Inner {
    pub store: Store,
    pub config: ServerConfig,
    /// `Cache-Control` of budget pulls, built once.
    pub budget_cache_control: axum::http::HeaderValue,
    pub keys: KeyCache,
    /// Web sessions of people logged in to the pages.
    pub sessions: crate::ui::session::Sessions,
    /// This server's claim on the background work (see [`crate::lease`]).
    pub lease: crate::lease::Lease,
    pub views: ViewCache,
    pub chargeback: ChargebackCache,
    /// Days of months for the FinOps pages, kept while the inputs stay the same.
    pub daily: tollgate_reports::chargeback::DailyCache,
    pub lineage: crate::lineage::LineageCache,
    pub metrics: crate::metrics::Metrics,
    pub ingest_slots: Arc<Semaphore>,
    /// `POST /api/v1/sql` queries running at once; more are answered 503.
    pub sql_slots: Semaphore,
    /// One budget evaluation at a time in this process.
    pub evaluating: Mutex<()>,
    /// Wakes the deriver after a push commits.
    pub derive_now: Notify,
    /// How far derived answers are current ([`crate::derive`]).
    pub freshness: crate::derive::Freshness,
    /// Wakes the webhook sender after events are recorded.
    pub deliver_now: Notify,
}

/// Cheap to clone: one `Arc`.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig) -> AppState {
        AppState(Arc::new(Inner {
            ingest_slots: Arc::new(Semaphore::new(config.ingest_slots.max(1))),
            sql_slots: Semaphore::new(2),
            budget_cache_control: axum::http::HeaderValue::from_str(&format!(
                "private, max-age={}",
                config.budget_max_age.as_secs()
            ))
            .unwrap_or(axum::http::HeaderValue::from_static("no-cache")),
            lineage: crate::lineage::LineageCache::new(config.taxonomy.clone()),
            sessions: crate::ui::session::Sessions::new(store.db.clone()),
            lease: crate::lease::Lease::new(config.lease_ttl),
            store,
            config,
            keys: KeyCache::default(),
            views: ViewCache::default(),
            chargeback: ChargebackCache::default(),
            daily: Default::default(),
            metrics: crate::metrics::Metrics::default(),
            evaluating: Mutex::new(()),
            derive_now: Notify::new(),
            freshness: crate::derive::Freshness::new(),
            deliver_now: Notify::new(),
        }))
    }

    /// A fresh directory under the data directory for one request's body
    /// (a push, an uploaded reference file), removed by the caller.
    pub fn spool_dir(&self) -> crate::error::Result<std::path::PathBuf> {
        let dir = self
            .store
            .data_dir
            .join("push")
            .join(uuid::Uuid::now_v7().to_string());
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::error::AppError::fault(dir.display().to_string(), e))?;
        Ok(dir)
    }

    /// Recomputes the lineage edges observed in the committed traffic and
    /// drawn from traces, and reloads the served graph if they changed.
    pub async fn observe_lineage(&self) -> crate::error::Result<()> {
        let graph = self.lineage.current();
        let taxonomy = &self.config.taxonomy;
        let observed = tollgate_lineage::observe(&self.store, &graph, taxonomy, "server").await?;
        let traced =
            tollgate_lineage::observe_traces(&self.store, &graph, taxonomy, "server").await?;
        if observed.is_some() || traced.is_some() {
            self.lineage.refresh(&self.store.db, true).await?;
        }
        Ok(())
    }

    /// The hosts that are gateways': configured, and the graph's gateways.
    fn gateway_hosts(&self) -> tollgate_lineage::GatewayHosts {
        tollgate_lineage::GatewayHosts::new(
            &self.config.lineage_policy.gateway_hosts,
            &self.lineage.current(),
        )
    }

    /// Model calls that went around the gateways, by the committed traces.
    pub async fn bypass_findings(
        &self,
    ) -> crate::error::Result<Vec<tollgate_lineage::BypassFinding>> {
        let calls = self.store.model_calls_by_address().await?;
        Ok(tollgate_lineage::bypass_findings(
            &calls,
            &self.gateway_hosts(),
        ))
    }

    /// The month's traffic no gateway saw, priced as an estimate.
    pub async fn unseen_traffic(
        &self,
        month: tollgate_reports::month::Month,
    ) -> crate::error::Result<tollgate_reports::unseen::UnseenTraffic> {
        let gateways = self.gateway_hosts();
        let is_gateway = |address: &str| gateways.is_gateway(address);
        Ok(tollgate_reports::unseen::unseen_traffic(&self.store, month, &is_gateway).await?)
    }

    /// Where alert notifications go, by receiver name.
    pub fn alert_options(&self) -> tollgate_reports::alerts::AlertOptions {
        let mut receivers = Vec::new();
        if self.config.alert_webhook_url.is_some() {
            receivers.push("webhook".to_owned());
        }
        if self.config.alertmanager_url.is_some() {
            receivers.push("alertmanager".to_owned());
        }
        tollgate_reports::alerts::AlertOptions {
            receivers,
            external_url: self.config.external_url.clone(),
        }
    }

    /// Evaluates the alert rules over what was rolled up since they last ran,
    /// then budgets (whose gateway entries carry the load shedding firing rules
    /// ask for), then reloads the served views if they changed.
    pub async fn evaluate_budgets(&self) -> crate::error::Result<()> {
        self.evaluate(AlertsPass::Since).await
    }

    /// [`AppState::evaluate_budgets`], with the alert rules judging `pass`.
    pub async fn evaluate(&self, pass: AlertsPass) -> crate::error::Result<()> {
        let _one = self.evaluating.lock().await;
        let force = pass == AlertsPass::NewestAgain;
        match tollgate_reports::alerts::evaluate_live(&self.store, &self.alert_options(), force)
            .await
        {
            Ok(Some(run)) if run.notifications > 0 => self.deliver_now.notify_one(),
            Ok(_) => {}
            // Budgets still evaluate: a broken rule must not stop the gateways' updates.
            Err(e) => tracing::error!(error = %e, "alert evaluation failed"),
        }
        let evaluation =
            tollgate_reports::budget_eval::evaluate(&self.store, &self.chargeback).await?;
        if evaluation
            .applied
            .as_ref()
            .is_some_and(|a| !a.events.is_empty())
        {
            self.deliver_now.notify_one();
        }
        self.views.refresh(&self.store.db, false).await?;
        Ok(())
    }
}

/// What the alert rules judge in an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertsPass {
    /// The hours rolled up since they last ran; nothing if none were.
    Since,
    /// The newest hour again, even if nothing changed since: at start, so the
    /// rules' look-back (a month for token rules) is projected and cached
    /// before the first push needs it, instead of during that push's
    /// derivation. Judging an hour again finds what it found (no notification).
    NewestAgain,
}
