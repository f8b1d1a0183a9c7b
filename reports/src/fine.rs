//! The finest grain a chargeback needs: an hour and every dimension, made
//! from the hourly rollups as derived so far (the CLI catches up before every
//! command that reads them, a server's deriver after every commit) with
//! owners and deployment types resolved.
//!
//! Dimension values are interned ([`Sym`]): a month's fine rows group, price
//! and split without allocating a string per row.

use std::sync::LazyLock;

use chrono::NaiveDate;
use tollgate_store::Sym;
use tollgate_store::state::RollupRow;

use crate::chargeback::Dimension;
use crate::cost::Tokens;
use crate::ownership::Ownership;

/// A value for rows that have none (a request without a model, an unknown backend).
pub const NONE: &str = "(none)";

/// [`NONE`], interned.
pub(crate) fn none() -> Sym {
    static SYM: LazyLock<Sym> = LazyLock::new(|| Sym::new(NONE));
    *SYM
}

pub(crate) type FastMap<K, V> = foldhash::HashMap<K, V>;

/// A backend's deployment type and region, by backend name.
pub(crate) type BackendKinds = FastMap<Sym, (Sym, Sym)>;

/// One fine row: an hour and every chargeback dimension, with its usage.
#[derive(Debug, Clone)]
pub(crate) struct Fine {
    pub hour_us: i64,
    /// In [`crate::chargeback::DIMENSIONS`] order.
    pub dims: [Sym; 8],
    pub backend: Option<Sym>,
    pub deployment: Option<Sym>,
    pub requests: i64,
    pub cache_hits: i64,
    pub tokens: Tokens,
}

impl Fine {
    pub(crate) fn dim(&self, dimension: Dimension) -> Sym {
        self.dims[dimension.index()]
    }
    pub(crate) fn model(&self) -> Sym {
        self.dim(Dimension::Model)
    }
    pub(crate) fn deployment_type(&self) -> Sym {
        self.dim(Dimension::DeploymentType)
    }
    pub(crate) fn region(&self) -> Sym {
        self.dim(Dimension::Region)
    }
    pub(crate) fn subscription(&self) -> Sym {
        self.dim(Dimension::Subscription)
    }
}

pub(crate) fn micros(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_micros())
}

/// Rollup rows as fine rows: rows differing only by gateway or region
/// (which no chargeback groups by) merged, in the order they first come.
pub(crate) fn fine_rows<'r>(
    rows: impl Iterator<Item = &'r RollupRow>,
    ownership: &Ownership,
    backends: &BackendKinds,
) -> Vec<Fine> {
    type Key = (i64, [Option<Sym>; 7]);
    let mut index: FastMap<Key, usize> = FastMap::default();
    let mut owners: FastMap<[Option<Sym>; 3], Sym> = FastMap::default();
    let none = none();
    let mut fine: Vec<Fine> = Vec::new();
    for r in rows.map(|r| &r.usage) {
        let key = (
            r.hour_us,
            [
                r.subscription,
                r.product,
                r.agent,
                r.api,
                r.backend,
                r.deployment,
                r.model,
            ],
        );
        let at = *index.entry(key).or_insert_with(|| {
            let (kind, region) = r
                .backend
                .and_then(|b| backends.get(&b).copied())
                .unwrap_or((none, none));
            let owner = *owners
                .entry([r.subscription, r.agent, r.product])
                .or_insert_with(|| {
                    Sym::new(ownership.cost_centre(
                        r.subscription.as_deref(),
                        r.agent.as_deref(),
                        r.product.as_deref(),
                    ))
                });
            let or_none = |v: Option<Sym>| v.unwrap_or(none);
            fine.push(Fine {
                hour_us: r.hour_us,
                dims: [
                    owner,
                    or_none(r.subscription),
                    or_none(r.product),
                    or_none(r.model),
                    kind,
                    region,
                    or_none(r.api),
                    or_none(r.agent),
                ],
                backend: r.backend,
                deployment: r.deployment,
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
    fine
}
