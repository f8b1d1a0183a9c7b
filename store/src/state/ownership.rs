//! Cost centres and the ownership mapping as stored; checked before they get here
//! (`tollgate-reports`) and replaced whole by an import.

use serde::{Deserialize, Serialize};

use super::{StateDb, begin_write, bump_version, lock_for_replace, on_pool};
use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CostCentre {
    pub id: String,
    pub name: String,
}

/// A subscription, agent or product (`kind`) and the cost centre that pays for it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OwnershipRow {
    pub kind: String,
    pub key: String,
    pub cost_centre: String,
}

impl StateDb {
    /// Replaces the cost centres and the whole mapping, in one transaction.
    #[tracing::instrument(skip_all, fields(cost_centres = centres.len(), rows = rows.len()), err)]
    pub async fn replace_ownership(
        &self,
        centres: &[CostCentre],
        rows: &[OwnershipRow],
    ) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            lock_for_replace!(self, tx, "ownership, cost_centres");
            bump_version!(tx, crate::StateVersion::Ownership);
            sqlx::query::<Db>("DELETE FROM ownership")
                .execute(&mut *tx)
                .await?;
            sqlx::query::<Db>("DELETE FROM cost_centres")
                .execute(&mut *tx)
                .await?;
            for c in centres {
                sqlx::query::<Db>("INSERT INTO cost_centres (id, name) VALUES ($1, $2)")
                    .bind(&c.id)
                    .bind(&c.name)
                    .execute(&mut *tx)
                    .await?;
            }
            for r in rows {
                sqlx::query::<Db>(
                    "INSERT INTO ownership (kind, key, cost_centre) VALUES ($1, $2, $3)",
                )
                .bind(&r.kind)
                .bind(&r.key)
                .bind(&r.cost_centre)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn cost_centres(&self) -> Result<Vec<CostCentre>> {
        let mut rows = on_pool!(self, |pool| {
            sqlx::query_as::<Db, CostCentre>("SELECT id, name FROM cost_centres")
                .fetch_all(pool)
                .await?
        });
        // Ordered here, not in SQL: Postgres' collation may order text differently.
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rows)
    }

    /// The mapping, by kind and key.
    pub async fn ownership(&self) -> Result<Vec<OwnershipRow>> {
        let mut rows = on_pool!(self, |pool| {
            sqlx::query_as::<Db, OwnershipRow>("SELECT kind, key, cost_centre FROM ownership")
                .fetch_all(pool)
                .await?
        });
        rows.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
        Ok(rows)
    }
}
