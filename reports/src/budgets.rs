//! Budgets as people write them (the API's JSON, `budgets.toml`), checked before
//! anything is stored: a scope that names something Tollgate knows, positive
//! quotas, ascending warning thresholds, an action with what it needs. Every
//! problem is reported, each naming its field.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tollgate_store::state::{BudgetRow, NewBudget};
use tollgate_store::{BudgetAction, BudgetScope, Store, UnknownWord};

use crate::rate::{format_pico_wide, parse_pico_wide};
use crate::{ReportsError, Result};

pub const DEFAULT_WARN_AT: [f64; 2] = [0.8, 0.95];

/// A budget as written by people and programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// A unique label for people.
    pub name: String,
    /// `subscription`, `product`, `cost_centre` or `agent`.
    pub scope: String,
    /// The subscription, product, cost centre or agent id.
    pub scope_id: String,
    /// `month` (calendar month, UTC), the only period for now.
    #[serde(default = "default_period")]
    pub period: String,
    #[serde(default)]
    pub token_quota: Option<i64>,
    /// A decimal amount of `currency` (a number or a string, `"5000.00"`).
    #[serde(default)]
    pub cost_quota: Option<Amount>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub tokens_per_minute: Option<i64>,
    /// Fractions of the quota that raise a warning, ascending (default 0.8, 0.95).
    #[serde(default = "default_warn_at")]
    pub warn_at: Vec<f64>,
    /// On exhaustion: `notify`, `throttle`, `downgrade` or `block`.
    #[serde(default = "default_action")]
    pub action: String,
    #[serde(default)]
    pub throttle_tokens_per_minute: Option<i64>,
    #[serde(default)]
    pub downgrade_to: Option<String>,
    /// The gateways that enforce it; none means every gateway.
    #[serde(default)]
    pub gateways: Vec<String>,
}

/// A decimal written as a number (`5000.0`) or as text (`"5000.00"`, exact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Amount {
    Text(String),
    Number(f64),
}

impl Amount {
    fn text(&self) -> String {
        match self {
            Amount::Text(t) => t.trim().to_owned(),
            Amount::Number(n) => n.to_string(),
        }
    }
}

fn default_period() -> String {
    "month".into()
}
fn default_warn_at() -> Vec<f64> {
    DEFAULT_WARN_AT.to_vec()
}
fn default_action() -> String {
    BudgetAction::Notify.as_str().into()
}

/// What a budget's scope may name: ids known from the ownership mapping and
/// from the traffic rolled up so far.
#[derive(Debug, Default, Clone)]
pub struct KnownScopes {
    pub subscriptions: BTreeSet<String>,
    pub products: BTreeSet<String>,
    pub agents: BTreeSet<String>,
    pub cost_centres: BTreeSet<String>,
    /// The price book's currency, when it has one.
    pub currency: Option<String>,
}

impl KnownScopes {
    pub async fn load(store: &Store) -> Result<KnownScopes> {
        let db = &store.db;
        let mut known = KnownScopes::default();
        for row in db.ownership().await? {
            match row.kind.as_str() {
                "subscription" => known.subscriptions.insert(row.key),
                "product" => known.products.insert(row.key),
                "agent" => known.agents.insert(row.key),
                _ => false,
            };
        }
        known.cost_centres = db.cost_centres().await?.into_iter().map(|c| c.id).collect();
        known
            .subscriptions
            .extend(store.seen_dimension_values("subscription").await?);
        known
            .products
            .extend(store.seen_dimension_values("product").await?);
        known
            .agents
            .extend(store.seen_dimension_values("agent").await?);
        known.currency = db
            .price_book()
            .await?
            .into_iter()
            .map(|p| p.currency)
            .next();
        Ok(known)
    }

    /// Whether the ownership mapping or the traffic so far has named `id` in
    /// `scope`.
    pub fn knows(&self, scope: BudgetScope, id: &str) -> bool {
        self.ids(scope).contains(id)
    }

    fn ids(&self, scope: BudgetScope) -> &BTreeSet<String> {
        match scope {
            BudgetScope::Subscription => &self.subscriptions,
            BudgetScope::Product => &self.products,
            BudgetScope::Agent => &self.agents,
            BudgetScope::CostCentre => &self.cost_centres,
        }
    }
}

impl BudgetSpec {
    /// Checks the budget; every problem found, each naming its field.
    pub fn check(&self, known: &KnownScopes) -> Result<NewBudget, Vec<String>> {
        let mut problems = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.len() > 200 {
            problems.push("name: must be 1 to 200 characters".to_owned());
        }
        // An id not seen yet is taken: budgets are often set up before the
        // traffic they cap arrives. Listings say so ([`unseen_scope`]).
        let scope = self.scope.parse::<BudgetScope>();
        match scope {
            Err(_) => problems.push(format!(
                "scope: {:?} is not one of {}",
                self.scope,
                BudgetScope::listed()
            )),
            Ok(_) if self.scope_id.trim().is_empty() => {
                problems.push("scope_id: must not be empty".into())
            }
            Ok(_) => {}
        }
        if self.period != "month" {
            problems.push(format!(
                "period: {:?} is not supported (only `month`, a calendar month in UTC)",
                self.period
            ));
        }
        if self.token_quota.is_none() && self.cost_quota.is_none() {
            problems.push("token_quota, cost_quota: give at least one".into());
        }
        if let Some(q) = self.token_quota
            && q <= 0
        {
            problems.push(format!("token_quota: {q} must be positive"));
        }
        let cost_quota = self.cost_quota.as_ref().map(Amount::text);
        if let Some(text) = &cost_quota {
            match parse_pico_wide(text) {
                Ok(p) if p > 0 => {}
                Ok(_) => problems.push(format!("cost_quota: {text} must be positive")),
                Err(e) => problems.push(format!("cost_quota: {e}")),
            }
            match (&self.currency, &known.currency) {
                (None, _) => problems.push("currency: required with cost_quota".into()),
                (Some(c), _) if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) => {
                    problems.push(format!("currency: {c:?} is not an ISO 4217 code"))
                }
                (Some(c), Some(book)) if c != book => problems.push(format!(
                    "currency: {c} differs from the price book's {book}"
                )),
                _ => {}
            }
        } else if self.currency.is_some() {
            problems.push("currency: only with cost_quota".into());
        }
        if let Some(t) = self.tokens_per_minute
            && t <= 0
        {
            problems.push(format!("tokens_per_minute: {t} must be positive"));
        }
        if self.warn_at.len() > 5
            || self.warn_at.iter().any(|w| !(*w > 0.0 && *w < 1.0))
            || self.warn_at.windows(2).any(|w| w[0] >= w[1])
        {
            problems
                .push("warn_at: up to 5 fractions between 0 and 1, strictly ascending".to_owned());
        }
        let action = self.action.parse::<BudgetAction>();
        problems.extend(self.action_problems(&action));
        for g in &self.gateways {
            if g.trim().is_empty() || g.contains(',') {
                problems.push(format!("gateways: {g:?} is not a gateway id"));
            }
        }
        match (scope, action) {
            (Ok(scope), Ok(action)) if problems.is_empty() => {
                Ok(self.checked(scope, action, cost_quota))
            }
            _ => Err(problems),
        }
    }

    /// What the action needs, and what only another action may have.
    fn action_problems(&self, action: &Result<BudgetAction, UnknownWord>) -> Vec<String> {
        let mut problems = Vec::new();
        match action {
            Ok(BudgetAction::Throttle) => match self.throttle_tokens_per_minute {
                Some(t) if t > 0 => {}
                _ => problems.push(
                    "throttle_tokens_per_minute: a positive number is required by action throttle"
                        .into(),
                ),
            },
            Ok(BudgetAction::Downgrade) => {
                if self
                    .downgrade_to
                    .as_deref()
                    .is_none_or(|m| m.trim().is_empty())
                {
                    problems.push("downgrade_to: a model is required by action downgrade".into());
                }
            }
            Ok(BudgetAction::Notify | BudgetAction::Block) => {}
            Err(_) => problems.push(format!(
                "action: {:?} is not one of {}",
                self.action,
                BudgetAction::listed()
            )),
        }
        if action.as_ref().ok() != Some(&BudgetAction::Throttle)
            && self.throttle_tokens_per_minute.is_some()
        {
            problems.push("throttle_tokens_per_minute: only with action throttle".into());
        }
        if action.as_ref().ok() != Some(&BudgetAction::Downgrade) && self.downgrade_to.is_some() {
            problems.push("downgrade_to: only with action downgrade".into());
        }
        problems
    }

    /// The budget to store, once [`BudgetSpec::check`] found no problem.
    fn checked(
        &self,
        scope: BudgetScope,
        action: BudgetAction,
        cost_quota: Option<String>,
    ) -> NewBudget {
        NewBudget {
            name: self.name.trim().to_owned(),
            scope,
            scope_id: self.scope_id.clone(),
            period: self.period.clone(),
            token_quota: self.token_quota,
            cost_quota: cost_quota
                .and_then(|t| parse_pico_wide(&t).ok())
                .map(format_pico_wide),
            currency: self.cost_quota.as_ref().and(self.currency.clone()),
            tokens_per_minute: self.tokens_per_minute,
            warn_at: self
                .warn_at
                .iter()
                .map(f64::to_string)
                .collect::<Vec<_>>()
                .join(","),
            action,
            throttle_tokens_per_minute: self.throttle_tokens_per_minute,
            downgrade_to: self.downgrade_to.clone(),
            gateways: self.gateways.join(","),
        }
    }
}

/// Stored warning thresholds back as fractions.
pub fn warn_at(row: &NewBudget) -> Vec<f64> {
    row.warn_at
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect()
}

/// Why a budget may show no use: its scope names an id that neither the
/// ownership mapping nor any traffic has named yet (traffic still to come, or
/// a typo). `None` once it is known.
pub fn unseen_scope(known: &KnownScopes, budget: &NewBudget) -> Option<String> {
    (!known.knows(budget.scope, &budget.scope_id)).then(|| {
        format!(
            "{} {:?} is not yet seen in traffic nor in the ownership mapping: \
             the budget counts from its first request (check the id if it never does)",
            budget.scope, budget.scope_id
        )
    })
}

/// The stored quota in pico-units, if the budget has one.
pub fn cost_quota_pico(row: &NewBudget) -> Option<i128> {
    row.cost_quota
        .as_deref()
        .and_then(|t| parse_pico_wide(t).ok())
}

/// The gateways a budget names (none: every gateway).
pub fn gateways(row: &NewBudget) -> Vec<&str> {
    row.gateways.split(',').filter(|g| !g.is_empty()).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetsFile {
    #[serde(default)]
    budget: Vec<BudgetSpec>,
}

/// Imports `budgets.toml`: every budget is checked first (nothing is stored if
/// any is bad); then each is created, or updated when one of its name exists.
#[tracing::instrument(skip(store), err)]
pub async fn import(store: &Store, path: &Path, actor: &str) -> Result<Vec<BudgetRow>> {
    let db = &store.db;
    let text = std::fs::read_to_string(path).map_err(|source| ReportsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let known = KnownScopes::load(store).await?;
    let checked = parse(path, &text, &known)?;
    let existing = db.budgets().await?;
    let mut stored = Vec::new();
    for budget in checked {
        let row = match existing.iter().find(|b| b.budget.name == budget.name) {
            Some(old) if old.budget == budget => old.clone(),
            Some(old) => db.update_budget(old.id, &budget, actor).await?,
            None => db.create_budget(&budget, actor).await?,
        };
        stored.push(row);
    }
    Ok(stored)
}

/// `budgets.toml`'s budgets, each checked against what scopes may name;
/// every problem is named, and any refuses the file whole.
pub fn parse(path: &Path, text: &str, known: &KnownScopes) -> Result<Vec<NewBudget>> {
    let file: BudgetsFile = toml::from_str(text).map_err(|e| ReportsError::Invalid {
        path: path.to_owned(),
        problems: vec![e.to_string()],
    })?;
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    let mut names = BTreeSet::new();
    for (i, spec) in file.budget.iter().enumerate() {
        let at = format!("budget {} ({:?})", i + 1, spec.name);
        if !names.insert(spec.name.trim().to_owned()) {
            problems.push(format!("{at}: name: given twice"));
        }
        match spec.check(known) {
            Ok(budget) => checked.push(budget),
            Err(found) => problems.extend(found.into_iter().map(|p| format!("{at}: {p}"))),
        }
    }
    if !problems.is_empty() {
        return Err(ReportsError::Invalid {
            path: path.to_owned(),
            problems,
        });
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[budget]]
        name = "sandbox"
        scope = "product"
        scope_id = "sandbox"
        cost_quota = "2.5e2"
        currency = "USD"

        [[budget]]
        name = "payments"
        scope = "product"
        scope_id = "payments"
        token_quota = 1000
    "#;

    #[test]
    fn a_budget_may_name_a_scope_before_its_traffic_arrives() {
        let mut known = KnownScopes {
            currency: Some("USD".into()),
            ..KnownScopes::default()
        };
        known.products.insert("payments".into());
        let budgets = parse(Path::new("budgets.toml"), FILE, &known).unwrap();
        assert_eq!(budgets.len(), 2);
        assert_eq!(budgets[0].cost_quota.as_deref(), Some("250"));
        let note = unseen_scope(&known, &budgets[0]).unwrap();
        assert!(
            note.starts_with("product \"sandbox\" is not yet seen"),
            "{note}"
        );
        assert_eq!(unseen_scope(&known, &budgets[1]), None);
        // Once traffic names it, the note goes.
        known.products.insert("sandbox".into());
        assert_eq!(unseen_scope(&known, &budgets[0]), None);
    }
}
