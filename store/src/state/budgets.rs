//! Budgets as stored, their last evaluated state, the events their state changes
//! raised (the notification outbox, with every delivery attempt), and the view
//! each gateway is served. Budget changes are audited; an evaluation is applied
//! in one transaction that compares with the stored states under a lock, so two
//! processes evaluating at once record each transition once.

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{StateDb, audit, begin_write, bump_version, lock_for_replace, on_pool};
use crate::state::NewAudit;
use crate::{BudgetAction, BudgetScope, BudgetState, Result, StoreError};

/// A budget as stored. Quotas are exact decimals as text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetRow {
    pub id: i64,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub budget: NewBudget,
    pub created_at: String,
    pub updated_at: String,
}

/// What a budget says (checked by `tollgate_reports::budgets` before it is stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewBudget {
    pub name: String,
    #[sqlx(try_from = "String")]
    pub scope: BudgetScope,
    pub scope_id: String,
    pub period: String,
    pub token_quota: Option<i64>,
    pub cost_quota: Option<String>,
    pub currency: Option<String>,
    pub tokens_per_minute: Option<i64>,
    /// Ascending fractions, comma separated (`0.8,0.95`).
    pub warn_at: String,
    #[sqlx(try_from = "String")]
    pub action: BudgetAction,
    pub throttle_tokens_per_minute: Option<i64>,
    pub downgrade_to: Option<String>,
    /// Comma separated; empty means every gateway.
    pub gateways: String,
}

/// A budget's state as last evaluated.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct StoredBudgetState {
    pub budget_id: i64,
    pub period_start: String,
    #[sqlx(try_from = "String")]
    pub state: BudgetState,
    pub level: i64,
    pub tokens_used: i64,
    pub cost_used: String,
    pub evaluated_at: String,
    pub inputs_version: i64,
}

/// A budget's state as just computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetEvaluation {
    pub budget_id: i64,
    pub period_start: String,
    pub state: BudgetState,
    pub level: i64,
    pub tokens_used: i64,
    pub cost_used: String,
}

/// An event to record: a state change or a threshold crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBudgetEvent {
    pub budget_id: i64,
    pub budget_name: String,
    pub period_start: String,
    pub from_state: BudgetState,
    pub to_state: BudgetState,
    /// The webhook body, fixed when the event happens.
    pub payload: String,
}

/// An event as recorded, with where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct BudgetEvent {
    pub id: i64,
    pub budget_id: i64,
    pub budget_name: String,
    pub at: String,
    pub period_start: String,
    #[sqlx(try_from = "String")]
    pub from_state: BudgetState,
    #[sqlx(try_from = "String")]
    pub to_state: BudgetState,
    pub payload: String,
    pub delivered_at: Option<String>,
    pub failed_at: Option<String>,
    pub next_attempt_at: Option<String>,
}

/// One attempt to deliver an event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct WebhookDelivery {
    pub id: i64,
    pub event_id: i64,
    pub at: String,
    pub attempt: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
}

/// What a gateway is served, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GatewayView {
    pub gateway_id: String,
    pub version: i64,
    pub body_sha256: String,
    /// The gateway's budget entries as a JSON array.
    pub body: String,
    pub updated_at: String,
}

/// A view as just computed: `(gateway, body, sha256 of body)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGatewayView {
    pub gateway_id: String,
    pub body: String,
    pub body_sha256: String,
}

/// What to write for a budget evaluation, as `tollgate_reports` decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetChanges {
    /// The inputs version the evaluation was computed at.
    pub inputs_version: i64,
    /// Every budget's new state.
    pub states: Vec<BudgetEvaluation>,
    /// The transitions to record, each with its webhook body.
    pub events: Vec<NewBudgetEvent>,
    /// Every gateway's view as computed (stored only where its body changed).
    pub views: Vec<NewGatewayView>,
}

/// What applying an evaluation changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvaluationApplied {
    pub events: Vec<BudgetEvent>,
    /// Gateways whose view changed, with their new version.
    pub bumped: Vec<(String, i64)>,
}

macro_rules! budget_columns {
    () => {
        "id, name, scope, scope_id, period, token_quota, cost_quota, currency, \
         tokens_per_minute, warn_at, action, throttle_tokens_per_minute, downgrade_to, \
         gateways, created_at, updated_at"
    };
}

macro_rules! event_columns {
    () => {
        "id, budget_id, budget_name, at, period_start, from_state, to_state, payload, \
         delivered_at, failed_at, next_attempt_at"
    };
}

/// Binds a budget's thirteen columns, in table order, to `$1`..`$13`.
macro_rules! bind_budget {
    ($query:expr, $budget:expr) => {
        $query
            .bind(&$budget.name)
            .bind($budget.scope.as_str())
            .bind(&$budget.scope_id)
            .bind(&$budget.period)
            .bind($budget.token_quota)
            .bind(&$budget.cost_quota)
            .bind(&$budget.currency)
            .bind($budget.tokens_per_minute)
            .bind(&$budget.warn_at)
            .bind($budget.action.as_str())
            .bind($budget.throttle_tokens_per_minute)
            .bind(&$budget.downgrade_to)
            .bind(&$budget.gateways)
    };
}

/// A timestamp that sorts as text: always microseconds, always `Z`.
pub fn timestamp(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn name_taken(e: sqlx::Error, name: &str) -> StoreError {
    StoreError::on_constraint(e, || format!("a budget named {name:?} exists already"))
}

impl StateDb {
    #[tracing::instrument(skip_all, fields(name = %budget.name), err)]
    pub async fn create_budget(&self, budget: &NewBudget, actor: &str) -> Result<BudgetRow> {
        Ok(on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let now = timestamp(Utc::now());
            let query = sqlx::query_as::<Db, BudgetRow>(concat!(
                "INSERT INTO budgets (name, scope, scope_id, period, token_quota, cost_quota, \
                 currency, tokens_per_minute, warn_at, action, throttle_tokens_per_minute, \
                 downgrade_to, gateways, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
                 RETURNING ",
                budget_columns!()
            ));
            let row = bind_budget!(query, budget)
                .bind(&now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| name_taken(e, &budget.name))?;
            audit!(
                tx,
                &NewAudit::new(actor, "budget.create", format!("budget:{}", row.id)).after(&row)
            );
            bump_version!(tx, crate::StateVersion::Budgets);
            tx.commit().await?;
            row
        }))
    }

    #[tracing::instrument(skip_all, fields(id), err)]
    pub async fn update_budget(
        &self,
        id: i64,
        budget: &NewBudget,
        actor: &str,
    ) -> Result<BudgetRow> {
        Ok(on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let before = sqlx::query_as::<Db, BudgetRow>(concat!(
                "SELECT ",
                budget_columns!(),
                " FROM budgets WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no budget with id {id}")))?;
            let query = sqlx::query_as::<Db, BudgetRow>(concat!(
                "UPDATE budgets SET name = $1, scope = $2, scope_id = $3, period = $4, \
                 token_quota = $5, cost_quota = $6, currency = $7, tokens_per_minute = $8, \
                 warn_at = $9, action = $10, throttle_tokens_per_minute = $11, \
                 downgrade_to = $12, gateways = $13, updated_at = $14 WHERE id = $15 \
                 RETURNING ",
                budget_columns!()
            ));
            let row = bind_budget!(query, budget)
                .bind(timestamp(Utc::now()))
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| name_taken(e, &budget.name))?;
            audit!(
                tx,
                &NewAudit::new(actor, "budget.update", format!("budget:{id}"))
                    .before(&before)
                    .after(&row)
            );
            bump_version!(tx, crate::StateVersion::Budgets);
            tx.commit().await?;
            row
        }))
    }

    #[tracing::instrument(skip_all, fields(id), err)]
    pub async fn delete_budget(&self, id: i64, actor: &str) -> Result<BudgetRow> {
        Ok(on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let before = sqlx::query_as::<Db, BudgetRow>(concat!(
                "DELETE FROM budgets WHERE id = $1 RETURNING ",
                budget_columns!()
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no budget with id {id}")))?;
            audit!(
                tx,
                &NewAudit::new(actor, "budget.delete", format!("budget:{id}")).before(&before)
            );
            bump_version!(tx, crate::StateVersion::Budgets);
            tx.commit().await?;
            before
        }))
    }

    /// Every budget, by id.
    pub async fn budgets(&self) -> Result<Vec<BudgetRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, BudgetRow>(concat!(
                "SELECT ",
                budget_columns!(),
                " FROM budgets ORDER BY id"
            ))
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn budget(&self, id: i64) -> Result<BudgetRow> {
        on_pool!(self, |pool| {
            sqlx::query_as::<Db, BudgetRow>(concat!(
                "SELECT ",
                budget_columns!(),
                " FROM budgets WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no budget with id {id}")))
        })
    }

    /// Every budget's state as last evaluated.
    pub async fn budget_states(&self) -> Result<Vec<StoredBudgetState>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, StoredBudgetState>(
                "SELECT budget_id, period_start, state, level, tokens_used, cost_used, \
                 evaluated_at, inputs_version FROM budget_states ORDER BY budget_id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Applies a budget evaluation: under a lock, reads the stored states and
    /// hands them to `plan` (`tollgate_reports::budget_eval::plan` decides),
    /// then writes what it returned: its events, the new states, and each
    /// gateway view whose body changed, with its version one higher. Returns
    /// `None`, changing nothing, when the plan is `None`.
    // Long, and on purpose: one transaction of plain writes in order, on both
    // backends through `on_pool!`; split up, each part would have to be generic
    // over sqlx's `Database` and its executor, which reads worse than the list.
    #[tracing::instrument(skip_all, err)]
    pub async fn apply_budget_changes<F>(&self, plan: F) -> Result<Option<EvaluationApplied>>
    where
        F: FnOnce(&[StoredBudgetState]) -> Option<BudgetChanges>,
    {
        Ok(on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            lock_for_replace!(self, tx, "budget_states, gateway_views");
            let stored = sqlx::query_as::<Db, StoredBudgetState>(
                "SELECT budget_id, period_start, state, level, tokens_used, cost_used, \
                 evaluated_at, inputs_version FROM budget_states",
            )
            .fetch_all(&mut *tx)
            .await?;
            let Some(changes) = plan(&stored) else {
                return Ok(None);
            };
            let now = timestamp(Utc::now());
            let mut applied = EvaluationApplied::default();
            for event in &changes.events {
                let recorded = sqlx::query_as::<Db, BudgetEvent>(concat!(
                    "INSERT INTO budget_events (budget_id, budget_name, at, period_start, \
                         from_state, to_state, payload) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         RETURNING ",
                    event_columns!()
                ))
                .bind(event.budget_id)
                .bind(&event.budget_name)
                .bind(&now)
                .bind(&event.period_start)
                .bind(event.from_state.as_str())
                .bind(event.to_state.as_str())
                .bind(&event.payload)
                .fetch_one(&mut *tx)
                .await?;
                applied.events.push(recorded);
            }
            for evaluation in &changes.states {
                sqlx::query::<Db>(
                    "INSERT INTO budget_states (budget_id, period_start, state, level, \
                     tokens_used, cost_used, evaluated_at, inputs_version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (budget_id) DO UPDATE SET period_start = excluded.period_start, \
                     state = excluded.state, level = excluded.level, \
                     tokens_used = excluded.tokens_used, cost_used = excluded.cost_used, \
                     evaluated_at = excluded.evaluated_at, \
                     inputs_version = excluded.inputs_version",
                )
                .bind(evaluation.budget_id)
                .bind(&evaluation.period_start)
                .bind(evaluation.state.as_str())
                .bind(evaluation.level)
                .bind(evaluation.tokens_used)
                .bind(&evaluation.cost_used)
                .bind(&now)
                .bind(changes.inputs_version)
                .execute(&mut *tx)
                .await?;
            }
            for view in &changes.views {
                let version = sqlx::query_scalar::<Db, i64>(
                    "INSERT INTO gateway_views (gateway_id, version, body_sha256, body, updated_at) \
                     VALUES ($1, 1, $2, $3, $4) \
                     ON CONFLICT (gateway_id) DO UPDATE SET version = gateway_views.version + 1, \
                     body_sha256 = excluded.body_sha256, body = excluded.body, \
                     updated_at = excluded.updated_at \
                     WHERE gateway_views.body_sha256 <> excluded.body_sha256 \
                     RETURNING version",
                )
                .bind(&view.gateway_id)
                .bind(&view.body_sha256)
                .bind(&view.body)
                .bind(&now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(version) = version {
                    applied.bumped.push((view.gateway_id.clone(), version));
                }
            }
            if !applied.bumped.is_empty() {
                bump_version!(tx, crate::StateVersion::GatewayViews);
            }
            tx.commit().await?;
            Some(applied)
        }))
    }

    /// Every gateway view, by gateway id.
    pub async fn gateway_views(&self) -> Result<Vec<GatewayView>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, GatewayView>(
                "SELECT gateway_id, version, body_sha256, body, updated_at FROM gateway_views \
                 ORDER BY gateway_id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Events, newest first; for one budget when given.
    pub async fn budget_events(
        &self,
        budget_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<BudgetEvent>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, BudgetEvent>(concat!(
                "SELECT ",
                event_columns!(),
                " FROM budget_events WHERE ($1 IS NULL OR budget_id = $1) ORDER BY id DESC LIMIT $2"
            ))
            .bind(budget_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Events neither delivered nor given up on whose next attempt is due, oldest first.
    pub async fn due_budget_events(
        &self,
        now: chrono::DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<BudgetEvent>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, BudgetEvent>(concat!(
                "SELECT ",
                event_columns!(),
                " FROM budget_events WHERE delivered_at IS NULL AND failed_at IS NULL \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= $1) ORDER BY id LIMIT $2"
            ))
            .bind(timestamp(now))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Records one delivery attempt and what it means for the event: delivered,
    /// to be retried at `retry_at`, or given up.
    pub async fn record_delivery(
        &self,
        delivery: &WebhookDelivery,
        retry_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            sqlx::query::<Db>(
                "INSERT INTO webhook_deliveries (event_id, at, attempt, status, error, outcome) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(delivery.event_id)
            .bind(&delivery.at)
            .bind(delivery.attempt)
            .bind(delivery.status)
            .bind(&delivery.error)
            .bind(&delivery.outcome)
            .execute(&mut *tx)
            .await?;
            let (delivered, failed) = match delivery.outcome.as_str() {
                "delivered" => (Some(&delivery.at), None),
                "failed" => (None, Some(&delivery.at)),
                _ => (None, None),
            };
            sqlx::query::<Db>(
                "UPDATE budget_events SET delivered_at = $1, failed_at = $2, next_attempt_at = $3 \
                 WHERE id = $4",
            )
            .bind(delivered)
            .bind(failed)
            .bind(retry_at.map(timestamp))
            .bind(delivery.event_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every attempt to deliver one event, oldest first.
    pub async fn webhook_deliveries(&self, event_id: i64) -> Result<Vec<WebhookDelivery>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, WebhookDelivery>(
                "SELECT id, event_id, at, attempt, status, error, outcome FROM webhook_deliveries \
                 WHERE event_id = $1 ORDER BY id",
            )
            .bind(event_id)
            .fetch_all(pool)
            .await?
        }))
    }
}
