//! Gateway backends and PTU reservations as stored; checked before they get here
//! (`tollgate-reports`) and each replaced whole by an import.

use serde::{Deserialize, Serialize};

use super::{StateDb, begin_write, bump_version, lock_for_replace, on_pool};
use crate::Result;

/// A backend id as gateways log it, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackendRow {
    pub backend: String,
    pub deployment_type: String,
    pub region: String,
    /// The Azure resource (account or deployment) its cost lines name, as
    /// `backends.csv` gives it; matched without regard to case, as Azure does.
    #[serde(default)]
    pub resource_id: Option<String>,
    pub source: String,
}

/// A PTU reservation: `ptus` x `cost_pico` per PTU per `cost_period` (`hour` or
/// `month`), over `[effective_from, effective_to)`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PtuReservation {
    pub backend: String,
    pub deployment: String,
    pub ptus: i64,
    pub cost_pico: i64,
    pub cost_period: String,
    pub currency: String,
    /// How many input tokens one output token weighs, in thousandths.
    pub output_token_weight_milli: i64,
    /// `spread`, or the cost centre that pays for idle capacity.
    pub idle_charged_to: String,
    pub effective_from: String,
    pub effective_to: Option<String>,
    pub source: String,
}

impl StateDb {
    #[tracing::instrument(skip_all, fields(rows = rows.len()), err)]
    pub async fn replace_backends(&self, rows: &[BackendRow]) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            lock_for_replace!(self, tx, "backends");
            bump_version!(tx, crate::StateVersion::Capacity);
            sqlx::query::<Db>("DELETE FROM backends")
                .execute(&mut *tx)
                .await?;
            for r in rows {
                sqlx::query::<Db>(
                    "INSERT INTO backends (backend, deployment_type, region, resource_id, source) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&r.backend)
                .bind(&r.deployment_type)
                .bind(&r.region)
                .bind(&r.resource_id)
                .bind(&r.source)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn backends(&self) -> Result<Vec<BackendRow>> {
        let mut rows = on_pool!(self, |pool| {
            sqlx::query_as::<Db, BackendRow>(
                "SELECT backend, deployment_type, region, resource_id, source FROM backends",
            )
            .fetch_all(pool)
            .await?
        });
        // Ordered here, not in SQL: Postgres' collation may order text differently.
        rows.sort_by(|a, b| a.backend.cmp(&b.backend));
        Ok(rows)
    }

    #[tracing::instrument(skip_all, fields(rows = rows.len()), err)]
    pub async fn replace_ptu_reservations(&self, rows: &[PtuReservation]) -> Result<()> {
        const INSERT: &str = "INSERT INTO ptu_reservations (backend, deployment, ptus, \
            cost_pico, cost_period, currency, output_token_weight_milli, idle_charged_to, \
            effective_from, effective_to, source) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            lock_for_replace!(self, tx, "ptu_reservations");
            bump_version!(tx, crate::StateVersion::Capacity);
            sqlx::query::<Db>("DELETE FROM ptu_reservations")
                .execute(&mut *tx)
                .await?;
            for r in rows {
                sqlx::query::<Db>(INSERT)
                    .bind(&r.backend)
                    .bind(&r.deployment)
                    .bind(r.ptus)
                    .bind(r.cost_pico)
                    .bind(&r.cost_period)
                    .bind(&r.currency)
                    .bind(r.output_token_weight_milli)
                    .bind(&r.idle_charged_to)
                    .bind(&r.effective_from)
                    .bind(&r.effective_to)
                    .bind(&r.source)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn ptu_reservations(&self) -> Result<Vec<PtuReservation>> {
        let mut rows = on_pool!(self, |pool| {
            sqlx::query_as::<Db, PtuReservation>(
                "SELECT backend, deployment, ptus, cost_pico, cost_period, currency, \
                 output_token_weight_milli, idle_charged_to, effective_from, effective_to, source \
                 FROM ptu_reservations",
            )
            .fetch_all(pool)
            .await?
        });
        rows.sort_by(|a, b| {
            (&a.backend, &a.deployment, &a.effective_from).cmp(&(
                &b.backend,
                &b.deployment,
                &b.effective_from,
            ))
        });
        Ok(rows)
    }
}
