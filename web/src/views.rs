//! What gateways are served, held ready in memory: for each gateway the whole
//! response body, its strong ETag, each entry by counter key and the APIM policy
//! fragment, built once per version from the stored view. Reloaded whenever the
//! `gateway_views` state version moves, so a pull costs a map lookup.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tollgate_reports::budget_eval::GatewayBudget;
use tollgate_store::StateDb;
use tollgate_store::state::GatewayView;
use tollgate_store::versioned::Versioned;

use crate::apim;

/// One gateway's answers, ready to send.
#[derive(Debug)]
pub struct ServedView {
    pub version: i64,
    pub etag: Tag,
    pub body: Bytes,
    pub entries: HashMap<String, (Tag, Bytes)>,
    pub policy: (Tag, Bytes),
}

/// An ETag as text (to compare with `If-None-Match`) and as the header value
/// sent, built once per version rather than per request.
#[derive(Debug, Clone)]
pub struct Tag {
    pub text: String,
    pub header: axum::http::HeaderValue,
}

impl Tag {
    fn new(text: String) -> Tag {
        let header = axum::http::HeaderValue::from_str(&text)
            .unwrap_or(axum::http::HeaderValue::from_static("\"\""));
        Tag { text, header }
    }
}

/// What `GET /api/v1/gateways/{gateway}/budgets` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayBudgets {
    pub gateway: String,
    /// Grows only when the entries change.
    pub version: i64,
    pub entries: Vec<GatewayBudget>,
}

/// What `GET /api/v1/gateways/{gateway}/budgets/{counter_key}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayBudgetEntry {
    pub gateway: String,
    pub version: i64,
    #[serde(flatten)]
    pub entry: GatewayBudget,
}

impl ServedView {
    fn build(view: &GatewayView) -> Result<ServedView, serde_json::Error> {
        let entries: Vec<GatewayBudget> = serde_json::from_str(&view.body)?;
        let gateway = view.gateway_id.as_str();
        let tag = |kind: &str| {
            Tag::new(format!(
                "\"{kind}{}-{}\"",
                view.version,
                &view.body_sha256[..16.min(view.body_sha256.len())]
            ))
        };
        let body = serde_json::to_vec(&GatewayBudgets {
            gateway: gateway.to_owned(),
            version: view.version,
            entries: entries.clone(),
        })?;
        let mut by_key = HashMap::new();
        for entry in &entries {
            let bytes = serde_json::to_vec(&GatewayBudgetEntry {
                gateway: gateway.to_owned(),
                version: view.version,
                entry: entry.clone(),
            })?;
            by_key
                .entry(entry.counter_key.clone())
                .or_insert_with(|| (tag("e"), Bytes::from(bytes)));
        }
        let policy = apim::policy_fragment(gateway, view.version, &entries);
        Ok(ServedView {
            version: view.version,
            etag: tag("v"),
            body: Bytes::from(body),
            entries: by_key,
            policy: (tag("p"), Bytes::from(policy)),
        })
    }
}

/// Every gateway's served view, with the version of the set they were loaded at.
#[derive(Debug, Default)]
pub struct ViewCache {
    views: Versioned<HashMap<String, Arc<ServedView>>>,
}

impl ViewCache {
    pub async fn refresh(&self, db: &StateDb, force: bool) -> tollgate_store::Result<()> {
        let version = db
            .state_version(tollgate_store::StateVersion::GatewayViews)
            .await?;
        if !self.views.is_stale(version) && !force {
            return Ok(());
        }
        let mut map = HashMap::new();
        for view in db.gateway_views().await? {
            match ServedView::build(&view) {
                Ok(served) => {
                    map.insert(view.gateway_id.clone(), Arc::new(served));
                }
                Err(e) => {
                    tracing::error!(gateway = %view.gateway_id, error = %e, "stored gateway view unreadable")
                }
            }
        }
        self.views.replace(version, map);
        Ok(())
    }

    pub fn get(&self, gateway: &str) -> Option<Arc<ServedView>> {
        self.views.current().get(gateway).cloned()
    }
}
