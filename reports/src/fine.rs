//! The finest grain a chargeback needs: an hour and every dimension, read from
//! the hourly rollups (brought up to date first) with owners and deployment
//! types resolved.

use std::collections::HashMap;

use chrono::NaiveDate;
use tollgate_store::Store;

use crate::Result;
use crate::cost::Tokens;
use crate::ownership::Ownership;

/// A value for rows that have none (a request without a model, an unknown backend).
pub const NONE: &str = "(none)";

/// One fine row: an hour and every chargeback dimension, with its usage.
#[derive(Debug, Clone)]
pub(crate) struct Fine {
    pub hour_us: i64,
    /// In [`crate::chargeback::DIMENSIONS`] order.
    pub dims: [String; 8],
    pub backend: Option<String>,
    pub deployment: Option<String>,
    pub requests: i64,
    pub cache_hits: i64,
    pub tokens: Tokens,
}

pub(crate) fn micros(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_micros())
}

/// `[first, next)`'s usage per hour and every dimension.
pub(crate) async fn read_fine(
    store: &Store,
    first: NaiveDate,
    next: NaiveDate,
    ownership: &Ownership,
    backends: &HashMap<String, (String, String)>,
) -> Result<Vec<Fine>> {
    store.catch_up_rollups().await?;
    let rollups = store.rollups(micros(first), micros(next)).await?;
    // Rollups also split by gateway, which no chargeback groups by.
    type Key = (i64, [Option<String>; 7]);
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut fine: Vec<Fine> = Vec::new();
    for r in rollups.iter().map(|r| &r.usage) {
        let key = (
            r.hour_us,
            [
                r.subscription.clone(),
                r.product.clone(),
                r.agent.clone(),
                r.api.clone(),
                r.backend.clone(),
                r.deployment.clone(),
                r.model.clone(),
            ],
        );
        let at = *index.entry(key).or_insert_with(|| {
            let (kind, region) = r
                .backend
                .as_ref()
                .and_then(|b| backends.get(b).cloned())
                .unwrap_or_else(|| (NONE.to_owned(), NONE.to_owned()));
            let owner = ownership
                .cost_centre(
                    r.subscription.as_deref(),
                    r.agent.as_deref(),
                    r.product.as_deref(),
                )
                .to_owned();
            let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| NONE.to_owned());
            fine.push(Fine {
                hour_us: r.hour_us,
                dims: [
                    owner,
                    or_none(&r.subscription),
                    or_none(&r.product),
                    or_none(&r.model),
                    kind,
                    region,
                    or_none(&r.api),
                    or_none(&r.agent),
                ],
                backend: r.backend.clone(),
                deployment: r.deployment.clone(),
                requests: 0,
                cache_hits: 0,
                tokens: Tokens::default(),
            });
            fine.len() - 1
        });
        let f = &mut fine[at];
        // Saturating: a count already in a lake from before its bound existed
        // must not overflow a report.
        f.requests = f.requests.saturating_add(r.requests);
        f.cache_hits = f.cache_hits.saturating_add(r.cache_hits);
        f.tokens.prompt = f.tokens.prompt.saturating_add(r.prompt_tokens);
        f.tokens.cached = f.tokens.cached.saturating_add(r.cached_tokens);
        f.tokens.completion = f.tokens.completion.saturating_add(r.completion_tokens);
    }
    Ok(fine)
}
