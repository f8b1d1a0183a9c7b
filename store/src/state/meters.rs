//! The meter map: what a provider's cost-line meter bills (a model's input,
//! cached input or output tokens, or provisioned hours), as imported from
//! `meters.csv` (`docs/reconciliation.md`). Meters not in it are read by the
//! default Azure OpenAI / Foundry naming in `tollgate_reports::meter`.

use serde::{Deserialize, Serialize};

use super::{StateDb, begin_write, bump_version, lock_for_replace, on_pool};
use crate::Result;

/// One row of the meter map, as stored; `token_kind` is one of `input`,
/// `cached_input`, `output`, `provisioned_hour` (the table checks it).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeterRow {
    pub meter: String,
    /// Absent for provisioned hours, which bill a deployment, not a model.
    pub model: Option<String>,
    pub token_kind: String,
    pub deployment_type: String,
    /// Tokens (or hours) one unit of the line's quantity stands for.
    pub unit: i64,
    pub source: String,
}

impl StateDb {
    /// Replaces the meter map with `rows`, in one transaction.
    #[tracing::instrument(skip_all, fields(rows = rows.len()), err)]
    pub async fn replace_meter_map(&self, rows: &[MeterRow]) -> Result<()> {
        const INSERT: &str = "INSERT INTO meter_map (meter, model, token_kind, \
            deployment_type, unit, source) VALUES ($1, $2, $3, $4, $5, $6)";
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            lock_for_replace!(self, tx, "meter_map");
            bump_version!(tx, crate::StateVersion::Prices);
            sqlx::query::<Db>("DELETE FROM meter_map")
                .execute(&mut *tx)
                .await?;
            for r in rows {
                sqlx::query::<Db>(INSERT)
                    .bind(&r.meter)
                    .bind(&r.model)
                    .bind(&r.token_kind)
                    .bind(&r.deployment_type)
                    .bind(r.unit)
                    .bind(&r.source)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The meter map, by meter.
    pub async fn meter_map(&self) -> Result<Vec<MeterRow>> {
        let mut rows = on_pool!(self, |pool| {
            sqlx::query_as::<Db, MeterRow>(
                "SELECT meter, model, token_kind, deployment_type, unit, source FROM meter_map",
            )
            .fetch_all(pool)
            .await?
        });
        // Ordered here, not in SQL: Postgres' collation may order text differently.
        rows.sort_by(|a, b| a.meter.cmp(&b.meter));
        Ok(rows)
    }
}
