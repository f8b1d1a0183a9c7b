//! Why a chargeback's `unpriced_tokens` is not zero, and what to import to
//! price them: each cause with its tokens, its days and its fix.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::chargeback::Reference;
use crate::fine::{Fine, NONE};
use crate::month::Month;
use crate::priced::price_month;
use crate::{Result, close};

/// What kept tokens from a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The gateway logged no backend: nothing selects a deployment type.
    NoBackend,
    /// A backend `backends.csv` does not list: its deployment type and
    /// region, which select the price, are unknown.
    UnknownBackend,
    /// No price-book row for the model, deployment type and region (nor
    /// `any`) is in force on those days.
    NoPriceRow,
    /// Provisioned traffic with no PTU reservation in force.
    NoReservation,
}

/// Tokens without a price, for one cause and what it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Unpriced {
    pub cause: Cause,
    pub backend: Option<String>,
    pub deployment: Option<String>,
    pub model: Option<String>,
    pub deployment_type: Option<String>,
    pub region: Option<String>,
    pub tokens: i64,
    /// The first and last day (UTC) with such tokens.
    pub first_day: String,
    pub last_day: String,
    /// What to import to price them.
    pub fix: String,
}

/// The causes of `month`'s unpriced tokens, most tokens first; priced with
/// the reference data the month was closed with, else that stored now.
pub async fn unpriced(store: &tollgate_store::Store, month: Month) -> Result<Vec<Unpriced>> {
    let reference = match close::frozen_reference(store, month).await? {
        Some(frozen) => frozen,
        None => Reference::load(&store.db).await?,
    };
    let priced = price_month(store, month, &reference).await?;
    Ok(explain(priced.unpriced(), &reference))
}

type Key = (Cause, [Option<String>; 5]);

/// Groups the fine rows no price covered by cause.
pub(crate) fn explain<'f>(
    unpriced: impl Iterator<Item = &'f Fine>,
    reference: &Reference,
) -> Vec<Unpriced> {
    let listed: HashSet<&str> = reference
        .backends
        .iter()
        .map(|b| b.backend.as_str())
        .collect();
    let mut causes: BTreeMap<Key, (i64, String, String)> = BTreeMap::new();
    for f in unpriced {
        let key = key_of(f, |b| listed.contains(b));
        let day = crate::chargeback::day_of(f.hour_us);
        let entry = causes
            .entry(key)
            .or_insert_with(|| (0, day.clone(), day.clone()));
        entry.0 = entry.0.saturating_add(f.tokens.billable());
        entry.1 = entry.1.clone().min(day.clone());
        entry.2 = entry.2.clone().max(day);
    }
    let mut out: Vec<Unpriced> = causes
        .into_iter()
        .map(
            |((cause, [backend, deployment, model, kind, region]), (tokens, first, last))| {
                let mut u = Unpriced {
                    cause,
                    backend,
                    deployment,
                    model,
                    deployment_type: kind,
                    region,
                    tokens,
                    first_day: first,
                    last_day: last,
                    fix: String::new(),
                };
                u.fix = fix(&u);
                u
            },
        )
        .collect();
    out.sort_by_key(|u| std::cmp::Reverse(u.tokens));
    out
}

fn key_of(f: &Fine, listed: impl Fn(&str) -> bool) -> Key {
    let known = |v: &str| (v != NONE).then(|| v.to_owned());
    let (model, kind, region) = (
        known(&f.model()),
        known(&f.deployment_type()),
        known(&f.region()),
    );
    match f.backend {
        None => (Cause::NoBackend, [None, None, model, None, None]),
        Some(b) if !listed(&b) => (
            Cause::UnknownBackend,
            [Some(b.to_string()), None, None, None, None],
        ),
        Some(b)
            if kind
                .as_deref()
                .is_some_and(crate::chargeback::is_provisioned) =>
        {
            (
                Cause::NoReservation,
                [
                    Some(b.to_string()),
                    f.deployment.map(String::from),
                    None,
                    kind,
                    None,
                ],
            )
        }
        Some(_) => (Cause::NoPriceRow, [None, None, model, kind, region]),
    }
}

fn fix(u: &Unpriced) -> String {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| NONE.to_owned());
    match u.cause {
        Cause::NoBackend => "the gateway logged no backend id for these requests: \
                             log one (APIM backendId, LiteLLM model_id, Kong service.host)"
            .to_owned(),
        Cause::UnknownBackend => format!(
            "add backend {} to backends.csv with its deployment type and region, \
             then `tollgate backends import`",
            or_none(&u.backend)
        ),
        Cause::NoPriceRow => format!(
            "add a price-book row for model {}, deployment type {}, region {} (or `any`) \
             in force from {} to {}, then `tollgate prices import`",
            or_none(&u.model),
            or_none(&u.deployment_type),
            or_none(&u.region),
            u.first_day,
            u.last_day
        ),
        Cause::NoReservation => format!(
            "add a PTU reservation for backend {} deployment {} in force from {} to {}, \
             then `tollgate ptu import` (or list the backend as pay-as-you-go)",
            or_none(&u.backend),
            or_none(&u.deployment),
            u.first_day,
            u.last_day
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::Tokens;
    use tollgate_store::state::BackendRow;

    const HOUR: i64 = 3_600_000_000;
    /// 2026-10-01T00:00Z in microseconds.
    const OCT_1: i64 = 1_790_812_800_000_000;

    fn fine(day: i64, backend: Option<&str>, model: &str, kind: &str, region: &str) -> Fine {
        let s = tollgate_store::Sym::new;
        Fine {
            hour_us: OCT_1 + day * 24 * HOUR,
            dims: [NONE, "sub-a", NONE, model, kind, region, NONE, NONE].map(s),
            backend: backend.map(s),
            deployment: Some(s("dep-1")),
            requests: 1,
            cache_hits: 0,
            tokens: Tokens {
                prompt: 100,
                cached: 0,
                completion: 50,
            },
        }
    }

    fn reference() -> Reference {
        let backend = |b: &str, kind: &str| BackendRow {
            backend: b.into(),
            deployment_type: kind.into(),
            region: "eastus".into(),
            resource_id: None,
            source: "backends.csv".into(),
        };
        Reference {
            backends: vec![
                backend("aoai-paygo", "GlobalStandard"),
                backend("aoai-ptu", "ProvisionedManaged"),
            ],
            ..Reference::default()
        }
    }

    #[test]
    fn every_cause_names_what_to_import() {
        let rows = [
            fine(0, Some("aoai-paygo"), "gpt-4o", "GlobalStandard", "eastus"),
            fine(4, Some("aoai-paygo"), "gpt-4o", "GlobalStandard", "eastus"),
            fine(1, Some("aoai-new"), "gpt-4o", NONE, NONE),
            fine(
                2,
                Some("aoai-ptu"),
                "gpt-4o",
                "ProvisionedManaged",
                "eastus",
            ),
            fine(3, None, "gpt-4o", NONE, NONE),
            // Priced: not among the unpriced indices.
            fine(
                5,
                Some("aoai-paygo"),
                "gpt-4o-mini",
                "GlobalStandard",
                "eastus",
            ),
        ];
        let causes = explain(rows[..5].iter(), &reference());
        let summary: Vec<(Cause, i64, &str, &str)> = causes
            .iter()
            .map(|u| (u.cause, u.tokens, u.first_day.as_str(), u.last_day.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (Cause::NoPriceRow, 300, "2026-10-01", "2026-10-05"),
                (Cause::NoBackend, 150, "2026-10-04", "2026-10-04"),
                (Cause::UnknownBackend, 150, "2026-10-02", "2026-10-02"),
                (Cause::NoReservation, 150, "2026-10-03", "2026-10-03"),
            ]
        );
        let fix = |cause| &causes.iter().find(|u| u.cause == cause).unwrap().fix;
        assert!(fix(Cause::NoPriceRow).contains(
            "model gpt-4o, deployment type GlobalStandard, region eastus (or `any`) \
             in force from 2026-10-01 to 2026-10-05"
        ));
        assert!(fix(Cause::UnknownBackend).contains("add backend aoai-new to backends.csv"));
        assert!(fix(Cause::NoReservation).contains("backend aoai-ptu deployment dep-1"));
        assert!(fix(Cause::NoBackend).contains("logged no backend id"));
    }
}
